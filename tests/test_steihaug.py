"""minimize(method="newton-cg") and its subproblem, Steihaug-Toint truncated conjugate gradients:
convergence on a medium network (tests/optimize_problems.py), and the subproblem on its own:
the Newton step inside the region for a positive definite Hessian, the boundary along a
direction of negative curvature for an indefinite one.
"""

from __future__ import annotations

import pytest
import torch
from optimize_problems import assert_honest, gen

import weightsym as ws
from weightsym.optimize import steihaug


def test_newton_cg_on_a_medium_network():
    net = ws.MLP([10, 20, 2], "tanh")  # 262 parameters; Hessian condition 4e4 at the teacher
    teacher = net.init(0, scale=1.5)
    X = torch.randn(1000, 10, dtype=torch.float64, generator=gen(1))
    loss = ws.Loss(net, X, net(teacher, X))
    x0 = teacher + 0.05 * torch.randn(teacher.shape, dtype=torch.float64, generator=gen(2))
    res = ws.minimize(loss, x0, method="newton-cg", tol=1e-10)
    print(f"\n  newton-cg: nit {res.nit}, nhvp {res.nhvp}, grad_inf {res.grad_inf:.1e}")
    assert res.success, res.message
    assert res.grad_inf <= 1e-10  # the tolerance asked for (measured 5e-13)
    assert_honest(res, loss, 1e-10)
    assert res.nhvp > 0 and res.nhev == 0


# --------------------------------------------------------------------------- the subproblem


class Curvatures:
    """The part of a run that the CG model uses, Hessian-vector products, recording d'Bd."""

    def __init__(self, B: torch.Tensor) -> None:
        self.B, self.seen = B, []

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        Bv = self.B @ v
        self.seen.append(float(v @ Bv))
        return Bv


def hessian(eigenvalues: list[float], seed: int) -> torch.Tensor:
    """Q diag(eigenvalues) Q' with a random orthogonal Q."""
    n = len(eigenvalues)
    Q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=gen(seed)))
    return Q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ Q.T


def test_positive_definite_gives_the_newton_step_inside():
    """B with two distinct eigenvalues: CG reaches the Newton step -B^-1 g in two iterations,
    and the step lies inside a radius that contains it."""
    B = hessian([1.0, 1.0, 1.0, 4.0, 4.0, 4.0], seed=0)
    g = 1e-10 * torch.randn(6, dtype=torch.float64, generator=gen(1))  # forcing term 1e-5
    run = Curvatures(B)
    s, pred, on_boundary = steihaug._CGModel(run, max_iter=100).step(g, radius=1.0)
    newton = torch.linalg.solve(B, -g)
    assert not on_boundary and len(run.seen) == 2
    assert float((s - newton).abs().max()) <= 1e-13 * float(newton.abs().max())  # measured 4e-16
    assert pred == pytest.approx(-0.5 * float(g @ newton), rel=1e-12)
    assert float((B @ s + g).norm()) <= min(0.5, float(g.norm()) ** 0.5) * float(g.norm())


def test_indefinite_goes_to_the_boundary_along_negative_curvature():
    """B with eigenvalue -1 and a radius far beyond the positive definite part's Newton step
    (|g| ~ 1): CG meets a direction with d'Bd <= 0 and follows it to the boundary."""
    B = hessian([-1.0, 0.5, 1.0, 2.0, 3.0, 4.0], seed=2)
    g = torch.randn(6, dtype=torch.float64, generator=gen(3))
    run = Curvatures(B)
    s, pred, on_boundary = steihaug._CGModel(run, max_iter=100).step(g, radius=100.0)
    assert on_boundary and float(s.norm()) == pytest.approx(100.0, rel=1e-12)
    assert run.seen[-1] <= 0 and all(c > 0 for c in run.seen[:-1])  # stopped by d'Bd <= 0
    assert float(s @ B @ s) < 0  # the step itself has negative curvature
    assert pred == pytest.approx(-float(g @ s + 0.5 * s @ B @ s), rel=1e-12)
    assert pred > 0


def test_to_boundary_lands_on_the_sphere():
    s, d = torch.tensor([0.3, -0.4], dtype=torch.float64), torch.tensor([1.0, 2.0]).double()
    tau = steihaug._to_boundary(s, d, radius=2.0)
    assert tau >= 0 and float((s + tau * d).norm()) == pytest.approx(2.0, rel=1e-15)
