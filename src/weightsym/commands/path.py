"""`weightsym path`: the permutation path on a user's own saved network and data."""

from __future__ import annotations

from pathlib import Path

import click

from weightsym.certify import certify_path
from weightsym.commands.params import (
    CommandError,
    PairList,
    out_option,
    path_config,
    path_options,
)
from weightsym.constraints import DISTANCES
from weightsym.io import CorruptFileError, ResultsFolderError
from weightsym.losses import KINDS, Loss
from weightsym.paths import PathConfig, PathSummary, find_path
from weightsym.userdata import load_data, load_network

DEFAULTS = PathConfig()


@click.command("path")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--layer",
    type=int,
    default=DEFAULTS.layer,
    show_default=True,
    help="Hidden layer k (1 = first hidden layer, as in the paper).",
)
@click.option(
    "--pair",
    type=PairList(),
    default=None,
    help="Neurons l-m (0-based); default: the most similar pair (cosine).",
)
@click.option("--loss", "kind", type=click.Choice(KINDS), default="mse", show_default=True)
@click.option(
    "--distance", type=click.Choice(DISTANCES), default=DEFAULTS.distance, show_default=True
)
@click.option(
    "--gauge/--no-gauge",
    default=DEFAULTS.gauge,
    show_default=True,
    help="Unit-sphere gauge (positively homogeneous activations only).",
)
@path_options(DEFAULTS)
@out_option("results/path")
@click.option(
    "--certify",
    is_flag=True,
    default=False,
    help="Compute the path twice more (twice the budget and a 100x tighter tolerance; other "
    "rounding) and say whether its "
    "barrier, the barrier's position and the loss at the permutation point agree to 1%.",
)
@click.option(
    "--trust-pickle",
    is_flag=True,
    default=False,
    help="Load MODEL with full unpickling (torch.load weights_only=False). RISK: this runs any "
    "code the file contains; use only for files from a source you trust. Without it only "
    "state dicts and nn.Sequential of supported layers load.",
)
def cmd(model, data, layer, pair, kind, distance, gauge, out, certify, trust_pickle, **options):
    """Merge two neurons of MODEL (a saved nn.Sequential) on DATA (X, Y in .pt or .npz).

    Writes OUT/steps.csv (one row per step), OUT/thetas.pt (parameters along the first half),
    OUT/summary.json (barrier, escape flags, configuration) and the per-step checkpoint that a
    rerun resumes from.
    """
    if pair is not None and len(pair) != 1:
        raise click.BadParameter(
            f"expected one pair l-m such as 0-1; got {pair}", param_hint="--pair"
        )
    try:
        net, theta = load_network(model, trust_pickle=trust_pickle)
        X, Y = load_data(data)
        loss = Loss(net, X, Y, kind=kind)
        net.check_hidden_layer(layer, "--layer")
        base = DEFAULTS.replace(
            layer=layer, pair=pair[0] if pair else None, distance=distance, gauge=gauge
        )
        config = path_config(base, options)
        certificate = certify_path(loss, theta, config=config, out=out) if certify else None
        path = find_path(loss, theta, config, out=out, progress=not certify)
    except ResultsFolderError as exc:
        raise CommandError(str(exc)) from exc
    except (ValueError, TypeError, FileNotFoundError, CorruptFileError) as exc:
        raise click.UsageError(str(exc)) from exc
    s = path.summary()
    b = s.barrier
    l, m = path.pair
    click.echo(
        f"pair ({l}, {m}) of layer {layer}: barrier {b.loss:.6e} at t = {b.t:.3f} "
        f"({'at' if b.at_point else 'not at'} the permutation point"
        f"{'' if b.converged else '; its step did not converge'}); loss at the point "
        f"{s.loss_permutation_point:.6e}"
    )
    flags = ", ".join(f"{k.removeprefix('flag_')} {v}" for k, v in s.flags.items())
    click.echo(
        f"converged at every step: {s.all_converged} (worst grad_inf {s.worst_grad_inf:.1e}); "
        f"flags: {flags}"
    )
    if path.config.sweep_back:
        click.echo(f"swept back: {len(s.swept_steps)} steps lowered {list(s.swept_steps)}")
    for line in channel_lines(s):
        click.echo(line)
    if certificate is not None:
        click.echo(certificate.reason)
    click.echo(f"wrote {out}")


def channel_lines(s: PathSummary) -> list[str]:
    """What the path says of channels: the pair's 1/d channel and its limit, and a partner
    channel with the limit of its step (docs/certification.md section 1); none if neither."""
    lines = []
    if s.channel_limit is not None:
        c = s.channel_limit
        lines.append(
            f"pair channel (|w_m - w_l| ~ kappa / d): tends to {c.loss:.6e} "
            f"({'converged' if c.converged else 'not converged: an upper bound'})"
        )
    pc = s.partner_channel
    if pc is not None:
        p, j = pc.partner
        line = f"partner channel: neuron {j} onto {p} on {len(pc.steps)} descent steps"
        if pc.limit is not None:
            line += (
                f"; at step {pc.limit_index} it tends to {pc.limit.loss:.6e} "
                f"({'converged' if pc.limit.converged else 'not converged: an upper bound'}; "
                f"from {pc.limit.start_loss:.6e})"
            )
        lines.append(line)
    return lines
