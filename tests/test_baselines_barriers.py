"""Barrier definitions and arc length on constructed loss curves whose answers are known.

Stub paths (objects with ``full() -> (t, thetas, losses)``) stand in for the permutation path
and the baselines; every expected value below is worked out by hand. Tolerance: 1e-15 relative
(a few roundings of float64), unless the value is exact.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pytest
import torch

import weightsym as ws
from weightsym.baselines import (
    DEFINITIONS,
    BarrierReport,
    arc_length,
    barrier_height,
    barrier_report,
    mean_loss,
)
from weightsym.experiments.toy import ToyConfig, toy_problem

RTOL = 1e-15


class Stub(NamedTuple):
    """A path along a line in R^1 through the given positions, with the given losses."""

    positions: list[float]
    losses: list[float]

    def full(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.tensor(self.positions, dtype=torch.float64)[:, None]
        t = torch.linspace(0, 1, len(self.positions), dtype=torch.float64)
        return t, x, torch.tensor(self.losses, dtype=torch.float64)


# positions 0, 1, 3, 4, 8, 10: arc length s = 0, .1, .3, .4, .8, 1; the top (5) sits at s = 0.4
KNOWN = Stub([0, 1, 3, 4, 8, 10], [1, 3, 2, 5, 4, 2])


def close(a: float, b: float) -> bool:
    return abs(a - b) <= RTOL * max(abs(a), abs(b), 1e-300)


def test_arc_length_is_the_normalised_cumulative_length() -> None:
    _, thetas, _ = KNOWN.full()
    s = arc_length(thetas)
    expected = torch.tensor([0, 0.1, 0.3, 0.4, 0.8, 1], dtype=torch.float64)
    assert s.dtype == torch.float64
    assert s[0] == 0 and s[-1] == 1
    assert torch.allclose(s, expected, rtol=0, atol=1e-15)


def test_arc_length_in_many_dimensions_uses_the_euclidean_norm() -> None:
    thetas = torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0], [6.0, 8.0]], dtype=torch.float64)
    assert torch.equal(arc_length(thetas), torch.tensor([0, 0.5, 0.5, 1], dtype=torch.float64))


@pytest.mark.parametrize(
    "definition, relative, expected",
    [
        ("max", False, 5.0),
        ("frankle", False, 3.0),  # 5 - max(1, 2)
        ("entezari", False, 3.5),  # 5 - (1 + 2) / 2
        ("max", True, 5.0 / 1.5),
        ("frankle", True, 3.0 / 1.5),
        ("entezari", True, 3.5 / 1.5),
    ],
)
def test_barrier_height_on_a_known_curve(definition: str, relative: bool, expected: float) -> None:
    assert close(barrier_height(KNOWN, definition, relative=relative), expected)


def test_barrier_report_holds_every_definition_and_the_position() -> None:
    r = barrier_report(KNOWN)
    assert isinstance(r, BarrierReport)
    for d in DEFINITIONS:
        assert getattr(r, d) == barrier_height(KNOWN, d)
        assert getattr(r, f"{d}_relative") == barrier_height(KNOWN, d, relative=True)
    assert r.index == 3 and close(r.position, 0.4)
    assert (r.loss_a, r.loss_b) == (1.0, 2.0)
    # trapezoid over s: segments .1 * (1+3)/2 + .2 * (3+2)/2 + .1 * (2+5)/2 + .4 * (5+4)/2
    # + .2 * (4+2)/2 = 0.2 + 0.5 + 0.35 + 1.8 + 0.6
    assert close(r.mean_loss, 3.45) and close(mean_loss(KNOWN), 3.45)


def test_symmetric_endpoints_make_frankle_and_entezari_agree() -> None:
    path = Stub([0, 1, 2], [2.0, 7.0, 2.0])
    assert barrier_height(path, "frankle") == barrier_height(path, "entezari") == 5.0


def test_a_monotone_curve_has_no_frankle_barrier_but_an_entezari_one() -> None:
    path = Stub([0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0])  # the top is an endpoint
    assert barrier_height(path, "frankle") == 0.0
    assert barrier_height(path, "entezari") == 1.5
    assert barrier_report(path).position == 1.0


def test_zero_mean_endpoint_loss_rule() -> None:
    # 0 / 0 = 0 and positive / 0 = +inf (the module docstring's rule)
    flat = Stub([0, 1, 2], [0.0, 0.0, 0.0])
    bump = Stub([0, 1, 2], [0.0, 1e-3, 0.0])
    for d in DEFINITIONS:
        assert barrier_height(flat, d, relative=True) == 0.0
        assert barrier_height(bump, d, relative=True) == math.inf


def test_negative_endpoint_losses_have_no_relative_barrier() -> None:
    energy = Stub([0, 1, 2], [-3.0, -1.0, -2.0])
    assert barrier_height(energy, "frankle") == 1.0
    with pytest.raises(ValueError, match="non-negative mean endpoint loss"):
        barrier_height(energy, "max", relative=True)
    r = barrier_report(energy)
    assert math.isnan(r.max_relative) and math.isnan(r.entezari_relative)
    assert r.entezari == 1.5


def test_barrier_height_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="definition"):
        barrier_height(KNOWN, "garipov")
    with pytest.raises(TypeError, match="relative"):
        barrier_height(KNOWN, "max", relative=1)
    with pytest.raises(TypeError, match=r"full\(\)"):
        barrier_height(object())


def test_malformed_full_output_is_rejected() -> None:
    class Bad(NamedTuple):
        out: object

        def full(self) -> object:
            return self.out

    x = torch.zeros(3, 2, dtype=torch.float64)
    t = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="three tensors"):
        barrier_height(Bad((t, x)))
    with pytest.raises(ValueError, match=r"\(N,\)"):
        barrier_height(Bad((t, x, torch.zeros(4, dtype=torch.float64))))
    with pytest.raises(ValueError, match="NaN or inf"):
        barrier_height(Bad((t, x, torch.tensor([0.0, math.nan, 1.0], dtype=torch.float64))))


def test_arc_length_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="thetas"):
        arc_length(torch.zeros(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="thetas"):
        arc_length(torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="zero arc length"):
        arc_length(torch.ones(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN or inf"):
        arc_length(torch.tensor([[0.0], [math.inf]], dtype=torch.float64))
    with pytest.raises(TypeError, match="thetas"):
        arc_length(torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="thetas"):
        arc_length([[0.0], [1.0]])


def test_the_permutation_path_is_accepted() -> None:
    """A real permutation path (toy softplus teacher, T = 200, 10 steps): same top as its own
    ``barrier``."""
    loss, theta = toy_problem("softplus", ToyConfig(samples=200))
    path = ws.find_path(loss, theta, 1, (0, 1), steps=10)
    r = barrier_report(path)
    top = path.barrier
    assert r.max == top.loss and r.index == top.index
    assert 0 < r.position < 1
    assert r.frankle == top.loss - max(r.loss_a, r.loss_b)
