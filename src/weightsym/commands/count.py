"""`weightsym count`: the table of T(K, n), Prop. 3 of the paper, with its lower bound."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import click

from weightsym import counting, io
from weightsym.commands import params

SHORT_FRACTION = 16
"""Longest exact fraction (in characters) the printed table shows; the CSV always has it."""

CSV_COLUMNS = ("K", "n", "T_exact", "T", "bound_exact", "bound", "T_over_bound")


def _float_text(value: Fraction | None, spec: str = ".6g", missing: str = "-") -> str:
    """``value`` as a float formatted with ``spec`` ('' = full precision), 'inf' on overflow."""
    if value is None:
        return missing
    try:
        return format(float(value), spec)
    except OverflowError:
        return "inf"


def _full_float(value: Fraction | None) -> str:
    """Full-precision float text for the CSV; an empty cell for a missing value."""
    return _float_text(value, spec="", missing="")


def format_table(rows: list[dict]) -> str:
    """The rows of :func:`weightsym.counting.table` as an aligned text table."""
    header = ("K", "n", "T(K,n)", "T exact", "bound C(n-K,K)/2^K", "T/bound")
    lines = []
    for row in rows:
        exact = str(row["T"])
        lines.append(
            (
                str(row["K"]),
                str(row["n"]),
                _float_text(row["T"]),
                exact if len(exact) <= SHORT_FRACTION else "",
                _float_text(row["bound"]),
                _float_text(row["ratio"]),
            )
        )
    return params.format_table(header, lines, sep="  ", rule=False)


def write_csv(rows: list[dict], path: Path) -> None:
    """Write the rows as CSV, atomically (:func:`weightsym.io.atomic_write_csv`)."""
    records = [
        {
            "K": row["K"],
            "n": row["n"],
            "T_exact": str(row["T"]),
            "T": _full_float(row["T"]),
            "bound_exact": str(row["bound"]),
            "bound": _full_float(row["bound"]),
            "T_over_bound": _full_float(row["ratio"]),
        }
        for row in rows
    ]
    io.atomic_write_csv(path, records, columns=list(CSV_COLUMNS))


@click.command("count")
@click.option(
    "--K",
    "-k",
    "Ks",
    type=params.IntList(unique=False),
    default="1-4",
    show_default=True,
    help="Orders K: a list and/or ranges, e.g. '1-4' or '1,2,5'.",
)
@click.option(
    "--n",
    "ns",
    type=params.IntList(unique=False),
    default="8,16,32,64,1000",
    show_default=True,
    help="Layer widths n: a list and/or ranges, e.g. '4,8,16,1000' or '4-10'.",
)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the table to this CSV file (atomically; exact fractions included).",
)
def cmd(Ks: list[int], ns: list[int], csv_path: Path | None) -> None:
    """Print T(K, n), the number of K-th order permutation points of a width-n layer per global
    minimum (Prop. 3 (i)), next to the paper's lower bound C(n-K, K) / 2^K (Prop. 3 (ii)).

    Pairs with n <= K have no K-th order point and are left out.
    """
    try:
        rows = counting.table(Ks, ns)
    except (TypeError, ValueError) as error:
        raise click.UsageError(str(error)) from error
    if not rows:
        raise click.UsageError("no pair with n >= K + 1 among --K and --n: nothing to count")
    click.echo(format_table(rows))
    if csv_path is not None:
        write_csv(rows, csv_path)
        click.echo(f"wrote {len(rows)} rows to {csv_path}")
