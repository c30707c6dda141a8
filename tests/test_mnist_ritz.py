"""The Lanczos lower bound on the saddle index at an MNIST permutation point (paper Sec. 5;
:func:`weightsym.curvature.ritz_values`, moved from the MNIST experiment to curvature)."""

from __future__ import annotations

import torch

from weightsym.curvature import ritz_values, saddle_bound
from weightsym.losses import Loss
from weightsym.model import MLP


def test_ritz_values_bound_the_index_and_reach_the_spectrum() -> None:
    """At a random point of a small tanh network (an indefinite Hessian): every few-step Ritz
    value count of negatives is at most the true index (Cauchy interlacing), and P steps give
    the whole spectrum."""
    net = MLP([3, 4, 2], "tanh")
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    Y = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    loss = Loss(net, X, Y, kind="mse")
    theta = net.init(seed=3, scale=2.0)
    ev = torch.linalg.eigvalsh(loss.hessian(theta))
    index = int((ev < -1e-8 * ev.abs().max()).sum())
    assert index >= 1
    for steps in (3, 8, 15):
        ritz = ritz_values(loss, theta, steps)
        assert ritz.numel() == steps and float(ritz[0]) >= float(ev[0]) - 1e-10
        assert saddle_bound(ritz).negative <= index
    full = ritz_values(loss, theta, net.num_params)
    assert torch.allclose(full, ev, atol=1e-9 * float(ev.abs().max()))
    assert saddle_bound(full).negative == index


def test_saddle_bound_reports_the_ends_and_the_count() -> None:
    """Known Ritz values: two below -1e-8 x max|value| count; -1e-9 x max does not."""
    ritz = torch.tensor([-2.0, -0.5, -1e-9, 0.0, 1.0], dtype=torch.float64)
    b = saddle_bound(ritz)
    assert (b.negative, b.lowest, b.highest, b.steps) == (2, -2.0, 1.0, 5)
