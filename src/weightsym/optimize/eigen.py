"""Trust-region Newton on the dense Hessian (``"newton"``): the subproblem solved exactly in the
Hessian's eigenbasis.

With B = Q diag(lam) Q' (lam ascending), g^ = Q'g and s = Q s^, the subproblem of
:mod:`weightsym.optimize.trust_region` separates:

    min_s^  g^'s^ + sum_i lam_i s^_i^2 / 2   subject to   |s^| <= radius.

s^ solves it iff, for some mu >= 0 (Nocedal and Wright Thm. 4.1; More and Sorensen 1983),

    (lam_i + mu) s^_i = -g^_i,   lam_i + mu >= 0,   mu (radius - |s^|) = 0.

Either B is positive semidefinite and the Newton step s^_i = -g^_i / lam_i lies inside
(mu = 0), or |s^(mu)| = radius with s^_i(mu) = -g^_i / (lam_i + mu): the secular equation
psi(mu) = 1 / |s^(mu)| - 1 / radius = 0 on mu > max(0, -lam_1), solved by safeguarded Newton
iteration (psi is increasing and concave there; Nocedal and Wright Alg. 4.3; Conn, Gould and
Toint ch. 7). In the hard case (g^_1 = 0 with lam_1 < 0 and |s^(-lam_1)| < radius) the solution
is s^(-lam_1) + tau e_1 with tau chosen so that |s^| = radius.

Before solving, :func:`_flat_directions` sets aside what does not matter to this step: negative
curvature weaker than eps_H = sqrt(max|lam| |g|) (approximate second-order stationarity) counts
as flat, and the gradient along the flattest directions is dropped while its norm stays below
the inexact-Newton forcing tolerance eta |g|, eta = min(0.5, sqrt|g|) (Nocedal and Wright
Sec. 7.1). Both only make the model more cautious along the directions it keeps, so the step
never increases the unmodified model. See docs/theory.md section 6, and docs/solvers.md for
what was measured.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from weightsym.optimize.run import _Run
from weightsym.optimize.trust_region import (
    _EPS,
    MAX_RADIUS,
    RADIUS,
    _forcing,
    _trust_region,
)

_ZERO_EIG = 100 * _EPS  # lambda >= -_ZERO_EIG * max|lambda| is never treated as negative


class _DenseModel:
    """Exact Hessian, eigendecomposed once per accepted point.

    The Hessian is computed only where it will be used: not at an accepted point that already
    meets the tolerance (the run stops there), and at the start from :meth:`_Run.start`.
    """

    def __init__(self, run: _Run) -> None:
        self.run = run
        if run.H0 is None:
            self.accept(run.x)
        else:
            self._factor(run.H0)

    def accept(self, x: Tensor, f: float | None = None, g: Tensor | None = None) -> None:
        run = self.run
        if f is not None and g is not None and float(g.abs().max()) <= run.tol:
            run.move(x, f, g)  # converged: the stop test ends the run before another step
            return
        f, g, H = run.value_grad_hessian(x)
        run.move(x, f, g, H)
        self._factor(H)

    def _factor(self, H: Tensor) -> None:
        lam, Q = torch.linalg.eigh(0.5 * (H + H.T))
        self.lam, self.Q = lam.numpy(), Q.numpy()

    def step(self, g: Tensor, radius: float) -> tuple[Tensor, float, bool]:
        s_hat, pred, on_boundary = _tr_eigen(self.lam, self.Q.T @ g.numpy(), radius)
        return torch.from_numpy(self.Q @ s_hat), pred, on_boundary


@np.errstate(over="ignore", divide="ignore", invalid="ignore")  # inf next to a pole, as torch
def _tr_eigen(lam: np.ndarray, g: np.ndarray, radius: float) -> tuple[np.ndarray, float, bool]:
    """Solve min g.s + s.diag(lam).s / 2 subject to |s| <= radius, in the eigenbasis.

    ``lam`` ascending, ``g`` the gradient in the eigenbasis. The solve is exact (the interior
    Newton step, or the boundary solution of the secular equation, hard case included) for the
    model of :func:`_flat_directions`. Returns (s, reduction predicted by the unmodified model,
    whether s is on the boundary).
    """
    flat_lam, flat = _flat_directions(lam, g)
    g_used = np.where(flat, 0.0, g)
    zero = flat_lam == 0
    lmin = float(flat_lam[0])
    if lmin >= 0 and not bool((zero & (g_used != 0)).any()):
        s = np.where(zero, 0.0, -g_used / np.where(zero, 1.0, flat_lam))
        if _norm(s) <= radius:
            return s, _predicted(lam, g, s), False
    lo = max(0.0, -lmin)
    mu = _secular(flat_lam, g_used, radius, lo)
    s = _shifted_step(flat_lam, g_used, mu)
    gap = radius**2 - float(s @ s)
    if lmin < 0 and gap > 0:  # hard case, or nearly (g[0] at rounding level, mu at its
        # resolution): with negative curvature the solution is on the boundary, so fill up
        # along eigenvector 0, in the direction s[0] already has (or -g[0]'s)
        sign = float(s[0]) if s[0] != 0 else (-float(g[0]) if g[0] != 0 else 1.0)
        s[0] = math.copysign(math.sqrt(float(s[0]) ** 2 + gap), sign)
    norm = _norm(s)
    if norm > radius:  # lam + mu lost digits next to a pole: back onto the sphere
        s = s * (radius / norm)
    return s, _predicted(lam, g, s), True


def _norm(x: np.ndarray) -> float:
    return math.sqrt(float(x @ x))


def _flat_directions(lam: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lam with insignificant negative curvature clipped to 0, mask of gradient to set aside).

    Negative curvature counts once |lambda| > sqrt(max|lambda| * |g|), the usual threshold of
    approximate second-order stationarity (eps_H = sqrt(L_H eps_g), with the Hessian's Lipschitz
    constant L_H estimated by max|lambda| on weights of order one); weaker negative curvature is
    treated as flat. The flattest directions (smallest clipped |lambda|) are then set aside while
    their gradient stays below eta |g| (eta the forcing term).
    """
    gnorm, scale = _norm(g), float(np.abs(lam).max())
    cut = max(math.sqrt(scale * gnorm), _ZERO_EIG * scale)
    lam = np.where(lam > -cut, np.maximum(lam, 0.0), lam)
    order = _flattest_first(lam)
    within = np.cumsum(g[order] ** 2) <= (_forcing(gnorm) * gnorm) ** 2
    within &= np.logical_and.accumulate(lam[order] >= 0)
    mask = np.zeros(lam.shape, dtype=bool)
    mask[order[within]] = True
    return lam, mask


def _flattest_first(lam: np.ndarray) -> np.ndarray:
    """The indices of ``lam`` by increasing |lambda|, ties in the order of ``torch.argsort``.

    The tie order decides which of several equally flat directions (mostly the clipped zeros)
    is set aside when the forcing tolerance is reached inside the tie. torch's default sort is
    not stable: ties come in index order up to 16 entries and in an order fixed by the sort's
    implementation (introsort) beyond. The measured behaviour of the solver and of the paths
    rests on this order; docs/solvers.md records what an explicit rule changes.
    """
    return torch.argsort(torch.from_numpy(np.abs(lam))).numpy()


def _predicted(lam: np.ndarray, g: np.ndarray, s: np.ndarray) -> float:
    return -float(g @ s + 0.5 * (lam * s * s).sum())


def _shifted_step(lam: np.ndarray, g: np.ndarray, mu: float) -> np.ndarray:
    """s(mu) = -g / (lam + mu), with 0 where g = 0 or lam + mu <= 0 (there g must be 0)."""
    den = lam + mu
    live = (den > 0) & (g != 0)
    return np.where(live, -g / np.where(live, den, 1.0), 0.0)


def _secular(lam: np.ndarray, g: np.ndarray, radius: float, lo: float) -> float:
    """The mu >= lo with |s(mu)| = radius (More-Sorensen), or lo when |s(lo)| <= radius.

    Newton's method on psi(mu) = 1/|s(mu)| - 1/radius, which is increasing and concave, kept in
    a bracket [lo, hi] that shrinks by bisection whenever a Newton step leaves it; hi always
    satisfies |s(hi)| <= radius.
    """
    a, b = lo, lo + _norm(g) / radius
    mu = lo
    for _ in range(200):
        den = lam + mu
        s = _shifted_step(lam, g, mu)
        pole = bool(((den <= 0) & (g != 0)).any())
        norm = math.inf if pole else _norm(s)
        if mu == lo and norm <= radius:
            return lo
        if abs(norm - radius) <= 1e-12 * radius:
            return mu
        if b - a <= 4 * _EPS * b:  # mu at its resolution: take the side inside the region
            return b
        if norm > radius:
            a = mu
        else:
            b = mu
        dpsi = float((s * s / np.where(den > 0, den, 1.0)).sum()) / (norm * norm * norm)
        mu_next = mu - (1.0 / norm - 1.0 / radius) / dpsi if dpsi > 0 else a
        mu = mu_next if a < mu_next < b else 0.5 * (a + b)
    return b


def _newton(
    run: _Run,
    *,
    radius: float = RADIUS,
    max_radius: float = MAX_RADIUS,
    patience: int | None = None,
) -> None:
    """Trust-region Newton on the exact dense Hessian (subproblem solved exactly)."""
    _trust_region(run, _DenseModel(run), radius, max_radius, patience)
