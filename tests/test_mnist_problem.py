"""The pieces of one MNIST path (paper Sec. 5, Fig. 3) on cases whose answer is known by
construction: the pair merged, the nmse, the accuracy curve and the monotone-rise test."""

from __future__ import annotations

import math

import pytest
import torch

from weightsym.data import load_mnist
from weightsym.experiments.mnist import accuracy_curve, mnist_problem, rises_monotonically
from weightsym.experiments.mnist.teachers import Teacher, TeacherConfig
from weightsym.model import MLP
from weightsym.symmetry import most_similar_pair

LIMIT = 200


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    return load_mnist("embedded", limit=LIMIT)


def _teacher(net: MLP, theta: torch.Tensor) -> Teacher:
    cfg = TeacherConfig(width=net.widths[1], seed=0)
    return Teacher(net, theta, cfg, accuracy=0.0, loss=0.0, iterations=0, message="")


def test_most_similar_pair_is_the_highest_cosine_not_the_closest() -> None:
    """Layer 2 of 784-4-4-10: neurons 1 and 3 are parallel (cosine 1) but far apart in length;
    neurons 0 and 2 are close in Euclidean distance but not parallel."""
    net = MLP([784, 4, 4, 10], "softplus")
    theta = net.init(seed=0)
    V = net.block(theta, 2)  # rows: [W_i, b_i] of layer 2, length 5
    V[:] = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0, 0.1],
            [0.0, 1.0, 1.0, 0.0, 0.0],
            [1.0, 0.2, 0.0, 0.0, -0.1],
            [0.0, 5.0, 5.0, 0.0, 0.0],
        ],
        dtype=torch.float64,
    )
    assert most_similar_pair(net, theta, 2) == (1, 3)


def test_nmse_is_mse_over_mean_square_of_the_teacher_logits(digits) -> None:
    """Shifting every output bias by c changes every logit by c: nmse = c^2 / mean(y^2)."""
    X, y = digits
    net = MLP([784, 3, 3, 10], "softplus")
    theta = net.init(seed=1)
    loss = mnist_problem(_teacher(net, theta), X, y, "nmse")
    logits = net.forward(theta, X)
    assert loss(theta) == 0.0
    c = 0.3
    shifted = theta.clone()
    net.block(shifted, 3)[:, -1] += c  # the output biases b^(3)
    assert torch.allclose(net.forward(shifted, X), logits + c)
    assert math.isclose(loss(shifted), c**2 / float((logits**2).mean()), rel_tol=1e-12)
    assert mnist_problem(_teacher(net, theta), X, y, "nll").kind == "nll"


def test_accuracy_curve_on_constant_predictions(digits) -> None:
    """A network whose output weights are zero predicts argmax(b^(3)) for every digit, so its
    training accuracy is the share of that label; the limit=200 subset is class-balanced."""
    X, y = digits
    net = MLP([784, 3, 3, 10], "softplus")
    thetas = []
    for k in range(10):
        theta = net.init(seed=k)
        net.block(theta, 3)[:] = 0.0
        net.block(theta, 3)[k, -1] = 1.0
        thetas.append(theta)
    curve = accuracy_curve(net, torch.stack(thetas), X, y)
    expected = [float((y == k).double().mean()) for k in range(10)]
    assert curve == expected
    assert curve == [0.1] * 10


def test_rises_monotonically() -> None:
    assert rises_monotonically([0.0, 1.0, 2.0, 2.0]) == (True, 0.0)
    ok, fall = rises_monotonically([0.0, 2.0, 1.5, 3.0])
    assert not ok and fall == 0.5
    assert rises_monotonically([0.0, 1.0, 1.0 - 1e-9])[0]  # rounding-level falls are allowed
