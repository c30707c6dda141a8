"""Input checks shared by every module: each error names the argument and what was expected."""

from __future__ import annotations

import torch
from torch import Tensor


def check_finite(name: str, x: Tensor) -> Tensor:
    """Raise ValueError if ``x`` holds NaN or inf."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {bad} NaN or inf value(s); expected finite numbers")
    return x


def check_vector(x: Tensor, length: int, name: str = "theta") -> Tensor:
    """A finite 1-D floating tensor of the given length."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() != 1 or x.shape[0] != length:
        raise ValueError(f"{name} must be a 1-D tensor of length {length}; got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {x.dtype}")
    return check_finite(name, x)
