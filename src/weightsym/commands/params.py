"""click parameter types, shared options and the text-table printer of the commands.

Each option that several commands take is defined here once, with its default read from the
configuration it fills (a :class:`weightsym.paths.PathConfig` template), so a default is never
restated in a command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from weightsym.paths import SOLVERS, PathConfig
from weightsym.paths.config import MAX_STEPS


class NameList(click.ParamType):
    """Comma-separated names, each checked against ``choices``: ``relu,softplus``."""

    name = "names"

    def __init__(self, choices: tuple[str, ...]) -> None:
        self.choices = choices

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return list(value)
        names = [v.strip() for v in str(value).split(",") if v.strip()]
        for n in names:
            if n not in self.choices:
                self.fail(f"{n!r} is not one of {', '.join(self.choices)}", param, ctx)
        if not names:
            self.fail("expected at least one name", param, ctx)
        return list(dict.fromkeys(names))


class IntList(click.ParamType):
    """Comma-separated ints and inclusive ranges: ``10,15,20``, ``0-5``, ``1-3,10``.

    A range must not run backwards; with ``unique`` repeated values are dropped (first kept).
    """

    name = "ints"

    def __init__(self, unique: bool = True, max_count: int = 100_000) -> None:
        self.unique = unique
        self.max_count = max_count

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return list(value)
        values: list[int] = []
        for part in str(value).split(","):
            part = part.strip()
            try:
                if "-" in part[1:]:
                    lo, hi = (int(x) for x in part.split("-", 1))
                    if hi < lo or hi - lo >= self.max_count:
                        raise ValueError
                    values.extend(range(lo, hi + 1))
                else:
                    values.append(int(part))
            except ValueError:
                self.fail(
                    f"{part!r} in {value!r} is not an int or a range like 1-4 (increasing; "
                    "expected e.g. '1-4' or '4,8,16,1000')",
                    param,
                    ctx,
                )
        if not values:
            self.fail("expected at least one value", param, ctx)
        if len(values) > self.max_count:
            self.fail(f"at most {self.max_count} values; got {len(values)}", param, ctx)
        return list(dict.fromkeys(values)) if self.unique else values


class PairList(click.ParamType):
    """Neuron pairs ``l-m`` separated by commas: ``0-1,2-4`` (0-based, as everywhere)."""

    name = "pairs"

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return [tuple(p) for p in value]
        pairs = []
        for part in str(value).split(","):
            try:
                a, b = (int(x) for x in part.strip().split("-"))
            except ValueError:
                self.fail(f"{part!r} is not a pair like 0-1 (expected e.g. '0-1,2-4')", param, ctx)
            if a < 0 or b < 0:
                self.fail(f"pair {part!r}: neurons are numbered from 0", param, ctx)
            if a == b:
                self.fail(f"pair {part!r} names the same neuron twice (l == m)", param, ctx)
            pairs.append((a, b))
        return list(dict.fromkeys(pairs))


_PATH_HELP = {
    "steps": "S: log-spaced distances after d_0.",
    "ratio": "Last d as a fraction of d_0.",
    "solver": "Path solver per step (paper-gd: the paper's gradient descent).",
    "tol": "grad_inf tolerance at every step.",
    "max_iter": "Solver iterations per step (a budget: steps that end on it are marked not "
    "converged, with the reason).",
    "patience": "Trust-region solvers: end a step after this many accepted iterations that did "
    "not halve grad_inf (a walk along a channel or around a kink, marked 'no progress'); 0: "
    "off, every such step runs to its iteration budget.",
    "varpro": "Solve each step with the output layer eliminated by least squares (variable "
    "projection; losses mse and nmse only). Loss and grad_inf are reported in the original chart.",
    "whiten": "Solve each step with the first layer in whitened input variables (pairs in "
    "layers >= 2 only). Loss and grad_inf are reported in the original chart.",
    "channel": "Solve and extrapolate each step with the pair's output weights in channel "
    "coordinates (w_l + w_m, d (w_m - w_l)), finite along a channel (incoming distance "
    "without the gauge; other variants ignore it). Loss and grad_inf as in the original chart.",
    "partner_restart": "Solve a step again that ended not converged on a channel of a third "
    "neuron j onto a partner p, from the same network with j pulled back to 1% of |vartheta_p| "
    "from p, and keep the lower of the two (docs/certification.md section 1).",
    "sweep_back": "After the descent, solve every step again from the solution of the step "
    "after it, from the merge backwards, and keep the lower of the two: a lower branch found "
    "late is carried back (docs/certification.md section 5).",
}


def path_options(template: PathConfig) -> Callable[[Callable], Callable]:
    """``--steps --ratio --solver --tol --max-iter --patience --varpro/--no-varpro
    --whiten/--no-whiten --channel/--no-channel --partner-restart/--no-partner-restart
    --sweep-back/--no-sweep-back``,
    defaults from ``template``.

    The command receives them as keyword arguments of the same names (``max_iter``,
    ``patience`` with 0 for off); :func:`path_config` turns them back into a config.
    """
    options = [
        click.option(
            "--steps", type=click.IntRange(1, MAX_STEPS), default=template.steps,
            show_default=True, help=_PATH_HELP["steps"],
        ),
        click.option(
            "--ratio", type=click.FloatRange(0, 1, min_open=True, max_open=True),
            default=template.ratio, show_default=True, help=_PATH_HELP["ratio"],
        ),
        click.option(
            "--solver", type=click.Choice(SOLVERS), default=template.solver,
            show_default=True, help=_PATH_HELP["solver"],
        ),
        click.option(
            "--tol", type=click.FloatRange(min=0, min_open=True), default=template.tol,
            show_default=True, help=_PATH_HELP["tol"],
        ),
        click.option(
            "--max-iter", type=click.IntRange(min=1), default=template.max_iter,
            show_default=template.max_iter is not None,
            help=_PATH_HELP["max_iter"]
            + ("" if template.max_iter is not None else " Default: the solver's step budget."),
        ),
        click.option(
            "--patience", type=click.IntRange(min=0), default=template.patience or 0,
            show_default=True, help=_PATH_HELP["patience"],
        ),
        click.option(
            "--varpro/--no-varpro", default=template.varpro, show_default=True,
            help=_PATH_HELP["varpro"],
        ),
        click.option(
            "--whiten/--no-whiten", default=template.whiten, show_default=True,
            help=_PATH_HELP["whiten"],
        ),
        click.option(
            "--channel/--no-channel", default=template.channel, show_default=True,
            help=_PATH_HELP["channel"],
        ),
        click.option(
            "--partner-restart/--no-partner-restart", default=template.partner_restart,
            show_default=True, help=_PATH_HELP["partner_restart"],
        ),
        click.option(
            "--sweep-back/--no-sweep-back", default=template.sweep_back,
            show_default=True, help=_PATH_HELP["sweep_back"],
        ),
    ]  # fmt: skip

    def decorate(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


PATH_OPTION_NAMES = (
    "steps", "ratio", "solver", "tol", "max_iter", "patience", "varpro", "whiten", "channel",
    "partner_restart", "sweep_back",
)  # fmt: skip


def path_config(template: PathConfig, values: dict[str, Any]) -> PathConfig:
    """``template`` with the values of :func:`path_options` (popped from ``values``)."""
    changes = {name: values.pop(name) for name in PATH_OPTION_NAMES}
    changes["patience"] = changes["patience"] or None
    return template.replace(**changes)


def workers_option(default: int) -> Callable[[Callable], Callable]:
    """``--workers`` (processes of the local sweep)."""
    return click.option(
        "--workers", type=click.IntRange(1, 256), default=default, show_default=True,
        help="Worker processes of the local sweep.",
    )  # fmt: skip


progress_option = click.option("--progress/--no-progress", default=True, show_default=True)


def format_table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    left: int = 0,
    sep: str = " ",
    rule: bool = True,
) -> str:
    """An aligned text table: the first ``left`` columns left-aligned, the rest right-aligned,
    cells joined by ``sep``, with a rule under the header if ``rule``."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return sep.join(
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
        ).rstrip()

    head = line(cells[0])
    return "\n".join([head] + ["-" * len(head)] * rule + [line(r) for r in cells[1:]])


def yes(flag: Any) -> str:
    """'yes' for a true flag, '-' otherwise (table cells)."""
    return "yes" if flag else "-"


class OutFolder(click.ParamType):
    """A results folder: a non-empty path (``--out ""`` would silently mean the current
    directory)."""

    name = "folder"

    def convert(self, value, param, ctx):
        if isinstance(value, Path):
            return value
        if not str(value).strip():
            self.fail("expected a folder name; got an empty string", param, ctx)
        return Path(value)


def out_option(default: str) -> Callable[[Callable], Callable]:
    """``--out`` (a results folder; resumed when it holds our marker)."""
    return click.option(
        "--out", type=OutFolder(), default=default, show_default=True,
        help="Results folder (resumed if it is one of ours; a foreign non-empty folder is "
        "refused).",
    )  # fmt: skip


class CommandError(click.ClickException):
    """A run that could not be done (a folder in use, a full disk ...): one line, exit code 2."""

    exit_code = 2


scheduler_option = click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="A running Dask scheduler (tcp://host:port) to run the sweep on; default: "
    "$DASK_SCHEDULER_ADDRESS if set, else a local cluster of --workers processes "
    "(docs/sweeps.md).",
)
