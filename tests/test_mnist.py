"""The MNIST student-teacher reproduction (paper Sec. 5, Fig. 3): teachers, the pieces of one
path on cases whose answer is known by construction, and the CLI sweep end to end, killed with
SIGKILL mid-path and resumed."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from weightsym.cli import main
from weightsym.data import load_mnist
from weightsym.experiments.mnist import (
    MnistConfig,
    accuracy_curve,
    aggregate,
    claims,
    mnist_problem,
    rises_monotonically,
    ritz_values,
    saddle_bound,
)
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.symmetry import most_similar_pair
from weightsym.teachers import (
    Teacher,
    TeacherConfig,
    data_fingerprint,
    get_teacher,
    load_teacher,
    teacher_file,
)

LIMIT = 200


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    return load_mnist("embedded", limit=LIMIT)


def _teacher(net: MLP, theta: torch.Tensor) -> Teacher:
    cfg = TeacherConfig(width=net.widths[1], seed=0)
    return Teacher(net, theta, cfg, accuracy=0.0, loss=0.0, iterations=0, message="")


# -- pieces with answers known by construction ---------------------------------------------------
def test_most_similar_pair_is_the_highest_cosine_not_the_closest() -> None:
    """Layer 2 of 784-4-4-10: neurons 1 and 3 are parallel (cosine 1) but far apart in length;
    neurons 0 and 2 are close in Euclidean distance but not parallel."""
    net = MLP([784, 4, 4, 10], "softplus")
    theta = net.init(seed=0)
    V = net.block(theta, 2)  # rows: [W_i, b_i] of layer 2, length 5
    V[:] = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0, 0.1],
            [0.0, 1.0, 1.0, 0.0, 0.0],
            [1.0, 0.2, 0.0, 0.0, -0.1],
            [0.0, 5.0, 5.0, 0.0, 0.0],
        ],
        dtype=torch.float64,
    )
    assert most_similar_pair(net, theta, 2) == (1, 3)


def test_nmse_is_mse_over_mean_square_of_the_teacher_logits(digits) -> None:
    """Shifting every output bias by c changes every logit by c: nmse = c^2 / mean(y^2)."""
    X, y = digits
    net = MLP([784, 3, 3, 10], "softplus")
    theta = net.init(seed=1)
    loss = mnist_problem(_teacher(net, theta), X, y, "nmse")
    logits = net.forward(theta, X)
    assert loss(theta) == 0.0
    c = 0.3
    shifted = theta.clone()
    net.block(shifted, 3)[:, -1] += c  # the output biases b^(3)
    assert torch.allclose(net.forward(shifted, X), logits + c)
    assert math.isclose(loss(shifted), c**2 / float((logits**2).mean()), rel_tol=1e-12)
    assert mnist_problem(_teacher(net, theta), X, y, "nll").kind == "nll"


def test_accuracy_curve_on_constant_predictions(digits) -> None:
    """A network whose output weights are zero predicts argmax(b^(3)) for every digit, so its
    training accuracy is the share of that label; the limit=200 subset is class-balanced."""
    X, y = digits
    net = MLP([784, 3, 3, 10], "softplus")
    thetas = []
    for k in range(10):
        theta = net.init(seed=k)
        net.block(theta, 3)[:] = 0.0
        net.block(theta, 3)[k, -1] = 1.0
        thetas.append(theta)
    curve = accuracy_curve(net, torch.stack(thetas), X, y)
    expected = [float((y == k).double().mean()) for k in range(10)]
    assert curve == expected
    assert curve == [0.1] * 10


def test_rises_monotonically() -> None:
    assert rises_monotonically([0.0, 1.0, 2.0, 2.0]) == (True, 0.0)
    ok, fall = rises_monotonically([0.0, 2.0, 1.5, 3.0])
    assert not ok and fall == 0.5
    assert rises_monotonically([0.0, 1.0, 1.0 - 1e-9])[0]  # rounding-level falls are allowed


def test_ritz_values_bound_the_index_and_reach_the_spectrum() -> None:
    """At a random point of a small tanh network (an indefinite Hessian): every few-step Ritz
    value count of negatives is at most the true index (Cauchy interlacing), and P steps give
    the whole spectrum."""
    net = MLP([3, 4, 2], "tanh")
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    Y = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    loss = Loss(net, X, Y, kind="mse")
    theta = net.init(seed=3, scale=2.0)
    ev = torch.linalg.eigvalsh(loss.hessian(theta))
    index = int((ev < -1e-8 * ev.abs().max()).sum())
    assert index >= 1
    for steps in (3, 8, 15):
        ritz = ritz_values(loss, theta, steps)
        assert ritz.numel() == steps and float(ritz[0]) >= float(ev[0]) - 1e-10
        assert saddle_bound(ritz)["saddle_negative"] <= index
    full = ritz_values(loss, theta, net.num_params)
    assert torch.allclose(full, ev, atol=1e-9 * float(ev.abs().max()))
    assert saddle_bound(full)["saddle_negative"] == index


def _row(H: int, seed: int, barrier: float, monotone: bool, drop: float) -> dict:
    return {
        "loss_kind": "nmse", "variant": "paper", "H": H, "seed": seed, "barrier": barrier,
        "barrier_t": 0.5, "barrier_at_permutation_point": monotone, "monotone": monotone,
        "accuracy_start": 0.98, "accuracy_drop": drop, "flag_channel": False,
        "flag_rescaling": False, "flag_elsewhere": False, "not_converged": 0,
        "worst_grad_inf": 1e-7, "saddle_negative": 1, "path_time": 1.0,
    }  # fmt: skip


def test_claims_on_known_tables() -> None:
    rows = [_row(10, 0, 3e-3, True, 0.01), _row(10, 1, 5e-3, True, 0.0)]
    rows += [_row(20, 0, 1e-3, True, 0.005), _row(20, 1, 2e-3, False, 0.03)]
    table = aggregate(rows)
    assert [(t["H"], t["paths"], t["barrier_mean"]) for t in table] == [
        (10, 2, 4e-3),
        (20, 2, 1.5e-3),
    ]
    c = claims(rows, table)["paper"]
    assert c["monotone_rise"]["monotone_paths"] == 3 and c["monotone_rise"]["confirmed"]
    assert c["barrier_falls_with_H"]["confirmed"]
    assert (
        not c["small_accuracy_drop"]["confirmed"] and c["small_accuracy_drop"]["max_drop"] == 0.03
    )
    rising = [_row(10, 0, 1e-3, False, 0.0), _row(20, 0, 2e-3, False, 0.0)]
    c = claims(rising, aggregate(rising))["paper"]
    assert not c["barrier_falls_with_H"]["confirmed"] and not c["monotone_rise"]["confirmed"]
    assert (
        claims(rows[:2], aggregate(rows[:2]))["paper"]["barrier_falls_with_H"]["confirmed"] is None
    )


# -- teachers --------------------------------------------------------------------------------------
def test_teacher_trains_to_target_and_is_reused(tmp_path, digits) -> None:
    X, y = digits
    cfg = TeacherConfig(width=3, seed=0, target_accuracy=0.9, data=data_fingerprint(X, y))
    first = get_teacher(cfg, X, y, tmp_path)
    assert first.reached and first.accuracy >= 0.9
    path = teacher_file(tmp_path, 3, 0)
    stored = load_teacher(path)
    assert stored.config == cfg and torch.equal(stored.theta, first.theta)
    assert stored.accuracy == first.accuracy
    mtime = path.stat().st_mtime_ns
    again = get_teacher(cfg, X, y, tmp_path)
    assert torch.equal(again.theta, first.theta) and path.stat().st_mtime_ns == mtime
    other = TeacherConfig(width=3, seed=0, target_accuracy=0.95, data=cfg.data)
    with pytest.raises(ValueError, match="different configuration"):
        get_teacher(other, X, y, tmp_path)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="variant"):
        MnistConfig(variants=("nope",)).validate()
    with pytest.raises(ValueError, match="gauge"):
        MnistConfig(variants=("gauge",), activation="softplus").validate()
    with pytest.raises(ValueError, match="loss"):
        MnistConfig(loss="mse").validate()


# -- the CLI sweep, end to end --------------------------------------------------------------------
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


def test_sweep_end_to_end_killed_and_resumed(tmp_path) -> None:
    """One tiny sweep (H = 3, two seeds, both variants, 6 steps, 200 digits) through the CLI
    writes every promised file; a rerun reuses it; a second sweep killed with SIGKILL mid-path
    and resumed ends with the same summary and table (wall times aside)."""
    ref = tmp_path / "ref"
    output = _sweep(ref)
    assert "barrier falls with H" in output
    _check_files(ref)
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
