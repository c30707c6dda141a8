"""One step of the permutation path: predict a start, minimize at fixed d, diagnose.

At each distance d of the schedule the loss is minimized over the chart of the constraint
|vartheta_m - vartheta_l| = d (:class:`weightsym.constraints.ConstrainedLoss`), from the
extrapolated solution or the previous one, whichever is lower (paper Sec. 4.1; docs/theory.md
section 4). A step that does not reach the tolerance says why (docs/theory.md sections 5, 6).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch
from torch import Tensor

from weightsym.channels import ChannelVariables
from weightsym.constraints import ConstrainedLoss, PairConstraint, ScaledObjective
from weightsym.excess import step_excess
from weightsym.losses import Loss
from weightsym.optimize import OptimizeResult, minimize
from weightsym.paths.config import TRUST_REGION, PathConfig
from weightsym.paths.records import StepOutcome
from weightsym.paths.reduced import SolverChart, StepVariables

PREDICTOR_ORDER = 2  # polynomial extrapolation in log d through the last 3 solutions


def predict(
    phis: list[Tensor],
    ds: list[float],
    d_new: float,
    con: PairConstraint,
    channel: ChannelVariables | None = None,
) -> Tensor:
    """Extrapolate the solution to ``d_new``: a Lagrange polynomial in log d through the last
    (up to PREDICTOR_ORDER + 1) solutions; the warm start when there are too few. With
    ``channel`` the pair's output vectors are extrapolated in channel coordinates (sigma,
    kappa), which stay finite along a channel (docs/theory.md section 5.4)."""
    n = min(PREDICTOR_ORDER + 1, len(phis))
    if n < 2 or d_new <= 0 or min(ds[-n:]) <= 0:
        return phis[-1]
    s = [math.log(x) for x in ds[-n:]]
    s_new = math.log(d_new)
    out = torch.zeros_like(phis[-1])
    for j in range(n):
        w = math.prod((s_new - s[i]) / (s[j] - s[i]) for i in range(n) if i != j)
        k = len(phis) - n + j
        out += w * (phis[k] if channel is None else channel.to_x(phis[k], ds[k]))
    return con.normalize(out if channel is None else channel.to_phi(out, d_new))


POLISH_ROUNDS = 3
MERGE_BUDGET_FACTOR = 5


def solve_step(
    loss: Loss,
    con: PairConstraint,
    d: float,
    phi0: Tensor,
    prev: Tensor,
    cfg: PathConfig,
    merge: bool = False,
    chart: SolverChart | None = None,
) -> tuple[Tensor, StepOutcome]:
    """Minimize at distance ``d`` from ``phi0`` (the prediction) or ``prev`` (the last
    solution) if that is lower; ``merge``: the step d = 0, with a larger budget and no patience.

    ``chart``: the variables the solver runs in (``cfg.varpro``, ``cfg.whiten``), built once
    per path (default: built here, with theta(prev; d) as the point whitening holds fixed).
    The outcome's loss, grad_inf and convergence are those of the original chart either way.

    Returns:
        The solution in chart coordinates phi and the :class:`StepOutcome`.
    """
    obj = ConstrainedLoss(loss, con, d)
    start = phi0
    if phi0 is not prev and obj(phi0) > obj(prev):
        start = prev
    options = cfg.solver_options()
    if merge:  # d = 0 can be far from the last d > 0 (after an escape): a larger budget,
        # and no patience: the permutation point is a critical point of the smaller network
        options["max_iter"] = MERGE_BUDGET_FACTOR * options["max_iter"]
        options.pop("patience", None)
    if chart is None:
        chart = SolverChart(loss, con, con.embed(prev, d), cfg)
    t0 = time.perf_counter()
    phi, res, grad_inf, counts = _minimize(obj, chart.at(d), start, prev, options, cfg.tol)
    nit, ngev, nhev, nhvp = counts
    wall = time.perf_counter() - t0
    converged = grad_inf <= cfg.tol
    message = str(res.message)
    if converged and not res.success:  # met in phi, though not in the scaled variables
        message = f"converged: grad_inf {grad_inf:.3g} <= tol {cfg.tol:.3g} ({message})"
    elif not converged:
        message += _diagnose(loss, con.embed(start, d), con.embed(phi, d))
    excess, excess_bound = step_excess(obj, phi)  # docs/certification.md section 4
    outcome = StepOutcome(
        loss=float(res.fun),
        grad_inf=grad_inf,
        nit=nit,
        ngev=ngev,
        nhev=nhev,
        nhvp=nhvp,
        converged=converged,
        message=message,
        predicted=start is phi0 and phi0 is not prev,
        wall_time=wall,
        excess=excess,
        excess_bound=excess_bound,
    )
    return phi, outcome


def _minimize(
    obj: ConstrainedLoss,
    step: StepVariables,
    start: Tensor,
    prev: Tensor,
    options: dict[str, Any],
    tol: float,
) -> tuple[Tensor, OptimizeResult, float, tuple[int, int, int, int]]:
    """Minimize ``step.objective`` from ``start`` in the solver's variables x, renormalise u
    and polish (docs/theory.md section 4.4).

    Returns:
        phi (original chart), the last solver result (its ``fun`` the loss of ``obj`` at phi
        where x is not phi), grad_inf of ``obj`` at phi, and (nit, ngev, nhev, nhvp) summed.
    """
    x_start = step.to_x(start)
    if options["method"] in TRUST_REGION:  # rescaled, and started at the predicted move
        scaled = ScaledObjective.for_start(step.objective, x_start)
        # a local start: the predicted move, else the smallest radius. Larger starts where the
        # prediction was rejected (order 1, the last step's move, the rejected move) sent merge
        # steps on ReLU toy pairs to other basins (merged loss 1.1 instead of 0.024) and
        # softplus steps onto spikes (barrier 0.07 instead of 5e-5)
        move = float(scaled.to_psi(x_start - step.to_x(prev)).norm())
        options.setdefault("radius", max(2.0 * move, 1e-8))
    else:  # the paper's gradient descent and L-BFGS-B run on x itself
        scaled = ScaledObjective(step.objective, torch.ones_like(x_start))
    x = scaled.to_psi(x_start)
    nit = ngev = nhev = nhvp = 0
    for _ in range(POLISH_ROUNDS):  # the chart's |u| drifts: renormalise, and polish if needed
        res = minimize(scaled, x, tol=tol, **options)
        nit, ngev, nhev, nhvp = nit + res.nit, ngev + res.ngev, nhev + res.nhev, nhvp + res.nhvp
        phi = obj.con.normalize(step.to_phi(scaled.to_phi(res.x)))
        value, g = obj.value_and_grad(phi)
        grad_inf = float(g.abs().max())
        if grad_inf <= tol or not res.success:
            break
        x = scaled.to_psi(step.to_x(phi))
    if not step.plain:  # the loss in the original chart, as grad_inf
        res = dataclasses.replace(res, fun=value)
    return phi, res, grad_inf, (nit, ngev, nhev, nhvp)


KINK_RTOL = 1e-9  # |a| <= KINK_RTOL * |vartheta| |x~|: a sample sits on a kink of g


def _diagnose(loss: Loss, before: Tensor, after: Tensor) -> str:
    """Why a step may not converge: a kink of a non-smooth g, or weights that keep growing."""
    net = loss.net
    notes = []
    if net.activation in ("relu", "leaky_relu"):
        pre, h_aug = net.activations(after, loss.X)
        on_kink = 0
        for k in net.hidden_layers:
            scale = h_aug[k - 1].norm(dim=1)[:, None] * net.block(after, k).norm(dim=1)[None, :]
            on_kink += int((pre[k - 1].abs() <= KINK_RTOL * scale).sum())
        if on_kink:
            notes.append(
                f"{on_kink} pre-activation(s) sit on a kink of {net.activation} (|a| <= "
                f"{KINK_RTOL:g} |vartheta||x|): the loss is not differentiable there, so "
                "grad_inf may not fall below the jump of the gradient"
            )
    grew = float(after.abs().max()) / max(float(before.abs().max()), 1e-300)
    if grew > 1.01 and loss(after) < loss(before):
        notes.append(
            f"the largest weight grew {grew:.4g}x during the step while the loss fell: "
            "possibly a channel to infinity (no finite minimizer at this d)"
        )
    return "".join(f"; {n}" for n in notes)
