"""minimize: convergence to grad_inf <= tol on regular, singular and indefinite problems, and
honest failure (budget, weights growing to infinity, NaN, no progress) when it cannot.

Problems (float64, mse unless said otherwise):

* teacher-student: a random 2-4-1 teacher (scale 2) and a student of the same width started from
  the teacher plus N(0, 0.3^2) noise, T = 300 Gaussian inputs;
* singular: a 2-3-1 teacher and a 2-4-1 student made from it by duplicating neuron 0 with split
  ratios 0.3 / 0.7 (Def. 4), plus N(0, 0.01^2) noise: its zero-loss set is a manifold, so the
  Hessian at every minimum is singular;
* a strict saddle: SPEC section 2's example, a 2-3-2 network fitted to a 2-4-2 teacher and then
  a neuron duplicated (index 2, one zero eigenvalue);
* channels to infinity: a 1-2-1 student fitting y = g'(x), reachable only in the limit of the
  finite difference (g(x + h) - g(x - h)) / 2h with h -> 0 (SPEC section 4), and the quadratic
  x0^2 / 2 - x1.
"""

from __future__ import annotations

import math
import re

import pytest
import scipy.optimize
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import weightsym as ws
from weightsym import optimize
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


def tr_eigen(lam: torch.Tensor, g: torch.Tensor, radius: float):
    """The trust-region subproblem (NumPy inside) on torch vectors."""
    s, pred, on_boundary = optimize._tr_eigen(lam.numpy(), g.numpy(), radius)
    return torch.from_numpy(s), pred, on_boundary


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


# --------------------------------------------------------------------------- convergence


@pytest.mark.parametrize("method", ["newton", "auto"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("act", ["tanh", "softplus"])
def test_newton_reaches_tol_on_teacher_student(act, seed, method):
    loss, x0 = teacher_student(act, seed)
    x0_copy = x0.clone()
    res = ws.minimize(loss, x0, method=method, tol=TOL)
    print(f"\n  {act} seed {seed}: nit {res.nit}, grad_inf {res.grad_inf:.1e}, loss {res.fun:.1e}")
    assert res.success, res.message
    assert res.grad_inf <= TOL  # the tolerance asked for
    assert_honest(res, loss, TOL)
    assert res.method == "newton" and res.nhev >= 1 and res.nhvp == 0
    assert res.nit <= 300  # measured 22 to 246
    assert torch.equal(x0, x0_copy)  # x0 is not modified
    assert res.max_weight_start == float(x0.abs().max())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("act", ["tanh", "softplus"])
def test_newton_reaches_tol_with_singular_hessian(act, seed):
    loss, x0 = duplicated_student(act, seed)
    res = ws.minimize(loss, x0, method="newton", tol=TOL)
    print(f"\n  {act} seed {seed}: nit {res.nit}, grad_inf {res.grad_inf:.1e}, loss {res.fun:.1e}")
    assert res.success, res.message
    assert_honest(res, loss, TOL)
    assert res.nit <= 150  # measured 13 to 72 (100 to 1,100 before flat directions were set aside)
    ev = torch.linalg.eigvalsh(loss.hessian(res.x))
    assert float(ev.abs().min()) <= 1e-6 * float(ev.abs().max())  # singular (measured ~1e-9)


@pytest.fixture(scope="module")
def strict_saddle() -> tuple[ws.Loss, torch.Tensor]:
    """SPEC section 2's example: index 2 and one zero eigenvalue, gradient 1e-16."""
    teacher = ws.MLP([2, 4, 2], "tanh")
    X = torch.randn(100, 2, dtype=torch.float64, generator=gen(100))
    Y = teacher(teacher.init(0), X)
    small = ws.MLP([2, 3, 2], "tanh")
    fit = ws.minimize(ws.Loss(small, X, Y), small.init(1), method="newton", tol=TOL)
    assert fit.success, fit.message
    net, theta, _ = ws.permutation_point(small, fit.x, 1, 0)
    loss = ws.Loss(net, X, Y)
    assert ws.saddle_index(loss, theta) == (2, 1, 19)  # the strict saddle of SPEC section 2
    return loss, theta


def test_newton_escapes_a_strict_saddle(strict_saddle):
    loss, saddle = strict_saddle
    at_saddle = ws.minimize(loss, saddle, method="newton", tol=TOL)
    assert at_saddle.success and at_saddle.nit == 0  # a critical point: nothing to do
    x0 = saddle + 1e-6 * torch.randn(saddle.shape, dtype=torch.float64, generator=gen(5))
    res = ws.minimize(loss, x0, method="newton", tol=TOL)
    assert res.success, res.message
    assert res.fun < loss(saddle) - 1e-4  # left the saddle downhill (measured 2e-3 -> 2e-31)
    assert ws.saddle_index(loss, res.x).negative == 0  # a minimum, not a saddle


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


# --------------------------------------------------------------------------- honest failures


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


@pytest.mark.parametrize("method", ["newton", "newton-cg", "lbfgs"])
def test_channel_to_infinity_is_reported_as_diverging(method):
    loss, x0 = derivative_channel("tanh")
    res = ws.minimize(loss, x0, method=method, tol=TOL, growth_limit=3)
    assert not res.success and res.status == Status.DIVERGING, res.message
    assert res.message.startswith("diverging: the largest weight grew from 1 to 3")
    assert res.max_weight > 3.0 and res.max_weight_start == 1.0
    assert res.fun < loss(x0)
    assert_honest(res, loss, TOL)


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


@pytest.mark.parametrize("method", ["newton", "newton-cg", "lbfgs", "gd"])
def test_unbounded_quadratic_is_reported_as_diverging(method):
    res = ws.minimize(channel_quadratic(), f64(1.0, 0.0), method=method)  # default growth limit
    assert res.status == Status.DIVERGING and "(a channel, SPEC section 4)" in res.message
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


def test_unstable_gradient_descent_is_reported():
    quad = Quadratic(torch.diag(f64(1.0, 3.0)), f64(0.0, 0.0))
    res = ws.minimize(quad, f64(1.0, 1.0), method="gd", lr=0.8)  # 1 - 0.8 * 3 = -1.4: grows
    assert res.status == Status.NO_PROGRESS and res.nit == optimize.GD_RISES
    assert "the loss rose in 20 consecutive steps: lr 0.8 is too large" in res.message


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


def test_newton_on_a_singular_quadratic_converges_in_one_step():
    """With a small gradient (forcing term 0.05) the step is the exact pseudo-inverse step."""
    quad = Quadratic(torch.diag(f64(2.0, 0.0, 1.0)), f64(2e-3, 0.0, -1e-3))  # b in range(A)
    res = ws.minimize(quad, f64(0.0, 5.0, 0.0), method="newton")
    assert res.success and res.nit == 1
    assert torch.allclose(res.x, f64(1e-3, 5.0, -1e-3), rtol=0, atol=1e-18)  # null part untouched


# --------------------------------------------------------------------------- method choice


def test_auto_picks_by_capability_and_size(monkeypatch):
    loss, x0 = teacher_student("tanh", 0)
    assert ws.minimize(loss, x0, max_iter=1).method == "newton"
    assert ws.minimize(WithHvp(loss), x0, max_iter=1).method == "newton-cg"
    assert ws.minimize(OnlyGradient(loss), x0, max_iter=1).method == "lbfgs"
    monkeypatch.setattr(optimize, "DENSE_MAX_PARAMS", loss.num_params - 1)
    assert ws.minimize(loss, x0, max_iter=1).method == "newton-cg"


# --------------------------------------------------------------------------- the subproblem


def reference_tr(lam: torch.Tensor, g: torch.Tensor, radius: float) -> float:
    """min of g.s + lam.s^2 / 2 on |s| <= radius (diagonal), via brentq on the secular equation."""
    lo = max(0.0, -float(lam.min()))

    def norm(mu: float) -> float:
        return float((g / (lam + mu)).norm())

    if lo == 0.0 and norm(0.0) <= radius:
        mu = 0.0
    else:
        mu = scipy.optimize.brentq(lambda m: norm(m) - radius, lo + 1e-300, lo + 1e3, xtol=1e-30)
    s = -g / (lam + mu)
    return float(g @ s + 0.5 * (lam * s * s).sum())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.3, 3.0), min_size=2, max_size=6),
    st.lists(st.booleans(), min_size=6, max_size=6),
    st.integers(0, 2**31),
    st.floats(0.1, 3.0),
)
def test_trust_region_subproblem_matches_reference(mags, signs, seed, radius):
    """With a small gradient (forcing term ~1e-4) and |lambda| >= 0.3 nothing is set aside, so
    the step must be the exact trust-region solution; the hard case is left to the next test."""
    lam = torch.tensor(sorted(m if s else -m for m, s in zip(mags, signs)), dtype=torch.float64)
    g = 1e-8 * torch.randn(lam.shape, dtype=torch.float64, generator=gen(seed))
    g[g.abs() < 1e-10] = 1e-10  # the hard case is not generic here
    radius *= 1e-8
    s, pred, on_boundary = tr_eigen(lam, g, radius)
    assert float(s.norm()) <= radius * (1 + 1e-10)
    model = float(g @ s + 0.5 * (lam * s * s).sum())
    assert pred == pytest.approx(-model, rel=1e-12)
    ref = reference_tr(lam, g, radius)
    assert model <= ref + 1e-9 * abs(ref)  # as good as the reference, to its bisection accuracy
    assert on_boundary == (float(s.norm()) > radius * (1 - 1e-9))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(st.just(0.0), st.floats(-1e3, 1e3), st.floats(-1e-10, 1e-10)),
        min_size=1,
        max_size=8,
    ),
    st.integers(0, 2**31),
    st.floats(-12, 2),
    st.floats(1e-8, 1e3),
)
def test_trust_region_step_is_feasible_and_descends(lams, seed, log_g, radius):
    """Any spectrum (zeros, rounding-level and negative eigenvalues) and gradient scale."""
    lam = torch.tensor(sorted(lams), dtype=torch.float64)
    g = 10**log_g * torch.randn(lam.shape, dtype=torch.float64, generator=gen(seed))
    s, pred, _ = tr_eigen(lam, g, radius)
    assert bool(torch.isfinite(s).all())
    assert float(s.norm()) <= radius * (1 + 1e-9)  # inside the trust region
    assert pred >= 0.0  # never predicts an increase
    assert pred == pytest.approx(-float(g @ s + 0.5 * (lam * s * s).sum()), rel=1e-9, abs=1e-300)


def test_trust_region_hard_case():
    lam, g = f64(-1.0, 2.0, 3.0), f64(0.0, 1e-9, -1e-9)  # no gradient along the negative one
    s, pred, on_boundary = tr_eigen(lam, g, 1e-6)
    assert on_boundary and float(s.norm()) == pytest.approx(1e-6, rel=1e-12)
    assert abs(float(s[0])) > 0.99e-6  # moves along the negative-curvature eigenvector
    assert pred == pytest.approx(0.5e-12, rel=1e-3)  # |lambda_min| radius^2 / 2, to O(g)


def test_weak_negative_curvature_and_flat_gradient_are_set_aside():
    """Near a critical manifold: a Newton step on the curved part, not a walk along the flat."""
    lam, g = f64(-1e-9, 1e-12, 1.0, 2.0), f64(1e-12, 1e-13, 1e-6, -2e-6)
    s, pred, on_boundary = tr_eigen(lam, g, 1.0)
    assert not on_boundary
    assert torch.equal(s, f64(0.0, 0.0, -1e-6, 1e-6))  # exactly the curved-part Newton step


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
