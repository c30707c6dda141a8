"""Minimizers that run to a gradient tolerance, with one result type for every method.

The permutation path (docs/theory.md section 4) asks at every distance d for a minimum "until
convergence"; docs/theory.md section 5 explains why that is hard: at permutation points the
Hessian has exact zero eigenvalues, the sphere chart of the constrained problem makes it
singular by construction, and under-parameterized students often have no finite minimizer at
all (a channel to infinity). The solvers here therefore (i) converge to ``grad_inf <= tol`` (the
inf-norm of the gradient, docs/theory.md section 1) on singular and indefinite Hessians, and
(ii) report honestly, with ``success=False`` and a message naming the reason, when they do not:
budget exhausted, weights growing without bound while the loss keeps falling, no progress, or
NaN/inf. The solvers are described in docs/theory.md section 6.

Methods (``minimize(..., method=...)``), one module each, laid out like scipy's trust-region code:

* ``"newton"`` (:mod:`~weightsym.optimize.eigen`): trust-region Newton on the exact dense
  Hessian; the subproblem is solved exactly in the Hessian's eigenbasis (More and Sorensen 1983;
  Nocedal and Wright, *Numerical Optimization*, Sec. 4.3), hard case and zero eigenvalues
  included.
* ``"newton-cg"`` (:mod:`~weightsym.optimize.steihaug`): trust-region Newton-CG (Steihaug 1983;
  Nocedal and Wright Alg. 7.2) on Hessian-vector products, for networks with tens of thousands
  of parameters.
* ``"lbfgs"`` (:mod:`~weightsym.optimize.lbfgs`): scipy's L-BFGS-B in float64 with
  ``gtol = tol`` and ``ftol = 0``, so that it stops only at the tolerance or when its line search
  fails (reported as no progress).
* ``"gd"`` (:mod:`~weightsym.optimize.gd`): full-batch gradient descent with a fixed step
  ``lr``: the paper's method (Sec. 4.1).
* ``"auto"``: ``"newton"`` when the objective has ``value_grad_hessian`` and at most
  :data:`DENSE_MAX_PARAMS` parameters, else ``"newton-cg"`` when it has ``hvp``, else ``"lbfgs"``.

The two trust-region methods share the loop of :mod:`~weightsym.optimize.trust_region`; every
method shares the bookkeeping and stop tests of :mod:`~weightsym.optimize.run` and returns an
:class:`OptimizeResult` (:mod:`~weightsym.optimize.result`).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from torch import Tensor

from weightsym.optimize.eigen import _newton
from weightsym.optimize.gd import DEFAULT_LR, GD_RISES, _gd
from weightsym.optimize.lbfgs import _lbfgs
from weightsym.optimize.result import Objective, OptimizeResult, Status
from weightsym.optimize.run import (
    GROWTH_LIMIT,
    GROWTH_NOTE,
    _positive,
    _positive_int,
    _Run,
    _Stop,
)
from weightsym.optimize.steihaug import _newton_cg
from weightsym.validation import check_vector

__all__ = [
    "DEFAULT_LR",
    "DEFAULT_MAX_ITER",
    "DEFAULT_TOL",
    "DENSE_MAX_PARAMS",
    "GD_RISES",
    "GROWTH_LIMIT",
    "GROWTH_NOTE",
    "METHODS",
    "Objective",
    "OptimizeResult",
    "Status",
    "minimize",
]

DENSE_MAX_PARAMS = 1500  # "auto" uses the dense Newton method up to this many parameters
DEFAULT_TOL = 1e-12  # the tolerance on grad_inf
DEFAULT_MAX_ITER = {"newton": 1000, "newton-cg": 1000, "lbfgs": 15000, "gd": 100_000}
METHODS = ("auto", "newton", "newton-cg", "lbfgs", "gd")

_SOLVERS: dict[str, Callable[..., None]] = {
    "newton": _newton,
    "newton-cg": _newton_cg,
    "lbfgs": _lbfgs,
    "gd": _gd,
}
_NEEDS = {"newton": "value_grad_hessian", "newton-cg": "hvp"}
_RUN_OPTIONS = ("growth_limit", "max_fev")  # options of every method, taken by the _Run


def minimize(
    objective: Objective,
    x0: Tensor,
    method: str = "auto",
    tol: float = DEFAULT_TOL,
    max_iter: int | None = None,
    callback: Callable[[Tensor, dict], Any] | None = None,
    **options: Any,
) -> OptimizeResult:
    """Minimize ``objective`` from ``x0`` until ``grad_inf <= tol``.

    Args:
        objective: anything with the :class:`Objective` protocol, e.g. :class:`weightsym.Loss`.
        x0: start, a finite 1-D float tensor of length ``objective.num_params`` (not modified).
        method: one of :data:`METHODS` (see the module docstring).
        tol: the tolerance on the inf-norm of the gradient; ``success`` iff it is met.
        max_iter: iteration budget; default :data:`DEFAULT_MAX_ITER` of the method.
        callback: ``callback(x, info)`` after every iteration; ``info`` holds ``nit``, ``fun``,
            ``grad_inf`` and method details. A true return value stops the run.
        **options: ``growth_limit`` (default :data:`GROWTH_LIMIT`; None switches the test off):
            stop as "diverging" once max|x| > growth_limit * max(1, max|x0|) while the loss
            still decreases; ``max_fev`` (default None): a budget of value evaluations;
            ``radius``, ``max_radius`` (trust region, defaults ``trust_region.RADIUS`` and
            ``trust_region.MAX_RADIUS``); ``patience`` (trust region, default None: off): stop
            after that many accepted steps that did not halve the best grad_inf;
            ``cg_max_iter`` ("newton-cg", default ``steihaug.CG_ITER_PER_PARAM * num_params``,
            as scipy's "Newton-CG"; CG usually stops earlier, at the forcing tolerance
            min(0.5, sqrt|g|) |g|); ``maxcor`` ("lbfgs", default ``lbfgs.MAXCOR``); ``lr``
            ("gd", default :data:`DEFAULT_LR`).

    Returns:
        An :class:`OptimizeResult`; ``success`` is False, with the reason in ``message`` and
        ``status`` (a :class:`Status`), when the budget runs out, the weights grow without
        bound, the method stops making progress, or a NaN/inf appears.

    Raises:
        TypeError: ``objective`` lacks the protocol or the derivatives ``method`` needs, ``x0``
            is not a floating tensor, an option is unknown to the method, or ``callback`` is
            not callable.
        ValueError: a bad ``x0`` shape or value, ``method``, ``tol``, ``max_iter`` or option.
    """
    if not isinstance(objective, Objective):
        raise TypeError(
            "objective must have num_params and value_and_grad(x) (the Objective protocol); "
            f"got {type(objective).__name__}"
        )
    x0 = check_vector(x0, int(objective.num_params), "x0").detach().clone()
    tol = _positive("tol", tol)
    method = _resolve_method(method, objective)
    max_iter = DEFAULT_MAX_ITER[method] if max_iter is None else max_iter
    max_iter = _positive_int("max_iter", max_iter, allow_zero=True)
    growth_limit, max_fev = _run_options(method, options)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable; got {type(callback).__name__}")
    run = _Run(objective, tol, max_iter, max_fev, growth_limit, callback)
    t0 = time.perf_counter()
    stop = _Stop(Status.NO_PROGRESS, "the solver returned without a verdict")
    try:
        run.start(x0, hessian=method == "newton")
        _SOLVERS[method](run, **options)
    except _Stop as raised:
        stop = raised
    return run.result(stop, method, time.perf_counter() - t0)


def _run_options(method: str, options: dict[str, Any]) -> tuple[float | None, int | None]:
    """Pop and check ``growth_limit`` and ``max_fev``; reject options ``method`` lacks."""
    growth_limit = options.pop("growth_limit", GROWTH_LIMIT)
    if growth_limit is not None:
        _positive("growth_limit", growth_limit)
    max_fev = options.pop("max_fev", None)
    if max_fev is not None:
        _positive_int("max_fev", max_fev)
    allowed = set(inspect.signature(_SOLVERS[method]).parameters) - {"run"}
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(
            f"unknown option(s) {sorted(unknown)} for method {method!r}; it accepts "
            f"{sorted(allowed | set(_RUN_OPTIONS))}"
        )
    return growth_limit, max_fev


def _resolve_method(method: str, objective: Any) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if method == "auto":
        if hasattr(objective, "value_grad_hessian") and objective.num_params <= DENSE_MAX_PARAMS:
            return "newton"
        return "newton-cg" if hasattr(objective, "hvp") else "lbfgs"
    needed = _NEEDS.get(method)
    if needed is not None and not callable(getattr(objective, needed, None)):
        raise TypeError(
            f"method {method!r} needs objective.{needed}, which "
            f"{type(objective).__name__} does not have; use method='lbfgs' or 'gd'"
        )
    return method
