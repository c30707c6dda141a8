"""Loading a user's own network and data for ``weightsym path``.

The network is an ``nn.Sequential`` of ``Linear`` and activation modules saved with
``torch.save(module, path)`` (a pickle: load only files you trust) or, as the safer choice, a
``.pt`` dictionary ``{"widths": [...], "activation": "tanh", "theta": tensor}``. Data are tensors
``X`` and ``Y`` in a ``.pt`` dictionary or an ``.npz`` file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from weightsym.model import MLP
from weightsym.store import CorruptFileError
from weightsym.validation import check_finite


def _exists(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    return path


def load_network(path: str | Path) -> tuple[MLP, Tensor]:
    """(net, theta) from a saved ``nn.Sequential`` or a {widths, activation, theta} dict."""
    path = _exists(path, "model")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise CorruptFileError(path, "model", f"cannot be loaded: {exc}") from exc
    if isinstance(obj, nn.Sequential):
        return MLP.from_module(obj)
    if isinstance(obj, dict) and {"widths", "activation", "theta"} <= set(obj):
        net = MLP(list(obj["widths"]), str(obj["activation"]))
        theta = torch.as_tensor(obj["theta"], dtype=torch.float64)
        net.check_theta(theta, "theta in the model file")
        return net, theta
    raise ValueError(
        f"model file {path} must hold an nn.Sequential or a dict with keys widths, activation, "
        f"theta; got {type(obj).__name__}"
    )


def load_data(path: str | Path) -> tuple[Tensor, Tensor]:
    """(X, Y) from a ``.pt`` dict or an ``.npz`` file with arrays named X and Y."""
    path = _exists(path, "data")
    try:
        if path.suffix == ".npz":
            with np.load(path) as npz:
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
