"""Curves with trained bends between two parameter vectors (Garipov et al. 2018,
arXiv:1802.10026; docs/theory.md section 9).

With control points p_0 = x_a, p_1, ..., p_k, p_{k+1} = x_b (k = ``bends``), the curve is
gamma(s) = sum_j w_j(s) p_j, s in [0, 1], with

* ``"bezier"``: the Bernstein polynomials w_j(s) = C(k+1, j) s^j (1 - s)^(k+1-j) (k = 1: the
  quadratic Bezier curve (1 - s)^2 x_a + 2 s (1 - s) p_1 + s^2 x_b);
* ``"chain"``: the hat functions of the knots s_j = j / (k + 1) (k = 1: the polygonal chain
  x_a -> p_1 -> x_b with the bend at s = 1/2).

The bends minimise Garipov et al.'s objective, the mean loss along the curve in its parameter,
int_0^1 L(gamma(s)) ds, here by a fixed composite Gauss-Legendre rule (``nodes`` points on each
of the k + 1 intervals between knots, weights omega_q):

    F(p_1..p_k) = sum_q omega_q L(gamma(s_q)),
    dF/dp_j = sum_q omega_q w_j(s_q) grad L(gamma(s_q)),

a smooth finite sum whose gradient is exact by the chain rule (full batch, float64,
deterministic). It is minimised by L-BFGS (:func:`weightsym.optimize.minimize`, method
``"lbfgs"``) from the straight line's points plus a seeded perturbation
N(0, (PERTURBATION |x_b - x_a| / sqrt(P))^2) per coordinate.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from weightsym.baselines.common import (
    check_choice,
    check_count,
    check_endpoints,
    check_positive,
    evaluate,
)
from weightsym.baselines.linear import DEFAULT_POINTS, line_points
from weightsym.baselines.record import CurvePath, Fit
from weightsym.optimize import minimize

CURVES = ("bezier", "chain")
DEFAULT_NODES = 8  # Gauss-Legendre nodes per interval between knots
DEFAULT_TOL = 1e-10  # L-BFGS: inf-norm of dF/dp
DEFAULT_MAX_ITER = 2000  # L-BFGS iterations
PERTURBATION = 1e-2  # initial bends: relative size of the seeded perturbation (module docstring)


def basis(kind: str, bends: int, s: Tensor) -> Tensor:
    """(len(s), bends + 2) weights w_j(s) of the control points p_0 = x_a, ..., p_{k+1} = x_b."""
    n = bends + 1
    s = s.to(torch.float64)[:, None]
    j = torch.arange(n + 1, dtype=torch.float64)[None, :]
    if kind == "bezier":
        binom = torch.tensor([math.comb(n, i) for i in range(n + 1)], dtype=torch.float64)
        return binom * s**j * (1 - s) ** (n - j)
    return (1 - (n * s - j).abs()).clamp(min=0.0)  # hat functions of the knots j / n


def quadrature(bends: int, nodes: int) -> tuple[Tensor, Tensor]:
    """Composite Gauss-Legendre rule on [0, 1] split at the knots j / (bends + 1): (s, omega)."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    n = bends + 1
    s = np.concatenate([(j + 0.5 * (x + 1)) / n for j in range(n)])
    omega = np.tile(w / (2 * n), n)
    return torch.from_numpy(s), torch.from_numpy(omega)


class CurveObjective:
    """F(p_1..p_k), the quadrature mean loss along the curve, as an Objective in the bends.

    ``x`` is the flat (bends * P,) vector of the bends' coordinates, row after row.
    """

    def __init__(
        self, objective: Any, x_a: Tensor, x_b: Tensor, kind: str, bends: int, nodes: int
    ) -> None:
        self.objective, self.x_a, self.x_b, self.kind, self.bends = objective, x_a, x_b, kind, bends
        self.P = int(objective.num_params)
        s, self.omega = quadrature(bends, nodes)
        self.weights = basis(kind, bends, s)

    @property
    def num_params(self) -> int:
        return self.bends * self.P

    def points(self, x: Tensor, weights: Tensor) -> Tensor:
        """gamma at the rows of ``weights`` (from :func:`basis`) for bends ``x``."""
        control = torch.cat([self.x_a[None], x.reshape(self.bends, self.P), self.x_b[None]])
        return weights.to(control.dtype) @ control

    def value_and_grad(self, x: Tensor) -> tuple[float, Tensor]:
        losses = torch.empty(len(self.omega), dtype=torch.float64)
        grads = torch.empty(len(self.omega), self.P, dtype=x.dtype)
        for q, theta in enumerate(self.points(x, self.weights)):
            f, g = self.objective.value_and_grad(theta)
            losses[q], grads[q] = float(f), g
        value = float(self.omega @ losses)
        inner = (self.omega[:, None] * self.weights[:, 1:-1]).to(grads.dtype)
        return value, (inner.T @ grads).reshape(-1)


def bezier_path(
    objective: Any,
    x_a: Tensor,
    x_b: Tensor,
    bends: int = 1,
    kind: str = "bezier",
    seed: int = 0,
    points: int = DEFAULT_POINTS,
    nodes: int = DEFAULT_NODES,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> CurvePath:
    """A Bezier curve or polygonal chain from ``x_a`` to ``x_b`` with trained bends.

    Args:
        objective: anything with ``num_params`` and ``value_and_grad(x) -> (float, Tensor)``.
        x_a, x_b: the endpoints, distinct finite 1-D float tensors of length num_params.
        bends: k >= 1 free control points (k = 1: quadratic Bezier / chain with one bend).
        kind: ``"bezier"`` or ``"chain"``.
        seed: seed of the initial perturbation of the bends.
        points: the trained curve is sampled at ``points`` equally spaced values of s, plus the
            knots j / (k + 1) for a chain (>= 2).
        nodes: Gauss-Legendre nodes per interval between knots (>= 1).
        tol: L-BFGS stops when the inf-norm of dF/dp <= tol.
        max_iter: L-BFGS iterations at most.

    Returns:
        A :class:`CurvePath` of kind ``kind``, with ``bends`` (k, P) and ``fit.objective`` the
        trained mean loss F; ``converged`` says whether ``tol`` was met (else ``message`` says
        why not).

    Raises:
        TypeError: ``objective`` lacks the Objective protocol; ``x_a`` / ``x_b`` not float.
        ValueError: bad shapes, NaN or inf, coinciding endpoints, unknown ``kind``, or a count
            or tolerance out of range.
    """
    x_a, x_b = check_endpoints(objective, x_a, x_b)
    check_choice("kind", kind, CURVES)
    bends = check_count("bends", bends, minimum=1)
    seed = check_count("seed", seed, minimum=0)
    points = check_count("points", points, minimum=2)
    nodes = check_count("nodes", nodes, minimum=1)
    tol = check_positive("tol", tol)
    max_iter = check_count("max_iter", max_iter, minimum=0)
    curve = CurveObjective(objective, x_a, x_b, kind, bends, nodes)
    res = minimize(curve, initial_bends(x_a, x_b, bends, seed), "lbfgs", tol=tol, max_iter=max_iter)
    s = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    if kind == "chain":
        knots = torch.arange(1, bends + 1, dtype=torch.float64) / (bends + 1)
        s = torch.unique(torch.cat([s, knots]))  # sorted
    thetas = curve.points(res.x, basis(kind, bends, s))
    thetas[0], thetas[-1] = x_a, x_b
    loss, grads = evaluate(objective, thetas)
    fit = Fit(
        "lbfgs", tol, res.grad_inf, res.nit, res.ngev * len(curve.omega), res.wall_time, res.fun
    )
    return CurvePath.build(
        kind,
        thetas,
        loss,
        grads,
        converged=res.success,
        message=f"{bends} bend(s) trained by L-BFGS on the mean loss: {res.message}",
        fit=fit,
        bends=res.x.reshape(bends, -1),
    )


def initial_bends(x_a: Tensor, x_b: Tensor, bends: int, seed: int) -> Tensor:
    """The straight line's points at s = j / (k + 1) plus the seeded perturbation, flat."""
    s = torch.arange(1, bends + 1, dtype=torch.float64) / (bends + 1)
    start = line_points(x_a, x_b, s)
    scale = PERTURBATION * float(torch.linalg.vector_norm(x_b - x_a)) / math.sqrt(x_a.numel())
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(start.shape, generator=gen, dtype=torch.float64).to(start.dtype)
    return (start + scale * noise).reshape(-1)
