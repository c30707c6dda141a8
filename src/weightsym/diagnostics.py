"""Per-step diagnostics of a permutation path: the escapes of SPEC section 4.

A converged solver leaves the paper's path by flat routes that slow gradient descent never
explored. Each is detected from norms relative to the start of the path:

* **channel** (smooth g, incoming distance): the pair's output weights diverge as +-c/d while
  their input vectors keep their size, so the pair computes a derivative of g (Martinelli et
  al.); measured by |w_l - w_m| against the larger of the start norms |w_l|, |w_m|;
* **rescaling** (positively homogeneous g): the pair's input vectors shrink and the output
  weights grow, (vartheta, w) -> (a vartheta, w / a), which drives d to 0 at no cost;
* **channel elsewhere**: the largest weight of some *other* hidden neuron grows, which signals a
  student with no finite minimizer at this d.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from torch import Tensor

from weightsym.model import MLP


@dataclass(frozen=True)
class Thresholds:
    """When a flag rises (ratios to the start of the path)."""

    channel: float = 10.0  # |w_l - w_m| grew beyond this factor times max(|w_l|, |w_m|) at start
    rescaling: float = 0.1  # pair input norm fell below this fraction
    elsewhere: float = 3.0  # largest weight of another neuron grew by more than this factor


def _neuron_max(net: MLP, theta: Tensor, layer: int, i: int) -> float:
    return max(
        float(theta[net.neuron_slice(layer, i)].abs().max()),
        float(theta[net.output_index(layer, i)].abs().max()),
    )


def largest_other_neuron(
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


@dataclass(frozen=True)
class StepDiagnostics:
    """Norm ratios against the start of the path and the escape flags at one point.

    ``in_norm_*`` / ``out_norm_*``: |vartheta| and |w| of the pair relative to the start;
    ``out_spread``: |w_l - w_m| / max(|w_l|, |w_m|) at the start; ``max_weight``: max |theta|;
    ``other_*``: the largest weight of another hidden neuron, its growth, where it sits.
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

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The CSV columns of :meth:`as_row`, in order."""
        return tuple(f.name for f in fields(cls))

    def as_row(self) -> dict[str, float | int | bool]:
        return {name: getattr(self, name) for name in self.columns()}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StepDiagnostics:
        return cls(**{name: row[name] for name in cls.columns()})

    @property
    def flags(self) -> dict[str, bool]:
        return {f: getattr(self, f) for f in FLAGS}


def step_diagnostics(
    net: MLP,
    theta: Tensor,
    start: Tensor,
    layer: int,
    pair: tuple[int, int],
    thresholds: Thresholds = Thresholds(),
) -> StepDiagnostics:
    """Norm ratios against ``start`` and the three escape flags for one point of a path."""
    out: dict[str, float | int | bool] = {}
    in_ratios = []
    for name, i in zip(("l", "m"), pair):
        sl, oi = net.neuron_slice(layer, i), net.output_index(layer, i)
        r_in = float(theta[sl].norm() / start[sl].norm().clamp_min(1e-300))
        r_out = float(theta[oi].norm() / start[oi].norm().clamp_min(1e-300))
        out[f"in_norm_{name}"] = r_in
        out[f"out_norm_{name}"] = r_out
        in_ratios.append(r_in)
    o_l, o_m = net.output_index(layer, pair[0]), net.output_index(layer, pair[1])
    spread0 = max(float(start[o_l].norm()), float(start[o_m].norm()), 1e-300)
    out["out_spread"] = float((theta[o_l] - theta[o_m]).norm()) / spread0
    other, k, i = largest_other_neuron(net, theta, layer, pair)
    other0, _, _ = largest_other_neuron(net, start, layer, pair)
    out["max_weight"] = float(theta.abs().max())
    out["other_max_weight"] = other
    out["other_growth"] = other / max(other0, 1e-300) if i >= 0 else 1.0
    out["other_layer"], out["other_neuron"] = k, i
    shrunk = min(in_ratios) < thresholds.rescaling
    out["flag_rescaling"] = shrunk
    out["flag_channel"] = out["out_spread"] > thresholds.channel and not shrunk
    out["flag_elsewhere"] = out["other_growth"] > thresholds.elsewhere
    return StepDiagnostics(**out)


FLAGS = ("flag_channel", "flag_rescaling", "flag_elsewhere")


def any_flags(diagnostics: Iterable[StepDiagnostics]) -> dict[str, bool]:
    """Whether each flag rose anywhere on a path."""
    rows = [d.flags for d in diagnostics]
    return {f: any(r[f] for r in rows) for f in FLAGS}
