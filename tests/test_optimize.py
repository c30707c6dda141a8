"""minimize: method choice, argument checks, and the stop tests every method shares (weights
growing to infinity, NaN, budgets, callback), reported honestly. The problems are described in
tests/optimize_problems.py; each solver has its own test file (test_gd.py, test_lbfgs.py,
test_trust_region.py, test_trust_region_eigen.py, test_steihaug.py).
"""

from __future__ import annotations

import math

import pytest
import torch
from optimize_problems import (
    TOL,
    OnlyGradient,
    Quadratic,
    WithHvp,
    assert_honest,
    channel_quadratic,
    derivative_channel,
    f64,
    teacher_student,
)

import weightsym as ws
from weightsym import optimize
from weightsym.optimize import Status

# --------------------------------------------------------------------------- honest failures


@pytest.mark.parametrize("method", ["newton", "newton-cg", "lbfgs"])
def test_channel_to_infinity_is_reported_as_diverging(method):
    loss, x0 = derivative_channel("tanh")
    res = ws.minimize(loss, x0, method=method, tol=TOL, growth_limit=3)
    assert not res.success and res.status == Status.DIVERGING, res.message
    assert res.message.startswith("diverging: the largest weight grew from 1 to 3")
    assert res.max_weight > 3.0 and res.max_weight_start == 1.0
    assert res.fun < loss(x0)
    assert_honest(res, loss, TOL)


@pytest.mark.parametrize("method", ["newton", "newton-cg", "lbfgs", "gd"])
def test_unbounded_quadratic_is_reported_as_diverging(method):
    res = ws.minimize(channel_quadratic(), f64(1.0, 0.0), method=method)  # default growth limit
    assert res.status == Status.DIVERGING and "(a channel, docs/theory.md section 5)" in res.message
    assert res.max_weight > optimize.GROWTH_LIMIT


def test_nan_is_reported_and_the_last_finite_point_returned():
    class NanBeyond(Quadratic):  # NaN once |x| > 10
        def value_and_grad(self, x):
            if float(x.abs().max()) > 10:
                return math.nan, torch.full_like(x, math.nan)
            return super().value_and_grad(x)

    quad = NanBeyond(torch.eye(2, dtype=torch.float64), f64(0.0, 0.0))
    res = ws.minimize(quad, f64(1.0, -1.0), method="gd", lr=3.0)  # x <- -2x
    assert res.status == Status.NONFINITE and "NaN or inf" in res.message
    assert torch.equal(res.x, f64(-8.0, 8.0)) and res.nit == 3  # the last finite point


def test_evaluation_budget():
    loss, x0 = teacher_student("tanh", 0)
    res = ws.minimize(loss, x0, method="newton-cg", max_fev=3)
    assert res.status == Status.MAX_EVAL and "3 function evaluations (max_fev)" in res.message
    assert res.nfev == 3


def test_callback_sees_every_iteration_and_can_stop():
    loss, x0 = teacher_student("tanh", 0)
    seen = []

    def callback(x, info):
        seen.append((info["nit"], info["fun"], info["grad_inf"], float(x.abs().max())))
        return info["nit"] == 3

    res = ws.minimize(loss, x0, method="newton", callback=callback)
    assert res.status == Status.CALLBACK and res.nit == 3 and not res.success
    assert [s[0] for s in seen] == [1, 2, 3]
    assert seen[-1][1] == res.fun and seen[-1][2] == res.grad_inf


def test_start_at_a_minimum_and_zero_budget():
    quad = Quadratic(torch.diag(f64(1.0, 2.0)), f64(1.0, 2.0))
    res = ws.minimize(quad, f64(1.0, 1.0))
    assert res.success and res.nit == 0 and res.grad_inf == 0.0
    res = ws.minimize(quad, f64(0.0, 0.0), max_iter=0)
    assert res.status == Status.MAX_ITER and res.nit == 0 and res.nfev == 1


# --------------------------------------------------------------------------- method choice


def test_auto_picks_by_capability_and_size(monkeypatch):
    loss, x0 = teacher_student("tanh", 0)
    assert ws.minimize(loss, x0, max_iter=1).method == "newton"
    assert ws.minimize(WithHvp(loss), x0, max_iter=1).method == "newton-cg"
    assert ws.minimize(OnlyGradient(loss), x0, max_iter=1).method == "lbfgs"
    monkeypatch.setattr(optimize, "DENSE_MAX_PARAMS", loss.num_params - 1)
    assert ws.minimize(loss, x0, max_iter=1).method == "newton-cg"


# --------------------------------------------------------------------------- bad arguments


def test_bad_arguments_raise():
    loss, x0 = teacher_student("tanh", 0)
    with pytest.raises(ValueError, match="x0 must be a 1-D tensor of length 17"):
        ws.minimize(loss, x0[:-1])
    with pytest.raises(ValueError, match="x0 contains 1 NaN or inf"):
        ws.minimize(loss, torch.where(torch.arange(17) == 3, math.nan, x0))
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor"):
        ws.minimize(loss, torch.zeros(17, dtype=torch.int64))
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor"):
        ws.minimize(loss, x0.tolist())
    for tol in (0.0, -1e-12, math.nan, "1e-12"):
        with pytest.raises(ValueError, match="tol must be a positive number"):
            ws.minimize(loss, x0, tol=tol)
    with pytest.raises(ValueError, match=r"unknown method 'bfgs'; expected one of \('auto', "):
        ws.minimize(loss, x0, method="bfgs")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['lr'\] for method 'newton'"):
        ws.minimize(loss, x0, method="newton", lr=0.1)
    with pytest.raises(ValueError, match="max_iter must be a non-negative int"):
        ws.minimize(loss, x0, max_iter=-1)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        ws.minimize(loss, x0, method="gd", lr=0.0)
    with pytest.raises(ValueError, match="growth_limit must be a positive number"):
        ws.minimize(loss, x0, growth_limit=-2)
    with pytest.raises(ValueError, match="max_fev must be a positive int"):
        ws.minimize(loss, x0, max_fev=0)
    with pytest.raises(TypeError, match="callback must be callable"):
        ws.minimize(loss, x0, callback=3)
    with pytest.raises(TypeError, match="the Objective protocol"):
        ws.minimize(object(), x0)


@pytest.mark.parametrize(
    ("method", "needed"), [("newton", "value_grad_hessian"), ("newton-cg", "hvp")]
)
def test_methods_needing_derivatives_say_so(method, needed):
    loss, x0 = teacher_student("tanh", 0)
    with pytest.raises(TypeError, match=f"method '{method}' needs objective.{needed}"):
        ws.minimize(OnlyGradient(loss), x0, method=method)
