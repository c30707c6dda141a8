"""Hessian spectra (dense and Lanczos), the Hessian operator and saddle indices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import weightsym as ws
from weightsym import curvature


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_loss(widths: list[int], act: str, T: int = 200) -> tuple[ws.Loss, torch.Tensor]:
    net = ws.MLP(widths, act)
    X = torch.randn(T, widths[0], dtype=torch.float64, generator=gen(0))
    Y = torch.randn(T, widths[-1], dtype=torch.float64, generator=gen(1))
    return ws.Loss(net, X, Y), net.init(2)


class Diagonalized:
    """A quadratic-like stand-in for a loss: Hessian Q diag(lam) Q^T, known by construction."""

    def __init__(self, lam: list[float], seed: int = 0) -> None:
        self.lam = torch.tensor(lam, dtype=torch.float64)
        self.num_params = len(lam)
        Q, _ = torch.linalg.qr(
            torch.randn(len(lam), len(lam), dtype=torch.float64, generator=gen(seed))
        )
        self.H = Q @ torch.diag(self.lam) @ Q.T
        self.theta = torch.zeros(len(lam), dtype=torch.float64)  # unused: H is constant

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        return self.H

    def hvp(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.H @ v


@pytest.fixture(scope="module")
def medium() -> tuple[ws.Loss, torch.Tensor, torch.Tensor]:
    """A 3-hidden-layer tanh network, 177 parameters, at a random point; its dense spectrum."""
    loss, theta = random_loss([3, 10, 8, 6, 2], "tanh")
    H = loss.hessian(theta)
    return loss, theta, torch.linalg.eigvalsh(0.5 * (H + H.T))


def test_dense_spectrum_is_eigvalsh_of_the_hessian(medium):
    loss, theta, ev = medium
    spec = ws.hessian_spectrum(loss, theta)
    assert spec.dtype == torch.float64 and spec.shape == (loss.num_params,)
    assert torch.equal(spec, ev)  # the same computation
    unsym = torch.linalg.eigvalsh(loss.hessian(theta))  # reads one triangle only
    assert float((spec - unsym).abs().max()) <= 1e-13 * float(ev.abs().max())  # rounding
    assert bool((spec[1:] >= spec[:-1]).all())  # ascending


@pytest.mark.parametrize("which", ["both", "lowest", "highest"])
def test_lanczos_ends_match_the_dense_spectrum(medium, which):
    loss, theta, ev = medium
    k = 6
    got = ws.hessian_spectrum(loss, theta, k=k, method="lanczos", which=which)
    want = {"both": torch.cat([ev[:k], ev[-k:]]), "lowest": ev[:k], "highest": ev[-k:]}[which]
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 1e-8 * float(ev.abs().max())  # ARPACK at tol=0


def test_lanczos_finds_a_negative_low_end_next_to_a_zero_cluster():
    """A saddle's spectrum: a few negative eigenvalues, then a zero cluster, then the rest."""
    lam = [-2.0, -0.7, -0.1] + [1e-13 * i for i in range(60)] + list(np.linspace(0.5, 30.0, 137))
    stub = Diagonalized(lam, seed=1)
    got = ws.hessian_spectrum(stub, stub.theta, k=3, method="lanczos", which="lowest")
    assert float((got - torch.tensor([-2.0, -0.7, -0.1])).abs().max()) <= 1e-8 * 30  # ARPACK


def test_lanczos_on_a_cluster_says_so():
    """The k lowest inside a cluster of width 1e-9 |H| (as at a minimum) cannot be resolved."""
    lam = list(np.geomspace(1e-12, 1e-9, 60)) + list(np.linspace(0.5, 20.0, 60))
    with pytest.raises(RuntimeError, match="did not converge.*use method='dense'"):
        stub = Diagonalized(lam)
        ws.hessian_spectrum(stub, stub.theta, k=4, method="lanczos", which="lowest")


def test_auto_method_and_k_with_dense(medium, monkeypatch):
    loss, theta, ev = medium
    dense_ends = ws.hessian_spectrum(loss, theta, k=3)  # P small: dense, then the ends
    assert torch.equal(dense_ends, torch.cat([ev[:3], ev[-3:]]))
    assert torch.equal(ws.hessian_spectrum(loss, theta, k=200), ev)  # 2k >= P: all of them
    monkeypatch.setattr(curvature, "DENSE_MAX_PARAMS", 10)
    calls = []
    monkeypatch.setattr(
        curvature, "_lanczos", lambda op, k, which: calls.append((k, which)) or np.zeros(k)
    )
    ws.hessian_spectrum(loss, theta, k=3)
    assert calls == [(3, "LA"), (3, "LA")]  # P > DENSE_MAX_PARAMS: Lanczos, top then shifted


def test_hessian_operator_is_the_hessian(medium):
    loss, theta, _ = medium
    op = ws.hessian_operator(loss, theta)
    assert op.shape == (loss.num_params, loss.num_params) and op.dtype == np.float64
    v = np.random.default_rng(0).standard_normal(loss.num_params)
    H = loss.hessian(theta).numpy()
    assert np.abs(op @ v - H @ v).max() <= 1e-12 * np.abs(H @ v).max()  # hvp vs dense: rounding
    assert np.abs(op.rmatvec(v) - H @ v).max() <= 1e-12 * np.abs(H @ v).max()  # symmetric


def test_saddle_index_on_a_known_spectrum():
    stub = Diagonalized([-2.0, -0.5, 0.0, 1e-12, -1e-13, 0.3, 1.0, 4.0])
    assert ws.saddle_index(stub, None) == (2, 3, 3)  # |lambda| <= 1e-8 * 4 is zero
    assert ws.saddle_index(stub, None, rtol=1e-14) == (3, 1, 4)  # only the exact 0 is zero
    counts = ws.saddle_index(stub, None, rtol=0.2)  # |lambda| <= 0.8 is zero
    assert counts == (1, 5, 2) and counts.negative == 1 and isinstance(counts, tuple)


def test_saddle_index_with_k_counts_only_the_ends():
    stub = Diagonalized([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0, 5.0, 6.0, 7.0, 8.0])
    assert ws.saddle_index(stub, None, k=2) == (2, 0, 2)  # ends only: -3, -1 and 7, 8
    assert sum(ws.saddle_index(stub, None, k=3)) == 6


def test_saddle_index_of_a_permutation_point():
    """docs/theory.md section 2's example: 2-3-2 fitted, neuron 0 duplicated: index 2, one zero."""
    teacher = ws.MLP([2, 4, 2], "tanh")
    X = torch.randn(100, 2, dtype=torch.float64, generator=gen(100))
    Y = teacher(teacher.init(0), X)
    small = ws.MLP([2, 3, 2], "tanh")
    fit = ws.minimize(ws.Loss(small, X, Y), small.init(1), method="newton", tol=1e-12)
    assert fit.success, fit.message
    net, theta, _ = ws.permutation_point(small, fit.x, 1, 0)
    counts = ws.saddle_index(ws.Loss(net, X, Y), theta)
    assert counts == (2, 1, 19)  # measured eigenvalues -2.1e-2, -9.7e-4, -9e-18, 1.7e-6, ...


def test_bad_arguments_raise(medium):
    loss, theta, _ = medium
    with pytest.raises(ValueError, match="k must be None or a positive int"):
        ws.hessian_spectrum(loss, theta, k=0)
    with pytest.raises(ValueError, match="unknown method 'qr'"):
        ws.hessian_spectrum(loss, theta, method="qr")
    with pytest.raises(ValueError, match="unknown which 'SM'"):
        ws.hessian_spectrum(loss, theta, k=2, which="SM")
    with pytest.raises(ValueError, match="which='lowest' needs k"):
        ws.hessian_spectrum(loss, theta, which="lowest")
    with pytest.raises(ValueError, match="method='lanczos' needs k with 2k < num_params"):
        ws.hessian_spectrum(loss, theta, method="lanczos")
    with pytest.raises(ValueError, match="rtol must be a non-negative number"):
        ws.saddle_index(loss, theta, rtol=-1.0)
