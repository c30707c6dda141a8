"""Straight line, Bezier curve / polygonal chain and elastic band between network parameters.

Networks:

* identical neurons: ``MLP([2, 3, 1], "softplus")`` whose neurons 0 and 1 (layer 1) have the
  same incoming weights and bias but different output weights, T = 50 Gaussian inputs, targets
  from the network itself (zero loss). Swapping the two neurons exchanges only their output
  weights, and along any path that keeps their sum fixed the function does not change: every
  path between theta* and sigma_{0<->1}(theta*) has zero barrier;
* the toy teacher (2-5-1, T = 1000, ``weightsym.experiments.toy``), pair (0, 1), ReLU and
  softplus.
"""

from __future__ import annotations

import math

import pytest
import torch

import weightsym as ws
from weightsym.baselines import (
    DEFINITIONS,
    CurvePath,
    Fit,
    barrier_height,
    bezier_path,
    linear_path,
    mean_loss,
    neb_path,
)
from weightsym.baselines.bezier import CurveObjective, basis, initial_bends, quadrature
from weightsym.experiments.toy import ToyConfig, toy_problem

ZERO_LOSS = 1e-28  # rounding level of a mean squared error whose residuals are ~1e-16
ZERO_TRAINED = 1e-12  # a Bezier bend trained by L-BFGS to tol 1e-10 in the gradient


@pytest.fixture(scope="module")
def identical() -> tuple[ws.Loss, torch.Tensor, torch.Tensor]:
    net = ws.MLP([2, 3, 1], "softplus")
    (W1, b1), (W2, b2) = net.unflatten(net.init(seed=0))
    W1[1], b1[1] = W1[0], b1[0]
    theta = net.flatten([(W1, b1), (W2, b2)])
    X = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    loss = ws.Loss(net, X, net.forward(theta, X))
    partner = ws.swap(net, theta, 1, 0, 1)
    assert not torch.equal(theta, partner)  # the output weights differ
    return loss, theta, partner


def zero_barrier(path: CurvePath, tol: float) -> bool:
    return all(0 <= barrier_height(path, d) <= tol for d in DEFINITIONS)


def test_linear_path_is_the_straight_line_and_its_losses_are_direct_evaluations(
    identical: tuple,
) -> None:
    loss, theta, partner = identical
    path = linear_path(loss, theta, partner, points=11)
    assert path.kind == "linear" and path.converged and len(path) == 11
    assert torch.equal(path.thetas[0], theta) and torch.equal(path.thetas[-1], partner)
    s = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.allclose(path.t, s, rtol=0, atol=1e-15)  # equal spacing: t = s
    assert torch.allclose(path.thetas, (1 - s[:, None]) * theta + s[:, None] * partner)
    for th, value, gi in zip(path.thetas, path.loss, path.grad_inf):
        assert abs(loss(th) - float(value)) <= 1e-14 * abs(float(value)) + 1e-30
        assert float(gi) == float(loss.grad(th).abs().max())
    t, thetas, losses = path.full()
    assert t is path.t and thetas is path.thetas and losses is path.loss


def test_every_path_between_identical_neurons_has_zero_barrier(identical: tuple) -> None:
    loss, theta, partner = identical
    line = linear_path(loss, theta, partner)
    assert zero_barrier(line, ZERO_LOSS)
    for kind in ("bezier", "chain"):
        curve = bezier_path(loss, theta, partner, kind=kind)
        assert curve.converged, curve.message
        assert zero_barrier(curve, ZERO_TRAINED)
    band = neb_path(loss, theta, partner)
    assert band.converged, band.message
    assert zero_barrier(band, ZERO_LOSS)
    assert band.saddle is not None and band.saddle.negative == 0  # a minimum, not a saddle
    assert not band.barrier.at_point


@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_trained_bezier_curve_is_lower_than_the_line_on_the_toy(activation: str) -> None:
    loss, theta = toy_problem(activation, ToyConfig())
    partner = ws.swap(loss.net, theta, 1, 0, 1)
    line = linear_path(loss, theta, partner)
    curve = bezier_path(loss, theta, partner, max_iter=100)
    assert mean_loss(curve) < 0.2 * mean_loss(line)  # over normalised arc length
    # and in Garipov et al.'s objective itself (the same quadrature on both)
    objective = CurveObjective(loss, theta, partner, "bezier", 1, 8)
    straight = objective.value_and_grad(0.5 * (theta + partner))[0]
    assert curve.fit.objective < 0.2 * straight
    assert barrier_height(curve, "max") < barrier_height(line, "max")


def test_curve_objective_gradient_matches_finite_differences(identical: tuple) -> None:
    loss, theta, partner = identical
    gen = torch.Generator().manual_seed(3)
    for kind, bends in (("bezier", 1), ("chain", 2), ("bezier", 3)):
        objective = CurveObjective(loss, theta, partner, kind, bends, 4)
        x = initial_bends(theta, partner, bends, seed=1) + 0.3 * torch.randn(
            bends * theta.numel(), generator=gen, dtype=torch.float64
        )
        _, g = objective.value_and_grad(x)
        for _ in range(3):
            v = torch.randn(x.shape, generator=gen, dtype=torch.float64)
            h = 1e-5
            up = objective.value_and_grad(x + h * v)[0]
            down = objective.value_and_grad(x - h * v)[0]
            fd = (up - down) / (2 * h)
            assert abs(fd - float(g @ v)) <= 1e-7 * max(abs(fd), 1e-12)


def test_basis_and_quadrature() -> None:
    s = torch.linspace(0, 1, 17, dtype=torch.float64)
    for kind in ("bezier", "chain"):
        for bends in (1, 2, 4):
            w = basis(kind, bends, s)
            assert torch.allclose(w.sum(1), torch.ones(17, dtype=torch.float64), atol=1e-15)
            assert w[0, 0] == 1 and w[-1, -1] == 1 and bool((w >= 0).all())
    chain = basis("chain", 1, torch.tensor([0.5], dtype=torch.float64))
    assert torch.equal(chain, torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))
    nodes, omega = quadrature(2, 4)  # exact for degree <= 7 on each of 3 intervals
    for k in range(8):
        assert math.isclose(float(omega @ nodes**k), 1 / (k + 1), rel_tol=1e-14)


def test_bezier_curve_passes_its_bend_and_the_chain_hits_it(identical: tuple) -> None:
    loss, theta, partner = identical
    chain = bezier_path(loss, theta, partner, kind="chain", points=10, max_iter=5)
    assert chain.bends is not None and chain.bends.shape == (1, theta.numel())
    assert any(torch.equal(row, chain.bends[0]) for row in chain.thetas)  # knot s = 1/2 added
    assert len(chain) == 11
    assert torch.equal(chain.thetas[0], theta) and torch.equal(chain.thetas[-1], partner)


def test_bezier_is_seeded_and_reports_its_budget(identical: tuple) -> None:
    loss, theta, partner = identical
    one = bezier_path(loss, theta, partner, seed=4, max_iter=3)
    two = bezier_path(loss, theta, partner, seed=4, max_iter=3)
    other = bezier_path(loss, theta, partner, seed=5, max_iter=3)
    assert torch.equal(one.thetas, two.thetas) and not torch.equal(one.thetas, other.thetas)
    assert not one.converged and "budget exhausted" in one.message
    assert one.fit.method == "lbfgs" and one.fit.residual > one.fit.tol


def test_path_input_validation(identical: tuple) -> None:
    loss, theta, partner = identical
    P = theta.numel()
    with pytest.raises(ValueError, match="x_a"):
        linear_path(loss, theta[:-1], partner)
    with pytest.raises(ValueError, match="x_b"):
        linear_path(loss, theta, torch.full((P,), math.nan, dtype=torch.float64))
    with pytest.raises(TypeError, match="x_b"):
        linear_path(loss, theta, partner.tolist())
    with pytest.raises(ValueError, match="coincide"):
        linear_path(loss, theta, theta.clone())
    with pytest.raises(ValueError, match="points"):
        linear_path(loss, theta, partner, points=1)
    with pytest.raises(TypeError, match="Objective protocol"):
        linear_path(lambda x: 0.0, theta, partner)
    with pytest.raises(TypeError, match="dtype"):
        linear_path(loss, theta, partner.float())
    with pytest.raises(ValueError, match="kind"):
        bezier_path(loss, theta, partner, kind="spline")
    for name in ("bends", "nodes", "points"):
        with pytest.raises(ValueError, match=name):
            bezier_path(loss, theta, partner, **{name: 0})
    with pytest.raises(ValueError, match="seed"):
        bezier_path(loss, theta, partner, seed=-1)
    with pytest.raises(ValueError, match="tol"):
        bezier_path(loss, theta, partner, tol=math.inf)


def test_objective_nan_on_the_path_is_named() -> None:
    class Hole:
        num_params = 1

        def value_and_grad(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
            v = math.nan if abs(float(x[0]) - 0.5) < 0.01 else float(x[0]) ** 2
            return v, 2 * x

    with pytest.raises(ValueError, match="NaN or inf at point 1"):
        linear_path(
            Hole(), torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64), 3
        )


def test_curve_path_record_checks_its_fields() -> None:
    thetas = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    loss = torch.tensor([0.0, 2.0, 1.0], dtype=torch.float64)
    fit = Fit("none", 0.0, 0.0, 0, 3, 0.0, math.nan)
    path = CurvePath.build(
        "linear", thetas, loss, torch.zeros(3, 1), converged=True, message="", fit=fit
    )
    assert torch.allclose(path.t, torch.tensor([0, 1 / 3, 1], dtype=torch.float64))
    top = path.barrier
    assert (top.loss, top.index, top.at_point, top.converged) == (2.0, 1, False, True)
    assert top.t == float(path.t[1])
    with pytest.raises(ValueError, match="kind"):
        CurvePath("spline", path.t, loss, loss, thetas, True, "", fit)
    with pytest.raises(ValueError, match="loss must have shape"):
        CurvePath("linear", path.t, loss[:2], loss, thetas, True, "", fit)
    with pytest.raises(AttributeError):
        path.kind = "neb"  # frozen
