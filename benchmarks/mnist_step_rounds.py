"""Re-solve single steps of the full-MNIST H = 25 path in rounds: does the loss settle?

Computes (or resumes, from ``--out``) the 20-step path of ``benchmarks/mnist_path.py --compare``
with the chosen step solver (``--solver lbfgs``: the MNIST default, L-BFGS on the chart;
``wvp``: L-BFGS on the variable projection of the whitened chart; ``--step-iter`` iterations a
step, tolerance 1e-6), then restarts L-BFGS on the step objective of each of ``--steps`` (in the
variables of ``--rounds-solver``, default ``wvp``) from the recorded point, ``--rounds`` times
``--per`` iterations (tolerance 1e-10, no growth limit: a round ends only on its budget or a
stall), and prints after every round the loss and grad_inf at the original chart, the four
largest output-weight norms (layer, neuron, |incoming vector|, |output weights|) and, after the
last, the closest pair of incoming vectors in each hidden layer: whether the step settles, and
which weights a further decrease moves (docs/varpro.md section 4).

    python benchmarks/mnist_step_rounds.py --solver wvp --step-iter 3000 --steps 3,10 \\
        [--rounds 6] [--per 300] [--teachers DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from mnist_path import LAYER, limited_threads, problem

from weightsym.constraints import ConstrainedLoss, PairConstraint
from weightsym.experiments.mnist import MNIST_PATH, MnistConfig
from weightsym.optimize import minimize
from weightsym.paths import find_path
from weightsym.paths.reduced import SolverChart

SOLVERS = {"lbfgs": {}, "wvp": {"varpro": True, "whiten": True}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--solver", choices=tuple(SOLVERS), default="lbfgs")
    ap.add_argument("--step-iter", type=int, default=MNIST_PATH.max_iter)
    ap.add_argument("--steps", default="10", help="steps to re-solve, e.g. 3,10")
    ap.add_argument("--rounds-solver", choices=tuple(SOLVERS), default="wvp")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per", type=int, default=300, help="L-BFGS iterations a round")
    ap.add_argument("--teachers", type=Path, default=Path("results/mnist/teachers"))
    ap.add_argument("--out", type=Path, default=None, help="the path's results folder")
    args = ap.parse_args()
    try:
        steps = [int(i) for i in args.steps.split(",") if i.strip()]
    except ValueError:
        raise SystemExit(f"--steps: expected step numbers like 3,10; got {args.steps!r}") from None
    out = args.out or Path(f"results/mnist-step-rounds/{args.solver}-{args.step_iter}")
    with limited_threads(1):
        teacher, loss, theta, pair = problem(argparse.Namespace(**vars(args), variant="paper"))
        path = MNIST_PATH.replace(steps=20, pair=pair, max_iter=args.step_iter,
                                  **SOLVERS[args.solver])  # fmt: skip
        cfg = MnistConfig(path=path).path_config("paper")
        found = find_path(loss, theta, cfg, out=str(out))
        if bad := [i for i in steps if not 0 < i < found.num_solved]:
            raise SystemExit(f"--steps: no solved step {bad} (1 .. {found.num_solved - 1})")
        con = PairConstraint(teacher.net, LAYER, pair, cfg.distance, cfg.gauge)
        chart = SolverChart(loss, con, theta, cfg.replace(**SOLVERS[args.rounds_solver]))
        for i in steps:
            rounds(loss, con, chart, found, i, args)


def rounds(loss, con, chart, found, i: int, args) -> None:
    d = float(found.d[i])
    step, obj = chart.at(d), ConstrainedLoss(loss, con, d)
    x = step.to_x(con.normalize(con.chart(found.thetas[i])))
    print(f"step {i}, d = {d:.4g}: recorded loss {float(found.loss[i]):.4e}", flush=True)
    t0 = time.perf_counter()
    for r in range(1, args.rounds + 1):
        res = minimize(step.objective, x, method="lbfgs", tol=1e-10, max_iter=args.per,
                       growth_limit=None)  # fmt: skip
        x = res.x
        phi = con.normalize(step.to_phi(x))
        value, g = obj.value_and_grad(phi)
        net, layers = loss.net, loss.net.unflatten(obj.theta(phi))
        sizes = []
        for k in net.hidden_layers:
            W, b = layers[k - 1]
            for n in range(net.widths[k]):
                v = float(torch.cat([W[n], b[n : n + 1]]).norm())
                sizes.append((float(layers[k][0][:, n].norm()), k, n, v))
        big = ", ".join(f"{k}:{n} {v:.3g}/{o:.3g}" for o, k, n, v in sorted(sizes)[::-1][:4])
        print(f"  {r * args.per:5d} it.: loss {value:.5e}, grad_inf {float(g.abs().max()):.2e}, "
              f"{time.perf_counter() - t0:.0f} s; largest |out| (layer:neuron |in|/|out|) {big}; "
              f"{res.message[:40]}", flush=True)  # fmt: skip
    for k in net.hidden_layers:
        W, b = layers[k - 1]
        V = torch.cat([W, b[:, None]], 1)
        D = torch.cdist(V, V) + torch.diag(torch.full((V.shape[0],), torch.inf, dtype=V.dtype))
        a, c = divmod(int(torch.argmin(D)), V.shape[0])
        print(f"  layer {k}: closest incoming vectors {a}, {c} at {float(D[a, c]):.3g}")


if __name__ == "__main__":
    main()
