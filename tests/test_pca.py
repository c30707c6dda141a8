"""Principal components (weightsym.pca, docs/theory.md section 8): exact linear algebra on
known data, the sign convention, bitwise determinism, and arguments refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from weightsym.data import load_mnist
from weightsym.pca import PrincipalComponents, fit_pca, project, reconstruct


def _gaussian(T: int, n: int, seed: int) -> torch.Tensor:
    """Correlated inputs with distinct variances (a random linear map of N(0, I)) and an offset."""
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=gen, dtype=torch.float64)
    return torch.randn(T, n, generator=gen, dtype=torch.float64) @ A + 3.0


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return load_mnist("embedded", limit=500)[0]


def test_components_are_orthonormal_and_the_whitened_projection_has_identity_covariance(
    digits,
) -> None:
    """V V^T = I_K to 1e-12; Z^T Z / T = I_K to 1e-10 and mean(Z) = 0 to 1e-12, on MNIST
    digits (with their zero-variance pixels) and on Gaussian data."""
    for X, K in ((digits, 40), (_gaussian(300, 12, 0), 12)):
        pcs = fit_pca(X, K)
        V = pcs.components
        assert V.shape == (K, X.shape[1]) and pcs.K == K and pcs.n_features == X.shape[1]
        assert torch.allclose(V @ V.T, torch.eye(K, dtype=torch.float64), rtol=0, atol=1e-12)
        Z = project(X, pcs)
        assert Z.shape == (X.shape[0], K) and Z.dtype == torch.float64
        cov = Z.T @ Z / X.shape[0]
        assert torch.allclose(cov, torch.eye(K, dtype=torch.float64), rtol=0, atol=1e-10)
        assert float(Z.mean(dim=0).abs().max()) <= 1e-12


def test_variances_and_components_match_the_covariance_eigendecomposition() -> None:
    """A second path to the same numbers: numpy's eigh of the covariance (divisor T). The top K
    eigenvalues equal sigma_k^2 to 1e-10 relative; the eigenvectors equal the components up to
    sign (|<v_k, e_k>| = 1 to 1e-8, the eigenvalues being well separated here)."""
    X, K = _gaussian(400, 8, 1), 5
    pcs = fit_pca(X, K)
    Xc = (X - X.mean(dim=0)).numpy()
    evals, evecs = np.linalg.eigh(Xc.T @ Xc / X.shape[0])
    evals, evecs = evals[::-1], evecs[:, ::-1]
    np.testing.assert_allclose(pcs.scale.numpy() ** 2, evals[:K], rtol=1e-10)
    np.testing.assert_allclose(pcs.explained.numpy(), evals[:K] / evals.sum(), rtol=1e-10)
    overlap = np.abs(np.sum(pcs.components.numpy() * evecs[:, :K].T, axis=1))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-8)
    assert bool((pcs.explained[:-1] >= pcs.explained[1:]).all())


def test_unwhitened_projection_keeps_the_variances() -> None:
    """whiten=False: Z^T Z / T = diag(sigma_k^2) to 1e-10 relative to sigma_1^2; with K = n
    the explained fractions sum to 1 to 1e-12."""
    X = _gaussian(200, 6, 2)
    pcs = fit_pca(X, 6, whiten=False)
    assert not pcs.whiten
    Z = project(X, pcs)
    cov = Z.T @ Z / X.shape[0]
    expected = torch.diag(pcs.scale**2)
    assert torch.allclose(cov, expected, rtol=0, atol=1e-10 * float(pcs.scale[0] ** 2))
    assert abs(float(pcs.explained.sum()) - 1.0) <= 1e-12


def test_reconstruction_of_a_rank_K_dataset_is_exact() -> None:
    """X = mu + A B with A (T, K), B (K, n): the centred X has rank K, so
    reconstruct(project(X)) = X to 1e-10, whitened or not."""
    gen = torch.Generator().manual_seed(3)
    T, n, K = 250, 30, 4
    A = torch.randn(T, K, generator=gen, dtype=torch.float64)
    B = torch.randn(K, n, generator=gen, dtype=torch.float64)
    X = torch.randn(n, generator=gen, dtype=torch.float64) + A @ B
    for whiten in (True, False):
        pcs = fit_pca(X, K, whiten=whiten)
        assert float((reconstruct(project(X, pcs), pcs) - X).abs().max()) <= 1e-10
    with pytest.raises(ValueError, match=f"K must be at most {K}, the rank"):
        fit_pca(X, K + 1)


def test_sign_convention_and_bitwise_determinism(digits) -> None:
    """Each component's largest-magnitude entry is positive; flipping the data's sign leaves
    the components (not the projection) unchanged; two fits are bitwise equal, whatever the
    torch thread count (restored afterwards)."""
    pcs = fit_pca(digits, 20)
    top = pcs.components.abs().argmax(dim=1, keepdim=True)
    assert bool((pcs.components.gather(1, top) > 0).all())
    flipped = fit_pca(-digits, 20)
    assert torch.allclose(flipped.components, pcs.components, rtol=0, atol=1e-10)
    before = torch.get_num_threads()
    try:
        fits = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fits.append(fit_pca(digits, 20))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    for a in fits:
        for name in ("mean", "components", "explained", "scale"):
            assert torch.equal(getattr(a, name), getattr(pcs, name)), name
        assert torch.equal(project(digits, a), project(digits, pcs))


def test_bad_arguments_are_refused_by_name() -> None:
    X = _gaussian(20, 4, 4)
    for K in (0, -1, True, 2.0, "3"):
        with pytest.raises(ValueError, match="K must be a positive int"):
            fit_pca(X, K)
    with pytest.raises(ValueError, match="K must be at most 4"):
        fit_pca(X, 5)
    with pytest.raises(ValueError, match="K must be at most 0"):
        fit_pca(torch.ones(5, 3, dtype=torch.float64), 1)  # constant data: rank 0
    with pytest.raises(TypeError, match="X must be a torch.Tensor"):
        fit_pca(X.numpy(), 2)
    with pytest.raises(TypeError, match="X must be a torch.float64"):
        fit_pca(X.float(), 2)
    with pytest.raises(ValueError, match="X must be a 2-D"):
        fit_pca(X[0], 1)
    with pytest.raises(ValueError, match="X must be a 2-D"):
        fit_pca(X[:0], 1)
    bad = X.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="X contains 1 NaN"):
        fit_pca(bad, 1)
    with pytest.raises(TypeError, match="whiten must be a bool"):
        fit_pca(X, 2, whiten=1)
    pcs = fit_pca(X, 2)
    with pytest.raises(ValueError, match="X must have 4 columns"):
        project(X[:, :3], pcs)
    with pytest.raises(ValueError, match="X contains"):
        project(bad, pcs)
    with pytest.raises(TypeError, match="pcs must be a PrincipalComponents"):
        project(X, "pcs")
    with pytest.raises(ValueError, match="Z must have 2 columns"):
        reconstruct(X, pcs)
    assert isinstance(pcs, PrincipalComponents)
