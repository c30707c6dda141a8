"""Subcommands of the `weightsym` command line (one click command per module, named `cmd`)."""
