"""The toy sweep under another machine's rounding, compared with the published summary.

"A number is a result only when it survives another machine." Where no second machine is at
hand, this recomputes the published toy sweep (``docs/results/toy/``, its settings read from its
``summary.json``) in a subprocess whose math library rounds as a different CPU's would, and
compares the two summaries cell by cell:

- ``MKL_CBWR=COMPATIBLE`` (the default ``--env``) makes Intel MKL, which the PyTorch CPU wheels
  use for matrix products and eigendecompositions, take its generic code path instead of the
  one chosen for this CPU (e.g. AVX-512): the path an MKL takes on a CPU it does not tune for.
  Products and eigenvalues then differ in the last bits (measured: a 1000 x 300 by 300 x 200
  product's tanh sum and an eigenvalue of a 200 x 200 Gram matrix moved by ~1e-14 relative);
- ``ATEN_CPU_CAPABILITY`` (e.g. ``avx2``) picks PyTorch's own vector kernels; on the sums above
  it changed nothing, and is left to ``--env``.

Reported per cell kind (barrier, its position, the loss at the permutation point, the channel
limit, the partner channel's limit) and separately for three groups of paths (certified with a
spread, the largest relative difference between the certificate's three runs, within
``--rtol``; certified with a larger spread; not certified): how many agree to ``--rtol`` (1e-6
relative) and the largest difference. Positions agree as in the certificate
(docs/certification.md section 3): t within 0.01, or both barriers at the permutation point's
loss (``barrier_at_permutation_point``), which the constant-loss output-weight shift spreads
over t = 1/4 .. 1/2 (a plateau: the recorded t is a matter of rounding there). Nothing is
certified by this run itself: it recomputes the "as given" run of each path, the one whose
numbers the summary publishes.

    python benchmarks/toy_rounding.py [--reference docs/results/toy] [--env MKL_CBWR=COMPATIBLE]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from weightsym.certify import T_ATOL  # positions agree as in the certificate
from weightsym.paths.config import SWITCHES

HERE = Path(__file__).parent
CELLS = ("barrier", "barrier_t", "loss_permutation_point", "channel_limit", "partner_limit")


class Agreement(NamedTuple):
    """One cell kind in one group of paths: how many agree and the largest difference."""

    cell: str
    group: str
    agree: int
    compared: int
    worst: float  # largest |a - b| / max(|a|, |b|) (t: |a - b| off the plateau)
    worst_path: str


def toy_command(config: dict, out: Path, workers: int) -> list[str]:
    """``weightsym toy`` with the reference's settings (those its summary.json records)."""
    path = config["path"]
    pairs = ",".join(f"{a}-{b}" for a, b in config["pairs"])
    cmd = [sys.executable, "-m", "weightsym.cli", "toy", "--out", str(out), "--no-progress"]
    cmd += ["--activations", ",".join(config["activations"])]
    cmd += ["--variants", ",".join(config["variants"]), "--pairs", pairs]
    cmd += ["--steps", str(path["steps"]), "--ratio", repr(path["ratio"])]
    cmd += ["--solver", path["solver"], "--tol", repr(path["tol"])]
    cmd += ["--max-iter", str(path["max_iter"]), "--patience", str(path["patience"])]
    cmd += ["--samples", str(config["samples"]), "--seed", str(config["seed"])]
    cmd += ["--workers", str(workers)]
    for flag in SWITCHES:  # each explicit: a default may have changed since the reference
        option = flag.replace("_", "-")
        cmd.append(f"--{option}" if path.get(flag) else f"--no-{option}")
    return cmd


def rows(summary: Path) -> dict[str, dict[str, str]]:
    with summary.open(newline="") as f:
        return {f"{r['activation']} {r['variant']} {r['pair']}": r for r in csv.DictReader(f)}


def difference(cell: str, a: str, b: str) -> float:
    """|a - b| relative to the larger (t: absolute); 0 when both are empty or both NaN."""
    if a == b:
        return 0.0
    if not a or not b:
        return math.inf
    x, y = float(a), float(b)
    if math.isnan(x) and math.isnan(y):
        return 0.0
    if cell == "barrier_t":
        return abs(x - y)
    scale = max(abs(x), abs(y))
    return abs(x - y) / scale if scale > 0 else 0.0


def groups(rtol: float) -> dict[str, Callable[[dict[str, str]], bool]]:
    """The reference's paths by their certificate: certified with a spread (the largest
    relative difference between its three runs, ``certify_spread``) within ``rtol``, certified
    with a larger one (still within the certificate's 1%), and not certified."""

    def spread(r: dict[str, str]) -> float:
        return float(r["certify_spread"]) if r.get("certify_spread") else math.inf

    def certified(r: dict[str, str]) -> bool:
        return r["certified"] == "True"

    return {
        f"certified, spread <= {rtol:g}": lambda r: certified(r) and spread(r) <= rtol,
        f"certified, spread > {rtol:g}": lambda r: certified(r) and spread(r) > rtol,
        "not certified": lambda r: not certified(r),
    }


def both_at_point(a: dict[str, str], b: dict[str, str]) -> bool:
    """Both barriers are the loss at the permutation point (the output-shift plateau)."""
    return a["barrier_at_permutation_point"] == b["barrier_at_permutation_point"] == "True"


def compare(reference: dict, other: dict, rtol: float) -> list[Agreement]:
    out = []
    for cell in CELLS:
        for group, member in groups(rtol).items():
            keys = [k for k, r in reference.items() if member(r)]
            keys = [k for k in keys if reference[k].get(cell) or other[k].get(cell)]
            diffs = {  # a cell a summary lacks (written before it existed) counts as empty
                k: difference(cell, reference[k].get(cell, ""), other[k].get(cell, ""))
                for k in keys
            }
            if cell == "barrier_t":
                on_point = [k for k in keys if both_at_point(reference[k], other[k])]
                diffs.update(dict.fromkeys(on_point, 0.0))
            limit = T_ATOL if cell == "barrier_t" else rtol
            worst = max(diffs, key=diffs.__getitem__, default="")
            out.append(
                Agreement(
                    cell,
                    group,
                    sum(d <= limit for d in diffs.values()),
                    len(keys),
                    diffs.get(worst, 0.0),
                    worst,
                )
            )
    return out


def report(args, config: dict, wall: float, table: list[Agreement]) -> list[str]:
    lines = [
        f"Toy sweep recomputed with {' '.join(args.env) or 'no change'} and compared with "
        f"{os.path.relpath(args.reference)}/summary.csv (written {config['written']} by weightsym "
        f"{config['version']}): {config['n']} paths, {args.workers} workers, {wall:.0f} s wall. "
        f"Agreement: relative difference <= {args.rtol:g}; barrier t: within {T_ATOL:g} or "
        "both barriers at the permutation point (the output-shift plateau).",
        "",
        "| cell | paths | agree | compared | largest difference | on |",
        "|---|---|---|---|---|---|",
    ]
    for a in table:
        worst = "-" if a.compared == 0 else f"{a.worst:.2g}"
        lines.append(
            f"| {a.cell} | {a.group} | {a.agree} | {a.compared} | {worst} | {a.worst_path} |"
        )
    return lines


def parse_env(items: list[str]) -> dict[str, str]:
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env: expected NAME=VALUE; got {item!r}")
        env[name] = value
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", type=Path, default=HERE.parent / "docs" / "results" / "toy")
    ap.add_argument("--env", action="append", default=None, help="NAME=VALUE (repeatable)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--run", type=Path, default=Path("results/toy_rounding"), help="new folder")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "toy_rounding.md")
    args = ap.parse_args()
    args.env = args.env if args.env is not None else ["MKL_CBWR=COMPATIBLE"]
    env = {**os.environ, **parse_env(args.env)}
    published = json.loads((args.reference / "summary.json").read_text())
    t0 = time.perf_counter()
    if args.run.exists():  # a results folder of ours would be resumed, not recomputed
        raise SystemExit(f"--run: {args.run} exists; name a new folder for the recomputed sweep")
    subprocess.run(toy_command(published["config"], args.run, args.workers), env=env, check=True)
    wall = time.perf_counter() - t0
    reference = rows(args.reference / "summary.csv")
    other = rows(args.run / "summary.csv")
    if set(other) != set(reference):
        raise SystemExit(f"{args.run}: other paths than the reference's")
    meta = published["meta"]
    info = {"written": meta["written_utc"], "version": meta["weightsym_version"]}
    info["n"] = len(reference)
    lines = report(args, info, wall, compare(reference, other, args.rtol))
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
