"""`weightsym verify`: parse the options and run :func:`weightsym.experiments.verify.run_verify`.

The check itself (network, fit, claims, report) is :mod:`weightsym.experiments.verify`; its
setup is docs/theory.md section 7.3. The exit code is 0 when every claim comes out as
docs/theory.md section 2 says, else 1.
"""

from __future__ import annotations

import click

from weightsym import activations
from weightsym.experiments.verify import MIN_SAMPLES, NoExampleError, VerifyConfig, run_verify


class SampleCount(click.IntRange):
    """An int >= :data:`~weightsym.experiments.verify.MIN_SAMPLES`, refused with the reason."""

    def __init__(self) -> None:
        super().__init__(min=MIN_SAMPLES)

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            self.fail(
                f"{exc.message.rstrip('.')}: with fewer samples the smaller network can fit "
                "them so that no error reaches its hidden layers, and every equal-loss "
                "direction is then critical (docs/theory.md section 7.3)",
                param,
                ctx,
            )


@click.command("verify")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=VerifyConfig.seed,
    show_default=True,
    help="Seed of teacher and data.",
)
@click.option(
    "--activation",
    type=click.Choice(activations.NAMES),
    default=VerifyConfig.activation,
    show_default=True,
    help="Hidden activation (a smooth one for the Hessian claims).",
)
@click.option(
    "--samples",
    type=SampleCount(),
    default=VerifyConfig.samples,
    show_default=True,
    help=f"Number of training inputs (at least {MIN_SAMPLES}).",
)
def cmd(seed: int, activation: str, samples: int) -> None:
    """Check every claim of docs/theory.md section 2 (Defs. 4, 6 and Props. 1, 2 of the paper,
    as printed and as corrected) on a 3-3-3-1-2 network, printing the figure each one reached."""
    try:
        report = run_verify(VerifyConfig(seed, activation, samples), click.echo)
    except NoExampleError as exc:
        raise click.ClickException(f"{exc}: try another --seed or --samples") from exc
    if not report.as_expected:
        raise click.exceptions.Exit(1)
