"""`weightsym compare`: the permutation path next to the straight line, the trained Bezier curve
and polygonal chain, and the nudged elastic band, between theta* and its partner."""

from __future__ import annotations

from pathlib import Path

import click

from weightsym.activations import NAMES
from weightsym.commands.params import (
    CommandError,
    PairList,
    format_table,
    out_option,
    path_config,
    path_options,
    progress_option,
    yes,
)
from weightsym.experiments.compare import CompareConfig, CompareResult, run_compare
from weightsym.experiments.toy import ACTIVATIONS, ToyConfig, toy_problem
from weightsym.io import CorruptFileError, ResultsFolderError
from weightsym.losses import KINDS, Loss
from weightsym.paths import PRESETS
from weightsym.userdata import load_data, load_network

DEFAULTS = CompareConfig()
TOY = ToyConfig()


@click.command("compare")
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.argument("data", required=False, type=click.Path(path_type=Path))
@out_option("results/compare")
@click.option(
    "--activation",
    type=click.Choice(NAMES),
    default=None,
    help=f"The toy teacher's activation [default: {ACTIVATIONS[0]}]; not with MODEL.",
)
@click.option(
    "--pair",
    type=PairList(),
    default="-".join(map(str, DEFAULTS.pair)),
    show_default=True,
    help="Neurons l-m (0-based) whose swap gives the partner minimum.",
)
@click.option(
    "--layer",
    type=int,
    default=DEFAULTS.layer,
    show_default=True,
    help="Hidden layer k of the pair (1 = first hidden layer).",
)
@click.option(
    "--variant",
    type=click.Choice(tuple(PRESETS)),
    default=DEFAULTS.variant,
    show_default=True,
    help="The permutation path's variant.",
)
@path_options(DEFAULTS.path)
@click.option(
    "--images",
    type=click.IntRange(3, 10_000),
    default=DEFAULTS.images,
    show_default=True,
    help="Images of the elastic band, endpoints included.",
)
@click.option(
    "--points",
    type=click.IntRange(2, 100_000),
    default=DEFAULTS.points,
    show_default=True,
    help="Points at which the line and the trained curves are evaluated.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**63 - 1),
    default=DEFAULTS.seed,
    show_default=True,
    help="Seed of the Bezier curve's and the chain's initial bend.",
)
@click.option(
    "--bend-iter",
    type=click.IntRange(min=0),
    default=DEFAULTS.bend_iter,
    show_default=True,
    help="L-BFGS iterations at most for a curve's bend.",
)
@click.option(
    "--band-iter",
    type=click.IntRange(min=0),
    default=DEFAULTS.band_iter,
    show_default=True,
    help="L-BFGS iterations at most for the elastic band.",
)
@click.option("--loss", "kind", type=click.Choice(KINDS), default="mse", show_default=True)
@click.option(
    "--trust-pickle",
    is_flag=True,
    default=False,
    help="Load MODEL with full unpickling; RISK: runs any code the file holds (as in "
    "`weightsym path`).",
)
@progress_option
def cmd(model, data, out, activation, pair, kind, trust_pickle, progress, **settings):  # fmt: skip
    """Compare paths between theta* and sigma_{l<->m}(theta*) on the toy teacher, or on MODEL
    (a saved nn.Sequential) with DATA (X, Y in .pt or .npz), as for `weightsym path`.

    Path types: the permutation path, the straight line, the quadratic Bezier curve and the
    polygonal chain with one trained bend, and the nudged elastic band with a climbing image,
    refined to a saddle with the exact Hessian. Writes into OUT: table.csv and summary.json
    (per path type: barrier under each definition, absolute and relative; its position in
    normalised arc length; converged or not; the saddle certificate; distances from the
    permutation point), compare.png (loss against normalised arc length), and one folder per
    path type, from which a rerun resumes.
    """
    if len(pair) != 1:
        raise click.BadParameter(
            f"expected one pair l-m such as 0-1; got {pair}", param_hint="--pair"
        )
    if (model is None) != (data is None):
        raise click.UsageError("give MODEL and DATA together, or neither for the toy teacher")
    if model is not None and activation is not None:
        raise click.UsageError("--activation chooses the toy teacher's g; MODEL brings its own")
    if model is None and trust_pickle:
        raise click.UsageError("--trust-pickle applies to a MODEL file only")
    try:
        if model is None:
            act = activation or ACTIVATIONS[0]
            toy, theta = toy_problem(act, TOY)
            loss = Loss(toy.net, toy.X, toy.Y, kind=kind)
            about = {"toy": {"activation": act, "samples": TOY.samples, "seed": TOY.seed}}
        else:
            net, theta = load_network(model, trust_pickle=trust_pickle)
            loss = Loss(net, *load_data(data), kind=kind)
            about = {"model": str(model), "data": str(data)}
        loss.net.check_hidden_layer(settings["layer"], "--layer")
        template = path_config(DEFAULTS.path, settings)  # pops the permutation path's options
        cfg = CompareConfig(pair=pair[0], path=template, **settings)
        result = run_compare(loss, theta, cfg, out, progress=progress, about=about)
    except ResultsFolderError as exc:
        raise CommandError(str(exc)) from exc
    except (ValueError, TypeError, FileNotFoundError, CorruptFileError) as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(table(result))
    click.echo(f"\nwrote {out / 'table.csv'}, {out / 'summary.json'} and {result.figure}")


def table(result: CompareResult) -> str:
    """The rows as printed, and the verdict."""
    header = (
        "path", "max", "frankle", "entezari", "pos", "conv", "index/zero", "saddle |g|",
        "|top-pp|", "|saddle-pp|", "time s",
    )  # fmt: skip

    def num(x: float | None, fmt: str = ".3e") -> str:
        return "-" if x is None else format(x, fmt)

    lines = [
        (
            r.path,
            num(r.barriers.max),
            num(r.barriers.frankle),
            num(r.barriers.entezari),
            num(r.barriers.position, ".3f"),
            yes(r.converged),
            "-" if r.saddle_index is None else f"{r.saddle_index}/{r.saddle_zero}",
            num(r.saddle_grad_inf, ".1e"),
            num(r.top_to_pp, ".3g"),
            num(r.saddle_to_pp, ".3g"),
            f"{r.wall_time + r.refine_time:.1f}",
        )  # fmt: skip
        for r in result.rows
    ]
    v = result.verdict
    text = format_table(header, lines, left=1)
    text += f"\n\nlowest barrier: {v.lowest} (among converged paths: {v.lowest_converged})"
    if v.neb_saddle_loss is not None:
        text += (
            f"\nNEB's refined saddle: loss {v.neb_saddle_loss:.6e} (permutation point "
            f"{v.permutation_point_loss:.6e}), index {v.neb_saddle_index}, certified "
            f"{v.neb_saddle_certified}, {v.neb_saddle_to_pp:.3g} from the permutation point"
        )
    return text
