"""The chart of the distance constraint (Sec. 4.1): exact derivatives and the constraint itself."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import hessian

import weightsym as ws
from weightsym.constraints import ConstrainedLoss, PairConstraint, unit_gauge

CASES = [
    ("softplus", "incoming", False),
    ("tanh", "joint", False),
    ("relu", "incoming", True),
    ("leaky_relu", "joint", False),
]


@pytest.mark.parametrize("act, distance, gauge", CASES)
def test_derivatives_match_autograd(act, distance, gauge):
    gen = torch.Generator().manual_seed(3)
    net = ws.MLP([2, 4, 3, 2], act)  # two hidden layers; the pair sits in layer 2
    theta = net.init(1)
    X = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    Y = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    loss = ws.Loss(net, X, Y)
    if gauge:
        theta = unit_gauge(net, theta, 2, (0, 2))
    con = PairConstraint(net, 2, (0, 2), distance, gauge)
    phi = con.chart(theta)
    d = 0.7 * con.measure(theta)
    F = ConstrainedLoss(loss, con, d)

    def f(p):
        return loss.functional(con.embed(p, d))

    value, g, H = F.value_grad_hessian(phi)
    H_ref = hessian(f, phi)
    w = torch.randn(phi.shape, generator=gen, dtype=torch.float64)
    assert value == pytest.approx(float(f(phi)), rel=1e-14)
    assert (g - torch.func.grad(f)(phi)).abs().max() <= 1e-14 * max(1.0, float(g.abs().max()))
    assert (H - H_ref).abs().max() <= 1e-12 * float(H_ref.abs().max())  # 1e-12 relative
    assert (F.hvp(phi, w) - H_ref @ w).abs().max() <= 1e-12 * float((H_ref @ w).abs().max())
    # the gradient without the Hessian (closed form, no matrices) agrees to rounding
    assert F.value_and_grad(phi)[1].sub(g).abs().max() <= 1e-15 * max(1.0, float(g.abs().max()))


@pytest.mark.parametrize("act, distance, gauge", CASES)
def test_constraint_holds_for_any_phi(act, distance, gauge):
    net = ws.MLP([2, 4, 3, 2], act)
    con = PairConstraint(net, 2, (1, 2), distance, gauge)
    gen = torch.Generator().manual_seed(0)
    for d in (1.3, 0.2, 1e-5):
        phi = torch.randn(con.num_params, generator=gen, dtype=torch.float64)
        theta = con.embed(phi, d)
        assert con.measure(theta) == pytest.approx(d, rel=1e-12)  # |v_m - v_l| = d to 1e-12
        if gauge:
            for i in (1, 2):
                assert float(theta[net.neuron_slice(2, i)].norm()) == pytest.approx(1, rel=1e-14)
        # the chart inverts the embedding on its image (theta unchanged, to 1e-14)
        again = con.embed(con.chart(theta), con.measure(theta))
        assert (again - theta).abs().max() <= 1e-14 * max(1.0, float(theta.abs().max()))


def test_unit_gauge_keeps_the_function():
    net = ws.MLP([3, 5, 2], "relu")
    theta = net.init(2)
    X = torch.randn(40, 3, dtype=torch.float64)
    gauged = unit_gauge(net, theta, 1, (0, 3))
    assert ws.same_function(net, theta, net, gauged, X)
    with pytest.raises(ValueError, match="positively homogeneous"):
        unit_gauge(ws.MLP([3, 5, 2], "tanh"), theta, 1, (0, 3))


def test_bad_constraints():
    net = ws.MLP([2, 4, 1], "relu")
    with pytest.raises(ValueError, match="l == m"):
        PairConstraint(net, 1, (2, 2))
    with pytest.raises(ValueError, match="not a hidden layer"):
        PairConstraint(net, 2, (0, 1))
    with pytest.raises(ValueError, match="gauge=True applies"):
        PairConstraint(net, 1, (0, 1), "joint", gauge=True)
