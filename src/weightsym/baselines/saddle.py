"""Refine a point to a critical point with the exact Hessian, and certify it (docs/theory.md
section 9).

Newton on the gradient. At x, with H = V diag(lambda) V^T the exact dense Hessian, the step is
the least-squares solution of H s = -g (the pseudo-inverse),

    s = -sum_{|lambda_i| > PINV_RTOL max|lambda|} v_i (v_i^T g) / lambda_i,

so that zero modes (the exact symmetries of a network: rescalings, equal-loss directions) are
left alone. Newton's iteration converges quadratically to the critical point nearest the start
whatever its index; it is therefore started from a point already close to a saddle (the climbing
image of a nudged elastic band). Each step is backtracked (halved) until it decreases |g|_2, so
the iteration never moves to a point with a larger gradient; it stops when grad_inf <= tol, or
when no halving decreases |g| (rounding level), reported honestly.

The certificate is the dense spectrum at the final point: the counts of negative, zero and
positive eigenvalues, zero meaning |lambda| <= :data:`ZERO_RTOL` max|lambda|, counted by
:func:`weightsym.curvature.spectrum_counts`. A first-order saddle has ``negative == 1``.
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import torch
from torch import Tensor

from weightsym.baselines.common import check_count, check_objective, check_positive
from weightsym.curvature import spectrum_counts
from weightsym.optimize import OptimizeResult, Status
from weightsym.validation import check_vector

ZERO_RTOL = 1e-8  # certificate: an eigenvalue is zero when |lambda| <= ZERO_RTOL * max|lambda|
PINV_RTOL = 1e-10  # Newton step: directions with |lambda| <= PINV_RTOL * max|lambda| are left out
LOWEST = 6  # the certificate lists this many lowest eigenvalues (fewer when P is smaller)
DEFAULT_TOL = 1e-12  # refine_saddle: target grad_inf
DEFAULT_MAX_ITER = 50  # refine_saddle: Newton iterations
MAX_HALVINGS = 40  # backtracking: halvings of the Newton step before giving up


class SaddleCertificate(NamedTuple):
    """What the dense spectrum at a refined point says about it.

    ``grad_inf`` is the inf-norm of the gradient there; ``negative``, ``zero`` and ``positive``
    count Hessian eigenvalues (zero: |lambda| <= :data:`ZERO_RTOL` max|lambda|);
    ``eigenvalues_lowest`` holds the min(P, :data:`LOWEST`) lowest, ascending.
    """

    grad_inf: float
    negative: int
    zero: int
    positive: int
    eigenvalues_lowest: Tensor

    @property
    def index(self) -> int:
        """The number of negative eigenvalues (1 for a first-order saddle)."""
        return self.negative


def certify(objective: Any, x: Tensor) -> SaddleCertificate:
    """The :class:`SaddleCertificate` of ``x`` from ``objective.value_grad_hessian(x)``."""
    _, g, H = objective.value_grad_hessian(x)
    return _certificate(g, H)


def _certificate(g: Tensor, H: Tensor) -> SaddleCertificate:
    ev = torch.linalg.eigvalsh(0.5 * (H + H.T))
    counts = spectrum_counts(ev, ZERO_RTOL)
    return SaddleCertificate(
        _inf(g), counts.negative, counts.zero, counts.positive, ev[:LOWEST].clone()
    )


def refine_saddle(
    objective: Any, x: Tensor, tol: float = DEFAULT_TOL, max_iter: int = DEFAULT_MAX_ITER
) -> tuple[OptimizeResult, SaddleCertificate]:
    """Newton's method on the gradient from ``x`` (see the module docstring), then a certificate.

    Args:
        objective: anything with ``num_params``, ``value_and_grad(x)`` and
            ``value_grad_hessian(x) -> (float, Tensor, Tensor)`` (e.g. :class:`weightsym.Loss`).
        x: the start, a finite 1-D float tensor of length ``objective.num_params``; typically
            the climbing image of :func:`weightsym.baselines.neb_path`.
        tol: stop when grad_inf <= tol; ``success`` iff it is met.
        max_iter: Newton iterations at most.

    Returns:
        ``(result, certificate)``: a :class:`weightsym.optimize.OptimizeResult` (``x``, ``fun``,
        ``grad_inf``, ``success``, ``message``; method ``"newton-saddle"``) and the
        :class:`SaddleCertificate` at ``result.x``.

    Raises:
        TypeError: ``objective`` lacks ``value_grad_hessian`` or the Objective protocol, or
            ``x`` is not a float tensor.
        ValueError: ``x`` has the wrong shape or is not finite; ``tol`` or ``max_iter`` is not
            positive.
    """
    check_objective(objective, hessian=True)
    x = check_vector(x, int(objective.num_params), "x").detach().clone()
    tol = check_positive("tol", tol)
    max_iter = check_count("max_iter", max_iter, minimum=1)
    t0 = time.perf_counter()
    start = float(x.abs().max())
    f, g, H = objective.value_grad_hessian(x)
    counts = {"nit": 0, "nfev": 1, "nhev": 1}
    status, message = Status.MAX_ITER, ""
    while True:
        if not (math.isfinite(f) and bool(torch.isfinite(g).all() and torch.isfinite(H).all())):
            status, message = Status.NONFINITE, "NaN or inf in the value, gradient or Hessian"
            break
        if _inf(g) <= tol:
            status = Status.CONVERGED
            message = f"converged: grad_inf {_inf(g):.3g} <= tol {tol:.3g}"
            break
        if counts["nit"] >= max_iter:
            message = f"budget exhausted: grad_inf {_inf(g):.3g} > tol {tol:.3g}"
            break
        step = _backtracked_step(objective, x, g, H, counts)
        counts["nit"] += 1
        if step is None:
            status = Status.NO_PROGRESS
            message = (
                f"no progress: no fraction of the Newton step decreases |g|; grad_inf "
                f"{_inf(g):.3g} > tol {tol:.3g} (rounding level reached?)"
            )
            break
        x = step
        f, g, H = objective.value_grad_hessian(x)
        counts["nfev"] += 1
        counts["nhev"] += 1
    result = OptimizeResult(
        x=x,
        fun=float(f),
        grad_inf=_inf(g),
        nit=counts["nit"],
        nfev=counts["nfev"],
        ngev=counts["nfev"],
        nhev=counts["nhev"],
        nhvp=0,
        success=status == Status.CONVERGED,
        status=int(status),
        message=f"{message} after {counts['nit']} Newton iterations",
        method="newton-saddle",
        wall_time=time.perf_counter() - t0,
        max_weight=float(x.abs().max()),
        max_weight_start=start,
    )
    return result, _certificate(g, H)


def newton_step(g: Tensor, H: Tensor) -> Tensor:
    """The least-squares solution of H s = -g, leaving out near-zero eigen-directions."""
    lam, V = torch.linalg.eigh(0.5 * (H + H.T))
    keep = lam.abs() > PINV_RTOL * float(lam.abs().max())
    Vk = V[:, keep]
    return -Vk @ ((Vk.T @ g) / lam[keep])


def _backtracked_step(
    objective: Any, x: Tensor, g: Tensor, H: Tensor, counts: dict[str, int]
) -> Tensor | None:
    """x + alpha s for the first alpha = 1, 1/2, 1/4, ... that decreases |g|_2; else None."""
    s = newton_step(g, H)
    norm = float(torch.linalg.vector_norm(g))
    alpha = 1.0
    for _ in range(MAX_HALVINGS):
        trial = x + alpha * s
        f_new, g_new = objective.value_and_grad(trial)
        counts["nfev"] += 1
        if math.isfinite(f_new) and float(torch.linalg.vector_norm(g_new)) < norm:
            return trial
        alpha *= 0.5
    return None


def _inf(g: Tensor) -> float:
    return float(g.abs().max()) if g.numel() else 0.0
