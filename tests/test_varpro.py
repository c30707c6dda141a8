"""Variable projection (weightsym.varpro): the reduced objective, its gradient (envelope
theorem) and Hessian-vector product (Schur complement) against the full chart objective at the
least-squares output layer, finite differences and a second linear-algebra path."""

import pytest
import torch

from weightsym.constraints import ConstrainedLoss, PairConstraint
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.optimize import minimize
from weightsym.varpro import VarPro

CASES = [  # (activation, loss kind, distance, gauge)
    ("softplus", "mse", "incoming", False),
    ("softplus", "nmse", "incoming", False),
    ("softplus", "mse", "joint", False),
    ("softplus", "nmse", "joint", False),
    ("tanh", "mse", "incoming", False),
    ("relu", "mse", "incoming", True),
]


def make(activation="softplus", kind="mse", distance="incoming", gauge=False, d=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    net = MLP([5, 4, 3, 2], activation)
    X = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    Y = torch.randn(40, 2, generator=gen, dtype=torch.float64)
    theta = net.init(seed + 1)
    con = PairConstraint(net, 2, (0, 1), distance, gauge)
    obj = ConstrainedLoss(Loss(net, X, Y, kind), con, d)
    vp = VarPro(obj)
    return obj, vp, vp.restrict(con.normalize(con.chart(theta)))


def rel(a, b):
    return float((a - b).norm() / max(float(b.norm()), 1e-300))


@pytest.mark.parametrize("case", CASES)
def test_value_and_gradient_equal_the_full_objective_at_the_optimal_output_layer(case):
    obj, vp, x = make(*case)
    value, g = vp.value_and_grad(x)
    phi = vp.expand(x)
    value_full, g_full = obj.value_and_grad(phi)
    assert abs(value - value_full) <= 1e-10 * abs(value_full)
    assert rel(g, g_full[vp.keep]) <= 1e-10
    # the output layer is optimal: its partial gradient vanishes (to rounding)
    assert float(g_full[vp.elim.reshape(-1)].abs().max()) <= 1e-10 * float(g_full.abs().max())
    # and it is the least-squares solution computed independently
    assert vp(x) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_gradient_against_central_differences(case):
    _, vp, x = make(*case)
    _, g = vp.value_and_grad(x)
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        v = torch.randn(vp.num_params, generator=gen, dtype=torch.float64)
        h = 1e-6
        fd = (vp(x + h * v) - vp(x - h * v)) / (2 * h)
        assert fd == pytest.approx(float(g @ v), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_hvp_is_the_schur_complement_of_the_full_hessian(case):
    obj, vp, x = make(*case)
    phi = vp.expand(x)
    _, _, H = obj.value_grad_hessian(phi)
    k, e = vp.keep, vp.elim.reshape(-1)
    schur = H[k][:, k] - H[k][:, e] @ torch.linalg.pinv(H[e][:, e]) @ H[e][:, k]
    gen = torch.Generator().manual_seed(4)
    v = torch.randn(vp.num_params, generator=gen, dtype=torch.float64)
    hv = vp.hvp(x, v)
    assert rel(hv, schur @ v) <= 1e-10
    _, g, H_red = vp.value_grad_hessian(x)
    assert rel(H_red, schur) <= 1e-10
    assert rel(g, vp.value_and_grad(x)[1]) <= 1e-12


@pytest.mark.parametrize("case", CASES[:3])
def test_hvp_against_differences_of_the_reduced_gradient(case):
    _, vp, x = make(*case)
    gen = torch.Generator().manual_seed(5)
    v = torch.randn(vp.num_params, generator=gen, dtype=torch.float64)
    h = 1e-5
    fd = (vp.value_and_grad(x + h * v)[1] - vp.value_and_grad(x - h * v)[1]) / (2 * h)
    assert rel(vp.hvp(x, v), fd) <= 1e-6


def test_expand_and_restrict_are_inverse_on_the_kept_coordinates():
    obj, vp, x = make()
    phi = vp.expand(x)
    assert torch.equal(vp.restrict(phi), x)
    assert obj.num_params == vp.num_params + vp.elim.numel()
    # incoming distance: the whole output layer (2 x (3 + 1)) is eliminated
    assert vp.elim.numel() == 8
    _, vp_joint, _ = make(distance="joint")
    assert vp_joint.elim.numel() == 4  # the pair's two output columns stay in x


def test_collinear_columns_as_d_goes_to_zero():
    """The pair's columns of the least-squares matrix approach each other: the condition
    number grows like 1 / d, and at d = 0 the solve drops one direction (minimum norm)."""
    conds = []
    for d in (1e-2, 1e-3, 1e-4):
        _, vp, x = make(d=d)
        fit = vp.fit(x)
        assert fit.rank == 4
        conds.append(fit.condition * d)
    assert max(conds) / min(conds) < 1.5
    obj, vp, x = make(d=0.0)
    fit = vp.fit(x)
    assert fit.rank == 3
    B = obj.con.net.block(fit.theta, 3)
    assert torch.allclose(B[:, 0], B[:, 1], rtol=0, atol=1e-12)  # equal split of the output
    value, g = vp.value_and_grad(x)
    g_full = obj.value_and_grad(vp.expand(x))[1]
    assert rel(g, g_full[vp.keep]) <= 1e-10


def test_minimize_on_the_reduced_objective_converges_on_a_teacher_problem():
    """Student-teacher at the teacher's own distance d_0: the minimum is the teacher (L = 0)."""
    gen = torch.Generator().manual_seed(0)
    net = MLP([5, 4, 3, 2], "softplus")
    X = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    theta = net.init(1)
    con = PairConstraint(net, 2, (0, 1))
    obj = ConstrainedLoss(Loss(net, X, net(theta, X), "nmse"), con, con.measure(theta))
    vp = VarPro(obj)
    x0 = vp.restrict(con.chart(theta))
    x0 = x0 + 0.05 * torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    res = minimize(vp, x0, method="newton", tol=1e-9, max_iter=100)
    assert res.success, res.message
    assert float(obj.value_and_grad(vp.expand(res.x))[1].abs().max()) <= 1e-9
    assert res.fun <= 1e-10


def test_bad_input_is_refused_with_a_clear_error():
    obj, vp, x = make()
    net = obj.con.net
    labels = torch.zeros(40, dtype=torch.long)
    nll = ConstrainedLoss(Loss(net, obj.loss.X, labels, "nll"), obj.con, 0.3)
    with pytest.raises(ValueError, match="kind='nll'"):
        VarPro(nll)
    with pytest.raises(TypeError, match="ConstrainedLoss"):
        VarPro(obj.loss)
    with pytest.raises(ValueError, match="rcond"):
        VarPro(obj, rcond=0.0)
    with pytest.raises(ValueError, match="x must be a 1-D tensor of length"):
        vp.value_and_grad(torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="v must be a 1-D tensor"):
        vp.hvp(x, torch.zeros(3, dtype=torch.float64))
