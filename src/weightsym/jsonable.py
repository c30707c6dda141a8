"""Conversion of Python, numpy and torch values to plain JSON types (docs/theory.md section 11).

Results files hold JSON, which has no tuples, no numpy or torch numbers, no arrays and no NaN or
infinity; :func:`to_jsonable` converts the first four and says where the last two are.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["to_jsonable"]


def _where(location: str) -> str:
    return location or "the top level"


def _number(value: float, nonfinite: str, location: str) -> float | str | None:
    if math.isfinite(value):
        return value
    if nonfinite == "null":
        return None
    if nonfinite == "string":
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    raise ValueError(
        f"non-finite value {value} at {_where('obj' + location)} cannot be written as "
        "JSON; pass nonfinite='null' or 'string' to convert it"
    )


def _mapping(obj: Mapping, nonfinite: str, location: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(key, bool) or not isinstance(key, str | int | np.integer):
            raise TypeError(
                f"JSON object keys must be str or int; got {type(key).__name__} key "
                f"{key!r} at {_where('obj' + location)}"
            )
        skey = str(key)
        if skey in out:
            raise ValueError(f"duplicate key {skey!r} at {_where('obj' + location)}")
        out[skey] = to_jsonable(value, nonfinite, f"{location}[{skey!r}]")
    return out


def to_jsonable(obj: Any, nonfinite: str = "raise", _location: str = "") -> Any:
    """Convert ``obj`` to plain JSON types, keeping the order of dict keys.

    Tuples become lists; numpy and torch scalars become Python numbers; numpy arrays and torch
    tensors become (nested) lists; :class:`os.PathLike` becomes str; dict keys must be str
    (int keys are converted to str). NaN and infinities are not valid JSON: with
    ``nonfinite="raise"`` (default) they raise a :class:`ValueError` that names where they are
    (e.g. ``obj['loss'][3]``); with ``nonfinite="null"`` they become ``None``; with
    ``nonfinite="string"`` they become ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``.
    """
    if nonfinite not in ("raise", "null", "string"):
        raise ValueError(f"nonfinite must be 'raise', 'null' or 'string', got {nonfinite!r}")
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _number(float(obj), nonfinite, _location)
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        if obj.ndim == 0:
            return to_jsonable(obj.item(), nonfinite, _location)
        return [to_jsonable(v, nonfinite, f"{_location}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        return _mapping(obj, nonfinite, _location)
    if isinstance(obj, list | tuple):
        return [to_jsonable(v, nonfinite, f"{_location}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"cannot write {type(obj).__name__} at {_where('obj' + _location)} as JSON")
