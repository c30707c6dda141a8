"""The limit of a channel of a third neuron with a partner, under the path's own constraint."""

from __future__ import annotations

import pytest
import torch

from weightsym.channels import ChannelChart, ChannelLoss
from weightsym.constraints import ConstrainedLoss, PairConstraint
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.partner_channel import PartnerLimitLoss, partner_limit

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
