"""The toy sweep on 1 and on 2 local Dask workers, as a ratio measured in one run.

Runs ``run_toy`` (the ``weightsym toy`` sweep; every pair, paper/joint/gauge variants, the
default path settings) twice into fresh folders, with ``workers=1`` and ``workers=2``, checks
that the two summary tables are identical (wall times aside), and reports the speed-up. Aim
(issue 11): at least 1.8x on 2 free cores. The runner's per-task overhead is measured by
``benchmarks/sweep_overhead.py``.

    python benchmarks/sweep.py [--pairs 0-1,2-4] [--steps 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from weightsym.experiments.toy import TOY_PATH, ToyConfig, run_toy
from weightsym.io import read_csv

RESULT = Path(__file__).resolve().parent / "results" / "sweep.md"


def timed(cfg: ToyConfig, out: Path) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    run_toy(cfg, out, progress=False)
    wall = time.perf_counter() - t0
    rows = [{k: v for k, v in r.items() if k != "wall_time"} for r in read_csv(out / "summary.csv")]
    return wall, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", default=None, help="e.g. 0-1,2-4 (default: all 10)")
    ap.add_argument("--steps", type=int, default=TOY_PATH.steps)
    args = ap.parse_args()
    pairs = None
    if args.pairs:
        pairs = [tuple(int(x) for x in p.split("-")) for p in args.pairs.split(",")]
    base = ToyConfig(pairs=pairs, path=TOY_PATH.replace(steps=args.steps))
    with tempfile.TemporaryDirectory() as tmp:
        one, rows1 = timed(ToyConfig(**(base.__dict__ | {"workers": 1})), Path(tmp) / "one")
        two, rows2 = timed(ToyConfig(**(base.__dict__ | {"workers": 2})), Path(tmp) / "two")
    same = rows1 == rows2
    paths = len(rows1)
    lines = [
        f"Toy sweep ({paths} paths, {args.steps} steps each), torch {torch.__version__}, "
        f"{os.cpu_count()} cores, measured in one run:",
        "",
        "| workers | wall s | speed-up |",
        "|---|---|---|",
        f"| 1 | {one:.1f} | 1.00 |",
        f"| 2 | {two:.1f} | {one / two:.2f} |",
        "",
        f"Tables identical (wall times aside): {same}.",
    ]
    text = "\n".join(lines)
    print(text)
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(text + "\n")
    if not same:
        raise SystemExit("the 1- and 2-worker tables differ")


if __name__ == "__main__":
    main()
