"""Overhead of the Dask sweep runner against the work it schedules, measured in one run.

Times, on this machine and in this order:

* one toy path (ReLU teacher, pair (0, 1), 200 steps, max_iter 40, patience 10, 1 thread): the
  unit of work of the toy sweep;
* a local cluster of 2 worker processes started, probed and closed around one trivial task
  (``run_sweep([task], workers=2)``): the fixed cost of a sweep with no scheduler named;
* on a running 2-worker cluster (warmed up), sweeps of 1 and of ``--tasks`` trivial tasks:
  the marginal wall time per task, (t_N - t_1) / (N - 1), which is the runner's and Dask's
  per-task overhead (submit, schedule, run the wrapper, send the result back, collect).

It prints the figures and their ratios to the path time, and writes them to
benchmarks/results/sweep_overhead.md.

    python benchmarks/sweep_overhead.py [--tasks 200]
"""

from __future__ import annotations

import argparse
import operator
import os
import time
from pathlib import Path

import torch
from distributed import LocalCluster

from weightsym import find_path
from weightsym.experiments.runner import Task, run_sweep
from weightsym.experiments.toy import ToyConfig, toy_problem

WORKERS = 2


def trivial(n: int, prefix: str) -> list[Task]:
    return [Task(f"{prefix}{i}", operator.add, (i, 1)) for i in range(n)]


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def measure(n_tasks: int) -> dict[str, float]:
    torch.set_num_threads(1)
    cfg = ToyConfig()
    loss, theta = toy_problem("relu", cfg)
    t_path, _ = timed(
        lambda: find_path(loss, theta, 1, (0, 1), steps=200, max_iter=40, patience=10)
    )
    t_local, _ = timed(lambda: run_sweep(trivial(1, "local"), workers=WORKERS, progress=False))
    with LocalCluster(
        n_workers=WORKERS, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    ) as cluster:
        address = cluster.scheduler_address
        run_sweep(trivial(2 * WORKERS, "warm"), scheduler=address, progress=False)
        t_one, _ = timed(lambda: run_sweep(trivial(1, "one"), scheduler=address, progress=False))
        t_many, out = timed(
            lambda: run_sweep(trivial(n_tasks, "many"), scheduler=address, progress=False)
        )
    assert out == {f"many{i}": i + 1 for i in range(n_tasks)}
    return {
        "tasks": n_tasks,
        "paths": len(cfg.jobs()),
        "t_path": t_path,
        "t_local": t_local,
        "t_one": t_one,
        "t_many": t_many,
        "per_task": (t_many - t_one) / (n_tasks - 1),
    }


def report(m: dict[str, float]) -> str:
    per, path, paths = m["per_task"], m["t_path"], m["paths"]
    sweep = paths * path / WORKERS  # the default toy sweep's work, spread on the workers
    overhead = m["t_local"] + paths * per
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rows = [
        ("one toy path (ReLU, pair 0-1, 200 steps, 1 thread)", f"{path:.3f} s", "1"),
        (
            f"{m['tasks']} trivial tasks on a running {WORKERS}-worker cluster",
            f"{m['t_many']:.3f} s",
            f"{m['t_many'] / path:.3g}",
        ),
        ("1 trivial task on the same cluster", f"{m['t_one']:.3f} s", f"{m['t_one'] / path:.3g}"),
        ("marginal wall time per task (overhead)", f"{per * 1e3:.2f} ms", f"{per / path:.2e}"),
        (
            f"local cluster of {WORKERS} started, probed, closed (1 trivial task)",
            f"{m['t_local']:.2f} s",
            f"{m['t_local'] / path:.3g}",
        ),
    ]
    lines = [
        f"Sweep runner overhead, {WORKERS} local worker processes, one run; load average "
        f"{load} (1, 5, 15 min) on {os.cpu_count()} cores.",
        "",
        "| what | wall time | / one toy path |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
        f"Default toy sweep: {paths} paths, about {sweep:.1f} s of path work on {WORKERS} "
        f"workers (from the path time above); the runner adds {m['t_local']:.2f} s (cluster) + "
        f"{paths} x {per * 1e3:.2f} ms (tasks) = {overhead:.2f} s, "
        f"{100 * overhead / sweep:.1f}% of it ({100 * paths * per / sweep:.2f}% without the "
        "cluster's start and close).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=200)
    here = Path(__file__).parent
    ap.add_argument("--out", type=Path, default=here / "results" / "sweep_overhead.md")
    args = ap.parse_args()
    text = report(measure(args.tasks))
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
