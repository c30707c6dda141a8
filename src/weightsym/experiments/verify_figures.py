"""The measurements behind ``weightsym verify``: the fitted smaller network and the figures at
its permutation points (docs/theory.md sections 2 and 7.3).

The network is 3-3-3-1-2 (hidden widths 3, 3, 1). The smaller network is fitted by Newton's
method to the outputs of a random teacher of the same shape plus Gaussian noise (std
:data:`NOISE`), started at the teacher: a finite minimum with nonzero loss. (An
under-parameterized student of a larger teacher, the other natural choice, usually has no
finite minimizer: docs/theory.md section 5.) A teacher seed whose fit does not reach
grad_inf <= :data:`TOL` within :data:`MAX_ITER` steps, or that has a dead neuron (g' = 0 on
every input, as a ReLU can: f then ignores part of the net), is skipped for the next one.
:func:`measure_point` and :func:`measure_paths` return typed figures; the claims made of them
are in :mod:`weightsym.experiments.verify`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from weightsym.curvature import SpectrumCounts, saddle_index
from weightsym.equal_loss_path import equal_loss_permutation_path, output_shift
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.optimize import minimize
from weightsym.points import (
    critical_directions,
    equal_loss_directions,
    higher_order_point,
    noncritical_directions,
    permutation_point,
)
from weightsym.symmetry import permute

WIDTHS = (3, 3, 3, 1, 2)
SCALE = 2.0  # teacher weights N(0, SCALE^2 / fan-in)
NOISE = 1e-4  # target noise: loss ~1e-8, far above rounding, and Newton converges in few steps
ATTEMPTS = 5  # teacher seeds tried
MAX_ITER = 100  # Newton iterations per teacher seed
TOL = 1e-14  # the smaller net's grad_inf (docs/theory.md section 1.4): to rounding, since at
# grad_inf 1e-12 the split-ratio directions already show |Hv| ~ 1e-13 |H| |v|, too close to the
# null-vector tolerance of the claims
ZERO_RTOL = 1e-12  # "zero eigenvalue": |lambda| <= ZERO_RTOL |H|
STEP = 0.5  # step along a unit direction at which the gradient is measured
PATH_ORDERINGS = 3  # random target orderings for Prop. 1 (iii)


def silent(line: str) -> None:
    """The default ``echo``: print nothing."""


@dataclass(frozen=True)
class Example:
    """The fitted smaller network and its data."""

    net: MLP
    theta: Tensor
    X: Tensor
    Y: Tensor
    grad_inf: float

    def loss(self, net: MLP) -> Loss:
        """The mse of ``net`` (the smaller network or a bigger one) on the example's data."""
        return Loss(net, self.X, self.Y)


def _dead_neurons(net: MLP, theta: Tensor, X: Tensor) -> int:
    """How many hidden neurons have g' = 0 on every input."""
    pre = net.activations(theta, X)[0][:-1]
    return sum(int((net.act.dg(a) == 0).all(dim=0).sum()) for a in pre)


def fit_example(
    seed: int, activation: str, samples: int, echo: Callable[[str], None] = silent
) -> Example | None:
    """Fit the smaller network (the module docstring says how); each attempt is echoed.

    Args:
        seed: teacher seeds ``1000 * seed + attempt`` are tried, attempt = 0..ATTEMPTS-1.
        activation: the hidden activation.
        samples: T, the number of inputs, drawn from N(0, I).
        echo: receives one line per attempt.

    Returns:
        The first :class:`Example` that converged without dead neurons, or None.
    """
    net = MLP(list(WIDTHS), activation)
    for attempt in range(ATTEMPTS):
        teacher_seed = 1000 * seed + attempt
        gen = torch.Generator().manual_seed(teacher_seed)
        X = torch.randn(samples, WIDTHS[0], dtype=torch.float64, generator=gen)
        teacher = net.init(teacher_seed, scale=SCALE)
        noise = torch.randn(samples, WIDTHS[-1], dtype=torch.float64, generator=gen)
        Y = net(teacher, X) + NOISE * noise
        res = minimize(Loss(net, X, Y), teacher, method="newton", tol=TOL, max_iter=MAX_ITER)
        dead = _dead_neurons(net, res.x, X)
        rejected = f"; {dead} dead neuron(s), skipped" if dead else ""
        echo(
            f"fit {net} (teacher seed {teacher_seed}): {res.message}; loss {res.fun:.3e}{rejected}"
        )
        if res.success and not dead:
            return Example(net, res.x, X, Y, res.grad_inf)
    return None


# -- measurements -------------------------------------------------------------------------------


def _null_ratio(H: Tensor, V: Tensor, smallest: bool = False) -> float:
    """|Hv| / (|H||v|): the largest over the columns of V, or (``smallest``) the smallest over
    all of span V; V has orthonormal columns, |H| is the spectral norm."""
    spectral = float(torch.linalg.matrix_norm(H, ord=2))
    if smallest:
        return float(torch.linalg.svdvals(H @ V).min()) / spectral
    return float(torch.linalg.vector_norm(H @ V, dim=0).max()) / spectral


def _grad_along(loss: Loss, theta: Tensor, V: Tensor, smallest: bool = False) -> float:
    """grad_inf at theta + STEP v, the largest (or smallest) over the columns v of V."""
    values = [loss.grad_inf(theta + STEP * v) for v in V.T]
    return min(values) if smallest else max(values)


def _loss_change(loss: Loss, theta: Tensor, points: Tensor) -> float:
    """max |L(p) - L(theta)| / max(1, L(theta)) over the rows p of ``points``."""
    L0 = loss(theta)
    return max(abs(loss(p) - L0) for p in points) / max(1.0, L0)


def _unit_steps(E: Tensor, rng: random.Random, count: int) -> Tensor:
    """``count`` random unit vectors of span E (orthonormal columns), as rows."""
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    coef = torch.randn(count, E.shape[1], dtype=E.dtype, generator=gen)
    return (coef / coef.norm(dim=1, keepdim=True)) @ E.T


class OtherDirections(NamedTuple):
    """The equal-loss directions off the split ratios: how many, the smallest |Hv|/(|H||v|)
    over their span and the smallest grad_inf at a step along one of them (all 0 if none)."""

    count: int = 0
    null_ratio: float = 0.0
    grad: float = 0.0


@dataclass(frozen=True)
class PointFigures:
    """What :func:`measure_point` found at one permutation point of order K in layer k.

    ``f_change``: the largest relative change of f against the smaller net; ``grad``: grad_inf;
    ``loss_change``: the largest relative loss change at unit steps in the equal-loss subspace;
    ``all_*`` / ``split_*``: |Hv|/(|H||v|) and grad_inf over all equal-loss directions / the
    split-ratio ones; ``counts``: the Hessian's eigenvalue counts; ``small_zero``: the smaller
    net's zero eigenvalues.
    """

    K: int
    n_next: int
    f_change: float
    grad: float
    loss_change: float
    all_ratio: float
    all_grad: float
    split_ratio: float
    split_grad: float
    other: OtherDirections
    counts: SpectrumCounts
    small_zero: int


def measure_point(
    ex: Example, layer: int, copies: dict[int, int], rng: random.Random
) -> PointFigures:
    """The figures behind Def. 4/6 and Props. 1/2 (i), (ii) at the point of ``copies``.

    Args:
        ex: the fitted smaller network.
        layer: hidden layer k of the point.
        copies: {neuron: number of copies} (Def. 6).
        rng: source of the random unit steps (consumed in a fixed order).

    Returns:
        The point's :class:`PointFigures`.
    """
    net, theta, groups = higher_order_point(ex.net, ex.theta, layer, copies)
    loss = ex.loss(net)
    E = equal_loss_directions(net, theta, layer, groups)
    C = critical_directions(net, theta, layer, groups)
    N = noncritical_directions(net, theta, layer, groups)
    H = loss.hessian(theta)
    f_small = ex.net(ex.theta, ex.X)
    f_change = float((net(theta, ex.X) - f_small).abs().max()) / max(
        1.0, float(f_small.abs().max())
    )
    other = OtherDirections()
    if N.shape[1]:
        other = OtherDirections(
            N.shape[1], _null_ratio(H, N, True), _grad_along(loss, theta, N, True)
        )
    return PointFigures(
        K=sum(c - 1 for c in copies.values()),
        n_next=net.widths[layer + 1],
        f_change=f_change,
        grad=loss.grad_inf(theta),
        loss_change=_loss_change(loss, theta, theta + _unit_steps(E, rng, 6)),
        all_ratio=_null_ratio(H, E),
        all_grad=_grad_along(loss, theta, E),
        split_ratio=_null_ratio(H, C),
        split_grad=_grad_along(loss, theta, C),
        other=other,
        counts=saddle_index(loss, theta, rtol=ZERO_RTOL),
        small_zero=saddle_index(ex.loss(ex.net), ex.theta, rtol=ZERO_RTOL).zero,
    )


class PathFigures(NamedTuple):
    """What :func:`measure_paths` found: the largest relative loss change of the output shift
    (``shift``) and of the equal-loss permutation paths (``worst``), whether every path ended
    on the permuted point (``exact``), and how many points the paths had."""

    shift: float
    worst: float
    exact: bool
    points: int


def measure_paths(ex: Example, layer: int, rng: random.Random) -> PathFigures:
    """Sec. 4.1's output shift (Lemma 1) and Prop. 1 (iii)'s constant-loss paths to
    :data:`PATH_ORDERINGS` random orderings, at the first-order point of ``layer`` (neuron 0
    doubled), from a random point of its equal-loss subspace (w_l != w_m, as at t = 1/4 of the
    permutation path)."""
    net, point, (l, m) = permutation_point(ex.net, ex.theta, layer, 0)
    loss = ex.loss(net)
    E = equal_loss_directions(net, point, layer, [(l, m)])
    start = point + _unit_steps(E, rng, 1)[0]
    shift = _loss_change(loss, start, output_shift(net, start, layer, l, m))
    n, worst, exact, points = net.widths[layer], 0.0, True, 0
    for _ in range(PATH_ORDERINGS):
        perm = rng.sample(range(n), n)
        path = equal_loss_permutation_path(net, start, layer, (l, m), perm)
        worst = max(worst, _loss_change(loss, start, path))
        exact &= torch.equal(path[-1], permute(net, start, layer, perm))
        points += path.shape[0]
    return PathFigures(shift, worst, exact, points)
