"""Principal components of the inputs: the reduced MNIST of docs/theory.md section 8.

Let X be T inputs of dimension n (rows x_mu), mu their mean and X - 1 mu^T = U S V^T the thin SVD
of the centred data, with singular values s_1 >= s_2 >= ... >= 0. The top K principal
components are the first K right singular vectors v_1, ..., v_K (the rows of V^T), each with
the sign that makes its entry of largest magnitude positive (the first such entry on ties), so
that the SVD's arbitrary signs do not reach the data. Along v_k the data have the variance

    sigma_k^2 = s_k^2 / T          (population convention: divisor T, not T - 1),

and v_k explains the fraction s_k^2 / sum_j s_j^2 of the total variance. The projection of an
input x is

    z_k(x) = v_k^T (x - mu) / sigma_k    (whitened, the default),
    z_k(x) = v_k^T (x - mu)              (``whiten=False``),

so that on the fitted data Z^T Z / T = I_K when whitened (diag(sigma_k^2) otherwise) and every
column of Z has mean zero. :func:`reconstruct` maps back, x = mu + sum_k z_k sigma_k v_k
(without the sigma_k when not whitened): exact for data whose centred matrix has rank <= K.

The rank of the data is the number of singular values above s_1 max(T, n) eps (numpy's
``matrix_rank`` rule); K must lie in 1..rank, so that every sigma_k > 0.

Everything is float64 and computed with one torch thread (MKL's rounding depends on the thread
count), so the same data give bitwise the same components and projection in every process of
one machine: a teacher trained on projected digits and a path resumed in another process see
the same inputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from weightsym.validation import check_dtype, check_finite

__all__ = ["PrincipalComponents", "fit_pca", "project", "reconstruct"]


@dataclass(frozen=True)
class PrincipalComponents:
    """The top K principal components of a data set (see the module docstring).

    Attributes:
        mean: (n,) the mean input mu.
        components: (K, n) the components v_k as orthonormal rows, by decreasing variance.
        explained: (K,) the fraction of the total variance each component explains.
        scale: (K,) the standard deviations sigma_k = s_k / sqrt(T) along the components.
        whiten: whether :func:`project` divides by ``scale``.
    """

    mean: Tensor
    components: Tensor
    explained: Tensor
    scale: Tensor
    whiten: bool = True

    @property
    def K(self) -> int:
        """The number of components (the projected inputs' dimension)."""
        return int(self.components.shape[0])

    @property
    def n_features(self) -> int:
        """n, the dimension of the original inputs."""
        return int(self.components.shape[1])


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch (and MKL) with one thread, restoring the count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_inputs(X: object, name: str = "X") -> Tensor:
    if not isinstance(X, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(X).__name__}")
    check_dtype(name, X)
    if X.dim() != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D (T, n) tensor with T, n >= 1; got {tuple(X.shape)}")
    check_finite(name, X)
    return X


def fit_pca(X: Tensor, K: int, whiten: bool = True) -> PrincipalComponents:
    """The top ``K`` principal components of ``X`` (docs/theory.md section 8).

    Args:
        X: (T, n) float64 inputs, finite.
        K: the number of components, an int in 1..rank of the centred X.
        whiten: whether :func:`project` scales each component to unit variance.

    Returns:
        The :class:`PrincipalComponents`: mean, components with the sign convention of the
        module docstring, explained-variance fractions and standard deviations.

    Raises:
        TypeError: X is not a float64 tensor; ``whiten`` is not a bool.
        ValueError: X is not 2-D, empty or not finite; K is not an int in 1..rank.
    """
    X = _check_inputs(X)
    if not isinstance(whiten, bool):
        raise TypeError(f"whiten must be a bool; got {type(whiten).__name__}")
    if isinstance(K, bool) or not isinstance(K, int) or K < 1:
        raise ValueError(f"K must be a positive int (the number of components); got {K!r}")
    T, n = X.shape
    with _one_thread():
        mean = X.mean(dim=0)
        _, s, Vh = torch.linalg.svd(X - mean, full_matrices=False)
    eps = float(torch.finfo(torch.float64).eps)
    rank = int((s > float(s[0]) * max(T, n) * eps).sum()) if float(s[0]) > 0 else 0
    if K > rank:
        raise ValueError(
            f"K must be at most {rank}, the rank of the {T} centred inputs of dimension {n}; "
            f"got K = {K}"
        )
    V = Vh[:K].clone()
    top = V.abs().argmax(dim=1, keepdim=True)  # the first entry of largest magnitude
    V *= torch.sign(V.gather(1, top))
    power = s**2
    return PrincipalComponents(
        mean=mean,
        components=V,
        explained=power[:K] / power.sum(),
        scale=s[:K] / float(T) ** 0.5,
        whiten=whiten,
    )


def _check_fitted(pcs: object, X: Tensor, name: str) -> None:
    if not isinstance(pcs, PrincipalComponents):
        raise TypeError(f"pcs must be a PrincipalComponents (fit_pca); got {type(pcs).__name__}")
    _check_inputs(X, name)


def project(X: Tensor, pcs: PrincipalComponents) -> Tensor:
    """The inputs in principal-component coordinates: z_k = v_k^T (x - mu) / sigma_k.

    Without the division by sigma_k when ``pcs.whiten`` is False (module docstring).

    Args:
        X: (T, n) float64 inputs, finite, with n = ``pcs.n_features``.
        pcs: the fitted components (:func:`fit_pca`).

    Returns:
        Z, (T, K) float64; on the fitted data Z^T Z / T = I_K when whitened.

    Raises:
        TypeError: ``pcs`` is not a :class:`PrincipalComponents`; X is not float64.
        ValueError: X is not 2-D, not finite, or has other than n columns.
    """
    _check_fitted(pcs, X, "X")
    if X.shape[1] != pcs.n_features:
        raise ValueError(
            f"X must have {pcs.n_features} columns, the dimension the components were fitted "
            f"on; got {X.shape[1]}"
        )
    with _one_thread():
        Z = (X - pcs.mean) @ pcs.components.T
        return Z / pcs.scale if pcs.whiten else Z


def reconstruct(Z: Tensor, pcs: PrincipalComponents) -> Tensor:
    """The inputs back from their coordinates: x = mu + sum_k z_k sigma_k v_k (no sigma_k when
    not whitened); the inverse of :func:`project` on the span of the components.

    Args:
        Z: (T, K) float64 coordinates, finite, with K = ``pcs.K``.
        pcs: the fitted components (:func:`fit_pca`).

    Returns:
        (T, n) float64 inputs.

    Raises:
        TypeError: ``pcs`` is not a :class:`PrincipalComponents`; Z is not float64.
        ValueError: Z is not 2-D, not finite, or has other than K columns.
    """
    _check_fitted(pcs, Z, "Z")
    if Z.shape[1] != pcs.K:
        raise ValueError(f"Z must have {pcs.K} columns, one per component; got {Z.shape[1]}")
    with _one_thread():
        scores = Z * pcs.scale if pcs.whiten else Z
        return pcs.mean + scores @ pcs.components
