"""The MNIST sweep (paper Sec. 5, Fig. 3; docs/theory.md section 7): teachers, then paths, then
tables, into one resumable results folder.

A results folder holds ``teachers/H{H}-seed{s}.pt``, one checkpointed folder per path under
``paths/`` (resumed step by step; a path whose ``mnist.json`` matches is reused) and the tables
of :func:`weightsym.experiments.mnist.tables.write_tables`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from weightsym.experiments.mnist.config import MnistConfig
from weightsym.experiments.mnist.path import PathJob, PathResult, run_path
from weightsym.experiments.mnist.problem import load_digits
from weightsym.experiments.mnist.tables import MnistSummary, write_tables
from weightsym.experiments.mnist.teachers import TeacherSummary, data_fingerprint, get_teacher
from weightsym.experiments.sweep import execute as run_jobs
from weightsym.results_folder import open_results_folder


@contextlib.contextmanager
def limited_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads and one BLAS thread, then restore torch's setting.

    scipy's OpenBLAS runs the vector updates of L-BFGS-B and of ARPACK; on vectors of 20k
    entries its threads only spin (docs/mnist.md). threadpoolctl, where installed, limits it;
    without it the BLAS is left alone.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - a dependency of scikit-learn, hence mlxtend
            yield
        else:
            with threadpool_limits(1, user_api="blas"):
                yield
    finally:
        torch.set_num_threads(before)


def _with_threads(call: tuple[Callable, int, Any]) -> Any:
    fn, threads, job = call
    with limited_threads(threads):
        return fn(job)


def execute(fn: Callable, jobs: Sequence[Any], cfg: MnistConfig, progress: bool, desc: str) -> list:
    """``[fn(job) for job in jobs]`` on ``cfg.workers`` processes, each with
    ``cfg.num_threads()`` torch threads (the one place that decides how the sweep runs)."""
    calls = [(fn, cfg.num_threads(), job) for job in jobs]
    return run_jobs(_with_threads, calls, cfg.workers, progress, desc)


def train_one(job: tuple[MnistConfig, int, int, str]) -> TeacherSummary:
    """Train (or reuse) teacher (H, seed) into folder ``job[3]``."""
    cfg, H, seed, folder = job
    X, y = load_digits(cfg)
    t0 = time.perf_counter()
    teacher = get_teacher(cfg.teacher_config(H, seed, data_fingerprint(X, y)), X, y, folder)
    return TeacherSummary.of(teacher, time.perf_counter() - t0)


def run_mnist(cfg: MnistConfig, out: str | Path, progress: bool = True) -> MnistSummary:
    """Run the sweep into ``out`` (resuming), write the tables and return the summary.

    Args:
        cfg: the sweep's settings.
        out: the results folder (created; a finished path in it is reused).
        progress: show progress bars.

    Returns:
        The :class:`~weightsym.experiments.mnist.tables.MnistSummary` (also in
        ``summary.json``).

    Raises:
        ValueError: a setting out of range, or a stored teacher trained otherwise.
    """
    cfg.validate()
    with open_results_folder(out) as folder:  # marker and lock: docs/results-folders.md
        out = folder.path
        teacher_jobs = [(cfg, H, s, str(out / "teachers")) for H, s in cfg.teachers()]
        teachers = execute(train_one, teacher_jobs, cfg, progress, "teachers")
        jobs = [PathJob(cfg, H, s, v, str(out)) for H, s, v in cfg.jobs()]
        results: list[PathResult] = execute(run_path, jobs, cfg, progress, "mnist paths")
        return write_tables(cfg, out, teachers, results)
