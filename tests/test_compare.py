"""`weightsym compare` (docs/theory.md section 9): every promised file, resumption after SIGKILL
with the same table, stored baselines reused or refused, and clear errors for bad options."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from weightsym.baselines import neb_path
from weightsym.checkpoint import Checkpoint
from weightsym.cli import main
from weightsym.experiments.compare import (
    PATH_TYPES,
    TIME_COLUMNS,
    CompareRow,
    canonical,
    load_curve,
    save_curve,
)
from weightsym.experiments.toy import ToyConfig, toy_problem
from weightsym.io import read_csv
from weightsym.symmetry import swap

SMALL = ["--steps", "8", "--images", "5", "--points", "21", "--bend-iter", "20"]
BAND_ITER = ["--band-iter", "150"]  # long enough for a kill to land while the band relaxes
POLL = 0.005  # seconds between looks at the folder of a run about to be killed


def _compare(out: Path, *extra: str) -> list[str]:
    return ["compare", "--out", str(out), *SMALL, *BAND_ITER, "--no-progress", *extra]


def _table(out: Path) -> list[dict]:
    rows = read_csv(out / "table.csv")
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """An uninterrupted run (in this process, one torch thread as in the subprocesses)."""
    out = tmp_path_factory.mktemp("compare") / "full"
    result = CliRunner().invoke(main, _compare(out))
    assert result.exit_code == 0, result.output
    return out


def test_writes_every_promised_file(finished: Path) -> None:
    rows = read_csv(finished / "table.csv")
    assert [r["path"] for r in rows] == list(PATH_TYPES)
    assert list(rows[0]) == CompareRow.columns()
    for r in rows:
        assert r["max"] >= r["entezari"] >= 0 and r["max"] >= r["frankle"] >= 0
        assert 0 <= r["position"] <= 1 and isinstance(r["converged"], bool)
    by = {r["path"]: r for r in rows}
    for name in ("permutation", "neb"):  # the certificates: grad_inf, index, zero count
        assert by[name]["saddle_index"] >= 0 and by[name]["saddle_zero"] >= 0
        assert by[name]["saddle_grad_inf"] >= 0
    assert by["permutation"]["saddle_to_pp"] == 0.0
    assert by["linear"]["saddle_index"] == "" and by["linear"]["converged"] is True
    summary = json.loads((finished / "summary.json").read_text())
    assert [r["path"] for r in summary["rows"]] == list(PATH_TYPES)
    assert summary["config"]["images"] == 5 and summary["problem"]["toy"]["activation"] == "relu"
    verdict = summary["verdict"]
    assert verdict["lowest"] in PATH_TYPES
    assert verdict["neb_saddle_to_pp"] == pytest.approx(by["neb"]["saddle_to_pp"], rel=1e-12)
    assert (finished / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (finished / "permutation" / "summary.json").is_file()
    for kind in PATH_TYPES[1:]:
        assert (finished / kind / "steps" / "step_000000.json").is_file()


def _run(out: Path) -> subprocess.Popen:
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = "from weightsym.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *_compare(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_when(process: subprocess.Popen, ready, timeout: float = 60.0) -> bool:
    """SIGKILL ``process`` as soon as ``ready()`` holds; False if it ended first."""
    end = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < end:
        if ready():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(POLL)
    process.communicate(timeout=timeout)
    return False


def test_a_killed_run_resumes_to_the_same_table(finished: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    steps = out / "permutation" / "steps"
    assert _kill_when(_run(out), lambda: len(list(steps.glob("step_*.json"))) >= 3)
    assert not (out / "table.csv").exists()
    # second kill: after the line, the Bezier curve and the chain are stored
    chain = out / "chain" / "steps" / "step_000000.json"
    killed_again = _kill_when(_run(out), chain.exists)
    if killed_again:
        assert not (out / "neb" / "steps" / "step_000000.json").exists()
    process = _run(out)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()
    assert _table(out) == _table(finished)


def test_a_rerun_reuses_stored_paths_and_refuses_other_settings(finished: Path) -> None:
    before = read_csv(finished / "table.csv")
    again = CliRunner().invoke(main, _compare(finished))
    assert again.exit_code == 0, again.output
    assert read_csv(finished / "table.csv") == before  # times too: nothing was recomputed
    other = CliRunner().invoke(main, [*_compare(finished), "--images", "7"])
    assert other.exit_code == 2
    assert "settings.images: stored 5, new 7" in other.output
    assert read_csv(finished / "table.csv") == before


def test_a_stored_band_reads_back_field_for_field(tmp_path: Path) -> None:
    loss, theta = toy_problem("softplus", ToyConfig(samples=100))
    band = neb_path(loss, theta, swap(loss.net, theta, 1, 0, 1), images=5, max_iter=5)
    assert band.refined is not None and band.saddle is not None
    with Checkpoint(tmp_path / "neb", {"path": "neb"}) as ckpt:
        save_curve(ckpt, band)
        back = load_curve(ckpt)
    for field in dataclasses.fields(band):
        a, b = getattr(band, field.name), getattr(back, field.name)
        if field.name == "refined":
            assert torch.equal(a.x, b.x)
            a, b = dataclasses.replace(a, x=None), dataclasses.replace(b, x=None)
        if field.name == "saddle":
            assert torch.equal(a.eigenvalues_lowest, b.eigenvalues_lowest)
            a, b = a._replace(eigenvalues_lowest=None), b._replace(eigenvalues_lowest=None)
        if isinstance(a, torch.Tensor):
            assert torch.allclose(a, b, rtol=0, atol=0, equal_nan=True), field.name
        else:
            assert repr(a) == repr(b), field.name  # repr: NaN == NaN


def test_a_users_model_and_data(tmp_path: Path) -> None:
    loss, theta = toy_problem("softplus", ToyConfig(samples=100))
    model, data = tmp_path / "model.pt", tmp_path / "data.pt"
    torch.save(loss.net.to_module(theta), model)
    torch.save({"X": loss.X, "Y": loss.Y}, data)
    out = tmp_path / "user"
    args = ["compare", str(model), str(data), "--out", str(out), *SMALL, "--band-iter", "10"]
    result = CliRunner().invoke(main, [*args, "--pair", "1-3", "--loss", "nmse", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problem"] == {"model": str(model), "data": str(data)}
    assert summary["config"]["pair"] == [1, 3] and len(summary["rows"]) == len(PATH_TYPES)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--pair", "0-0"], "same neuron twice"),
        (["--pair", "0-1,2-3"], "expected one pair"),
        (["--pair", "0-7"], "pair[1]=7 out of range"),
        (["--layer", "2"], "--layer=2 is not a hidden layer"),
        (["--images", "2"], "2 is not in the range"),
        (["--points", "1"], "1 is not in the range"),
        (["--variant", "fancy"], "'fancy' is not one of"),
        (["--activation", "swish"], "'swish' is not one of"),
        (["--variant", "gauge", "--activation", "softplus"], "positively homogeneous"),
        (["--trust-pickle"], "--trust-pickle applies to a MODEL file only"),
        (["model.pt"], "give MODEL and DATA together"),
        (["nowhere.pt", "nothing.pt"], "not found"),
    ],
)
def test_bad_options_are_clear_errors(args, message, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["compare", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # refused before any folder is made


def test_activation_with_a_model_is_refused(tmp_path: Path) -> None:
    loss, theta = toy_problem("relu", ToyConfig(samples=10))
    model, data = tmp_path / "model.pt", tmp_path / "data.pt"
    torch.save(loss.net.to_module(theta), model)
    torch.save({"X": loss.X, "Y": loss.Y}, data)
    args = ["compare", str(model), str(data), "--activation", "relu", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--activation chooses the toy teacher's g" in result.output


def test_distances_do_not_count_the_rescaling_symmetry() -> None:
    """canonical: for ReLU a neuron rescaled by c > 0 (vartheta / c, w c) gives the same point
    (to rounding, 1e-14); for softplus, which has no such symmetry, the point is unchanged."""
    loss, theta = toy_problem("relu", ToyConfig(samples=10))
    net, scaled = loss.net, theta.clone()
    for i, c in enumerate([0.5, 3.0, 1.0, 7.0, 0.1]):
        scaled[net.neuron_slice(1, i)] /= c
        scaled[net.output_index(1, i)] *= c
    assert loss(scaled) == pytest.approx(loss(theta), abs=1e-14)
    assert torch.allclose(canonical(net, scaled), canonical(net, theta), rtol=0, atol=1e-14)
    soft, theta = toy_problem("softplus", ToyConfig(samples=10))
    assert torch.equal(canonical(soft.net, theta), theta)
