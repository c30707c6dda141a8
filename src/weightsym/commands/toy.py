"""`weightsym toy`: the paper's toy reproduction (Figs. 2, 4, 5) into a results folder."""

from __future__ import annotations

import click

from weightsym.activations import NAMES
from weightsym.commands.params import (
    CommandError,
    NameList,
    PairList,
    format_table,
    out_option,
    path_config,
    path_options,
    progress_option,
    scheduler_option,
    workers_option,
    yes,
)
from weightsym.experiments.runner import SweepError
from weightsym.experiments.toy import ToyConfig, ToyRow, run_toy
from weightsym.io import ResultsFolderError
from weightsym.paths import PRESETS
from weightsym.plots import toy_figures

DEFAULTS = ToyConfig()


@click.command("toy")
@out_option("results/toy")
@click.option(
    "--activations",
    type=NameList(NAMES),
    default=",".join(DEFAULTS.activations),
    show_default=True,
)
@click.option(
    "--variants",
    type=NameList(tuple(PRESETS)),
    default=",".join(DEFAULTS.variants),
    show_default=True,
    help="paper: incoming distance; joint: input and output "
    "vectors; gauge: incoming distance on the unit sphere (homogeneous g only).",
)
@click.option("--pairs", type=PairList(), default=None, help="e.g. 0-1,2-4 (default: all 10).")
@path_options(DEFAULTS.path)
@click.option(
    "--samples", type=click.IntRange(1, 10_000_000), default=DEFAULTS.samples, show_default=True
)
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=DEFAULTS.seed, show_default=True)
@click.option(
    "--certify/--no-certify",
    default=DEFAULTS.certify,
    show_default=True,
    help="Compute every path twice more, with twice the budget and a 100x tighter tolerance "
    "and with other rounding, and "
    "mark it certified when its barrier, the barrier's position and the loss at the "
    "permutation point agree to 1% (three times the work).",
)
@workers_option(DEFAULTS.workers)
@scheduler_option
@progress_option
def cmd(
    out, activations, variants, pairs, samples, seed, certify, workers, scheduler, progress, **path
):
    """Merge every pair of the toy teacher's hidden layer (paper Fig. 2) and write figures.

    Writes into OUT: paths/<activation>-<variant>-pair<lm>/ (per-step checkpoint, steps.csv,
    thetas.pt, summary.json), summary.csv and summary.json (one row per path: barrier, where it
    sits, escape flags, saddle index at the permutation point), fig2_<activation>_<variant>.png,
    fig4_output_shift.png and, when a barrier is off the permutation point, fig5_*.png.
    """
    cfg = ToyConfig(
        activations=tuple(activations),
        variants=tuple(variants),
        pairs=pairs,
        samples=samples,
        seed=seed,
        path=path_config(DEFAULTS.path, path),
        certify=certify,
        workers=workers,
    )
    try:
        rows = run_toy(cfg, out, progress=progress, scheduler=scheduler)
        figures = toy_figures(out)
    except (ResultsFolderError, SweepError) as exc:
        raise CommandError(str(exc)) from exc
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(table(rows))
    click.echo(f"\nwrote {out / 'summary.csv'} and {len(figures)} figures:")
    for f in figures:
        click.echo(f"  {f}")


def table(rows: list[ToyRow]) -> str:
    """The summary as printed: one line per path."""
    header = (
        "act", "variant", "pair", "barrier", "at pp", "b.conv", "L(pp)", "chan", "resc",
        "lin", "else", "uncl", "partner", "conv", "worst |g|", "index", "cert", "spread",
    )  # fmt: skip
    lines = [
        (
            r.activation,
            r.variant,
            r.pair,
            f"{r.barrier:.3e}",
            yes(r.barrier_at_permutation_point),
            yes(r.barrier_converged),
            f"{r.loss_permutation_point:.3e}",
            yes(r.flags.get("flag_channel")),
            yes(r.flags.get("flag_rescaling")),
            yes(r.flags.get("flag_linearization")),
            yes(r.flags.get("flag_elsewhere")),
            yes(r.flags.get("flag_unclassified")),
            r.partner_channel or "-",
            str(r.not_converged == 0),
            f"{r.worst_grad_inf:.1e}",
            f"{r.saddle_negative}/{r.saddle_zero}",
            "-" if r.certified is None else yes(r.certified),
            "-" if r.certify_spread is None else f"{r.certify_spread:.0e}",
        )  # fmt: skip
        for r in rows
    ]
    return format_table(header, lines, left=3)
