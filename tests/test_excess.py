"""The per-step excess estimate: dense against CG, lower bounds, and its columns in a path."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from weightsym import excess
from weightsym.checkpoint import _sealed
from weightsym.constraints import ConstrainedLoss, PairConstraint, ScaledObjective
from weightsym.experiments.toy import ToyConfig, toy_problem
from weightsym.io import atomic_write_csv, read_csv
from weightsym.paths import PathConfig, StepRecord, find_path
from weightsym.paths.load import load_path
from weightsym.paths.step import solve_step

CG_RTOL_DENSE = 1e-8  # CG against dense where H_T is positive definite and CG converged
QUADRATIC_RTOL = 1e-10  # CG against 0.5 g' A^-1 g on a well-conditioned quadratic
CONVERGED_EXCESS = 1e-20  # a converged toy step (grad_inf <= 1e-12); observed <= 6e-24
NEW_COLUMNS = ("excess", "excess_bound")
SETTINGS = {"steps": 30, "max_iter": 40, "patience": 10}  # the toy path of the record tests


class Quadratic:
    """f(x) = x' A x / 2 - b' x with A = U diag(lam) U' (U = None: A = diag(lam)); products
    with A go through U and lam, the matrix is formed only for the dense Hessian."""

    def __init__(self, lam: torch.Tensor, b: torch.Tensor, U: torch.Tensor | None = None):
        self.lam, self.b, self.U, self.num_params = lam, b, U, b.numel()

    @property
    def A(self) -> torch.Tensor:
        return torch.diag(self.lam) if self.U is None else self.U @ torch.diag(self.lam) @ self.U.T

    def hvp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.lam * v if self.U is None else self.U @ (self.lam * (self.U.T @ v))

    def value_and_grad(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        Ax = self.hvp(x, x)
        return float(0.5 * x @ Ax - self.b @ x), Ax - self.b

    def value_grad_hessian(self, x: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        return (*self.value_and_grad(x), self.A)


def _quadratic(eigenvalues: list[float]) -> tuple[Quadratic, torch.Tensor]:
    """A random quadratic with these eigenvalues and a random point."""
    gen = torch.Generator().manual_seed(0)
    n = len(eigenvalues)
    U = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=gen)).Q
    b = torch.randn(n, dtype=torch.float64, generator=gen)
    x = torch.randn(n, dtype=torch.float64, generator=gen)
    return Quadratic(torch.tensor(eigenvalues, dtype=torch.float64), b, U), x


def _newton_decrement(f: Quadratic, x: torch.Tensor) -> float:
    g = f.value_and_grad(x)[1]
    return float(0.5 * g @ torch.linalg.solve(f.A, g))


# -- the estimate ------------------------------------------------------------------------


def test_cg_matches_the_newton_decrement_of_a_quadratic() -> None:
    """0.5 g' A^-1 g (= f(x) - min f) to 1e-10 relative, converged within n steps."""
    f, x = _quadratic([1.0, 1.5, 2.0, 3.0, 4.5, 6.0, 8.0, 10.0])
    est = excess.excess_estimate(f, x, "cg")
    assert est.excess == pytest.approx(_newton_decrement(f, x), rel=QUADRATIC_RTOL)
    assert est.method == "cg" and est.converged and not est.is_bound
    assert est.iterations <= 8 and est.residual <= excess.CG_RTOL
    assert 1.0 <= est.min_curvature and est.max_curvature <= 10.0  # Rayleigh quotients


def test_cg_grows_monotonically_below_the_decrement() -> None:
    """Ill-conditioned (60 eigenvalues over 1e-3 .. 1): after k steps, a lower bound that
    grows with k (Gauss quadrature); not converged within the default budget."""
    f, x = _quadratic(torch.logspace(-3, 0, 60).tolist())
    true = _newton_decrement(f, x)
    values = [excess.excess_estimate(f, x, "cg", max_iter=k).excess for k in range(1, 21)]
    assert all(a <= b * (1 + 1e-12) for a, b in zip(values, values[1:]))
    assert values[-1] <= true * (1 + 1e-12)
    est = excess.excess_estimate(f, x, "cg")
    assert est.iterations == excess.CG_MAX_ITER and not est.converged and est.is_bound
    assert not est.lower_bound and est.excess == values[excess.CG_MAX_ITER - 1]


def test_cg_stops_at_negative_curvature_with_the_krylov_decrease() -> None:
    """One negative eigenvalue: CG meets p'Hp < 0 (Sylvester's law of inertia); the estimate
    is the model's decrease over the Krylov space of the steps before (to 1e-10 relative)."""
    lam = [-2.0, 1.0, 2.0, 5.0, 7.0]
    f, x = _quadratic(lam)
    est = excess.excess_estimate(f, x, "cg")
    assert est.lower_bound and est.is_bound and not est.is_minimum and est.negative == 1
    assert -2.0 <= est.min_curvature < 0.0
    g = f.value_and_grad(x)[1]
    steps = est.iterations - 1
    assert steps >= 1
    K = torch.stack([torch.linalg.matrix_power(f.A, i) @ g for i in range(steps)], dim=1)
    Q = torch.linalg.qr(K).Q
    c = Q.T @ g
    krylov = float(0.5 * c @ torch.linalg.solve(Q.T @ f.A @ Q, c))
    assert est.excess == pytest.approx(krylov, rel=QUADRATIC_RTOL)


def test_auto_is_dense_for_small_and_cg_for_large_problems() -> None:
    f, x = _quadratic([1.0, 2.0, 3.0])
    assert excess.excess_estimate(f, x).method == "dense"
    n = excess.DENSE_LIMIT + 1  # three distinct eigenvalues: CG is exact after 3 steps
    diag = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64).repeat(n // 3 + 1)[:n]
    b = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)
    big = Quadratic(diag, b)
    x = torch.zeros(n, dtype=torch.float64)
    est = excess.excess_estimate(big, x)
    assert est.method == "cg" and est.converged and est.iterations == 3
    assert est.excess == pytest.approx(float(0.5 * (b**2 / diag).sum()), rel=QUADRATIC_RTOL)


@pytest.fixture(scope="module")
def tanh_step():
    """A constrained tanh toy step (width 3, pair (0, 1), d = d_0) 1e-4 from its minimum
    theta*, where the tangent Hessian is positive definite (smallest eigenvalue ~9e-3)."""
    loss, theta = toy_problem("tanh", ToyConfig(samples=200, width=3))
    con = PairConstraint(loss.net, 1, (0, 1))
    obj = ConstrainedLoss(loss, con, con.measure(theta))
    gen = torch.Generator().manual_seed(1)
    phi = con.chart(theta)
    return obj, phi + 1e-4 * torch.randn(phi.shape, dtype=torch.float64, generator=gen)


def test_cg_equals_dense_on_a_constrained_toy_near_a_minimum(tanh_step) -> None:
    obj, x = tanh_step
    dense = excess.excess_estimate(obj, x, "dense")
    assert not dense.lower_bound and dense.min_curvature > 1e-3 and dense.excess > 0
    cg = excess.excess_estimate(obj, x, "cg")
    assert cg.converged and not cg.is_bound and cg.projected == dense.projected == 1
    assert cg.excess == pytest.approx(dense.excess, rel=CG_RTOL_DENSE)
    assert cg.grad_inf == pytest.approx(dense.grad_inf, rel=1e-10)
    assert dense.min_curvature <= cg.min_curvature <= cg.max_curvature <= dense.max_curvature
    scaled = ScaledObjective.for_start(obj, 3.0 * x)  # evaluated at the same point in phi
    assert excess.excess_estimate(scaled, scaled.to_psi(x), "cg").excess == pytest.approx(
        cg.excess, rel=CG_RTOL_DENSE
    )


def test_cg_reports_negative_curvature_on_a_constrained_toy() -> None:
    """1e-3 off the softplus toy minimum the tangent Hessian is indefinite (dense: smallest
    eigenvalue ~-3e-3); CG meets it and reports a lower bound."""
    loss, theta = toy_problem("softplus", ToyConfig(samples=200))
    con = PairConstraint(loss.net, 1, (1, 3))
    obj = ConstrainedLoss(loss, con, con.measure(theta))
    gen = torch.Generator().manual_seed(1)
    phi = con.chart(theta)
    x = phi + 1e-3 * torch.randn(phi.shape, dtype=torch.float64, generator=gen)
    dense = excess.excess_estimate(obj, x, "dense")
    cg = excess.excess_estimate(obj, x, "cg")
    assert dense.lower_bound and cg.lower_bound and cg.is_bound and cg.min_curvature <= 0.0
    assert 0.0 < cg.excess and math.isnan(cg.flat_grad)


def test_bad_arguments_are_named(tanh_step) -> None:
    obj, x = tanh_step
    with pytest.raises(TypeError, match="method"):
        excess.excess_estimate(obj, x, 3)
    with pytest.raises(ValueError, match="method must be one of"):
        excess.excess_estimate(obj, x, "newton")
    with pytest.raises(ValueError, match="max_iter"):
        excess.excess_estimate(obj, x, "cg", max_iter=0)
    with pytest.raises(TypeError, match="max_iter"):
        excess.excess_estimate(obj, x, "cg", max_iter=2.0)
    f, y = _quadratic([1.0, 2.0])
    no_hvp = type("NoHvp", (), {"num_params": 2, "value_and_grad": f.value_and_grad})()
    with pytest.raises(TypeError, match="hvp"):
        excess.excess_estimate(no_hvp, y, "cg")
    with pytest.raises(TypeError, match="value_grad_hessian"):
        excess.excess_estimate(object(), y)
    no_size = type("NoSize", (), {"value_grad_hessian": f.value_grad_hessian})()
    with pytest.raises(TypeError, match="num_params"):
        excess.excess_estimate(no_size, y)
    with pytest.raises(ValueError, match="finite"):
        excess.excess_estimate(f, torch.tensor([0.0, math.nan], dtype=torch.float64), "cg")
    assert math.isnan(excess.step_excess(f, torch.tensor([0.0, math.inf]))[0])


# -- the per-step record -----------------------------------------------------------------


def test_solve_step_records_the_estimate_at_its_solution() -> None:
    """An unconverged step (softplus toy, d = d_0 / 2, 3 iterations): the outcome's excess and
    bound are those of excess_estimate on the unscaled objective at the returned phi."""
    loss, theta = toy_problem("softplus", ToyConfig(samples=200))
    con = PairConstraint(loss.net, 1, (1, 3))
    d = 0.5 * con.measure(theta)
    phi0 = con.chart(theta)
    cfg = PathConfig(layer=1, pair=(1, 3), max_iter=3)
    phi, out = solve_step(loss, con, d, phi0, phi0, cfg)
    est = excess.excess_estimate(ConstrainedLoss(loss, con, d), phi)
    assert not out.converged and out.excess > 1e-8
    assert out.excess == est.excess and out.excess_bound == est.is_bound


@pytest.fixture(scope="module")
def relu_path(tmp_path_factory):
    """The ReLU toy path of pair (0, 1) (200 samples, 30 steps, max_iter 40, patience 10;
    27 of its 32 solved steps converge), written to a folder."""
    loss, theta = toy_problem("relu", ToyConfig(samples=200))
    out = tmp_path_factory.mktemp("relu") / "path"
    return loss, theta, out, find_path(loss, theta, 1, (0, 1), **SETTINGS, out=out)


def test_every_solved_step_records_its_excess(relu_path) -> None:
    """steps.csv has the columns; solved steps have an estimate, the shift rows NaN; converged
    steps that are not bounds have excess <= CONVERGED_EXCESS (observed: <= 3e-30)."""
    loss, _, out, path = relu_path
    header = (out / "steps.csv").read_text().splitlines()[0].split(",")
    assert all(c in header for c in NEW_COLUMNS) and header == list(StepRecord.columns())
    con = PairConstraint(loss.net, 1, (0, 1))
    converged = 0
    for rec, theta in zip(path.records, path.thetas):
        if rec.segment == "shift":
            assert math.isnan(rec.excess) and not rec.excess_bound
            continue
        assert math.isfinite(rec.excess) and rec.excess >= 0.0
        if rec.converged and not rec.excess_bound:
            assert rec.excess <= CONVERGED_EXCESS
            converged += 1
        if rec.d > 0.0:  # the estimate at the stored point, recomputed (rounding level here)
            est = excess.excess_estimate(ConstrainedLoss(loss, con, rec.d), con.chart(theta))
            assert abs(rec.excess - est.excess) <= 1e-10 * est.excess + CONVERGED_EXCESS
    assert converged >= 20
    ratios = [r.excess / max(r.loss, 1e-300) for r in path.records if r.segment != "shift"]
    assert path.worst_excess_ratio == max(ratios)
    loaded = load_path(out, loss.net)
    for a, b in zip(loaded.records, path.records):
        assert (a.excess == b.excess or math.isnan(a.excess) and math.isnan(b.excess)) and (
            a.excess_bound == b.excess_bound
        )


def test_rows_of_older_versions_load(relu_path, tmp_path) -> None:
    """A steps.csv without the two columns loads with excess NaN and excess_bound False."""
    loss, _, out, path = relu_path
    rows = read_csv(out / "steps.csv")
    columns = [c for c in StepRecord.columns() if c not in NEW_COLUMNS]
    old = [{k: v for k, v in r.items() if k not in NEW_COLUMNS} for r in rows]
    for name in ("config.json", "thetas.pt"):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    atomic_write_csv(tmp_path / "steps.csv", old, columns=columns)
    loaded = load_path(tmp_path, loss.net)
    assert all(math.isnan(r.excess) and not r.excess_bound for r in loaded.records)
    assert math.isnan(loaded.worst_excess_ratio)
    assert torch.equal(loaded.loss, path.loss)


def test_checkpoint_of_an_older_version_resumes(relu_path, tmp_path) -> None:
    """Step records saved without the two fields (resealed), and the later steps killed:
    the path resumes; the old steps read excess NaN, the recomputed ones equal a fresh run."""
    loss, theta, out, ref = relu_path
    folder = tmp_path / "old"
    shutil.copytree(out, folder)
    steps = sorted((folder / "steps").glob("step_*.json"))
    kept = 4
    for i, file in enumerate(steps):
        if i >= kept:
            file.unlink()
            continue
        raw = json.loads(file.read_text())
        body = {k: v for k, v in raw.items() if k != "sha256"}
        body["record"] = {k: v for k, v in body["record"].items() if k not in NEW_COLUMNS}
        file.write_text(json.dumps(_sealed(body)))
    resumed = find_path(loss, theta, 1, (0, 1), **SETTINGS, out=folder)
    for i, (a, b) in enumerate(zip(resumed.records, ref.records)):
        assert a.loss == b.loss
        if i < kept:
            assert math.isnan(a.excess) and not a.excess_bound
        elif a.segment != "shift":
            assert a.excess == b.excess and a.excess_bound == b.excess_bound
    assert resumed.worst_excess_ratio == max(
        r.excess / max(r.loss, 1e-300) for r in resumed.records[kept : resumed.num_solved]
    )
    assert len(read_csv(folder / "steps.csv")) == len(ref.records)
