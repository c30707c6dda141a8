"""Certificates: the Newton-decrement excess estimate and the three-run path certificate."""

from __future__ import annotations

import copy

import pytest
import torch

from weightsym import certify, minimize
from weightsym.constraints import ConstrainedLoss, PairConstraint, ScaledObjective, unit_gauge
from weightsym.experiments.toy import ToyConfig, toy_problem
from weightsym.paths import STEP_MAX_ITER, find_path

PSD_RTOL = 1e-12  # a converged step's tangent Hessian: min eigenvalue >= -PSD_RTOL * max |eig|
CONVERGED_EXCESS = 1e-20  # a converged step's estimated excess (its grad_inf is <= 1e-12)


class Quadratic:
    """f(x) = x' A x / 2 - b' x, an objective with an exact Hessian."""

    def __init__(self, A: torch.Tensor, b: torch.Tensor) -> None:
        self.A, self.b, self.num_params = A, b, b.numel()

    def value_and_grad(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        return float(0.5 * x @ self.A @ x - self.b @ x), self.A @ x - self.b

    def value_grad_hessian(self, x: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        return (*self.value_and_grad(x), self.A)


def _quadratic(eigenvalues: list[float]) -> tuple[Quadratic, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    n = len(eigenvalues)
    Q = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=gen)).Q
    A = Q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ Q.T
    b = torch.randn(n, dtype=torch.float64, generator=gen)
    x = torch.randn(n, dtype=torch.float64, generator=gen)
    return Quadratic(0.5 * (A + A.T), b), x, Q


def test_excess_is_exact_on_a_quadratic() -> None:
    """g' A^-1 g / 2 = f(x) - min f = (x - x*)' A (x - x*) / 2, to 1e-12 relative."""
    f, x, _ = _quadratic([1.0, 1.5, 2.0, 3.0, 4.5, 6.0, 8.0, 10.0])
    x_star = torch.linalg.solve(f.A, f.b)
    true = float(0.5 * (x - x_star) @ f.A @ (x - x_star))
    est = certify.excess_estimate(f, x)
    assert est.excess == pytest.approx(true, rel=1e-12)
    assert est.is_minimum and est.negative == 0 and est.projected == 0
    assert est.min_curvature == pytest.approx(1.0, rel=1e-12)


def test_negative_curvature_gives_a_lower_bound() -> None:
    """With one negative eigenvalue: no minimum, and the positive part of the decrement."""
    lam = [-2.0, 1.0, 2.0, 5.0]
    f, x, Q = _quadratic(lam)
    c = Q.T @ f.value_and_grad(x)[1]
    positive = float(sum(c[i] ** 2 / lam[i] for i in range(1, 4)) / 2)
    est = certify.excess_estimate(f, x)
    assert est.lower_bound and not est.is_minimum and est.negative == 1
    assert est.excess == pytest.approx(positive, rel=1e-12)
    assert est.min_curvature == pytest.approx(-2.0, rel=1e-12)


def test_bad_arguments_are_named() -> None:
    f, x, _ = _quadratic([1.0, 2.0])
    with pytest.raises(TypeError, match="value_grad_hessian"):
        certify.excess_estimate(object(), x)
    with pytest.raises(ValueError, match="length 2"):
        certify.excess_estimate(f, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must be"):
        certify.excess_estimate(f, [0.0, 0.0])


@pytest.fixture(scope="module")
def relu_toy():
    """The ReLU toy with 200 samples (its paths converge at every step)."""
    return toy_problem("relu", ToyConfig(samples=200))


@pytest.mark.parametrize("gauge", [False, True])
def test_null_directions_leave_theta_unmoved(relu_toy, gauge: bool) -> None:
    """J V = 0 for the pair map's Jacobian J (to 1e-14): theta does not move along V."""
    loss, theta = relu_toy
    con = PairConstraint(loss.net, 1, (0, 1), "incoming", gauge)
    start = unit_gauge(loss.net, theta, 1, (0, 1)) if gauge else theta
    phi = con.chart(start)
    V = certify.chart_null_directions(con, phi)
    assert V.shape[1] == (3 if gauge else 1)
    assert torch.allclose(V.T @ V, torch.eye(V.shape[1], dtype=V.dtype), atol=1e-14)
    J, _ = con.pair_derivatives(phi[con.n_rest :], 0.5, torch.ones(2 * con.c, dtype=phi.dtype))
    assert float((J @ V[con.n_rest :]).abs().max()) <= 1e-14
    assert float(V[: con.n_rest].abs().max()) == 0.0


def test_radial_direction_has_cross_terms_off_a_minimum(relu_toy) -> None:
    """H (0, 0, u) = -(0, 0, g_u) (to 1e-10 relative): zero curvature along u but cross terms
    wherever g_u != 0, so the chart's Hessian is indefinite there (min eigenvalue < 0)."""
    loss, theta = relu_toy
    con = PairConstraint(loss.net, 1, (0, 1))
    gen = torch.Generator().manual_seed(0)
    phi = con.chart(theta) + 0.05 * torch.randn(con.num_params, dtype=torch.float64, generator=gen)
    obj = ConstrainedLoss(loss, con, 0.5 * con.measure(theta))
    _, g, H = obj.value_grad_hessian(phi)
    radial = torch.zeros_like(phi)
    radial[con.n_rest + con.c :] = phi[con.n_rest + con.c :]
    expected = torch.zeros_like(g)
    expected[con.n_rest + con.c :] = -g[con.n_rest + con.c :]
    assert float(expected.norm()) > 1e-3
    assert float((H @ radial - expected).norm()) <= 1e-10 * float(expected.norm())
    assert float(torch.linalg.eigvalsh(H).min()) < 0.0


def test_converged_path_steps_have_psd_tangent_hessian_and_no_excess(relu_toy) -> None:
    """Every converged step d > 0 of the ReLU toy path (pair (0, 1), 20 steps): excess below
    CONVERGED_EXCESS and a tangent Hessian that is PSD to PSD_RTOL."""
    loss, theta = relu_toy
    path = find_path(loss, theta, 1, (0, 1), steps=20)
    con = PairConstraint(loss.net, 1, (0, 1))
    checked = 0
    for rec, th in zip(path.records, path.thetas):
        if rec.d == 0.0 or not rec.converged:
            continue
        est = certify.excess_estimate(ConstrainedLoss(loss, con, rec.d), con.chart(th))
        assert est.excess <= CONVERGED_EXCESS and est.projected == 1
        assert est.min_curvature >= -PSD_RTOL * est.max_curvature and not est.lower_bound
        checked += 1
    assert checked >= 15


def test_converged_gauge_step_with_positive_loss(relu_toy) -> None:
    """A gauge step (d = 0.63 d_0) minimized to grad_inf 1e-12 has loss ~5e-3 but no excess;
    the estimate on its ScaledObjective is the same."""
    loss, theta = relu_toy
    con = PairConstraint(loss.net, 1, (0, 1), "incoming", gauge=True)
    start = unit_gauge(loss.net, theta, 1, (0, 1))
    obj = ConstrainedLoss(loss, con, 0.63 * con.measure(start))
    res = minimize(obj, con.chart(start), method="newton", tol=1e-12, max_iter=100)
    phi = con.normalize(res.x)
    assert res.success and obj(phi) > 1e-3
    est = certify.excess_estimate(obj, phi)
    assert est.excess <= CONVERGED_EXCESS and est.projected == 3
    assert est.min_curvature >= -PSD_RTOL * est.max_curvature and not est.lower_bound
    scaled = ScaledObjective.for_start(obj, phi)
    assert certify.excess_estimate(scaled, scaled.to_psi(phi)) == est


# -- the path certificate -------------------------------------------------------------------


@pytest.mark.slow
def test_stable_barrier_is_certified(relu_toy) -> None:
    loss, theta = relu_toy
    cert = certify.certify_path(loss, theta, layer=1, pair=(0, 1), steps=20, threads=1)
    assert cert.certified, cert.reason
    assert [r.label for r in cert.runs] == list(certify.RUNS)
    assert max(cert.barrier_loss, cert.permutation_point_loss) <= cert.rtol
    assert cert.position_agrees and cert.reason.startswith("certified")


def test_tiny_budget_is_not_certified(relu_toy) -> None:
    """One iteration per step: doubling the budget moves the numbers."""
    loss, theta = relu_toy
    cert = certify.certify_path(loss, theta, layer=1, pair=(0, 1), steps=10, max_iter=1, threads=1)
    assert not cert.certified and cert.reason.startswith("not certified")
    assert "permutation_point_loss" in cert.reason or "barrier_loss" in cert.reason


@pytest.fixture(scope="module")
def short_path(relu_toy):
    loss, theta = relu_toy
    return find_path(loss, theta, 1, (0, 1), steps=5)


def _fake_find_path(path, change, calls: list):
    """find_path stand-in: ``path`` with ``change(losses)`` applied to the second run."""

    def fake(loss, theta, config=None, pair=None, **kwargs):
        calls.append((loss, config, torch.get_num_threads()))
        out = copy.copy(path)
        if len(calls) == 2:
            out.loss = change(path.loss.clone())
        return out

    return fake


def test_moved_barrier_is_named(monkeypatch, relu_toy, short_path) -> None:
    loss, theta = relu_toy
    i_top = short_path.barrier.index
    assert i_top < len(short_path) - 1  # the barrier's first point precedes the point itself

    def raise_barrier(x):
        x[i_top] *= 1.05
        return x

    def lower_point(x):
        x[-1] *= 0.9
        return x

    def move_barrier(x):
        x[1] = 1.001 * x[i_top]
        return x

    for change, named, clean in (
        (raise_barrier, "barrier_loss", "permutation_point_loss"),
        (lower_point, "permutation_point_loss", "barrier_loss"),
        (move_barrier, "barrier_t", "permutation_point_loss"),
    ):
        calls: list = []
        monkeypatch.setattr(certify, "find_path", _fake_find_path(short_path, change, calls))
        cert = certify.certify_path(loss, theta, layer=1, pair=(0, 1), steps=5)
        assert not cert.certified and named in cert.reason and clean not in cert.reason


def test_spread_is_the_largest_relative_difference(monkeypatch, relu_toy, short_path) -> None:
    """Raising the barrier point by 5% in one run: spread 0.05 / 1.05 (to 1e-12), the
    permutation-point loss unmoved; identical runs: spread exactly 0."""
    loss, theta = relu_toy
    i_top = short_path.barrier.index

    def raise_barrier(x):
        x[i_top] *= 1.05
        return x

    for change, expected in ((raise_barrier, 0.05 / 1.05), (lambda x: x, 0.0)):
        monkeypatch.setattr(certify, "find_path", _fake_find_path(short_path, change, []))
        cert = certify.certify_path(loss, theta, layer=1, pair=(0, 1), steps=5)
        assert cert.spread == pytest.approx(expected, rel=1e-12, abs=0.0)
        assert cert.certified == (cert.spread <= cert.rtol)


def test_spread_counts_channel_limits_only_when_every_run_has_one() -> None:
    def run(limit):
        return certify.RunValues("r", 1.0, 0.5, 3, 2.0, 0, 0.0, channel_limit=limit)

    def cert(*limits):
        runs = tuple(run(v) for v in limits)
        return certify.PathCertificate(runs, 1e-2, 1e-2, 1e-3, 0.0, 2e-3, True, True, "")

    assert cert(1.0, 1.1, 1.0).spread == pytest.approx(0.1 / 1.1, rel=1e-12)
    assert cert(1.0, None, 1.1).spread == 2e-3  # the losses' spread; the verdict names the limit
    assert cert(None, None, None).spread == 2e-3


def test_reruns_double_the_budget_and_change_the_rounding(monkeypatch, relu_toy, short_path):
    loss, theta = relu_toy
    given = copy.copy(short_path)
    given.config = short_path.config.replace(patience=10)
    calls: list = []
    monkeypatch.setattr(certify, "find_path", _fake_find_path(given, lambda x: x, calls))
    assert torch.get_num_threads() == 1
    cert = certify.certify_path(loss, theta, layer=1, pair=(0, 1), steps=5, patience=10)
    assert cert.certified
    (l1, _, n1), (l2, cfg2, n2), (l3, cfg3, n3) = calls
    assert cfg2.max_iter == 2 * STEP_MAX_ITER["auto"] and cfg2.patience == 20
    assert cfg2.tol == given.config.tol / certify.TIGHTEN
    assert cfg3 == given.config and l1 is l2 is loss and (n1, n2, n3) == (1, 1, 2)
    order = torch.randperm(loss.T, generator=torch.Generator().manual_seed(certify.ROUNDING_SEED))
    assert torch.equal(l3.X, loss.X[order]) and torch.equal(l3.Y, loss.Y[order])
    assert not torch.equal(l3.X, loss.X) and torch.get_num_threads() == 1


def test_certify_rejects_bad_arguments(relu_toy) -> None:
    loss, theta = relu_toy
    with pytest.raises(ValueError, match="rtol"):
        certify.certify_path(loss, theta, rtol=0.0, layer=1, pair=(0, 1))
    with pytest.raises(TypeError, match="t_atol"):
        certify.certify_path(loss, theta, t_atol="0.1", layer=1, pair=(0, 1))
    with pytest.raises(ValueError, match="threads"):
        certify.certify_path(loss, theta, threads=0, layer=1, pair=(0, 1))
    with pytest.raises(TypeError, match="loss must be"):
        certify.certify_path(object(), theta, layer=1, pair=(0, 1))


def test_a_path_stopped_at_a_loose_tolerance_is_not_certified(monkeypatch) -> None:
    """Softplus toy, 5 steps, L-BFGS to tol 1e-2: every step stops at the tolerance, so a
    doubled budget alone repeats the path to the last bit and certified a barrier (1.5e-3)
    that a tighter tolerance lowers 14-fold (1.1e-4, measured); the tightened rerun refuses it."""
    loss, theta = toy_problem("softplus", ToyConfig(samples=200))
    kwargs = dict(layer=1, pair=(0, 1), steps=5, solver="lbfgs", tol=1e-2, threads=1)
    cert = certify.certify_path(loss, theta, **kwargs)
    assert not cert.certified and "barrier_loss" in cert.reason
    given, more, _ = cert.runs
    assert more.barrier_loss < given.barrier_loss / 5  # rtol 1%: a 5x fall is far outside
    monkeypatch.setattr(certify, "TIGHTEN", 1.0)  # the budget alone, as before
    assert certify.certify_path(loss, theta, **kwargs).certified
