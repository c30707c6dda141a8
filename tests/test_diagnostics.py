"""Escape diagnostics (docs/theory.md section 5) on points built with a known escape.

Each "after" point is made by hand from a toy-like 2-5-1 teacher, so the escape it contains is
known exactly: the flags must name it, and nothing else.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from weightsym import diagnostics as diag
from weightsym.experiments.toy import toy_teacher
from weightsym.model import MLP

FIRST_RELEASE = (
    "in_norm_l", "out_norm_l", "in_norm_m", "out_norm_m", "out_spread", "max_weight",
    "other_max_weight", "other_growth", "other_layer", "other_neuron", "flag_rescaling",
    "flag_channel", "flag_elsewhere",
)  # fmt: skip
OUT_BIAS = 0.3  # the teacher's output bias is 0; a nonzero one lets case (e) scale it


def _start(activation: str) -> tuple[MLP, torch.Tensor]:
    net, theta = toy_teacher(activation)
    theta = theta.clone()
    theta[_out_bias(net)] = OUT_BIAS
    return net, theta


def _out_bias(net: MLP) -> torch.Tensor:
    rows, cols = net.shapes[-1]
    return net.offsets[-2] + torch.arange(rows) * cols + cols - 1


def _parts(net: MLP, i: int) -> tuple[slice, int, torch.Tensor]:
    """(input weights W_i, bias index, output weight indices) of neuron i of layer 1."""
    sl = net.neuron_slice(1, i)
    return slice(sl.start, sl.stop - 1), sl.stop - 1, net.output_index(1, i)


def _raised(d: diag.StepDiagnostics) -> set[str]:
    return {f for f, up in d.flags.items() if up}


def _diag(net: MLP, theta: torch.Tensor, start: torch.Tensor, pair=(1, 3), **thresholds):
    return diag.step_diagnostics(net, theta, start, 1, pair, diag.Thresholds(**thresholds))


def test_channel_flags_channel_only() -> None:
    """(a) pair output weights -> w +- c (|w_l - w_m| grows), input vectors kept."""
    net, start = _start("softplus")
    th = start.clone()
    th[_parts(net, 1)[2]] += 20.0
    th[_parts(net, 3)[2]] -= 20.0
    assert _raised(_diag(net, th, start)) == {"flag_channel"}


def test_rescaling_on_relu_flags_rescaling_only() -> None:
    """(b) (W, b) -> a (W, b), w -> w / a with a = 1e-3: the same function (to 1e-12)."""
    net, start = _start("relu")
    th = start.clone()
    for i in (1, 3):
        W, b, o = _parts(net, i)
        th[W], th[b], th[o] = 1e-3 * th[W], 1e-3 * th[b], th[o] / 1e-3
    X = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(net.forward(th, X), net.forward(start, X), rtol=0, atol=1e-12)
    assert _raised(_diag(net, th, start)) == {"flag_rescaling"}


def _linearized(net: MLP, start: torch.Tensor, pair: tuple[int, int]) -> torch.Tensor:
    """W x 1e-3 with the biases kept, both output weights 300 x their mean, output bias moved."""
    th = start.clone()
    mean = sum(start[_parts(net, i)[2]] for i in pair) / 2
    for i in pair:
        W, _, o = _parts(net, i)
        th[W], th[o] = 1e-3 * th[W], 300 * mean
    th[_out_bias(net)] -= 250.0
    return th


def test_linearization_flags_linearization_only() -> None:
    """(c) linearization as it was seen: output weights become equal, so no channel, and the
    bias keeps |vartheta|, so no rescaling: the first release raised no flag at all here."""
    net, start = _start("softplus")
    d = _diag(net, _linearized(net, start, (3, 4)), start, pair=(3, 4))
    assert _raised(d) == {"flag_linearization"}
    assert d.in_weight_l == pytest.approx(1e-3, rel=1e-12)


def test_linearization_with_diverging_outputs_also_flags_channel() -> None:
    """(c) literal: W x 1e-3, biases kept, w x 300 (opposite signs), output bias shifted; the
    first release's channel rule (|w_l - w_m| grew) rises with it, nothing is unclassified."""
    net, start = _start("softplus")
    th = start.clone()
    for i in (1, 3):
        W, _, o = _parts(net, i)
        th[W], th[o] = 1e-3 * th[W], 300 * th[o]
    th[_out_bias(net)] -= 250.0
    assert _raised(_diag(net, th, start)) == {"flag_linearization", "flag_channel"}


def test_linearization_numbers_of_the_issue() -> None:
    """The escape as it was seen: |W| 0.8 -> 0.002 with bias -0.57 kept, output weights 0.25 and
    1.6 -> 82 each, output bias 0 -> -73 (no flag of the first release rose)."""
    net = MLP([2, 5, 1], "softplus")
    gen = torch.Generator().manual_seed(1)
    start = net.init(seed=1)
    for i, w in ((1, 0.25), (3, 1.6)):
        W, b, o = _parts(net, i)
        direction = torch.randn(2, dtype=torch.float64, generator=gen)
        start[W], start[b], start[o] = 0.8 * direction / direction.norm(), -0.57, w
    start[_out_bias(net)] = 0.0
    th = start.clone()
    for i in (1, 3):
        W, _, o = _parts(net, i)
        th[W], th[o] = start[W] * (0.002 / 0.8), 82.0
    th[_out_bias(net)] = -73.0
    d = _diag(net, th, start)
    assert _raised(d) == {"flag_linearization"}
    assert not (d.flag_channel or d.flag_rescaling or d.flag_elsewhere)


def test_growth_elsewhere_flags_elsewhere_only() -> None:
    """(d) another neuron's input weights, bias and output weights x 10."""
    net, start = _start("softplus")
    th = start.clone()
    sl = net.neuron_slice(1, 0)
    th[sl], th[net.output_index(1, 0)] = 10 * th[sl], 10 * th[net.output_index(1, 0)]
    d = _diag(net, th, start)
    assert _raised(d) == {"flag_elsewhere"}
    assert (d.other_layer, d.other_neuron) == (1, 0) and d.other_growth > 3.0


def _channel_with_third(net: MLP, start: torch.Tensor, third: int, member: int) -> torch.Tensor:
    """Neuron ``third`` moved to within 1e-5 of pair neuron ``member``'s incoming vector, their
    output weights -/+ 1e3 apart: a channel of ``member`` with ``third``, not of the pair."""
    th = start.clone()
    t_sl, m_sl = net.neuron_slice(1, third), net.neuron_slice(1, member)
    th[t_sl] = start[m_sl] + 1e-5
    th[net.output_index(1, member)] += 1e3
    th[net.output_index(1, third)] -= 1e3
    return th


def test_channel_with_a_third_neuron_flags_elsewhere_with_its_partner() -> None:
    """(f) as on the full-MNIST path (docs/varpro.md section 4): pair neuron l (1) and neuron 0
    merge and diverge; the first release's channel rule rose here (|w_l - w_m| grew) although
    w_m did not move; now only elsewhere rises, naming the partner, and nothing is unclassified."""
    net, start = _start("softplus")
    th = _channel_with_third(net, start, third=0, member=1)
    d = _diag(net, th, start)
    assert _raised(d) == {"flag_elsewhere"}
    assert (d.other_layer, d.other_neuron, d.other_partner) == (1, 0, 1)
    assert d.other_partner_distance == pytest.approx(1e-5 * math.sqrt(3), rel=1e-6)
    assert d.out_spread > 10 and d.out_sum == pytest.approx(d.out_spread, rel=1e-2)
    assert _diag(net, th, start, cancel=math.inf).flag_channel  # the first release's rule
    # the same growth with a partner outside the pair leaves the pair's outputs unexplained
    th2 = _channel_with_third(net, start, third=0, member=2)
    th2[net.output_index(1, 1)] += 1e3
    assert _raised(_diag(net, th2, start)) == {"flag_elsewhere", "flag_unclassified"}


def test_pair_channel_needs_opposite_output_weights() -> None:
    """(a) against (f): |w_l - w_m| grown alike, once with w_l + w_m kept (the pair's channel)
    and once with w_l alone grown (w_l + w_m grows as much): only the first is a channel."""
    net, start = _start("softplus")
    o_l, o_m = _parts(net, 1)[2], _parts(net, 3)[2]
    pair_channel, one_grows = start.clone(), start.clone()
    pair_channel[o_l] += 50.0
    pair_channel[o_m] -= 50.0
    one_grows[o_l] += 100.0
    assert _diag(net, pair_channel, start).flag_channel
    d = _diag(net, one_grows, start)
    assert not d.flag_channel and d.out_sum > diag.Thresholds().cancel * d.out_spread
    assert d.flag_unclassified  # pair_out_l grew and no classified escape accounts for it
    assert _diag(net, one_grows, start, cancel=math.inf).flag_channel  # the first release's


def test_unexplained_growth_flags_unclassified_only() -> None:
    """(e) the output bias x 100 alone: no classified escape accounts for it."""
    net, start = _start("softplus")
    th = start.clone()
    th[_out_bias(net)] *= 100
    d = _diag(net, th, start)
    assert _raised(d) == {"flag_unclassified"}
    assert d.unexplained == "out_bias" and d.largest_growth_group == "out_bias"


@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_start_and_small_perturbation_raise_nothing(activation: str) -> None:
    """(f) the start itself, and a perturbation of 1e-3 relative."""
    net, start = _start(activation)
    noise = torch.randn(
        start.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    for th in (start, start * (1 + 1e-3 * noise)):
        d = _diag(net, th, start)
        assert _raised(d) == set() and d.unexplained == ""
        assert d.largest_growth < 1.01 and d.largest_shrink < 1.01


def test_a_missed_classification_falls_to_unclassified() -> None:
    """With the linearization threshold set too strict, the same escape is still flagged."""
    net, start = _start("softplus")
    d = _diag(net, _linearized(net, start, (3, 4)), start, pair=(3, 4), linearization=1e-4)
    assert _raised(d) == {"flag_unclassified"}
    assert set(d.unexplained.split(";")) == {"pair_in_l", "pair_in_m", "pair_out_l", "pair_out_m",
                                             "out_bias"}  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    neuron=st.integers(0, 4),
    part=st.sampled_from(["in", "bias", "out", "out_bias"]),
    log_factor=st.floats(-4, 4),
)
def test_no_large_change_goes_unflagged(neuron: int, part: str, log_factor: float) -> None:
    """Scaling any one group by 1e-4 .. 1e4: a change beyond Thresholds.change raises a flag."""
    net, start = _start("softplus")
    W, b, o = _parts(net, neuron)
    idx = {"in": W, "bias": b, "out": o, "out_bias": _out_bias(net)}[part]
    th = start.clone()
    th[idx] = th[idx] * 10**log_factor
    d = _diag(net, th, start)
    change = diag.Thresholds().change
    if d.largest_growth > change or d.largest_shrink > change:
        assert _raised(d)


# Step 60 (d = 1e-4 d_0) of the softplus toy path of pair (1, 3), paper variant, computed by
# find_path(loss, theta, 1, (1, 3), steps=60, max_iter=40, patience=10): a channel of the pair
# (|w| ~ 6.8e3 in opposite directions) and neuron 2 grown 21x, no linearization.
STEP_60 = [
    1.1865071071547446, 0.5433007897970079, 0.4060114038146248, -0.6858744829623157,
    -0.8289727451409135, -0.300257205753775, 11.863738592784422, -19.957824574606693,
    29.160693522646973, -0.6859422799565118, -0.8289287653174143, -0.30005863740206196,
    0.5476339127517232, -0.5865260169280887, 0.5798719113383534, -1.4640296989833057,
    -6828.716781618636, -0.0020106032862345358, 6830.082766126836, 1.6258953859494527,
    -1.8463541529902472,
]  # fmt: skip
STEP_60_FIRST_RELEASE = (
    1.0454862635157731, 5803.0846941616655, 0.7930481165152854, 6671.618096782964,
    11607.330210194481, 6830.082766126836, 29.160693522646973, 21.187644793600263, 1, 2,
    False, True, True,
)  # fmt: skip
"""What the first release's step_diagnostics gave on STEP_60 (its columns, in its order)."""


def test_real_path_point_keeps_first_release_values_and_flags_channel_elsewhere() -> None:
    net, start = toy_teacher("softplus")
    d = diag.step_diagnostics(net, torch.tensor(STEP_60, dtype=torch.float64), start, 1, (1, 3))
    row = d.as_row()
    assert tuple(row)[: len(FIRST_RELEASE)] == FIRST_RELEASE
    assert tuple(row[c] for c in FIRST_RELEASE) == STEP_60_FIRST_RELEASE  # exact
    assert _raised(d) == {"flag_channel", "flag_elsewhere"}


def test_columns_fixed_order_and_round_trip() -> None:
    net, start = _start("softplus")
    d = _diag(net, _linearized(net, start, (3, 4)), start, pair=(3, 4))
    row = d.as_row()
    assert tuple(row) == diag.StepDiagnostics.columns()
    assert diag.StepDiagnostics.columns()[: len(FIRST_RELEASE)] == FIRST_RELEASE
    assert diag.StepDiagnostics.from_row(row) == d
    as_text = {k: repr(v) if isinstance(v, float) else str(v) for k, v in row.items()}
    assert diag.StepDiagnostics.from_row(as_text) == d  # CSV cells as text


def test_first_release_rows_read_with_defaults() -> None:
    net, start = _start("softplus")
    row = _diag(net, start, start).as_row()
    old = {k: row[k] for k in FIRST_RELEASE}
    d = diag.StepDiagnostics.from_row(old)
    assert math.isnan(d.in_weight_l) and math.isnan(d.largest_growth)
    assert d.unexplained == "" and not d.flag_linearization and not d.flag_unclassified
    assert math.isnan(d.out_sum) and math.isnan(d.other_partner_distance)
    assert d.other_partner == -1
    assert math.isnan(diag.StepDiagnostics.from_row(old | {"in_weight_l": ""}).in_weight_l)
    with pytest.raises(KeyError, match="out_spread"):
        diag.StepDiagnostics.from_row({k: v for k, v in old.items() if k != "out_spread"})
    with pytest.raises(ValueError, match="flag_channel"):
        diag.StepDiagnostics.from_row(old | {"flag_channel": "maybe"})


def test_any_flags_over_records_and_rows() -> None:
    net, start = _start("softplus")
    quiet = _diag(net, start, start)
    th = start.clone()
    th[_out_bias(net)] *= 100
    loud = _diag(net, th, start).as_row()
    out = diag.any_flags([quiet, loud, {"flag_channel": True}])
    assert list(out) == list(diag.FLAGS)
    assert out == dict.fromkeys(diag.FLAGS, False) | {
        "flag_unclassified": True,
        "flag_channel": True,
    }


def test_groups_cover_every_weight_once_outside_deeper_overlaps() -> None:
    """On a 2-5-1 net the groups partition theta (each weight judged exactly once)."""
    net, _ = _start("softplus")
    groups = diag.weight_groups(net, 1, (1, 3))
    idx = torch.cat([g.index for g in groups]).sort().values
    assert torch.equal(idx, torch.arange(net.num_params))
    deep = MLP([3, 4, 4, 2], "tanh")
    owned = set(deep.output_index(1, 0).tolist()) | set(deep.output_index(1, 2).tolist())
    for g in diag.weight_groups(deep, 1, (0, 2)):
        if not g.kind.startswith("pair"):
            assert not owned & set(g.index.tolist()), g.name
