"""click parameter types and options shared by the commands."""

from __future__ import annotations

import click


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
        return names


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
            if a == b:
                self.fail(f"pair {part!r} names the same neuron twice (l == m)", param, ctx)
            pairs.append((a, b))
        return pairs


def patience_option(default: int):
    """``--patience`` (trust-region path solvers; 0: off), see :func:`weightsym.find_path`."""
    return click.option(
        "--patience",
        type=click.IntRange(min=0),
        default=default,
        show_default=True,
        help="Trust-region solvers: end a step after this many accepted iterations that did not "
        "halve grad_inf (a walk along a channel or around a kink, marked 'no progress'); 0: "
        "off, every such step runs to its iteration budget.",
    )
