"""Tests for weightsym.userdata: model files load without running code, data files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from weightsym.activations import Erf
from weightsym.io import CorruptFileError
from weightsym.model import MLP
from weightsym.userdata import (
    MODULE_CLASSES,
    UnsupportedModelError,
    load_data,
    load_network,
)

ACTIVATIONS = [nn.ReLU(), nn.LeakyReLU(0.2), nn.Softplus(), nn.Tanh(), nn.Sigmoid()]
ACTIVATIONS += [nn.GELU(), nn.Identity(), Erf()]


def sequential(act: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3), act, nn.Linear(3, 3), act, nn.Linear(3, 1)).double()


def same_function(net: MLP, theta: torch.Tensor, seq: nn.Sequential) -> bool:
    X = torch.randn(7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.allclose(net.forward(theta, X), seq(X), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------
# the three supported forms
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda m: type(m).__name__)
def test_whole_sequential_loads_without_pickle(tmp_path: Path, act: nn.Module) -> None:
    seq = sequential(act)
    torch.save(seq, tmp_path / "m.pt")
    net, theta = load_network(tmp_path / "m.pt")
    assert net.widths == [2, 3, 3, 1] and theta.dtype == torch.float64
    assert same_function(net, theta, seq)  # atol 1e-12, float64


def test_state_dict_form(tmp_path: Path) -> None:
    seq = sequential(nn.LeakyReLU(0.2))
    torch.save(
        {
            "widths": [2, 3, 3, 1],
            "activation": "leaky_relu",
            "negative_slope": 0.2,
            "state_dict": seq.state_dict(),
        },
        tmp_path / "m.pt",
    )
    net, theta = load_network(str(tmp_path / "m.pt"))
    assert same_function(net, theta, seq)
    torch.save({"widths": [2, 4, 1], "activation": "tanh", "state_dict": seq.state_dict()},
               tmp_path / "bad.pt")  # fmt: skip
    with pytest.raises(UnsupportedModelError, match=r"does not fit widths \[2, 4, 1\]"):
        load_network(tmp_path / "bad.pt")


def test_flat_theta_form(tmp_path: Path) -> None:
    net = MLP([2, 3, 1], "softplus")
    theta = net.init(seed=3)
    torch.save({"widths": [2, 3, 1], "activation": "softplus", "theta": theta}, tmp_path / "m.pt")
    loaded, back = load_network(tmp_path / "m.pt")
    assert loaded.widths == [2, 3, 1] and torch.equal(back, theta)
    torch.save({"widths": [2, 3, 1], "activation": "softplus", "theta": theta[:-1]},
               tmp_path / "short.pt")  # fmt: skip
    with pytest.raises(ValueError, match="theta in the model file"):
        load_network(tmp_path / "short.pt")


def test_allow_list_is_the_mlp_module_set() -> None:
    assert set(MODULE_CLASSES) == {
        nn.Sequential,
        nn.Linear,
        *(type(a) for a in ACTIVATIONS),
    }


# ------------------------------------------------------------------------------------------
# files that would run code are refused before anything runs
# ------------------------------------------------------------------------------------------


MARKER = "weightsym-payload-ran"


class SystemPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class OpenPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class ExecPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("payload", [SystemPayload, OpenPayload, ExecPayload])
@pytest.mark.parametrize("wrap", ["bare", "in_dict", "in_sequential"])
def test_malicious_model_does_not_run(tmp_path: Path, payload: type, wrap: str) -> None:
    marker = tmp_path / MARKER
    evil = payload(marker)
    obj = {
        "bare": evil,
        "in_dict": {"widths": [2, 1], "activation": "tanh", "theta": evil},
        "in_sequential": nn.Sequential(nn.Linear(2, 1)),
    }[wrap]
    if wrap == "in_sequential":
        obj[0].payload = evil  # an attribute of an allowed module
    torch.save(obj, tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(UnsupportedModelError, match="nothing in it was run") as info:
        load_network(tmp_path / "evil.pt")
    assert not marker.exists()  # the payload did not run
    message = str(info.value)
    assert "state_dict" in message and "--trust-pickle" in message and "GLOBAL" in message


class MyActivation(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


def test_custom_module_needs_conversion_or_trust(tmp_path: Path) -> None:
    seq = nn.Sequential(nn.Linear(2, 3), MyActivation(), nn.Linear(3, 1)).double()
    torch.save(seq, tmp_path / "m.pt")
    with pytest.raises(UnsupportedModelError, match="MyActivation.*To use it, save the network"):
        load_network(tmp_path / "m.pt")
    # the explicit opt-in unpickles it; MyActivation is still not an activation an MLP has
    with pytest.raises(ValueError, match="unsupported activation module"):
        load_network(tmp_path / "m.pt", trust_pickle=True)
    torch.save(sequential(nn.Tanh()), tmp_path / "ok.pt")
    net, theta = load_network(tmp_path / "ok.pt", trust_pickle=True)
    assert same_function(net, theta, sequential(nn.Tanh()))
    with pytest.raises(TypeError, match="trust_pickle must be True or False"):
        load_network(tmp_path / "ok.pt", trust_pickle=1)  # type: ignore[arg-type]


def test_other_objects_are_refused_with_the_conversion(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, tmp_path / "m.pt")
    with pytest.raises(UnsupportedModelError, match="got dict. To convert it, save"):
        load_network(tmp_path / "m.pt")


@pytest.mark.parametrize("content", [b"", b"garbage" * 30, b"PK\x03\x04broken zip"])
def test_damaged_model_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "m.pt").write_bytes(content)
    with pytest.raises(CorruptFileError, match=r"corrupt model file .*m\.pt"):
        load_network(tmp_path / "m.pt")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_network(tmp_path / "none.pt")


def test_path_command_refuses_the_payload(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from weightsym.commands.path import cmd

    marker = tmp_path / MARKER
    torch.save(SystemPayload(marker), tmp_path / "evil.pt")
    torch.save({"X": torch.zeros(4, 2), "Y": torch.zeros(4, 1)}, tmp_path / "data.pt")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cmd, ["evil.pt", "data.pt", "--out", "run"])
    assert result.exit_code == 2 and "--trust-pickle" in result.output
    assert not marker.exists() and not (tmp_path / "run").exists()
    assert "runs any code" in CliRunner().invoke(cmd, ["--help"]).output


# ------------------------------------------------------------------------------------------
# data files
# ------------------------------------------------------------------------------------------


def test_data_pt_and_npz(tmp_path: Path) -> None:
    X = np.arange(8, dtype=np.float32).reshape(4, 2)
    labels = np.array([0, 1, 1, 0])
    np.savez(tmp_path / "d.npz", X=X, Y=labels)
    torch.save({"X": torch.from_numpy(X), "Y": torch.ones(4, 1)}, tmp_path / "d.pt")
    X1, Y1 = load_data(tmp_path / "d.npz")
    X2, Y2 = load_data(tmp_path / "d.pt")
    assert X1.dtype == X2.dtype == torch.float64 and torch.equal(X1, X2)
    assert Y1.dtype == torch.int64 and Y2.dtype == torch.float64


def test_data_errors(tmp_path: Path) -> None:
    torch.save({"X": torch.zeros(2, 2)}, tmp_path / "noy.pt")
    with pytest.raises(ValueError, match="named X and Y"):
        load_data(tmp_path / "noy.pt")
    torch.save({"X": torch.tensor([[0.0, float("nan")]]), "Y": torch.zeros(1)}, tmp_path / "n.pt")
    with pytest.raises(ValueError, match=r"X in the data file contains 1 NaN or inf"):
        load_data(tmp_path / "n.pt")
    np.savez(tmp_path / "obj.npz", X=np.array([object()], dtype=object), Y=np.zeros(1))
    with pytest.raises(CorruptFileError, match="corrupt data file"):
        load_data(tmp_path / "obj.npz")  # object arrays would need pickle: refused
    with pytest.raises(FileNotFoundError, match="data file not found"):
        load_data(tmp_path / "none.pt")
