"""The MNIST tables and the verdict on the paper's Fig. 3 claims, on known rows."""

from __future__ import annotations

import dataclasses

from weightsym import diagnostics as diag
from weightsym.experiments.mnist import MnistRow, aggregate, claims


def _row(H: int, seed: int, barrier: float, monotone: bool, drop: float) -> MnistRow:
    values = {
        "loss_kind": "nmse", "variant": "paper", "H": H, "seed": seed, "barrier": barrier,
        "barrier_t": 0.5, "barrier_at_permutation_point": monotone, "monotone": monotone,
        "accuracy_start": 0.98, "accuracy_drop": drop, "flag_channel": False,
        "flag_rescaling": False, "flag_elsewhere": False, "not_converged": 0,
        "worst_grad_inf": 1e-7, "saddle_negative": 1, "path_time": 1.0,
    }  # fmt: skip
    unused = dict.fromkeys(MnistRow.columns()) | dict.fromkeys(diag.FLAGS, False)
    return MnistRow.from_row(unused | values)


def test_claims_on_known_tables() -> None:
    rows = [_row(10, 0, 3e-3, True, 0.01), _row(10, 1, 5e-3, True, 0.0)]
    rows += [_row(20, 0, 1e-3, True, 0.005), _row(20, 1, 2e-3, False, 0.03)]
    table = aggregate(rows)
    assert [(t.H, t.paths, t.barrier_mean) for t in table] == [
        (10, 2, 4e-3),
        (20, 2, 1.5e-3),
    ]
    assert [t.partner_channels for t in table] == [0, 0]
    on_channel = [dataclasses.replace(rows[0], partner_channel="13~0"), *rows[1:]]
    assert [t.partner_channels for t in aggregate(on_channel)] == [1, 0]
    c = claims(rows, table)["paper"]
    assert c.monotone_rise.monotone_paths == 3 and c.monotone_rise.confirmed
    assert c.barrier_falls_with_H.confirmed
    assert not c.small_accuracy_drop.confirmed and c.small_accuracy_drop.max_drop == 0.03
    rising = [_row(10, 0, 1e-3, False, 0.0), _row(20, 0, 2e-3, False, 0.0)]
    c = claims(rising, aggregate(rising))["paper"]
    assert not c.barrier_falls_with_H.confirmed and not c.monotone_rise.confirmed
    assert claims(rows[:2], aggregate(rows[:2]))["paper"].barrier_falls_with_H.confirmed is None


def test_rows_flatten_the_flags_and_round_trip() -> None:
    """Every escape flag is a column of summary.csv and table.csv (counts in the table)."""
    row = _row(10, 0, 3e-3, True, 0.01)
    flat = row.as_row()
    assert list(flat) == MnistRow.columns() and set(diag.FLAGS) <= set(flat)
    assert "flags" not in flat and MnistRow.from_row(flat) == row
    flagged = MnistRow.from_row(flat | {"flag_channel": True})
    table = aggregate([row, flagged])
    assert table[0].flags["flag_channel"] == 1 and table[0].as_row()["flag_channel"] == 1
    assert claims([row, flagged], table)["paper"].as_dict()["monotone_rise"]["paths"] == 2
