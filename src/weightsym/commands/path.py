"""`weightsym path`: the permutation path on a user's own saved network and data."""

from __future__ import annotations

from pathlib import Path

import click

from weightsym.commands.params import patience_option
from weightsym.constraints import DISTANCES
from weightsym.losses import KINDS, Loss
from weightsym.paths import SOLVERS, find_path
from weightsym.store import CorruptFileError
from weightsym.symmetry import most_similar_pair
from weightsym.userdata import load_data, load_network


@click.command("path")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--layer",
    type=int,
    default=1,
    show_default=True,
    help="Hidden layer k (1 = first hidden layer, as in the paper).",
)
@click.option(
    "--pair",
    type=str,
    default=None,
    help="Neurons l-m (0-based); default: the most similar pair (cosine).",
)
@click.option("--loss", "kind", type=click.Choice(KINDS), default="mse", show_default=True)
@click.option("--distance", type=click.Choice(DISTANCES), default="incoming", show_default=True)
@click.option(
    "--gauge/--no-gauge",
    default=False,
    show_default=True,
    help="Unit-sphere gauge (positively homogeneous activations only).",
)
@click.option("--solver", type=click.Choice(SOLVERS), default="auto", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True)
@click.option(
    "--ratio",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=1e-4,
    show_default=True,
)
@click.option(
    "--tol", type=click.FloatRange(min=0, min_open=True), default=1e-12, show_default=True
)
@click.option(
    "--max-iter",
    type=click.IntRange(min=1),
    default=None,
    help="Solver iterations per step (default: the solver's own step budget).",
)
@patience_option(default=0)
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("results/path"), show_default=True
)
def cmd(
    model,
    data,
    layer,
    pair,
    kind,
    distance,
    gauge,
    solver,
    steps,
    ratio,
    tol,
    max_iter,
    patience,
    out,
):
    """Merge two neurons of MODEL (a saved nn.Sequential) on DATA (X, Y in .pt or .npz).

    Writes OUT/steps.csv (one row per step), OUT/thetas.pt (parameters along the first half),
    OUT/summary.json (barrier, escape flags, configuration) and the per-step checkpoint that a
    rerun resumes from.
    """
    try:
        net, theta = load_network(model)
        X, Y = load_data(data)
        loss = Loss(net, X, Y, kind=kind)
        net.check_hidden_layer(layer, "--layer")
        if pair is None:
            l, m = most_similar_pair(net, theta, layer)
        else:
            try:
                l, m = (int(x) for x in pair.split("-"))
            except ValueError:
                raise click.BadParameter(
                    f"expected l-m such as 0-1; got {pair!r}", param_hint="--pair"
                ) from None
        path = find_path(
            loss,
            theta,
            layer,
            (l, m),
            steps=steps,
            ratio=ratio,
            distance=distance,
            gauge=gauge,
            solver=solver,
            tol=tol,
            max_iter=max_iter,
            patience=patience or None,
            out=out,
            progress=True,
        )
    except (ValueError, TypeError, FileNotFoundError, CorruptFileError) as exc:
        raise click.UsageError(str(exc)) from exc
    s = path.summary()
    click.echo(
        f"pair ({l}, {m}) of layer {layer}: barrier {s['barrier']:.6e} at t = "
        f"{s['barrier_t']:.3f} ({'at' if s['barrier_at_permutation_point'] else 'not at'} "
        f"the permutation point{'' if s['barrier_converged'] else '; its step did not converge'}"
        f"); loss at the point {s['loss_permutation_point']:.6e}"
    )
    click.echo(
        f"converged at every step: {s['all_converged']} (worst grad_inf "
        f"{s['worst_grad_inf']:.1e}); flags: channel {s['flag_channel']}, rescaling "
        f"{s['flag_rescaling']}, elsewhere {s['flag_elsewhere']}"
    )
    click.echo(f"wrote {out}")
