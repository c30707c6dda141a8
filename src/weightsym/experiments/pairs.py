"""The pair search: the permutation path for every pair of a hidden layer, or for the K pairs
of highest cosine similarity, and whether cosine similarity predicts the barrier's rank.

The paper merges the most similar pair of a layer (highest cosine of the parameter vectors
vartheta, Sec. 5); the path and its barrier are those of docs/theory.md section 4. Here every
chosen pair gets its own path (one sweep task and one checkpointed results folder per pair,
docs/theory.md sections 10 and 11, so a killed search resumes), and the barriers are ranked
against the cosines by Spearman's rank correlation rho. If the most similar pairs had the
lowest barriers, rho would be -1; rho near 0 means the cosine does not predict the rank.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from scipy.stats import spearmanr
from torch import Tensor

from weightsym.experiments.rows import FlagRow
from weightsym.experiments.runner import StepFiles, Task, run_sweep
from weightsym.experiments.toy import TOY_PATH
from weightsym.io import atomic_write_csv, atomic_write_json, metadata
from weightsym.losses import Loss
from weightsym.paths import PRESETS, TRUST_REGION, PathConfig, PathSummary, find_path
from weightsym.results_folder import open_results_folder
from weightsym.symmetry import check_net_theta, pairwise_cosine

DEFAULT_VARIANT = "joint"
"""The path variant of the pair search and of ``weightsym compare``: the joint distance ends on
the permutation point itself (docs/theory.md section 5)."""
MIN_PAIRS = 3  # fewer pairs than this: no rank correlation
SIGNIFICANCE = 0.05  # the note calls a rank correlation significant below this p-value


@dataclass(frozen=True)
class PairsConfig:
    """Which pairs get a path, and the path settings they share.

    Attributes:
        layer: hidden layer k (1 = first).
        top: the K pairs of highest cosine similarity; ``None``: every pair of the layer.
        variant: the path preset (:data:`weightsym.paths.PRESETS`).
        path: the template of every path (its ``layer``, ``pair`` and preset fields are set per
            pair); by default the toy's settings.
        workers: local worker processes of the sweep.
    """

    layer: int = 1
    top: int | None = None
    variant: str = DEFAULT_VARIANT
    path: PathConfig = TOY_PATH
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))

    def path_config(self, pair: tuple[int, int]) -> PathConfig:
        """The settings of one pair's path (patience only where the solver has it)."""
        cfg = self.path.replace(layer=self.layer, pair=pair, **PRESETS[self.variant])
        return cfg if cfg.solver in TRUST_REGION else cfg.replace(patience=None)

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range (the network is checked by
        :func:`choose_pairs`)."""
        if self.variant not in PRESETS:
            raise ValueError(f"unknown variant {self.variant!r}; expected one of {tuple(PRESETS)}")
        if self.top is not None and (
            isinstance(self.top, bool) or not isinstance(self.top, int) or self.top < 1
        ):
            raise ValueError(f"top must be an int >= 1 or None (every pair); got {self.top!r}")
        self.path_config((0, 1)).validate()

    def as_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "top": self.top,
            "variant": self.variant,
            "path": self.path.as_dict(),
            "workers": self.workers,
        }


@dataclass(frozen=True)
class PairRow(FlagRow):
    """One row of ``pairs.csv``: a pair, its cosine similarity and its path's barrier.

    ``cosine_rank`` is 1 for the most similar pair, ``barrier_rank`` 1 for the lowest barrier.
    """

    pair: str
    cosine: float
    cosine_rank: int
    barrier: float
    barrier_rank: int
    barrier_t: float
    barrier_at_permutation_point: bool
    barrier_converged: bool
    loss_permutation_point: float
    flags: dict[str, bool]
    all_converged: bool
    worst_grad_inf: float
    wall_time: float
    folder: str


class RankCorrelation(NamedTuple):
    """Spearman's rho between cosine similarity and barrier over ``n`` pairs, its two-sided
    p-value, and a sentence saying what it means; ``rho`` is None where it is undefined (fewer
    than :data:`MIN_PAIRS` pairs, or all cosines or all barriers equal)."""

    rho: float | None
    pvalue: float | None
    n: int
    note: str


class PairsResult(NamedTuple):
    """The rows (in the order of the pairs searched) and the rank correlation."""

    rows: list[PairRow]
    correlation: RankCorrelation


class Candidate(NamedTuple):
    """A pair (l, m), l < m, and the cosine similarity of its parameter vectors."""

    pair: tuple[int, int]
    cosine: float


class PairOutcome(NamedTuple):
    """What one sweep task returns: the path's summary and its wall time."""

    summary: PathSummary
    wall_time: float


def choose_pairs(loss: Loss, theta: Tensor, cfg: PairsConfig) -> list[Candidate]:
    """A :class:`Candidate` for every pair l < m of ``cfg.layer``, most similar first (ties in pair
    order), cut to the ``cfg.top`` first when set.

    Raises:
        ValueError: the layer is not a hidden layer, has fewer than two neurons, or a neuron
            has vartheta = 0 (cosine undefined).
    """
    check_net_theta(loss.net, theta)
    C = pairwise_cosine(loss.net, theta, cfg.layer)
    n = C.shape[0]
    if n < 2:
        raise ValueError(f"layer {cfg.layer} has one neuron; a pair needs at least two")
    pairs = [Candidate((l, m), float(C[l, m])) for l in range(n) for m in range(l + 1, n)]
    pairs.sort(key=lambda c: -c.cosine)  # stable: ties keep pair order
    return pairs if cfg.top is None else pairs[: cfg.top]


def rank_correlation(cosines: Sequence[float], barriers: Sequence[float]) -> RankCorrelation:
    """Spearman's rho of ``cosines`` against ``barriers`` (:func:`scipy.stats.spearmanr`)."""
    n = len(cosines)
    if n < MIN_PAIRS:
        return RankCorrelation(None, None, n, f"undefined: {n} pair(s), at least {MIN_PAIRS}")
    if len(set(cosines)) == 1 or len(set(barriers)) == 1:
        what = "cosines" if len(set(cosines)) == 1 else "barriers"
        return RankCorrelation(None, None, n, f"undefined: all {what} are equal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho, p = (float(v) for v in spearmanr(cosines, barriers))
    trend = "lower" if rho < 0 else "higher"
    note = f"rho = {rho:.3f} (p = {p:.2g}, n = {n}): more similar pairs have {trend} barriers"
    if p >= SIGNIFICANCE:
        note += f" by rank, but not significantly (p >= {SIGNIFICANCE})"
    return RankCorrelation(rho, p, n, note)


def pair_folder(out: Path, pair: tuple[int, int]) -> Path:
    """The results folder of one pair's path."""
    return out / "paths" / f"pair{pair[0]}-{pair[1]}"


def run_pair(loss: Loss, theta: Tensor, config: PathConfig, folder: str) -> PairOutcome:
    """Sweep task: compute (or resume) one pair's path in ``folder``."""
    t0 = time.perf_counter()
    path = find_path(loss, theta, config, out=folder)
    return PairOutcome(path.summary(), time.perf_counter() - t0)


def _ranks(values: Sequence[float]) -> list[int]:
    """1 for the smallest value, ties in order of appearance."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0] * len(values)
    for r, i in enumerate(order, start=1):
        ranks[i] = r
    return ranks


def pair_rows(
    chosen: Sequence[Candidate], outcomes: Sequence[PairOutcome], out: Path
) -> list[PairRow]:
    """One :class:`PairRow` per pair, with the ranks of its cosine and its barrier."""
    cos_rank = _ranks([-c for _, c in chosen])
    bar_rank = _ranks([o.summary.barrier.loss for o in outcomes])
    rows = []
    for i, ((pair, cosine), (s, wall)) in enumerate(zip(chosen, outcomes)):
        rows.append(
            PairRow(
                pair=f"{pair[0]}-{pair[1]}",
                cosine=cosine,
                cosine_rank=cos_rank[i],
                barrier=s.barrier.loss,
                barrier_rank=bar_rank[i],
                barrier_t=s.barrier.t,
                barrier_at_permutation_point=s.barrier.at_point,
                barrier_converged=s.barrier.converged,
                loss_permutation_point=s.loss_permutation_point,
                flags=s.flags,
                all_converged=s.all_converged,
                worst_grad_inf=s.worst_grad_inf,
                wall_time=wall,
                folder=pair_folder(out, pair).name,
            )
        )
    return rows


def run_pairs(
    loss: Loss,
    theta: Tensor,
    cfg: PairsConfig,
    out: str | Path,
    progress: bool = True,
    scheduler: str | None = None,
) -> PairsResult:
    """The permutation path of every chosen pair, as sweep tasks, then the rank correlation.

    Args:
        loss: the objective (:class:`weightsym.Loss`).
        theta: theta*, the minimum every path starts from.
        cfg: which pairs and the path settings.
        out: the results folder: ``paths/pair<l>-<m>/`` per pair (resumed when rerun),
            ``pairs.csv`` (one :class:`PairRow` per pair) and ``summary.json`` (config, rows,
            rank correlation).
        progress: show the sweep's progress bar.
        scheduler: a running Dask scheduler's address (default: a local cluster).

    Returns:
        A :class:`PairsResult`.

    Raises:
        ValueError: a bad setting, layer, or theta (before any folder is made).
        weightsym.experiments.runner.SweepError: a path failed.
    """
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a weightsym.Loss; got {type(loss).__name__}")
    cfg.validate()
    chosen = choose_pairs(loss, theta, cfg)
    with open_results_folder(out) as folder:
        out = folder.path
        tasks = []
        for pair, _ in chosen:
            where = pair_folder(out, pair)
            args = (loss, theta, cfg.path_config(pair), str(where))
            steps, count = cfg.path.checkpoint_steps, StepFiles(where)
            tasks.append(Task(where.name, run_pair, args, steps=steps, count=count))
        done = run_sweep(tasks, workers=cfg.workers, scheduler=scheduler, progress=progress)
        rows = pair_rows(chosen, [done[t.key] for t in tasks], out)
        corr = rank_correlation([r.cosine for r in rows], [r.barrier for r in rows])
        write_pairs(cfg, out, rows, corr)
        return PairsResult(rows, corr)


def write_pairs(
    cfg: PairsConfig, out: Path, rows: Sequence[PairRow], corr: RankCorrelation
) -> None:
    """pairs.csv (one row per pair) and summary.json (config, meta, rows, rank correlation)."""
    table = [r.as_row() for r in rows]
    atomic_write_csv(out / "pairs.csv", table, columns=PairRow.columns())
    body = {"config": cfg.as_dict(), "meta": metadata(), "rows": table}
    atomic_write_json(out / "summary.json", body | {"spearman": corr._asdict()})
