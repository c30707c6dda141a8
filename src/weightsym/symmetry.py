"""Weight-space symmetry of one network: Defs. 1-3 and 5 of the paper (docs/theory.md section 1).

* Def. 1: the parameter vector of neuron m in hidden layer k, vartheta_m = [W^(k)_{m,:}, b^(k)_m]
  (:func:`neuron_vector`); Def. 2: its output weight vector w_m = W^(k+1)_{:,m}
  (:func:`output_vector`).
* Def. 3: permuting the neurons of a hidden layer leaves f unchanged (:func:`permute`,
  :func:`swap`, :func:`same_function`); the permutation set of theta has
  prod_k n_k! / prod_groups c! points (:func:`permutation_set_size`).
* Def. 5: distances between two neurons of a layer (:func:`distance`), as docs/theory.md
  section 1 fixes it (the Euclidean norm, not its square).

**Permutation convention.** A permutation of layer k is a sequence ``perm`` of 0..n_k-1 read as
"new neuron i is old neuron perm[i]": row i of W^(k) and entry i of b^(k) become the old row and
entry perm[i], and column i of W^(k+1) becomes the old column perm[i]. Permutations compose like
functions: ``permute(permute(theta, p), q) == permute(theta, compose(p, q))`` with
``compose(p, q)[i] == p[q[i]]``, and ``invert(p)`` undoes ``p``.

Layers are numbered as in the paper (1 = first hidden layer, d = output layer, which cannot be
permuted); neurons are 0-based.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from weightsym.model import MLP

DISTANCE_KINDS = ("incoming", "joint", "angle")
COINCIDE_RTOL = 1e-12
"""Default tolerance of :func:`coincide`, relative to max(1, max |vartheta_l|)."""

Permutation = Sequence[int] | Tensor


# -- validation ---------------------------------------------------------------------------------


def check_net_theta(net: MLP, theta: Tensor, name: str = "theta") -> Tensor:
    """``net`` must be an :class:`~weightsym.MLP` and ``theta`` a finite vector of its length."""
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a weightsym.MLP; got {type(net).__name__}")
    return net.check_theta(theta, name)


def check_pair(
    net: MLP, layer: int, l: int, m: int, names: tuple[str, str] = ("l", "m")
) -> tuple[int, int]:
    """Two distinct neurons ``l`` and ``m`` of hidden layer ``layer`` (``names``: how the
    caller's arguments are called in the error messages)."""
    net.check_hidden_layer(layer)
    net.check_neuron(layer, l, names[0])
    net.check_neuron(layer, m, names[1])
    if l == m:
        raise ValueError(
            f"{names[0]} and {names[1]} must be two different neurons (l == m); got {l}"
        )
    return l, m


def check_permutation(
    perm: Permutation, n: int | None = None, name: str = "perm"
) -> tuple[int, ...]:
    """``perm`` as a tuple of ints, after checking that it is a permutation of 0..n-1
    (``n = None``: of 0..len(perm)-1)."""
    if isinstance(perm, Tensor):
        if perm.dim() != 1 or perm.is_floating_point() or perm.dtype == torch.bool:
            raise TypeError(f"{name} must be a 1-D integer tensor or a sequence of ints")
        perm = perm.tolist()
    elif not isinstance(perm, Sequence) and hasattr(perm, "tolist"):  # a NumPy array
        perm = perm.tolist()
    if isinstance(perm, (str, bytes)) or not isinstance(perm, Sequence):
        raise TypeError(f"{name} must be a sequence of ints; got {type(perm).__name__}")
    for p in perm:
        if isinstance(p, bool) or not isinstance(p, int):
            raise TypeError(f"{name} must hold ints; got {p!r} of type {type(p).__name__}")
    if n is None:
        n = len(perm)
    if len(perm) != n:
        raise ValueError(f"{name} must have length {n} (the layer width); got {len(perm)}")
    if sorted(perm) != list(range(n)):
        raise ValueError(f"{name} must be a permutation of 0..{n - 1}; got {list(perm)}")
    return tuple(perm)


# -- Defs. 1 and 2 ------------------------------------------------------------------------------


def neuron_vector(net: MLP, theta: Tensor, layer: int, m: int) -> Tensor:
    """vartheta_m (Def. 1): incoming weights, then bias, of neuron ``m`` of ``layer``; a copy."""
    check_net_theta(net, theta)
    net.check_hidden_layer(layer)
    net.check_neuron(layer, m, "m")
    return theta[net.neuron_slice(layer, m)].clone()


def output_vector(net: MLP, theta: Tensor, layer: int, m: int) -> Tensor:
    """w_m (Def. 2): the column m of W^(layer+1), length n_{layer+1}; a copy."""
    check_net_theta(net, theta)
    net.check_hidden_layer(layer)
    net.check_neuron(layer, m, "m")
    return theta[net.output_index(layer, m)]


def coincide(
    net: MLP, theta: Tensor, layer: int, l: int, m: int, rtol: float = COINCIDE_RTOL
) -> bool:
    """Whether vartheta_l = vartheta_m: max |difference| <= rtol * max(1, max |vartheta_l|)."""
    a = neuron_vector(net, theta, layer, l)
    b = neuron_vector(net, theta, layer, m)
    return float((a - b).abs().max()) <= rtol * max(1.0, float(a.abs().max()))


# -- Def. 3: permutations -----------------------------------------------------------------------


def reindex_layer(
    net_from: MLP,
    theta: Tensor,
    layer: int,
    source: Sequence[int],
    divisor: Tensor | None = None,
) -> Tensor:
    """The theta of ``net_from.with_width(layer, len(source))`` whose neuron i of ``layer`` is
    a copy of old neuron ``source[i]``: row source[i] of [W^(k) | b^(k)] becomes row i, and
    column source[i] of W^(k+1), divided by ``divisor[i]`` when given, becomes column i.

    All other parameters are copied unchanged. :func:`permute` (a bijective ``source``) and the
    permutation points of Defs. 4 and 6 (repeated entries, ``divisor = c``) are this map.
    Inputs are assumed valid: the public callers check them.
    """
    net_to = net_from.with_width(layer, len(source))
    idx = torch.as_tensor(list(source), dtype=torch.long)
    out = torch.empty(net_to.num_params, dtype=theta.dtype)
    for k in range(1, net_from.depth + 1):
        blk = net_from.block(theta, k)
        if k == layer:
            blk = blk[idx]
        elif k == layer + 1:
            cols = blk[:, idx] if divisor is None else blk[:, idx] / divisor
            blk = torch.cat([cols, blk[:, -1:]], dim=1)
        net_to.block(out, k).copy_(blk)
    return out


def permute(net: MLP, theta: Tensor, layer: int, perm: Permutation) -> Tensor:
    """sigma^(k)(theta) (Def. 3): new neuron i of layer ``layer`` is old neuron ``perm[i]``.

    Rows of W^(k), entries of b^(k) and columns of W^(k+1) are reordered; f is unchanged.
    Returns a new tensor.
    """
    check_net_theta(net, theta)
    net.check_hidden_layer(layer)
    perm = check_permutation(perm, net.widths[layer])
    return reindex_layer(net, theta, layer, perm)


def transposition(n: int, l: int, m: int) -> tuple[int, ...]:
    """sigma_{l<->m} as a permutation of 0..n-1 (no checks)."""
    perm = list(range(n))
    perm[l], perm[m] = m, l
    return tuple(perm)


def swap(net: MLP, theta: Tensor, layer: int, l: int, m: int) -> Tensor:
    """sigma^(k)_{l<->m}(theta) (Def. 3): exchange neurons ``l`` and ``m`` of layer ``layer``.

    Rows l and m of [W^(k) | b^(k)] and columns l and m of W^(k+1) trade places; f is unchanged.

    Example:
        >>> import torch
        >>> from weightsym.model import MLP
        >>> net = MLP([2, 3, 1], "tanh"); theta = net.init(seed=0)
        >>> X = torch.randn(5, 2, dtype=torch.float64)
        >>> torch.allclose(net.forward(swap(net, theta, 1, 0, 2), X), net.forward(theta, X))
        True
    """
    check_net_theta(net, theta)
    check_pair(net, layer, l, m)
    return reindex_layer(net, theta, layer, transposition(net.widths[layer], l, m))


def compose(first: Permutation, second: Permutation) -> tuple[int, ...]:
    """The permutation r with ``permute(theta, r) == permute(permute(theta, first), second)``.

    r[i] = first[second[i]] (function composition first o second).
    """
    p = check_permutation(first, None, "first")
    q = check_permutation(second, len(p), "second")
    return tuple(p[i] for i in q)


def invert(perm: Permutation) -> tuple[int, ...]:
    """The inverse permutation: ``compose(perm, invert(perm))`` is the identity."""
    p = check_permutation(perm)
    inv = [0] * len(p)
    for i, j in enumerate(p):
        inv[j] = i
    return tuple(inv)


def same_function(
    net_a: MLP,
    theta_a: Tensor,
    net_b: MLP,
    theta_b: Tensor,
    X: Tensor,
    rtol: float = 1e-12,
) -> bool:
    """Whether two networks compute the same f on the inputs ``X``:
    max |f_a - f_b| <= rtol * max(1, max |f_a|, max |f_b|) (entries over samples and outputs).
    """
    check_net_theta(net_a, theta_a, "theta_a")
    check_net_theta(net_b, theta_b, "theta_b")
    if net_a.widths[0] != net_b.widths[0] or net_a.widths[-1] != net_b.widths[-1]:
        raise ValueError(
            f"net_a {net_a} and net_b {net_b} must have the same input and output sizes"
        )
    if not (isinstance(rtol, (int, float)) and math.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"rtol must be a finite number >= 0; got {rtol!r}")
    fa = net_a.forward(theta_a, X)
    fb = net_b.forward(theta_b, X)
    scale = max(1.0, float(fa.abs().max()), float(fb.abs().max()))
    return float((fa - fb).abs().max()) <= rtol * scale


def _identical_groups(rows: Tensor, atol: float) -> list[int]:
    """Sizes of the groups of rows equal to within ``atol`` (max-abs), closed transitively."""
    n = rows.shape[0]
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    close = torch.cdist(rows, rows, p=math.inf) <= atol  # max-abs distances, (n, n)
    for i, j in torch.nonzero(torch.triu(close, diagonal=1)).tolist():
        parent[root(i)] = root(j)
    roots = [root(i) for i in range(n)]
    return [roots.count(r) for r in set(roots)]


def permutation_set_size(net: MLP, theta: Tensor, atol: float = 0.0) -> int:
    """|P(theta)| (Def. 3): prod_k n_k! / prod_groups c! over the hidden layers.

    A group is a set of c neurons of one layer that are identical: same parameter vector
    vartheta (Def. 1) *and* same output weight vector w (Def. 2), to within ``atol`` (max-abs).
    Only then does exchanging them leave theta unchanged; two neurons with equal vartheta but
    different w give two different points of the set. This is exact when the permutations that
    fix theta are generated by exchanges of identical neurons (the generic case, and the
    permutation points of Defs. 4 and 6); a permutation of two layers at once can fix theta in
    contrived cases, and then the value is an upper bound.
    """
    check_net_theta(net, theta)
    if not (isinstance(atol, (int, float)) and math.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be a finite number >= 0; got {atol!r}")
    size = 1
    for k in net.hidden_layers:
        w = net.block(theta, k + 1)[:, :-1].T  # (n_k, n_{k+1}): row m is w_m
        rows = torch.cat([net.block(theta, k), w], dim=1)
        size *= math.factorial(net.widths[k])
        for c in _identical_groups(rows, float(atol)):
            size //= math.factorial(c)
    return size


# -- Def. 5: distances and similarity -----------------------------------------------------------


def _angle(a: Tensor, b: Tensor) -> float:
    """The angle between two nonzero vectors, in radians, by Kahan's stable formula."""
    na, nb = torch.linalg.vector_norm(a), torch.linalg.vector_norm(b)
    return float(
        2.0
        * torch.atan2(
            torch.linalg.vector_norm(a * nb - b * na), torch.linalg.vector_norm(a * nb + b * na)
        )
    )


def distance_indices(net: MLP, layer: int, neuron: int, kind: str = "incoming") -> Tensor:
    """Indices in theta of the vector a distance is measured on, for one neuron (Def. 5).

    ``"incoming"``: vartheta_m = [W_{m,:}, b_m] (Def. 1); ``"joint"``: [vartheta_m; w_m], the
    incoming vector followed by the output weight vector w_m (Def. 2).
    """
    sl = net.neuron_slice(layer, neuron)
    incoming = torch.arange(sl.start, sl.stop)
    if kind == "incoming":
        return incoming
    if kind != "joint":
        raise ValueError(f"unknown vector kind {kind!r}; expected 'incoming' or 'joint'")
    return torch.cat([incoming, net.output_index(layer, neuron)])


def distance(net: MLP, theta: Tensor, layer: int, l: int, m: int, kind: str = "incoming") -> float:
    """d^(k)_{l,m}(theta) between neurons ``l`` and ``m`` of ``layer`` (Def. 5, as
    docs/theory.md section 1 fixes it).

    * ``"incoming"``: |vartheta_l - vartheta_m|, the Euclidean norm (the paper says "squared"
      but uses d as a length);
    * ``"joint"``: |[vartheta_l; w_l] - [vartheta_m; w_m]|, zero only at a permutation point;
    * ``"angle"``: the angle in radians between vartheta_l and vartheta_m (scale free; both
      must be nonzero).
    """
    check_net_theta(net, theta)
    check_pair(net, layer, l, m)
    if kind not in DISTANCE_KINDS:
        raise ValueError(f"unknown distance kind {kind!r}; expected one of {DISTANCE_KINDS}")
    vector = "joint" if kind == "joint" else "incoming"
    a = theta[distance_indices(net, layer, l, vector)]
    b = theta[distance_indices(net, layer, m, vector)]
    if kind == "angle":
        for name, i, v in (("l", l, a), ("m", m, b)):
            if not bool(v.any()):
                raise ValueError(f"the angle is undefined: vartheta of neuron {name}={i} is zero")
        return _angle(a, b)
    return float(torch.linalg.vector_norm(a - b))


def pairwise_cosine(net: MLP, theta: Tensor, layer: int) -> Tensor:
    """(n_k, n_k) cosine similarities between the parameter vectors vartheta of ``layer``."""
    check_net_theta(net, theta)
    net.check_hidden_layer(layer)
    V = net.block(theta, layer)
    norms = torch.linalg.vector_norm(V, dim=1)
    zero = torch.nonzero(norms == 0).flatten().tolist()
    if zero:
        raise ValueError(f"cosine undefined: neurons {zero} of layer {layer} have vartheta = 0")
    U = V / norms[:, None]
    return (U @ U.T).clamp(-1.0, 1.0)


def most_similar_pair(net: MLP, theta: Tensor, layer: int) -> tuple[int, int]:
    """(l, m), l < m: the two neurons of ``layer`` whose parameter vectors have the highest
    cosine similarity (the pair the paper merges in its MNIST experiment, Sec. 5)."""
    C = pairwise_cosine(net, theta, layer)
    n = C.shape[0]
    if n < 2:
        raise ValueError(f"layer {layer} has one neuron; a pair needs at least two")
    C = C.masked_fill(torch.eye(n, dtype=torch.bool), -math.inf)
    i, j = divmod(int(torch.argmax(C)), n)
    return (min(i, j), max(i, j))
