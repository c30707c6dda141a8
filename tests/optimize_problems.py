"""Test problems shared by the tests of weightsym.optimize (test_optimize.py, test_gd.py,
test_lbfgs.py, test_trust_region.py, test_trust_region_eigen.py, test_steihaug.py).

Problems (float64, mse unless said otherwise):

* teacher-student: a random 2-4-1 teacher (scale 2) and a student of the same width started from
  the teacher plus N(0, 0.3^2) noise, T = 300 Gaussian inputs;
* singular: a 2-3-1 teacher and a 2-4-1 student made from it by duplicating neuron 0 with split
  ratios 0.3 / 0.7 (Def. 4), plus N(0, 0.01^2) noise: its zero-loss set is a manifold, so the
  Hessian at every minimum is singular;
* a strict saddle: docs/theory.md section 2's example, a 2-3-2 network fitted to a 2-4-2 teacher
  and then a neuron duplicated (index 2, one zero eigenvalue);
* channels to infinity: a 1-2-1 student fitting y = g'(x), reachable only in the limit of the
  finite difference (g(x + h) - g(x - h)) / 2h with h -> 0 (docs/theory.md section 5), and the
  quadratic x0^2 / 2 - x1.
"""

from __future__ import annotations

import re

import torch

import weightsym as ws
from weightsym.optimize import Status

TOL = 1e-12


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def teacher_student(act: str, seed: int) -> tuple[ws.Loss, torch.Tensor]:
    net = ws.MLP([2, 4, 1], act)
    teacher = net.init(seed + 10, scale=2.0)
    X = torch.randn(300, 2, dtype=torch.float64, generator=gen(seed))
    x0 = teacher + 0.3 * torch.randn(teacher.shape, dtype=torch.float64, generator=gen(seed + 1))
    return ws.Loss(net, X, net(teacher, X)), x0


def duplicated_student(act: str, seed: int) -> tuple[ws.Loss, torch.Tensor]:
    teacher = ws.MLP([2, 3, 1], act)
    theta = teacher.init(seed, scale=2.0)
    X = torch.randn(300, 2, dtype=torch.float64, generator=gen(seed))
    (W1, b1), (W2, b2) = teacher.unflatten(theta)
    student = ws.MLP([2, 4, 1], act)
    start = student.flatten(
        [
            (torch.cat([W1, W1[:1]]), torch.cat([b1, b1[:1]])),
            (torch.cat([0.3 * W2[:, :1], W2[:, 1:], 0.7 * W2[:, :1]], dim=1), b2),
        ]
    )
    x0 = start + 0.01 * torch.randn(start.shape, dtype=torch.float64, generator=gen(seed + 1))
    return ws.Loss(student, X, teacher(theta, X)), x0


def derivative_channel(act: str = "tanh", h: float = 0.5) -> tuple[ws.Loss, torch.Tensor]:
    """1-2-1 fitting g'(x); x0 is the central difference with step h (weights of size 1/2h)."""
    net = ws.MLP([1, 2, 1], act)
    X = torch.linspace(-3, 3, 200, dtype=torch.float64)[:, None]
    f64 = {"dtype": torch.float64}
    x0 = net.flatten(
        [
            (torch.ones(2, 1, **f64), torch.tensor([h, -h], **f64)),
            (torch.tensor([[1 / (2 * h), -1 / (2 * h)]], **f64), torch.zeros(1, **f64)),
        ]
    )
    return ws.Loss(net, X, net.act.dg(X)), x0


class Quadratic:
    """f(x) = x.A.x / 2 - b.x with all the optional methods of the Objective protocol."""

    def __init__(self, A: torch.Tensor, b: torch.Tensor) -> None:
        self.A, self.b = A, b
        self.num_params = b.numel()

    def value_and_grad(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        Ax = self.A @ x
        return float(0.5 * x @ Ax - self.b @ x), Ax - self.b

    def value_grad_hessian(self, x: torch.Tensor):
        return (*self.value_and_grad(x), self.A.clone())

    def hvp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.A @ v


class OnlyGradient:
    """The minimal protocol: no Hessian, no hvp."""

    def __init__(self, inner) -> None:
        self.inner, self.num_params = inner, inner.num_params

    def value_and_grad(self, x):
        return self.inner.value_and_grad(x)


class WithHvp(OnlyGradient):
    def hvp(self, x, v):
        return self.inner.hvp(x, v)


def f64(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def channel_quadratic() -> Quadratic:
    """x0^2 / 2 - x1: no minimizer, the loss falls linearly as x1 -> infinity."""
    return Quadratic(torch.diag(f64(1.0, 0.0)), f64(0.0, 1.0))


def assert_honest(res: ws.OptimizeResult, loss, tol: float) -> None:
    """success iff grad_inf <= tol, and the reported numbers are those at res.x."""
    value, grad = loss.value_and_grad(res.x)
    assert res.fun == value  # the same evaluation: exact
    assert res.grad_inf == float(grad.abs().max())  # exact
    assert res.success == (res.grad_inf <= tol)
    assert res.success == (res.status == Status.CONVERGED)
    assert res.max_weight == float(res.x.abs().max())
    if not res.success:
        assert re.search(r"grad_inf \S+ > tol", res.message), res.message
