"""The Hessian of a loss at a point: as a scipy operator, its spectrum at both ends, its index.

docs/theory.md section 2 predicts the spectrum at permutation points: K guaranteed zero eigenvalues
(plus the smaller network's) and, when n_{k+1} >= 2, negative ones (a strict saddle). Small networks
use the exact dense Hessian (:meth:`weightsym.Loss.hessian`) and ``torch.linalg.eigvalsh``; large
ones the Lanczos method (ARPACK ``eigsh``) on Hessian-vector products (:meth:`weightsym.Loss.hvp`),
wrapped as a ``scipy.sparse.linalg.LinearOperator`` so that scipy's solvers apply directly (the
design of curvlinops).

The lowest end. ARPACK's convergence test is relative, |theta - lambda| <= tol |theta|, which
cannot be met for Ritz values near zero, and at a minimum or a permutation point the low end is
a cluster near zero. We therefore shift: with sigma just above the largest eigenvalue (from a
first ``which="LA"`` call), the lowest eigenvalues of H are the largest of sigma I - H, so the
relative test becomes an absolute one, ~tol |H|; the Krylov space is the same. Each call uses
``max(2k + 1, KRYLOV_MIN)`` vectors and a fixed start vector, so results are reproducible.
Where Lanczos cannot resolve a dense cluster at a minimum a RuntimeError says so; the dense
method is the tool for spectra at minima. What was measured: docs/curvature.md.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.sparse.linalg as sla
import torch
from torch import Tensor

DENSE_MAX_PARAMS = 3000  # method="auto": dense eigvalsh up to this many parameters
LANCZOS_TOL = 1e-12  # ARPACK's relative tolerance (absolute ~LANCZOS_TOL |H| at the low end)
KRYLOV_MIN = 40  # Krylov space of max(2k + 1, KRYLOV_MIN) vectors (20 failed on clusters)
_SHIFT_MARGIN = 1e-3  # sigma = lambda_max (1 + _SHIFT_MARGIN) for the low end
_WHICH = ("both", "lowest", "highest")


class SpectrumCounts(NamedTuple):
    """Counts of negative, zero and positive Hessian eigenvalues (a saddle's index first)."""

    negative: int
    zero: int
    positive: int


def hessian_operator(loss: Any, theta: Tensor) -> sla.LinearOperator:
    """H(theta) as a symmetric float64 ``LinearOperator`` of ``loss.hvp`` (never formed)."""
    P = int(loss.num_params)
    theta = theta.detach().to(torch.float64)

    def matvec(v: np.ndarray) -> np.ndarray:
        vt = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).reshape(-1))
        return loss.hvp(theta, vt).detach().numpy()

    return sla.LinearOperator((P, P), matvec=matvec, rmatvec=matvec, dtype=np.float64)


def hessian_spectrum(
    loss: Any, theta: Tensor, k: int | None = None, method: str = "auto", which: str = "both"
) -> Tensor:
    """Eigenvalues of the Hessian of ``loss`` at ``theta``, ascending, float64.

    Args:
        loss: a :class:`weightsym.Loss` (or anything with ``num_params``, ``hessian`` for the
            dense method and ``hvp`` for Lanczos).
        theta: the point.
        k: None for all P eigenvalues; else the k lowest and/or k highest (see ``which``).
        method: "dense" (``eigvalsh`` of the exact Hessian), "lanczos" (``eigsh`` on
            :func:`hessian_operator`, needs k with 2k < P) or "auto" (dense when k is None or
            P <= :data:`DENSE_MAX_PARAMS`, else Lanczos).
        which: "both" (2k values, lowest then highest), "lowest" or "highest" (k values).
    """
    if not hasattr(loss, "num_params") or not (hasattr(loss, "hessian") or hasattr(loss, "hvp")):
        raise TypeError(
            "loss must be a weightsym.Loss or an objective with num_params and hessian or hvp; "
            f"got {type(loss).__name__}"
        )
    P = int(loss.num_params)
    _check_args(k, method, which)
    if method == "auto":
        method = "dense" if k is None or P <= DENSE_MAX_PARAMS else "lanczos"
    if method == "dense":
        ev = torch.linalg.eigvalsh(_symmetric(loss.hessian(theta)))
        if k is None or (2 * k >= P and which == "both"):
            return ev
        parts = {"lowest": [ev[:k]], "highest": [ev[-k:]], "both": [ev[:k], ev[-k:]]}[which]
        return torch.cat(parts)
    if k is None or 2 * k >= P:
        raise ValueError(f"method='lanczos' needs k with 2k < num_params = {P}; got k={k}")
    op = hessian_operator(loss, theta)
    top = _lanczos(op, k if which != "lowest" else 1, "LA")
    if which == "highest":
        return torch.from_numpy(top)
    sigma = float(top[-1]) + _SHIFT_MARGIN * max(abs(float(top[-1])), 1e-300)
    shifted = sla.LinearOperator(op.shape, matvec=lambda v: sigma * v - op @ v, dtype=op.dtype)
    low = np.sort(sigma - _lanczos(shifted, k, "LA"))
    return torch.from_numpy(low if which == "lowest" else np.concatenate([low, top]))


def _lanczos(op: sla.LinearOperator, k: int, which: str) -> np.ndarray:
    """k eigenvalues of ``op`` at the ``which`` end by ARPACK, or a RuntimeError saying why not."""
    n = op.shape[0]
    v0 = np.random.default_rng(0).standard_normal(n)
    ncv = min(n, max(2 * k + 1, KRYLOV_MIN))
    try:
        vals = sla.eigsh(
            op, k=k, which=which, ncv=ncv, tol=LANCZOS_TOL, v0=v0, return_eigenvectors=False
        )
    except sla.ArpackNoConvergence as err:
        raise RuntimeError(
            f"Lanczos (ARPACK eigsh) did not converge for {k} eigenvalues of the Hessian "
            f"(P = {n}): {err}. The end asked for is a cluster narrower than ~1e-12 |H|, as the "
            "low end is at minima and permutation points; use method='dense'."
        ) from err
    return np.sort(vals)


def saddle_index(
    loss: Any, theta: Tensor, rtol: float = 1e-8, k: int | None = None
) -> SpectrumCounts:
    """(negative, zero, positive) eigenvalue counts of the Hessian at ``theta``.

    An eigenvalue counts as zero when |lambda| <= rtol * max|lambda|. With ``k`` given, only the
    2k eigenvalues at the two ends (:func:`hessian_spectrum` with ``which="both"``) are counted,
    so the counts add up to 2k, not P: enough for a saddle's index when it is below k.
    """
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not rtol >= 0:
        raise ValueError(f"rtol must be a non-negative number; got {rtol!r}")
    return spectrum_counts(hessian_spectrum(loss, theta, k=k), rtol)


def spectrum_counts(ev: Tensor, rtol: float) -> SpectrumCounts:
    """Counts (negative, zero, positive) of ``ev``; zero: |lambda| <= rtol max|lambda|."""
    cut = rtol * float(ev.abs().max())
    zero = int((ev.abs() <= cut).sum())
    negative = int((ev < -cut).sum())
    return SpectrumCounts(negative, zero, ev.numel() - zero - negative)


RITZ_RTOL = 1e-8
"""A Ritz value below -RITZ_RTOL x the largest |Ritz value| counts as negative."""


class RitzBound(NamedTuple):
    """What a few Lanczos steps certify about the Hessian's index (:func:`saddle_bound`).

    ``negative`` is a lower bound on the number of negative eigenvalues, ``lowest`` an upper
    bound on the lowest eigenvalue, ``highest`` a lower bound on the highest; ``steps`` is the
    number of Ritz values (the Lanczos steps taken).
    """

    negative: int
    lowest: float
    highest: float
    steps: int


def ritz_values(loss: Any, theta: Tensor, steps: int, seed: int = 0) -> Tensor:
    """Ritz values of the Hessian H at ``theta`` after ``steps`` Lanczos steps, ascending.

    Plain Lanczos on Hessian-vector products: from a seeded random unit q_1, for j = 1..m,
    w = H q_j - alpha_j q_j - ..., with full reorthogonalization against q_1..q_j (twice),
    beta_j = |w|, q_{j+1} = w / beta_j; the Ritz values are the eigenvalues of the tridiagonal
    T_m = tridiag(beta, alpha, beta), m = min(steps, P), stopped after m steps or at a breakdown
    (beta_j <= 1e-14 max |alpha|), not at a tolerance. By Cauchy interlacing the j-th lowest
    Ritz value is at least the j-th lowest eigenvalue of H, so a negative Ritz value certifies a
    negative eigenvalue however early Lanczos stops (the MNIST saddle index of paper Sec. 5,
    docs/theory.md section 7), where ARPACK at a tolerance (:func:`hessian_spectrum`) does not
    resolve the cluster of eigenvalues near zero.

    Args:
        loss: anything with ``num_params`` and ``hvp(theta, v)``, e.g. a :class:`weightsym.Loss`.
        theta: the point (float64, length P).
        steps: the number of Lanczos steps m (at most P are taken).
        seed: seed of the random start vector.

    Returns:
        The m (or fewer, after a breakdown) Ritz values, ascending.
    """
    P = int(loss.num_params)
    m = min(int(steps), P)
    gen = torch.Generator().manual_seed(seed)
    Q = torch.zeros(m + 1, P, dtype=theta.dtype)
    q = torch.randn(P, generator=gen, dtype=theta.dtype)
    Q[0] = q / q.norm()
    alpha, beta = [], []
    for j in range(m):
        w = loss.hvp(theta, Q[j])
        alpha.append(float(Q[j] @ w))
        for _ in range(2):  # full reorthogonalization, twice is enough
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        b = float(w.norm())
        if j == m - 1 or b <= 1e-14 * max(abs(a) for a in alpha):
            break
        beta.append(b)
        Q[j + 1] = w / b
    T = torch.diag(torch.tensor(alpha, dtype=theta.dtype))
    if beta:
        off = torch.tensor(beta[: len(alpha) - 1], dtype=theta.dtype)
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.eigvalsh(T)


def saddle_bound(ritz: Tensor, rtol: float = RITZ_RTOL) -> RitzBound:
    """The lower bound on the index that Ritz values give (see :func:`ritz_values`).

    Args:
        ritz: Ritz values, ascending.
        rtol: a Ritz value below -rtol max |Ritz value| counts as negative (as in
            :func:`spectrum_counts`).

    Returns:
        The :class:`RitzBound`: the count of negative Ritz values, the lowest and highest Ritz
        value and their number.
    """
    return RitzBound(
        negative=spectrum_counts(ritz, rtol).negative,
        lowest=float(ritz[0]),
        highest=float(ritz[-1]),
        steps=int(ritz.numel()),
    )


def _symmetric(H: Tensor) -> Tensor:
    return 0.5 * (H + H.T)


def _check_args(k: int | None, method: str, which: str) -> None:
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be None or a positive int; got {k!r}")
    if method not in ("auto", "dense", "lanczos"):
        raise ValueError(f"unknown method {method!r}; expected 'auto', 'dense' or 'lanczos'")
    if which not in _WHICH:
        raise ValueError(f"unknown which {which!r}; expected one of {_WHICH}")
    if k is None and which != "both":
        raise ValueError(f"which={which!r} needs k (the number of eigenvalues at that end)")
