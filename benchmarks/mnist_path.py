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

With ``--compare`` it instead solves the same path, in one run, with the step solvers of
:data:`COMPARE` (L-BFGS on the chart, on its variable projection, on the variable projection
of the whitened chart, and trust-region Newton-CG on the latter; ``PathConfig.varpro`` and
``PathConfig.whiten``, docs/varpro.md; ``ch`` and ``wch``: L-BFGS in the pair's channel
coordinates, ``PathConfig.channel``, on the chart and on the whitened chart) at the same
per-step iteration budget (``--ncg-iter`` overrides Newton-CG's, ``--step-iter`` the others'),
and prints one table: work per step (gradient evaluations,
Hessian-vector products, and gradient-equivalents at the unit costs measured in the run),
steps converged, worst grad_inf, barrier and its t, loss at the permutation point, the loss
reached per step relative to the default's, wall and CPU time, and the largest remaining-excess
estimate over a step's loss where the steps record one.

    python benchmarks/mnist_path.py [--width 25] [--steps 100] [--checks 5] [--auto-steps 1]
    python benchmarks/mnist_path.py --compare [--steps 20] [--solvers lbfgs,vp,wvp,wvp-ncg]
        [--step-iter 300]
"""

from __future__ import annotations

import argparse
import contextlib
import math
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
from weightsym.paths import find as find_module
from weightsym.paths import find_path
from weightsym.paths.config import PAPER_GD, PathConfig
from weightsym.paths.reduced import SolverChart
from weightsym.symmetry import most_similar_pair

LAYER = MNIST_PATH.layer
DEFAULT_SOLVER = MNIST_PATH.solver
DEFAULT_TOL = MNIST_PATH.tol
DEFAULT_STEP_ITER = MNIST_PATH.max_iter
COMPARE = {  # name: changes to the MNIST path settings
    "lbfgs": {},
    "vp": {"varpro": True},
    "wvp": {"varpro": True, "whiten": True},
    "wvp-ncg": {"varpro": True, "whiten": True, "solver": "newton-cg"},
    "ch": {"channel": True},
    "wch": {"whiten": True, "channel": True},
}


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


def timed_path(loss, theta, pair, args, solver: str, **changes) -> dict:
    path = MNIST_PATH.replace(steps=args.steps, solver=solver, pair=pair, **changes)
    cfg = MnistConfig(path=path).path_config(args.variant)
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
        "barrier_t": path.barrier.t,
        "loss_pp": path.permutation_point_loss,
        "hvps": statistics.mean(r.nhvp for r in solved),
        "step_wall": sum(r.wall_time for r in solved),
        # the remaining-excess estimate of each step, where the records carry one
        "excess": getattr(path, "worst_excess_ratio", None),
        "excess_bounds": sum(bool(getattr(r, "excess_bound", False)) for r in solved),
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
    ap.add_argument("--compare", action="store_true", help="the step solvers side by side")
    ap.add_argument("--solvers", default=",".join(COMPARE), help="with --compare: which")
    ap.add_argument("--ncg-iter", type=int, default=None, help="Newton-CG's per-step budget")
    ap.add_argument(
        "--step-iter", type=int, default=None, help="with --compare: L-BFGS's per-step budget"
    )
    ap.add_argument(
        "--channel-limit",
        action="store_true",
        help="with --compare: keep find_path's channel-limit solve after the path (off: the "
        "comparison is of the step solvers)",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    name = "mnist_path_compare.md" if args.compare else "mnist_path.md"
    args.out = args.out or Path(__file__).parent / "results" / name
    with limited_threads(1):
        lines = compare(args) if args.compare else run(args)
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


def problem(args: argparse.Namespace):
    """The teacher (trained or read from ``--teachers``), its nmse loss, theta* and the pair."""
    X, y = load_mnist("embedded")
    cfg = TeacherConfig(width=args.width, seed=args.seed, data=data_fingerprint(X, y))
    teacher = get_teacher(cfg, X, y, args.teachers)
    loss = mnist_problem(teacher, X, y, "nmse")
    return teacher, loss, teacher.theta, most_similar_pair(teacher.net, teacher.theta, LAYER)


def run(args: argparse.Namespace) -> list[str]:
    teacher, loss, theta, pair = problem(args)
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


def solver_costs(loss, theta, con, cfg: PathConfig, d: float, repeats: int = 9):
    """Median CPU seconds of one gradient and one Hessian-vector product of a step's objective
    in the solver's variables, at theta* moved to distance d; and the CPU seconds of building
    the step (with ``whiten``: fitting the whitening). Each gradient is taken at a new point
    (variable projection reuses its least-squares solve at a repeated point); each product is
    the second at its point (the first at a new point also computes the chart's gradient)."""
    c = time.process_time()
    step = SolverChart(loss, con, theta, cfg).at(d)
    setup = time.process_time() - c
    x = step.to_x(con.normalize(con.chart(theta)))
    v = torch.randn(x.numel(), generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    grad, hvp = [], []
    for i in range(repeats + 1):
        xi = x + (1e-9 * (i + 1)) * v
        c = time.process_time()
        step.objective.value_and_grad(xi)
        grad.append(time.process_time() - c)
        step.objective.hvp(xi, v)
        c = time.process_time()
        step.objective.hvp(xi, v)
        hvp.append(time.process_time() - c)
    return statistics.median(grad[1:]), statistics.median(hvp[1:]), setup


def compare(args: argparse.Namespace) -> list[str]:
    """The path with each solver of ``--solvers`` (see the module docstring)."""
    names = [n.strip() for n in args.solvers.split(",") if n.strip()]
    if not names or set(names) - set(COMPARE):
        raise SystemExit(f"--solvers: expected names from {list(COMPARE)}; got {args.solvers!r}")
    teacher, loss, theta, pair = problem(args)
    base = MnistConfig(path=MNIST_PATH.replace(steps=args.steps, pair=pair))
    cfg = base.path_config(args.variant)
    con = PairConstraint(teacher.net, LAYER, pair, cfg.distance, cfg.gauge)
    d = 0.5 * con.measure(theta)
    costs = {"chart": solver_costs(loss, theta, con, cfg, d)}
    for name in names:
        costs[name] = solver_costs(loss, theta, con, cfg.replace(**COMPARE[name]), d)
        print(f"{name}: unit costs (CPU s) {costs[name]}", flush=True)
    if not args.channel_limit and hasattr(find_module, "_follow_channel"):
        find_module._follow_channel = lambda loss, path: None  # not a step solver: left out
    runs = {}
    for name in names:
        changes = dict(COMPARE[name])
        solver = changes.pop("solver", DEFAULT_SOLVER)
        if solver == "newton-cg" and args.ncg_iter is not None:
            changes["max_iter"] = args.ncg_iter
        if solver != "newton-cg" and args.step_iter is not None:
            changes["max_iter"] = args.step_iter
        runs[name] = timed_path(loss, theta, pair, args, solver, **changes)
        r = runs[name]
        print(f"{name}: {r['wall']:.0f} s wall, {r['cpu']:.0f} s CPU", flush=True)
    return compare_report(args, teacher, pair, costs, runs)


def _ratios(path, default) -> list[float]:
    """Loss reached at each step d_1 .. merge over the default's (both upper bounds)."""
    n = default.num_solved
    return [
        float(path.loss[i]) / float(default.loss[i])
        for i in range(1, n)
        if float(default.loss[i]) > 0
    ]


def compare_report(args, teacher, pair, costs, runs) -> list[str]:
    unit = costs["chart"][0]
    ncg = args.ncg_iter if args.ncg_iter is not None else DEFAULT_STEP_ITER
    lbfgs = args.step_iter if args.step_iter is not None else DEFAULT_STEP_ITER
    lines = [
        f"MNIST path: H = {args.width}, teacher seed {args.seed} (training accuracy "
        f"{teacher.accuracy:.4f}), pair {pair} of layer {LAYER}, {args.variant} variant, "
        f"{args.steps} steps (d_S = {MNIST_PATH.ratio:g} d_0) and the merge, 5,000 digits, "
        f"nmse, float64, 1 torch thread, 1 BLAS thread; tol {DEFAULT_TOL:g}; per-step budget "
        f"{lbfgs} iterations (L-BFGS), {ncg} (Newton-CG); the merge 5x.",
        f"Unit: one gradient of the full chart, {unit * 1e3:.0f} ms CPU. Unit costs in units "
        "(gradient, Hessian-vector product; setup CPU s): "
        + "; ".join(
            f"{k} {g / unit:.2f}, {h / unit:.2f}; {s:.2f} s" for k, (g, h, s) in costs.items()
        )
        + ".",
        "Gradient-equivalents per step: nominal = gradients + 2 x products; measured = gradients "
        "and products at the unit costs above (the excess estimate after each step is not "
        "counted). wall s, CPU s: the whole find_path; solver wall s: the steps' solves only "
        "(without the excess estimates and diagnostics). find_path's channel-limit solve after "
        f"the path: {'included' if args.channel_limit else 'left out'}.",
        "",
        "| solver | gradients / step | products / step | grad-eq. nominal | grad-eq. measured | "
        "converged | worst grad_inf | barrier (t) | loss at the permutation point | "
        "loss / lbfgs's, median (max) | max excess / loss (steps where a lower bound) | "
        "wall s | CPU s | solver wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    default = runs.get("lbfgs")
    for name, r in runs.items():
        g, h, _ = costs[name]
        ratio = _ratios(r["path"], default["path"]) if default is not None else []
        rel = f"{statistics.median(ratio):.2f} ({max(ratio):.2f})" if ratio else "-"
        excess = "n/a"
        if r["excess"] is not None and not math.isnan(r["excess"]):
            excess = f"{r['excess']:.2g} ({r['excess_bounds']} bounds)"
        lines.append(
            f"| {name} | {r['grads']:.0f} | {r['hvps']:.0f} | {r['grads'] + 2 * r['hvps']:.0f} | "
            f"{(r['grads'] * g + r['hvps'] * h) / unit:.0f} | {r['converged']}/{r['solved']} | "
            f"{r['worst']:.1e} | {r['barrier']:.4e} ({r['barrier_t']:.3f}) | "
            f"{r['loss_pp']:.4e} | {rel} | {excess} | {r['wall']:.0f} | {r['cpu']:.0f} | "
            f"{r['step_wall']:.0f} |"
        )
    if any(r["excess"] is None for r in runs.values()):
        lines.append("\nThe step records carry no excess estimate in this version: column n/a.")
    return lines


if __name__ == "__main__":
    main()
