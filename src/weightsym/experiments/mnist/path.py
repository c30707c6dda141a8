"""One path of the MNIST sweep and its rows (paper Sec. 5, Fig. 3; docs/theory.md section 7).

For teacher (H, seed) and a variant, :func:`run_path` merges the most similar pair of hidden
layer 2 (highest cosine of the parameter vectors, :func:`weightsym.symmetry.most_similar_pair`)
along the permutation path of Sec. 4.1 (:func:`weightsym.paths.find_path`, docs/theory.md
section 4), records the training accuracy at every point (Fig. 3 B) and bounds the saddle
index at the permutation point from below by Lanczos (:func:`weightsym.curvature.ritz_values`).
The result is one :class:`MnistRow` (``summary.csv``) and one :class:`MnistStep` per point
(``steps.csv``), written to the path's folder as ``mnist.json`` and reused when the folder
holds one for the same settings (:meth:`PathJob.key`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from torch import Tensor

from weightsym.curvature import RitzBound, ritz_values, saddle_bound
from weightsym.experiments.mnist.config import MnistConfig
from weightsym.experiments.mnist.problem import (
    accuracy_curve,
    load_digits,
    mnist_problem,
    rises_monotonically,
)
from weightsym.experiments.mnist.teachers import Teacher, data_fingerprint, get_teacher
from weightsym.experiments.rows import FlagRow
from weightsym.io import atomic_write_json, load_json
from weightsym.losses import Loss
from weightsym.paths import PermutationPath, StepRecord, find_path
from weightsym.symmetry import pairwise_cosine

RESULT_FILE = "mnist.json"
RESULT_FORMAT = "weightsym.mnist-path/2"
"""Stored in every result's key: a result of another format is recomputed (from the path's
step checkpoints)."""


def path_folder(out: Path, H: int, seed: int, variant: str, loss: str) -> Path:
    """The results folder of one path: ``<out>/paths/H{H}-seed{seed}-{variant}-{loss}``."""
    return out / "paths" / f"H{H}-seed{seed}-{variant}-{loss}"


@dataclass(frozen=True)
class PathJob:
    """One (H, seed, variant) path of a sweep, with all it needs to run in a worker."""

    cfg: MnistConfig
    width: int
    seed: int
    variant: str
    out: str

    @property
    def folder(self) -> Path:
        return path_folder(Path(self.out), self.width, self.seed, self.variant, self.cfg.loss)

    def key(self) -> dict[str, Any]:
        """What a stored result must match to be reused (path-level resume)."""
        c = self.cfg
        return {
            "format": RESULT_FORMAT,
            "width": self.width,
            "seed": self.seed,
            "variant": self.variant,
            "loss": c.loss,
            "source": c.source,
            "limit": c.limit,
            "pca": c.pca,
            "activation": c.activation,
            "target_accuracy": c.target_accuracy,
            "teacher_max_iter": c.teacher_max_iter,
            "path": c.path_config(self.variant).as_dict(),
            "lanczos_steps": c.lanczos_steps,
        }


@dataclass(frozen=True)
class MnistRow(FlagRow):
    """One row of ``summary.csv``: one path, its barrier, accuracy, escapes and saddle bound.

    ``barrier_height`` is the barrier minus the loss at the teacher; ``accuracy_drop`` the
    accuracy at the teacher minus the lowest on the path; ``flags``: whether each escape flag
    rose anywhere (docs/theory.md section 5); ``saddle_negative``, ``ritz_lowest``,
    ``ritz_highest``, ``lanczos_steps``: the :class:`~weightsym.curvature.RitzBound` at the
    permutation point (``None`` when Lanczos was skipped).
    """

    loss_kind: str
    variant: str
    H: int
    seed: int
    pair: str
    cosine: float
    d0: float
    teacher_accuracy: float
    teacher_reached: bool
    loss_start: float
    barrier: float
    barrier_height: float
    barrier_t: float
    barrier_at_permutation_point: bool
    loss_permutation_point: float
    monotone: bool
    largest_fall: float
    accuracy_start: float
    accuracy_permutation_point: float
    accuracy_min: float
    accuracy_drop: float
    flags: dict[str, bool]
    max_out_norm: float
    not_converged: int
    worst_grad_inf: float
    channel: str  # "pair": |w_m - w_l| ~ kappa / d (docs/theory.md section 5.4), else "none"
    channel_limit: float | None  # the loss the pair channel tends to (None: no channel)
    channel_limit_converged: bool | None
    partner_channel: str | None  # "p~j": descent steps sit on a channel of j onto p (None: none)
    partner_steps: int  # how many
    partner_limit_index: int | None  # the step whose limit was taken (the barrier's if on it)
    partner_limit: float | None  # the loss that step tends to along the channel
    partner_limit_converged: bool | None
    total_iterations: int
    total_hvp: int
    total_grad: int
    saddle_negative: int | None
    ritz_lowest: float | None
    ritz_highest: float | None
    lanczos_steps: int | None
    solve_time: float
    folder: str
    path_time: float
    saddle_time: float


STEP_HEAD = ("loss_kind", "variant", "H", "seed")
"""The columns of ``steps.csv`` that name the path."""


@dataclass(frozen=True)
class MnistStep:
    """One row of ``steps.csv``: a point of the path (its :class:`StepRecord`) and the
    student's training accuracy there (Fig. 3 B)."""

    loss_kind: str
    variant: str
    H: int
    seed: int
    record: StepRecord
    accuracy: float

    @classmethod
    def columns(cls) -> list[str]:
        """The path (:data:`STEP_HEAD`), the step record's columns, then the accuracy."""
        return [*STEP_HEAD, *StepRecord.columns(), "accuracy"]

    def as_row(self) -> dict[str, Any]:
        head = {name: getattr(self, name) for name in STEP_HEAD}
        return head | self.record.as_row() | {"accuracy": self.accuracy}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> MnistStep:
        head = {name: row[name] for name in STEP_HEAD}
        return cls(**head, record=StepRecord.from_row(row), accuracy=row["accuracy"])


class PathResult(NamedTuple):
    """What one path contributes to the tables."""

    row: MnistRow
    steps: list[MnistStep]

    def as_dict(self, key: dict[str, Any]) -> dict[str, Any]:
        """The content of ``mnist.json``."""
        return {"key": key, "row": self.row.as_row(), "steps": [s.as_row() for s in self.steps]}


def stored_result(job: PathJob) -> PathResult | None:
    """The result in the job's folder if it was computed with the same settings."""
    file = job.folder / RESULT_FILE
    if not file.exists():
        return None
    stored = load_json(file, "MNIST path result")
    if stored.get("key") != job.key():
        return None
    try:
        steps = [MnistStep.from_row(s) for s in stored["steps"]]
        return PathResult(MnistRow.from_row(stored["row"]), steps)
    except KeyError:  # written by an older version without some column: compute it again
        return None


def saddle_at(loss: Loss, theta: Tensor, steps: int) -> RitzBound | None:
    """The Lanczos bound on the saddle index at ``theta`` (None for 0 steps)."""
    return saddle_bound(ritz_values(loss, theta, steps)) if steps else None


def run_path(job: PathJob) -> PathResult:
    """Compute (or reuse) one path; the result is also written to ``<folder>/mnist.json``.

    Args:
        job: the path: teacher (H, seed), variant and the sweep's settings and folder.

    Returns:
        The path's :class:`MnistRow` and one :class:`MnistStep` per point.

    Raises:
        ValueError: the stored teacher was trained with other settings.
    """
    done = stored_result(job)
    if done is not None:
        return done
    cfg = job.cfg
    X, y = load_digits(cfg)
    tcfg = cfg.teacher_config(job.width, job.seed, data_fingerprint(X, y))
    teacher = get_teacher(tcfg, X, y, Path(job.out) / "teachers")
    loss = mnist_problem(teacher, X, y, cfg.loss)
    t0 = time.perf_counter()
    path = find_path(loss, teacher.theta, cfg.path_config(job.variant), out=job.folder)
    path_time = time.perf_counter() - t0
    acc = accuracy_curve(teacher.net, path.thetas, X, y)
    t1 = time.perf_counter()
    bound = saddle_at(loss, path.thetas[-1], cfg.lanczos_steps)
    saddle_time = time.perf_counter() - t1
    row = path_row(job, teacher, path, acc, bound, (path_time, saddle_time))
    head = (cfg.loss, job.variant, job.width, job.seed)
    steps = [MnistStep(*head, record=r, accuracy=a) for r, a in zip(path.records, acc)]
    result = PathResult(row, steps)
    # nonfinite: the output-shift steps have no excess estimate (NaN, read back by from_row)
    atomic_write_json(job.folder / RESULT_FILE, result.as_dict(job.key()), nonfinite="string")
    return result


def path_row(
    job: PathJob,
    teacher: Teacher,
    path: PermutationPath,
    acc: list[float],
    bound: RitzBound | None,
    times: tuple[float, float],
) -> MnistRow:
    """The :class:`MnistRow` of a computed path; ``times``: (path, saddle) seconds."""
    s = path.summary()
    monotone, fall = rises_monotonically([float(v) for v in path.loss])
    solved = [r for r in path.records if r.segment != "shift"]
    l, m = path.pair
    out_norms = (max(r.diagnostics.out_norm_l, r.diagnostics.out_norm_m) for r in path.records)
    return MnistRow(
        loss_kind=job.cfg.loss,
        variant=job.variant,
        H=job.width,
        seed=job.seed,
        pair=f"{l}-{m}",
        cosine=float(pairwise_cosine(teacher.net, teacher.theta, path.layer)[l, m]),
        d0=float(path.d[0]),
        teacher_accuracy=teacher.accuracy,
        teacher_reached=teacher.reached,
        loss_start=s.loss_start,
        barrier=s.barrier.loss,
        barrier_height=s.barrier.loss - s.loss_start,
        barrier_t=s.barrier.t,
        barrier_at_permutation_point=s.barrier.at_point,
        loss_permutation_point=s.loss_permutation_point,
        monotone=monotone,
        largest_fall=fall,
        accuracy_start=acc[0],
        accuracy_permutation_point=acc[-1],
        accuracy_min=min(acc),
        accuracy_drop=acc[0] - min(acc),
        flags=s.flags,
        max_out_norm=max(out_norms),
        not_converged=len(s.not_converged_steps),
        worst_grad_inf=s.worst_grad_inf,
        **s.channel_columns(),
        **s.partner_columns(),
        total_iterations=sum(r.nit for r in solved),
        total_hvp=sum(r.nhvp for r in solved),
        total_grad=sum(r.ngev for r in solved),
        saddle_negative=None if bound is None else bound.negative,
        ritz_lowest=None if bound is None else bound.lowest,
        ritz_highest=None if bound is None else bound.highest,
        lanczos_steps=None if bound is None else bound.steps,
        solve_time=sum(r.wall_time for r in solved),
        folder=job.folder.name,
        path_time=times[0],
        saddle_time=times[1],
    )
