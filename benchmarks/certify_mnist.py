"""Certify the full-MNIST H = 25 path (docs/varpro.md section 4, "Converged, and not a result").

The path of ``benchmarks/mnist_path.py --compare`` (784-H-H-10 softplus teacher of the embedded
5,000 digits, trained or read from ``--teachers``; the most similar pair of layer 2; the paper's
variant; ``--steps`` steps to 1e-4 d_0 and the merge; the MNIST path defaults otherwise) solved
with L-BFGS on the variable projection of the whitened chart (``PathConfig(varpro=True,
whiten=True)``) with ``--step-iter`` iterations a step and tolerance ``--tol``, run through
:func:`weightsym.certify.certify_path`: as given, with twice the per-step budget, and with the
samples reordered and two torch threads (other rounding). Prints the verdict, each run's
numbers and, per step, the three runs' losses, which steps converged and which escape flags
rose (``ch`` pair channel, ``ew k:j~p`` neuron j of layer k grew, p the neuron of layer k
nearest it: its partner), so the step where the runs part is visible. The three results folders are
kept under ``--out`` (a new folder, or one this script made, which is then resumed).

With ``--partner-limit 3,4`` it then follows, at each of those steps of each run where a neuron
j of the pair's layer grew onto a partner p (the elsewhere flag), the channel of (p, j) to its
limit with the pair kept at the step's d (:func:`weightsym.partner_channel.partner_limit`,
L-BFGS, ``--limit-iter`` iterations, no growth limit, from the step's point, on the samples in
their original order): the loss that step tends to along that channel.

    python benchmarks/certify_mnist.py [--steps 20] [--step-iter 3000] [--tol 1e-6]
        [--partner-restart] [--teachers DIR] [--out DIR] [--report FILE]
        [--partner-limit 3,4 --limit-iter 2000]

``--partner-restart`` solves the path with ``PathConfig(partner_restart=True)``: a step stalled
on a partner channel is solved again with j pulled back from p (docs/certification.md
section 1). ``--sweep-back`` with ``PathConfig(sweep_back=True)``: every step solved again from
the step after it, the lower kept (docs/certification.md section 5). ``--given-only`` computes
the path as given and no reruns (no certificate; for settings whose reruns do not fit); with
``--other-rounding`` it computes instead the certificate's other-rounding run alone (samples
reordered, two torch threads).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from certify_pca import certificate_lines
from mnist_path import limited_threads, problem

from weightsym.certify import RERUN_FOLDERS, RUNS, certify_path, reordered
from weightsym.constraints import PairConstraint
from weightsym.experiments.mnist import MNIST_PATH, MnistConfig
from weightsym.partner_channel import partner_limit
from weightsym.paths import PermutationPath, find_path, load_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", default="paper", choices=("paper", "joint"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--step-iter", type=int, default=3000, help="L-BFGS iterations a step")
    ap.add_argument("--tol", type=float, default=MNIST_PATH.tol, help="grad_inf tolerance")
    ap.add_argument("--teachers", type=Path, default=Path("results/mnist/teachers"))
    ap.add_argument("--out", type=Path, default=Path("results/certify-mnist"))
    ap.add_argument("--report", type=Path, default=None, help="also write the report here")
    ap.add_argument("--partner-limit", default="", help="steps whose partner channel to follow")
    ap.add_argument(
        "--partner-restart", action="store_true", help="PathConfig(partner_restart=True)"
    )
    ap.add_argument("--sweep-back", action="store_true", help="PathConfig(sweep_back=True)")
    ap.add_argument("--given-only", action="store_true", help="no reruns, no certificate")
    ap.add_argument(
        "--other-rounding", action="store_true", help="with --given-only: the rounding rerun"
    )
    ap.add_argument("--limit-iter", type=int, default=2000, help="L-BFGS iterations of a limit")
    args = ap.parse_args()
    try:
        limit_steps = [int(i) for i in args.partner_limit.split(",") if i.strip()]
    except ValueError:
        raise SystemExit(
            f"--partner-limit: expected step numbers like 3,4; got {args.partner_limit!r}"
        ) from None
    with limited_threads(1):
        teacher, loss, theta, pair = problem(args)
        path = MNIST_PATH.replace(
            steps=args.steps, pair=pair, varpro=True, whiten=True, max_iter=args.step_iter,
            tol=args.tol, partner_restart=args.partner_restart, sweep_back=args.sweep_back,
        )  # fmt: skip
        cfg = MnistConfig(path=path).path_config(args.variant)
        t0 = time.perf_counter()
        if args.given_only:
            with limited_threads(2 if args.other_rounding else 1):
                problem_ = reordered(loss) if args.other_rounding else loss
                given = find_path(problem_, teacher.theta, cfg, out=args.out)
            verdict, folders = path_lines(given), (args.out,)
        else:
            cert = certify_path(loss, teacher.theta, config=cfg, out=str(args.out))
            verdict = certificate_lines(cert)
            folders = (args.out, *(args.out / "certify" / name for name in RERUN_FOLDERS))
        wall = time.perf_counter() - t0
        paths = [load_path(f, teacher.net) for f in folders]
        if bad := [i for i in limit_steps if not 0 <= i < paths[0].num_solved]:
            last = paths[0].num_solved - 1
            raise SystemExit(f"--partner-limit: no solved step {bad} (0 .. {last})")
        con = PairConstraint(teacher.net, cfg.layer, pair, cfg.distance, cfg.gauge)
        limits = [limit_row(loss, con, p, label, i, args.limit_iter)
                  for i in limit_steps for label, p in zip(RUNS, paths, strict=True)]  # fmt: skip
    lines = [
        f"Full MNIST, H = {args.width}, teacher seed {args.seed}, pair {pair} of layer 2, "
        f"{args.variant} variant, {args.steps} steps and the merge; L-BFGS on the variable "
        f"projection of the whitened chart, {args.step_iter} iterations a step, tol {args.tol:g}"
        f"{', partner restarts' if args.partner_restart else ''}"
        f"{', swept back' if args.sweep_back else ''}; "
        f"{'the path' if args.given_only else 'the three runs'}"
        f"{' on the samples reordered, two threads' if args.other_rounding else ''}"
        f" in {wall:.0f} s.",
        "",
        *verdict,
        "",
        step_table(paths, (RUNS[2],) if args.other_rounding else RUNS),
    ]
    if limit_steps:
        lines += ["", *LIMIT_HEAD, *(row for row in limits if row)]
    text = "\n".join(lines)
    print(text)
    if args.report is not None:
        args.report.write_text(text + "\n")


LIMIT_HEAD = (
    "| run | step | d | loss at the step | partner channel (j onto p) | partner distance | "
    "limit loss | grad_inf | converged | iterations | s |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
)


def limit_row(loss, con, path: PermutationPath, label: str, i: int, iters: int) -> str:
    """The partner channel's limit at step i of one run, as a table row ("" where step i has
    no partner channel in the pair's layer)."""
    r = path.records[i]
    dg = r.diagnostics
    j, p = dg.other_neuron, dg.other_partner
    if not (dg.flag_elsewhere and dg.other_layer == con.layer and p >= 0 and j not in con.pair):
        return ""
    t0 = time.perf_counter()
    res = partner_limit(loss, con, r.d, path.thetas[i], (p, j), tol=1e-9, method="lbfgs",
                        max_iter=iters, growth_limit=None)  # fmt: skip
    return (
        f"| {label} | {i} | {r.d:.3g} | {r.loss:.4e} | {j} onto {p} | "
        f"{dg.other_partner_distance:.2g} | {res.loss:.4e} | {res.grad_inf:.1e} | "
        f"{'yes' if res.converged else 'no'} | {res.nit} | {time.perf_counter() - t0:.0f} |"
    )


def _flags(r) -> str:
    d = r.diagnostics
    out = ["ch"] if d.flag_channel else []
    if d.flag_elsewhere:
        out.append(f"ew {d.other_layer}:{d.other_neuron}~{d.other_partner}")
    out += [name for name, up in (("rs", d.flag_rescaling), ("lin", d.flag_linearization),
                                  ("uncl", d.flag_unclassified)) if up]  # fmt: skip
    return " ".join(out) or "-"


def path_lines(path: PermutationPath) -> list[str]:
    """The numbers of one path (``--given-only``)."""
    b, s = path.barrier, path.summary()
    swept = list(s.swept_steps)
    solver = sum(r.wall_time for r in path.records)
    return [
        f"barrier {b.loss:.9e} at t = {b.t:.4g} (step {b.index}, "
        f"{'at' if b.at_point else 'off'} the permutation point), permutation point "
        f"{path.permutation_point_loss:.9e}, steps not converged {len(s.not_converged_steps)}, "
        f"swept back {len(swept)} ({_ranges(swept)}), restarted "
        f"{sum(r.restarted for r in path.records)}, solver {solver:.0f} s"
    ]


def _ranges(ix: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    out: list[list[int]] = []
    for i in ix:
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in out) or "none"


def step_table(paths: list[PermutationPath], labels: tuple[str, ...] = RUNS) -> str:
    """One row a solved step: d, then per run its loss (* = not converged, v = kept from the
    backward sweep) and its flags."""
    labels = labels[: len(paths)]
    head = "| step | d | " + " | ".join(f"{label}: loss | flags" for label in labels) + " |"
    rows = [head, "|" + "---|" * (2 + 2 * len(labels))]
    first = paths[0]
    for i in range(first.num_solved):
        cells = [str(i), f"{first.records[i].d:.3g}"]
        for p in paths:
            r = p.records[i]
            mark = ("" if r.converged else "*") + ("v" if r.swept else "")
            cells += [f"{r.loss:.4e}{mark}", _flags(r)]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
