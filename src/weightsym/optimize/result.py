"""What every minimizer takes and returns: the :class:`Objective` protocol, :class:`Status` and
:class:`OptimizeResult`.

One result type for every method, like ``scipy.optimize.OptimizeResult``, so that callers never
care which solver ran. A run succeeds exactly when ``grad_inf <= tol``, where
``grad_inf = max_i |df/dx_i|`` is the inf-norm of the gradient (docs/theory.md sections 1
and 6); otherwise ``status`` and ``message`` name the reason it stopped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class Objective(Protocol):
    """What :func:`minimize` needs: ``num_params`` and ``value_and_grad(x) -> (float, Tensor)``.

    Optional: ``value_grad_hessian(x) -> (float, Tensor, Tensor)`` (for ``"newton"``) and
    ``hvp(x, v) -> Tensor`` (for ``"newton-cg"``). :class:`weightsym.Loss` has all of them.
    """

    @property
    def num_params(self) -> int: ...

    def value_and_grad(self, x: Tensor) -> tuple[float, Tensor]: ...


class Status(enum.IntEnum):
    """Why a run stopped; ``OptimizeResult.status`` holds one of these (an int)."""

    CONVERGED = 0
    MAX_ITER = 1
    MAX_EVAL = 2
    DIVERGING = 3
    NO_PROGRESS = 4
    NONFINITE = 5
    CALLBACK = 6


@dataclass
class OptimizeResult:
    """The outcome of :func:`minimize`, like ``scipy.optimize.OptimizeResult``.

    ``success`` is True exactly when ``grad_inf <= tol``. ``nfev`` counts value evaluations,
    ``ngev`` gradient evaluations (a ``value_grad_hessian`` call counts once in each of
    ``nfev``, ``ngev`` and ``nhev``), ``nhvp`` Hessian-vector products. ``nit`` counts
    iterations, rejected trust-region steps included. ``max_weight`` and ``max_weight_start``
    are max|x| at the end and at the start.
    """

    x: Tensor
    fun: float
    grad_inf: float
    nit: int
    nfev: int
    ngev: int
    nhev: int
    nhvp: int
    success: bool
    status: int
    message: str
    method: str
    wall_time: float
    max_weight: float
    max_weight_start: float

    @property
    def reason(self) -> str:
        """The status as a word: "converged", "max_iter", "diverging", "no_progress", ..."""
        return Status(self.status).name.lower()

    def __repr__(self) -> str:
        return (
            f"OptimizeResult(method={self.method!r}, success={self.success}, "
            f"fun={self.fun:.6g}, grad_inf={self.grad_inf:.3g}, nit={self.nit}, "
            f"message={self.message!r})"
        )
