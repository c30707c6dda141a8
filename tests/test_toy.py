"""The toy experiment (paper Fig. 2; docs/theory.md section 7): configuration and sweep."""

from __future__ import annotations

import pytest

from weightsym.experiments.toy import ToyConfig, run_toy
from weightsym.io import read_csv
from weightsym.paths import PRESETS, PathConfig

TINY = ToyConfig(
    activations=("relu", "softplus"),
    variants=("paper", "joint", "gauge"),
    pairs=[(0, 1), (0, 1), (2, 4)],  # a duplicate pair runs once
    samples=100,
    path=PathConfig(layer=1, steps=3, max_iter=10, patience=10),
)


def test_each_variant_runs_its_preset():
    for variant, preset in PRESETS.items():
        cfg = TINY.path_config(variant, (0, 1))
        assert (cfg.distance, cfg.gauge) == (preset["distance"], preset["gauge"])
        assert (cfg.steps, cfg.max_iter, cfg.pair) == (3, 10, (0, 1))  # the template's rest
    assert TINY.path_config("paper", (0, 1)).patience == 10
    lbfgs = ToyConfig(path=PathConfig(layer=1, solver="lbfgs", patience=10))
    assert lbfgs.path_config("joint", (0, 1)).patience is None  # only trust-region solvers


def test_jobs_skip_gauge_for_softplus_and_merge_duplicates():
    jobs = TINY.jobs()
    assert len(jobs) == len(set(jobs)) == 2 * 5  # (relu: 3 variants, softplus: 2) x 2 pairs
    assert ("softplus", "gauge", (0, 1)) not in jobs


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"variants": ("gauge",), "activations": ("softplus",)}, "no path to compute"),
        ({"variants": ("fancy",)}, "unknown variant"),
        ({"pairs": [(0, 7)]}, "pairs must name two different neurons"),
        ({"activations": ("swish",)}, "unknown activation"),
    ],
)
def test_bad_configs_are_refused_before_any_work(changes, match, tmp_path):
    cfg = ToyConfig(**(TINY.__dict__ | changes))
    with pytest.raises(ValueError, match=match):
        run_toy(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # a failed run leaves no folder behind


def _table(folder) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k != "wall_time"} for r in read_csv(folder / "summary.csv")
    ]


def test_two_local_workers_give_the_one_worker_table(tmp_path):
    """A LocalCluster of 2 worker processes and one of 1: the same table, cell for cell."""
    small = ToyConfig(**(TINY.__dict__ | {"activations": ("softplus",), "workers": 1}))
    run_toy(small, tmp_path / "one", progress=False)
    run_toy(ToyConfig(**(small.__dict__ | {"workers": 2})), tmp_path / "two", progress=False)
    assert _table(tmp_path / "one") == _table(tmp_path / "two")
    assert len(_table(tmp_path / "one")) == 4


def test_certify_marks_each_path_and_keeps_its_reruns(tmp_path):
    cfg = ToyConfig(
        **(TINY.__dict__ | {"activations": ("relu",), "variants": ("joint",), "pairs": [(0, 1)]})
        | {"certify": True, "workers": 1}
    )
    (row,) = run_toy(cfg, tmp_path, progress=False)
    assert isinstance(row.certified, bool) and row.certify_reason.startswith(
        "certified" if row.certified else "not certified"
    )
    for rerun in ("double-budget", "other-rounding"):
        assert (tmp_path / "paths" / row.folder / "certify" / rerun / "steps.csv").is_file()
    assert read_csv(tmp_path / "summary.csv")[0]["certified"] == row.certified
    assert row.certify_spread >= 0 and (not row.certified or row.certify_spread <= 1e-2)
    assert read_csv(tmp_path / "summary.csv")[0]["certify_spread"] == row.certify_spread


def test_the_printed_table_names_a_partner_channel():
    from weightsym import diagnostics as diag
    from weightsym.commands.toy import table
    from weightsym.experiments.toy import ToyRow

    base = dict.fromkeys(ToyRow.columns()) | dict.fromkeys(diag.FLAGS, False)
    base |= {"barrier": 1e-3, "loss_permutation_point": 1e-4, "not_converged": 0}
    base |= {"worst_grad_inf": 1e-9, "activation": "softplus", "variant": "joint", "pair": "0-3"}
    rows = [ToyRow.from_row(base | {"partner_channel": p}) for p in ("2~1", None)]
    lines = table(rows).splitlines()
    end = lines[0].index("partner") + len("partner")  # right-aligned under its header
    assert [line[:end].split()[-1] for line in lines[-2:]] == ["2~1", "-"]
