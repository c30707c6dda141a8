"""Channel coordinates (docs/theory.md section 5.4): same function, finite limit at d = 0."""

from __future__ import annotations

import math

import pytest
import torch

from weightsym import channels
from weightsym.channels import ChannelChart, ChannelLoss, channel_trend
from weightsym.experiments.toy import ToyConfig, toy_problem
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.paths import find_path, load_path

SAME_RTOL = 1e-12  # the network in channel coordinates against the original one, d > 0
FD_RTOL = 1e-6  # gradients against central differences (step 1e-6)
HVP_ATOL = 1e-10  # torch.func Hessian-vector product against the dense torch.func Hessian

CASES = [  # activation, layer, pair
    ("softplus", 1, (1, 3)),
    ("softplus", 1, (3, 1)),
    ("tanh", 2, (0, 2)),
    ("gelu", 2, (3, 1)),
    ("relu", 1, (0, 4)),
]


def _problem(act: str, seed: int = 0) -> tuple[Loss, torch.Tensor]:
    net = MLP([3, 5, 4, 2], act)
    X = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return Loss(net, X, net(net.init(seed=1), X)), net.init(seed=2)


@pytest.mark.parametrize(("act", "layer", "pair"), CASES)
def test_same_function_at_positive_d(act: str, layer: int, pair: tuple[int, int]) -> None:
    loss, theta = _problem(act)
    chart = ChannelChart(loss, layer, pair)
    x, d = chart.to_channel(theta)
    assert d == pytest.approx(float((theta[chart.I_m] - theta[chart.I_l]).norm()), rel=1e-15)
    assert torch.allclose(chart.to_theta(x, d), theta, rtol=0, atol=1e-14)
    f, f_c = loss.net(theta, loss.X), chart.forward(x, d, loss.X)
    assert float((f - f_c).abs().max()) <= SAME_RTOL * float(f.abs().max())
    assert ChannelLoss(chart, d)(x) == pytest.approx(loss(theta), rel=SAME_RTOL)
    # a different d: still the network of to_theta(x, d)
    th = chart.to_theta(x, 0.3 * d)
    assert ChannelLoss(chart, 0.3 * d)(x) == pytest.approx(loss(th), rel=SAME_RTOL)


@pytest.mark.parametrize(("act", "layer", "pair"), CASES[:4])
def test_finite_limit_at_zero_is_the_derivative_neuron(
    act: str, layer: int, pair: tuple[int, int]
) -> None:
    """f(x; d) -> f(x; 0) linearly in d, and f(x; 0) has the neuron sigma g + kappa g' delta / 2."""
    loss, theta = _problem(act)
    net, X = loss.net, loss.X
    chart = ChannelChart(loss, layer, pair)
    x, _ = chart.to_channel(theta)
    f0 = chart.forward(x, 0.0, X)
    assert bool(torch.isfinite(f0).all())
    gaps = [float((chart.forward(x, d, X) - f0).abs().max()) / d for d in (1e-3, 1e-5, 1e-7)]
    assert gaps[1] == pytest.approx(gaps[2], rel=1e-3)  # O(d) with a fixed constant
    assert gaps[0] == pytest.approx(gaps[2], rel=5e-2)
    # the limit by hand: theta with the pair's neuron l carrying sigma, and its derivative term
    rest, v_l, u, sigma, kappa = chart.split(x)
    l, m = pair
    th = torch.zeros(net.num_params, dtype=torch.float64)
    th[chart.I_rest], th[chart.I_l], th[chart.I_m] = rest, v_l, v_l
    th[chart.O_l], th[chart.O_m] = sigma, 0.0
    pre, h_aug = net.activations(th, X)
    delta = h_aug[layer - 1] @ (u / u.norm())
    extra = kappa[None, :] * (0.5 * net.act.dg(pre[layer - 1][:, l]) * delta)[:, None]
    if layer == net.depth - 1:
        expected = pre[-1] + extra
    else:  # the extra term enters the next layer's pre-activation
        blocks = [net.block(th, k) for k in range(1, net.depth + 1)]
        a = pre[layer] + extra
        h = torch.cat([net.act.g(a), torch.ones(X.shape[0], 1, dtype=X.dtype)], dim=1)
        expected = h @ blocks[layer + 1].T
    assert torch.allclose(f0, expected, rtol=1e-12, atol=1e-12)


def test_divided_difference_is_continuous_at_the_switch() -> None:
    """Difference quotient and quadrature agree where they meet (no cancellation jump)."""
    act = MLP([1, 1, 1], "softplus").act
    a = torch.linspace(-3, 3, 13, dtype=torch.float64)
    s = channels.SWITCH
    below = channels._divided_difference(act, a, torch.full_like(a, s * (1 - 1e-9)))
    above = channels._divided_difference(act, a, torch.full_like(a, s * (1 + 1e-9)))
    assert torch.allclose(below, above, rtol=1e-11, atol=0)
    zero = channels._divided_difference(act, a, torch.zeros_like(a))
    assert torch.allclose(zero, act.dg(a), rtol=1e-15, atol=0)


@pytest.mark.parametrize("d", [0.0, 1e-3, 0.7])
def test_derivatives_against_differences_and_dense_hessian(d: float) -> None:
    loss, theta = _problem("softplus")
    chart = ChannelChart(loss, 1, (1, 3))
    x, _ = chart.to_channel(theta)
    obj = ChannelLoss(chart, d)
    value, g = obj.value_and_grad(x)
    assert value == pytest.approx(obj(x), rel=1e-15)
    v = torch.randn(x.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    eps = 1e-6
    fd = (obj(x + eps * v) - obj(x - eps * v)) / (2 * eps)
    assert float(g @ v) == pytest.approx(fd, rel=FD_RTOL)
    _, _, H = obj.value_grad_hessian(x)
    assert torch.allclose(obj.hvp(x, v), H @ v, rtol=0, atol=HVP_ATOL)


def test_trend_reads_a_one_over_d_law() -> None:
    d = torch.logspace(0, -4, 41, dtype=torch.float64)
    pair = channel_trend(d, 3.0 / d + 0.5)
    assert pair.kind == "pair" and pair.slope == pytest.approx(-1.0, abs=1e-3)
    assert pair.kappa == pytest.approx(3.0, rel=1e-3)
    assert channel_trend(d, 0.5 * d).kind == "none"
    assert channel_trend(d, torch.ones_like(d)).slope == pytest.approx(0.0, abs=1e-12)
    assert channel_trend(d, d**-2).kind == "none"  # faster than 1/d: not this channel
    short = channel_trend(d[:2], d[:2])
    assert short.kind == "none" and math.isnan(short.slope)


def test_bad_input_is_refused() -> None:
    loss, theta = _problem("softplus")
    with pytest.raises(ValueError, match="two different neurons"):
        ChannelChart(loss, 1, (2, 2))
    with pytest.raises(ValueError, match="pair"):
        ChannelChart(loss, 1, (0, 9))
    chart = ChannelChart(loss, 1, (1, 3))
    same = theta.clone()
    same[chart.I_m] = same[chart.I_l]
    with pytest.raises(ValueError, match="coincides"):
        chart.to_channel(same)
    x, _ = chart.to_channel(theta)
    with pytest.raises(ValueError, match="d must be > 0"):
        chart.to_theta(x, 0.0)
    for bad in (-1.0, math.inf, math.nan, True):
        with pytest.raises(ValueError, match="d must be"):
            ChannelLoss(chart, bad)
    with pytest.raises(ValueError, match="1-D of equal length"):
        channel_trend(torch.ones(3), torch.ones(4))


@pytest.fixture(scope="module")
def softplus_toy() -> tuple[Loss, torch.Tensor, ToyConfig]:
    cfg = ToyConfig()
    loss, theta = toy_problem("softplus", cfg)
    return loss, theta, cfg


def test_a_toy_channel_is_detected_and_followed_to_its_limit(softplus_toy, tmp_path) -> None:
    """Softplus toy pair (1, 4), the paper's distance: |w_m - w_l| ~ kappa / d.

    The limiting network started at the last step's channel coordinates starts within 5% of
    that step's loss (their gap is O(d_S)) and its minimum lies at or below it.
    """
    loss, theta, cfg = softplus_toy
    pc = cfg.path_config("paper", (1, 4)).replace(steps=24)
    path = find_path(loss, theta, pc, out=tmp_path / "p")
    s = path.summary()
    assert s.channel.kind == "pair" and -1.25 <= s.channel.slope <= -0.75
    limit = s.channel_limit
    last = float(path.loss[pc.steps])
    assert limit is not None and abs(limit.start_loss - last) <= 0.05 * last
    assert limit.loss <= last * (1 + 1e-9)
    assert s.as_dict()["channel"] == "pair" and s.as_dict()["channel_limit"]["loss"] == limit.loss
    again = load_path(tmp_path / "p", loss.net)
    assert again.channel_limit == limit and again.summary().channel == s.channel


def test_a_finished_path_reuses_its_stored_channel_limit(softplus_toy, tmp_path, monkeypatch):
    """Rerunning a finished folder (as the toy does after certify_path) solves no limit again."""
    from weightsym.paths import find as find_module

    loss, theta, cfg = softplus_toy
    pc = cfg.path_config("paper", (1, 4)).replace(steps=24)
    first = find_path(loss, theta, pc, out=tmp_path / "p").channel_limit
    assert first is not None

    def refuse(*args, **kwargs):
        raise AssertionError("the channel limit was solved again")

    monkeypatch.setattr(find_module, "_follow_channel", refuse)
    assert find_path(loss, theta, pc, out=tmp_path / "p").channel_limit == first


def test_joint_distance_has_no_channel(softplus_toy) -> None:
    loss, theta, cfg = softplus_toy
    s = find_path(loss, theta, cfg.path_config("joint", (1, 4)).replace(steps=12)).summary()
    assert s.channel.kind == "none" and s.channel_limit is None
    assert s.as_dict()["channel_limit"] is None


def test_channel_variables_are_an_exact_linear_change_of_the_step_problem() -> None:
    """obj(T x) = obj(phi); gradient T' g against differences; T' H T v against products."""
    from weightsym.channels import ChannelVariables
    from weightsym.constraints import ConstrainedLoss, PairConstraint

    loss, theta = _problem("softplus")
    con = PairConstraint(loss.net, 2, (3, 1))
    phi, d = con.chart(theta), con.measure(theta)
    obj = ConstrainedLoss(loss, con, 0.01 * d)
    var = ChannelVariables(con)
    x = var.to_x(phi, obj.d)
    assert torch.allclose(var.to_phi(x, obj.d), phi, rtol=1e-15, atol=1e-15)
    cobj = var.objective(obj)
    assert cobj(x) == pytest.approx(obj(phi), rel=1e-15)
    value, g = cobj.value_and_grad(x)
    v = torch.randn(x.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    eps = 1e-6
    assert float(g @ v) == pytest.approx(
        (cobj(x + eps * v) - cobj(x - eps * v)) / (2 * eps), rel=1e-6
    )
    _, g2, H = cobj.value_grad_hessian(x)
    assert torch.allclose(g, g2, rtol=1e-12, atol=1e-14)
    assert torch.allclose(cobj.hvp(x, v), H @ v, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="d > 0"):
        var.to_x(phi, 0.0)
    with pytest.raises(ValueError, match="incoming distance"):
        ChannelVariables(PairConstraint(loss.net, 2, (3, 1), distance="joint"))


def test_certificate_compares_the_channel_limit() -> None:
    from weightsym.certify import RunValues, _channel_problems

    def run(limit: float | None) -> RunValues:
        return RunValues("r", 1.0, 0.5, 3, 1.0, 0, 0.0, channel_limit=limit)

    assert _channel_problems((run(None), run(None), run(None)), 1e-2) == []
    assert _channel_problems((run(1.0), run(1.005), run(0.996)), 1e-2) == []
    assert "some runs only" in _channel_problems((run(1.0), run(None), run(1.0)), 1e-2)[0]
    assert "channel_limit differs" in _channel_problems((run(1.0), run(1.1), run(1.0)), 1e-2)[0]


def test_the_predictor_extrapolates_kappa_in_channel_coordinates() -> None:
    """Where w_m - w_l = kappa / d exactly, the channel predictor is exact and the plain one not."""
    from weightsym.channels import ChannelVariables
    from weightsym.constraints import PairConstraint
    from weightsym.paths.step import predict

    loss, theta = _problem("softplus")
    con = PairConstraint(loss.net, 1, (1, 3))
    var = ChannelVariables(con)
    base = con.chart(theta)
    ds = [0.4, 0.2, 0.1]

    def at(d: float) -> torch.Tensor:
        phi = base.clone()
        phi[var.pos_l], phi[var.pos_m] = 1.0 - 0.7 / d, 1.0 + 0.7 / d
        return phi

    want = at(0.05)
    exact = predict([at(d) for d in ds], ds, 0.05, con, channel=var)
    plain = predict([at(d) for d in ds], ds, 0.05, con)
    assert torch.allclose(exact, want, rtol=1e-12, atol=1e-12)
    assert float((plain - want).abs().max()) > 0.5


def test_channel_setting_is_validated_recorded_and_kept_per_variant(softplus_toy) -> None:
    from weightsym.paths import PathConfig

    with pytest.raises(ValueError, match="channel=True needs the incoming distance"):
        PathConfig(distance="joint", channel=True).validate()
    with pytest.raises(ValueError, match="channel=True"):
        PathConfig(varpro=True, channel=True).validate()
    template = PathConfig(channel=True)
    assert template.variant("paper").channel and not template.variant("joint").channel
    assert not template.variant("gauge").channel
    assert "channel" not in PathConfig().as_dict() and template.as_dict()["channel"] is True
    loss, theta, cfg = softplus_toy
    path = find_path(loss, theta, cfg.path_config("paper", (1, 4)).replace(steps=6, channel=True))
    assert path.config.channel and len(path) == 6 + 2 + cfg.path.shift_points
    assert all(math.isfinite(r.loss) for r in path.records)
    # a step's loss is that of the original chart at the returned point
    assert float(path.loss[3]) == pytest.approx(loss(path.thetas[3]), rel=1e-12)


def test_a_tampered_channel_limit_is_refused(softplus_toy, tmp_path) -> None:
    import json

    from weightsym.io import CorruptFileError

    loss, theta, cfg = softplus_toy
    find_path(loss, theta, cfg.path_config("paper", (1, 4)).replace(steps=4), out=tmp_path / "p")
    file = tmp_path / "p" / "summary.json"
    body = json.loads(file.read_text())
    body["summary"]["channel_limit"] = {"loss": 1.0, "code": "x"}
    file.write_text(json.dumps(body))
    with pytest.raises(CorruptFileError):
        load_path(tmp_path / "p", loss.net)
