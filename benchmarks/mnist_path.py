"""One H = 25 MNIST path (Fig. 3): the default solver against the paper's gradient descent.

Both solve the same path (the most similar pair of layer 2 of the seed-0 teacher, 100 steps,
the 5,000 embedded digits, nmse, float64, one thread) with the same per-step budget and
tolerance (the MNIST defaults, ``MNIST_PATH``: L-BFGS, tol 1e-6, 60 iterations; gradient
descent gets 60 iterations at the paper-gd step). Reported, measured in this one run: wall and
CPU time per path and their ratio, gradient evaluations per step, steps converged, the loss
reached at every step (as a ratio, GD / default: both are upper bounds on the constrained
minimum, lower is better), the barrier, and the default's accuracy: at ``--checks`` steps its
point is polished with L-BFGS to tol 1e-7 (``--polish`` iterations) and the loss it gives up is
reported. With ``--auto-steps N`` trust-region Newton-CG (``solver="auto"``) is also timed on
N of those steps from the same warm starts. CPU time is the figure to quote on a shared
machine: one thread gets all of a core only when the machine is idle.

    python benchmarks/mnist_path.py [--width 25] [--steps 100] [--checks 5] [--auto-steps 1]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from weightsym.constraints import ConstrainedLoss, PairConstraint
from weightsym.data import load_mnist
from weightsym.experiments.mnist import MNIST_PATH, MnistConfig, mnist_problem
from weightsym.experiments.mnist.teachers import TeacherConfig, data_fingerprint, get_teacher
from weightsym.optimize import minimize
from weightsym.paths import find_path
from weightsym.paths.config import PAPER_GD
from weightsym.symmetry import most_similar_pair

LAYER = MNIST_PATH.layer
DEFAULT_SOLVER = MNIST_PATH.solver
DEFAULT_TOL = MNIST_PATH.tol
DEFAULT_STEP_ITER = MNIST_PATH.max_iter


@contextlib.contextmanager
def limited_threads(n: int) -> Iterator[None]:
    """``n`` torch threads and one BLAS thread (threadpoolctl), as a Dask worker runs."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


def unit_costs(loss, theta, repeats: int = 5) -> dict[str, float]:
    """Median wall and CPU seconds of one gradient and one Hessian-vector product."""
    out = {}
    for name, fn in (
        ("grad", lambda: loss.value_and_grad(theta)),
        ("hvp", lambda: loss.hvp(theta, theta)),
    ):
        fn()
        wall, cpu = [], []
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        out[f"{name}_wall"], out[f"{name}_cpu"] = statistics.median(wall), statistics.median(cpu)
    return out


def timed_path(loss, theta, pair, args, solver: str) -> dict:
    base = MnistConfig(path=MNIST_PATH.replace(steps=args.steps, solver=solver, pair=pair))
    cfg = base.path_config(args.variant)
    t, c = time.perf_counter(), time.process_time()
    path = find_path(loss, theta, cfg)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    solved = path.records[: path.num_solved]
    return {
        "path": path,
        "wall": wall,
        "cpu": cpu,
        "grads": statistics.mean(r.ngev for r in solved),
        "converged": sum(r.converged for r in solved),
        "solved": len(solved),
        "worst": max(r.grad_inf for r in solved),
        "barrier": path.barrier.loss,
        "loss_pp": path.permutation_point_loss,
    }


def polish(loss, con, path, i: int, method: str, start: int | None = None, **opts):
    """Minimize step i's problem from the path's point at step ``start`` (default i);
    returns (loss, CPU seconds, the OptimizeResult)."""
    obj = ConstrainedLoss(loss, con, float(path.d[i]))
    c = time.process_time()
    phi0 = con.chart(path.thetas[i if start is None else start])
    res = minimize(obj, phi0, method=method, **opts)
    return float(res.fun), time.process_time() - c, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--variant", default="paper", choices=("paper", "joint"))
    ap.add_argument("--checks", type=int, default=5, help="steps whose accuracy is checked")
    ap.add_argument("--polish", type=int, default=2000, help="L-BFGS iterations of a check")
    ap.add_argument("--auto-steps", type=int, default=1, help="steps timed with solver=auto")
    ap.add_argument("--teachers", type=Path, default=Path("results/mnist/teachers"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "mnist_path.md")
    args = ap.parse_args()
    with limited_threads(1):
        lines = run(args)
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


def run(args: argparse.Namespace) -> list[str]:
    X, y = load_mnist("embedded")
    cfg = TeacherConfig(width=args.width, seed=args.seed, data=data_fingerprint(X, y))
    teacher = get_teacher(cfg, X, y, args.teachers)
    loss = mnist_problem(teacher, X, y, "nmse")
    theta = teacher.theta
    pair = most_similar_pair(teacher.net, theta, LAYER)
    units = unit_costs(loss, theta)
    print(f"unit costs: {units}", flush=True)
    runs = {}
    for name, solver in ((f"default ({DEFAULT_SOLVER})", DEFAULT_SOLVER), ("paper-gd", "paper-gd")):
        runs[name] = timed_path(loss, theta, pair, args, solver)
        print(f"{name}: {runs[name]['wall']:.0f} s wall, {runs[name]['cpu']:.0f} s CPU", flush=True)
    default, gd = runs.values()
    n = default["solved"]
    ratio = [
        float(gd["path"].loss[i]) / float(default["path"].loss[i])
        for i in range(1, n)
        if float(default["path"].loss[i]) > 0
    ]
    distance = MnistConfig().path_config(args.variant).distance
    con = PairConstraint(teacher.net, LAYER, pair, distance)
    checks = sorted({round(1 + j * (n - 3) / max(1, args.checks - 1)) for j in range(args.checks)})
    excess = []
    for i in checks:
        ref, cpu, _ = polish(loss, con, default["path"], i, "lbfgs", tol=1e-7, max_iter=args.polish)
        excess.append((i, float(default["path"].loss[i]) - ref, ref, cpu))
        print(f"check step {i}: excess {excess[-1][1]:.2e} ({cpu:.0f} s)", flush=True)
    auto = []
    for i in checks[: args.auto_steps]:
        path = default["path"]
        _, cpu, res = polish(loss, con, path, i, "newton-cg", i - 1, tol=DEFAULT_TOL, max_iter=100)
        auto.append((i, cpu, res.nhvp, res.ngev, res.grad_inf, res.success))
        print(f"auto step {i}: {cpu:.0f} s CPU, {res.nhvp} Hessian-vector products", flush=True)
    return report(args, teacher, pair, units, runs, ratio, excess, auto)


def report(args, teacher, pair, units, runs, ratio, excess, auto) -> list[str]:
    default, gd = runs.values()
    lines = [
        f"MNIST path: H = {args.width}, teacher seed {args.seed} (training accuracy "
        f"{teacher.accuracy:.4f}), pair {pair} of layer {LAYER}, {args.variant} variant, "
        f"{args.steps} steps, 5,000 digits, nmse, float64, 1 torch thread, 1 BLAS thread.",
        f"One gradient: {units['grad_cpu'] * 1e3:.0f} ms CPU ({units['grad_wall'] * 1e3:.0f} ms "
        f"wall); one Hessian-vector product: {units['hvp_cpu'] * 1e3:.0f} ms CPU "
        f"({units['hvp_wall'] * 1e3:.0f} ms wall).",
        f"Both solvers: tol {DEFAULT_TOL:g}, {DEFAULT_STEP_ITER} iterations per step "
        f"(paper-gd step {PAPER_GD['lr']}).",
        "",
        "| solver | wall s | CPU s | gradients per step | steps converged | worst grad_inf | "
        "barrier | loss at the permutation point |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        lines.append(
            f"| {name} | {r['wall']:.0f} | {r['cpu']:.0f} | {r['grads']:.0f} | "
            f"{r['converged']}/{r['solved']} | {r['worst']:.1e} | {r['barrier']:.4e} | "
            f"{r['loss_pp']:.4e} |"
        )
    lines += [
        "",
        f"Time ratio paper-gd / default: {gd['wall'] / default['wall']:.2f} (wall), "
        f"{gd['cpu'] / default['cpu']:.2f} (CPU). Loss reached, paper-gd / default, per step: "
        f"median {statistics.median(ratio):.2f}, min {min(ratio):.2f}, max {max(ratio):.2f}.",
        "",
        f"Accuracy of the default: its point at a step, polished with L-BFGS to tol 1e-7 "
        f"(at most {args.polish} iterations), gives up this much loss:",
        "",
        "| step | d | loss given up | relative to the barrier | polished loss | polish CPU s |",
        "|---|---|---|---|---|---|",
    ]
    path = default["path"]
    for i, ex, ref, cpu in excess:
        lines.append(
            f"| {i} | {float(path.d[i]):.3e} | {ex:.2e} | {ex / default['barrier']:.1e} | "
            f"{ref:.4e} | {cpu:.0f} |"
        )
    for i, cpu, nhvp, ngev, g, ok in auto:
        lines.append(
            f"\nsolver=auto (trust-region Newton-CG) on step {i} from the default's point at step "
            f"{i - 1}: {cpu:.0f} s CPU, {nhvp} Hessian-vector products, {ngev} gradients, "
            f"grad_inf {g:.1e} ({'converged' if ok else 'not converged'} to {DEFAULT_TOL:g})."
        )
    return lines


if __name__ == "__main__":
    main()
