"""The permutation path between partner minima (paper Sec. 4.1; docs/theory.md section 4).

From a minimum theta*, merge neurons l and m of hidden layer k: decrease d = |v_m - v_l| on a
log-spaced schedule d_0 > ... > d_S = ratio * d_0, then d = 0, re-minimizing the loss over
everything else at each d (warm-started, optionally with a predictor); at d = 0 (t = 1/4) move
the pair's output weights to their mean at constant loss (Fig. 4, t = 1/4 .. 1/2, the
permutation point of Def. 4). The mirror gamma(t) = sigma_{l<->m}(gamma(1 - t)) completes it.

With ``out=`` every step is written to a results folder as it goes (docs/theory.md section 11),
so that a killed run resumes from its last finished step and ends with identical numbers.
"""

from __future__ import annotations

import dataclasses
from os import PathLike
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from weightsym import diagnostics as diag
from weightsym.channels import ChannelLimit, ChannelVariables, channel_limit
from weightsym.checkpoint import Checkpoint
from weightsym.constraints import PairConstraint, unit_gauge
from weightsym.equal_loss_path import output_shift
from weightsym.hashing import fingerprint
from weightsym.io import atomic_save_tensors, atomic_write_csv
from weightsym.losses import Loss
from weightsym.partner_channel import (
    PartnerChannel,
    partner_limit,
    partner_on_channel,
    pulled_back,
)
from weightsym.paths.config import PathConfig
from weightsym.paths.records import (
    PermutationPath,
    StepOutcome,
    StepRecord,
    stored_channel_limit,
    stored_partner_channel,
)
from weightsym.paths.reduced import SolverChart, check_settings
from weightsym.paths.step import MERGE_BUDGET_FACTOR, predict, solve_step
from weightsym.symmetry import most_similar_pair


def problem_fingerprint(loss: Loss, theta: Tensor) -> str:
    """SHA-256 of the network, the data, the loss kind and theta*: resume only the same problem."""
    header = repr((loss.net.widths, loss.net.activation, loss.kind))
    return fingerprint(header, loss.X, loss.Y, theta)


def find_path(
    loss: Loss,
    theta: Tensor,
    config: PathConfig | int | None = None,
    pair: tuple[int, int] | None = None,
    *,
    out: str | PathLike | None = None,
    progress: bool = False,
    **options: Any,
) -> PermutationPath:
    """Compute the permutation path of Sec. 4.1 from the minimum ``theta``.

    Call it with a :class:`PathConfig` (``find_path(loss, theta, cfg)``) or, as a convenience,
    with its fields as arguments (``find_path(loss, theta, layer, pair, steps=200, ...)``).

    Args:
        loss: the objective, a :class:`weightsym.Loss`.
        theta: theta*, the minimum the path starts from.
        config: the settings, or the layer k when the settings are given as keywords.
        pair: (l, m) when the settings are given as keywords (``None``: the most similar pair).
        out: a results folder to write each step to and to resume from.
        progress: show a progress bar.
        **options: further :class:`PathConfig` fields (steps, ratio, distance, gauge, solver,
            tol, max_iter, patience, lr, predictor, varpro, whiten, channel, shift_points,
            thresholds).

    Returns:
        The :class:`PermutationPath` from theta* to the permutation point (first half); where
        the pair opens a 1/d channel (incoming distance), with ``channel_limit``, the loss the
        channel tends to (docs/theory.md section 5.4); where descent steps sit on a channel of
        a third neuron with a partner, with ``partner_channel`` and the loss its limit step
        tends to (docs/certification.md section 1).

    Raises:
        ValueError, TypeError: a loss that is not a :class:`weightsym.Loss`, a setting out of
            range or unknown, a bad theta, or a pair that already coincides (d_0 = 0).
    """
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a weightsym.Loss; got {type(loss).__name__}")
    cfg = _config(config, pair, options)
    net = loss.net
    net.check_theta(theta)
    check_settings(cfg, loss)  # before a results folder is made
    if cfg.pair is None:
        cfg = cfg.replace(pair=most_similar_pair(net, theta, cfg.layer))
    con = PairConstraint(net, cfg.layer, cfg.pair, cfg.distance, cfg.gauge)
    start = unit_gauge(net, theta, cfg.layer, cfg.pair) if cfg.gauge else theta.clone()
    d0 = con.measure(start)
    if d0 == 0.0:
        raise ValueError(f"neurons {cfg.pair} of layer {cfg.layer} already coincide (d = 0)")
    ckpt = None
    if out is not None:
        ckpt = Checkpoint(out, {"path": cfg.as_dict(), "problem": problem_fingerprint(loss, theta)})
    records, thetas = _descend(loss, con, start, d0, cfg, ckpt, progress)
    _append_output_shift(loss, thetas, records, start, cfg)
    path = PermutationPath(net, theta, cfg, records, torch.stack(thetas))
    path.channel_limit = _channel_limit(loss, path, ckpt)
    path.partner_channel = _partner_channel(loss, con, path, ckpt)
    if ckpt is not None:
        _write_results(ckpt, path)
    return path


def _config(config: PathConfig | int | None, pair: Any, options: dict[str, Any]) -> PathConfig:
    if isinstance(config, PathConfig):
        if pair is not None or options:
            raise TypeError("pass either a PathConfig or keyword settings, not both")
        cfg = config
    else:
        if config is not None:
            options["layer"] = config
        if pair is not None:
            options["pair"] = pair
        cfg = PathConfig.from_options(**options)
    cfg.validate()
    return cfg


def _descend(
    loss: Loss,
    con: PairConstraint,
    start: Tensor,
    d0: float,
    cfg: PathConfig,
    ckpt: Checkpoint | None,
    progress: bool,
) -> tuple[list[StepRecord], list[Tensor]]:
    """Steps d_0 .. d_S and the merge d = 0, each solved or resumed from the checkpoint."""
    schedule = cfg.schedule(d0)
    chart = SolverChart(loss, con, start, cfg)  # the solver's variables, once per path
    channel = ChannelVariables(con) if cfg.channel else None  # what the predictor extrapolates
    records: list[StepRecord] = []
    thetas: list[Tensor] = []
    phis: list[Tensor] = [con.chart(start)]
    ds: list[float] = [d0]
    bar = tqdm(
        total=cfg.checkpoint_steps, disable=not progress, desc=f"path {cfg.pair}", leave=False
    )
    for i, d in enumerate(schedule):
        if ckpt is not None and i in ckpt:
            row, tens = ckpt.load_step(i)
            rec, phi = StepRecord.from_row(row), tens["phi"]
        else:
            phi0 = predict(phis, ds, d, con, channel) if (cfg.predictor and i > 1) else phis[-1]
            phi, outcome = solve_step(
                loss, con, d, phi0, phis[-1], cfg, merge=d == 0.0, chart=chart
            )
            th = con.embed(phi, d)
            dg = _diagnostics(loss, th, start, cfg)
            first = thetas[0] if thetas else th
            if cfg.partner_restart and d > 0.0 and not outcome.converged:
                phi, outcome, dg = _partner_restart(
                    loss, con, d, (phi, outcome, dg), first, start, cfg, chart
                )
                th = con.embed(phi, d)
            rec = StepRecord(
                index=i,
                segment="merge" if d == 0.0 else "descent",
                d=d,
                t=0.25 * i / (len(schedule) - 1),
                **outcome.__dict__,
                diagnostics=dg,
            )
            if ckpt is not None:
                ckpt.save_step(i, rec.as_row(), {"phi": phi, "theta": th})
        records.append(rec)
        thetas.append(con.embed(phi, d))
        if i > 0:
            phis.append(phi)
            ds.append(d)
        else:
            phis[0] = phi
        bar.update(1)
    if cfg.sweep_back:
        _sweep_back(loss, con, schedule, (records, thetas, phis), start, cfg, ckpt, chart, bar)
    bar.close()
    return records, thetas


Solved = tuple[Tensor, StepOutcome, diag.StepDiagnostics]


def _partner_restart(
    loss: Loss,
    con: PairConstraint,
    d: float,
    solved: Solved,
    first: Tensor,
    start: Tensor,
    cfg: PathConfig,
    chart: SolverChart,
) -> Solved:
    """``PathConfig.partner_restart``: where the unconverged step ``solved`` = (phi, outcome,
    diagnostics) sits on a partner channel (j onto p), solve it again from the same network with
    j pulled back from p (:func:`weightsym.partner_channel.pulled_back`) and keep the lower of
    the two; the kept outcome counts both solves' work and says so in its message."""
    phi, outcome, dg = solved
    th = con.embed(phi, d)
    partner = partner_on_channel(
        loss.net, th, first, cfg.layer, cfg.pair, dg, cfg.thresholds.cancel
    )
    if partner is None:
        return solved
    pulled = con.normalize(con.chart(pulled_back(loss, th, cfg.layer, partner)))
    phi2, again = solve_step(loss, con, d, pulled, pulled, cfg, chart=chart)
    if not again.loss < outcome.loss:
        return solved
    note = "restarted with neuron {1} pulled back from its partner {0}: ".format(*partner)
    kept = _second_kept(outcome, again, note, restarted=True)
    return phi2, kept, _diagnostics(loss, con.embed(phi2, d), start, cfg)


def _second_kept(first: StepOutcome, second: StepOutcome, note: str, **flag: bool) -> StepOutcome:
    """``second``, the solve kept, counting both solves' work; its message starts with
    ``note`` and ends with the first solve's loss; ``flag`` names how it was found."""
    return dataclasses.replace(
        second,
        nit=first.nit + second.nit,
        ngev=first.ngev + second.ngev,
        nhev=first.nhev + second.nhev,
        nhvp=first.nhvp + second.nhvp,
        wall_time=first.wall_time + second.wall_time,
        message=note + second.message + f" (the first solve: {first.loss:.6g})",
        **flag,
    )


SWEEP_GAIN = 1e-6
"""``PathConfig.sweep_back`` keeps a step's second solve when its loss is below the first's by
more than this fraction of it: smaller differences are those of two stops at one minimum."""


def _sweep_back(
    loss: Loss,
    con: PairConstraint,
    schedule: list[float],
    path: tuple[list[StepRecord], list[Tensor], list[Tensor]],
    start: Tensor,
    cfg: PathConfig,
    ckpt: Checkpoint | None,
    chart: SolverChart,
    bar: Any,
) -> None:
    """``PathConfig.sweep_back``: solve steps d_S .. d_1 again, each from the solution now kept
    at the step after it (so a lower branch travels back as far as it exists), keeping the
    second solve where it is lower (:data:`SWEEP_GAIN`); step 0 stays theta*'s own solve, so
    that the path starts where it should. ``path`` = (records, thetas, phis) of the descent,
    updated in place. With a checkpoint, the kept point of step i is stored under
    ``len(schedule) + i`` and resumed from there (docs/certification.md section 5)."""
    records, thetas, phis = path
    n = len(schedule)
    for i in range(n - 2, 0, -1):
        key = n + i
        if ckpt is not None and key in ckpt:
            row, tens = ckpt.load_step(key)
            records[i], phis[i] = StepRecord.from_row(row), tens["phi"]
            thetas[i] = con.embed(phis[i], records[i].d)
        else:
            rec = records[i]
            phi2, again = solve_step(loss, con, rec.d, phis[i + 1], phis[i + 1], cfg, chart=chart)
            if again.loss < rec.loss - SWEEP_GAIN * abs(rec.loss):
                th = con.embed(phi2, rec.d)
                note = f"swept back from step {i + 1}: "
                outcome = _second_kept(rec, again, note, swept=True)
                records[i] = dataclasses.replace(
                    rec, **outcome.__dict__, diagnostics=_diagnostics(loss, th, start, cfg)
                )
                phis[i], thetas[i] = phi2, th
            if ckpt is not None:
                ckpt.save_step(key, records[i].as_row(), {"phi": phis[i], "theta": thetas[i]})
        bar.update(1)


def _diagnostics(loss: Loss, theta: Tensor, start: Tensor, cfg: PathConfig) -> Any:
    return diag.step_diagnostics(loss.net, theta, start, cfg.layer, cfg.pair, cfg.thresholds)


def _append_output_shift(
    loss: Loss,
    thetas: list[Tensor],
    records: list[StepRecord],
    start: Tensor,
    cfg: PathConfig,
) -> None:
    """t = 1/4 .. 1/2: move the merged pair's output weights linearly to their mean (Fig. 4)."""
    merged = records[-1]
    J = cfg.shift_points
    points = output_shift(loss.net, thetas[-1], cfg.layer, *cfg.pair, num=J + 1)
    for j in range(1, J + 1):
        th = points[j]
        value, g = loss.value_and_grad(th)
        records.append(
            StepRecord(
                index=len(records),
                segment="shift",
                d=0.0,
                t=0.25 + 0.25 * (j / J),
                loss=value,
                grad_inf=float(g.abs().max()),
                nit=0,
                ngev=1,
                nhev=0,
                nhvp=0,
                converged=merged.converged,
                message="output-weight shift (constant loss)",
                predicted=False,
                wall_time=0.0,
                diagnostics=_diagnostics(loss, th, start, cfg),
            )
        )
        thetas.append(th)


def _channel_limit(
    loss: Loss, path: PermutationPath, ckpt: Checkpoint | None
) -> ChannelLimit | None:
    """The channel limit stored by a finished run of the same path, else computed."""
    if ckpt is not None and ckpt.is_finalized:
        recorded, limit = stored_channel_limit(ckpt.load_summary())
        if recorded:
            return limit
    return _follow_channel(loss, path)


def _follow_channel(loss: Loss, path: PermutationPath) -> ChannelLimit | None:
    """Where the pair opens a channel (|w_m - w_l| ~ kappa / d over the last decade of d, on
    the incoming distance), the loss it tends to: the limiting network minimized at d = 0 from
    the last step d_S, with the merge step's budget (docs/theory.md section 5.4)."""
    cfg = path.config
    if cfg.distance != "incoming" or cfg.gauge or path.channel_trend.kind != "pair":
        return None
    last = max(i for i, r in enumerate(path.records) if r.segment == "descent")
    options = cfg.solver_options()
    options["max_iter"] = MERGE_BUDGET_FACTOR * options["max_iter"]
    options.pop("patience", None)
    return channel_limit(loss, path.thetas[last], cfg.layer, cfg.pair, tol=cfg.tol, **options)


def _partner_channel(
    loss: Loss, con: PairConstraint, path: PermutationPath, ckpt: Checkpoint | None
) -> PartnerChannel | None:
    """The partner channel stored by a finished run of the same path, else found and its
    limit step's limit computed (:func:`weightsym.partner_channel.partner_limit`, with a
    step's budget and no patience; none where the joint distance constrains p)."""
    if ckpt is not None and ckpt.is_finalized:
        recorded, stored = stored_partner_channel(ckpt.load_summary())
        if recorded:
            return stored
    found = path.partner_channel_steps()
    if found is None:
        return None
    partner, steps, index = found
    cfg = path.config
    limit = None
    if cfg.distance == "incoming" or partner[0] not in cfg.pair:
        options = cfg.solver_options()
        options.pop("patience", None)
        d, theta = path.records[index].d, path.thetas[index]
        limit = partner_limit(loss, con, d, theta, partner, tol=cfg.tol, **options)
    return PartnerChannel(partner, steps, index, limit)


def _write_results(ckpt: Checkpoint, path: PermutationPath) -> None:
    """steps.csv, thetas.pt and summary.json next to the per-step checkpoint."""
    atomic_write_csv(ckpt.directory / "steps.csv", path.rows(), columns=list(StepRecord.columns()))
    atomic_save_tensors(ckpt.directory / "thetas.pt", {"thetas": path.thetas, "t": path.t})
    ckpt.finalize(path.summary().as_dict())
