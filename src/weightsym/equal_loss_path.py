"""Constant-loss moves from a permutation point: Sec. 4.1 (appendix Fig. 4) and Prop. 1 (iii).

* :func:`output_shift`: with vartheta_l = vartheta_m, moving w_l and w_m linearly to their mean
  keeps f constant (t = 1/4 to 1/2 of the permutation path).
* :func:`equal_loss_permutation_path`: from a permutation point, every ordering of layer k is
  reached along an explicit piecewise-linear path of constant f (Prop. 1 (iii); docs/theory.md
  section 2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from weightsym.model import MLP
from weightsym.symmetry import (
    COINCIDE_RTOL,
    Permutation,
    check_net_theta,
    check_pair,
    check_permutation,
    coincide,
    invert,
)

POINTS_PER_SEGMENT = 5
"""Default points per linear segment of :func:`equal_loss_permutation_path`, ends included."""
SHIFT_POINTS = 21
"""Default number of points of :func:`output_shift`, ends included."""
_BLANK = -1  # slot marker in the path construction: a neuron with zero output weight


# -- piecewise-linear paths of constant f -------------------------------------------------------


def _polyline(keys: Sequence[Tensor], points_per_segment: int) -> Tensor:
    """Points along the segments between consecutive ``keys`` (segments of length zero are
    dropped); each segment has ``points_per_segment`` points, ends shared, and its points are
    key + s (next - key), so coordinates a segment does not move are copied bit for bit."""
    points = [keys[0]]
    s = torch.linspace(0.0, 1.0, points_per_segment, dtype=keys[0].dtype)[1:-1, None]
    for a, b in zip(keys[:-1], keys[1:]):
        if torch.equal(a, b):
            continue
        points.extend([a + s * (b - a), b[None]])
    return torch.cat([p.reshape(-1, keys[0].shape[0]) for p in points])


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValueError(f"{name} must be an int >= 2; got {value!r}")
    return value


def _check_coinciding_pair(
    net: MLP, theta: Tensor, layer: int, l: int, m: int, rtol: float
) -> None:
    check_net_theta(net, theta)
    check_pair(net, layer, l, m)
    if not coincide(net, theta, layer, l, m, rtol):
        raise ValueError(
            f"the parameter vectors of neurons l={l} and m={m} of layer {layer} differ beyond "
            f"rtol={rtol}: output weight can be moved between them only where they coincide"
        )


def output_shift(
    net: MLP,
    theta: Tensor,
    layer: int,
    l: int,
    m: int,
    num: int = SHIFT_POINTS,
    rtol: float = COINCIDE_RTOL,
) -> Tensor:
    """(num, P): w_l and w_m moved linearly to their mean (Sec. 4.1, appendix Fig. 4).

    The step t = 1/4 to 1/2 of the permutation path: where vartheta_l = vartheta_m (to ``rtol``),
    w_l + w_m is kept, so f is constant; the last point has w_l = w_m = (w_l + w_m) / 2, a
    permutation point (Lemma 1). All other parameters are unchanged; point i has
    w = (1 - s) w + s (w_l + w_m) / 2 with s = i / (num - 1), so its ends are exact.
    """
    _check_coinciding_pair(net, theta, layer, l, m, rtol)
    _check_count(num, "num")
    il, im = net.output_index(layer, l), net.output_index(layer, m)
    mean = 0.5 * (theta[il] + theta[im])
    points = theta.repeat(num, 1)
    for i in range(1, num):
        s = i / (num - 1)
        points[i, il] = (1 - s) * theta[il] + s * mean
        points[i, im] = (1 - s) * theta[im] + s * mean
    return points


class _Keys:
    """The key points of an equal-loss path: each edit copies the last key and changes it."""

    def __init__(self, net: MLP, theta: Tensor, layer: int) -> None:
        self.net, self.layer, self.keys = net, layer, [theta.clone()]

    def edit(self, change: Callable[[Tensor], None]) -> None:
        key = self.keys[-1].clone()
        change(key)
        self.keys.append(key)

    def set_vector(self, slot: int, value: Tensor) -> None:
        """Move vartheta_slot to ``value`` (f-neutral only while w_slot = 0)."""

        def change(key: Tensor) -> None:
            key[self.net.neuron_slice(self.layer, slot)] = value

        self.edit(change)

    def set_outputs(self, values: Mapping[int, Tensor]) -> None:
        """Set output weight vectors (f-neutral when the slots coincide and the sum is kept)."""

        def change(key: Tensor) -> None:
            for slot, w in values.items():
                key[self.net.output_index(self.layer, slot)] = w

        self.edit(change)

    def vector(self, slot: int) -> Tensor:
        return self.keys[-1][self.net.neuron_slice(self.layer, slot)].clone()

    def output(self, slot: int) -> Tensor:
        return self.keys[-1][self.net.output_index(self.layer, slot)]


def _next_move(pos: list[int], target: list[int]) -> int:
    """The slot whose neuron moves into the blank next (pos != target)."""
    want = target[pos.index(_BLANK)]
    if want != _BLANK:
        return pos.index(want)
    return next(i for i in range(len(pos)) if pos[i] != target[i])


def permutation_path_keys(
    net: MLP,
    theta: Tensor,
    layer: int,
    pair: tuple[int, int],
    perm: Permutation,
    rtol: float = COINCIDE_RTOL,
) -> Tensor:
    """The corners (S + 1, P) of :func:`equal_loss_permutation_path`; see there."""
    check_net_theta(net, theta)
    net.check_hidden_layer(layer)
    if not isinstance(pair, Sequence) or len(pair) != 2:
        raise ValueError(f"pair must be two neuron indices (l, m); got {pair!r}")
    l, m = pair
    _check_coinciding_pair(net, theta, layer, l, m, rtol)
    perm = check_permutation(perm, net.widths[layer])
    inv = invert(perm)
    # slot i must end holding old neuron perm[i]; the merged pair is "l", the blank ends at inv[m]
    target = list(perm)
    target[inv[l]], target[inv[m]] = l, _BLANK
    pos = list(range(net.widths[layer]))
    pos[m] = _BLANK
    keys = _Keys(net, theta, layer)
    zero = torch.zeros_like(keys.output(m))
    keys.set_outputs({l: keys.output(l) + keys.output(m), m: zero})  # merge onto l
    while pos != target:
        b, a = pos.index(_BLANK), _next_move(pos, target)
        keys.set_vector(b, keys.vector(a))  # the blank travels to vartheta_a
        keys.set_outputs({b: keys.output(a), a: zero})  # hand all of w_a over
        pos[a], pos[b] = _BLANK, pos[a]
    keys.set_vector(inv[m], theta[net.neuron_slice(layer, m)])
    keys.set_outputs(
        {inv[l]: theta[net.output_index(layer, l)], inv[m]: theta[net.output_index(layer, m)]}
    )
    return torch.stack(keys.keys)


def equal_loss_permutation_path(
    net: MLP,
    theta: Tensor,
    layer: int,
    pair: tuple[int, int],
    perm: Permutation,
    points_per_segment: int = POINTS_PER_SEGMENT,
    rtol: float = COINCIDE_RTOL,
) -> Tensor:
    """(N, P): a piecewise-linear path of constant f from ``theta`` to ``permute(theta, perm)``
    (Prop. 1 (iii), with docs/theory.md section 2's construction).

    ``theta`` must have vartheta_l = vartheta_m for ``pair = (l, m)`` (to ``rtol``), as at a
    permutation point (Def. 4) or at t = 1/4 of the permutation path; w_l and w_m are free.
    ``perm`` is any permutation of the layer (new neuron i is old neuron perm[i]). Segments:

    1. merge: all output weight of the pair moves onto l, w_l + w_m -> l, 0 -> m. Neuron m is now
       *blank*: with w_m = 0 its parameter vector does not enter f.
    2. while some neuron is not at its target slot, with the blank at slot b: take the neuron
       a that belongs at b (or, if the blank is already where it should end, any misplaced
       neuron a); (i) the blank's parameter vector moves linearly to vartheta_a (f constant:
       zero output weight), (ii) all of w_a moves linearly from a to b (f constant: the two
       coincide and the sum is kept). Neuron a now sits at b and the blank at a. This sorts
       the layer like a puzzle with one free space (each cycle of length L takes L + 1 moves,
       L - 1 for the cycle through the blank).
    3. split: the merged pair sits at inv[l] and the blank at inv[m] (inv = invert(perm)); the
       blank's parameter vector moves to vartheta_m, then the output weights move linearly to
       w_l at inv[l] and w_m at inv[m].

    The end point equals ``permute(net, theta, layer, perm)`` bit for bit; the pair sits at
    (inv[l], inv[m]) and again coincides. Every point computes the same f in exact
    arithmetic; in floating point, to rounding (w_a + w_b is formed, and the merge assumes
    vartheta_l = vartheta_m to ``rtol``). Segments of length zero are dropped; each other one
    contributes ``points_per_segment`` points, ends shared.
    """
    _check_count(points_per_segment, "points_per_segment")
    keys = permutation_path_keys(net, theta, layer, pair, perm, rtol)
    return _polyline(list(keys), points_per_segment)
