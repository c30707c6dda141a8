"""The pair search: a permutation path per pair of a layer (or the K most similar), and
Spearman's rho between cosine similarity and barrier."""

from __future__ import annotations

import json
import math

import pytest
from scipy.stats import spearmanr

from weightsym.experiments.pairs import (
    PairRow,
    PairsConfig,
    choose_pairs,
    rank_correlation,
    run_pairs,
)
from weightsym.experiments.toy import TOY_PATH, ToyConfig, toy_problem
from weightsym.io import read_csv
from weightsym.symmetry import pairwise_cosine

FEW_STEPS = PairsConfig(path=TOY_PATH.replace(steps=3, max_iter=20), workers=1)


@pytest.fixture(scope="module")
def toy():
    return toy_problem("softplus", ToyConfig(samples=200))


def _no_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


def test_every_pair_of_the_toy_then_the_top_three_resumed(toy, tmp_path) -> None:
    loss, theta = toy
    out = tmp_path / "pairs"
    result = run_pairs(loss, theta, FEW_STEPS, out, progress=False)
    rows = result.rows
    assert len(rows) == 10 and len({r.pair for r in rows}) == 10
    cosines = [r.cosine for r in rows]
    assert cosines == sorted(cosines, reverse=True)  # most similar first
    assert sorted(r.cosine_rank for r in rows) == sorted(r.barrier_rank for r in rows)
    assert sorted(r.barrier_rank for r in rows) == list(range(1, 11))
    rho = result.correlation.rho
    assert rho is not None and -1.0 <= rho <= 1.0 and result.correlation.n == 10
    expected = spearmanr(cosines, [r.barrier for r in rows]).statistic
    assert rho == pytest.approx(expected, abs=1e-15)
    table = read_csv(out / "pairs.csv")
    assert list(table[0]) == PairRow.columns() and len(table) == 10
    summary = json.loads((out / "summary.json").read_text())
    assert summary["spearman"]["rho"] == pytest.approx(rho, abs=0)
    for r in rows:
        assert (out / "paths" / r.folder / "summary.json").is_file()
    # the three most similar pairs again: every path is resumed from its folder, same numbers
    top = run_pairs(loss, theta, PairsConfig(**(FEW_STEPS.__dict__ | {"top": 3})), out, False)
    assert [r.pair for r in top.rows] == [r.pair for r in rows[:3]]
    again = _no_time([r.as_row() for r in top.rows])
    first = _no_time([r.as_row() for r in rows[:3]])
    for a, b in zip(again, first):
        assert {k: v for k, v in a.items() if not k.endswith("_rank")} == {
            k: v for k, v in b.items() if not k.endswith("_rank")
        }


def test_choose_pairs_orders_by_cosine_and_cuts_to_top(toy) -> None:
    loss, theta = toy
    C = pairwise_cosine(loss.net, theta, 1)
    chosen = choose_pairs(loss, theta, PairsConfig(top=4))
    assert len(chosen) == 4
    for c in chosen:
        l, m = c.pair
        assert l < m and c.cosine == float(C[l, m])
    everything = choose_pairs(loss, theta, PairsConfig())
    assert chosen == everything[:4] and len(everything) == 10
    assert min(c.cosine for c in chosen) >= max(c.cosine for c in everything[4:])


def test_rank_correlation_known_answers() -> None:
    assert rank_correlation([0.9, 0.5, 0.1], [1.0, 2.0, 3.0]).rho == pytest.approx(-1.0)
    assert rank_correlation([0.9, 0.5, 0.1], [3.0, 2.0, 1.0]).rho == pytest.approx(1.0)
    few = rank_correlation([0.9, 0.5], [1.0, 2.0])
    assert few.rho is None and few.pvalue is None and "at least 3" in few.note
    flat = rank_correlation([0.9, 0.5, 0.1], [1.0, 1.0, 1.0])
    assert flat.rho is None and "barriers are equal" in flat.note
    weak = rank_correlation([0.4, 0.3, 0.2, 0.1], [2.0, 1.0, 4.0, 3.0])
    assert weak.rho == pytest.approx(-0.6) and "not significantly" in weak.note
    assert math.isfinite(weak.pvalue)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"top": 0}, "top must be an int >= 1"),
        ({"top": True}, "top must be an int >= 1"),
        ({"variant": "fancy"}, "unknown variant"),
        ({"layer": 2}, "not a hidden layer"),
    ],
)
def test_bad_settings_are_refused_before_any_folder(toy, tmp_path, changes, message) -> None:
    loss, theta = toy
    cfg = PairsConfig(**(FEW_STEPS.__dict__ | changes))
    with pytest.raises(ValueError, match=message):
        run_pairs(loss, theta, cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
