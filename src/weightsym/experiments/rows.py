"""Flat CSV rows of typed records whose ``flags`` field holds the escape flags.

A record (a frozen dataclass deriving from :class:`FlagRow`) with a field
``flags: dict[str, bool]`` (or counts) is written as one column per name of
:data:`weightsym.diagnostics.FLAGS`, in place of that field, so that every escape flag is a
column of ``summary.csv`` and ``table.csv`` (docs/theory.md section 5).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from weightsym import diagnostics as diag

R = TypeVar("R", bound="FlagRow")


class FlagRow:
    """Base of the row dataclasses with a ``flags`` field: CSV columns and rows both ways."""

    @classmethod
    def columns(cls) -> list[str]:
        """The fields in order, with ``flags`` replaced by the names of the flags."""
        names = [f.name for f in dataclasses.fields(cls)]
        i = names.index("flags")
        return names[:i] + list(diag.FLAGS) + names[i + 1 :]

    def as_row(self) -> dict[str, Any]:
        """The record as a row with the columns of :meth:`columns`, in that order."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        flags = fields.pop("flags")
        return {c: flags[c] if c in diag.FLAGS else fields[c] for c in self.columns()}

    @classmethod
    def from_row(cls: type[R], row: Mapping[str, Any]) -> R:
        """The inverse of :meth:`as_row` (e.g. for a row read back from JSON).

        Raises:
            KeyError: a column of :meth:`columns` is missing from ``row``.
        """
        names = [f.name for f in dataclasses.fields(cls) if f.name != "flags"]
        return cls(**{n: row[n] for n in names}, flags={f: row[f] for f in diag.FLAGS})
