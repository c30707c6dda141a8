"""Permutation points and the equal-loss sets around them: Defs. 4 and 6, Props. 1 and 2.

* Def. 4 (:func:`permutation_point`) and Def. 6 (:func:`higher_order_point`): a network with
  K neurons fewer in hidden layer k is embedded in the bigger one by giving neuron j c_j >= 1
  copies, each with the parameter vector vartheta_j and the output weight vector w_j / c_j
  (K = sum_j (c_j - 1)). f is unchanged, so Props. 1 (i) and 2 (i) follow: a critical point of
  the smaller network maps to a critical point.
* Props. 1 (ii) and 2 (ii), **as SPEC section 2 corrects them**: the point lies in an affine
  subspace of dimension K * n_{k+1} of constant f (the output weights of the copies of neuron j
  may be any vectors that sum to w_j; :func:`equal_loss_directions`), but only the
  K-dimensional family of split ratios (copy i gets gamma_{j,i} w_j, sum_i gamma_{j,i} = 1;
  :func:`critical_directions`) is made of critical points; along the rest
  (:func:`noncritical_directions`) the gradient grows. The paper's statement, a
  n_{k+1}-dimensional (K n_{k+1}-dimensional) subspace *of critical points*, holds as printed
  only when n_{k+1} = 1, where the two sets are the same.
* Sec. 4.1 / appendix Fig. 4 (:func:`output_shift`): with vartheta_l = vartheta_m, moving w_l and
  w_m linearly to their mean keeps f constant (t = 1/4 to 1/2 of the permutation path).
* Prop. 1 (iii) (:func:`equal_loss_permutation_path`): from a permutation point, every ordering
  of layer k is reached along an explicit piecewise-linear path of constant f.

A group of copies is a tuple of neuron indices of layer k whose parameter vectors coincide
(:func:`weightsym.symmetry.coincide`, relative tolerance ``rtol``).
"""

from __future__ import annotations

import math
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
    reindex_layer,
)

Groups = list[tuple[int, ...]]
POINTS_PER_SEGMENT = 5
"""Default points per linear segment of :func:`equal_loss_permutation_path`, ends included."""
SHIFT_POINTS = 21
"""Default number of points of :func:`output_shift`, ends included."""
_BLANK = -1  # slot marker in the path construction: a neuron with zero output weight


# -- Defs. 4 and 6 ------------------------------------------------------------------------------


def _check_copies(net: MLP, layer: int, copies: Mapping[int, int]) -> dict[int, int]:
    if not isinstance(copies, Mapping):
        raise TypeError(f"copies must be a dict {{neuron: number of copies}}; got {copies!r}")
    out = {}
    for j, c in copies.items():
        net.check_neuron(layer, j, "copies key (a neuron)")
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise ValueError(f"copies[{j}] must be an int >= 1 (number of copies); got {c!r}")
        out[j] = c
    if all(c == 1 for c in out.values()):
        raise ValueError(
            f"copies must give some neuron 2 or more copies (order K >= 1); got {copies!r}"
        )
    return out


def higher_order_point(
    net_small: MLP, theta_small: Tensor, layer: int, copies: Mapping[int, int]
) -> tuple[MLP, Tensor, Groups]:
    """A K-th order permutation point (Def. 6) of ``net_small`` in hidden layer ``layer``.

    Neuron j of the small network gets ``copies[j]`` = c_j >= 1 copies (neurons not named keep
    one); every copy has vartheta_j and output weight w_j / c_j, so f is unchanged. The original
    neuron keeps its index; the extra copies are appended at the end of the layer, in the order
    of increasing j. Returns the bigger network (width n + K, K = sum_j (c_j - 1)), its theta
    and ``groups``: for each j with c_j >= 2, in increasing j, the tuple (j, new indices...) of
    its copies.
    """
    check_net_theta(net_small, theta_small, "theta_small")
    net_small.check_hidden_layer(layer)
    copies = _check_copies(net_small, layer, copies)
    n = net_small.widths[layer]
    source, groups = list(range(n)), []
    for j in sorted(copies):
        extra = copies[j] - 1
        if extra:
            groups.append((j, *range(len(source), len(source) + extra)))
            source.extend([j] * extra)
    divisor = torch.tensor([copies.get(j, 1) for j in source], dtype=theta_small.dtype)
    theta = reindex_layer(net_small, theta_small, layer, source, divisor)
    return net_small.with_width(layer, len(source)), theta, groups


def permutation_point(
    net_small: MLP, theta_small: Tensor, layer: int, neuron: int
) -> tuple[MLP, Tensor, tuple[int, int]]:
    """The (first-order) permutation point of Def. 4: duplicate ``neuron`` of hidden ``layer``.

    The copy is appended as the last neuron of the layer (index n, for a small layer of width
    n); both copies get vartheta_neuron and w_neuron / 2. Returns (net, theta, (neuron, n)).
    """
    check_net_theta(net_small, theta_small, "theta_small")
    net_small.check_hidden_layer(layer)
    net_small.check_neuron(layer, neuron)
    net, theta, groups = higher_order_point(net_small, theta_small, layer, {neuron: 2})
    l, m = groups[0]
    return net, theta, (l, m)


def check_groups(
    net: MLP, theta: Tensor, layer: int, groups: Sequence[Sequence[int]], rtol: float
) -> Groups:
    """``groups`` as a list of tuples, after checking that each holds >= 2 distinct neurons of
    ``layer``, that no neuron is in two groups, and that the copies of each group coincide."""
    check_net_theta(net, theta)
    net.check_hidden_layer(layer)
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence) or not groups:
        raise ValueError(f"groups must be a non-empty list of tuples of neurons; got {groups!r}")
    out, seen = [], set()
    for group in groups:
        if isinstance(group, (str, bytes)) or not isinstance(group, Sequence) or len(group) < 2:
            raise ValueError(f"each group must list >= 2 copies of a neuron; got {group!r}")
        for i in group:
            net.check_neuron(layer, i, "group member")
            if i in seen:
                raise ValueError(f"neuron {i} appears twice in groups {groups!r}")
            seen.add(i)
        for i in group[1:]:
            if not coincide(net, theta, layer, group[0], i, rtol):
                raise ValueError(
                    f"groups inconsistent with theta: neurons {group[0]} and {i} of layer "
                    f"{layer} are not copies (their parameter vectors differ beyond rtol={rtol})"
                )
        out.append(tuple(group))
    return out


# -- Props. 1 (ii), 2 (ii): equal-loss and critical directions ---------------------------------


def _sum_zero_basis(c: int, dtype: torch.dtype) -> Tensor:
    """(c, c-1) orthonormal basis of {x in R^c : sum x = 0} (Helmert contrasts)."""
    H = torch.zeros(c, c - 1, dtype=dtype)
    for a in range(1, c):
        H[:a, a - 1] = 1.0
        H[a, a - 1] = -float(a)
        H[:, a - 1] /= math.sqrt(a * (a + 1))
    return H


def _output_basis(theta: Tensor, cols: Tensor, kind: str, group: tuple[int, ...]) -> Tensor:
    """Orthonormal columns U (n_{k+1}, r) of output space along which weight moves between the
    copies: every unit ("equal"), along w_j ("split") or perpendicular to it ("other")."""
    if kind == "equal":
        return torch.eye(cols.shape[0], dtype=theta.dtype)
    w_sum = theta[cols].sum(dim=1)  # w_j, the sum of the copies' output weights
    if not bool(w_sum.any()):
        raise ValueError(
            f"copies {group} have total output weight zero: the split-ratio family is one point"
        )
    Q = torch.linalg.svd(w_sum[:, None], full_matrices=True)[0]  # Q[:, 0] is +-w_j / |w_j|
    return Q[:, :1] if kind == "split" else Q[:, 1:]


def _directions(
    net: MLP, theta: Tensor, layer: int, groups: Sequence[Sequence[int]], rtol: float, kind: str
) -> Tensor:
    """Columns u_o h_b on the output weights w_{i_b} of each group (i_0..i_{c-1}), for u in
    :func:`_output_basis` and h in the Helmert basis of {sum_b h_b = 0}: f does not change."""
    parts = []
    for group in check_groups(net, theta, layer, groups, rtol):
        cols = torch.stack([net.output_index(layer, i) for i in group], dim=1)  # (n_{k+1}, c)
        U = _output_basis(theta, cols, kind, group)
        helmert = _sum_zero_basis(len(group), theta.dtype)  # (c, c-1)
        block = torch.einsum("ou,ba->obua", U, helmert).reshape(cols.numel(), -1)
        D = torch.zeros(net.num_params, block.shape[1], dtype=theta.dtype)
        D[cols.reshape(-1)] = block
        parts.append(D)
    return torch.cat(parts, dim=1)


def equal_loss_directions(
    net: MLP,
    theta: Tensor,
    layer: int,
    groups: Sequence[Sequence[int]],
    rtol: float = COINCIDE_RTOL,
) -> Tensor:
    """Orthonormal basis (P, K n_{k+1}) of the equal-loss subspace of Props. 1 (ii), 2 (ii).

    Its directions move output weight between the copies of one neuron, one output unit at a
    time, keeping the copies' sum: for a group of c copies and each of the n_{k+1} output
    units, c - 1 orthonormal (Helmert) combinations. f is constant on theta + span, so the loss
    is too; only the split-ratio directions (:func:`critical_directions`) keep the point
    critical when n_{k+1} >= 2 (SPEC section 2).
    """
    return _directions(net, theta, layer, groups, rtol, "equal")


def critical_directions(
    net: MLP,
    theta: Tensor,
    layer: int,
    groups: Sequence[Sequence[int]],
    rtol: float = COINCIDE_RTOL,
) -> Tensor:
    """Orthonormal basis (P, K) of the split-ratio family (SPEC's correction of Prop. 1 (ii)).

    Copy i of neuron j gets gamma_{j,i} w_j with sum_i gamma_{j,i} = 1, w_j being the sum of the
    copies' output weights (Fukumizu and Amari's line when K = 1): each direction moves the
    whole vector w_j, proportionally, between the copies of one group (c - 1 orthonormal
    combinations per group). Each is a null vector of the Hessian at a critical permutation
    point, and the gradient stays zero along it. A subspace of :func:`equal_loss_directions`.
    """
    return _directions(net, theta, layer, groups, rtol, "split")


def noncritical_directions(
    net: MLP,
    theta: Tensor,
    layer: int,
    groups: Sequence[Sequence[int]],
    rtol: float = COINCIDE_RTOL,
) -> Tensor:
    """Orthonormal basis (P, K (n_{k+1} - 1)) of the rest of the equal-loss subspace.

    The directions move output weight *perpendicular to* w_j between the copies of neuron j;
    with :func:`critical_directions` they span :func:`equal_loss_directions`. f is constant
    along them, but at a critical permutation point the gradient grows along them and H v != 0
    in general (SPEC section 2): this is why the point is a strict saddle when n_{k+1} >= 2.
    Empty (P, 0) when n_{k+1} = 1, where Props. 1 (ii), 2 (ii) hold as printed.
    """
    return _directions(net, theta, layer, groups, rtol, "other")


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
    permutation point (Lemma 1). All other parameters are unchanged.
    """
    _check_coinciding_pair(net, theta, layer, l, m, rtol)
    _check_count(num, "num")
    il, im = net.output_index(layer, l), net.output_index(layer, m)
    end = theta.clone()
    end[il] = end[im] = (theta[il] + theta[im]) / 2
    return _polyline([theta, end], num)


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
    (Prop. 1 (iii), with SPEC section 2's construction).

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
