"""The permutation path (Sec. 4.1, docs/theory.md sections 4-5) on the toy teacher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import weightsym as ws
from weightsym.experiments.toy import ToyConfig, toy_problem
from weightsym.paths import PathConfig, find_path

SMALL = ToyConfig(samples=200)


def _path(act: str, pair=(1, 3), steps=12, **kw):
    loss, theta = toy_problem(act, SMALL)
    return loss, theta, find_path(loss, theta, 1, pair, steps=steps, **kw)


@pytest.fixture(scope="module")
def joint():
    return _path("softplus", distance="joint")


@pytest.fixture(scope="module")
def incoming():
    return _path("softplus", steps=40, distance="incoming")


def test_endpoints_and_mirror(joint):
    loss, theta, path = joint
    net = loss.net
    t, thetas, losses = path.full()
    l, m = path.pair
    # the path starts on theta* and ends on sigma_{l<->m}(theta*) (to 1e-12)
    assert (thetas[0] - theta).abs().max() <= 1e-12
    assert (thetas[-1] - ws.swap(net, theta, 1, l, m)).abs().max() <= 1e-12
    # the second half is exactly the swapped mirror of the first (bitwise)
    n = len(path.thetas)
    for i in range(n - 1):
        assert torch.equal(thetas[n + i], ws.swap(net, path.thetas[n - 2 - i], 1, l, m))
        assert losses[n + i] == losses[n - 2 - i]
        assert float(t[n + i]) == pytest.approx(1 - float(t[n - 2 - i]), abs=1e-15)
    # at t = 1/2 the pair coincides in parameter and output vectors (to 1e-12)
    mid = path.thetas[-1]
    assert float(path.t[-1]) == 0.5
    assert (mid[net.neuron_slice(1, l)] - mid[net.neuron_slice(1, m)]).abs().max() <= 1e-12
    assert (mid[net.output_index(1, l)] - mid[net.output_index(1, m)]).abs().max() <= 1e-12
    # d decreases monotonically to 0, t increases
    d = path.d[: path.num_solved]
    assert bool((d[1:] < d[:-1]).all()) and float(d[-1]) == 0.0
    assert bool((path.t[1:] > path.t[:-1]).all())


def test_distance_constraint_holds_at_every_step(joint, incoming):
    for loss, _, path in (joint, incoming):
        net, (l, m) = loss.net, path.pair
        for rec, th in zip(path.records, path.thetas):
            if rec.segment != "descent":
                continue
            dv = th[net.neuron_slice(1, m)] - th[net.neuron_slice(1, l)]
            if path.config.distance == "joint":
                dv = torch.cat([dv, th[net.output_index(1, m)] - th[net.output_index(1, l)]])
            assert float(dv.norm()) == pytest.approx(rec.d, rel=1e-12)  # constraint to 1e-12


def test_output_shift_keeps_loss_constant(incoming):
    loss, _, path = incoming
    seg = [r for r in path.records if r.segment in ("merge", "shift")]
    base = seg[0].loss
    l, m = path.pair
    first, last = path.thetas[-len(seg)], path.thetas[-1]
    # the shift really moves the output weights (not a trivial segment)
    assert (
        float((first[loss.net.output_index(1, l)] - last[loss.net.output_index(1, l)]).norm()) > 0
    )
    for r in seg:
        assert abs(r.loss - base) <= 1e-12 * max(1.0, abs(base))  # constant to 1e-12 rel


def test_every_step_converges_or_says_why(joint, incoming):
    reasons = ("budget exhausted", "no progress", "diverging", "NaN")
    for _, _, path in (joint, incoming):
        s = path.summary()  # the barrier says whether its step converged (else an upper bound)
        assert s.barrier.converged == bool(path.converged[s.barrier.index])
        for rec in path.records[: path.num_solved]:
            if rec.converged:
                assert rec.grad_inf <= 1e-12  # the tolerance of the fast solver
            else:
                assert rec.grad_inf > 1e-12 or "NaN" in rec.message
                assert any(r in rec.message for r in reasons), rec.message


def test_patience_ends_channel_steps_early_but_not_the_merge():
    """With patience 3 the softplus channel steps stop as 'no progress' after a few iterations
    instead of walking to the budget (60), and the merge step (d = 0) runs without it. The
    price: the walk along the pair's channel is followed less far. On these 12 steps the
    channel flag rises without patience and not with it (patience 5 or 10 alike); on the
    200-step toy paths it rises either way."""
    _, _, full = _path("softplus", steps=12, distance="incoming")
    _, _, quick = _path("softplus", steps=12, distance="incoming", patience=3)
    assert full.flags()["flag_channel"] and "patience" in quick.config.as_dict()
    assert "patience" not in full.config.as_dict()  # off: recorded only where it acts
    stopped = [r for r in quick.records if "without halving grad_inf" in r.message]
    assert stopped and all(not r.converged and r.segment == "descent" for r in stopped)
    assert quick.records[quick.num_solved - 1].nit > 3  # the merge step ran on
    nit = lambda p: sum(r.nit for r in p.records if r.segment == "descent")  # noqa: E731
    print(f"\n  descent iterations: patience off {nit(full)}, patience 3 {nit(quick)}")
    assert nit(quick) < nit(full)


def test_channel_flag_incoming_not_joint(joint, incoming):
    _, _, p_in = incoming
    _, _, p_joint = joint
    assert p_in.flags()["flag_channel"]
    assert not p_joint.flags()["flag_channel"]
    # the channel: |w_l - w_m| grows like c / d. Over the last six steps (d from 6.8e-4 to
    # 2.1e-4, where the solver reaches grad_inf ~1e-11) d |w_l - w_m| stays constant
    recs = [r for r in p_in.records if r.segment == "descent"][-6:]
    products = [r.diagnostics.out_spread * r.d for r in recs]
    print("channel: d |w_l - w_m| / |w|_start =", [f"{x:.5f}" for x in products])
    assert max(products) <= 1.01 * min(products)  # constant to 1%
    assert recs[-1].diagnostics.out_spread > 1e3  # and large: |w_l - w_m| > 1e3 |w|_start
    # with the joint distance the path ends on the permutation point itself: at d = 0 the
    # output weights already coincide, so the shift segment does not move
    merged = [i for i, r in enumerate(p_joint.records) if r.segment == "merge"][0]
    assert (p_joint.thetas[merged] - p_joint.thetas[-1]).abs().max() <= 1e-12


def test_relu_rescaling_flag_without_gauge_only():
    _, _, plain = _path("relu", pair=(0, 1), steps=10, distance="incoming")
    loss, _, gauged = _path("relu", pair=(0, 1), steps=6, distance="incoming", gauge=True)
    assert plain.flags()["flag_rescaling"]
    assert not gauged.flags()["flag_rescaling"]
    for th in gauged.thetas:  # the gauge holds both input norms at 1 (to 1e-12)
        for i in (0, 1):
            assert float(th[loss.net.neuron_slice(1, i)].norm()) == pytest.approx(1, abs=1e-12)
    for a, b in zip(gauged.thetas[:1], [gauged.theta_star]):  # same function as theta*
        assert ws.same_function(loss.net, a, loss.net, b, loss.X)


def test_paper_gd_reports_its_budget():
    _, _, path = _path("softplus", steps=3, distance="incoming", solver="paper-gd", max_iter=20)
    assert not path.converged[1]
    assert "budget exhausted" in path.records[1].message
    assert path.records[1].nit == 20


_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from weightsym.experiments.toy import ToyConfig, toy_problem
    from weightsym.paths import find_path
    torch.set_num_threads(1)
    loss, theta = toy_problem("softplus", ToyConfig(samples=200))
    find_path(loss, theta, 1, (1, 3), steps=14, out=sys.argv[1])
    """
)


def _table(path):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in path.rows()]


def test_killed_path_resumes_with_identical_table(tmp_path):
    torch.set_num_threads(1)
    loss, theta = toy_problem("softplus", SMALL)  # slow enough steps (a channel) to kill one
    ref = find_path(loss, theta, 1, (1, 3), steps=14, out=tmp_path / "ref")
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(out)])
    deadline = time.time() + 120
    while time.time() < deadline:
        done = list((out / "steps").glob("step_*.json")) if (out / "steps").exists() else []
        if len(done) >= 4:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(list((out / "steps").glob("step_*.json")))
    assert 4 <= n_done < len(ref.records)  # killed mid-path
    resumed = find_path(loss, theta, 1, (1, 3), steps=14, out=out)
    assert _table(resumed) == _table(ref)
    assert torch.equal(resumed.thetas, ref.thetas)
    with pytest.raises(ValueError, match="steps"):
        find_path(loss, theta, 1, (1, 3), steps=15, out=out)  # another config: no resume


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"layer": 2}, "not a hidden layer"),
        ({"layer": 0}, "not a hidden layer"),
        ({"pair": (2, 2)}, "l == m"),
        ({"pair": (0, 9)}, "out of range"),
        ({"distance": "cosine"}, "unknown distance"),
        ({"solver": "adam"}, "unknown solver"),
        ({"gauge": True}, "positively homogeneous"),
        ({"steps": 0}, "steps"),
        ({"ratio": 1.5}, "ratio"),
        ({"patience": 0}, "patience must be a positive int"),
        ({"patience": 5, "solver": "lbfgs"}, "patience applies to the trust-region solvers"),
        ({"pair": (0,)}, "pair must be two neuron indices"),
        ({"pair": (0.7, 1.2)}, "pair must be two neuron indices"),
        ({"pair": (0, 1, 2)}, "pair must be two neuron indices"),
        ({"steps": True}, "steps must be an int"),
        ({"steps": 10**9}, "steps must be <= 100000"),
        ({"tol": float("inf")}, "tol must be positive and finite"),
        ({"max_iter": 0}, "max_iter"),
        ({"lr": float("nan")}, "lr must be positive"),
        ({"colour": "red"}, "unknown path option"),
    ],
)
def test_bad_arguments(kwargs, match):
    loss, theta = toy_problem("softplus", SMALL)
    args = {"layer": 1, "pair": (0, 1), "steps": 2} | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        find_path(loss, theta, args.pop("layer"), args.pop("pair"), **args)


def test_nan_theta_is_rejected():
    loss, theta = toy_problem("softplus", SMALL)
    bad = theta.clone()
    bad[3] = float("nan")
    with pytest.raises(ValueError, match="theta contains"):
        find_path(loss, bad, 1, (0, 1), steps=2)


def test_a_plain_function_is_not_a_loss():
    _, theta = toy_problem("softplus", SMALL)
    with pytest.raises(TypeError, match="loss must be a weightsym.Loss"):
        find_path(lambda th: float(th.sum()), theta, 1, (0, 1), steps=2)


def test_config_and_keywords_give_the_same_path():
    loss, theta = toy_problem("softplus", SMALL)
    cfg = PathConfig.preset("joint", layer=1, pair=(0, 1), steps=3, max_iter=10)
    a = find_path(loss, theta, cfg)
    b = find_path(loss, theta, 1, (0, 1), steps=3, max_iter=10, distance="joint")
    assert torch.equal(a.thetas, b.thetas)
    assert [r.as_row() | {"wall_time": 0} for r in a.records] == [
        r.as_row() | {"wall_time": 0} for r in b.records
    ]
    with pytest.raises(TypeError, match="either a PathConfig or keyword settings"):
        find_path(loss, theta, cfg, steps=4)
