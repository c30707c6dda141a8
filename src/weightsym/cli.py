"""The ``weightsym`` command: toy, path, mnist, compare, count, verify."""

from __future__ import annotations

import importlib

import click

COMMANDS = {
    "toy": "Paper Figs. 2, 4, 5: permutation paths of the toy teacher.",
    "path": "A permutation path on your own saved nn.Sequential and data.",
    "mnist": "Paper Fig. 3: the MNIST student-teacher sweep.",
    "count": "Prop. 3: T(K, n), the number of K-th order permutation points per minimum.",
    "verify": "Check each claim of the paper (and our corrections) on a built network.",
    "compare": "Permutation path vs linear, Bezier, chain and NEB paths between partner minima.",
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (keeps `--help` fast)."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"weightsym.commands.{name}").cmd

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(n, h) for n, h in COMMANDS.items()], col_max=12)


@click.group(cls=LazyGroup)
@click.version_option(package_name="weightsym", prog_name="weightsym")
def main() -> None:
    """Weight-space symmetry in neural-network loss landscapes (Brea et al. 2019)."""


if __name__ == "__main__":
    main()
