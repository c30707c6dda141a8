"""Loading a user's own network and data for ``weightsym path``.

A model file is read with ``torch.load(weights_only=True)``, which runs no code from the file:
only tensors, plain containers and the module classes of :data:`MODULE_CLASSES` (the layers
and activations an :class:`~weightsym.model.MLP` is made of) may appear in it. Three forms:

* a state dict: ``torch.save({"widths": [2, 5, 1], "activation": "tanh",
  "state_dict": seq.state_dict()}, path)`` (``"negative_slope"`` too for ``leaky_relu``);
* a flat parameter vector: ``{"widths": ..., "activation": ..., "theta": tensor}``;
* a whole ``nn.Sequential`` of ``nn.Linear`` and one supported activation module,
  ``torch.save(seq, path)``.

Anything else (a custom module class, any other Python object) is refused with a message that
says how to convert it. ``trust_pickle=True`` (``weightsym path --trust-pickle``) instead
unpickles the file with ``weights_only=False``, which runs whatever code the file holds: only
for files from a trusted source. Data are tensors ``X`` and ``Y`` in a ``.pt`` dictionary or an
``.npz`` file, also read without running code.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from weightsym.activations import Erf
from weightsym.io import CorruptFileError
from weightsym.model import MLP
from weightsym.validation import check_finite

__all__ = ["MODULE_CLASSES", "UnsupportedModelError", "load_network", "load_data"]

MODULE_CLASSES: tuple[type[nn.Module], ...] = (
    nn.Sequential,
    nn.Linear,
    nn.ReLU,
    nn.LeakyReLU,
    nn.Softplus,
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.Identity,
    Erf,
)
"""The module classes a model file may contain (with ``weights_only=True``)."""

CONVERT = (
    "save the network as a state dict instead: torch.save({'widths': [n0, n1, ..., nd], "
    "'activation': 'tanh', 'state_dict': seq.state_dict()}, path) with seq an nn.Sequential "
    "of nn.Linear and one activation (nn.ReLU, nn.LeakyReLU, nn.Softplus, nn.Tanh, "
    "nn.Sigmoid, nn.GELU, nn.Identity); or, only for a file from a source you trust, pass "
    "trust_pickle=True (weightsym path --trust-pickle), which runs any code the file holds"
)
"""How to turn a refused model file into one that loads (part of every refusal message)."""


class UnsupportedModelError(ValueError):
    """A model file holds something other than the supported forms (see the module doc)."""


def _exists(path: str | Path, what: str) -> Path:
    if isinstance(path, bytes) or not isinstance(path, str | Path):
        raise TypeError(f"{what} path must be a str or Path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    return path


def _load_weights_only(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True`` and :data:`MODULE_CLASSES` allowed."""
    allow = getattr(torch.serialization, "safe_globals", None)
    try:
        if allow is None:  # torch < 2.5: no allow-list; whole modules are refused below
            return torch.load(path, map_location="cpu", weights_only=True)
        with allow(list(MODULE_CLASSES)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        banned = [line for line in lines if "GLOBAL" in line]
        if not banned:  # not a disallowed object: a damaged or foreign file
            reason = lines[-2] if len(lines) > 1 else (lines[0] if lines else "unreadable")
            raise CorruptFileError(path, "model", f"cannot be loaded: {reason}") from None
        raise UnsupportedModelError(
            f"model file {path} holds objects that are not allowed in a model file, so it was "
            f"not loaded and nothing in it was run ({banned[0]}). To use it, " + CONVERT
        ) from None
    except Exception as exc:  # noqa: BLE001 - truncated or garbage files: torch raises many types
        raise CorruptFileError(path, "model", f"cannot be loaded: {exc}") from exc


def _from_state_dict(obj: Mapping[str, Any], path: Path) -> tuple[MLP, Tensor]:
    slope = obj.get("negative_slope")
    net = MLP(list(obj["widths"]), str(obj["activation"]), *([] if slope is None else [slope]))
    state = obj["state_dict"]
    if not isinstance(state, Mapping):
        raise UnsupportedModelError(f"model file {path}: 'state_dict' must be a dict of tensors")
    seq = net.to_module(torch.zeros(net.num_params, dtype=torch.float64))
    try:
        seq.load_state_dict(dict(state))
    except RuntimeError as exc:
        raise UnsupportedModelError(
            f"model file {path}: the state dict does not fit widths {net.widths} with "
            f"activation {net.act.name!r}: {str(exc).strip().splitlines()[0]}"
        ) from None
    return MLP.from_module(seq)


def _network(obj: Any, path: Path) -> tuple[MLP, Tensor]:
    if isinstance(obj, nn.Sequential):
        return MLP.from_module(obj)
    if isinstance(obj, Mapping) and {"widths", "activation", "state_dict"} <= set(obj):
        return _from_state_dict(obj, path)
    if isinstance(obj, Mapping) and {"widths", "activation", "theta"} <= set(obj):
        slope = obj.get("negative_slope")
        net = MLP(list(obj["widths"]), str(obj["activation"]), *([] if slope is None else [slope]))
        theta = torch.as_tensor(obj["theta"], dtype=torch.float64)
        net.check_theta(theta, "theta in the model file")
        return net, theta
    raise UnsupportedModelError(
        f"model file {path} must hold an nn.Sequential, or a dict with keys widths, "
        f"activation and state_dict (or theta); got {type(obj).__name__}. To convert it, " + CONVERT
    )


def load_network(path: str | Path, *, trust_pickle: bool = False) -> tuple[MLP, Tensor]:
    """``(net, theta)`` from a model file in one of the forms of the module docstring.

    Args:
        path: the ``.pt`` file.
        trust_pickle: unpickle with ``weights_only=False``. This runs any code the file holds;
            use it only for files from a source you trust.

    Returns:
        The network and its flat float64 parameter vector.

    Raises:
        FileNotFoundError: no such file.
        UnsupportedModelError: the file holds other classes or objects (nothing in it was run);
            the message says how to convert it.
        CorruptFileError: the file is truncated or not a torch file.
        ValueError, TypeError: the network is not one an MLP can represent.
    """
    if not isinstance(trust_pickle, bool):
        raise TypeError(f"trust_pickle must be True or False, got {trust_pickle!r}")
    path = _exists(path, "model")
    if trust_pickle:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
            raise CorruptFileError(path, "model", f"cannot be loaded: {exc}") from exc
    else:
        obj = _load_weights_only(path)
    return _network(obj, path)


def load_data(path: str | Path) -> tuple[Tensor, Tensor]:
    """``(X, Y)`` from a ``.pt`` dict or an ``.npz`` file with arrays named X and Y.

    X becomes float64; a floating Y too (integer Y, class labels, keeps its type). Neither
    file form runs code. Raises FileNotFoundError, CorruptFileError for an unreadable file and
    ValueError for missing arrays or NaN/inf entries.
    """
    path = _exists(path, "data")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                data = {k: torch.from_numpy(npz[k]) for k in npz.files}
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CorruptFileError(path, "data", f"cannot be loaded: {exc}") from exc
    if not isinstance(data, dict) or not {"X", "Y"} <= set(data):
        raise ValueError(f"data file {path} must hold tensors named X and Y")
    X = torch.as_tensor(data["X"]).to(torch.float64)
    Y = torch.as_tensor(data["Y"])
    Y = Y if not Y.is_floating_point() else Y.to(torch.float64)
    check_finite("X in the data file", X)
    if Y.is_floating_point():
        check_finite("Y in the data file", Y)
    return X, Y
