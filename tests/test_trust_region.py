"""The trust-region loop shared by "newton" and "newton-cg": patience and non-finite trial
points (problems in tests/optimize_problems.py)."""

from __future__ import annotations

import math

import pytest
import torch
from optimize_problems import (
    TOL,
    Quadratic,
    assert_honest,
    derivative_channel,
    f64,
    teacher_student,
)

import weightsym as ws
from weightsym.optimize import Status


@pytest.mark.parametrize("method", ["newton", "newton-cg"])
def test_patience_ends_a_walk_along_a_channel(method):
    """Without a growth limit a channel walk spends the budget (300 iterations, grad_inf still
    ~7e-9); with patience 5 it stops once 5 accepted steps in a row fail to halve grad_inf."""
    loss, x0 = derivative_channel("tanh")
    res = ws.minimize(loss, x0, method=method, tol=TOL, growth_limit=None, patience=5, max_iter=300)
    assert res.status == Status.NO_PROGRESS and "5 accepted steps without halving" in res.message
    assert res.nit < 50 and res.fun < loss(x0)  # measured 8 iterations (both methods)
    assert_honest(res, loss, TOL)
    student, y0 = teacher_student("tanh", 0)
    with pytest.raises(ValueError, match="patience"):
        ws.minimize(student, y0, method=method, patience=0)
    if method == "newton":  # a converging run (33 iterations) is untouched by patience 10;
        # newton-cg's inexact steps went 10 accepted steps without halving on this same fit
        plain = ws.minimize(student, y0, method=method, tol=TOL)
        patient = ws.minimize(student, y0, method=method, tol=TOL, patience=10)
        assert patient.success and torch.equal(patient.x, plain.x)


def test_trust_region_rejects_non_finite_trial_points():
    class Cliff(Quadratic):  # inf beyond |x| > 2, a quadratic bowl at 5 inside
        def value_and_grad(self, x):
            if float(x.abs().max()) > 2:
                return math.inf, torch.full_like(x, math.nan)
            return super().value_and_grad(x)

    cliff = Cliff(torch.eye(2, dtype=torch.float64), f64(5.0, 5.0))
    res = ws.minimize(cliff, f64(0.0, 0.0), method="newton", radius=10.0, growth_limit=None)
    assert not res.success
    assert res.status == Status.NO_PROGRESS  # the minimizer (5, 5) lies beyond the cliff
    assert float(res.x.abs().max()) <= 2
