"""minimize(method="lbfgs"): scipy's L-BFGS-B reports convergence or its stall honestly
(problems in tests/optimize_problems.py)."""

from __future__ import annotations

import pytest
from optimize_problems import TOL, assert_honest, teacher_student

import weightsym as ws
from weightsym.optimize import Status


@pytest.mark.parametrize(("act", "seed"), [("tanh", 1), ("softplus", 0)])
def test_lbfgs_reports_honestly(act, seed):
    loss, x0 = teacher_student(act, seed)
    res = ws.minimize(loss, x0, method="lbfgs", tol=TOL)
    assert res.method == "lbfgs" and res.nit > 0 and res.nhev == 0
    assert_honest(res, loss, TOL)
    assert res.success or res.message.startswith(("no progress: L-BFGS-B", "diverging"))
    assert res.fun < loss(x0)


def test_lbfgs_stall_is_reported():
    loss, x0 = teacher_student("tanh", 1)
    res = ws.minimize(loss, x0, method="lbfgs", tol=1e-300)  # below any reachable gradient
    assert not res.success
    assert res.status == Status.NO_PROGRESS
    assert res.message.startswith("no progress: L-BFGS-B stalled")
    assert_honest(res, loss, 1e-300)
