"""Prop. 3 and Lemma 3: T(K, n), its closed forms, its bound, the brute force, the CLI table."""

from __future__ import annotations

import csv
import itertools
import math
import re
import time
from fractions import Fraction

import pytest
from click.testing import CliRunner

from weightsym import counting
from weightsym.commands.count import cmd


def stirling_band(n_max: int, K_max: int) -> list[list[int]]:
    """``B[n][j] = S(n, n - j)`` for ``n <= n_max``, ``j <= K_max``, by S(n,k) = k S(n-1,k) +
    S(n-1,k-1); written here independently of the library (it uses another formula)."""
    rows = [[1] + [0] * K_max]
    for n in range(1, n_max + 1):
        prev = rows[-1]
        rows.append([(n - j) * prev[j - 1] * (j >= 1) + prev[j] for j in range(K_max + 1)])
    return rows


def surjections(n: int, m: int) -> int:
    """The number of label tuples of length n that use all m labels, by listing all m^n tuples."""
    return sum(len(set(t)) == m for t in itertools.product(range(m), repeat=n))


# --------------------------------------------------------------------------- brute force


@pytest.mark.parametrize(("K", "n"), [(K, n) for n in range(2, 9) for K in range(1, min(n, 5))])
def test_ratio_equals_brute_force(K, n):
    expected = counting.enumerate_ratio(K, n)
    assert isinstance(expected, Fraction)
    assert counting.ratio(K, n) == expected
    assert counting.enumerate_points(K, n) == expected * math.factorial(n)


@pytest.mark.parametrize(("K", "n"), [(K, n) for n in range(2, 7) for K in range(1, n)])
def test_brute_force_counts_surjections(K, n):
    # the Def. 6 / Def. 3 construction gives exactly the label tuples that use every label
    assert counting.enumerate_points(K, n) == surjections(n, n - K)


def test_brute_force_by_hand():
    # n = 3 from 2 neurons: double neuron 0 or 1, three orderings each -> 6 points, T = 6/3! = 1
    assert counting.enumerate_points(1, 3) == 6
    # n = 4 from 2 neurons: copies (3,1), (1,3): 4 each; (2,2): 6 -> 14, T = 14/24 = 7/12
    assert counting.enumerate_points(2, 4) == 14
    assert counting.enumerate_ratio(2, 4) == Fraction(7, 12)


# --------------------------------------------------------------------------- formulas


def test_ratio_equals_stirling_definition():
    band = stirling_band(60, 10)
    for n in range(2, 61):
        for K in range(1, min(n, 11)):
            expected = Fraction(math.factorial(n - K) * band[n][K], math.factorial(n))
            assert counting.ratio(K, n) == expected, (K, n)


@pytest.mark.parametrize("K", [1, 2, 3])
def test_closed_forms(K):
    for n in range(K + 1, 51):
        assert counting.closed_form(K, n) == counting.ratio(K, n), n


def test_closed_form_values():
    assert counting.closed_form(1, 8) == Fraction(7, 2)
    assert counting.closed_form(2, 8) == Fraction(6 * 19, 24)
    assert counting.closed_form(3, 8) == Fraction(5, 24) + Fraction(20, 12) + Fraction(60, 48)


def test_lower_bound_holds():
    for n in range(2, 61):
        for K in range(1, n // 2 + 1):
            bound = counting.lower_bound(K, n)
            assert bound == Fraction(math.comb(n - K, K), 2**K)
            assert bound > 0
            assert counting.ratio(K, n) >= bound, (K, n)
        # K = 1: the bound is exact (the only composition doubles one neuron)
        assert counting.ratio(1, n) == counting.lower_bound(1, n)


def test_lower_bound_is_zero_below_2K():
    assert counting.lower_bound(3, 5) == 0
    assert counting.ratio(3, 5) > 0


def test_ratio_exact_and_fast_for_wide_layers():
    start = time.perf_counter()
    values = {K: counting.ratio(K, 1000) for K in range(1, 11)}
    elapsed = time.perf_counter() - start
    # limit: all ten values at n = 1000 in under 1 s (measured: about 1 ms in total)
    assert elapsed < 1.0, elapsed
    band = stirling_band(1000, 10)
    for K, value in values.items():
        assert isinstance(value, Fraction)
        assert value == Fraction(math.factorial(1000 - K) * band[1000][K], math.factorial(1000))
    assert values[1] == Fraction(999, 2)


def test_ratio_accepts_numpy_ints():
    np = pytest.importorskip("numpy")
    assert counting.ratio(np.int64(2), np.int64(10)) == counting.ratio(2, 10)


# --------------------------------------------------------------------------- Lemma 3


def test_subspaces_by_hand():
    # widths (3, 4), K = 1. Layer 1: 3 neurons from 2, pick the doubled one (2 ways) and place
    # it (3!/2! = 3 orderings): 6. Layer 2: 4 from 3: 3 * 4!/2! = 36. Together 6 * 36 = 216.
    assert counting.subspaces(1, [3, 4]) == 216
    assert counting.subspaces(1, (3, 4)) == int(
        counting.ratio(1, 3) * counting.ratio(1, 4) * math.factorial(3) * math.factorial(4)
    )
    # one layer of 4 from 2 neurons (K = 2): 14 points (see test_brute_force_by_hand)
    assert counting.subspaces(2, [4]) == 14


def test_subspaces_is_an_int_equal_to_the_product():
    widths = [10, 20, 1000]
    count = counting.subspaces(3, widths)
    assert type(count) is int
    expected = math.prod(counting.ratio(3, n) for n in widths) * math.prod(
        math.factorial(n) for n in widths
    )
    assert expected == count


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("fn", [counting.ratio, counting.lower_bound, counting.closed_form])
@pytest.mark.parametrize(
    ("K", "n", "error", "match"),
    [
        (0, 5, ValueError, r"K must be an int >= 1, got 0"),
        (-2, 5, ValueError, r"K must be an int >= 1, got -2"),
        (2, 2, ValueError, r"n must be >= K \+ 1 = 3"),
        (1, -3, ValueError, r"n must be an int >= 1, got -3"),
        (1.0, 5, TypeError, r"K must be an int, got float"),
        (True, 5, TypeError, r"K must be an int, got bool"),
        (1, "5", TypeError, r"n must be an int, got str"),
        (1, 5.5, TypeError, r"n must be an int, got float"),
    ],
)
def test_bad_order_or_width(fn, K, n, error, match):
    with pytest.raises(error, match=match):
        fn(K, n)


def test_closed_form_only_for_K_up_to_3():
    with pytest.raises(ValueError, match=r"K must be 1, 2 or 3 .* got K=4"):
        counting.closed_form(4, 10)


@pytest.mark.parametrize("fn", [counting.enumerate_points, counting.enumerate_ratio])
def test_brute_force_guards(fn):
    with pytest.raises(ValueError, match=r"n must be <= 9 for brute-force enumeration .* got n=10"):
        fn(1, 10)
    with pytest.raises(ValueError, match=r"n must be >= K \+ 1"):
        fn(3, 3)
    with pytest.raises(ValueError, match=r"K must be an int >= 1"):
        fn(0, 3)
    with pytest.raises(TypeError, match=r"n must be an int"):
        fn(1, 4.0)


@pytest.mark.parametrize(
    ("K", "widths", "error", "match"),
    [
        (1, [], ValueError, r"widths must name at least one hidden layer"),
        (1, 5, TypeError, r"widths must be a sequence"),
        (1, "34", TypeError, r"widths must be a sequence"),
        (2, [5, 2], ValueError, r"widths\[1\] \(n_2\) must be >= K \+ 1 = 3, got 2"),
        (1, [3.0], TypeError, r"widths\[0\] \(n_1\) must be an int, got float"),
        (1, [4, -1], ValueError, r"widths\[1\] \(n_2\) must be an int >= 1"),
        (0, [4], ValueError, r"K must be an int >= 1"),
        (None, [4], TypeError, r"K must be an int, got NoneType"),
    ],
)
def test_subspaces_bad_input(K, widths, error, match):
    with pytest.raises(error, match=match):
        counting.subspaces(K, widths)


def test_table_rows_and_bad_input():
    rows = counting.table([1, 4], [3, 8])
    assert [(r["K"], r["n"]) for r in rows] == [(1, 3), (1, 8), (4, 8)]  # (4, 3) skipped
    row = rows[-1]
    assert row["T"] == counting.ratio(4, 8) and row["bound"] == Fraction(1, 16)
    assert row["ratio"] == row["T"] / row["bound"] and row["T_float"] == float(row["T"])
    assert counting.table([2], [3])[0]["ratio"] is None  # bound 0 when n < 2K
    with pytest.raises(ValueError, match=r"K must be an int >= 1"):
        counting.table([0], [5])
    with pytest.raises(TypeError, match=r"n must be an int"):
        counting.table([1], ["8"])


# --------------------------------------------------------------------------- CLI


def test_cli_default_table():
    result = CliRunner().invoke(cmd, [])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:3] == ["K", "n", "T(K,n)"]
    assert len(lines) == 1 + 4 * 5  # K 1..4 by n 8, 16, 32, 64, 1000
    assert lines[1].split()[:4] == ["1", "8", "3.5", "7/2"]
    assert lines[-1].split()[:2] == ["4", "1000"]


def test_cli_writes_csv_atomically(tmp_path):
    out = tmp_path / "t.csv"
    out.write_text("old contents\n")
    result = CliRunner().invoke(cmd, ["-k", "1-3", "--n", "2,4,30", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]  # no temporary file left
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = [(K, n) for K in (1, 2, 3) for n in (2, 4, 30) if n > K]
    assert [(int(r["K"]), int(r["n"])) for r in rows] == expected
    for r in rows:
        K, n = int(r["K"]), int(r["n"])
        assert Fraction(r["T_exact"]) == counting.ratio(K, n)
        assert float(r["T"]) == float(counting.ratio(K, n))
        assert Fraction(r["bound_exact"]) == counting.lower_bound(K, n)
        if n >= 2 * K:
            assert float(r["T_over_bound"]) == pytest.approx(
                float(counting.ratio(K, n) / counting.lower_bound(K, n)), rel=1e-15
            )
        else:
            assert r["T_over_bound"] == ""


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["-k", "a-3"], "'a-3' .* is not an int or a range"),
        (["--n", "8,x"], "'x' .* is not an int or a range"),
        (["--K", "0"], "K must be an int >= 1, got 0"),
        (["--K", "5", "--n", "3,4"], "no pair with n >= K \\+ 1"),
    ],
)
def test_cli_bad_options(args, match):
    result = CliRunner().invoke(cmd, args)
    assert result.exit_code == 2
    assert re.search(match, result.output), result.output


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["-k", "20000", "--n", "20001"], "K must be <= 200"),
        (["-k", "3000", "--n", "1e10"], "'1e10' .* is not an int or a range"),
        (["-k", "1-200", "--n", "1-100"], "at most 10000 .* pairs"),
    ],
)
def test_cli_refuses_unbounded_work_at_once(args, match):
    t0 = time.perf_counter()
    result = CliRunner().invoke(cmd, args)
    assert result.exit_code == 2 and re.search(match, result.output), result.output
    assert time.perf_counter() - t0 < 5.0  # an error, not minutes of work
