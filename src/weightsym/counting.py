"""Counting K-th order permutation points (Prop. 3, Lemma 3 of the paper).

A K-th order permutation point in a hidden layer of width ``n`` (Def. 6) comes from a smaller
network with ``m = n - K`` neurons in that layer: neuron ``j`` of the smaller network gets
``c_j >= 1`` copies, ``sum_j c_j = n``. With the layer's permutations (Def. 3) applied, such a
point is fixed by the tuple ``(a_1, ..., a_n)`` saying which of the ``m`` distinct parameter
vectors of the smaller network neuron ``i`` carries; the tuple uses every one of them, so the
distinct points are the surjections ``{1..n} -> {1..m}`` (relabelling the smaller network's own
neurons gives the same set). A composition ``(c_1, ..., c_m)`` gives ``n! / prod_j c_j!``
distinct tuples (copies of one neuron are identical, so permuting them gives the same point), so

    T(K, n) = #points / n! = sum over (c_1..c_m), c_j >= 1, sum c_j = n, of 1 / prod_j c_j!
            = m! S(n, m) / n!                       (S: Stirling numbers of the second kind)
            = [x^K] ((e^x - 1) / x)^(n - K),

the ratio of the number of K-th order permutation points of the layer to the number ``n!`` of
global minima that the layer's permutations make (Prop. 3). The last line holds because
``(e^x - 1)^m = sum over compositions of x^(sum c) / prod c!``; it is what :func:`ratio` computes,
exactly and in ``O(K^2)`` rational operations, independent of ``n``.

All results are exact (:class:`fractions.Fraction` or ``int``). The formulas are derived in
docs/theory.md section 3 and checked against the brute force :func:`enumerate_points`.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable, Sequence
from fractions import Fraction

__all__ = [
    "MAX_ENUMERATE_N",
    "closed_form",
    "enumerate_points",
    "enumerate_ratio",
    "lower_bound",
    "ratio",
    "subspaces",
    "table",
]

MAX_ENUMERATE_N = 9
"""Largest layer width :func:`enumerate_points` accepts (it visits n! tuples per composition)."""


# --------------------------------------------------------------------------- validation


MAX_ORDER = 200
"""The largest order K computed exactly: the exact rational arithmetic of :func:`ratio` costs
about K^3 digit operations (K = 200 takes a few seconds; K = 400 half a minute)."""
MAX_TABLE_ROWS = 10_000
"""The most (K, n) rows :func:`table` computes in one call."""


def _check_order(K: object) -> int:
    K = _check_int(K, "K", 1)
    if K > MAX_ORDER:
        raise ValueError(
            f"K must be <= {MAX_ORDER} (the exact count's cost grows like K^3); got {K}"
        )
    return K


def _check_int(value: object, name: str, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer ``>= minimum``, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def _check_order_width(K: object, n: object) -> tuple[int, int]:
    """Validate the order ``1 <= K <= MAX_ORDER`` and the layer width ``n >= K + 1``."""
    K = _check_order(K)
    n = _check_int(n, "n", 1)
    if n < K + 1:
        raise ValueError(
            f"n must be >= K + 1 = {K + 1} (the smaller network needs n - K >= 1 neurons), "
            f"got n={n}"
        )
    return K, n


# --------------------------------------------------------------------------- Prop. 3


def ratio(K: int, n: int) -> Fraction:
    """T(K, n): K-th order permutation points of a width-n layer per global minimum (Prop. 3).

    ``T(K, n) = (n-K)! S(n, n-K) / n! = sum over (c_1..c_{n-K}), c_j >= 1, sum c_j = n, of
    1 / prod c_j!`` (see the module docstring). Computed as the coefficient of ``x^K`` in
    ``g(x)^(n-K)`` with ``g(x) = (e^x - 1) / x = sum_j x^j / (j+1)!``, by J. C. P. Miller's
    recurrence for powers of a series with ``g_0 = 1``:
    ``f_0 = 1``, ``k f_k = sum_{j=1}^{k} ((n-K+1) j - k) g_j f_{k-j}``.
    That is ``O(K^2)`` exact operations and does not grow with ``n``
    (``n = 1000, K = 10`` takes well under a millisecond).

    Args:
        K: the order, ``K >= 1`` (``K = 1``: first-order permutation points, Def. 4).
        n: the layer width, ``n >= K + 1``.

    Returns:
        T(K, n) as an exact :class:`~fractions.Fraction`.

    Example:
        >>> ratio(1, 8), ratio(2, 10)  # T(1, n) = (n - 1) / 2
        (Fraction(7, 2), Fraction(25, 3))
    """
    K, n = _check_order_width(K, n)
    power = n - K  # m, the width of the smaller network
    g = [Fraction(1, math.factorial(j + 1)) for j in range(K + 1)]
    f = [Fraction(1)]
    for k in range(1, K + 1):
        acc = sum(((power + 1) * j - k) * g[j] * f[k - j] for j in range(1, k + 1))
        f.append(acc / k)
    return f[K]


_CLOSED_FORMS = {
    1: lambda n: Fraction(n - 1, 2),
    2: lambda n: Fraction((n - 2) * (3 * n - 5), 24),
    3: lambda n: (
        Fraction(n - 3, 24)
        + Fraction((n - 3) * (n - 4), 12)
        + Fraction((n - 3) * (n - 4) * (n - 5), 48)
    ),
}


def closed_form(K: int, n: int) -> Fraction:
    """Prop. 3 (i): T(K, n) in closed form for K = 1, 2, 3.

    * ``T(1, n) = (n-1) / 2``  (one neuron doubled: C(n-1, 1) / 2!);
    * ``T(2, n) = (n-2)(3n-5) / 24``  (one tripled, or two doubled);
    * ``T(3, n) = (n-3)/24 + (n-3)(n-4)/12 + (n-3)(n-4)(n-5)/48``
      (one x4; one x3 and one x2; three x2).

    The paper states them for ``n >= 2K``; as polynomials they hold for every ``n >= K + 1``
    (the terms needing more distinct neurons than exist vanish), which is what we accept.

    Raises:
        ValueError: for ``K`` not in {1, 2, 3}, or ``n < K + 1``.
    """
    K, n = _check_order_width(K, n)
    if K not in _CLOSED_FORMS:
        raise ValueError(f"K must be 1, 2 or 3 for the closed form of Prop. 3 (i), got K={K}")
    return _CLOSED_FORMS[K](n)


def lower_bound(K: int, n: int) -> Fraction:
    """Prop. 3 (ii): the bound ``T(K, n) >= C(n-K, K) / 2^K``.

    It is the single term of the sum in :func:`ratio` in which K distinct neurons of the smaller
    network are doubled (``C(n-K, K)`` choices, each weighing ``1 / 2!^K``); all other terms are
    positive, so the bound holds for every ``n >= K + 1``. The paper states it for
    ``K <= n / 2``; below that ``C(n-K, K) = 0`` and the bound is trivially 0.
    For ``n -> oo`` both grow as ``n^K / (2^K K!)``: the doubled-neurons term dominates.
    """
    K, n = _check_order_width(K, n)
    return Fraction(math.comb(n - K, K), 2**K)


# --------------------------------------------------------------------------- Lemma 3


def subspaces(K: int, widths: Sequence[int]) -> int:
    """Lemma 3: ``prod_k T(K, n_k) * prod_k n_k!`` equal-loss subspaces of dimension ``K n_{k+1}``.

    Args:
        K: the order, ``K >= 1``; the count is for points that are K-th order permutation points
            in every hidden layer at once.
        widths: the **hidden-layer** widths ``n_1, ..., n_{d-1}`` only (not the input width
            ``n_0`` nor the output width ``n_d``); each must be ``>= K + 1``. The paper states the
            lemma for ``2K <= min_k n_k``, where Prop. 3 (ii) makes it larger than the number of
            global minima; the count itself holds whenever every ``n_k >= K + 1``.

    Returns:
        The count as an ``int``. It is an integer because each factor
        ``T(K, n_k) n_k! = (n_k - K)! S(n_k, n_k - K)`` is the number of surjections
        ``{1..n_k} -> {1..n_k - K}``, i.e. the number of K-th order permutation points of layer k;
        the product over layers counts the combinations. (Each subspace contains a K-dimensional
        family of critical points, docs/theory.md section 2.)
    """
    K = _check_int(K, "K", 1)
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Iterable):
        raise TypeError(f"widths must be a sequence of hidden-layer widths (ints), got {widths!r}")
    widths = list(widths)
    if not widths:
        raise ValueError("widths must name at least one hidden layer, got an empty sequence")
    total = 1
    for k, width in enumerate(widths, start=1):
        width = _check_int(width, f"widths[{k - 1}] (n_{k})", 1)
        if width < K + 1:
            raise ValueError(f"widths[{k - 1}] (n_{k}) must be >= K + 1 = {K + 1}, got {width}")
        per_layer = ratio(K, width) * math.factorial(width)
        assert per_layer.denominator == 1, "T(K, n) n! is a count of surjections, an integer"
        total *= per_layer.numerator
    return total


# --------------------------------------------------------------------------- brute force


def _check_enumerable(K: object, n: object) -> tuple[int, int]:
    K, n = _check_order_width(K, n)
    if n > MAX_ENUMERATE_N:
        raise ValueError(
            f"n must be <= {MAX_ENUMERATE_N} for brute-force enumeration "
            f"(it visits n! arrangements per composition), got n={n}"
        )
    return K, n


def enumerate_points(K: int, n: int) -> int:
    """Count the distinct K-th order permutation points of a width-n layer by brute force.

    Independent of the formulas: it builds the points of Def. 6 and their permutation sets
    (Def. 3) as concrete tuples and counts the distinct ones. The smaller network's layer has
    ``m = n - K`` neurons with distinct parameter vectors, labelled ``0..m-1``. For every copy
    count ``(c_0, ..., c_{m-1})`` in ``{1..K+1}^m`` with sum ``n`` (each neuron used at least once),
    the Def. 6 layer is the tuple ``(0,)*c_0 + (1,)*c_1 + ...``, whose entry ``i`` names the
    parameter vector of neuron ``i``; all ``n!`` permutations of it are collected in a set, so
    arrangements that differ only by permuting identical copies count once. Points built from
    different copy counts differ in how often some label occurs, so they are distinct and the
    per-composition counts add up (this keeps memory at one composition's set, about 30 MB for
    n = 9). The result equals the number of surjections ``{1..n} -> {1..m}``,
    ``(n-K)! S(n, n-K)``.

    Only for small layers: ``n <= MAX_ENUMERATE_N`` (9; n = 9 takes a few seconds, n = 8 about
    0.1 s).
    """
    K, n = _check_enumerable(K, n)
    m = n - K
    count = 0
    for copies in itertools.product(range(1, K + 2), repeat=m):
        if sum(copies) != n:
            continue
        layer = tuple(j for j, c in enumerate(copies) for _ in range(c))
        count += len(set(itertools.permutations(layer)))
    return count


def enumerate_ratio(K: int, n: int) -> Fraction:
    """T(K, n) by brute force: :func:`enumerate_points` ``/ n!`` (small ``n`` only)."""
    K, n = _check_enumerable(K, n)
    return Fraction(enumerate_points(K, n), math.factorial(n))


# --------------------------------------------------------------------------- table


def table(Ks: Iterable[int], ns: Iterable[int]) -> list[dict[str, object]]:
    """Rows of T(K, n) for every ``K`` in ``Ks`` and ``n`` in ``ns`` with ``n >= K + 1``.

    Pairs with ``n <= K`` (no K-th order point exists) are skipped. Each row is a dict with
    ``K``, ``n``, ``T`` (exact Fraction), ``T_float`` (float; ``inf`` if it overflows),
    ``bound`` (Prop. 3 (ii), Fraction) and ``ratio`` (``T / bound`` as a Fraction, ``None``
    where the bound is 0, i.e. ``n < 2K``).
    """
    Ks = [_check_order(K) for K in Ks]
    ns = [_check_int(n, "n", 1) for n in ns]
    if len(Ks) * len(ns) > MAX_TABLE_ROWS:
        raise ValueError(
            f"at most {MAX_TABLE_ROWS} (K, n) pairs per table; got {len(Ks)} K x {len(ns)} n"
        )
    rows: list[dict[str, object]] = []
    for K in Ks:
        for n in ns:
            if n < K + 1:
                continue
            value = ratio(K, n)
            bound = lower_bound(K, n)
            rows.append(
                {
                    "K": K,
                    "n": n,
                    "T": value,
                    "T_float": _to_float(value),
                    "bound": bound,
                    "ratio": value / bound if bound else None,
                }
            )
    return rows


def _to_float(value: Fraction) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf
