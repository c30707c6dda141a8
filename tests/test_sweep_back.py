"""The backward sweep of a permutation path (``PathConfig.sweep_back``; docs/certification.md
section 5): every step solved again from the step after it, the lower kept."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from click.testing import CliRunner

from weightsym.cli import main
from weightsym.experiments.toy import ToyConfig, toy_problem
from weightsym.paths import PathConfig, StepRecord, find_path
from weightsym.paths import find as find_module

SMALL = ToyConfig(samples=200)
CFG = PathConfig.preset("joint", layer=1, pair=(0, 1), steps=12)  # toy softplus, 1.5 s a path


@pytest.fixture(scope="module")
def toy_paths():
    loss, theta = toy_problem("softplus", SMALL)
    forward = find_path(loss, theta, CFG)
    swept = find_path(loss, theta, CFG.replace(sweep_back=True))
    return loss, theta, forward, swept


def test_the_sweep_carries_a_lower_branch_back_and_the_barrier_moves_to_the_point(toy_paths):
    """Measured on the toy (softplus, joint, 0-1, 12 steps): the descent's barrier, 9.2e-5 at
    step 2, is a higher branch; swept back from the merge, steps 1-4 fall and the barrier is
    the loss at the permutation point, 3.42e-5."""
    loss, _, forward, swept = toy_paths
    assert not forward.barrier.at_point and forward.barrier.loss > 2 * swept.barrier.loss
    assert swept.barrier.at_point
    assert swept.barrier.loss == pytest.approx(forward.permutation_point_loss, rel=1e-12)
    kept = [r.index for r in swept.records if r.swept]
    assert kept == [1, 2, 3, 4]
    assert swept.summary().swept_steps == (1, 2, 3, 4) and forward.summary().swept_steps == ()
    assert swept.summary().as_dict()["swept_steps"] == [1, 2, 3, 4]
    gain = find_module.SWEEP_GAIN
    for a, b, tha, thb in zip(forward.records, swept.records, forward.thetas, swept.thetas):
        if b.swept:
            assert b.loss < a.loss * (1 - gain)
            assert b.message.startswith(f"swept back from step {b.index + 1}: ")
            assert b.message.endswith(f"(the first solve: {a.loss:.6g})")
            assert b.nit > a.nit and b.ngev > a.ngev  # both solves counted
            assert float(loss(thb)) == pytest.approx(b.loss, rel=1e-12)
            assert b.d == a.d
        else:  # not lower by SWEEP_GAIN: the descent's own solve, bitwise
            assert _timeless(b) == _timeless(a) and torch.equal(tha, thb)


def _timeless(rec: StepRecord) -> StepRecord:
    return dataclasses.replace(rec, wall_time=0.0)


def test_a_swept_step_keeps_its_distance_and_its_flag_survives_the_row(toy_paths):
    loss, _, _, swept = toy_paths
    net, (l, m) = loss.net, swept.pair
    for rec, th in zip(swept.records, swept.thetas):
        if rec.segment == "descent":
            dv = torch.cat(
                [
                    th[net.neuron_slice(1, m)] - th[net.neuron_slice(1, l)],
                    th[net.output_index(1, m)] - th[net.output_index(1, l)],
                ]
            )
            assert float(dv.norm()) == pytest.approx(rec.d, rel=1e-12)  # constraint to 1e-12
    row = next(r for r in swept.records if r.swept).as_row()
    assert row["swept"] is True and StepRecord.from_row(row).swept
    older = {k: v for k, v in row.items() if k != "swept"}  # a row written before the sweep
    assert StepRecord.from_row(older).swept is False


def test_a_second_solve_lower_by_less_than_the_gain_is_dropped(toy_paths, monkeypatch):
    loss, theta, forward, _ = toy_paths
    n = CFG.steps + 2
    by_d = {r.d: r.loss for r in forward.records if r.segment == "descent"}
    solve = find_module.solve_step
    count = [0]

    def barely_lower(loss_, con, d, *args, **kwargs):
        count[0] += 1
        phi, out = solve(loss_, con, d, *args, **kwargs)
        if count[0] > n:  # the sweep: a second solve lower by half the gain
            out = dataclasses.replace(out, loss=by_d[d] * (1 - 0.5 * find_module.SWEEP_GAIN))
        return phi, out

    monkeypatch.setattr(find_module, "solve_step", barely_lower)
    path = find_path(loss, theta, CFG.replace(sweep_back=True))
    assert count[0] == 2 * n - 2  # every step but d_0 and the merge solved twice
    assert not any(r.swept for r in path.records)
    assert [r.loss for r in path.records] == [r.loss for r in forward.records]


class _Killed(RuntimeError):
    pass


def test_a_sweep_killed_midway_resumes_with_identical_numbers(toy_paths, tmp_path, monkeypatch):
    loss, theta, _, swept = toy_paths
    cfg = CFG.replace(sweep_back=True)
    n = CFG.steps + 2
    solve = find_module.solve_step
    count = [0]

    def dies_in_the_sweep(*args, **kwargs):
        count[0] += 1
        if count[0] > n + 5:  # the descent's n solves, then five of the sweep
            raise _Killed
        return solve(*args, **kwargs)

    monkeypatch.setattr(find_module, "solve_step", dies_in_the_sweep)
    with pytest.raises(_Killed):
        find_path(loss, theta, cfg, out=tmp_path / "run")
    stored = sorted(int(p.stem.split("_")[1]) for p in (tmp_path / "run/steps").glob("*.json"))
    assert stored == list(range(n)) + list(range(2 * n - 6, 2 * n - 1))  # d_S .. d_{S-4}
    monkeypatch.setattr(find_module, "solve_step", solve)
    resumed = find_path(loss, theta, cfg, out=tmp_path / "run")
    assert [_timeless(r) for r in resumed.records] == [_timeless(r) for r in swept.records]
    assert torch.equal(resumed.thetas, swept.thetas)
    assert cfg.checkpoint_steps == 2 * n - 2 == len(list((tmp_path / "run/steps").glob("*.json")))


def test_sweep_back_is_a_recorded_bool_setting_and_a_cli_option(tmp_path) -> None:
    assert "sweep_back" not in CFG.as_dict() and CFG.checkpoint_steps == CFG.steps + 2
    assert CFG.replace(sweep_back=True).as_dict()["sweep_back"] is True
    assert PathConfig.from_dict(CFG.replace(sweep_back=True).as_dict()).sweep_back is True
    with pytest.raises(TypeError, match="sweep_back must be a bool"):
        PathConfig(sweep_back="yes").validate()  # type: ignore[arg-type]
    files = {}
    for flag in ("--no-sweep-back", None):  # the toy's default is on
        out = tmp_path / str(flag)
        args = ["toy", "--out", str(out), "--pairs", "0-1", "--variants", "joint", "--steps", "3"]
        args += ["--activations", "softplus", *([flag] if flag else [])]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        folder = next((out / "paths").iterdir())
        files[flag] = len(list((folder / "steps").glob("*.json")))
    assert files == {"--no-sweep-back": 3 + 2, None: 2 * (3 + 2) - 2}
