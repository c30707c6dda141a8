"""The records of a sweep: tasks, dependencies, progress counters, and the plan that checks
them before anything runs (docs/theory.md section 10; the runner is
:mod:`weightsym.experiments.runner`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from dask.base import tokenize

STEP_FILES = "steps/step_*.json"  # the finished steps of a checkpoint folder


class SweepError(RuntimeError):
    """A sweep could not run, or tasks failed: ``failures`` holds a message per failed key
    (empty when the sweep could not start), ``results`` the other tasks' results by key."""

    def __init__(self, message: str, failures: dict | None = None, results: dict | None = None):
        super().__init__(message)
        self.failures: dict[str, str] = dict(failures or {})
        self.results: dict[str, Any] = dict(results or {})


class InvalidSweepError(ValueError):
    """A task list or an argument of :func:`run_sweep` is malformed."""


@dataclass(frozen=True)
class Dep:
    """Placeholder in :attr:`Task.args` for the result of the task named ``key``."""

    key: str


@dataclass(frozen=True)
class StepFiles:
    """Progress counter: the files matching ``pattern`` under ``folder`` (by default the
    finished steps of a :class:`weightsym.checkpoint.Checkpoint` folder)."""

    folder: str | os.PathLike
    pattern: str = STEP_FILES

    def __call__(self) -> int:
        return sum(1 for _ in Path(self.folder).glob(self.pattern))


def is_int(x: Any, low: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


def require(prefix: str, *checks: tuple[bool, str, Any]) -> None:
    """Raise :class:`InvalidSweepError` for the first (ok, what, value) that is not ok."""
    for ok, what, value in checks:
        if not ok:
            raise InvalidSweepError(f"{prefix}{what}; got {value!r}")


@dataclass(frozen=True)
class Task:
    """One unit of work of a sweep.

    Attributes:
        key: unique name of the task (e.g. ``"H25-seed0-paper-nmse"``); its Dask key's prefix.
        fn: a module-level (picklable) function, called as ``fn(*args)`` on a worker.
        args: its arguments; each :class:`Dep` inside (also in nested tuples, lists and dict
            values) is replaced by that task's result.
        after: keys of tasks that must finish first, their results not passed (a path that
            reads its teacher from disk waits for the task that trains it).
        steps: progress units the task produces (e.g. the solved steps of a path).
        count: the units finished so far, polled by the driver (e.g. :class:`StepFiles`).
    """

    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    after: tuple[str, ...] = ()
    steps: int = 1
    count: Callable[[], int] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        after_ok = isinstance(self.after, tuple) and all(isinstance(k, str) for k in self.after)
        require(
            f"task {self.key!r}: ",
            (isinstance(self.key, str) and self.key, "key must be a non-empty str", self.key),
            (callable(self.fn), "fn must be callable", self.fn),
            (isinstance(self.args, tuple), "args must be a tuple", self.args),
            (after_ok, "after must be a tuple of task keys", self.after),
            (is_int(self.steps, 1), "steps must be an int >= 1", self.steps),
            (self.count is None or callable(self.count), "count must be callable", self.count),
        )

    @property
    def depends(self) -> tuple[str, ...]:
        """Keys of the tasks this one waits for: its :class:`Dep` placeholders, then ``after``."""
        found: list[str] = []
        map_leaves(self.args, lambda x: found.append(x.key) if isinstance(x, Dep) else None)
        return tuple(dict.fromkeys([*found, *self.after]))


def map_leaves(obj: Any, by: Callable[[Any], Any]) -> Any:
    """``obj`` with each leaf ``x`` (in nested tuples, lists and dict values) -> ``by(x)``."""
    if type(obj) in (tuple, list):
        return type(obj)(map_leaves(x, by) for x in obj)
    if type(obj) is dict:
        return {k: map_leaves(v, by) for k, v in obj.items()}
    return by(obj)


def _canonical(x: Any) -> Any:
    if not isinstance(x, torch.Tensor):
        return x
    raw = x.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return ("tensor", str(x.dtype), tuple(x.shape), raw)


def work_token(task: Task) -> str:
    """A token of the work of ``task`` (its function, ``after``, and its arguments, tensors
    by content): equal for the same work, also in another driver process."""
    return tokenize(task.fn, map_leaves(task.args, _canonical), task.after)


def plan(tasks: Sequence[Task]) -> list[Task]:
    """The tasks to run: duplicates of a key merged, dependencies before their dependents.

    Raises:
        InvalidSweepError: a key used twice for different work (fn, args or after differ), a
            dependency on a key not in the sweep, or a cycle of dependencies.
    """
    unique: dict[str, Task] = {}
    for task in tasks:
        if not isinstance(task, Task):
            raise InvalidSweepError(f"tasks must be Task records; got {task!r}")
        seen = unique.setdefault(task.key, task)
        if seen is not task and work_token(seen) != work_token(task):
            raise InvalidSweepError(
                f"task key {task.key!r} names two different tasks; one key (one folder) "
                "must mean one piece of work"
            )
    order: dict[str, Task] = {}
    visiting: list[str] = []

    def visit(key: str) -> None:
        if key in visiting:
            raise InvalidSweepError(f"dependency cycle: {' -> '.join([*visiting, key])}")
        if key not in unique:
            raise InvalidSweepError(f"task {visiting[-1]!r} depends on unknown task {key!r}")
        if key not in order:
            visiting.append(key)
            for dep in unique[key].depends:
                visit(dep)
            order[key] = unique[visiting.pop()]

    for key in unique:
        visit(key)
    return list(order.values())
