"""The limit of a channel of a third neuron with a partner, under the path's own constraint."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from weightsym.channels import ChannelChart, ChannelLoss
from weightsym.constraints import ConstrainedLoss, PairConstraint
from weightsym.diagnostics import Thresholds, step_diagnostics
from weightsym.io import CorruptFileError
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.partner_channel import (
    PULL_BACK,
    PartnerChannel,
    PartnerLimit,
    PartnerLimitLoss,
    find_partner_channel,
    partner_limit,
    partner_on_channel,
    pulled_back,
)
from weightsym.paths import PathConfig, PermutationPath, StepRecord, find_path, load_path
from weightsym.paths.find import _partner_channel, _partner_restart
from weightsym.paths.reduced import SolverChart
from weightsym.paths.step import solve_step

LIMIT_ATOL = 1e-12  # the limiting network against ChannelLoss at d = 0 (same function)
FD_RTOL = 1e-6  # gradients against central differences (step 1e-6)
PAIR, PARTNER = (1, 3), (1, 0)  # the merging pair of layer 2; neuron 0 moves onto pair neuron 1


def _problem(act: str = "softplus") -> tuple[Loss, torch.Tensor]:
    net = MLP([3, 5, 4, 2], act)
    X = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return Loss(net, X, net(net.init(seed=1), X)), net.init(seed=2)


def _channel_point(loss: Loss, theta: torch.Tensor, delta: float) -> torch.Tensor:
    """theta with neuron 0 of layer 2 at delta from neuron 1 and sigma, kappa held fixed."""
    chart = ChannelChart(loss, 2, PARTNER)
    x, _ = chart.to_channel(theta)
    return chart.to_theta(x, delta)


def test_limit_loss_is_the_channel_limit_and_the_delta_to_zero_limit() -> None:
    loss, theta = _problem()
    limit = PartnerLimitLoss(loss, 2, PARTNER)
    start, delta = limit.to_limit(theta)
    chart = ChannelChart(loss, 2, PARTNER)
    x, _ = chart.to_channel(theta)

    assert abs(limit(start) - ChannelLoss(chart, 0.0)(x)) <= LIMIT_ATOL
    # the original network with the two neurons delta apart tends to it linearly in delta
    gaps = [abs(loss(_channel_point(loss, theta, s)) - limit(start)) for s in (1e-2, 1e-3, 1e-4)]
    assert gaps[1] / gaps[0] == pytest.approx(0.1, rel=0.05)  # O(delta): a tenth per decade
    assert gaps[2] / gaps[1] == pytest.approx(0.1, rel=0.05)
    assert delta == pytest.approx(float((theta[chart.I_m] - theta[chart.I_l]).norm()), rel=1e-15)


def test_constrained_gradient_matches_central_differences() -> None:
    loss, theta = _problem("tanh")
    con = PairConstraint(loss.net, 2, PAIR)
    limit = PartnerLimitLoss(loss, 2, PARTNER)
    start, _ = limit.to_limit(theta)
    obj = ConstrainedLoss(limit, con, 0.3)  # type: ignore[arg-type]
    phi = con.normalize(con.chart(start))
    _, g = obj.value_and_grad(phi)
    eye = torch.eye(phi.numel(), dtype=phi.dtype)
    fd = torch.tensor(
        [(obj(phi + 1e-6 * e) - obj(phi - 1e-6 * e)) / 2e-6 for e in eye], dtype=phi.dtype
    )
    assert torch.allclose(g, fd, rtol=FD_RTOL, atol=FD_RTOL * float(g.abs().max()))
    v = torch.randn(phi.numel(), dtype=phi.dtype, generator=torch.Generator().manual_seed(3))
    fd_hv = (obj.value_and_grad(phi + 1e-6 * v)[1] - obj.value_and_grad(phi - 1e-6 * v)[1]) / 2e-6
    hv = obj.hvp(phi, v)
    assert torch.allclose(hv, fd_hv, rtol=1e-5, atol=1e-5 * float(hv.abs().max()))


def test_partner_limit_keeps_the_pair_distance_and_converges() -> None:
    """Targets made by a limiting network that meets the constraint at d, so the infimum is 0
    at a finite point: from a nearby real network (neurons 0 and 1 at 1e-3) the limit
    converges to it, with the pair still at distance d."""
    loss, theta = _problem()
    con, d = PairConstraint(loss.net, 2, PAIR), 0.25
    limit = PartnerLimitLoss(loss, 2, PARTNER)
    target, _ = limit.to_limit(con.embed(con.normalize(con.chart(theta)), d))
    chart = limit.chart
    Y = chart.forward(target[limit._order], 0.0, loss.X)
    fitted = Loss(loss.net, loss.X, Y)
    gen = torch.Generator().manual_seed(5)
    noise = torch.randn(target.numel(), dtype=target.dtype, generator=gen)
    x = (target + 1e-3 * noise)[limit._order]
    start = con.embed(con.normalize(con.chart(chart.to_theta(x, 1e-3))), d)
    res = partner_limit(fitted, con, d, start, PARTNER, tol=1e-10, max_iter=200)
    assert res.converged and res.grad_inf <= 1e-10 and res.loss <= 1e-12  # from 3.7e-6
    assert res.distance == pytest.approx(d, rel=1e-12)
    assert res.loss < res.start_loss and res.delta_start == pytest.approx(1e-3, rel=1e-9)


def test_partner_limit_refuses_what_it_cannot_do() -> None:
    loss, theta = _problem()
    con = PairConstraint(loss.net, 2, PAIR)
    with pytest.raises(ValueError, match="j = 3 is a neuron of the merging pair"):
        partner_limit(loss, con, 0.3, theta, (0, 3))
    joint = PairConstraint(loss.net, 2, PAIR, "joint")
    with pytest.raises(ValueError, match="'joint' distance constrains its output weights"):
        partner_limit(loss, joint, 0.3, theta, PARTNER)
    with pytest.raises(ValueError, match="d must be"):
        partner_limit(loss, con, 0.0, theta, PARTNER)
    with pytest.raises(ValueError, match="pair"):
        partner_limit(loss, con, 0.3, theta, (1, 1))
    with pytest.raises(ValueError, match="partner must be a tuple"):
        partner_limit(loss, con, 0.3, theta, [1, 0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="loss must be"):
        PartnerLimitLoss(object(), 2, PARTNER)  # type: ignore[arg-type]


CANCEL = Thresholds().cancel


def _on_channel(loss: Loss, theta: torch.Tensor, delta: float) -> torch.Tensor:
    """theta with neuron 0 of layer 2 moved to delta from neuron 1, the function kept to O(delta)
    (sigma and kappa held: output weights +-kappa / (2 delta), opposite)."""
    return _channel_point(loss, theta, delta)


def test_a_point_on_a_partner_channel_is_recognised() -> None:
    """Neuron 0 moved onto neuron 1 (1e-5 apart, opposite output weights ~ 1e5): (p, j) = (1, 0);
    not when the path started there, nor with output weights of one sign, nor 5% of
    |vartheta_1| apart."""
    loss, theta = _problem()
    net = loss.net
    point = _on_channel(loss, theta, 1e-5)
    dg = step_diagnostics(net, point, theta, 2, PAIR)
    assert dg.flag_elsewhere and (dg.other_neuron, dg.other_partner) == (0, 1)
    assert partner_on_channel(net, point, theta, 2, PAIR, dg, CANCEL) == (1, 0)
    assert partner_on_channel(net, point, point, 2, PAIR, dg, CANCEL) is None  # no approach
    same = point.clone()
    same[net.output_index(2, 0)] = point[net.output_index(2, 1)]  # both +-1e5 of one sign
    dg_same = step_diagnostics(net, same, theta, 2, PAIR)
    assert dg_same.flag_elsewhere
    assert partner_on_channel(net, same, theta, 2, PAIR, dg_same, CANCEL) is None
    far = point.clone()  # outputs kept, neuron 0 moved to 5% of |vartheta_1| from neuron 1
    v0, v1 = net.neuron_slice(2, 0), net.neuron_slice(2, 1)
    e = point[v0] - point[v1]
    far[v0] = point[v1] + 0.05 * float(point[v1].norm()) * e / e.norm()
    dg_far = step_diagnostics(net, far, theta, 2, PAIR)
    assert dg_far.flag_elsewhere and dg_far.other_partner_distance * 10 <= float(
        (theta[v0] - theta[v1]).norm()
    )
    assert partner_on_channel(net, far, theta, 2, PAIR, dg_far, CANCEL) is None  # not close
    quiet = step_diagnostics(net, theta, theta, 2, PAIR)
    assert partner_on_channel(net, theta, theta, 2, PAIR, quiet, CANCEL) is None
    # a channel of two pair neurons is the pair's own (flag_channel), not a partner channel
    dg_pair = step_diagnostics(net, point, theta, 2, (0, 1))
    assert partner_on_channel(net, point, theta, 2, (0, 1), dg_pair, CANCEL) is None


def test_the_barrier_step_decides_which_channel_and_where_its_limit_is_taken() -> None:
    loss, theta = _problem()
    net = loss.net
    points = [theta, _on_channel(loss, theta, 1e-5), _on_channel(loss, theta, 1e-6), theta]
    thetas = torch.stack(points)
    steps = [(i, step_diagnostics(net, th, theta, 2, PAIR)) for i, th in enumerate(points)]
    assert find_partner_channel(net, thetas, 2, PAIR, steps, 2, CANCEL) == ((1, 0), (1, 2), 2)
    assert find_partner_channel(net, thetas, 2, PAIR, steps, 3, CANCEL) == ((1, 0), (1, 2), 2)
    assert find_partner_channel(net, thetas, 2, PAIR, steps, 1, CANCEL) == ((1, 0), (1, 2), 1)
    assert find_partner_channel(net, thetas, 2, PAIR, steps[::3], 0, CANCEL) is None


@pytest.fixture(scope="module")
def short_path() -> tuple[Loss, PermutationPath]:
    loss, theta = _problem()
    return loss, find_path(loss, theta, 2, PAIR, steps=4, solver="newton", max_iter=20)


def _grafted(loss: Loss, path: PermutationPath, delta: float) -> PermutationPath:
    """The path with its last descent step moved onto the channel of neuron 0 with 1."""
    last = max(i for i, r in enumerate(path.records) if r.segment == "descent")
    thetas = path.thetas.clone()
    thetas[last] = _on_channel(loss, path.thetas[last], delta)
    records = list(path.records)
    records[last] = dataclasses.replace(
        records[last],
        loss=loss(thetas[last]),
        diagnostics=step_diagnostics(loss.net, thetas[last], thetas[0], 2, PAIR),
    )
    return PermutationPath(loss.net, path.theta_star, path.config, records, thetas)


def test_a_path_step_on_a_partner_channel_is_reported_with_its_limit(short_path) -> None:
    """The limit is solved at the step's own d, from within O(delta) of the step's loss, and
    lies at or below where it started; it travels through summary.json and back."""
    loss, path = short_path
    grafted = _grafted(loss, path, 1e-7)
    last = max(i for i, r in enumerate(grafted.records) if r.segment == "descent")
    con = PairConstraint(loss.net, 2, PAIR)
    pc = _partner_channel(loss, con, grafted, None)
    assert pc is not None and pc.partner == (1, 0) and pc.steps == (last,)
    assert pc.limit_index == last and pc.limit is not None
    step_loss = float(grafted.loss[last])
    assert pc.limit.distance == pytest.approx(float(grafted.d[last]), rel=1e-12)
    assert abs(pc.limit.start_loss - step_loss) <= 1e-4 * step_loss  # O(delta) apart
    assert pc.limit.loss <= pc.limit.start_loss
    assert pc.limit.delta_start == pytest.approx(1e-7, rel=1e-6)
    assert PartnerChannel.from_dict(json.loads(json.dumps(pc.as_dict()))) == pc
    grafted.partner_channel = pc
    cols = grafted.summary().partner_columns()
    assert cols["partner_channel"] == "1~0" and cols["partner_steps"] == 1
    assert cols["partner_limit"] == pc.limit.loss
    assert _partner_channel(loss, con, path, None) is None  # the path as solved has none


def test_a_finished_folder_keeps_its_partner_channel_and_refuses_a_tampered_one(
    tmp_path, monkeypatch
) -> None:
    """What a finished run found is stored (sealed) in summary.json, read back by load_path,
    and reused, not solved again, when the folder is run again."""
    from weightsym.paths import find as find_module

    loss, theta = _problem()
    folder = tmp_path / "p"
    plain = find_path(loss, theta, 2, PAIR, steps=2, solver="newton", max_iter=5)
    assert plain.partner_channel is None
    assert plain.summary().as_dict()["partner_channel"] is None
    monkeypatch.setattr(  # as if step 1 sat on the channel of neuron 0 with neuron 1
        PermutationPath, "partner_channel_steps", lambda self: ((1, 0), (1,), 1)
    )
    path = find_path(loss, theta, 2, PAIR, steps=2, solver="newton", max_iter=5, out=folder)
    stored = path.partner_channel
    assert stored is not None and stored.limit is not None
    assert stored.limit.distance == pytest.approx(float(path.d[1]), rel=1e-12)
    assert load_path(folder, loss.net).partner_channel == stored

    def refuse(*args, **kwargs):
        raise AssertionError("the partner limit was solved again")

    monkeypatch.setattr(find_module, "partner_limit", refuse)
    again = find_path(loss, theta, 2, PAIR, steps=2, solver="newton", max_iter=5, out=folder)
    assert again.partner_channel == stored
    file = folder / "summary.json"
    body = json.loads(file.read_text())
    body["summary"]["partner_channel"] = {"partner": [1, 0], "code": "x"}
    file.write_text(json.dumps(body))
    with pytest.raises(CorruptFileError):
        load_path(folder, loss.net)


def test_a_stored_partner_channel_with_wrong_fields_is_refused() -> None:
    good = PartnerChannel((1, 0), (1, 2), 2, None).as_dict()
    assert PartnerChannel.from_dict(good) == PartnerChannel((1, 0), (1, 2), 2, None)
    for bad, match in [
        ({"partner": [1, 0]}, "unexpected fields"),
        (dict(good, partner=[1]), "not a pair"),
        (dict(good, steps=3), "steps is not a list"),
        (dict(good, limit={"loss": 1.0}), "limit has unexpected fields"),
    ]:
        with pytest.raises(ValueError, match=match):
            PartnerChannel.from_dict(bad)


def test_the_certificate_compares_partner_channels_and_their_limits() -> None:
    """Every run must meet the same partner channel, or none, and agree on its limit."""
    from weightsym import certify

    def run(partner, limit):
        return certify.RunValues(
            "r", 1.0, 0.5, 3, 2.0, 0, 0.0, partner=partner, partner_limit=limit
        )

    def problems(*runs):
        return certify._channel_problems(tuple(run(*r) for r in runs), 1e-2)

    assert problems(("1~0", 1.0), ("1~0", 1.001), ("1~0", 1.0)) == []
    assert problems((None, None), (None, None), (None, None)) == []
    assert "partner_limit differs by 0.0909" in problems(("1~0", 1.0), ("1~0", 1.1), ("1~0", 1))[0]
    assert (
        "different partner channels (r: 1~0, r: none"
        in problems(("1~0", 1.0), (None, None), ("1~0", 1.0))[0]
    )
    assert problems(("1~0", 1.0), ("1~0", None), ("1~0", 1.0)) == [
        "a partner limit was taken in some runs only"
    ]
    cert = certify.PathCertificate(
        tuple(run("1~0", v) for v in (1.0, 1.2, 1.0)), 1e-2, 1e-2, 1e-3, 0.0, 2e-3, True, True, ""
    )
    assert cert.spread == pytest.approx(0.2 / 1.2, rel=1e-12)


def test_the_path_command_says_what_the_channels_tend_to(short_path) -> None:
    from weightsym.commands.path import channel_lines

    loss, path = short_path
    assert channel_lines(path.summary()) == []
    limit = PartnerLimit(1.5e-5, 1e-7, False, 40, "budget", 2.0e-5, 1e-6, 3.0, 0.1)
    path.partner_channel = PartnerChannel((13, 0), (15, 16, 17), 17, limit)
    try:
        (line,) = channel_lines(path.summary())
    finally:
        path.partner_channel = None
    assert line == (
        "partner channel: neuron 0 onto 13 on 3 descent steps; at step 17 it tends to "
        "1.500000e-05 (not converged: an upper bound; from 2.000000e-05)"
    )


def test_pulled_back_keeps_sigma_and_kappa_and_sets_the_distance() -> None:
    loss, theta = _problem()
    point = _on_channel(loss, theta, 1e-8)
    back = pulled_back(loss, point, 2, PARTNER)
    chart = ChannelChart(loss, 2, PARTNER)
    (x, _), (x_back, delta_back) = chart.to_channel(point), chart.to_channel(back)
    assert delta_back == pytest.approx(PULL_BACK * float(point[chart.I_l].norm()), rel=1e-12)
    assert torch.allclose(x_back, x, rtol=1e-9, atol=1e-12)  # sigma, kappa, e and the rest
    assert float(back.abs().max()) < 1e-4 * float(point.abs().max())  # |w| ~ kappa / delta


def _stalled_step(cfg: PathConfig):
    """One step started with neuron 0 1e-8 from neuron 1 (output weights ~1e8): L-BFGS stalls."""
    loss, theta = _problem()
    con = PairConstraint(loss.net, 2, PAIR)
    th = _on_channel(loss, theta, 1e-8)
    d = 0.5 * con.measure(th)
    chart = SolverChart(loss, con, th, cfg)
    phi0 = con.normalize(con.chart(th))
    phi, out = solve_step(loss, con, d, phi0, phi0, cfg, chart=chart)
    dg = step_diagnostics(loss.net, con.embed(phi, d), theta, 2, PAIR)
    return loss, theta, con, d, chart, (phi, out, dg)


RESTART = PathConfig(
    layer=2, pair=PAIR, solver="lbfgs", max_iter=30, tol=1e-10, partner_restart=True
)


def test_a_step_stalled_on_a_partner_channel_is_restarted_and_the_lower_kept() -> None:
    """Measured: the stalled solve ends at 0.42 (line search failed), the restart at 0.070."""
    loss, theta, con, d, chart, solved = _stalled_step(RESTART)
    phi, out, dg = solved
    assert not out.converged and "stalled" in out.message
    th = con.embed(phi, d)
    assert partner_on_channel(loss.net, th, theta, 2, PAIR, dg, CANCEL) == (1, 0)
    phi2, kept, dg2 = _partner_restart(loss, con, d, solved, theta, theta, RESTART, chart)
    assert kept.restarted and kept.loss < 0.5 * out.loss
    assert kept.message.startswith("restarted with neuron 0 pulled back from its partner 1")
    assert kept.nit > out.nit and kept.wall_time > out.wall_time  # both solves counted
    assert float(con.embed(phi2, d).abs().max()) < 1e-3 * float(th.abs().max())
    assert con.measure(con.embed(phi2, d)) == pytest.approx(d, rel=1e-12)
    assert dg2 == step_diagnostics(loss.net, con.embed(phi2, d), theta, 2, PAIR)
    row = StepRecord(index=1, segment="descent", d=d, t=0.1, **kept.__dict__, diagnostics=dg2)
    assert StepRecord.from_row(json.loads(json.dumps(row.as_row()))).restarted


def test_a_restart_that_is_not_lower_is_dropped(monkeypatch) -> None:
    from weightsym.paths import find as find_module

    loss, theta, con, d, chart, solved = _stalled_step(RESTART)
    worse = dataclasses.replace(solved[1], loss=2 * solved[1].loss)
    monkeypatch.setattr(find_module, "solve_step", lambda *a, **k: (solved[0], worse))
    assert _partner_restart(loss, con, d, solved, theta, theta, RESTART, chart) is solved


def test_partner_restart_is_a_recorded_bool_setting() -> None:
    assert "partner_restart" not in PathConfig().as_dict()
    assert RESTART.as_dict()["partner_restart"] is True
    with pytest.raises(TypeError, match="partner_restart must be a bool"):
        PathConfig(partner_restart=1).validate()  # type: ignore[arg-type]
