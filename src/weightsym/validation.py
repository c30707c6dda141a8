"""Input checks shared by every module: each error names the argument and what was expected."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def check_finite(name: str, x: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """Return ``x`` unchanged if all its entries are finite.

    Integer and boolean tensors and arrays are finite by type and pass unchecked.

    Args:
        name: the argument's name, used in the message.
        x: a torch tensor or numpy array.

    Returns:
        ``x`` itself.

    Raises:
        ValueError: ``x`` holds NaN or inf; the message names ``name``, gives the number of
            NaN and of inf entries and the index of the first one.
    """
    if isinstance(x, Tensor):
        if not (x.is_floating_point() or x.is_complex()):
            return x
        bad = ~torch.isfinite(x.detach())
        if not bool(bad.any()):
            return x
        n_nan = int(torch.isnan(x.detach()).sum())
        first = tuple(int(v) for v in torch.nonzero(bad)[0])
    else:
        arr = np.asarray(x)
        if not np.issubdtype(arr.dtype, np.inexact):
            return x
        bad = ~np.isfinite(arr)
        if not bad.any():
            return x
        n_nan = int(np.isnan(arr).sum())
        first = tuple(int(v) for v in np.argwhere(bad)[0])
    n_bad = int(bad.sum())
    raise ValueError(
        f"{name} contains {n_bad} NaN or inf value(s) ({n_nan} NaN, {n_bad - n_nan} inf), the "
        f"first at index {first}; expected finite numbers"
    )


def check_vector(x: Tensor, length: int, name: str = "theta") -> Tensor:
    """A finite 1-D floating tensor of the given length."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() != 1 or x.shape[0] != length:
        raise ValueError(f"{name} must be a 1-D tensor of length {length}; got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {x.dtype}")
    return check_finite(name, x)


def check_dtype(name: str, x: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """Raise TypeError unless ``x`` has ``dtype`` (float64: the package computes in it and
    converts nothing silently); the message says how to convert."""
    if x.dtype != dtype:
        kind = "complex numbers are not supported" if x.is_complex() else f"got {x.dtype}"
        raise TypeError(
            f"{name} must be a {dtype} tensor ({kind}); convert real data with "
            f"{name}.to(torch.float64)"
        )
    return x
