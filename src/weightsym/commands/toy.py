"""`weightsym toy`: the paper's toy reproduction (Figs. 2, 4, 5) into a results folder."""

from __future__ import annotations

from pathlib import Path

import click

from weightsym.commands.params import NameList, PairList, patience_option
from weightsym.experiments.toy import ACTIVATIONS, VARIANTS, ToyConfig, run_toy
from weightsym.paths import SOLVERS
from weightsym.plots import toy_figures


@click.command("toy")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("results/toy"),
    show_default=True,
    help="Results folder (resumed if it exists).",
)
@click.option(
    "--activations",
    type=NameList(("relu", "leaky_relu", "softplus", "tanh", "sigmoid", "gelu", "erf")),
    default=",".join(ACTIVATIONS),
    show_default=True,
)
@click.option(
    "--variants",
    type=NameList(tuple(VARIANTS)),
    default="paper,joint,gauge",
    show_default=True,
    help="paper: incoming distance; joint: input and output "
    "vectors; gauge: incoming distance on the unit sphere (homogeneous g only).",
)
@click.option("--pairs", type=PairList(), default=None, help="e.g. 0-1,2-4 (default: all 10).")
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True)
@click.option(
    "--ratio",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=1e-4,
    show_default=True,
    help="Last d as a fraction of d_0.",
)
@click.option("--samples", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--solver", type=click.Choice(SOLVERS), default="auto", show_default=True)
@click.option(
    "--tol",
    type=click.FloatRange(min=0, min_open=True),
    default=1e-12,
    show_default=True,
    help="grad_inf tolerance at every step.",
)
@click.option(
    "--max-iter",
    type=click.IntRange(min=1),
    default=40,
    show_default=True,
    help="Solver iterations per step. Converging steps need 3-10; steps on a channel or a "
    "ReLU kink never converge and stop here, marked as such (a smaller budget is faster but "
    "leaves unconverged steps whose loss can pose as a barrier).",
)
@patience_option(default=10)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def cmd(
    out,
    activations,
    variants,
    pairs,
    steps,
    ratio,
    samples,
    seed,
    solver,
    tol,
    max_iter,
    patience,
    workers,
    progress,
):
    """Merge every pair of the toy teacher's hidden layer (paper Fig. 2) and write figures.

    Writes into OUT: paths/<activation>-<variant>-pair<lm>/ (per-step checkpoint, steps.csv,
    thetas.pt, summary.json), summary.csv and summary.json (one row per path: barrier, where it
    sits, escape flags, saddle index at the permutation point), fig2_<activation>_<variant>.png,
    fig4_output_shift.png and, when a barrier is off the permutation point, fig5_*.png.
    """
    cfg = ToyConfig(
        activations=activations,
        variants=variants,
        pairs=pairs,
        steps=steps,
        ratio=ratio,
        samples=samples,
        seed=seed,
        solver=solver,
        tol=tol,
        max_iter=max_iter,
        patience=patience or None,
        workers=workers,
    )
    try:
        rows = run_toy(cfg, out, progress=progress)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    figures = toy_figures(out)
    click.echo(_table(rows))
    click.echo(f"\nwrote {out / 'summary.csv'} and {len(figures)} figures:")
    for f in figures:
        click.echo(f"  {f}")


def _table(rows: list[dict]) -> str:
    head = (
        f"{'act':9} {'variant':7} {'pair':5} {'barrier':>10} {'at pp':>5} {'b.conv':>6} "
        f"{'L(pp)':>10} "
        f"{'chan':>4} {'resc':>4} {'else':>4} {'conv':>5} {'worst |g|':>9} {'index':>7}"
    )
    lines = [head, "-" * len(head)]
    yes = lambda b: "yes" if b else "-"  # noqa: E731
    for r in rows:
        lines.append(
            f"{r['activation']:9} {r['variant']:7} {r['pair']:5} {r['barrier']:10.3e} "
            f"{yes(r['barrier_at_permutation_point']):>5} {yes(r['barrier_converged']):>6} "
            f"{r['loss_permutation_point']:10.3e} "
            f"{yes(r['flag_channel']):>4} {yes(r['flag_rescaling']):>4} "
            f"{yes(r['flag_elsewhere']):>4} {r['not_converged'] == 0!s:>5} "
            f"{r['worst_grad_inf']:9.1e} {r['saddle_negative']:>3}/{r['saddle_zero']:<3}"
        )
    return "\n".join(lines)
