"""minimize(method="gd"): fixed steps, the budget, and instability reported (problems in
tests/optimize_problems.py)."""

from __future__ import annotations

import re

import torch
from optimize_problems import TOL, Quadratic, assert_honest, f64, teacher_student

import weightsym as ws
from weightsym import optimize
from weightsym.optimize import Status


def test_gd_with_small_budget_reports_the_budget():
    loss, x0 = teacher_student("tanh", 0)
    res = ws.minimize(loss, x0, method="gd", max_iter=50, lr=0.05)
    assert not res.success and res.status == Status.MAX_ITER and res.reason == "max_iter"
    assert re.fullmatch(
        r"budget exhausted: grad_inf \S+ > tol 1e-12 after 50 iterations \(max_iter 50\)",
        res.message,
    )
    assert res.nit == 50 and res.nfev == 51 and res.ngev == 51
    assert_honest(res, loss, TOL)
    assert res.fun < loss(x0)


def test_gd_takes_fixed_steps():
    loss, x0 = teacher_student("tanh", 0)
    res = ws.minimize(loss, x0, method="gd", max_iter=1, lr=0.05)
    assert torch.equal(res.x, x0 - 0.05 * loss.grad(x0))  # exactly one step of size lr


def test_unstable_gradient_descent_is_reported():
    quad = Quadratic(torch.diag(f64(1.0, 3.0)), f64(0.0, 0.0))
    res = ws.minimize(quad, f64(1.0, 1.0), method="gd", lr=0.8)  # 1 - 0.8 * 3 = -1.4: grows
    assert res.status == Status.NO_PROGRESS and res.nit == optimize.GD_RISES
    assert "the loss rose in 20 consecutive steps: lr 0.8 is too large" in res.message
