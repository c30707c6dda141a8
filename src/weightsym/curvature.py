"""The Hessian of a loss at a point: as a scipy operator, its spectrum at both ends, its index.

SPEC section 2 predicts the spectrum at permutation points: K guaranteed zero eigenvalues (plus
the smaller network's) and, when n_{k+1} >= 2, negative ones (a strict saddle). Small networks
use the exact dense Hessian (:meth:`weightsym.Loss.hessian`) and ``torch.linalg.eigvalsh``; large
ones the Lanczos method (ARPACK ``eigsh``) on Hessian-vector products (:meth:`weightsym.Loss.hvp`),
wrapped as a ``scipy.sparse.linalg.LinearOperator`` so that scipy's solvers apply directly (the
design of curvlinops).

The lowest end. ARPACK's Krylov spaces are shift-invariant, so ``which="SA"`` and "largest of
sigma I - H" build the same space and converge alike; what matters is that we never ask for the
smallest *magnitude* (``which="SM"``, which converges very slowly without shift-invert, and
shift-invert needs solves with H). We therefore call ``eigsh`` twice, ``which="LA"`` for the top
and ``which="SA"`` for the bottom, each with a Krylov space of ``max(2k + 1, 20)`` vectors,
``tol=0`` (machine precision) and a fixed start vector, so results are reproducible.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.sparse.linalg as sla
import torch
from torch import Tensor

DENSE_MAX_PARAMS = 3000  # method="auto": dense eigvalsh up to this many parameters
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
    ends = {"lowest": ["SA"], "highest": ["LA"], "both": ["SA", "LA"]}[which]
    vals = [_lanczos(op, k, end) for end in ends]
    return torch.from_numpy(np.concatenate(vals))


def _lanczos(op: sla.LinearOperator, k: int, which: str) -> np.ndarray:
    n = op.shape[0]
    v0 = np.random.default_rng(0).standard_normal(n)
    ncv = min(n, max(2 * k + 1, 20))
    vals = sla.eigsh(op, k=k, which=which, ncv=ncv, tol=0.0, v0=v0, return_eigenvectors=False)
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
    ev = hessian_spectrum(loss, theta, k=k)
    cut = rtol * float(ev.abs().max())
    zero = int((ev.abs() <= cut).sum())
    negative = int((ev < -cut).sum())
    return SpectrumCounts(negative, zero, ev.numel() - zero - negative)


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
