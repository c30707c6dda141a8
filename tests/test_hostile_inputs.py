"""Hostile input, generated: every public function either works or refuses by name.

For each public function a valid call is known; hypothesis replaces one argument at a time by
a generated value (wrong types, bools for ints, NaN and inf, negative or huge numbers, tensors
of other dtypes and shapes, complex numbers, empty things). The only outcomes allowed are a
result (finite where it is a number or tensor) or a ``ValueError`` / ``TypeError`` (or a
subclass of the library) whose message names the replaced argument; never another exception,
and never a changed input tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import weightsym as ws
from weightsym import counting

NET = ws.MLP([2, 3, 1], "softplus")
THETA = NET.init(seed=0)
X = torch.randn(12, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
Y = NET.forward(THETA, X)
LOSS = ws.Loss(NET, X, Y, kind="mse")

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.sampled_from([0, -1, 2**63, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.complex_numbers(max_magnitude=10),
)
DTYPES = st.sampled_from(
    [torch.float64, torch.float32, torch.int64, torch.bool, torch.complex128, torch.float16]
)


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=3))
    dtype = draw(DTYPES)
    t = torch.zeros(shape, dtype=torch.float64).normal_(generator=torch.Generator().manual_seed(1))
    if t.numel() and draw(st.booleans()):
        t.view(-1)[0] = draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e308]))
    return t.to(dtype) if dtype is not torch.bool else t > 0


HOSTILE = st.one_of(SCALARS, tensors(), st.lists(SCALARS, max_size=3).map(tuple))


@dataclass
class Case:
    """A public function, a valid call, and the words that name each argument."""

    fn: Callable[..., Any]
    valid: dict[str, Any]
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def words(self, arg: str) -> tuple[str, ...]:
        return self.names.get(arg, (arg,))


CASES = {
    "MLP": Case(ws.MLP, {"widths": [2, 3, 1], "activation": "tanh"}),
    "MLP.init": Case(NET.init, {"seed": 0, "scale": 1.0}),
    "Loss": Case(ws.Loss, {"net": NET, "X": X, "Y": Y, "kind": "mse"}, {"X": ("X", "T = 0")}),
    "Loss.__call__": Case(LOSS, {"theta": THETA}),
    "Loss.value_and_grad": Case(LOSS.value_and_grad, {"theta": THETA}),
    "swap": Case(
        ws.swap,
        {"net": NET, "theta": THETA, "layer": 1, "l": 0, "m": 2},
        {"l": ("l", "neuron", "same neuron"), "m": ("m", "neuron", "same neuron")},
    ),
    "permute": Case(
        ws.permute,
        {"net": NET, "theta": THETA, "layer": 1, "perm": (2, 0, 1)},
        {"perm": ("perm", "permutation")},
    ),
    "distance": Case(
        ws.distance,
        {"net": NET, "theta": THETA, "layer": 1, "l": 0, "m": 1, "kind": "incoming"},
        {"l": ("l", "neuron", "same neuron"), "m": ("m", "neuron", "same neuron")},
    ),
    "permutation_point": Case(
        ws.permutation_point,
        {"net_small": NET, "theta_small": THETA, "layer": 1, "neuron": 0},
        {"net_small": ("net",)},
    ),
    "saddle_index": Case(ws.saddle_index, {"loss": LOSS, "theta": THETA}),
    "minimize": Case(
        ws.minimize,
        {"objective": LOSS, "x0": THETA, "method": "newton", "tol": 1e-10},
        {"x0": ("x0", "theta"), "objective": ("objective",)},
    ),
    "find_path": Case(
        ws.find_path,
        {"loss": LOSS, "theta": THETA, "config": 1, "pair": (0, 1), "steps": 2, "max_iter": 5},
        {"config": ("layer", "config", "PathConfig"), "steps": ("steps",)},
    ),
    "counting.ratio": Case(counting.ratio, {"K": 2, "n": 6}),
    "counting.lower_bound": Case(counting.lower_bound, {"K": 2, "n": 6}),
}

ALLOWED = (ValueError, TypeError)


def _finite(result: Any) -> bool:
    items = result if isinstance(result, tuple) else (result,)
    for item in items:
        if isinstance(item, torch.Tensor) and item.is_floating_point():
            if not bool(torch.isfinite(item).all()):
                return False
        if isinstance(item, float) and not math.isfinite(item):
            return False
    return True


def _call(case: Case, arg: str, value: Any) -> None:
    kwargs = dict(case.valid) | {arg: value}
    before = {k: v.clone() for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
    try:
        result = case.fn(**kwargs)
    except ALLOWED as exc:
        message = str(exc)
        assert any(w in message for w in case.words(arg)), (arg, value, message)
    else:
        assert _finite(result), (arg, value)
    for k, v in before.items():  # no input is changed in place (NaN stays NaN)
        now = kwargs[k]
        assert now.shape == v.shape and now.dtype == v.dtype, k
        assert bool(((now == v) | ((now != now) & (v != v))).all()), k


@pytest.mark.parametrize("name", sorted(CASES))
def test_valid_call_works(name: str) -> None:
    case = CASES[name]
    assert _finite(case.fn(**case.valid))


@pytest.mark.parametrize("name", sorted(CASES))
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_hostile_argument_is_refused_by_name(name: str, data: st.DataObject) -> None:
    case = CASES[name]
    arg = data.draw(st.sampled_from(sorted(case.valid)), label="argument")
    _call(case, arg, data.draw(HOSTILE, label="value"))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    option=st.sampled_from(["-k", "--n", "--csv"]),
    value=st.one_of(
        st.text(max_size=8),
        st.integers(-(10**6), 10**6).map(str),
        st.sampled_from(["1e10", "5-1", "1-9999999", "nan", "", "-", ",", "3,,4", "0"]),
    ),
)
def test_count_command_refuses_or_works(option: str, value: str, tmp_path_factory) -> None:
    """``weightsym count`` with a generated option: exit 0, or exit 2 with an error line."""
    from click.testing import CliRunner

    from weightsym.cli import main

    if option == "--csv":
        value = str(tmp_path_factory.mktemp("csv") / (value.replace("/", "_") or "t")) + ".csv"
    result = CliRunner().invoke(main, ["count", option, value])
    assert result.exit_code in (0, 2), (option, value, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    if result.exit_code == 2:
        assert "Error" in result.output
