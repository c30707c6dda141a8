"""The trust-region loop shared by ``"newton"`` and ``"newton-cg"``, and its subproblem protocol.

At the accepted point x with value f, gradient g and Hessian B, the quadratic model
m(s) = f + g's + s'Bs / 2 is trusted inside the ball |s| <= radius. A :class:`Subproblem`
returns a step s that (approximately) solves

    min_s  g's + s'Bs / 2   subject to   |s| <= radius,

with its predicted reduction pred = m(0) - m(s) > 0. The step is judged by
rho = (f(x) - f(x + s)) / pred: accepted when rho > ETA; the radius shrinks to
min(radius, |s|) / 4 when rho < 1/4 and doubles (up to ``max_radius``) when rho > 3/4 with s
on the boundary (Nocedal and Wright, *Numerical Optimization*, 2nd ed., Alg. 4.1; Conn, Gould
and Toint, *Trust-Region Methods*, 2000, ch. 6). The loop converges to grad_inf <= tol on
singular and indefinite Hessians; see docs/theory.md section 6, and docs/solvers.md for the
choices measured.

The subproblems: :mod:`weightsym.optimize.eigen` (exact, dense Hessian) and
:mod:`weightsym.optimize.steihaug` (truncated conjugate gradients, Hessian-vector products).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor

from weightsym.optimize.run import _finite, _positive, _positive_int, _Run

RADIUS = 1.0  # the initial trust radius
MAX_RADIUS = 1e4  # the trust radius never grows beyond this
_EPS = float(torch.finfo(torch.float64).eps)
_NOISE = 1e4 * _EPS  # |f - f_new| below this (relative) is measured by the trapezoid rule
_ETA = 1e-4  # accept a step when actual / predicted reduction exceeds this


class Subproblem(Protocol):
    """A trust-region subproblem solver, as :func:`_trust_region` drives it."""

    def accept(self, x: Tensor, f: float, g: Tensor) -> None:
        """Move the run to the accepted point (x, f, g), refreshing any curvature it keeps."""

    def step(self, g: Tensor, radius: float) -> tuple[Tensor, float, bool]:
        """(s, predicted reduction -(g's + s'Bs / 2), whether |s| = radius) at the current
        point, with |s| <= radius."""


def _forcing(gnorm: float) -> float:
    """The inexact-Newton forcing term eta = min(0.5, sqrt|g|) (Nocedal and Wright Sec. 7.1)."""
    return min(0.5, math.sqrt(gnorm))


def _actual_reduction(f: float, g: Tensor, f_new: float, g_new: Tensor, s: Tensor) -> float:
    """f - f_new; when that is at rounding level, the trapezoid rule -(g + g_new).s / 2.

    Near a minimum f - f_new ~ |g|^2 / lambda drowns in the rounding of f, which would make the
    ratio test random; the trapezoid rule is exact to O(|s|^3) and has no cancellation.
    """
    actual = f - f_new
    if abs(actual) <= _NOISE * max(abs(f), abs(f_new)):
        actual = -0.5 * float((g + g_new) @ s)
    return actual


def _trust_region(
    run: _Run, model: Subproblem, radius: float, max_radius: float, patience: int | None = None
) -> None:
    """The trust-region loop (Nocedal and Wright Alg. 4.1) around a subproblem ``model``.

    With ``patience`` the run stops (no progress) after that many accepted steps that did not
    halve the smallest grad_inf so far; steps that reached a growing trust radius with a good
    model (rho > 3/4 on the boundary), which only the radius held back, do not count. Near a
    nondegenerate minimizer a Newton step cuts grad_inf by far more than half, so this ends
    walks with no minimizer within reach (a channel to infinity, a kink of the loss).
    """
    _positive("radius", radius)
    _positive("max_radius", max_radius)
    if patience is not None:
        _positive_int("patience", patience)
    best, stale = run.grad_inf, 0
    while True:
        s, pred, on_boundary = model.step(run.g, radius)
        x_new = run.x + s
        if not pred > 0 or bool((x_new == run.x).all()):
            raise run.no_progress(
                f"the model predicts no decrease (step norm {float(s.norm()):.3g}, "
                f"trust radius {radius:.3g}): the gradient may be at its rounding floor"
            )
        f_new, g_new = run.value_and_grad(x_new)
        rho = -math.inf
        if _finite(f_new, g_new):
            rho = _actual_reduction(run.f, run.g, f_new, g_new, s) / pred
        step = float(s.norm())
        if rho > _ETA:
            model.accept(x_new, f_new, g_new)
            expanding = rho > 0.75 and on_boundary  # the radius, not the model, limits
            stale = 0 if run.grad_inf <= 0.5 * best else stale + (not expanding)
            best = min(best, run.grad_inf)
        if rho < 0.25:
            radius = 0.25 * min(radius, step)
        elif rho > 0.75 and on_boundary:
            radius = min(2.0 * radius, max_radius)
        run.end_iteration(radius=radius, rho=rho, step=step, accepted=rho > _ETA)
        if radius < _EPS * max(1.0, float(run.x.norm())):
            raise run.no_progress(f"the trust radius collapsed to {radius:.3g}")
        if patience is not None and stale >= patience:
            raise run.no_progress(
                f"{stale} accepted steps without halving grad_inf (best {best:.3g}, patience "
                f"{patience}) while the loss fell to {run.f:.6g}: no minimizer within reach"
            )
