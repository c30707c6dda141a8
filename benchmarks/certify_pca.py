"""Certify reduced-MNIST paths (docs/mnist.md, "How the answers change with K").

Builds the teacher and the path of ``weightsym mnist --pca K --limit 500 --widths 10 --seeds S
--steps 30 --solver auto`` (the MNIST path defaults otherwise: tol 1e-6, 60 iterations a step)
and runs :func:`weightsym.certify.certify_path` on the chosen variant: as given, with twice the
per-step budget, and with the samples reordered (other rounding), one torch thread. Prints the
verdict and the three runs' barrier, its position, the permutation-point loss and the loss the
pair channel tends to. Teachers are trained into (or reused from) ``--teachers``.

    python benchmarks/certify_pca.py --pca 40 --seed 1 [--variant paper] [--teachers DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from weightsym.certify import PathCertificate, certify_path
from weightsym.experiments.mnist import MNIST_PATH, MnistConfig
from weightsym.experiments.mnist.problem import load_digits, mnist_problem
from weightsym.experiments.mnist.teachers import data_fingerprint, get_teacher

WIDTH, LIMIT, STEPS = 10, 500, 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pca", type=int, required=True, help="K principal components")
    parser.add_argument("--seed", type=int, required=True, help="teacher seed")
    parser.add_argument("--variant", default="paper", help="paper or joint")
    parser.add_argument("--teachers", type=Path, default=Path("results/certify-pca/teachers"))
    parser.add_argument("--out", type=Path, default=None, help="results folder of the runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = MNIST_PATH.replace(steps=STEPS, solver="auto")
    cfg = MnistConfig(
        widths=(WIDTH,), seeds=(args.seed,), variants=(args.variant,), limit=LIMIT,
        pca=args.pca, path=path, workers=1, threads=1,
    )  # fmt: skip
    cfg.validate()
    X, y = load_digits(cfg)
    tcfg = cfg.teacher_config(WIDTH, args.seed, data_fingerprint(X, y))
    teacher = get_teacher(tcfg, X, y, args.teachers)
    loss = mnist_problem(teacher, X, y, cfg.loss)
    t0 = time.perf_counter()
    out = None if args.out is None else str(args.out)
    cert = certify_path(loss, teacher.theta, config=cfg.path_config(args.variant), threads=1,
                        out=out)  # fmt: skip
    print(f"K = {args.pca}, seed {args.seed}, {args.variant}: {time.perf_counter() - t0:.0f} s")
    print("\n".join(certificate_lines(cert)))


def certificate_lines(cert: PathCertificate) -> list[str]:
    """The verdict, the spread and each run's numbers, one line each."""
    spread = f"spread (largest relative difference between two runs): {cert.spread:.2g}"
    lines = [cert.reason, spread]
    for r in cert.runs:
        lines.append(
            f"  {r.label:15s} barrier {r.barrier_loss:.10g} at t = {r.barrier_t:.4g}, "
            f"permutation point {r.permutation_point_loss:.10g}, channel limit "
            f"{r.channel_limit if r.channel_limit is not None else '-'}, "
            f"steps not converged {r.not_converged}"
        )
    return lines


if __name__ == "__main__":
    main()
