"""The nudged elastic band with a climbing image and the saddle refinement, on the Mueller-Brown
potential (Mueller and Brown 1979), a 2-D analytic surface with published minima and saddles.

Published values (Mueller and Brown 1979, Table 1), as rounded there:
minima (-0.558, 1.442) E = -146.70, (0.623, 0.028) E = -108.17, (-0.050, 0.467) E = -80.77;
saddles (-0.822, 0.624) E = -40.665 and (0.212, 0.293) E = -72.249.
"Found to the published digits" means |computed - published| <= half a unit of the last
published digit.

"Rounding level" for the gradient: grad_inf <= GRAD_ROUNDING = 100 eps max_k |A_k| (= 4.4e-12),
where A_k are the amplitudes of the potential's four Gaussians (|A| <= 200).
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch

import weightsym as ws
from weightsym.baselines import certify, neb, neb_path, refine_saddle, saddle
from weightsym.baselines.neb import tangents

A = torch.tensor([-200.0, -100.0, -170.0, 15.0], dtype=torch.float64)
a = torch.tensor([-1.0, -1.0, -6.5, 0.7], dtype=torch.float64)
b = torch.tensor([0.0, 0.0, 11.0, 0.6], dtype=torch.float64)
c = torch.tensor([-10.0, -10.0, -6.5, 0.7], dtype=torch.float64)
X0 = torch.tensor([1.0, 0.0, -0.5, -1.0], dtype=torch.float64)
Y0 = torch.tensor([0.0, 0.5, 1.5, 1.0], dtype=torch.float64)
GRAD_ROUNDING = 100 * torch.finfo(torch.float64).eps * float(A.abs().max())

MINIMA = {"A": ((-0.558, 1.442), -146.70), "B": ((0.623, 0.028), -108.17)}
MINIMA["C"] = ((-0.050, 0.467), -80.77)
SADDLES = {"AC": ((-0.822, 0.624), -40.665), "CB": ((0.212, 0.293), -72.249)}


def mueller_brown(x: torch.Tensor) -> torch.Tensor:
    """V(x, y) = sum_k A_k exp(a_k dx^2 + b_k dx dy + c_k dy^2), dx = x - x0_k, dy = y - y0_k."""
    dx, dy = x[0] - X0, x[1] - Y0
    return (A * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy)).sum()


class MuellerBrown:
    """The potential as an objective, with its gradient and Hessian written out by hand."""

    num_params = 2

    def _terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dx, dy = x[0] - X0, x[1] - Y0
        e = A * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy)
        q = torch.stack([2 * a * dx + b * dy, b * dx + 2 * c * dy], dim=1)  # grad of exponent
        return e, q

    def value_and_grad(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        e, q = self._terms(x)
        return float(e.sum()), (e[:, None] * q).sum(0)

    def value_grad_hessian(self, x: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        e, q = self._terms(x)
        curv = torch.stack([torch.stack([2 * a, b], 1), torch.stack([b, 2 * c], 1)], 1)
        H = (e[:, None, None] * (q[:, :, None] * q[:, None, :] + curv)).sum(0)
        return float(e.sum()), (e[:, None] * q).sum(0), H


class NoHessian:
    """The potential without value_grad_hessian."""

    num_params = 2

    def value_and_grad(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        return MuellerBrown().value_and_grad(x)


MB = MuellerBrown()


def published(value: float, reference: float, digits: int) -> bool:
    return abs(value - reference) <= 0.5 * 10.0**-digits


@pytest.fixture(scope="module")
def minima() -> dict[str, torch.Tensor]:
    out = {}
    for name, (xy, energy) in MINIMA.items():
        res = ws.minimize(MB, torch.tensor(xy, dtype=torch.float64), method="newton", tol=1e-12)
        assert res.success
        assert all(published(float(v), r, 3) for v, r in zip(res.x, xy))
        assert published(res.fun, energy, 2)
        out[name] = res.x
    return out


def test_derivatives_match_autodiff() -> None:
    """The hand-written gradient and Hessian against autograd (double backward)."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        x = torch.rand(2, generator=gen, dtype=torch.float64) * 2 - torch.tensor([1.0, 0.0])
        f, g, H = MB.value_grad_hessian(x)
        z = x.clone().requires_grad_(True)
        (g_ad,) = torch.autograd.grad(mueller_brown(z), z, create_graph=True)
        H_ad = torch.stack([torch.autograd.grad(g_ad[i], z, retain_graph=True)[0] for i in (0, 1)])
        assert math.isclose(f, float(mueller_brown(x)), rel_tol=1e-15)
        assert torch.allclose(g, g_ad.detach(), rtol=1e-13, atol=1e-12)
        assert torch.allclose(H, H_ad, rtol=1e-13, atol=1e-11)


@pytest.mark.parametrize("pair", ["AC", "CB"])
def test_climbing_neb_finds_the_published_saddle(pair: str, minima: dict) -> None:
    xy, energy = SADDLES[pair]
    path = neb_path(MB, minima[pair[0]], minima[pair[1]], images=21)
    assert path.converged, path.message
    assert path.fit.residual <= path.fit.tol
    top = path.barrier
    assert top.index == path.climbing and top.at_point and top.converged
    climber = path.thetas[path.climbing]  # the band's own answer, before refinement
    assert all(published(float(v), r, 3) for v, r in zip(climber, xy))
    assert published(top.loss, energy, 3)
    x = path.refined.x  # and the refined saddle
    assert all(published(float(v), r, 3) for v, r in zip(x, xy))
    assert published(path.refined.fun, energy, 3)
    cert = path.saddle
    assert (cert.negative, cert.zero, cert.positive) == (1, 0, 1)
    assert cert.grad_inf <= GRAD_ROUNDING
    assert path.refined.grad_inf == cert.grad_inf
    assert bool((path.t[1:] >= path.t[:-1]).all()) and path.t[0] == 0 and path.t[-1] == 1


def test_the_band_between_the_deep_minima_climbs_to_the_higher_saddle(minima: dict) -> None:
    path = neb_path(MB, minima["A"], minima["B"], images=21)
    xy, energy = SADDLES["AC"]
    assert path.converged and path.barrier.at_point
    assert all(published(float(v), r, 3) for v, r in zip(path.refined.x, xy))
    assert published(path.barrier.loss, energy, 3)
    # the band also passes the intermediate minimum C and the lower saddle
    assert float(path.loss.min()) < -80.0 < -72.249 < float(path.loss[path.climbing :].max())


def test_refine_saddle_certifies_each_saddle_from_a_rough_start() -> None:
    for xy, energy in SADDLES.values():
        start = torch.tensor(xy, dtype=torch.float64) + 0.01
        res, cert = refine_saddle(MB, start)
        assert res.success and res.method == "newton-saddle"
        assert res.grad_inf <= GRAD_ROUNDING and cert.grad_inf == res.grad_inf
        assert cert.index == 1 and cert.zero == 0
        assert published(res.fun, energy, 3)
        assert cert.eigenvalues_lowest[0] < 0 < cert.eigenvalues_lowest[1]


class Quadric:
    """f(x) = (x0^2 - 2 x1^2) / 2 + 0 * x2: a saddle of index 1 with one zero mode."""

    num_params = 3
    D = torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64)

    def value_and_grad(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        return float(0.5 * (self.D * x * x).sum()), self.D * x

    def value_grad_hessian(self, x: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        return *self.value_and_grad(x), torch.diag(self.D)


def test_refine_saddle_leaves_zero_modes_alone_and_counts_them() -> None:
    x0 = torch.tensor([0.3, -0.2, 0.7], dtype=torch.float64)
    res, cert = refine_saddle(Quadric(), x0)
    assert res.success and res.nit == 1  # Newton is exact on a quadratic
    assert torch.allclose(res.x, torch.tensor([0.0, 0.0, 0.7], dtype=torch.float64), atol=1e-15)
    assert (cert.negative, cert.zero, cert.positive) == (1, 1, 1)
    again = certify(Quadric(), res.x)
    assert again[:4] == cert[:4]
    assert torch.equal(again.eigenvalues_lowest, cert.eigenvalues_lowest)


def test_improved_tangent_points_to_the_higher_neighbour() -> None:
    band = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0], [3.0, 2.0]], dtype=torch.float64)
    rising = tangents(band, torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64))
    assert torch.allclose(rising, torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64))
    falling = tangents(band, torch.tensor([3.0, 2.0, 1.0, 0.0], dtype=torch.float64))
    assert torch.allclose(falling, torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64))


def test_neb_is_deterministic(minima: dict) -> None:
    one = neb_path(MB, minima["C"], minima["B"], images=7, refine=False)
    two = neb_path(MB, minima["C"], minima["B"], images=7, refine=False)
    assert torch.equal(one.thetas, two.thetas) and one.fit.nit == two.fit.nit


def test_without_the_hessian_there_is_no_refinement(minima: dict) -> None:
    path = neb_path(NoHessian(), minima["C"], minima["B"], images=7)
    assert path.converged and path.refined is None and path.saddle is None
    assert not path.barrier.at_point  # nothing certified


def test_a_budget_too_small_is_reported(minima: dict) -> None:
    path = neb_path(MB, minima["A"], minima["C"], images=7, max_iter=3, refine=False)
    assert not path.converged
    assert "budget exhausted" in path.message
    assert path.fit.residual > path.fit.tol and path.fit.nit == 3


def test_neb_input_validation(minima: dict) -> None:
    xa, xb = minima["A"], minima["C"]
    with pytest.raises(ValueError, match="images"):
        neb_path(MB, xa, xb, images=2)
    with pytest.raises(TypeError, match="climbing"):
        neb_path(MB, xa, xb, climbing="yes")
    with pytest.raises(ValueError, match="spring"):
        neb_path(MB, xa, xb, spring=-1.0)
    with pytest.raises(ValueError, match="tol"):
        neb_path(MB, xa, xb, tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        neb_path(MB, xa, xb, max_iter=-1)
    with pytest.raises(ValueError, match="refine=True needs climbing"):
        neb_path(MB, xa, xb, climbing=False, refine=True)
    with pytest.raises(TypeError, match="value_grad_hessian"):
        neb_path(NoHessian(), xa, xb, refine=True)
    with pytest.raises(ValueError, match="x_b"):
        neb_path(MB, xa, torch.tensor([0.0, math.nan], dtype=torch.float64))
    with pytest.raises(ValueError, match="coincide"):
        neb_path(MB, xa, xa.clone())


def test_refine_saddle_input_validation() -> None:
    x = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(TypeError, match="value_grad_hessian"):
        refine_saddle(NoHessian(), x)
    with pytest.raises(TypeError, match="Objective protocol"):
        refine_saddle(object(), x)
    with pytest.raises(ValueError, match="x must be a 1-D tensor of length 2"):
        refine_saddle(MB, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="tol"):
        refine_saddle(MB, x, tol=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        refine_saddle(MB, x, max_iter=0)


def test_documented_defaults_are_the_constants() -> None:
    params = inspect.signature(neb_path).parameters
    assert params["images"].default == neb.DEFAULT_IMAGES == 21
    assert params["max_iter"].default == neb.DEFAULT_MAX_ITER
    params = inspect.signature(refine_saddle).parameters
    assert params["tol"].default == saddle.DEFAULT_TOL
    assert params["max_iter"].default == saddle.DEFAULT_MAX_ITER
