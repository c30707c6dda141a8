"""Trust-region Newton-CG (``"newton-cg"``): Steihaug-Toint truncated conjugate gradients.

The subproblem min g's + s'Bs / 2 subject to |s| <= radius (:mod:`weightsym.optimize.
trust_region`) is solved approximately with Hessian-vector products only, for networks with
tens of thousands of parameters. Conjugate gradients on Bs = -g start at s_0 = 0 with residual
r_0 = g and direction d_0 = -g, and take s_{j+1} = s_j + alpha_j d_j with
alpha_j = r_j'r_j / d_j'Bd_j. They stop

* at the forcing tolerance |r_j| <= eta |g|, eta = min(0.5, sqrt|g|) (inexact Newton,
  Nocedal and Wright Sec. 7.1): an interior step;
* on negative or zero curvature d_j'Bd_j <= 0, or when s_{j+1} would leave the ball: then
  s = s_j + tau d_j with tau >= 0 the root of |s_j + tau d_j| = radius, on the boundary.

From s_0 = 0 the iterates grow monotonically in norm while the model falls (Steihaug 1983;
Nocedal and Wright Thm. 7.3), so the boundary point is the best point of the CG path within the
region (Nocedal and Wright Alg. 7.2; Toint 1981; Conn, Gould and Toint ch. 7).
See docs/theory.md section 6.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from weightsym.optimize.run import _positive_int, _Run
from weightsym.optimize.trust_region import MAX_RADIUS, RADIUS, _forcing, _trust_region

CG_ITER_PER_PARAM = 20  # default cg_max_iter = CG_ITER_PER_PARAM * num_params (as scipy's)


class _CGModel:
    """Hessian-vector products only: Steihaug's truncated conjugate gradients."""

    def __init__(self, run: _Run, max_iter: int) -> None:
        self.run, self.max_iter = run, max_iter

    def accept(self, x: Tensor, f: float, g: Tensor) -> None:
        self.run.move(x, f, g)

    def step(self, g: Tensor, radius: float) -> tuple[Tensor, float, bool]:
        """Nocedal and Wright Alg. 7.2 with the forcing term min(0.5, sqrt|g|) |g|."""
        s, Bs = torch.zeros_like(g), torch.zeros_like(g)
        r, d = g.clone(), -g
        rr = float(r @ r)
        tol = _forcing(math.sqrt(rr)) * math.sqrt(rr)
        for _ in range(self.max_iter):
            Bd = self.run.hvp(d)
            dBd = float(d @ Bd)
            alpha = rr / dBd if dBd > 0 else math.inf
            if dBd <= 0 or float((s + alpha * d).norm()) >= radius:
                tau = _to_boundary(s, d, radius)
                s, Bs = s + tau * d, Bs + tau * Bd
                return s, -float(g @ s + 0.5 * (s @ Bs)), True
            s, Bs, r = s + alpha * d, Bs + alpha * Bd, r + alpha * Bd
            rr_next = float(r @ r)
            if math.sqrt(rr_next) <= tol:
                break
            d = -r + (rr_next / rr) * d
            rr = rr_next
        return s, -float(g @ s + 0.5 * (s @ Bs)), False


def _to_boundary(s: Tensor, d: Tensor, radius: float) -> float:
    """The tau >= 0 with |s + tau d| = radius (|s| <= radius)."""
    dd, sd, ss = float(d @ d), float(s @ d), float(s @ s)
    return (-sd + math.sqrt(max(sd * sd + dd * (radius**2 - ss), 0.0))) / dd


def _newton_cg(
    run: _Run,
    *,
    radius: float = RADIUS,
    max_radius: float = MAX_RADIUS,
    cg_max_iter: int | None = None,
    patience: int | None = None,
) -> None:
    """Trust-region Newton-CG (Steihaug) on Hessian-vector products."""
    n = run.x.numel()
    if cg_max_iter is None:
        cg_max_iter = CG_ITER_PER_PARAM * n
    cg_max_iter = _positive_int("cg_max_iter", cg_max_iter)
    _trust_region(run, _CGModel(run, cg_max_iter), radius, max_radius, patience)
