"""L-BFGS-B (``"lbfgs"``) via scipy, run to the gradient tolerance.

scipy's L-BFGS-B (Byrd, Lu, Nocedal and Zhu 1995; Nocedal and Wright Sec. 7.2) keeps ``maxcor``
pairs (s_k, y_k) = (x_{k+1} - x_k, g_{k+1} - g_k) to build an inverse-Hessian approximation and
takes line-search steps along it. Here it runs in float64 with ``gtol = tol`` (its projected
gradient test is the inf-norm test grad_inf <= tol) and ``ftol = 0``, so it stops only at the
tolerance or when its line search fails, which is reported as no progress. See docs/theory.md
section 6.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.optimize
import torch

from weightsym.optimize.result import Status
from weightsym.optimize.run import _finite, _positive_int, _Run, _Stop

MAXCOR = 20  # default number of correction pairs kept by L-BFGS-B


def _lbfgs(run: _Run, *, maxcor: int = MAXCOR) -> None:
    """scipy L-BFGS-B in float64, gtol = tol and ftol = 0: it stops at the tolerance or stalls."""
    _positive_int("maxcor", maxcor)
    x0 = run.x
    last: dict[str, Any] = {}

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        x = torch.from_numpy(z.copy()).to(x0.dtype)
        f, g = run.value_and_grad(x)
        if not _finite(f, g):
            raise _Stop(Status.NONFINITE, "NaN or inf at a trial point of the L-BFGS line search")
        last.update(x=x, f=f, g=g)
        return f, g.detach().numpy().astype(np.float64)

    def at(z: np.ndarray) -> None:
        x = torch.from_numpy(np.asarray(z, dtype=np.float64)).to(x0.dtype)
        if "x" in last and bool((last["x"] == x).all()):
            run.move(x, last["f"], last["g"])
        else:
            run.move(x, *run.value_and_grad(x))

    def callback(intermediate_result: scipy.optimize.OptimizeResult) -> None:
        at(intermediate_result.x)
        run.end_iteration()

    big = np.iinfo(np.int32).max
    res = scipy.optimize.minimize(
        fun,
        x0.detach().numpy().astype(np.float64),
        jac=True,
        method="L-BFGS-B",
        callback=callback,
        options={"maxiter": big, "maxfun": big, "gtol": run.tol, "ftol": 0.0, "maxcor": maxcor},
    )
    at(res.x)
    run.check()
    why = str(res.message)
    if "ABNORMAL" in why:
        why = f"its line search failed (scipy: {why!r})"
    elif "REDUCTION" in why:
        why = f"the loss stopped decreasing (scipy: {why!r})"
    raise run.no_progress(f"L-BFGS-B stalled, {why}")
