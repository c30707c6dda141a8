"""One sweep runner for every experiment, on ``dask.distributed`` (docs/theory.md section 10).

A sweep is a list of :class:`Task` records (a unique ``key``, a module-level function and its
arguments, where a :class:`Dep` stands for another task's result). :func:`run_sweep` submits
them to a Dask scheduler, a ``LocalCluster`` started for the sweep or a running one named by
address, and returns their results by key. It changes no numbers: each task runs with
``threads_per_task`` torch threads (one by default), as in a serial run. The runner keeps no
state: a task that must survive a lost worker or a killed driver writes its own folder (named
by its key) with per-step checkpoints and resumes from them. Recipes: docs/sweeps.md.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dask.config
import torch
from dask.base import tokenize
from distributed import Client, Future, LocalCluster, as_completed
from tqdm.auto import tqdm

from weightsym.experiments.tasks import (  # noqa: F401 (the runner's public names)
    STEP_FILES,
    Dep,
    InvalidSweepError,
    StepFiles,
    SweepError,
    Task,
    is_int,
    map_leaves,
    plan,
    require,
    work_token,
)

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"  # Dask users name a running scheduler here
MAX_DEFAULT_WORKERS = 8  # default local workers: one per core, at most this many
POLL_SECONDS = 0.5  # how often the driver polls the tasks' progress counters


def _version() -> str:
    """The weightsym version of this process (read from the package at call time, so that a
    worker reports its own)."""
    return importlib.import_module("weightsym").__version__


def _run_task(fn: Callable, threads: int, version: str, args: tuple, after: list) -> Any:
    """Worker side: ``fn(*args)`` with ``threads`` torch threads, on the driver's weightsym
    version (checked again for workers that joined late); ``after`` is waited for, not used."""
    if _version() != version:
        raise SweepError(f"this worker has weightsym {_version()}, the driver {version}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(before)


def _version_probe() -> Callable[[], tuple[str | None, str]]:
    """A probe pickled by value (a nested function), so it runs where weightsym is missing
    too: it returns (version, file) or (None, why not)."""

    def probe() -> tuple[str | None, str]:
        try:
            package = importlib.import_module("weightsym")
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return getattr(package, "__version__", "unknown"), str(package.__file__)

    return probe


def check_workers(client: Client) -> int:
    """Check that every worker imports weightsym at the driver's version; return their number.

    Raises:
        SweepError: naming each worker that cannot import weightsym or has another version.
    """
    version = _version()
    answers = client.run(_version_probe(), on_error="return")
    bad = []
    for worker, answer in sorted(answers.items()):
        have, where = answer if isinstance(answer, tuple) else (None, f"probe failed: {answer!r}")
        if have != version:
            what = "cannot import weightsym" if have is None else f"weightsym {have}"
            bad.append(f"{worker}: {what} ({where})")
    if bad:
        raise SweepError(
            f"workers differ from the driver (weightsym {version}); install the same version "
            "on every worker:\n  " + "\n  ".join(bad)
        )
    return len(answers)


def default_workers() -> int:
    """One worker process per core, at most ``MAX_DEFAULT_WORKERS``."""
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


def scheduler_address(scheduler: str | None = None) -> str | None:
    """``scheduler``, else ``$DASK_SCHEDULER_ADDRESS`` or Dask's ``scheduler-address``, else
    None (a local cluster)."""
    return scheduler or os.environ.get(SCHEDULER_ENV) or dask.config.get("scheduler-address", None)


def _say(message: str, progress: bool) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _client(address: str | None, n: int, timeout: float, progress: bool) -> Iterator[Client]:
    """A client on the scheduler at ``address``, else on a ``LocalCluster`` of ``n`` processes
    (one thread each); closed on leaving (also on an exception), with the local cluster."""
    if address is not None:
        try:
            client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, ValueError) as exc:  # TimeoutError is an OSError
            raise SweepError(
                f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s "
                f"({type(exc).__name__}: {exc}); check the address (scheduler= or "
                f"${SCHEDULER_ENV}) and that `dask scheduler` runs there"
            ) from exc
        with client:
            _say(f"dask: scheduler {address}", progress)
            yield client
        return
    local = "127.0.0.1:0"  # loopback, a free port (the HTTP server runs without bokeh too)
    quiet = logging.CRITICAL  # task errors come back as SweepError; no worker log lines
    with LocalCluster(
        n_workers=n, threads_per_worker=1, dashboard_address=local, silence_logs=quiet
    ) as cluster:
        board = importlib.util.find_spec("bokeh") is not None
        link = cluster.dashboard_link if board else "off (install bokeh to have one)"
        _say(f"dask: {n} local worker processes; dashboard {link}", progress)
        with Client(cluster, set_as_default=False) as client:
            yield client


@contextlib.contextmanager
def _progress_bar(tasks: Sequence[Task], done: set[str], enabled: bool) -> Iterator[None]:
    """One bar for the sweep in steps: a finished task counts its ``steps``, a running one its
    ``count()``; a thread refreshes it every ``POLL_SECONDS``."""
    bar = tqdm(total=sum(t.steps for t in tasks), desc="sweep", unit="step", disable=not enabled)

    def units(task: Task) -> int:
        if task.key in done or task.count is None:
            return task.steps if task.key in done else 0
        with contextlib.suppress(Exception):  # no folder yet, or one being written
            return min(max(int(task.count()), 0), task.steps)
        return 0

    def refresh() -> None:
        bar.n = sum(units(t) for t in tasks)
        bar.refresh()

    def poll() -> None:
        while enabled and not stop.wait(POLL_SECONDS):
            refresh()

    stop = threading.Event()
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        yield
    finally:
        stop.set()
        poller.join()
        refresh()
        bar.close()


def _submit(client: Client, tasks: list[Task], threads: int, retries: int) -> dict[str, Future]:
    """Submit ``tasks`` (dependencies first). A task's Dask key is its key and a token of its
    work, so a restarted driver re-attaches to a task a worker still runs, never doubles it."""
    version = _version()
    futures: dict[str, Future] = {}
    for task in tasks:
        args = map_leaves(task.args, lambda x: futures[x.key] if isinstance(x, Dep) else x)
        after = [futures[k] for k in task.after]
        token = tokenize(work_token(task), threads, version)
        futures[task.key] = client.submit(
            _run_task, task.fn, threads, version, args, after,
            key=f"{task.key}-{token}", retries=retries,
        )  # fmt: skip
    return futures


def _collect(
    client: Client, futures: dict[str, Future], tasks: list[Task], done: set[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every task's result as it lands, and a message per failed task (by key)."""
    key_of = {fut.key: key for key, fut in futures.items()}
    results: dict[str, Any] = {}
    for fut in as_completed(list(futures.values()), loop=client.loop):
        key = key_of[fut.key]
        if fut.status == "finished":
            results[key] = fut.result()
        done.add(key)
    failures = {}
    for task in (t for t in tasks if t.key not in results):
        upstream = [k for k in task.depends if k not in results]
        fut = futures[task.key]  # "error", or "cancelled" when the scheduler went away
        exc = fut.exception() if fut.status == "error" else RuntimeError(f"task {fut.status}")
        why = f"{type(exc).__name__}: {exc}"
        failures[task.key] = f"not run: dependency {upstream[0]!r} failed" if upstream else why
    return results, failures


def run_sweep(
    tasks: Sequence[Task],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    threads_per_task: int = 1,
    progress: bool = True,
    retries: int = 2,
    connect_timeout: float = 10.0,
) -> dict[str, Any]:
    """Run ``tasks`` on Dask; return every task's result by key, in the order of ``tasks``.

    Args:
        tasks: the sweep; a key given twice for the same work runs once (see :func:`plan`).
        workers: local worker processes (default :func:`default_workers`, at most one per
            task); unused with a scheduler.
        scheduler: a running Dask scheduler (``"tcp://host:8786"``); default
            ``$DASK_SCHEDULER_ADDRESS``, else a ``LocalCluster`` started and closed here.
        threads_per_task: torch threads inside each task.
        progress: one bar in steps and the cluster's dashboard address, on stderr.
        retries: reruns of a task that raised (one lost with its worker is rerun regardless,
            up to Dask's ``distributed.scheduler.allowed-failures`` times).
        connect_timeout: seconds to reach a named scheduler before giving up.

    Raises:
        InvalidSweepError: malformed tasks or arguments (see :func:`plan`).
        SweepError: the scheduler is unreachable, a worker's weightsym differs from the
            driver's, or tasks failed (raised once all others finished; ``failures`` names
            each failed key and its exception, ``results`` keeps the others' results).
    """
    timeout_ok = isinstance(connect_timeout, (int, float)) and connect_timeout > 0
    address_ok = scheduler is None or (isinstance(scheduler, str) and scheduler)
    require(
        "",
        (address_ok, "scheduler must be an address like 'tcp://host:8786'", scheduler),
        (workers is None or is_int(workers, 1), "workers must be an int >= 1 or None", workers),
        (is_int(threads_per_task, 1), "threads_per_task must be an int >= 1", threads_per_task),
        (is_int(retries, 0), "retries must be an int >= 0", retries),
        (timeout_ok, "connect_timeout must be a number of seconds > 0", connect_timeout),
    )
    order = plan(tasks)
    if not order:
        return {}
    done: set[str] = set()
    address = scheduler_address(scheduler)
    n_local = min(workers or default_workers(), len(order))
    with _client(address, n_local, connect_timeout, progress) as client:
        if check_workers(client) == 0:
            _say("dask: no workers connected yet; the tasks wait for them", progress)
        with _progress_bar(order, done, progress):
            futures = _submit(client, order, threads_per_task, retries)
            results, failures = _collect(client, futures, order, done)
    results = {t.key: results[t.key] for t in tasks if t.key in results}
    if failures:
        lines = "".join(f"\n  {key}: {message}" for key, message in failures.items())
        raise SweepError(f"{len(failures)} of {len(order)} tasks failed:{lines}", failures, results)
    return results
