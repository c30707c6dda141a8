"""Does the code give the same tables as a reference run? Cell by cell, by column name.

Reruns a small experiment with the current code into a temporary folder and compares its CSV
tables with those of a reference folder made by the same command (e.g. with the code before a
redesign): every row in order, every column by NAME (column order may differ), every cell as
written (floats are written with ``repr``, so equal text is equal to the last digit). Columns
whose name holds "time" (wall times) are skipped; columns only the new run has are listed but
not compared; columns only the reference has count as differences.

    python benchmarks/redesign_identity.py --mnist REFERENCE_FOLDER [--keep OUT]

Prints, per table, the rows and cells compared and every difference (the first 20 of each
table in full); exits with status 1 when a cell differs.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MNIST_ARGS = [
    "--widths", "10", "--seeds", "0", "--limit", "500", "--steps", "8", "--max-iter", "20",
    "--teacher-max-iter", "100", "--target-accuracy", "0.9", "--lanczos-steps", "10",
    "--workers", "1", "--no-progress",
]  # fmt: skip
"""The reference command: ``weightsym mnist --out OUT`` followed by these."""
TOY_ARGS = ["--pairs", "0-1,1-3", "--steps", "30", "--workers", "2", "--no-progress"]
"""The reference command: ``weightsym toy --out OUT`` followed by these."""
TOY_TABLES = ("summary.csv",) + tuple(
    f"paths/{act}-{var}-pair{pair}/steps.csv"
    for act, variants in (("relu", ("paper", "joint", "gauge")), ("softplus", ("paper", "joint")))
    for var in variants
    for pair in ("01", "13")
)
EXPERIMENTS = {
    "mnist": (MNIST_ARGS, ("summary.csv", "table.csv", "steps.csv")),
    "toy": (TOY_ARGS, TOY_TABLES),
}
"""Per experiment: the arguments after ``--out OUT`` and the tables compared."""
SHOWN = 20


@dataclass
class Comparison:
    """The outcome of comparing one table."""

    name: str
    rows: int = 0
    cells: int = 0
    differences: list[str] = field(default_factory=list)
    new_columns: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def compare_table(new_file: Path, ref_file: Path) -> Comparison:
    """Compare ``new_file`` with ``ref_file`` row by row and column by column name."""
    out = Comparison(ref_file.name)
    new_cols, new_rows = read_table(new_file)
    ref_cols, ref_rows = read_table(ref_file)
    out.skipped = [c for c in ref_cols if "time" in c]
    out.new_columns = [c for c in new_cols if c not in ref_cols]
    compared = [c for c in ref_cols if "time" not in c]
    out.differences += [
        f"column {c!r} missing from the new table" for c in compared if c not in new_cols
    ]
    if len(new_rows) != len(ref_rows):
        out.differences.append(f"{len(new_rows)} rows against {len(ref_rows)} in the reference")
    for i, (new, ref) in enumerate(zip(new_rows, ref_rows)):
        out.rows += 1
        for c in compared:
            if c not in new_cols:
                continue
            out.cells += 1
            if new[c] != ref[c]:
                out.differences.append(f"row {i}, {c}: reference {ref[c]!r}, new {new[c]!r}")
    return out


def run_experiment(name: str, out: Path) -> None:
    args, _ = EXPERIMENTS[name]
    cmd = [sys.executable, "-m", "weightsym.cli", name, "--out", str(out), *args]
    print("$ weightsym", name, "--out", out, *args, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def report(name: str, results: Sequence[Comparison]) -> int:
    """Print the comparison of one experiment; returns its number of differences."""
    total = sum(len(r.differences) for r in results)
    for r in results:
        print(
            f"{name}/{r.name}: {r.rows} rows, {r.cells} cells compared, "
            f"{len(r.differences)} differences"
        )
        print(f"  skipped (times): {', '.join(r.skipped) or '-'}")
        print(f"  new columns, not compared: {', '.join(r.new_columns) or '-'}")
        for d in r.differences[:SHOWN]:
            print(f"  DIFF {d}")
        if len(r.differences) > SHOWN:
            print(f"  ... and {len(r.differences) - SHOWN} more")
    cells = sum(r.cells for r in results)
    print(f"{name}: {cells} cells compared, {total} differences")
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in EXPERIMENTS:
        ap.add_argument(f"--{name}", type=Path, help=f"reference folder of `weightsym {name}`")
    ap.add_argument("--keep", type=Path, default=None, help="run into this folder and keep it")
    args = ap.parse_args()
    chosen = [n for n in EXPERIMENTS if getattr(args, n) is not None]
    if not chosen:
        ap.error(f"name at least one reference folder: {', '.join('--' + n for n in EXPERIMENTS)}")
    differences = 0
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        for name in chosen:
            out = base / name
            run_experiment(name, out)
            ref = getattr(args, name)
            files = EXPERIMENTS[name][1]
            differences += report(name, [compare_table(out / f, ref / f) for f in files])
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
