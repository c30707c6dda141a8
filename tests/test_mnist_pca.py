"""The reduced MNIST (``pca``): the digits projected onto their top K whitened principal
components (docs/theory.md sections 7 and 8). Teachers K-H-H-10 are trained on the projected
inputs; a tiny sweep with the dense trust-region solver writes its tables and records ``pca``
in every stored configuration; a rerun with another K never reuses the teachers or paths."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from weightsym.cli import main
from weightsym.experiments.mnist import MNIST_PATH, MnistConfig, PathJob, run_mnist, run_path
from weightsym.experiments.mnist.path import stored_result
from weightsym.experiments.mnist.problem import load_digits
from weightsym.experiments.mnist.teachers import TeacherConfig, load_teacher
from weightsym.optimize import DENSE_MAX_PARAMS

LIMIT, K, H = 500, 10, 4
CFG = MnistConfig(
    widths=(H,),
    seeds=(0,),
    variants=("joint",),
    limit=LIMIT,
    pca=K,
    target_accuracy=0.8,
    teacher_max_iter=300,
    path=MNIST_PATH.replace(steps=3, solver="auto", max_iter=20),
    lanczos_steps=10,
    workers=1,
    threads=1,
)
CLI_SAME_SETTINGS = [
    "--widths", str(H), "--seeds", "0", "--variants", "joint", "--limit", str(LIMIT),
    "--target-accuracy", "0.8", "--teacher-max-iter", "300", "--steps", "3", "--solver", "auto",
    "--max-iter", "20", "--lanczos-steps", "10", "--workers", "1", "--threads", "1",
    "--no-progress",
]  # fmt: skip


def test_pca_setting_is_checked_and_sets_the_input_width() -> None:
    for bad in (0, 785, True, 2.0, "10"):
        with pytest.raises(ValueError, match="pca must be None or an int in 1..784"):
            MnistConfig(pca=bad).validate()
    assert TeacherConfig(width=5, seed=0).widths == [784, 5, 5, 10]
    assert TeacherConfig(width=5, seed=0, pca=20).widths == [20, 5, 5, 10]
    assert CFG.teacher_config(H, 0, "x").pca == K and CFG.as_dict()["pca"] == K
    for bad in ("0", "785"):
        res = CliRunner().invoke(main, ["mnist", "--pca", bad, "--no-progress"])
        assert res.exit_code == 2 and "--pca" in res.output


def test_load_digits_projects_onto_whitened_components() -> None:
    """(T, K) inputs with identity covariance (to 1e-10), labels unchanged; a K above the
    rank of the digits (at most 19 for 20 digits) is refused naming pca."""
    X, y = load_digits(CFG)
    X0, y0 = load_digits(MnistConfig(limit=LIMIT))
    assert X.shape == (LIMIT, K) and X0.shape == (LIMIT, 784) and torch.equal(y, y0)
    cov = X.T @ X / LIMIT
    assert torch.allclose(cov, torch.eye(K, dtype=torch.float64), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="pca = 50 is too many components"):
        load_digits(MnistConfig(limit=20, pca=50))
    with pytest.raises(ValueError, match="pca = 50 is too many components"):
        run_mnist(MnistConfig(limit=20, pca=50, widths=(2,), seeds=(0,)), "unused", False)


def test_reduced_sweep_with_the_dense_solver_records_pca_and_is_not_reused_for_another_k(
    tmp_path,
) -> None:
    """run_mnist with pca = 10 on 500 digits, H = 4, solver "auto": the network is small enough
    for the dense trust-region Newton (every solved step evaluates Hessians), the tables are
    written and summary.json, the teacher file and mnist.json record pca. Rerun with pca = 8:
    the stored teacher is refused (the sweep fails naming the configuration) and the stored path
    result does not match; with the teacher removed, the path's checkpoint is refused."""
    out = tmp_path / "run"
    summary = run_mnist(CFG, out, progress=False)
    for name in ("steps.csv", "summary.csv", "table.csv", "summary.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "summary.json").read_text())["config"]["pca"] == K
    teacher = load_teacher(out / "teachers" / f"H{H}-seed0.pt")
    assert teacher.config.pca == K and teacher.net.widths == [K, H, H, 10]
    assert teacher.net.num_params <= DENSE_MAX_PARAMS
    job = PathJob(CFG, H, 0, "joint", str(out))
    assert json.loads((job.folder / "mnist.json").read_text())["key"]["pca"] == K
    row = summary.rows[0]
    assert row.loss_start <= 1e-20 and row.teacher_accuracy >= 0.8
    steps = stored_result(job).steps
    assert len(steps) == 3 + 2 + MNIST_PATH.shift_points
    solved = [s.record for s in steps if s.record.segment != "shift" and s.record.index > 0]
    assert solved and all(r.nhev >= 1 for r in solved)  # dense Newton, not Newton-CG

    other = dataclasses.replace(CFG, pca=8)
    assert stored_result(PathJob(other, H, 0, "joint", str(out))) is None
    res = CliRunner().invoke(main, ["mnist", "--out", str(out), "--pca", "8", *CLI_SAME_SETTINGS])
    assert res.exit_code == 2  # a failed sweep (CommandError): one message, no traceback
    assert "trained with a different configuration" in res.output and "'pca': 8" in res.output
    shutil.rmtree(out / "teachers")
    with pytest.raises(ValueError, match="checkpoint .* different"):
        run_path(PathJob(other, H, 0, "joint", str(out)))
