"""The path types of `weightsym compare` on one toy pair, timed in one run (issue 12's benchmark).

Each path type runs with the settings `weightsym compare` gives it (CompareConfig defaults
unless told otherwise) between theta* and sigma_{l<->m}(theta*): the permutation path, the
straight line, the trained Bezier curve and polygonal chain, and the nudged elastic band,
whose time is split into the band's relaxation and the climbing image's saddle refinement
(Newton on the gradient with the dense Hessian). Reported: wall time to the path's tolerance
(or to its budget, then marked not converged), as a ratio to the permutation path's; the same
in gradient-equivalents (time / time of one gradient, both measured here); iterations;
gradient evaluations; the barrier (max). One torch thread.

    python benchmarks/compare.py [--activation relu] [--pair 0-1] [--variant joint]
                                 [--band-iter 5000] [--out benchmarks/results/compare.md]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from toy_path import gradient_time  # noqa: E402 (run as a script from benchmarks/)

from weightsym.baselines import barrier_report, neb_path
from weightsym.experiments.compare import BASELINES, BUILDERS, CompareConfig
from weightsym.experiments.toy import ToyConfig, toy_problem
from weightsym.paths import PRESETS, find_path


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = CompareConfig()
    ap.add_argument("--activation", default="relu")
    ap.add_argument("--pair", default="-".join(map(str, defaults.pair)))
    ap.add_argument("--variant", default=defaults.variant, choices=tuple(PRESETS))
    ap.add_argument("--band-iter", type=int, default=defaults.band_iter)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "compare.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pair = tuple(int(x) for x in args.pair.split("-"))
    cfg = CompareConfig(pair=pair, variant=args.variant, band_iter=args.band_iter)
    loss, theta = toy_problem(args.activation, ToyConfig())
    t_grad = gradient_time(loss, theta)

    perm, t_perm = timed(find_path, loss, theta, cfg.path_config())
    solved = perm.records[: perm.num_solved]
    rows = [
        (
            f"permutation ({args.variant})", t_perm, perm.summary().all_converged,
            sum(r.nit for r in solved), sum(r.ngev for r in solved), perm.barrier.loss,
        )
    ]  # fmt: skip
    _, thetas, _ = perm.full()
    refine = None
    for kind in BASELINES:
        builder = BUILDERS.get(kind, neb_path)
        curve, wall = timed(builder, loss, thetas[0], thetas[-1], **cfg.settings(kind))
        top = barrier_report(curve).max
        if curve.refined is not None:
            refine = curve.refined
            band_ok = curve.fit.residual <= curve.fit.tol  # the force tolerance
            rows.append(("neb band", wall - refine.wall_time, band_ok, curve.fit.nit,
                         curve.fit.ngev, top))  # fmt: skip
            continue
        rows.append((kind, wall, curve.converged, curve.fit.nit, curve.fit.ngev, top))
        print(f"{kind} done", flush=True)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"`weightsym compare` path types, toy {args.activation}, pair {pair}, default settings "
        f"(steps {cfg.path.steps}, images {cfg.images}, points {cfg.points}, bend L-BFGS budget "
        f"{cfg.bend_iter}, band budget {cfg.band_iter}), T = 1000, float64, 1 thread, one run; "
        f"load average {load} on {os.cpu_count()} cores. One gradient: {t_grad * 1e6:.0f} us.",
        "Converged: every step (permutation path), L-BFGS's tolerance (curves), the force "
        "tolerance (band), grad_inf 1e-12 (refinement); else the time is to the budget or stall.",
        "",
        "| path | wall s | / permutation | gradient-equivalents | converged | iterations | "
        "gradient evaluations | barrier (max) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, wall, ok, nit, ngev, top in rows:
        lines.append(
            f"| {name} | {wall:.2f} | {wall / t_perm:.3g} | {wall / t_grad:.3g} | "
            f"{'yes' if ok else 'no (budget or stall)'} | {nit} | {ngev} | {top:.5g} |"
        )
    if refine is not None:
        lines.append(
            f"| neb saddle refinement | {refine.wall_time:.2f} | {refine.wall_time / t_perm:.3g} "
            f"| {refine.wall_time / t_grad:.3g} | {'yes' if refine.success else 'no'} | "
            f"{refine.nit} Newton | {refine.ngev} (+{refine.nhev} Hessians) | "
            f"{refine.fun:.5g} (refined point) |"
        )
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
