"""The exact dense Hessian (``Loss.hessian``) against ``torch.autograd.functional.hessian``.

One softplus hidden layer, 2 inputs, 1 output, mse, float64, one thread; widths 10, 50, 100 and
T = 1e2 .. 1e5 samples. Each time is the best of ``--repeats`` runs (the baseline's largest
cases, which take minutes, run once). The two Hessians must agree: the table shows their
largest difference relative to the largest entry. Writes a markdown table to
``benchmarks/results/hessian.md``.

    python benchmarks/hessian.py [--quick] [--max-T 100000] [--repeats 5]

``--quick`` skips the baseline where it would take longest (width 100 at T = 1e5 and width 50
at T = 1e5) and reports only our time there.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

import weightsym as ws

WIDTHS = (10, 50, 100)
SAMPLES = (100, 1_000, 10_000, 100_000)
SLOW = 20.0  # seconds: a baseline run slower than this is not repeated
QUICK_SKIP = {(50, 100_000), (100, 100_000)}


def best_time(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    """(best wall time, result) over ``repeats`` runs; one run when the first is slow."""
    best, out = float("inf"), None
    for i in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        if i == 0 and best > SLOW:
            break
    return best, out


def problem(width: int, T: int) -> tuple[ws.Loss, torch.Tensor]:
    net = ws.MLP([2, width, 1], "softplus")
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(T, 2, dtype=torch.float64, generator=gen)
    Y = torch.randn(T, 1, dtype=torch.float64, generator=gen)
    return ws.Loss(net, X, Y, "mse"), net.init(1)


def row(width: int, T: int, repeats: int, baseline: bool) -> dict:
    loss, theta = problem(width, T)
    loss.hessian(theta)  # warm up
    ours, H = best_time(lambda: loss.hessian(theta), repeats)
    out = {"width": width, "P": loss.num_params, "T": T, "ours": ours}
    if baseline:
        ref_time, ref = best_time(
            lambda: torch.autograd.functional.hessian(loss.functional, theta), repeats
        )
        out.update(baseline=ref_time, diff=float((H - ref).abs().max() / ref.abs().max()))
    return out


def table(rows: list[dict]) -> str:
    lines = [
        "| width | P | T | ours (ms) | autograd (ms) | autograd / ours | max rel diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "baseline" in r:
            base = f"{1e3 * r['baseline']:.1f}"
            ratio, diff = f"{r['baseline'] / r['ours']:.0f}x", f"{r['diff']:.1e}"
        else:
            base, ratio, diff = "skipped", "", ""
        lines.append(
            f"| {r['width']} | {r['P']} | {r['T']:.0e} | {1e3 * r['ours']:.2f} | {base} "
            f"| {ratio} | {diff} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="skip the slowest baseline cases")
    ap.add_argument("--max-T", type=int, default=SAMPLES[-1], help="largest sample count")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hessian.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for width in WIDTHS:
        for T in (T for T in SAMPLES if T <= args.max_T):
            baseline = not (args.quick and (width, T) in QUICK_SKIP)
            rows.append(row(width, T, args.repeats, baseline))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    header = (
        f"Dense Hessian of the mse loss, one softplus hidden layer (2 inputs, 1 output), float64, "
        f"1 thread, best of {args.repeats} (slow baseline runs once); torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}.\n\n"
    )
    text = header + table(rows) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
