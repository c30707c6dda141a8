"""Permutation points and the equal-loss sets around them: Defs. 4 and 6, Props. 1 and 2.

* Def. 4 (:func:`permutation_point`) and Def. 6 (:func:`higher_order_point`): a network with
  K neurons fewer in hidden layer k is embedded in the bigger one by giving neuron j c_j >= 1
  copies, each with the parameter vector vartheta_j and the output weight vector w_j / c_j
  (K = sum_j (c_j - 1)). f is unchanged, so Props. 1 (i) and 2 (i) follow: a critical point of
  the smaller network maps to a critical point.
* Props. 1 (ii) and 2 (ii), **as docs/theory.md section 2 corrects them**: the point lies in an
  affine subspace of dimension K * n_{k+1} of constant f (the output weights of the copies of
  neuron j may be any vectors that sum to w_j; :func:`equal_loss_directions`), but only the
  K-dimensional family of split ratios (copy i gets gamma_{j,i} w_j, sum_i gamma_{j,i} = 1;
  :func:`critical_directions`) is made of critical points; along the rest
  (:func:`noncritical_directions`) the gradient grows. The paper's statement, a
  n_{k+1}-dimensional (K n_{k+1}-dimensional) subspace *of critical points*, holds as printed
  only when n_{k+1} = 1, where the two sets are the same.
* The constant-loss moves from a permutation point (the output-weight shift of Sec. 4.1 and
  Prop. 1 (iii)) are in :mod:`weightsym.equal_loss_path`.

A group of copies is a tuple of neuron indices of layer k whose parameter vectors coincide
(:func:`weightsym.symmetry.coincide`, relative tolerance ``rtol``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from weightsym.model import MLP
from weightsym.symmetry import (
    COINCIDE_RTOL,
    check_net_theta,
    coincide,
    reindex_layer,
)

Groups = list[tuple[int, ...]]
POINTS_PER_SEGMENT = 5
"""Default points per linear segment of :func:`equal_loss_permutation_path`, ends included."""
SHIFT_POINTS = 21
"""Default number of points of :func:`output_shift`, ends included."""


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

    Example:
        >>> from weightsym.model import MLP
        >>> small = MLP([2, 4, 1], "tanh")
        >>> net, theta, pair = permutation_point(small, small.init(seed=1), layer=1, neuron=0)
        >>> net.widths, pair
        ([2, 5, 1], (0, 4))
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
    critical when n_{k+1} >= 2 (docs/theory.md section 2).
    """
    return _directions(net, theta, layer, groups, rtol, "equal")


def critical_directions(
    net: MLP,
    theta: Tensor,
    layer: int,
    groups: Sequence[Sequence[int]],
    rtol: float = COINCIDE_RTOL,
) -> Tensor:
    """Orthonormal basis (P, K) of the split-ratio family (Prop. 1 (ii) as corrected in
    docs/theory.md section 2).

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
    in general (docs/theory.md section 2): this is why the point is a strict saddle when
    n_{k+1} >= 2.
    Empty (P, 0) when n_{k+1} = 1, where Props. 1 (ii), 2 (ii) hold as printed.
    """
    return _directions(net, theta, layer, groups, rtol, "other")
