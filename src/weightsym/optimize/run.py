"""Bookkeeping shared by every method: counted evaluations, the accepted point, stop tests.

A solver moves a :class:`_Run` from accepted point to accepted point and never returns: every
stop, success included, is a :class:`_Stop` carrying a :class:`Status` and a message. The stop
tests (docs/theory.md section 6), applied after every iteration:

* converged: ``grad_inf <= tol``;
* diverging: ``max|x| > growth_limit * max(1, max|x0|)`` while ``f`` still decreases, the mark of
  a channel to infinity (docs/theory.md section 5), where the infimum is not attained;
* budgets: ``max_iter`` iterations, ``max_fev`` value evaluations;
* NaN or inf in the value, gradient or Hessian: the run ends at the last finite point;
* a true return value of the callback.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from weightsym.optimize.result import OptimizeResult, Status

GROWTH_LIMIT = 10.0  # "diverging" once max|x| > GROWTH_LIMIT * max(1, max|x0|) while f falls
GROWTH_NOTE = 2.0  # a converged run whose max|x| grew more than this says so in its message


class _Stop(Exception):
    """Raised inside a solver to end the run; carries the status and the message."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _finite(f: float, *tensors: Tensor) -> bool:
    return math.isfinite(f) and all(bool(torch.isfinite(t).all()) for t in tensors)


class _Run:
    """The state of one run of :func:`minimize`.

    :func:`minimize` calls :meth:`start`; a solver then, per iteration, moves with :meth:`move`
    (accepted points only) and ends the iteration with :meth:`end_iteration`.
    """

    def __init__(
        self,
        objective: Any,
        tol: float,
        max_iter: int,
        max_fev: int | None,
        growth_limit: float | None,
        callback: Callable[[Tensor, dict], Any] | None,
    ) -> None:
        self.objective, self.tol, self.max_iter, self.max_fev = objective, tol, max_iter, max_fev
        self.growth_limit, self.callback = growth_limit, callback
        self.nit = self.nfev = self.ngev = self.nhev = self.nhvp = 0
        self.x: Tensor = torch.empty(0)
        self.f, self.g, self.grad_inf = math.inf, torch.empty(0), math.inf
        self.f_prev = math.inf
        self.weight_start = 0.0
        self.H0: Tensor | None = None

    # -- counted evaluations --------------------------------------------------------------------
    def _charge(self) -> None:
        if self.max_fev is not None and self.nfev >= self.max_fev:
            raise _Stop(
                Status.MAX_EVAL,
                f"budget exhausted: grad_inf {self.grad_inf:.3g} > tol {self.tol:.3g} after "
                f"{self.nfev} function evaluations (max_fev) and {self.nit} iterations",
            )
        self.nfev += 1
        self.ngev += 1

    def value_and_grad(self, x: Tensor) -> tuple[float, Tensor]:
        self._charge()
        f, g = self.objective.value_and_grad(x)
        return float(f), g

    def value_grad_hessian(self, x: Tensor) -> tuple[float, Tensor, Tensor]:
        self._charge()
        self.nhev += 1
        f, g, H = self.objective.value_grad_hessian(x)
        return float(f), g, H

    def hvp(self, v: Tensor) -> Tensor:
        self.nhvp += 1
        return self.objective.hvp(self.x, v)

    # -- the accepted point -----------------------------------------------------------------------
    def start(self, x0: Tensor, hessian: bool = False) -> None:
        """Evaluate at x0 (with the Hessian, kept as ``H0``, for the dense trust region) and
        stop at once if it already meets the tolerance."""
        self.weight_start = float(x0.abs().max()) if x0.numel() else 0.0
        if hessian:
            f, g, self.H0 = self.value_grad_hessian(x0)
            self.move(x0, f, g, self.H0)
        else:
            self.move(x0, *self.value_and_grad(x0))
        self.check()
        if self.max_iter == 0:
            raise _Stop(Status.MAX_ITER, self._budget_message())

    def move(self, x: Tensor, f: float, g: Tensor, *extra: Tensor) -> None:
        """Accept (x, f, g); a NaN/inf stops the run at the last finite point."""
        if not _finite(f, g, *extra):
            raise _Stop(
                Status.NONFINITE,
                f"NaN or inf in the loss, gradient or Hessian after {self.nit} iterations; "
                "returning the last finite point",
            )
        self.f_prev = self.f
        self.x, self.f, self.g = x, f, g
        self.grad_inf = float(g.abs().max()) if g.numel() else 0.0

    def end_iteration(self, **info: Any) -> None:
        """Count the iteration, call the callback, then apply the stop tests."""
        self.nit += 1
        if self.callback is not None:
            info.update(nit=self.nit, fun=self.f, grad_inf=self.grad_inf)
            if self.callback(self.x, info):
                raise _Stop(Status.CALLBACK, f"stopped by the callback after {self.nit} iterations")
        self.check()
        if self.nit >= self.max_iter:
            raise _Stop(Status.MAX_ITER, self._budget_message())

    def _budget_message(self) -> str:
        return (
            f"budget exhausted: grad_inf {self.grad_inf:.3g} > tol {self.tol:.3g} after "
            f"{self.nit} iterations (max_iter {self.max_iter})"
        )

    def check(self) -> None:
        """Stop when converged, or when the weights grow while the loss falls."""
        w = float(self.x.abs().max())
        base = max(1.0, self.weight_start)
        if self.grad_inf <= self.tol:
            note = ""
            if w > GROWTH_NOTE * base:
                note = (
                    f"; note: the largest weight grew {w / base:.3g}x ({self.weight_start:.3g} "
                    f"to {w:.3g}): if it keeps growing as tol is tightened, the infimum lies at "
                    "infinity (a channel, docs/theory.md section 5)"
                )
            raise _Stop(
                Status.CONVERGED,
                f"converged: grad_inf {self.grad_inf:.3g} <= tol {self.tol:.3g} after "
                f"{self.nit} iterations{note}",
            )
        if self.growth_limit is not None and self.f < self.f_prev and w > self.growth_limit * base:
            raise _Stop(
                Status.DIVERGING,
                f"diverging: the largest weight grew from {self.weight_start:.3g} to {w:.3g} "
                f"({w / base:.3g}x, growth_limit {self.growth_limit:g}) while the loss kept "
                f"decreasing (to {self.f:.6g}); grad_inf {self.grad_inf:.3g} > tol "
                f"{self.tol:.3g} after {self.nit} iterations: the infimum may lie at infinity "
                "(a channel, docs/theory.md section 5), not at a minimum",
            )

    def no_progress(self, why: str) -> _Stop:
        return _Stop(
            Status.NO_PROGRESS,
            f"no progress: {why}; grad_inf {self.grad_inf:.3g} > tol {self.tol:.3g} after "
            f"{self.nit} iterations",
        )

    def result(self, stop: _Stop, method: str, wall_time: float) -> OptimizeResult:
        """The :class:`OptimizeResult` of a run that ended with ``stop``."""
        return OptimizeResult(
            x=self.x,
            fun=self.f,
            grad_inf=self.grad_inf,
            nit=self.nit,
            nfev=self.nfev,
            ngev=self.ngev,
            nhev=self.nhev,
            nhvp=self.nhvp,
            success=stop.status == Status.CONVERGED,
            status=stop.status,
            message=stop.message,
            method=method,
            wall_time=wall_time,
            max_weight=float(self.x.abs().max()) if self.x.numel() else 0.0,
            max_weight_start=self.weight_start,
        )


def _positive(name: str, value: Any) -> float:
    """``value`` as a float if it is a positive number (not a bool), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}")
    return float(value)


def _positive_int(name: str, value: Any, allow_zero: bool = False) -> int:
    """``value`` if it is a positive (or, with ``allow_zero``, non-negative) int, else
    ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {kind} int; got {value!r}")
    return value
