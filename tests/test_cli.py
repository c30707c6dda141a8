"""`weightsym toy` and `weightsym path` end to end with small settings."""

from __future__ import annotations

import json

import numpy as np
import torch
from click.testing import CliRunner

from weightsym.cli import main
from weightsym.experiments.toy import ToyConfig, toy_problem
from weightsym.plots import read_csv


def test_toy_writes_every_promised_file(tmp_path):
    out = tmp_path / "toy"
    args = [
        "toy",
        "--out",
        str(out),
        "--pairs",
        "0-1",
        "--steps",
        "4",
        "--samples",
        "100",
        "--workers",
        "1",
        "--no-progress",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "summary.csv")
    # relu: paper, joint, gauge; softplus: paper, joint (gauge needs a homogeneous g)
    assert len(rows) == 5
    assert {(r["activation"], r["variant"]) for r in rows} == {
        ("relu", "paper"),
        ("relu", "joint"),
        ("relu", "gauge"),
        ("softplus", "paper"),
        ("softplus", "joint"),
    }
    for r in rows:
        folder = out / "paths" / r["folder"]
        for name in ("steps.csv", "thetas.pt", "summary.json", "config.json"):
            assert (folder / name).is_file(), folder / name
        assert r["saddle_negative"] + r["saddle_zero"] + r["saddle_positive"] == 21
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["path"]["steps"] == 4 and len(summary["rows"]) == 5
    assert summary["config"]["path"]["patience"] == 10  # the default, recorded with every path
    path_config = json.loads((out / "paths" / rows[0]["folder"] / "config.json").read_text())
    assert path_config["config"]["path"]["patience"] == 10
    assert all(isinstance(r["barrier_converged"], bool) for r in rows)
    for act, var in {(r["activation"], r["variant"]) for r in rows}:
        assert (out / f"fig2_{act}_{var}.png").stat().st_size > 10_000
    assert (out / "fig4_output_shift.png").is_file()
    assert "barrier" in result.output
    # a second run resumes: every step is already on disk, the table is identical
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    keep = lambda rs: [{k: v for k, v in r.items() if k != "wall_time"} for r in rs]  # noqa: E731
    assert keep(read_csv(out / "summary.csv")) == keep(rows)


def test_toy_rejects_bad_options(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(main, ["toy", "--out", str(tmp_path), "--pairs", "1-1"])
    assert bad.exit_code != 0 and "l == m" in bad.output
    bad = runner.invoke(main, ["toy", "--out", str(tmp_path), "--pairs", "0-7"])
    assert bad.exit_code != 0 and "two different neurons" in bad.output
    bad = runner.invoke(main, ["toy", "--out", str(tmp_path), "--variants", "fancy"])
    assert bad.exit_code != 0 and "fancy" in bad.output


def _save_user_problem(tmp_path, fmt):
    loss, theta = toy_problem("tanh", ToyConfig(samples=80))
    model = tmp_path / "model.pt"
    torch.save(loss.net.to_module(theta), model)
    if fmt == "npz":
        data = tmp_path / "data.npz"
        np.savez(data, X=loss.X.numpy(), Y=loss.Y.numpy())
    else:
        data = tmp_path / "data.pt"
        torch.save({"X": loss.X, "Y": loss.Y}, data)
    return model, data


def test_path_on_a_saved_sequential(tmp_path):
    for fmt in ("pt", "npz"):
        model, data = _save_user_problem(tmp_path, fmt)
        out = tmp_path / f"out-{fmt}"
        result = CliRunner().invoke(
            main,
            [
                "path",
                str(model),
                str(data),
                "--pair",
                "0-2",
                "--steps",
                "3",
                "--distance",
                "joint",
                "--out",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        assert "barrier" in result.output
        steps = read_csv(out / "steps.csv")
        assert steps[-1]["t"] == 0.5 and len(steps) == 3 + 2 + 10
        assert json.loads((out / "summary.json").read_text())["summary"]["config"]["pair"] == [0, 2]
    # the step budget and patience reach the path's recorded configuration
    out = tmp_path / "out-patience"
    args = ["path", str(model), str(data), "--steps", "2", "--max-iter", "7", "--patience", "3"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "summary.json").read_text())["summary"]["config"]
    assert (config["max_iter"], config["patience"]) == (7, 3)
    # --certify: two reruns, kept next to the path, and the verdict printed
    out = tmp_path / "out-certify"
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--certify"])
    assert result.exit_code == 0, result.output
    assert "certified" in result.output
    assert (out / "certify" / "double-budget" / "steps.csv").is_file()
    assert (out / "certify" / "other-rounding" / "steps.csv").is_file()


def test_path_errors_name_the_problem(tmp_path):
    model, data = _save_user_problem(tmp_path, "pt")
    runner = CliRunner()
    r = runner.invoke(main, ["path", str(tmp_path / "nope.pt"), str(data)])
    assert r.exit_code != 0 and "model file not found" in r.output
    r = runner.invoke(main, ["path", str(model), str(data), "--layer", "2"])
    assert r.exit_code != 0 and "--layer=2 is not a hidden layer" in r.output
    r = runner.invoke(main, ["path", str(model), str(data), "--pair", "1-1"])
    assert r.exit_code != 0 and "l == m" in r.output
    r = runner.invoke(main, ["path", str(model), str(data), "--solver", "lbfgs", "--patience", "4"])
    assert r.exit_code != 0 and "patience applies to the trust-region solvers" in r.output
    (tmp_path / "junk.pt").write_bytes(b"not a pickle")
    r = runner.invoke(main, ["path", str(tmp_path / "junk.pt"), str(data)])
    assert r.exit_code != 0 and "corrupt model file" in r.output
