"""Groups of weights and how much each grew or shrank: what the escape diagnostics judge.

The pair's own input weights, biases and output weights, every other hidden neuron's, and the
output bias (docs/certification.md section 1, "Groups and change factors"); used by
:mod:`weightsym.diagnostics`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from weightsym.model import MLP

TINY = 1e-300  # guards divisions by a norm that is exactly zero
MAX_FACTOR = 1e300  # a shrink to exactly zero is reported as this factor (JSON has no inf)


class WeightGroup(NamedTuple):
    """A group of weights judged as one: ``kind`` as in ``diagnostics.EXPLAINS``; theta indices."""

    name: str
    kind: str
    index: Tensor


def weight_groups(net: MLP, layer: int, pair: tuple[int, int]) -> list[WeightGroup]:
    """Every group of weights the diagnostics judge (the pair's own weights kept apart).

    The pair's input weights W, biases b and output weights w, one group per neuron; for every
    other hidden neuron its input weights, bias and output weights, without entries that belong
    to the pair (in a deeper network a neighbour layer's vectors touch the pair's); the output
    bias b^(d).
    """
    owned = set()
    for i in pair:
        sl = net.neuron_slice(layer, i)
        owned.update(range(sl.start, sl.stop))
        owned.update(net.output_index(layer, i).tolist())
    specs: list[tuple[str, str, list[int]]] = []
    for k in net.hidden_layers:
        for i in range(net.widths[k]):
            sl = net.neuron_slice(k, i)
            parts = {
                "in": list(range(sl.start, sl.stop - 1)),
                "bias": [sl.stop - 1],
                "out": net.output_index(k, i).tolist(),
            }
            for part, idx in parts.items():
                if k == layer and i in pair:
                    tag = "l" if i == pair[0] else "m"
                    specs.append((f"pair_{part}_{tag}", f"pair_{part}", idx))
                elif kept := [j for j in idx if j not in owned]:
                    specs.append((f"{part}_{k}_{i}", f"other_{part}", kept))
    rows, cols = net.shapes[-1]
    specs.append(
        ("out_bias", "out_bias", [net.offsets[-2] + (r + 1) * cols - 1 for r in range(rows)])
    )
    return [WeightGroup(n, kind, torch.tensor(idx, dtype=torch.long)) for n, kind, idx in specs]


class GroupChange(NamedTuple):
    """How much one group's largest |weight| grew or shrank relative to the start."""

    group: WeightGroup
    growth: float  # max|x| / max(max|x0|, floor * scale)
    shrink: float  # max|x0| / max|x| where max|x0| >= floor * scale, else 1


def group_changes(
    net: MLP,
    theta: Tensor,
    start: Tensor,
    layer: int,
    pair: tuple[int, int],
    floor: float,
) -> list[GroupChange]:
    """Growth and shrink factors of every group of :func:`weight_groups`.

    With a = max |x| over the group's entries now, a_0 at the start and the scale
    s = max |start|: growth a / max(a_0, floor s), shrink a_0 / a where a_0 >= floor s (else 1),
    capped at :data:`MAX_FACTOR` (``floor``: ``Thresholds.floor`` of the diagnostics).
    """
    floor = max(floor * float(start.abs().max()), TINY)
    out = []
    for g in weight_groups(net, layer, pair):
        a = float(theta[g.index].abs().max())
        a0 = float(start[g.index].abs().max())
        shrink = min(a0 / max(a, TINY), MAX_FACTOR) if a0 >= floor else 1.0
        out.append(GroupChange(g, a / max(a0, floor), shrink))
    return out
