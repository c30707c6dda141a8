"""The nudged elastic band with a climbing image (docs/theory.md section 9).

A band of N images x_0 = x_a, x_1, ..., x_{N-1} = x_b (endpoints fixed) relaxes towards a
minimum-energy path (Henkelman, Uberuaga and Jonsson 2000). At interior image i with energy
E_i = L(x_i) and unit tangent tau_i, the NEB force is

    F_i = -(grad E_i - (grad E_i . tau_i) tau_i) + k (|x_{i+1} - x_i| - |x_i - x_{i-1}|) tau_i:

the true force perpendicular to the path and the spring force along it only. The tangent is the
improved one of Henkelman and Jonsson (2000): towards the higher neighbour where E is monotone
through i, else the two one-sided tangents weighted by max / min of |E_{i+-1} - E_i| towards the
higher neighbour. Once the band is roughly relaxed (max |F| <= CLIMB_START times its starting
value), the highest interior image climbs: its force is -grad E + 2 (grad E . tau) tau (the
true force with the component along the path reversed, no spring), so it converges to a saddle
point, a maximum along the path and a minimum across it. The index of that image is then fixed.

Optimiser: L-BFGS on the band as one vector with the NEB force as the negative gradient
(two-loop recursion, no line search: the NEB force is not the gradient of any function), as
"global L-BFGS" in Sheppard, Terrell and Henkelman (2008), with three safeguards: a direction
not along the force, or a pair without positive curvature, resets the memory (the next step is
steepest descent, F / rho); no image moves more than MAX_STEP times the mean image spacing per
iteration; a step to a point where the objective is NaN or inf is refused and the cap halved.
A band that grows longer than LENGTH_LIMIT times the straight line stops as "diverging" (a
climbing image can climb without bound where no saddle is near, e.g. with too few images).
rho, the scale of the force's Jacobian, comes from a power iteration on finite differences of
the force at the straight line and sets H_0 = I / rho. Converged when the largest force
component max_i |F_i|_inf <= tol. Deterministic.

Then, where the objective has the exact Hessian, the climbing image is refined by Newton's
method on the gradient (:func:`weightsym.baselines.refine_saddle`) and certified.
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import torch
from torch import Tensor

from weightsym.baselines.common import check_count, check_endpoints, check_positive, evaluate
from weightsym.baselines.linear import line_points
from weightsym.baselines.record import CurvePath, Fit
from weightsym.baselines.saddle import refine_saddle

DEFAULT_IMAGES = 21  # images, endpoints included
DEFAULT_RTOL = 1e-6  # tol=None: DEFAULT_RTOL * the largest gradient component on the line,
TOL_FLOOR = 1e-12  # but at least TOL_FLOOR (a line of zero loss has rounding-level gradients)
DEFAULT_MAX_ITER = 5000  # L-BFGS iterations on the band
CLIMB_START = 0.05  # climbing begins once max |F| <= CLIMB_START * its value on the line
MAX_STEP = 0.5  # no image moves more than MAX_STEP * the mean image spacing per iteration
MEMORY = 20  # L-BFGS pairs kept
POWER_ITERATIONS = 20  # power iteration for the curvature scale rho
POWER_STEP = 1e-5  # its finite-difference step, times the mean image spacing
RESTORE_FACTOR = 10.0  # max |F| above this times its best: back to the best band, halve the cap
LENGTH_LIMIT = 10.0  # "diverging" once the band is longer than this times the straight line


def tangents(band: Tensor, energies: Tensor) -> Tensor:
    """(N-2, P) unit tangents at the interior images (improved tangent, Henkelman and Jonsson
    2000)."""
    up, down = band[2:] - band[1:-1], band[1:-1] - band[:-2]
    e_next, e, e_prev = energies[2:], energies[1:-1], energies[:-2]
    d_next, d_prev = (e_next - e).abs(), (e_prev - e).abs()
    big, small = torch.maximum(d_next, d_prev), torch.minimum(d_next, d_prev)
    next_higher = (e_next > e_prev)[:, None]
    mixed = torch.where(
        next_higher,
        up * big[:, None] + down * small[:, None],
        up * small[:, None] + down * big[:, None],
    )
    rising = ((e_next > e) & (e > e_prev))[:, None]
    falling = ((e_next < e) & (e < e_prev))[:, None]
    tau = torch.where(rising, up, torch.where(falling, down, mixed))
    norm = torch.linalg.vector_norm(tau, dim=1, keepdim=True)
    # a flat stretch (all three energies equal) has mixed = 0: use the chord instead
    chord = band[2:] - band[:-2]
    tau = torch.where(norm > 0, tau, chord)
    return tau / torch.linalg.vector_norm(tau, dim=1, keepdim=True)


def neb_force(
    band: Tensor, energies: Tensor, grads: Tensor, spring: float, climbing: int | None
) -> Tensor:
    """(N-2, P) NEB forces on the interior images; ``climbing`` is a row of ``band`` or None.

    ``grads`` holds the gradients at the interior images, (N-2, P).
    """
    tau = tangents(band, energies)
    along = (grads * tau).sum(dim=1, keepdim=True)
    seg = torch.linalg.vector_norm(band[1:] - band[:-1], dim=1)
    force = -(grads - along * tau) + spring * (seg[1:] - seg[:-1])[:, None] * tau
    if climbing is not None:
        i = climbing - 1
        force[i] = -grads[i] + 2 * along[i] * tau[i]
    return force


class _Band:
    """The band's state: interior energies, gradients and NEB forces, with evaluations counted."""

    def __init__(self, objective: Any, band: Tensor, spring: float | None) -> None:
        self.objective, self.climbing = objective, None
        self.energies, grads = evaluate(objective, band)
        self.ngev = band.shape[0]
        self.spring = _default_spring(band, grads) if spring is None else spring
        self.band, self.grads, self.end_grads = band, grads[1:-1], grads[[0, -1]]
        self.force = neb_force(band, self.energies, self.grads, self.spring, None)
        self.gradient_scale = float(grads.abs().max())

    @property
    def interior(self) -> Tensor:
        return self.band[1:-1]

    def move(self, interior: Tensor) -> bool:
        """Move the interior images there; False (and no move) where the objective is not
        finite."""
        try:
            energies, grads = evaluate(self.objective, interior)
        except ValueError:
            return False
        finally:
            self.ngev += interior.shape[0]
        self.band = torch.cat([self.band[:1], interior, self.band[-1:]])
        self.grads = grads
        self.energies = torch.cat([self.energies[:1], energies, self.energies[-1:]])
        self.refresh()
        return True

    def snapshot(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.band, self.energies, self.grads, self.force

    def restore(self, state: tuple[Tensor, Tensor, Tensor, Tensor]) -> None:
        self.band, self.energies, self.grads, self.force = state

    def climb(self) -> None:
        """Let the highest interior image climb from now on."""
        self.climbing = 1 + int(torch.argmax(self.energies[1:-1]))
        self.refresh()

    def refresh(self) -> None:
        self.force = neb_force(self.band, self.energies, self.grads, self.spring, self.climbing)

    @property
    def residual(self) -> float:
        """The largest NEB force component."""
        return float(self.force.abs().max())

    @property
    def spacing(self) -> float:
        """The mean distance between neighbouring images."""
        return float(_image_norm(self.band[1:] - self.band[:-1]).mean())

    @property
    def length(self) -> float:
        return float(_image_norm(self.band[1:] - self.band[:-1]).sum())


def curvature_scale(band: _Band) -> float:
    """rho ~ the spectral radius of the NEB force's Jacobian: power iteration on finite
    differences (POWER_ITERATIONS steps of POWER_STEP times the image spacing); the band is left
    where it was."""
    saved = band.snapshot()
    x0, f0 = band.interior.clone(), band.force.clone()
    eps = POWER_STEP * band.spacing
    v = f0 / max(_norm(f0), 1e-300)
    rho = 0.0
    for _ in range(POWER_ITERATIONS):
        if not band.move(x0 + eps * v):
            break
        jv = (band.force - f0) / eps
        rho = _norm(jv)
        if rho == 0.0:
            break
        v = jv / rho
    band.restore(saved)
    return rho


class _Memory:
    """The L-BFGS two-loop recursion (Nocedal and Wright, Alg. 7.4) with H_0 = gamma I, on the
    band as one vector and the NEB force as the negative gradient."""

    def __init__(self, gamma0: float) -> None:
        self.S: list[Tensor] = []
        self.Y: list[Tensor] = []
        self.gamma0 = gamma0

    def reset(self) -> None:
        self.S.clear()
        self.Y.clear()

    def direction(self, force: Tensor) -> Tensor:
        q, alphas = force.clone(), []
        for s, y in zip(reversed(self.S), reversed(self.Y)):
            a = float((s * q).sum() / (y * s).sum())
            alphas.append(a)
            q = q - a * y
        gamma = float((self.S[-1] * self.Y[-1]).sum() / (self.Y[-1] ** 2).sum()) if self.S else 0.0
        r = (gamma if self.S else self.gamma0) * q
        for (s, y), a in zip(zip(self.S, self.Y), reversed(alphas)):
            r = r + (a - float((y * r).sum() / (y * s).sum())) * s
        return r

    def update(self, s: Tensor, y: Tensor) -> bool:
        """Keep the pair (step, change of -force) if it has positive curvature, else reset."""
        if float((s * y).sum()) <= 0:
            self.reset()
            return False
        self.S.append(s)
        self.Y.append(y)
        if len(self.S) > MEMORY:
            self.S.pop(0)
            self.Y.pop(0)
        return True


class _Relaxation(NamedTuple):
    converged: bool
    nit: int
    message: str
    diverged: bool = False


def _relax(band: _Band, tol: float, max_iter: int, climbing: bool) -> _Relaxation:
    """L-BFGS on the NEB force until max |F| <= tol (with the climbing image where asked)."""
    start, resets, it = band.residual, 0, 0
    length = band.length
    memory: _Memory | None = None
    rho = max_step = math.nan
    best = (band.residual, band.snapshot())
    for it in range(max_iter + 1):
        if climbing and band.climbing is None and band.residual <= max(CLIMB_START * start, tol):
            band.climb()
            memory = None  # the force field changed: forget the old pairs
            best = (band.residual, band.snapshot())
        if band.residual <= tol and (band.climbing is not None or not climbing):
            msg = f"converged: max force {band.residual:.3g} <= tol {tol:.3g}"
            return _Relaxation(True, it, f"{msg} after {it} iterations ({resets} resets)")
        if it == max_iter:
            break
        if math.isnan(rho):
            rho = max(curvature_scale(band), 1e-300)
            max_step = MAX_STEP * band.spacing
        memory = _Memory(1.0 / rho) if memory is None else memory
        force = band.force
        step = memory.direction(force)
        if float((step * force).sum()) <= 0:  # not along the force: steepest descent
            memory.reset()
            resets += 1
            step = force / rho
        step = step * (max_step / _image_norm(step).clamp(min=max_step))[:, None]
        if not band.move(band.interior + step):  # NaN or inf there: shorter steps
            memory.reset()
            max_step *= 0.5
            continue
        if not memory.update(step, force - band.force):
            resets += 1
        if band.residual < best[0]:
            best = (band.residual, band.snapshot())
        elif band.residual > RESTORE_FACTOR * best[0]:  # unstable: back to the best band
            band.restore(best[1])
            memory.reset()
            max_step *= 0.5
            resets += 1
        if band.length > LENGTH_LIMIT * length:
            return _Relaxation(
                False,
                it + 1,
                f"diverging: the band grew to {band.length / length:.3g} times the straight "
                f"line's length after {it + 1} iterations (max force {band.residual:.3g})",
                diverged=True,
            )
    phase = "" if band.climbing is not None or not climbing else " (no image climbed yet)"
    return _Relaxation(
        False,
        it,
        f"budget exhausted: max force {band.residual:.3g} > tol {tol:.3g} after {it} "
        f"iterations ({resets} resets){phase}",
    )


def neb_path(
    objective: Any,
    x_a: Tensor,
    x_b: Tensor,
    images: int = DEFAULT_IMAGES,
    climbing: bool = True,
    tol: float | None = None,
    max_iter: int = DEFAULT_MAX_ITER,
    spring: float | None = None,
    refine: bool | None = None,
) -> CurvePath:
    """The nudged elastic band from ``x_a`` to ``x_b`` (see the module docstring).

    Args:
        objective: anything with ``num_params`` and ``value_and_grad(x) -> (float, Tensor)``;
            with ``value_grad_hessian`` the climbing image can be refined and certified.
        x_a, x_b: the fixed endpoints, distinct finite 1-D float tensors.
        images: N >= 3 images, endpoints included; the band starts on the straight line.
        climbing: let the highest image climb to the saddle once the band is roughly relaxed.
        tol: converged when the largest NEB force component <= tol; default
            :data:`DEFAULT_RTOL` times the largest gradient component on the straight line, or
            :data:`TOL_FLOOR` if that is larger.
        max_iter: L-BFGS iterations on the band at most.
        spring: the spring constant k; default: the largest secant curvature along the
            straight line, max_i |g_{i+1} - g_i| / |x_{i+1} - x_i| (1 where that is 0).
        refine: refine the climbing image with :func:`refine_saddle` (skipped when the band
            diverged); default (None): when climbing and the objective has
            ``value_grad_hessian``.

    Returns:
        A :class:`CurvePath` of kind ``"neb"`` with ``climbing``, ``refined`` and ``saddle``;
        ``converged`` is True when the force tolerance and (where run) the refinement's
        tolerance were met.

    Raises:
        TypeError: ``objective`` lacks the protocol (or ``value_grad_hessian`` with
            ``refine=True``); ``x_a`` / ``x_b`` not float.
        ValueError: bad shapes, NaN or inf, coinciding endpoints, ``images`` < 3, a bad
            ``tol``, ``max_iter`` or ``spring``, or ``refine=True`` without ``climbing``.
    """
    x_a, x_b = check_endpoints(objective, x_a, x_b)
    images = check_count("images", images, minimum=3)
    max_iter = check_count("max_iter", max_iter, minimum=0)
    if not isinstance(climbing, bool):
        raise TypeError(f"climbing must be a bool; got {type(climbing).__name__}")
    if spring is not None:
        spring = check_positive("spring", spring)
    if tol is not None:
        tol = check_positive("tol", tol)
    refine = _resolve_refine(refine, climbing, objective)
    t0 = time.perf_counter()
    s = torch.linspace(0.0, 1.0, images, dtype=torch.float64)
    band = _Band(objective, line_points(x_a, x_b, s), spring)
    if tol is None:
        tol = max(DEFAULT_RTOL * band.gradient_scale, TOL_FLOOR)
    relax = _relax(band, tol, max_iter, climbing)
    wall = time.perf_counter() - t0
    fit = Fit("lbfgs", tol, band.residual, relax.nit, band.ngev, wall, math.nan)
    refined = certificate = None
    message, converged = f"NEB (spring {band.spring:.3g}): {relax.message}", relax.converged
    if refine and not relax.diverged:
        i = band.climbing if band.climbing is not None else 1 + int(band.energies[1:-1].argmax())
        refined, certificate = refine_saddle(objective, band.band[i])
        converged = converged and refined.success
        message += f"; saddle refinement: {refined.message}; index {certificate.negative}"
    grads = torch.cat([band.end_grads[:1], band.grads, band.end_grads[1:]])
    return CurvePath.build(
        "neb",
        band.band,
        band.energies,
        grads,
        converged=converged,
        message=message,
        fit=fit,
        climbing=band.climbing,
        refined=refined,
        saddle=certificate,
    )


def _resolve_refine(refine: bool | None, climbing: bool, objective: Any) -> bool:
    has_hessian = callable(getattr(objective, "value_grad_hessian", None))
    if refine is None:
        return climbing and has_hessian
    if not isinstance(refine, bool):
        raise TypeError(f"refine must be a bool or None; got {type(refine).__name__}")
    if refine and not climbing:
        raise ValueError("refine=True needs climbing=True (it refines the climbing image)")
    if refine and not has_hessian:
        raise TypeError(
            f"refine=True needs objective.value_grad_hessian; {type(objective).__name__} has none"
        )
    return refine


def _default_spring(band: Tensor, grads: Tensor) -> float:
    dg = torch.linalg.vector_norm(grads[1:] - grads[:-1], dim=1)
    dx = torch.linalg.vector_norm(band[1:] - band[:-1], dim=1)
    k = float((dg / dx).max())
    return k if k > 0 else 1.0


def _norm(x: Tensor) -> float:
    return float(torch.linalg.vector_norm(x))


def _image_norm(x: Tensor) -> Tensor:
    return torch.linalg.vector_norm(x, dim=1)
