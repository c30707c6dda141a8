"""The MNIST sweep's tables and the verdict on the paper's Fig. 3 claims (paper Sec. 5;
docs/theory.md section 7).

Fig. 3 claims three things about the paths from a teacher to the permutation point of its most
similar pair: (1) the loss rises monotonically to the permutation point, where the barrier sits;
(2) the barrier falls as the width H grows; (3) the training accuracy drops only a little.
:func:`aggregate` summarizes the paths per (loss, variant, H) and :func:`claims` checks each
claim per variant with the numbers it rests on; :func:`write_tables` writes ``steps.csv``,
``summary.csv``, ``table.csv`` and ``summary.json``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from weightsym import diagnostics as diag
from weightsym.curvature import RITZ_RTOL
from weightsym.experiments.mnist.config import MnistConfig
from weightsym.experiments.mnist.path import MnistRow, MnistStep, PathResult
from weightsym.experiments.mnist.problem import MONOTONE_RTOL
from weightsym.experiments.mnist.teachers import TeacherSummary
from weightsym.experiments.rows import FlagRow
from weightsym.io import atomic_write_csv, atomic_write_json, metadata

SMALL_ACCURACY_DROP = 0.02
"""Claim 3 ("accuracy drops only a little") holds when every drop is at most this (2 points)."""


@dataclass(frozen=True)
class TableRow(FlagRow):
    """One row of ``table.csv``: the paths of one (loss, variant, H).

    Barrier and accuracy-drop statistics over the seeds (``std`` is the sample standard
    deviation, 0 for one path); counts of paths whose barrier sits at the permutation point,
    that rise monotonically, on which each escape flag rose (``flags``) and whose descent steps
    sat on a partner channel (``partner_channels``); not-converged steps
    summed; the median and least Lanczos lower bound on the saddle index (None without it).
    """

    loss_kind: str
    variant: str
    H: int
    paths: int
    barrier_mean: float
    barrier_std: float
    barrier_min: float
    barrier_max: float
    accuracy_start_mean: float
    accuracy_drop_mean: float
    accuracy_drop_std: float
    accuracy_drop_max: float
    barrier_at_point: int
    barrier_t_mean: float
    monotone: int
    flags: dict[str, int]
    partner_channels: int
    not_converged_steps: int
    worst_grad_inf: float
    saddle_negative_median: float | None
    saddle_negative_min: int | None
    path_time_mean: float


class _Stats(NamedTuple):
    mean: float
    std: float
    min: float
    max: float


def _stats(values: Iterable[float]) -> _Stats:
    v = [float(x) for x in values]
    std = statistics.stdev(v) if len(v) > 1 else 0.0
    return _Stats(statistics.fmean(v), std, min(v), max(v))


def _table_row(kind: str, variant: str, H: int, g: Sequence[MnistRow]) -> TableRow:
    barrier = _stats(r.barrier for r in g)
    drop = _stats(r.accuracy_drop for r in g)
    neg = [r.saddle_negative for r in g if r.saddle_negative is not None]
    return TableRow(
        loss_kind=kind,
        variant=variant,
        H=H,
        paths=len(g),
        barrier_mean=barrier.mean,
        barrier_std=barrier.std,
        barrier_min=barrier.min,
        barrier_max=barrier.max,
        accuracy_start_mean=statistics.fmean(r.accuracy_start for r in g),
        accuracy_drop_mean=drop.mean,
        accuracy_drop_std=drop.std,
        accuracy_drop_max=drop.max,
        barrier_at_point=sum(bool(r.barrier_at_permutation_point) for r in g),
        barrier_t_mean=statistics.fmean(r.barrier_t for r in g),
        monotone=sum(bool(r.monotone) for r in g),
        flags={f: sum(bool(r.flags[f]) for r in g) for f in diag.FLAGS},
        partner_channels=sum(r.partner_channel is not None for r in g),
        not_converged_steps=sum(int(r.not_converged) for r in g),
        worst_grad_inf=max(r.worst_grad_inf for r in g),
        saddle_negative_median=statistics.median(neg) if neg else None,
        saddle_negative_min=min(neg) if neg else None,
        path_time_mean=statistics.fmean(r.path_time for r in g),
    )


def aggregate(rows: Sequence[MnistRow]) -> list[TableRow]:
    """One :class:`TableRow` per (loss, variant, H), sorted by them (Fig. 3's claims by width).

    Args:
        rows: one :class:`MnistRow` per path.

    Returns:
        The rows of ``table.csv``.
    """
    groups: dict[tuple[str, str, int], list[MnistRow]] = {}
    for r in rows:
        groups.setdefault((r.loss_kind, r.variant, r.H), []).append(r)
    table = [_table_row(*key, g) for key, g in groups.items()]
    return sorted(table, key=lambda r: (r.loss_kind, r.variant, r.H))


class MonotoneRise(NamedTuple):
    """Claim 1: most paths rise monotonically and peak at the permutation point."""

    monotone_paths: int
    barrier_at_permutation_point: int
    paths: int
    confirmed: bool


class BarrierFalls(NamedTuple):
    """Claim 2: the mean barrier falls strictly with H (None: undetermined with one width)."""

    H: list[int]
    barrier_mean: list[float]
    confirmed: bool | None


class SmallAccuracyDrop(NamedTuple):
    """Claim 3: every accuracy drop is at most ``threshold``."""

    mean_drop: float
    max_drop: float
    threshold: float
    confirmed: bool


class Claims(NamedTuple):
    """The verdict on the three Fig. 3 claims for one variant."""

    monotone_rise: MonotoneRise
    barrier_falls_with_H: BarrierFalls
    small_accuracy_drop: SmallAccuracyDrop

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: claim._asdict() for name, claim in self._asdict().items()}


def _variant_claims(rows: Sequence[MnistRow], table: Sequence[TableRow]) -> Claims:
    table = sorted(table, key=lambda r: r.H)
    means = [r.barrier_mean for r in table]
    mono = sum(bool(r.monotone) for r in rows)
    at_point = sum(bool(r.barrier_at_permutation_point) for r in rows)
    drops = [r.accuracy_drop for r in rows]
    small = max(drops) <= SMALL_ACCURACY_DROP
    majority = 2 * mono > len(rows) and 2 * at_point > len(rows)
    falls = None if len(means) < 2 else all(b < a for a, b in zip(means, means[1:]))
    return Claims(
        MonotoneRise(mono, at_point, len(rows), majority),
        BarrierFalls([r.H for r in table], means, falls),
        SmallAccuracyDrop(statistics.fmean(drops), max(drops), SMALL_ACCURACY_DROP, small),
    )


def claims(rows: Sequence[MnistRow], table: Sequence[TableRow]) -> dict[str, Claims]:
    """The paper's three Fig. 3 claims, per variant (in table order), each with its numbers.

    Claim 1 is confirmed when more than half of the paths are monotone and more than half peak
    at the permutation point; claim 2 when the mean barrier falls strictly from each width to
    the next; claim 3 when every drop is at most :data:`SMALL_ACCURACY_DROP`.

    Args:
        rows: one :class:`MnistRow` per path; table: their :func:`aggregate`.

    Returns:
        The :class:`Claims` by variant.
    """
    out = {}
    for variant in dict.fromkeys(r.variant for r in table):
        out[variant] = _variant_claims(
            [r for r in rows if r.variant == variant], [r for r in table if r.variant == variant]
        )
    return out


@dataclass(frozen=True)
class MnistSummary:
    """Everything a sweep found (the content of ``summary.json``)."""

    config: MnistConfig
    teachers: list[TeacherSummary]
    rows: list[MnistRow]
    table: list[TableRow]
    claims: dict[str, Claims]

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.as_dict(),
            "meta": metadata(),
            "teachers": [t._asdict() for t in self.teachers],
            "table": [r.as_row() for r in self.table],
            "claims": {v: c.as_dict() for v, c in self.claims.items()},
            "rows": [r.as_row() for r in self.rows],
            "notes": {
                "saddle": "saddle_negative counts the Ritz values below -"
                f"{RITZ_RTOL:g} x |H| after {self.config.lanczos_steps} Lanczos steps on the "
                "Hessian at the permutation point: a lower bound on its index (negative "
                "eigenvalues), by Cauchy interlacing, not the index itself; ritz_lowest is an "
                "upper bound on the lowest eigenvalue",
                "monotone": f"the loss never falls by more than {MONOTONE_RTOL:g} x its barrier",
            },
        }


def write_tables(
    cfg: MnistConfig, out: Path, teachers: list[TeacherSummary], results: Sequence[PathResult]
) -> MnistSummary:
    """steps.csv, summary.csv, table.csv and summary.json from the per-path results.

    The paths are put in table order (H, seed, variant as configured) whatever order they ran.

    Args:
        cfg: the sweep's settings; out: the results folder.
        teachers: one summary per teacher; results: one :class:`PathResult` per path.

    Returns:
        The :class:`MnistSummary` written to ``summary.json``.
    """
    order = {job: i for i, job in enumerate(cfg.natural_jobs())}
    results = sorted(results, key=lambda r: order[(r.row.H, r.row.seed, r.row.variant)])
    rows = [r.row for r in results]
    steps: list[MnistStep] = [s for r in results for s in r.steps]
    table = aggregate(rows)
    summary = MnistSummary(cfg, teachers, rows, table, claims(rows, table))
    atomic_write_csv(out / "steps.csv", [s.as_row() for s in steps], MnistStep.columns())
    atomic_write_csv(out / "summary.csv", [r.as_row() for r in rows], MnistRow.columns())
    atomic_write_csv(out / "table.csv", [r.as_row() for r in table], TableRow.columns())
    atomic_write_json(out / "summary.json", summary.as_dict(), nonfinite="null")
    return summary
