"""The loss (paper Sec. 3, docs/theory.md section 1) and its exact derivatives against
independent references.

References written here, not taken from the library: a per-sample Python loop for the value, a
batched torch forward (``F.linear`` and torch's own activations) differentiated by autograd and
``torch.func`` for the gradient, the Hessian and Hessian-vector products, and central finite
differences. ReLU is compared by finite differences only at points where no pre-activation lies
within the finite-difference reach of its kink (asserted).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import weightsym as ws
from weightsym import losses
from weightsym.activations import Erf

ACTS = ["softplus", "tanh", "relu", "gelu"]
SMOOTH = ["softplus", "tanh", "gelu"]
KINDS = ["mse", "nmse", "nll"]
SHALLOW = [3, 5, 3]
DEEP = [3, 4, 5, 4, 3]  # three hidden layers
TORCH_ACT = {"softplus": F.softplus, "tanh": torch.tanh, "relu": torch.relu, "gelu": F.gelu}
FD_STEP = 1e-5
KINK_REACH = 100 * FD_STEP  # an FD step moves no pre-activation this far (|x~| and |W| < 10)


def data(widths: list[int], kind: str, T: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(T, widths[0], dtype=torch.float64, generator=gen)
    if kind == "nll":
        return X, torch.randint(0, widths[-1], (T,), generator=gen)
    return X, torch.randn(T, widths[-1], dtype=torch.float64, generator=gen)


def problem(act: str, kind: str, widths: list[int], T: int = 70):
    """A random problem; for ReLU the first seed with no pre-activation near the kink."""
    net = ws.MLP(widths, act)
    for seed in range(50):
        X, Y = data(widths, kind, T, seed)
        theta, loss = net.init(seed + 1, scale=1.5), ws.Loss(net, X, Y, kind)
        if act != "relu" or away_from_kinks(loss, theta, KINK_REACH):
            return net, theta, loss
    raise AssertionError("no seed keeps the ReLU pre-activations away from the kink")


def reference_forward(net: ws.MLP, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """f(X) with F.linear and torch's activations (independent of MLP.forward)."""
    layers = net.unflatten(theta)
    h = X
    for k, (W, b) in enumerate(layers, start=1):
        h = F.linear(h, W, b)
        if k < len(layers):
            h = TORCH_ACT[net.activation](h)
    return h


def reference_loss(loss: ws.Loss, theta: torch.Tensor) -> torch.Tensor:
    """The loss of docs/theory.md section 1, batched, from the reference forward."""
    f = reference_forward(loss.net, theta, loss.X)
    if loss.kind == "nll":
        return F.cross_entropy(f, loss.Y)
    mse = F.mse_loss(f, loss.Y)
    return mse / (loss.Y**2).mean() if loss.kind == "nmse" else mse


def per_sample_losses(net: ws.MLP, theta: torch.Tensor, X, Y, kind: str) -> list[float]:
    """l(y_mu, f(x_mu)) one sample at a time, in a Python loop (nmse before its scaling)."""
    layers = net.unflatten(theta)
    g = TORCH_ACT[net.activation]
    out = []
    for mu in range(X.shape[0]):
        h = X[mu]
        for k, (W, b) in enumerate(layers, start=1):
            a = W @ h + b
            h = g(a) if k < len(layers) else a
        if kind == "nll":
            out.append(float(torch.logsumexp(h, 0) - h[Y[mu]]))
        else:
            out.append(float(((h - Y[mu]) ** 2).sum()) / h.shape[0])
    return out


def loop_loss(terms: list[float], Y: torch.Tensor, kind: str) -> float:
    """The mean over samples of docs/theory.md section 1, summed naively in Python."""
    value = sum(terms) / len(terms)
    if kind == "nmse":
        value /= float((Y**2).mean())
    return value


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max abs difference relative to the largest entry of b."""
    return float((a - b).abs().max() / b.abs().max())


def central_differences(fn, theta: torch.Tensor) -> torch.Tensor:
    """(fn(theta + h e_j) - fn(theta - h e_j)) / 2h for every j, stacked along the last axis."""
    cols = []
    for j in range(theta.numel()):
        e = torch.zeros_like(theta)
        e[j] = FD_STEP
        cols.append(
            torch.as_tensor((fn(theta + e) - fn(theta - e)) / (2 * FD_STEP), dtype=theta.dtype)
        )
    return torch.stack(cols, dim=-1)


def away_from_kinks(loss: ws.Loss, theta: torch.Tensor, reach: float) -> bool:
    """No pre-activation within ``reach`` of 0 (so FD steps of ReLU never cross a kink)."""
    pre, _ = loss.net.activations(theta, loss.X)
    return all(float(a.abs().min()) > reach for a in pre[:-1])


# --------------------------------------------------------------------------- value and gradient


@pytest.mark.parametrize("widths", [SHALLOW, DEEP], ids=["1-hidden", "3-hidden"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("act", ACTS)
def test_value_and_gradient_for_every_sample_count(act, kind, widths, monkeypatch):
    net = ws.MLP(widths, act)
    theta = net.init(1, scale=1.5)
    X_all, Y_all = data(widths, kind, 80)
    terms = per_sample_losses(net, theta, X_all, Y_all, kind)
    # a Hessian chunk of 7 samples, so that T = 60..80 ends on every remainder
    widest = max(net.widths[k] * max(net.offsets[k - 1], 1) for k in range(1, net.depth + 1))
    for T in range(60, 81):
        loss = ws.Loss(net, X_all[:T], Y_all[:T], kind)
        value, grad = loss.value_and_grad(theta)
        naive = loop_loss(terms[:T], Y_all[:T], kind)
        assert math.isclose(value, naive, rel_tol=1e-12)  # rounding only
        assert loss(theta) == value  # same computation
        ref = torch.func.grad(lambda t, loss=loss: reference_loss(loss, t))(theta)
        assert rel(grad, ref) <= 1e-12  # rounding only
        monkeypatch.setattr(losses, "_CHUNK_ELEMS", 7 * widest)
        v_c, g_c, H_c = loss.value_grad_hessian(theta)
        monkeypatch.undo()
        v_1, g_1, H_1 = loss.value_grad_hessian(theta)
        assert math.isclose(v_c, value, rel_tol=1e-13)  # chunked sums: rounding only
        assert rel(g_c, grad) <= 1e-13 and rel(g_1, grad) <= 1e-13  # rounding only
        assert rel(H_c, H_1) <= 1e-13  # chunked vs one chunk: rounding only


@pytest.mark.parametrize("widths", [SHALLOW, DEEP], ids=["1-hidden", "3-hidden"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("act", ACTS)
def test_gradient_against_finite_differences(act, kind, widths):
    net, theta, loss = problem(act, kind, widths)
    fd = central_differences(loss, theta)
    assert rel(loss.grad(theta), fd) <= 1e-8  # O(h^2) truncation ~1e-10, rounding eps/h ~1e-11


# --------------------------------------------------------------------------- Hessian and hvp


@pytest.mark.parametrize("widths", [SHALLOW, DEEP], ids=["1-hidden", "3-hidden"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("act", ACTS)
def test_hessian_against_autograd_and_finite_differences(act, kind, widths):
    net, theta, loss = problem(act, kind, widths)
    H = loss.hessian(theta)
    ref = torch.autograd.functional.hessian(lambda t: reference_loss(loss, t), theta)
    assert rel(H, ref) <= 1e-11  # exact up to rounding, relative to the largest entry
    assert rel(H, H.T) <= 1e-13  # symmetric up to rounding
    fd = central_differences(loss.grad, theta)
    assert rel(H, fd) <= 1e-6  # FD of the gradient: truncation + rounding


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("act", ACTS)
def test_hvp_equals_hessian_times_vector(act, kind):
    net, theta, loss = problem(act, kind, DEEP)
    H = loss.hessian(theta)
    for seed in range(3):
        v = torch.randn(
            theta.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
        )
        assert rel(loss.hvp(theta, v), H @ v) <= 1e-12  # two exact methods: rounding only


def test_hvp_works_under_no_grad():
    net, theta, loss = problem("tanh", "mse", SHALLOW)
    v = torch.ones_like(theta)
    with torch.no_grad():
        hv = loss.hvp(theta, v)
    assert rel(hv, loss.hessian(theta) @ v) <= 1e-12  # rounding only


# --------------------------------------------------------------------------- model interop


@pytest.mark.parametrize("act", ACTS + ["sigmoid", "erf", "leaky_relu", "identity"])
def test_forward_matches_nn_sequential(act):
    net = ws.MLP(DEEP, act, negative_slope=0.2)
    theta = net.init(3, scale=2.0)
    X, _ = data(DEEP, "mse", 50)
    out = net.forward(theta, X)
    with torch.no_grad():
        ref = net.to_module(theta)(X)
    assert rel(out, ref) <= 1e-12  # same operations in float64: rounding only
    assert out.shape == (50, DEEP[-1])


def test_flatten_unflatten_round_trip():
    net = ws.MLP(DEEP, "tanh")
    theta = net.init(0)
    layers = net.unflatten(theta)
    assert [tuple(W.shape) for W, _ in layers] == [(4, 3), (5, 4), (4, 5), (3, 4)]
    assert torch.equal(net.flatten(layers), theta)  # exact
    layers[0][0][1, 2] = 7.0  # views into theta
    assert theta[net.neuron_slice(1, 1)][2] == 7.0


MODULES = {
    "relu": nn.ReLU(),
    "tanh": nn.Tanh(),
    "softplus": nn.Softplus(),
    "gelu": nn.GELU(),
    "sigmoid": nn.Sigmoid(),
    "erf": Erf(),
    "leaky_relu": nn.LeakyReLU(0.3),
    "identity": nn.Identity(),
}


@pytest.mark.parametrize("act", list(MODULES))
def test_module_round_trip(act):
    torch.manual_seed(0)
    seq = nn.Sequential(
        nn.Linear(3, 4, dtype=torch.float64), MODULES[act], nn.Linear(4, 2, dtype=torch.float64)
    )
    net, theta = ws.MLP.from_module(seq)
    assert net.widths == [3, 4, 2] and net.activation == act
    if act == "leaky_relu":
        assert net.negative_slope == 0.3
    X, _ = data([3, 4, 2], "mse", 20)
    with torch.no_grad():
        assert rel(net.forward(theta, X), seq(X)) <= 1e-12  # rounding only
        back = net.to_module(theta)
        assert rel(back(X), seq(X)) <= 1e-12  # rounding only
    net2, theta2 = ws.MLP.from_module(back)
    assert net2 == net and torch.equal(theta2, theta)  # exact round trip


@pytest.mark.parametrize(
    ("seq", "match"),
    [
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.Dropout(), nn.Linear(4, 2)), "unsupported"),
        (lambda: nn.Sequential(nn.Conv1d(1, 1, 3)), "nn.Linear"),
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 2)), "do not chain"),
        (
            lambda: nn.Sequential(
                nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1)
            ),
            "same",
        ),
        (
            lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.ReLU(), nn.Linear(4, 1)),
            "alternate",
        ),
        (lambda: nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 1)), "bias"),
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.Softplus(beta=2), nn.Linear(4, 1)), "beta"),
    ],
    ids=["dropout", "conv", "mismatched", "mixed", "not-alternating", "no-bias", "softplus-beta"],
)
def test_unsupported_modules_raise(seq, match):
    with pytest.raises(ValueError, match=match):
        ws.MLP.from_module(seq())


def test_from_module_needs_a_sequential():
    with pytest.raises(TypeError, match="nn.Sequential"):
        ws.MLP.from_module(nn.Linear(3, 2))


# --------------------------------------------------------------------------- bad inputs


def test_bad_shapes_raise():
    net = ws.MLP(SHALLOW, "tanh")
    X, Y = data(SHALLOW, "mse", 10)
    with pytest.raises(ValueError, match=r"X must have shape \(T, 3\)"):
        ws.Loss(net, X[:, :2], Y)
    with pytest.raises(ValueError, match=r"Y must have shape \(10, 3\)"):
        ws.Loss(net, X, Y[:5])
    with pytest.raises(ValueError, match="Y must be integer labels"):
        ws.Loss(net, X, Y, "nll")
    with pytest.raises(ValueError, match="at least one sample"):
        ws.Loss(net, X[:0], Y[:0])
    loss = ws.Loss(net, X, Y)
    with pytest.raises(ValueError, match="theta must be a 1-D tensor of length 38"):
        loss(torch.zeros(37, dtype=torch.float64))
    with pytest.raises(ValueError, match="v must be a 1-D tensor"):
        loss.hvp(net.init(0), torch.zeros(5, dtype=torch.float64))
    with pytest.raises(TypeError, match="theta must be a floating-point"):
        loss(torch.zeros(38, dtype=torch.int64))


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_inputs_raise(bad):
    net = ws.MLP(SHALLOW, "tanh")
    X, Y = data(SHALLOW, "mse", 10)
    theta = net.init(0)
    loss = ws.Loss(net, X, Y)
    theta_bad = theta.clone()
    theta_bad[3] = bad
    for call in (loss, loss.grad, loss.hessian, loss.value_and_grad):
        with pytest.raises(ValueError, match="theta contains 1 NaN or inf"):
            call(theta_bad)
    X_bad, Y_bad = X.clone(), Y.clone()
    X_bad[2, 1] = bad
    Y_bad[4, 0] = bad
    with pytest.raises(ValueError, match="X contains 1 NaN or inf"):
        ws.Loss(net, X_bad, Y)
    with pytest.raises(ValueError, match="Y contains 1 NaN or inf"):
        ws.Loss(net, X, Y_bad)


def test_unknown_names_and_labels_raise():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        ws.MLP(SHALLOW, "swish")
    net = ws.MLP(SHALLOW, "tanh")
    X, Y = data(SHALLOW, "nll", 10)
    with pytest.raises(ValueError, match="unknown loss kind 'l1'"):
        ws.Loss(net, X, Y, "l1")
    with pytest.raises(ValueError, match=r"Y labels must lie in 0\.\.2"):
        ws.Loss(net, X, Y + 3, "nll")
    with pytest.raises(ValueError, match=r"Y labels must lie in 0\.\.2"):
        ws.Loss(net, X, Y - 1 - Y.max(), "nll")
    with pytest.raises(ValueError, match="all zeros for nmse"):
        ws.Loss(net, X, torch.zeros(10, 3, dtype=torch.float64), "nmse")
    with pytest.raises(TypeError, match="net must be a weightsym.MLP"):
        ws.Loss("net", X, Y, "nll")
