"""The MLP on a flat float64 vector (paper Sec. 3): layer views, round trips, input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import weightsym as ws


def test_views_are_views_and_round_trip():
    net = ws.MLP([2, 3, 4, 1], "softplus")
    theta = net.init(seed=0)
    layers = net.unflatten(theta)
    assert [tuple(W.shape) for W, _ in layers] == [(3, 2), (4, 3), (1, 4)]
    layers[0][0][0, 0] = 7.0  # a view: writing it writes theta
    assert float(theta[0]) == 7.0
    assert torch.equal(net.flatten(layers), theta)


def test_forward_matches_the_module():
    net = ws.MLP([2, 3, 1], "tanh")
    theta = net.init(seed=1)
    X = torch.randn(6, 2, dtype=torch.float64)
    seq = net.to_module(theta)
    assert isinstance(seq, nn.Sequential)
    assert torch.allclose(seq(X), net.forward(theta, X), rtol=0, atol=1e-15)  # same ops
    net2, theta2 = ws.MLP.from_module(seq)
    assert net2 == net and torch.equal(theta2, theta)


@pytest.mark.parametrize(
    "X, error, match",
    [
        (torch.zeros(3, 2, dtype=torch.float32), TypeError, "X must be a torch.float64"),
        (torch.zeros(3, 2, dtype=torch.int64), TypeError, "X must be a torch.float64"),
        (torch.zeros(3, 2, dtype=torch.complex128), TypeError, "complex numbers"),
        (torch.zeros(3, 3, dtype=torch.float64), ValueError, r"shape \(T, 2\)"),
        ([[0.0, 0.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_inputs_are_refused_by_name(X, error, match):
    net = ws.MLP([2, 3, 1], "relu")
    with pytest.raises(error, match=match):
        net.check_inputs(X)


@pytest.mark.parametrize(
    "theta, error, match",
    [
        (torch.zeros(13, dtype=torch.float32), TypeError, "theta must be a torch.float64"),
        (torch.zeros(13, dtype=torch.complex128), TypeError, "floating-point|complex"),
        (torch.zeros(12, dtype=torch.float64), ValueError, "length 13"),
        (torch.full((13,), float("nan"), dtype=torch.float64), ValueError, "NaN"),
    ],
)
def test_bad_theta_is_refused_by_name(theta, error, match):
    net = ws.MLP([2, 3, 1], "relu")
    with pytest.raises(error, match=match):
        net.check_theta(theta)


@pytest.mark.parametrize(
    "Y, kind, match",
    [
        (torch.zeros(4, 1, dtype=torch.complex128), "mse", "complex numbers"),
        (torch.zeros(4, 1, dtype=torch.float32), "nmse", "Y must be a torch.float64"),
        (torch.zeros(4, dtype=torch.complex64), "nll", "integer labels"),
    ],
)
def test_loss_refuses_complex_and_other_dtypes(Y, kind, match):
    net = ws.MLP([2, 3, 2 if kind == "nll" else 1], "relu")
    X = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises((TypeError, ValueError), match=match):
        ws.Loss(net, X, Y, kind=kind)


@pytest.mark.parametrize(
    "kwargs", [{"scale": float("nan")}, {"scale": -1.0}, {"seed": 1.5}, {"seed": True}]
)
def test_init_refuses_bad_arguments(kwargs):
    with pytest.raises((TypeError, ValueError), match="seed|scale"):
        ws.MLP([2, 3, 1], "relu").init(**kwargs)


@pytest.mark.parametrize("slope", [float("nan"), -0.1, 1.0])
def test_leaky_slope_is_checked(slope):
    from weightsym import activations

    with pytest.raises(ValueError, match="negative_slope"):
        activations.get("leaky_relu", slope)
