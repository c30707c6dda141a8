"""Per-step diagnostics of a permutation path: the escapes of docs/theory.md section 5.

A converged solver leaves the paper's path (Sec. 4.1) by flat routes that slow gradient descent
never explored. Each is detected from sizes relative to the start of the path:

* **channel** (smooth g, incoming distance): the pair's output weights diverge as +-c/d while
  their input vectors keep their size, so the pair computes a derivative of g; measured by
  |w_l - w_m| against the larger of the start norms |w_l|, |w_m|, and only where the two
  diverge in opposite directions (|w_l + w_m| stays a fraction of |w_l - w_m|): one pair
  neuron whose output weight grows alone is not the pair's channel (on full MNIST it was a
  channel of that neuron with a third one, which the elsewhere flag names);
* **rescaling** (positively homogeneous g): the pair's input vectors vartheta = [W, b] shrink
  and the output weights grow, (vartheta, w) -> (a vartheta, w / a), which drives d to 0 at no
  cost;
* **linearization** (smooth g): the pair's input *weights* W shrink while its biases stay, and
  its output weights grow like 1 / |W|: each neuron computes w (g(b) + g'(b) W x + ...), an
  affine function, and the output bias absorbs the constant;
* **elsewhere**: the largest weight of some *other* hidden neuron grows: a student with no
  finite minimizer at this d; its *partner* is the neuron of the same layer whose incoming
  vector is nearest (a channel between the two where the distance is small), and where the
  partner is a pair neuron the growth of that neuron's output weights is accounted for too;
* **unclassified**: a group of weights (:func:`weight_groups`) grew or shrank by more than
  :attr:`Thresholds.change` and no raised flag above accounts for it (:data:`EXPLAINS`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from weightsym.model import MLP
from weightsym.weight_groups import MAX_FACTOR, TINY, GroupChange
from weightsym.weight_groups import WeightGroup as WeightGroup
from weightsym.weight_groups import group_changes as group_changes
from weightsym.weight_groups import weight_groups as weight_groups


@dataclass(frozen=True)
class Thresholds:
    """When the flags rise: ratios to the start of the path (docs/theory.md section 5)."""

    channel: float = 10.0  # |w_l - w_m| grew beyond this factor times max(|w_l|, |w_m|) at start
    cancel: float = 0.5  # ... with |w_l + w_m| at most this fraction of |w_l - w_m| (opposite
    # directions: the pair's own channel, not one pair neuron's channel with a third neuron)
    rescaling: float = 0.1  # |vartheta| (W and b) of a pair neuron fell below this fraction
    elsewhere: float = 3.0  # largest weight of another neuron grew by more than this factor
    linearization: float = 0.1  # |W| (bias excluded) of both pair neurons fell below this
    # fraction, while each bias shrank by less than `change` and the summed output-weight
    # norm grew like 1/|W| (growth times the |W| ratio within a factor `change` of 1)
    change: float = 10.0  # a group's largest |weight| grew or shrank by more than this factor
    floor: float = 0.5  # a group's start size counts as at least this fraction of the start's
    # largest |weight| (growth from ~0 is measured from there); a group smaller than that at
    # the start is not judged for shrinking (a bias drifting to ~0 is no escape)


@dataclass(frozen=True)
class StepDiagnostics:
    """Sizes against the start of the path and the escape flags at one point.

    Columns up to ``flag_elsewhere`` are those of the first release, in its order:
    ``in_norm_*`` / ``out_norm_*``: |vartheta| and |w| of the pair relative to the start;
    ``out_spread``: |w_l - w_m| / max(|w_l|, |w_m|) at the start; ``max_weight``: max |theta|;
    ``other_*``: the largest weight of another hidden neuron, its growth, where it sits.
    Then: ``in_weight_*``: |W| (bias excluded) of the pair relative to the start;
    ``largest_growth`` / ``largest_shrink``: the largest factor by which a group of weights
    grew / shrank (see :class:`Thresholds` ``floor``), with the group's name; ``unexplained``:
    the groups that changed by more than ``change`` with no classified flag to account for
    them (``;``-separated); ``flag_linearization``, ``flag_unclassified``. Then: ``out_sum``:
    |w_l + w_m| over the same start norm as ``out_spread``; ``other_partner``: the neuron of
    ``other_layer`` whose incoming vector [W, b] is nearest that of ``other_neuron`` (-1 where
    there is no other neuron), ``other_partner_distance`` the distance between the two.

    Rows written before the later columns existed (see :meth:`from_row`) read them as
    :data:`MISSING_DEFAULTS`: NaN for numbers (not recorded), ``""`` for names, ``False`` for the
    flags (not checked).
    """

    in_norm_l: float
    out_norm_l: float
    in_norm_m: float
    out_norm_m: float
    out_spread: float
    max_weight: float
    other_max_weight: float
    other_growth: float
    other_layer: int
    other_neuron: int
    flag_rescaling: bool
    flag_channel: bool
    flag_elsewhere: bool
    in_weight_l: float
    in_weight_m: float
    largest_growth: float
    largest_growth_group: str
    largest_shrink: float
    largest_shrink_group: str
    unexplained: str
    flag_linearization: bool
    flag_unclassified: bool
    out_sum: float
    other_partner: int
    other_partner_distance: float

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The columns of :meth:`as_row`, in their fixed order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def as_row(self) -> dict[str, float | int | bool | str]:
        """A flat dict in the order of :meth:`columns`."""
        return {name: getattr(self, name) for name in self.columns()}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StepDiagnostics:
        """The inverse of :meth:`as_row`, for a row read back from a checkpoint or CSV.

        Values are converted to each column's type (CSV cells arrive as text or numbers). A
        column in :data:`MISSING_DEFAULTS` that is absent or empty gets its default.

        Raises:
            KeyError: a column of the first release is missing.
            ValueError: a value cannot be read as its column's type.
        """
        values = {}
        for f in dataclasses.fields(cls):
            value = row.get(f.name, "")
            if value == "" and f.name in MISSING_DEFAULTS:
                value = MISSING_DEFAULTS[f.name]
            elif f.name not in row:
                raise KeyError(f"diagnostics row lacks the column {f.name!r}")
            values[f.name] = _convert(f.name, value, f.type)
        return cls(**values)

    @property
    def flags(self) -> dict[str, bool]:
        """The escape flags by name, in the order of :data:`FLAGS`."""
        return {f: getattr(self, f) for f in FLAGS}


FLAGS = (
    "flag_channel",
    "flag_rescaling",
    "flag_linearization",
    "flag_elsewhere",
    "flag_unclassified",
)
MISSING_DEFAULTS: dict[str, float | str | bool] = (
    dict.fromkeys(("in_weight_l", "in_weight_m", "largest_growth", "largest_shrink"), math.nan)
    | dict.fromkeys(("largest_growth_group", "largest_shrink_group", "unexplained"), "")
    | dict.fromkeys(("flag_linearization", "flag_unclassified"), False)
    | dict.fromkeys(("out_sum", "other_partner_distance"), math.nan)
    | {"other_partner": -1}
)
"""Values of the columns added after the first release, for rows written without them."""


def _convert(name: str, value: Any, kind: str) -> Any:
    if kind == "bool":
        if isinstance(value, str) and value in ("True", "False"):
            return value == "True"
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise ValueError(f"column {name!r}: expected True or False; got {value!r}")
    caster = {"float": float, "int": int, "str": str}[kind]
    try:
        return caster(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"column {name!r}: expected {kind}; got {value!r}") from exc


PARTNER_IN_PAIR = "partner_in_pair"
EXPLAINS: dict[str, tuple[tuple[str, str], ...]] = {
    "flag_channel": (("pair_out", "grew"),),
    "flag_rescaling": (("pair_in", "shrank"), ("pair_bias", "shrank"), ("pair_out", "grew")),
    "flag_linearization": (("pair_in", "shrank"), ("pair_out", "grew"), ("out_bias", "any")),
    "flag_elsewhere": tuple(
        (k, "any") for k in ("other_in", "other_bias", "other_out", "out_bias")
    ),
    PARTNER_IN_PAIR: (("pair_out", "grew"),),
}
"""Which changes (group kind, direction) each classified flag accounts for when raised
(:data:`PARTNER_IN_PAIR` is no flag: an elsewhere channel whose partner is a pair neuron)."""


def _neuron_max(net: MLP, theta: Tensor, layer: int, i: int) -> float:
    return max(
        float(theta[net.neuron_slice(layer, i)].abs().max()),
        float(theta[net.output_index(layer, i)].abs().max()),
    )


def _largest_other_neuron(
    net: MLP, theta: Tensor, layer: int, pair: tuple[int, int]
) -> tuple[float, int, int]:
    """(largest |weight|, layer, neuron) over hidden neurons outside the pair (in or out)."""
    best = (0.0, layer, -1)
    for k in net.hidden_layers:
        for i in range(net.widths[k]):
            if k == layer and i in pair:
                continue
            best = max(best, (_neuron_max(net, theta, k, i), k, i))
    return best


def _partner(net: MLP, theta: Tensor, layer: int, i: int) -> tuple[int, float]:
    """(q, |vartheta_q - vartheta_i|) for the neuron q != i of ``layer`` whose incoming vector
    is nearest neuron i's; (-1, NaN) in a layer of one neuron."""
    best = (math.inf, -1)
    v = theta[net.neuron_slice(layer, i)]
    for q in range(net.widths[layer]):
        if q != i:
            best = min(best, (float((theta[net.neuron_slice(layer, q)] - v).norm()), q))
    return (best[1], best[0]) if best[1] >= 0 else (-1, math.nan)


def _ratio(theta: Tensor, start: Tensor, idx: Any) -> float:
    return min(float(theta[idx].norm() / start[idx].norm().clamp_min(TINY)), MAX_FACTOR)


def _first_release(
    net: MLP, theta: Tensor, start: Tensor, layer: int, pair: tuple[int, int], t: Thresholds
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The columns of the first release (norm ratios, the largest other weight, three flags),
    and the pair's summed output weight and the grown neuron's partner (later columns)."""
    out: dict[str, Any] = {}
    for name, i in zip(("l", "m"), pair):
        out[f"in_norm_{name}"] = _ratio(theta, start, net.neuron_slice(layer, i))
        out[f"out_norm_{name}"] = _ratio(theta, start, net.output_index(layer, i))
    o_l, o_m = net.output_index(layer, pair[0]), net.output_index(layer, pair[1])
    spread0 = max(float(start[o_l].norm()), float(start[o_m].norm()), TINY)
    out["out_spread"] = float((theta[o_l] - theta[o_m]).norm()) / spread0
    out_sum = float((theta[o_l] + theta[o_m]).norm()) / spread0
    other, k, i = _largest_other_neuron(net, theta, layer, pair)
    other0, _, _ = _largest_other_neuron(net, start, layer, pair)
    out["max_weight"] = float(theta.abs().max())
    out["other_max_weight"] = other
    out["other_growth"] = other / max(other0, TINY) if i >= 0 else 1.0
    out["other_layer"], out["other_neuron"] = k, i
    shrunk = min(out["in_norm_l"], out["in_norm_m"]) < t.rescaling
    out["flag_rescaling"] = shrunk
    opposite = out_sum <= t.cancel * out["out_spread"]
    out["flag_channel"] = out["out_spread"] > t.channel and opposite and not shrunk
    out["flag_elsewhere"] = out["other_growth"] > t.elsewhere
    partner, distance = _partner(net, theta, k, i) if i >= 0 else (-1, math.nan)
    return out, {"out_sum": out_sum, "other_partner": partner, "other_partner_distance": distance}


def _linearization(
    net: MLP, theta: Tensor, start: Tensor, layer: int, pair: tuple[int, int], t: Thresholds
) -> tuple[float, float, bool]:
    """(|W_l| ratio, |W_m| ratio, whether the pair linearizes; see :class:`Thresholds`)."""
    w_ratio, bias_kept = [], True
    out_now = out_start = 0.0
    for i in pair:
        sl = net.neuron_slice(layer, i)
        w_ratio.append(_ratio(theta, start, slice(sl.start, sl.stop - 1)))
        bias_kept &= abs(float(theta[sl.stop - 1])) * t.change >= abs(float(start[sl.stop - 1]))
        o = net.output_index(layer, i)
        out_now, out_start = out_now + float(theta[o].norm()), out_start + float(start[o].norm())
    shrunk = max(w_ratio)
    product = out_now / max(out_start, TINY) * shrunk
    flag = shrunk < t.linearization and bias_kept and 1.0 / t.change <= product <= t.change
    return w_ratio[0], w_ratio[1], flag


def _explained(kind: str, direction: str, raised: Mapping[str, bool]) -> bool:
    return any(
        raised[flag] and any(k == kind and d in (direction, "any") for k, d in rules)
        for flag, rules in EXPLAINS.items()
    )


def _unexplained(
    changes: list[GroupChange], raised: Mapping[str, bool], t: Thresholds
) -> list[str]:
    """Names of the groups that changed by more than ``t.change`` with no flag to explain it."""
    names = []
    for c in changes:
        moves = [d for d, factor in (("grew", c.growth), ("shrank", c.shrink)) if factor > t.change]
        if any(not _explained(c.group.kind, d, raised) for d in moves):
            names.append(c.group.name)
    return names


def step_diagnostics(
    net: MLP,
    theta: Tensor,
    start: Tensor,
    layer: int,
    pair: tuple[int, int],
    thresholds: Thresholds = Thresholds(),
) -> StepDiagnostics:
    """Sizes against ``start`` and the escape flags for one point of a path.

    Args:
        net: the network.
        theta: the point (a flat parameter vector of ``net``).
        start: the start of the path (after any gauge), same length.
        layer: the pair's hidden layer k.
        pair: the merged neurons (l, m).
        thresholds: when the flags rise.

    Returns:
        The point's :class:`StepDiagnostics`.

    Raises:
        ValueError, TypeError: a bad ``theta`` or ``start``, or a layer or pair the network
            does not have.
    """
    net.check_theta(theta, "theta")
    net.check_theta(start, "start")
    net.check_hidden_layer(layer)
    for name, i in zip(("pair[0]", "pair[1]"), pair):
        net.check_neuron(layer, i, name)
    t = thresholds
    first, later = _first_release(net, theta, start, layer, pair, t)
    in_w_l, in_w_m, linear = _linearization(net, theta, start, layer, pair, t)
    changes = group_changes(net, theta, start, layer, pair, t.floor)
    raised = {f: first[f] for f in ("flag_channel", "flag_rescaling", "flag_elsewhere")}
    raised["flag_linearization"] = linear
    raised[PARTNER_IN_PAIR] = (
        first["flag_elsewhere"] and first["other_layer"] == layer and later["other_partner"] in pair
    )
    unexplained = _unexplained(changes, raised, t)
    grow = max(changes, key=lambda c: c.growth)
    shrink = max(changes, key=lambda c: c.shrink)
    return StepDiagnostics(
        **first,
        in_weight_l=in_w_l,
        in_weight_m=in_w_m,
        largest_growth=grow.growth,
        largest_growth_group=grow.group.name,
        largest_shrink=shrink.shrink,
        largest_shrink_group=shrink.group.name,
        unexplained=";".join(unexplained),
        flag_linearization=linear,
        flag_unclassified=bool(unexplained),
        **later,
    )


def any_flags(diagnostics: Iterable[StepDiagnostics | Mapping[str, Any]]) -> dict[str, bool]:
    """Whether each flag of :data:`FLAGS` rose anywhere on a path.

    Accepts :class:`StepDiagnostics` or flat rows (a flag absent from a row counts as not
    raised).
    """
    out = dict.fromkeys(FLAGS, False)
    for d in diagnostics:
        flags = d.flags if isinstance(d, StepDiagnostics) else d
        for f in FLAGS:
            out[f] = out[f] or bool(flags.get(f, False))
    return out
