"""The MNIST sweep (paper Sec. 5, Fig. 3; docs/theory.md section 7): teachers, then paths, then
tables, into one resumable results folder.

A results folder holds ``teachers/H{H}-seed{s}.pt``, one checkpointed folder per path under
``paths/`` (resumed step by step; a path whose ``mnist.json`` matches is reused) and the tables
of :func:`weightsym.experiments.mnist.tables.write_tables`.
"""

from __future__ import annotations

import time
from pathlib import Path

from weightsym.experiments.mnist.config import MnistConfig
from weightsym.experiments.mnist.path import PathJob, PathResult, run_path
from weightsym.experiments.mnist.problem import load_digits
from weightsym.experiments.mnist.tables import MnistSummary, write_tables
from weightsym.experiments.mnist.teachers import TeacherSummary, data_fingerprint, get_teacher
from weightsym.experiments.runner import StepFiles, Task, run_sweep
from weightsym.results_folder import open_results_folder


def train_one(job: tuple[MnistConfig, int, int, str]) -> TeacherSummary:
    """Train (or reuse) teacher (H, seed) into folder ``job[3]``."""
    cfg, H, seed, folder = job
    X, y = load_digits(cfg)
    t0 = time.perf_counter()
    teacher = get_teacher(cfg.teacher_config(H, seed, data_fingerprint(X, y)), X, y, folder)
    return TeacherSummary.of(teacher, time.perf_counter() - t0)


def tasks(cfg: MnistConfig, out: Path) -> tuple[list[Task], list[str], list[str]]:
    """One task per teacher and per path (a path waits for its teacher); their keys."""
    teachers, paths, out_teachers = [], [], str(out / "teachers")
    for H, s in cfg.teachers():
        teachers.append(Task(f"teacher-H{H}-seed{s}", train_one, ((cfg, H, s, out_teachers),)))
    for H, s, v in cfg.jobs():
        job = PathJob(cfg, H, s, v, str(out))
        paths.append(
            Task(
                job.folder.name,
                run_path,
                (job,),
                after=(f"teacher-H{H}-seed{s}",),
                steps=cfg.path.checkpoint_steps,
                count=StepFiles(job.folder),
            )
        )
    return teachers + paths, [t.key for t in teachers], [t.key for t in paths]


def run_mnist(
    cfg: MnistConfig, out: str | Path, progress: bool = True, scheduler: str | None = None
) -> MnistSummary:
    """Run the sweep into ``out`` (resuming), write the tables and return the summary.

    Args:
        cfg: the sweep's settings.
        out: the results folder (created; a finished path in it is reused).
        progress: show progress bars.
        scheduler: a running Dask scheduler's address (else a local cluster of
            ``cfg.workers`` processes; docs/sweeps.md).

    Returns:
        The :class:`~weightsym.experiments.mnist.tables.MnistSummary` (also in
        ``summary.json``).

    Raises:
        ValueError: a setting out of range (``cfg.pca`` above the digits' rank included).
        SweepError: tasks failed, e.g. a stored teacher was trained otherwise.
    """
    cfg.validate()
    if cfg.pca is not None:
        load_digits(cfg)  # a K above the rank of the digits fails here, once, by name
    with open_results_folder(out) as folder:  # marker and lock: docs/results-folders.md
        out = folder.path
        work, teacher_keys, path_keys = tasks(cfg, out)
        done = run_sweep(
            work,
            workers=cfg.workers,
            scheduler=scheduler,
            threads_per_task=cfg.num_threads(),
            progress=progress,
        )
        teachers = [done[k] for k in teacher_keys]
        results: list[PathResult] = [done[k] for k in path_keys]
        return write_tables(cfg, out, teachers, results)
