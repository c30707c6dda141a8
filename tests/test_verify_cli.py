"""`weightsym verify`: runs, prints every claim of SPEC section 2, the corrected claims hold."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from weightsym.commands.verify import POINTS, WIDTHS, cmd


@pytest.fixture(scope="module")
def output() -> str:
    result = CliRunner().invoke(cmd, ["--seed", "0"])
    print(result.output)
    assert result.exit_code == 0, result.output
    return result.output


def claim_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(r"\[(PASS|FAIL)\]", line)]


def test_prints_every_claim(output):
    lines = claim_lines(output)
    per_point = [
        "the point computes the smaller net's f",
        "a critical point of the bigger net",
        "equal loss on a",
        "equal-loss directions are critical",
        "split-ratio family is critical",
        "zero eigenvalues",
    ]
    for text in per_point:
        assert sum(text in line for line in lines) == len(POINTS), text
    assert sum("are not:" in line for line in lines) == sum(
        WIDTHS[layer + 1] > 1 for layer, _ in POINTS
    )
    for ref in ("Def. 4", "Def. 6", "Prop. 1 (i)", "Prop. 2 (i)", "Prop. 1 (iii)", "Sec. 4.1"):
        assert any(ref in line for line in lines), ref
    assert len(WIDTHS) - 2 >= 3  # three hidden layers


def test_corrected_claims_hold_and_printed_ones_where_spec_says(output):
    lines = claim_lines(output)
    for line in lines:
        if "(as printed)" in line:
            expected = "expected to hold" in line
            assert line.startswith("[PASS]" if expected else "[FAIL]"), line
        else:
            assert line.startswith("[PASS]"), line
    assert sum("expected to hold" in line for line in lines) == 2  # the n_k+1 = 1 layer
    corrected = sum(2 + (WIDTHS[layer + 1] > 1) for layer, _ in POINTS)  # split, saddle, other
    assert sum("(corrected)" in line for line in lines) == corrected
    assert "NOT AS SPEC" not in output
    assert "all as SPEC section 2 says" in output


def test_figures_are_printed(output):
    assert re.search(r"grad_inf \d\.\de-1[5-9]", output)  # rounding-level gradients shown
    assert re.search(r"eigenvalues negative/zero/positive \d+/\d+/\d+", output)


def test_rejects_bad_options():
    result = CliRunner().invoke(cmd, ["--samples", "3"])
    assert result.exit_code == 2 and "--samples" in result.output
    result = CliRunner().invoke(cmd, ["--activation", "cosine"])
    assert result.exit_code == 2 and "cosine" in result.output
