"""The loss still to gain at a point: the Newton decrement in the tangent space of the chart.

At the point phi where a path step's solver stopped (docs/theory.md sections 4 and 6), the
Newton decrement g_T' H_T^+ g_T / 2 estimates the loss a converged solver would still gain; it
equals f(x) - min f for a quadratic with positive definite Hessian. The directions along which
the chart does not move theta (:func:`chart_null_directions`) are projected out first. Two ways
to compute it (docs/certification.md sections 2 and 4):

* ``"dense"``: the Hessian and its eigendecomposition, exact; for small P;
* ``"cg"``: conjugate gradients on H_T y = g_T with Hessian-vector products only; after k steps
  g_T' y_k / 2 is a lower bound of g_T' H_T^-1 g_T / 2 that grows monotonically with k when
  H_T is positive definite (CG is the Lanczos process, and g_T' y_k its Gauss quadrature of
  g_T' H_T^-1 g_T); it stops at non-positive curvature, at a relative residual of
  :data:`CG_RTOL` or after ``max_iter`` steps (default :data:`CG_MAX_ITER`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from weightsym.constraints import ConstrainedLoss, PairConstraint, ScaledObjective

RCOND = 1e-10
"""Tangent-Hessian eigenvalues with |lambda| <= RCOND * max |lambda| count as zero: they enter
neither the pseudo-inverse nor the negative-curvature count. CG stops at a direction p with
p'Hp <= RCOND * (largest |p'Hp| / p'p seen) * p'p."""
DENSE_LIMIT = 1500
"""``method="auto"`` is dense up to this many parameters, CG above."""
CG_MAX_ITER = 20
"""CG steps at most (Hessian-vector products), the default of ``max_iter``."""
CG_RTOL = 1e-6
"""CG stops when |g_T - H_T y_k| <= CG_RTOL |g_T|."""
METHODS = ("auto", "dense", "cg")


@dataclass(frozen=True)
class ExcessEstimate:
    """The Newton decrement of one point and what it rests on.

    Attributes:
        excess: g_T' H_T^+ g_T / 2 over the tangent space (the loss a Newton step would gain on
            the quadratic model); with negative curvature, the same sum over the positive
            eigenvalues only (dense) or the CG sum before the non-positive direction: a lower
            bound of the model's possible decrease.
        lower_bound: negative curvature was met (dense), or non-positive curvature (cg):
            ``excess`` is a lower bound and the point is not shown to be a minimum.
        negative: dense: the number of tangent-Hessian eigenvalues below
            -RCOND * max |lambda|; cg: 1 if a direction of negative curvature was met, else 0.
        min_curvature, max_curvature: dense: the smallest eigenvalue and the largest
            |eigenvalue|; cg: the smallest and largest |.| Rayleigh quotient p'Hp / p'p of its
            directions (bounds from inside the spectrum).
        grad_inf: max |g_T| (the gradient projected onto the tangent space, in the chart's
            coordinates phi).
        flat_grad: |g_T| on the eigenvalues counted as zero (where the quadratic model is flat
            and says nothing; a walk along a channel shows here); NaN for cg (not computed).
        projected: number of chart directions projected out.
        method: ``"dense"`` or ``"cg"``.
        iterations: CG steps taken (0 for dense).
        converged: dense: always; cg: the residual reached CG_RTOL.
        residual: |g_T - H_T y| / |g_T| for the step y the estimate rests on (0 if g_T = 0).
    """

    excess: float
    lower_bound: bool
    negative: int
    min_curvature: float
    max_curvature: float
    grad_inf: float
    flat_grad: float
    projected: int
    method: str = "dense"
    iterations: int = 0
    converged: bool = True
    residual: float = 0.0

    @property
    def is_minimum(self) -> bool:
        """No negative curvature was met in the tangent space."""
        return not self.lower_bound

    @property
    def is_bound(self) -> bool:
        """``excess`` is a lower bound only: curvature <= 0 met, or CG stopped short."""
        return self.lower_bound or not self.converged


def chart_null_directions(con: PairConstraint, phi: Tensor) -> Tensor:
    """Orthonormal chart directions along which theta(phi; d) does not move, (n, r).

    The chart (docs/theory.md section 4) sets v_m = z_l + d u / |u|, so theta is constant along
    the radial direction of u, the last ``con.c`` entries of phi: the loss has zero curvature
    there but, wherever its gradient in u is nonzero, nonzero cross terms
    (H (0, 0, u) = -(0, 0, g_u)), which makes the chart's Hessian indefinite. With the gauge,
    v_l = z_l / |z_l| and only the part of u orthogonal to v_l counts, with its length: the
    radial direction of z_l, v_l in the u block and the radial direction of that part.
    """
    n, c = con.n_rest, con.c
    z_l, u = phi[n : n + c], phi[n + c :]
    blocks: list[tuple[int, Tensor]] = []
    if con.gauge:
        v_l = z_l / z_l.norm()
        p = u - (u @ v_l) * v_l
        blocks = [(n, v_l), (n + c, v_l), (n + c, p)]
    else:
        blocks = [(n + c, u)]
    V = torch.zeros(con.num_params, len(blocks), dtype=phi.dtype)
    for j, (at, vec) in enumerate(blocks):
        V[at : at + c, j] = vec
    return torch.linalg.qr(V).Q


def excess_estimate(
    objective: Any, x: Tensor, method: str = "auto", *, max_iter: int = CG_MAX_ITER
) -> ExcessEstimate:
    """The Newton decrement g' H^+ g / 2 at ``x``, in the tangent space of the chart.

    For a quadratic f with positive definite Hessian it equals f(x) - min f. On a
    :class:`~weightsym.constraints.ConstrainedLoss` (or a
    :class:`~weightsym.constraints.ScaledObjective` of one, evaluated at the same point in phi)
    the directions of :func:`chart_null_directions` are projected out first: with B an
    orthonormal basis of their complement, g_T = B' g and H_T = B' H B. Dense: eigenvalues of
    H_T with |lambda| <= RCOND max |lambda| are dropped (pseudo-inverse); negative ones make the
    result a lower bound (``lower_bound``). CG: see the module docstring. Any other objective is
    taken as it is.

    Args:
        objective: with ``num_params`` and, for dense,
            ``value_grad_hessian(x) -> (value, gradient, Hessian)``; for cg,
            ``value_and_grad(x)`` and ``hvp(x, v)``.
        x: the point, a 1-D float tensor of length ``objective.num_params``.
        method: ``"dense"``, ``"cg"`` or ``"auto"`` (dense up to :data:`DENSE_LIMIT`
            parameters).
        max_iter: the most CG steps (Hessian-vector products); not used by dense.

    Returns:
        The :class:`ExcessEstimate`.

    Raises:
        TypeError: ``objective`` lacks what ``method`` needs, ``x`` is not a float tensor or
            ``method`` or ``max_iter`` has the wrong type.
        ValueError: ``x`` has the wrong shape or is not finite, ``method`` is unknown or
            ``max_iter`` < 1.
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, one of {METHODS}; got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int):
        raise TypeError(f"max_iter must be an int; got {type(max_iter).__name__}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1; got {max_iter}")
    if method == "auto":
        n = getattr(objective, "num_params", None)
        method = "cg" if isinstance(n, int) and n > DENSE_LIMIT else "dense"
    needs = ("value_grad_hessian",) if method == "dense" else ("value_and_grad", "hvp")
    for name in needs:
        if not callable(getattr(objective, name, None)):
            signature = "(x, v)" if name == "hvp" else "(x)"
            raise TypeError(
                f"objective must have {name}{signature} for method {method!r}; "
                f"got {type(objective).__name__}"
            )
    n = getattr(objective, "num_params", None)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"objective must have an int num_params; got {type(n).__name__}")
    _check_point(x, n)
    if isinstance(objective, ScaledObjective):
        objective, x = objective.obj, objective.to_phi(x)
    V = None
    if isinstance(objective, ConstrainedLoss):
        V = chart_null_directions(objective.con, x)
    return _dense(objective, x, V) if method == "dense" else _cg(objective, x, V, max_iter)


def step_excess(objective: Any, x: Tensor) -> tuple[float, bool]:
    """(excess, bound) of one path step: :func:`excess_estimate` with ``method="auto"``;
    ``bound`` says the number is a lower bound only (:attr:`ExcessEstimate.is_bound`).
    A point with a non-finite entry gives (NaN, True)."""
    if not bool(torch.isfinite(x).all()):
        return math.nan, True
    est = excess_estimate(objective, x)
    return est.excess, est.is_bound


def _dense(objective: Any, x: Tensor, V: Tensor | None) -> ExcessEstimate:
    _, g, H = objective.value_grad_hessian(x)
    projected, g_inf = 0, float(g.abs().max()) if g.numel() else 0.0
    if V is not None:
        projected = V.shape[1]
        B = torch.linalg.qr(V, mode="complete").Q[:, projected:]
        g, H = B.T @ g, B.T @ H @ B
        g_inf = float((B @ g).abs().max())
    lam, U = torch.linalg.eigh(0.5 * (H + H.T))
    top = float(lam.abs().max()) if lam.numel() else 0.0
    cut = RCOND * top
    c = U.T @ g
    pos, neg = lam > cut, lam < -cut
    flat = ~(pos | neg)
    g_norm = float(g.norm())
    return ExcessEstimate(
        excess=float(0.5 * (c[pos] ** 2 / lam[pos]).sum()),
        lower_bound=bool(neg.any()),
        negative=int(neg.sum()),
        min_curvature=float(lam.min()) if lam.numel() else 0.0,
        max_curvature=top,
        grad_inf=g_inf,
        flat_grad=float(c[flat].norm()),
        projected=projected,
        residual=float(c[~pos].norm()) / g_norm if g_norm > 0 else 0.0,
    )


def _cg(objective: Any, x: Tensor, V: Tensor | None, max_iter: int) -> ExcessEstimate:
    """Conjugate gradients on H_T y = g_T from y_0 = 0: g_T' y_k = sum_i alpha_i |r_i|^2
    (NaN where g_T is not finite)."""

    def project(v: Tensor) -> Tensor:
        return v if V is None else v - V @ (V.T @ v)

    g = project(objective.value_and_grad(x)[1])
    r, p = g.clone(), g.clone()
    rr = float(r @ r)
    g_norm = math.sqrt(rr)
    total, lo, hi = (0.0 if math.isfinite(rr) else math.nan), math.inf, 0.0
    k, lower, negative = 0, False, 0
    while math.sqrt(rr) > CG_RTOL * g_norm and k < max_iter:
        q = project(objective.hvp(x, project(p)))
        pp, curv = float(p @ p), float(p @ q)
        lo, hi = min(lo, curv / pp), max(hi, abs(curv) / pp)
        k += 1
        if not curv > RCOND * hi * pp:  # non-positive (or NaN) curvature: y_k is the last step
            lower, negative = True, int(curv < -RCOND * hi * pp)
            break
        alpha = rr / curv
        total += alpha * rr
        r = r - alpha * q
        rr, rr_old = float(r @ r), rr
        p = r + (rr / rr_old) * p
    return ExcessEstimate(
        excess=0.5 * total,
        lower_bound=lower,
        negative=negative,
        min_curvature=lo if k else 0.0,
        max_curvature=hi,
        grad_inf=float(g.abs().max()) if g.numel() else 0.0,
        flat_grad=math.nan,
        projected=0 if V is None else V.shape[1],
        method="cg",
        iterations=k,
        converged=math.sqrt(rr) <= CG_RTOL * g_norm,
        residual=math.sqrt(rr) / g_norm if g_norm > 0 else 0.0,
    )


def _check_point(x: Any, n: int) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor; got {type(x).__name__}")
    if x.dim() != 1 or x.shape[0] != n:
        raise ValueError(f"x must be a 1-D tensor of length {n}; got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite; it holds NaN or inf")
