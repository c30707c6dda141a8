"""Whitened first-layer inputs (weightsym.whitening): an exact change of variables."""

import pytest
import torch

from weightsym.constraints import ConstrainedLoss, PairConstraint
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.whitening import InputWhitening, WhitenedProblem


def data(seed=0, T=60):
    """Inputs with a zero column (2), a nonzero constant column (4) and a dependent one (5)."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(T, 7, generator=gen, dtype=torch.float64) * 2.0 + 0.5
    X[:, 2] = 0.0
    X[:, 4] = 0.7
    X[:, 5] = X[:, 0] - 2.0 * X[:, 1]
    Y = torch.randn(T, 2, generator=gen, dtype=torch.float64)
    return X, Y


def problem(kind="mse", seed=0):
    X, Y = data(seed)
    net = MLP([7, 4, 3, 2], "softplus")
    theta = net.init(seed + 1)
    loss = Loss(net, X, Y, kind)
    return loss, theta, WhitenedProblem(loss, theta)


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_zero_variance_columns_are_detected_and_the_inputs_are_white():
    X, _ = data()
    w = InputWhitening.fit(X)
    assert w.zero_variance.tolist() == [2, 4]
    assert w.rank == 4  # 7 columns - 2 constant - 1 linearly dependent
    Xw = w.transform(X)
    assert torch.allclose(Xw.T @ Xw / X.shape[0], torch.eye(4, dtype=X.dtype), atol=1e-12)
    assert torch.allclose(Xw.mean(dim=0), torch.zeros(4, dtype=X.dtype), atol=1e-12)
    assert float(w.V[w.zero_variance].abs().max()) == 0.0  # the kept directions avoid them


@pytest.mark.parametrize("kind", ["mse", "nmse"])
def test_loss_and_gradient_are_unchanged(kind):
    loss, theta, wp = problem(kind)
    theta_w = wp.to_whitened(theta)
    assert wp.loss(theta_w) == pytest.approx(loss(theta), rel=1e-12)
    g = loss.grad(theta)
    assert rel(wp.grad_to_original(wp.loss.grad(theta_w)), g) <= 1e-12
    # at another point of the whitened problem, mapped back
    gen = torch.Generator().manual_seed(9)
    other_w = theta_w + 0.1 * torch.randn(theta_w.shape, generator=gen, dtype=theta.dtype)
    other = wp.from_whitened(other_w)
    assert loss(other) == pytest.approx(wp.loss(other_w), rel=1e-12)
    assert rel(wp.grad_to_original(wp.loss.grad(other_w)), loss.grad(other)) <= 1e-12


def test_the_maps_are_inverse_and_the_held_directions_are_flat():
    loss, theta, wp = problem()
    theta_w = wp.to_whitened(theta)
    assert rel(wp.from_whitened(theta_w), theta) <= 1e-12
    assert rel(wp.to_whitened(wp.from_whitened(theta_w)), theta_w) <= 1e-12
    assert wp.net.widths == [4, 4, 3, 2]
    # the weights along the dropped directions (held fixed) do not change the loss
    gen = torch.Generator().manual_seed(2)
    wp.held = wp.held + torch.randn(4, 7, generator=gen, dtype=theta.dtype) @ (
        torch.eye(7, dtype=theta.dtype) - wp.whitening.V @ wp.whitening.V.T
    )
    moved = wp.from_whitened(theta_w)
    assert float((moved - theta).abs().max()) > 0.1
    assert loss(moved) == pytest.approx(loss(theta), rel=1e-12)


def test_the_path_chart_of_a_layer_2_pair_is_the_same_in_both_variables():
    loss, theta, wp = problem("nmse")
    con = PairConstraint(loss.net, 2, (0, 1))
    con_w = wp.constraint(con)
    d = con.measure(theta)
    assert con_w.measure(wp.to_whitened(theta)) == pytest.approx(d, rel=1e-14)
    phi, phi_w = con.chart(theta), con_w.chart(wp.to_whitened(theta))
    value = ConstrainedLoss(loss, con, d)(phi)
    assert ConstrainedLoss(wp.loss, con_w, d)(phi_w) == pytest.approx(value, rel=1e-12)
    with pytest.raises(ValueError, match="layer 1"):
        wp.constraint(PairConstraint(loss.net, 1, (0, 1)))


def test_bad_input_is_refused_with_a_clear_error():
    X, _ = data()
    with pytest.raises(TypeError, match="X must be a 2-D float64 tensor"):
        InputWhitening.fit(X.float())
    with pytest.raises(TypeError, match="X must be a 2-D float64 tensor"):
        InputWhitening.fit(X[0])
    with pytest.raises(ValueError, match="no input column of nonzero variance"):
        InputWhitening.fit(torch.ones(5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="rcond"):
        InputWhitening.fit(X, rcond=2.0)
    loss, theta, _ = problem()
    with pytest.raises(TypeError, match="loss must be a weightsym.Loss"):
        WhitenedProblem(X, theta)
    with pytest.raises(ValueError, match="theta"):
        WhitenedProblem(loss, theta[:-1])
