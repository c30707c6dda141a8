"""The MNIST student-teacher reproduction (paper Sec. 5, Fig. 3) end to end: the CLI sweep
writes every promised file, reuses finished paths, and a sweep killed with SIGKILL mid-path and
resumed ends with the same tables."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from weightsym.cli import main
from weightsym.experiments.mnist import MNIST_PATH, MnistConfig, MnistStep, PathJob
from weightsym.experiments.mnist.path import RESULT_FILE, stored_result

LIMIT = 200
SWEEP = [
    "--widths", "3", "--seeds", "0,1", "--steps", "6", "--limit", str(LIMIT),
    "--target-accuracy", "0.8", "--solver", "lbfgs", "--max-iter", "10", "--lanczos-steps", "20",
    "--workers", "1", "--threads", "1", "--no-progress",
]  # fmt: skip
TIME_COLUMNS = {"path_time", "saddle_time", "solve_time", "wall_time", "path_time_mean"}


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(fh)]


def _sweep(out: Path) -> str:
    res = CliRunner().invoke(main, ["mnist", "--out", str(out), *SWEEP])
    assert res.exit_code == 0, res.output
    return res.output


def _check_files(out: Path) -> None:
    for name in ("steps.csv", "summary.csv", "table.csv", "summary.json", "fig3_nmse.png"):
        assert (out / name).is_file(), name
    for s in (0, 1):
        assert (out / "teachers" / f"H3-seed{s}.pt").is_file()
        for v in ("paper", "joint"):
            folder = out / "paths" / f"H3-seed{s}-{v}-nmse"
            for name in ("steps.csv", "thetas.pt", "summary.json", "mnist.json", "config.json"):
                assert (folder / name).is_file(), (folder, name)
    rows = _read(out / "summary.csv")
    assert [(r["seed"], r["variant"]) for r in rows] == [
        ("0", "paper"), ("0", "joint"), ("1", "paper"), ("1", "joint")
    ]  # fmt: skip
    assert len(_read(out / "steps.csv")) == 4 * (6 + 2 + 10)  # d_0..d_S, 0, the output shift
    for r in rows:
        assert float(r["loss_start"]) <= 1e-20  # the student starts at the teacher
        assert float(r["accuracy_start"]) == float(r["teacher_accuracy"]) >= 0.8
        assert int(r["lanczos_steps"]) == 20 and int(r["saddle_negative"]) >= 0
    table = _read(out / "table.csv")
    assert {(t["variant"], t["H"], t["paths"]) for t in table} == {
        ("paper", "3", "2"), ("joint", "3", "2")
    }  # fmt: skip


def _kill_mid_path(out: Path) -> None:
    """Start the sweep in a subprocess and SIGKILL its process group once a path has begun."""
    cmd = [sys.executable, "-m", "weightsym.cli", "mnist", "--out", str(out), *SWEEP]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any((out / "paths").glob("*/steps/step_000001.json")):
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before it could be killed"


def _check_stored_result(out: Path) -> None:
    """mnist.json reads back as the typed rows that steps.csv holds (the settings of the
    sweep's path, as the CLI built them, are its key)."""
    cfg = MnistConfig(
        widths=(3,),
        seeds=(0, 1),
        limit=LIMIT,
        target_accuracy=0.8,
        path=MNIST_PATH.replace(steps=6, max_iter=10),
        lanczos_steps=20,
    )
    job = PathJob(cfg, 3, 0, "paper", str(out))
    assert (job.folder / RESULT_FILE).is_file()
    result = stored_result(job)
    assert result is not None and len(result.steps) == 6 + 2 + 10
    assert isinstance(result.steps[0], MnistStep) and result.steps[0].record.index == 0
    csv_rows = [r for r in _read(out / "steps.csv") if (r["seed"], r["variant"]) == ("0", "paper")]
    assert [float(r["accuracy"]) for r in csv_rows] == [s.accuracy for s in result.steps]


def test_sweep_end_to_end_killed_and_resumed(tmp_path) -> None:
    """One tiny sweep (H = 3, two seeds, both variants, 6 steps, 200 digits) through the CLI
    writes every promised file; a rerun reuses it; a second sweep killed with SIGKILL mid-path
    and resumed ends with the same summary and table (wall times aside)."""
    ref = tmp_path / "ref"
    output = _sweep(ref)
    assert "barrier falls with H" in output
    _check_files(ref)
    _check_stored_result(ref)
    before = _read(ref / "summary.csv")
    t0 = time.perf_counter()
    _sweep(ref)  # finished paths are skipped
    assert time.perf_counter() - t0 < 20
    assert _read(ref / "summary.csv") == before

    out = tmp_path / "killed"
    _kill_mid_path(out)
    assert not (out / "summary.csv").exists()
    unfinished = [p for p in (out / "paths").iterdir() if not (p / "summary.json").exists()]
    assert unfinished, "no path was interrupted mid-way"
    _sweep(out)
    _check_files(out)
    assert _read(out / "summary.csv") == before
    assert _read(out / "table.csv") == _read(ref / "table.csv")


def test_two_local_workers_give_the_one_worker_tables(tmp_path) -> None:
    """The sweep on a LocalCluster of 2 worker processes and of 1: identical tables."""
    _sweep(tmp_path / "one")
    two = [a if a != "1" or b != "--workers" else "2" for b, a in zip(["", *SWEEP], SWEEP)]
    res = CliRunner().invoke(main, ["mnist", "--out", str(tmp_path / "two"), *two])
    assert res.exit_code == 0, res.output
    for table in ("summary.csv", "table.csv", "steps.csv"):
        assert _read(tmp_path / "one" / table) == _read(tmp_path / "two" / table), table
