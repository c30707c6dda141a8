"""Hidden-layer activations g with their first and second derivatives.

The exact Hessian in :mod:`weightsym.losses` needs g, g' and g'' in closed form; each entry
here gives all three, consistent with what PyTorch autograd differentiates (for example
``softplus`` follows ``torch.nn.functional.softplus`` with its linear regime above 20, and ReLU
has g'' = 0 and g'(0) = 0 as autograd has).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

Fn = Callable[[Tensor], Tensor]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SOFTPLUS_THRESHOLD = 20.0  # torch.nn.Softplus default: linear above it
LEAKY_SLOPE = 0.01  # torch.nn.LeakyReLU default


class Erf(nn.Module):
    """``torch.erf`` as a module, so that erf networks round-trip through ``nn.Sequential``."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.erf(x)


@dataclass(frozen=True)
class Activation:
    """An elementwise activation: value g, derivative g', second derivative g''."""

    name: str
    g: Fn
    dg: Fn
    d2g: Fn
    module: Callable[[], nn.Module]
    positively_homogeneous: bool = False


def _phi(x: Tensor) -> Tensor:
    return torch.exp(-0.5 * x * x) * _INV_SQRT2PI


def _Phi(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.erf(x / _SQRT2))


def _softplus_d(x: Tensor) -> Tensor:
    return torch.where(x > _SOFTPLUS_THRESHOLD, torch.ones_like(x), torch.sigmoid(x))


def _softplus_d2(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return torch.where(x > _SOFTPLUS_THRESHOLD, torch.zeros_like(x), s * (1 - s))


def _tanh_d(x: Tensor) -> Tensor:
    t = torch.tanh(x)
    return 1 - t * t


def _tanh_d2(x: Tensor) -> Tensor:
    t = torch.tanh(x)
    return -2 * t * (1 - t * t)


def _sigmoid_d(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return s * (1 - s)


def _sigmoid_d2(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return s * (1 - s) * (1 - 2 * s)


def _leaky(slope: float) -> Activation:
    return Activation(
        name="leaky_relu",
        g=lambda x: torch.nn.functional.leaky_relu(x, slope),
        dg=lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, slope)),
        d2g=torch.zeros_like,
        module=lambda: nn.LeakyReLU(slope),
        positively_homogeneous=True,
    )


_TABLE: dict[str, Activation] = {
    "relu": Activation(
        "relu",
        torch.relu,
        lambda x: (x > 0).to(x.dtype),
        torch.zeros_like,
        nn.ReLU,
        positively_homogeneous=True,
    ),
    "softplus": Activation(
        "softplus", torch.nn.functional.softplus, _softplus_d, _softplus_d2, nn.Softplus
    ),
    "tanh": Activation("tanh", torch.tanh, _tanh_d, _tanh_d2, nn.Tanh),
    "sigmoid": Activation("sigmoid", torch.sigmoid, _sigmoid_d, _sigmoid_d2, nn.Sigmoid),
    "gelu": Activation(
        "gelu",
        lambda x: x * _Phi(x),
        lambda x: _Phi(x) + x * _phi(x),
        lambda x: _phi(x) * (2 - x * x),
        nn.GELU,
    ),
    "erf": Activation(
        "erf",
        torch.erf,
        lambda x: (2 / math.sqrt(math.pi)) * torch.exp(-x * x),
        lambda x: (-4 / math.sqrt(math.pi)) * x * torch.exp(-x * x),
        Erf,
    ),
    "identity": Activation(
        "identity",
        lambda x: x,
        torch.ones_like,
        torch.zeros_like,
        nn.Identity,
        positively_homogeneous=True,
    ),
}

NAMES: tuple[str, ...] = tuple(sorted([*_TABLE, "leaky_relu"]))


def get(name: str, negative_slope: float = LEAKY_SLOPE) -> Activation:
    """The activation called ``name`` (one of :data:`NAMES`)."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a string, one of {NAMES}; got {type(name).__name__}")
    if name == "leaky_relu":
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
            raise TypeError(f"negative_slope must be a real number; got {negative_slope!r}")
        if not 0.0 <= negative_slope < 1.0:
            raise ValueError(f"negative_slope must lie in [0, 1); got {negative_slope!r}")
        return _leaky(float(negative_slope))
    if name not in _TABLE:
        raise ValueError(f"unknown activation {name!r}; expected one of {NAMES}")
    return _TABLE[name]


def from_module(module: nn.Module) -> tuple[str, float]:
    """(name, negative_slope) of an activation module, or a ValueError naming the module."""
    checks: list[tuple[type, str]] = [
        (nn.ReLU, "relu"),
        (nn.Tanh, "tanh"),
        (nn.Sigmoid, "sigmoid"),
        (nn.Identity, "identity"),
        (Erf, "erf"),
    ]
    for cls, name in checks:
        if type(module) is cls:
            return name, LEAKY_SLOPE
    if type(module) is nn.LeakyReLU:
        return "leaky_relu", float(module.negative_slope)
    if type(module) is nn.Softplus:
        if module.beta != 1 or module.threshold != _SOFTPLUS_THRESHOLD:
            raise ValueError("nn.Softplus is supported only with beta=1 and threshold=20")
        return "softplus", LEAKY_SLOPE
    if type(module) is nn.GELU:
        if module.approximate != "none":
            raise ValueError("nn.GELU is supported only with approximate='none'")
        return "gelu", LEAKY_SLOPE
    raise ValueError(
        f"unsupported activation module {module!r}; expected one of nn.ReLU, nn.LeakyReLU, "
        "nn.Softplus, nn.Tanh, nn.Sigmoid, nn.GELU, nn.Identity or weightsym.activations.Erf"
    )
