"""Certificates for permutation paths: per-step excess estimates and per-path reruns.

A recorded path step is only as good as the point its solver stopped at (docs/theory.md
sections 4 and 6). Two checks say how good:

* :func:`excess_estimate`: the Newton decrement g' H^+ g / 2 at a step's end, an estimate of the
  loss still to be gained by converging (exact for a quadratic), computed in the tangent space of
  the chart's direction variable (see :func:`chart_null_directions`); where the tangent Hessian
  has negative curvature the point is no minimum and the estimate is a lower bound;
* :func:`certify_path`: the path recomputed with twice the per-step budget (and a tolerance
  :data:`TIGHTEN` times smaller) and with other rounding; its barrier, the barrier's position
  and the loss at the permutation point must agree to a stated tolerance, else they are results
  of where the solver stopped, not of the landscape.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from weightsym.excess import RCOND as RCOND
from weightsym.excess import ExcessEstimate as ExcessEstimate
from weightsym.excess import chart_null_directions as chart_null_directions
from weightsym.excess import excess_estimate as excess_estimate
from weightsym.losses import Loss
from weightsym.paths import PermutationPath, find_path

RTOL = 1e-2  # certify_path: relative agreement of the barrier and the permutation-point loss
TIGHTEN = 100.0
"""certify_path: the doubled-budget rerun also divides the grad_inf tolerance by this factor: a
step that stopped at the tolerance is where the solver stopped too, and a doubled budget alone
does not move it (docs/certification.md section 3)."""
T_ATOL = 1e-2  # certify_path: barrier positions this close in t count as the same
ROUNDING_SEED = 0  # certify_path: seed of the sample permutation of the rounding rerun


# -- the path certificate -------------------------------------------------------------------

RUNS = ("as given", "double budget", "other rounding")
RERUN_FOLDERS = ("double-budget", "other-rounding")
"""With ``out``, the reruns are written (and resumed) in ``out/certify/<name>``."""


@dataclass(frozen=True)
class RunValues:
    """What one run of the path gave (``label`` one of :data:`RUNS`)."""

    label: str
    barrier_loss: float
    barrier_t: float
    barrier_index: int
    permutation_point_loss: float
    not_converged: int
    wall_time: float
    channel_limit: float | None = None  # the loss a pair channel tends to (None: no channel)
    partner: str | None = None  # "p~j": steps sat on a channel of j onto p (None: none met)
    partner_limit: float | None = None  # the loss its limit step tends to (None: not taken)


@dataclass(frozen=True)
class PathCertificate:
    """The three runs of :func:`certify_path` and the verdict.

    Attributes:
        runs: one :class:`RunValues` per run of :data:`RUNS`.
        rtol, t_atol: the tolerances applied.
        barrier_loss, permutation_point_loss: the largest relative difference between two runs,
            |a - b| / max(|a|, |b|).
        barrier_t: the largest |t_a - t_b| between two runs' barrier positions.
        position_agrees: every two runs put the barrier at the same step, within ``t_atol`` in
            t, or each on a point the other's loss also has within ``rtol`` of its barrier (a
            plateau, such as the constant-loss output-weight shift).
        certified: all three quantities agree; ``reason`` says which did not, or why it holds.
    """

    runs: tuple[RunValues, ...]
    rtol: float
    t_atol: float
    barrier_loss: float
    barrier_t: float
    permutation_point_loss: float
    position_agrees: bool
    certified: bool
    reason: str

    @property
    def spread(self) -> float:
        """The largest relative difference between two runs over the published losses: the
        barrier, the loss at the permutation point and, where every run has one, the pair
        channel's and the partner channel's limit. Certified means ``spread <= rtol`` (and the
        positions agree); the spread itself says to how many digits the numbers held (0: to
        the last bit)."""
        limits = [_limit_spread(self.runs, f) or 0.0 for f in LIMITS]
        return max(self.barrier_loss, self.permutation_point_loss, *limits)


def certify_path(
    loss: Loss,
    theta: Tensor,
    *,
    rtol: float = RTOL,
    t_atol: float = T_ATOL,
    threads: int | None = None,
    **path_kwargs: Any,
) -> PathCertificate:
    """Compute the path three times and certify it when the numbers do not move.

    Runs :func:`weightsym.find_path` (``loss, theta, **path_kwargs``) as given; with twice the
    per-step budget (``max_iter``, or the solver's default budget, doubled; ``patience``
    doubled where set) and the tolerance ``tol`` divided by :data:`TIGHTEN`, so that steps
    that stopped at the tolerance are pushed further too; and with other rounding: the same
    problem with the samples in a seeded random order (which changes only the rounding of the
    mean over samples) and another torch thread count. The path is certified when its barrier,
    the barrier's position and the loss at the permutation point agree between every two runs
    (see :class:`PathCertificate`), and so does the loss a pair channel tends to where the runs
    follow one (docs/theory.md section 5.4).

    Args:
        loss: the objective, a :class:`weightsym.Loss`.
        theta: theta*, the minimum the path starts from.
        rtol: relative tolerance of the barrier and the permutation-point loss.
        t_atol: tolerance of the barrier position in t.
        threads: torch threads of the rounding rerun (default: 2 if the current count is 1,
            else 1).
        **path_kwargs: the settings of :func:`weightsym.find_path` (a ``config`` or its fields;
            ``progress`` applies to the first run only; with ``out`` the reruns are written
            to and resumed from ``out/certify/double-budget`` and ``out/certify/other-rounding``).

    Returns:
        The :class:`PathCertificate`.

    Raises:
        TypeError: ``loss`` is not a :class:`weightsym.Loss`, a tolerance is not a number, or
            a bad path setting.
        ValueError: a tolerance that is not positive, bad ``threads``, or a bad path setting.
    """
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a weightsym.Loss; got {type(loss).__name__}")
    for name, value in (("rtol", rtol), ("t_atol", t_atol)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
        if not 0 < value < float("inf"):
            raise ValueError(f"{name} must be positive and finite; got {value!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):  # fmt: skip
        raise ValueError(f"threads must be a positive int or None; got {threads!r}")
    out = path_kwargs.get("out")
    rerun = {name: None if out is None else Path(out) / "certify" / name for name in RERUN_FOLDERS}
    first, wall = _timed(find_path, loss, theta, **path_kwargs)
    cfg = first.config
    budget = cfg.max_iter if cfg.max_iter is not None else cfg.solver_options()["max_iter"]
    doubled = cfg.replace(
        max_iter=2 * budget,
        patience=None if cfg.patience is None else 2 * cfg.patience,
        tol=cfg.tol / TIGHTEN,
    )
    second, wall2 = _timed(find_path, loss, theta, doubled, out=rerun["double-budget"])
    before = torch.get_num_threads()
    torch.set_num_threads(threads or (2 if before == 1 else 1))
    try:
        third, wall3 = _timed(find_path, reordered(loss), theta, cfg, out=rerun["other-rounding"])
    finally:
        torch.set_num_threads(before)
    runs = (_values(RUNS[0], first, wall), _values(RUNS[1], second, wall2))
    runs += (_values(RUNS[2], third, wall3),)
    return _verdict(runs, (first, second, third), rtol, t_atol)


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[PermutationPath, float]:
    t0 = time.perf_counter()
    path = fn(*args, **kwargs)
    return path, time.perf_counter() - t0


def reordered(loss: Loss) -> Loss:
    """The same loss with its samples in a seeded random order (:data:`ROUNDING_SEED`): the
    problem of :func:`certify_path`'s other-rounding run."""
    gen = torch.Generator().manual_seed(ROUNDING_SEED)
    order = torch.randperm(loss.T, generator=gen)
    return Loss(loss.net, loss.X[order], loss.Y[order], kind=loss.kind)


def _values(label: str, path: PermutationPath, wall: float) -> RunValues:
    b, pc = path.barrier, path.partner_channel
    return RunValues(
        label=label,
        barrier_loss=float(b.loss),
        barrier_t=float(b.t),
        barrier_index=int(b.index),
        permutation_point_loss=float(path.permutation_point_loss),
        not_converged=int((~path.converged[: path.num_solved]).sum()),
        wall_time=wall,
        channel_limit=None if path.channel_limit is None else path.channel_limit.loss,
        partner=None if pc is None else "{}~{}".format(*pc.partner),
        partner_limit=None if pc is None or pc.limit is None else pc.limit.loss,
    )


def _rel(a: float, b: float) -> float:
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale > 0 else 0.0


def _same_place(
    a: RunValues, b: RunValues, pa: PermutationPath, pb: PermutationPath, rtol: float, t_atol: float
) -> bool:
    if a.barrier_index == b.barrier_index or abs(a.barrier_t - b.barrier_t) <= t_atol:
        return True
    if len(pa.loss) != len(pb.loss):
        return False
    high_a = float(pa.loss[b.barrier_index]) >= a.barrier_loss * (1 - rtol)
    return high_a and float(pb.loss[a.barrier_index]) >= b.barrier_loss * (1 - rtol)


LIMITS = ("channel_limit", "partner_limit")
"""The limits a run may publish: the pair channel's and a partner channel's."""


def _limit_spread(runs: Sequence[RunValues], field: str = "channel_limit") -> float | None:
    """The largest relative difference between two runs' limits ``field`` (one of
    :data:`LIMITS`); None unless every run has one."""
    limits = [getattr(r, field) for r in runs]
    if any(v is None for v in limits):
        return None
    return max(_rel(a, b) for i, a in enumerate(limits) for b in limits[i + 1 :])


def _channel_problems(runs: tuple[RunValues, ...], rtol: float) -> list[str]:
    """The loss a pair channel tends to (docs/theory.md section 5.4) and the loss a partner
    channel's limit step tends to (docs/certification.md section 1) are published numbers too:
    every run must meet the channel (the same p~j), or none, and agree on its limit within
    ``rtol``."""
    problems = []
    partners = {r.partner for r in runs}
    if len(partners) > 1:
        met = ", ".join(f"{r.label}: {r.partner or 'none'}" for r in runs)
        problems.append(f"the runs met different partner channels ({met})")
    for field, what in zip(LIMITS, ("a pair channel was followed", "a partner limit was taken")):
        worst = _limit_spread(runs, field)
        if worst is None:
            if any(getattr(r, field) is not None for r in runs) and len(partners) == 1:
                problems.append(f"{what} in some runs only")
        elif worst > rtol:
            problems.append(f"{field} differs by {worst:.3g} relative (> rtol {rtol:g})")
    return problems


def _verdict(
    runs: tuple[RunValues, ...],
    paths: Sequence[PermutationPath],
    rtol: float,
    t_atol: float,
) -> PathCertificate:
    pairs = [(i, j) for i in range(len(runs)) for j in range(i + 1, len(runs))]
    diff = {
        q: max(_rel(getattr(runs[i], q), getattr(runs[j], q)) for i, j in pairs)
        for q in ("barrier_loss", "permutation_point_loss")
    }
    dt = max(abs(runs[i].barrier_t - runs[j].barrier_t) for i, j in pairs)
    agrees = all(_same_place(runs[i], runs[j], paths[i], paths[j], rtol, t_atol) for i, j in pairs)
    problems = [
        f"{q} differs by {diff[q]:.3g} relative (> rtol {rtol:g})" for q in diff if diff[q] > rtol
    ]
    problems += _channel_problems(runs, rtol)
    if not agrees:
        problems.append(
            f"barrier_t differs by {dt:.3g} (> t_atol {t_atol:g}, at different steps and no "
            "plateau)"
        )
    if problems:
        worst = ", ".join(f"{r.label}: {r.barrier_loss:.6g} at t={r.barrier_t:.4g}" for r in runs)
        reason = "not certified: " + "; ".join(problems) + f" (barriers {worst})"
    else:
        reason = (
            f"certified: barrier, its position, the permutation-point loss (and any channel "
            f"or partner limit) agree in "
            f"{', '.join(RUNS)} (rtol {rtol:g}, t_atol {t_atol:g})"
        )
    return PathCertificate(
        runs=runs,
        rtol=rtol,
        t_atol=t_atol,
        barrier_loss=diff["barrier_loss"],
        barrier_t=dt,
        permutation_point_loss=diff["permutation_point_loss"],
        position_agrees=agrees,
        certified=not problems,
        reason=reason,
    )
