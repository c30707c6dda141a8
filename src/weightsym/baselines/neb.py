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

Optimiser: FIRE 2.0 (Bitzek et al. 2006; Guenole et al. 2020) on all interior images at once,
semi-implicit Euler, unit masses; each image moves at most MAX_STEP times the initial image
spacing per iteration, and the first step at most STEP0 times it (which sets the initial time
step dt_0). Converged when the largest force component max_i |F_i|_inf <= tol. Deterministic.

Then, where the objective has the exact Hessian, the climbing image is refined by Newton's
method on the gradient (:func:`weightsym.baselines.refine_saddle`) and certified.
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import torch
from torch import Tensor

from weightsym.baselines.common import check_count, check_endpoints, check_tolerance, evaluate
from weightsym.baselines.linear import line_points
from weightsym.baselines.record import CurvePath, Fit
from weightsym.baselines.saddle import refine_saddle

DEFAULT_IMAGES = 21  # images, endpoints included
DEFAULT_RTOL = 1e-7  # tol=None: tol = DEFAULT_RTOL * the largest gradient component on the line
DEFAULT_MAX_ITER = 20_000  # FIRE iterations
CLIMB_START = 0.05  # climbing begins once max |F| <= CLIMB_START * its value on the line
STEP0 = 0.1  # the first FIRE step moves an image by STEP0 * the initial image spacing
MAX_STEP = 0.5  # no image moves more than MAX_STEP * the initial image spacing per iteration
# FIRE 2.0 (Guenole et al. 2020, Table 1)
FIRE_DELAY, FIRE_INC, FIRE_DEC = 5, 1.1, 0.5
FIRE_ALPHA, FIRE_F_ALPHA = 0.1, 0.99
FIRE_DT_MAX, FIRE_DT_MIN = 10.0, 0.02  # times dt_0


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
    """The band's evaluation: interior energies, gradients and NEB forces, counted."""

    def __init__(self, objective: Any, band: Tensor, spring: float | None) -> None:
        self.objective, self.ends = objective, (band[0], band[-1])
        self.climbing: int | None = None
        self.ngev = 0
        self.energies, grads = evaluate(objective, band)
        self.ngev += band.shape[0]
        self.spring = _default_spring(band, grads) if spring is None else spring
        self.band, self.grads, self.end_grads = band, grads[1:-1], grads[[0, -1]]
        self.force = neb_force(band, self.energies, self.grads, self.spring, None)
        self.gradient_scale = float(grads.abs().max())

    def move(self, interior: Tensor) -> None:
        band = torch.cat([self.ends[0][None], interior, self.ends[1][None]])
        energies, grads = evaluate(self.objective, interior)
        self.ngev += interior.shape[0]
        self.band, self.grads = band, grads
        self.energies = torch.cat([self.energies[:1], energies, self.energies[-1:]])
        self.refresh()

    def climb(self) -> None:
        self.climbing = 1 + int(torch.argmax(self.energies[1:-1]))
        self.refresh()

    def refresh(self) -> None:
        self.force = neb_force(self.band, self.energies, self.grads, self.spring, self.climbing)

    @property
    def residual(self) -> float:
        return float(self.force.abs().max())


class _FireResult(NamedTuple):
    converged: bool
    nit: int
    message: str


def _fire(band: _Band, tol: float, max_iter: int, climbing: bool) -> _FireResult:
    """Relax ``band`` by FIRE 2.0 until max |F| <= tol (with the climbing image where asked)."""
    start = band.residual
    spacing = float(torch.linalg.vector_norm(band.band[1] - band.band[0]))
    max_step = MAX_STEP * spacing
    dt0 = math.sqrt(STEP0 * spacing / max(_image_norm(band.force).max(), 1e-300))
    x, v = band.band[1:-1].clone(), torch.zeros_like(band.band[1:-1])
    dt, alpha, n_pos = dt0, FIRE_ALPHA, 0
    for it in range(max_iter + 1):
        if climbing and band.climbing is None and band.residual <= CLIMB_START * start:
            band.climb()
            v.zero_()
        if band.residual <= tol and (band.climbing is not None or not climbing):
            return _FireResult(
                True, it, f"converged: max force {band.residual:.3g} <= tol {tol:.3g}"
            )
        if it == max_iter:
            break
        F = band.force
        if float((F * v).sum()) > 0:
            n_pos += 1
            if n_pos > FIRE_DELAY:
                dt, alpha = min(dt * FIRE_INC, FIRE_DT_MAX * dt0), alpha * FIRE_F_ALPHA
        else:
            n_pos = 0
            if it >= FIRE_DELAY:
                dt, alpha = max(dt * FIRE_DEC, FIRE_DT_MIN * dt0), FIRE_ALPHA
            x = x - 0.5 * dt * v
            v = torch.zeros_like(v)
        v = v + dt * F
        v = (1 - alpha) * v + alpha * _norm(v) / max(_norm(F), 1e-300) * F
        dx = dt * v
        dx = dx * (max_step / _image_norm(dx).clamp(min=max_step))[:, None]
        x = x + dx
        band.move(x)
    phase = "" if band.climbing is not None or not climbing else " (the image never climbed)"
    return _FireResult(
        False,
        max_iter,
        f"budget exhausted: max force {band.residual:.3g} > tol {tol:.3g} after {max_iter} "
        f"FIRE iterations{phase}",
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
            :data:`DEFAULT_RTOL` times the largest gradient component on the straight line.
        max_iter: FIRE iterations at most.
        spring: the spring constant k; default: the largest secant curvature along the
            straight line, max_i |g_{i+1} - g_i| / |x_{i+1} - x_i| (1 where that is 0).
        refine: refine the climbing image with :func:`refine_saddle`; default (None): when
            climbing and the objective has ``value_grad_hessian``.

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
        spring = check_tolerance("spring", spring)
    refine = _resolve_refine(refine, climbing, objective)
    t0 = time.perf_counter()
    s = torch.linspace(0.0, 1.0, images, dtype=torch.float64)
    band = _Band(objective, line_points(x_a, x_b, s), spring)
    tol = DEFAULT_RTOL * band.gradient_scale if tol is None else check_tolerance("tol", tol)
    fire = _fire(band, max(tol, 0.0), max_iter, climbing)
    wall = time.perf_counter() - t0
    fit = Fit("fire", tol, band.residual, fire.nit, band.ngev, wall, math.nan)
    refined = certificate = None
    message, converged = f"NEB (spring {band.spring:.3g}): {fire.message}", fire.converged
    if refine:
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
