"""Path solvers on one pair of the ReLU toy (issue 3's benchmark), measured in one run.

The fast default ("auto": trust-region Newton on the exact Hessian with the polynomial
predictor) computes the whole 200-step path. The baselines, scipy L-BFGS-B and the paper's
fixed-step gradient descent, are timed on the same constrained problems: at every
``--every``-th step each starts from the fast path's solution at the previous d (the warm start
the paper's procedure uses) and solves to the same tolerance. Reported per solver: wall time per
step as a ratio to the fast solver (on the same steps), gradient evaluations per step, the cost
of a step in gradient-equivalents (step time / time of one gradient evaluation, both measured
here), and the worst grad_inf reached.

    python benchmarks/toy_path.py [--steps 200] [--every 10] [--gd-budget 20000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from weightsym.constraints import ConstrainedLoss, PairConstraint
from weightsym.experiments.toy import ToyConfig, toy_problem
from weightsym.optimize import minimize
from weightsym.paths import PAPER_GD, find_path


def gradient_time(loss, theta, repeats: int = 300) -> float:
    loss.value_and_grad(theta)
    t0 = time.perf_counter()
    for _ in range(repeats):
        loss.value_and_grad(theta)
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=10, help="time baselines on every k-th step")
    ap.add_argument("--gd-budget", type=int, default=PAPER_GD["max_iter"])
    ap.add_argument("--pair", default="0-1")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "toy_path.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pair = tuple(int(x) for x in args.pair.split("-"))
    loss, theta = toy_problem("relu", ToyConfig())
    t_grad = gradient_time(loss, theta)

    t0 = time.perf_counter()
    path = find_path(loss, theta, 1, pair, steps=args.steps)
    fast_total = time.perf_counter() - t0
    solved = path.records[: path.num_solved]
    con = PairConstraint(loss.net, 1, pair)

    chosen = list(range(1, path.num_solved - 1, args.every))  # descent steps with d > 0
    rows = {"auto (fast)": [], "lbfgs (scipy L-BFGS-B)": [], "paper-gd": []}
    for i in chosen:
        rec = solved[i]
        rows["auto (fast)"].append((rec["wall_time"], rec["ngev"], rec["grad_inf"]))
        obj = ConstrainedLoss(loss, con, float(path.d[i]))
        start = con.chart(path.thetas[i - 1])
        for name, opts in (
            ("lbfgs (scipy L-BFGS-B)", {"method": "lbfgs"}),
            ("paper-gd", {"method": "gd", "lr": PAPER_GD["lr"], "max_iter": args.gd_budget}),
        ):
            res = minimize(obj, start, tol=1e-12, **opts)
            rows[name].append((res.wall_time, res.ngev, res.grad_inf))
        print(f"step {i}: d={float(path.d[i]):.3e} done", flush=True)

    fast_step = statistics.mean(r[0] for r in rows["auto (fast)"])
    lines = [
        f"ReLU toy, pair {pair}, {args.steps} steps, T=1000, float64, 1 thread; baselines timed "
        f"on {len(chosen)} steps (every {args.every}th) from the same warm starts.",
        f"Fast solver, whole path: {fast_total:.2f} s, "
        f"{sum(r['ngev'] for r in solved) / len(solved):.1f} gradient evaluations per step, "
        f"{fast_total / len(solved) / t_grad:.0f} gradient-equivalents per step "
        f"(one gradient: {t_grad * 1e6:.0f} us), "
        f"{sum(r['converged'] for r in solved)}/{len(solved)} steps converged to 1e-12, "
        f"worst grad_inf {max(r['grad_inf'] for r in solved):.1e}.",
        "",
        "| solver | time per step / fast | gradient evals per step | gradient-equivalents per "
        "step | worst grad_inf | steps at 1e-12 |",
        "|---|---|---|---|---|---|",
    ]
    for name, rs in rows.items():
        wall = statistics.mean(r[0] for r in rs)
        lines.append(
            f"| {name} | {wall / fast_step:.1f} | {statistics.mean(r[1] for r in rs):.0f} | "
            f"{wall / t_grad:.0f} | {max(r[2] for r in rs):.1e} | "
            f"{sum(r[2] <= 1e-12 for r in rs)}/{len(rs)} |"
        )
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
