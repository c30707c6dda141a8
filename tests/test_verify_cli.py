"""`weightsym verify`: parses its options, prints the report and exits 0 when every claim comes
out as docs/theory.md section 2 says."""

from __future__ import annotations

import re

from click.testing import CliRunner

from weightsym.commands.verify import SampleCount, cmd
from weightsym.experiments.verify import MIN_SAMPLES, VerifyConfig, run_verify


def _untimed(text: str) -> str:
    return re.sub(r"\(\d+\.\d s\)", "(s)", text)


def test_prints_the_report_and_exits_zero():
    result = CliRunner().invoke(cmd, ["--seed", "0"])
    print(result.output)
    assert result.exit_code == 0, result.output
    lines: list[str] = []
    run_verify(VerifyConfig(seed=0), lines.append)
    assert _untimed(result.output) == _untimed("\n".join(lines) + "\n")


def test_rejects_bad_options():
    result = CliRunner().invoke(cmd, ["--samples", "3"])
    assert result.exit_code == 2 and "--samples" in result.output
    result = CliRunner().invoke(cmd, ["--activation", "cosine"])
    assert result.exit_code == 2 and "cosine" in result.output


def test_samples_below_the_meaningful_minimum_are_refused_with_the_reason():
    result = CliRunner().invoke(cmd, ["--samples", str(MIN_SAMPLES - 1)])
    assert result.exit_code == 2, result.output
    assert "--samples" in result.output and f"x>={MIN_SAMPLES}" in result.output
    assert "every equal-loss direction is then critical" in result.output
    assert SampleCount().convert(MIN_SAMPLES, None, None) == MIN_SAMPLES
