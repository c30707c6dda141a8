"""Defs. 4 and 6, Props. 1 and 2 (with the correction of (ii), docs/theory.md section 2),
Sec. 4.1's shift.

Converged examples (tanh, float64, Newton to grad_inf <= 1e-12 on the smaller network):

* the example of docs/theory.md section 2: a 2-3-2 student fitted to a random 2-4-2 teacher
  (neuron 0 duplicated);
* a scalar output, 2-3-1 fitted to a 2-4-1 teacher, where n_{k+1} = 1 and the printed claim holds;
* three hidden layers, 2-3-3-3-2, fitted to its own outputs plus noise from the teacher start
  (a finite minimum with nonzero loss; an under-parameterized deep student usually has none,
  docs/theory.md section 5).

|H| below is the spectral norm (largest |eigenvalue|) of the dense Hessian.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
import torch

import weightsym as ws
from weightsym.equal_loss_path import permutation_path_keys

DEEP = [3, 4, 5, 3, 2]  # three hidden layers of widths 4, 5, 3
ZERO_RTOL = 1e-12  # |eigenvalue| <= ZERO_RTOL * |H| counts as zero (the gap is 1e-19 .. 1e-10)


def gaussian(T: int, n: int, seed: int) -> torch.Tensor:
    return torch.randn(T, n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@dataclass
class Fitted:
    """A smaller network at a critical point of its loss."""

    net: ws.MLP
    theta: torch.Tensor
    X: torch.Tensor
    Y: torch.Tensor

    def loss(self, net: ws.MLP) -> ws.Loss:
        return ws.Loss(net, self.X, self.Y)


def fit(net: ws.MLP, X: torch.Tensor, Y: torch.Tensor, start: torch.Tensor) -> Fitted:
    res = ws.minimize(ws.Loss(net, X, Y), start, method="newton", tol=1e-12)
    assert res.success, res.message  # the example must be a critical point to 1e-12
    print(f"\n  fitted {net}: loss {res.fun:.3e}, grad_inf {res.grad_inf:.1e}, nit {res.nit}")
    return Fitted(net, res.x, X, Y)


def teacher_student(teacher_widths: list[int], student_widths: list[int], seed: int) -> Fitted:
    teacher = ws.MLP(teacher_widths, "tanh")
    X = gaussian(100, teacher_widths[0], seed + 100)
    student = ws.MLP(student_widths, "tanh")
    return fit(student, X, teacher(teacher.init(seed), X), student.init(seed + 1))


@pytest.fixture(scope="module")
def spec_example() -> Fitted:
    return teacher_student([2, 4, 2], [2, 3, 2], seed=1)


@pytest.fixture(scope="module")
def scalar_example() -> Fitted:
    return teacher_student([2, 4, 1], [2, 3, 1], seed=0)


@pytest.fixture(scope="module")
def deep_example() -> Fitted:
    net = ws.MLP([2, 3, 3, 3, 2], "tanh")
    start = net.init(0, scale=3.0)
    X = gaussian(200, 2, 100)
    noise = 1e-3 * gaussian(200, 2, 101)
    return fit(net, X, net(start, X) + noise, start)


def deep_random(activation: str) -> tuple[ws.MLP, torch.Tensor, ws.Loss]:
    net = ws.MLP(DEEP, activation)
    X = gaussian(60, DEEP[0], 5)
    return net, net.init(2), ws.Loss(net, X, gaussian(60, DEEP[-1], 6))


def rel_change(loss: ws.Loss, theta: torch.Tensor, points: torch.Tensor) -> float:
    """max |L(point) - L(theta)| / max(1, L(theta)) over the rows of ``points``."""
    values = torch.tensor([loss(p) for p in points], dtype=torch.float64)
    return float((values - loss(theta)).abs().max()) / max(1.0, loss(theta))


def hv_ratio(H: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """|H v| / (|H| |v|) for each column v of V; |H| the spectral norm."""
    spectral = torch.linalg.eigvalsh(H).abs().max()
    return torch.linalg.vector_norm(H @ V, dim=0) / (spectral * torch.linalg.vector_norm(V, dim=0))


def eigen_counts(loss: ws.Loss, theta: torch.Tensor) -> tuple[int, int, int, torch.Tensor]:
    """(negative, zero, positive) by ws.saddle_index, zero meaning |lambda| <= ZERO_RTOL |H|,
    and the eigenvalues (ws.hessian_spectrum)."""
    counts = ws.saddle_index(loss, theta, rtol=ZERO_RTOL)
    return (*counts, ws.hessian_spectrum(loss, theta))


# -- Defs. 4 and 6: construction ----------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("layer", [1, 2, 3])
@pytest.mark.parametrize("copies", [{0: 2}, {0: 3, 2: 2}])
def test_points_compute_the_same_function(activation, layer, copies):
    small, theta_small, _ = deep_random(activation)
    X = gaussian(50, DEEP[0], 9)
    net, theta, groups = ws.higher_order_point(small, theta_small, layer, copies)
    K = sum(c - 1 for c in copies.values())
    assert net.widths == small.with_width(layer, DEEP[layer] + K).widths
    assert ws.same_function(small, theta_small, net, theta, X)  # rtol 1e-12 of max(1, |f|)
    for group in groups:
        j, c = group[0], copies[group[0]]
        w_small = ws.output_vector(small, theta_small, layer, j)
        w_sum = sum(ws.output_vector(net, theta, layer, i) for i in group)
        assert torch.allclose(w_sum, w_small, rtol=0, atol=1e-15)  # w_j / c summed: rounding
        for i in group:
            assert torch.equal(
                ws.neuron_vector(net, theta, layer, i),  # exact copies
                ws.neuron_vector(small, theta_small, layer, j),
            )
            assert torch.equal(ws.output_vector(net, theta, layer, i), w_small / c)  # exact


def test_point_layout_appends_copies_at_the_end():
    small, theta_small, _ = deep_random("tanh")
    net, theta, pair = ws.permutation_point(small, theta_small, 2, 3)
    assert pair == (3, 5) and net.widths == [3, 4, 6, 3, 2]
    _, _, groups = ws.higher_order_point(small, theta_small, 2, {4: 2, 0: 3, 1: 1})
    assert groups == [(0, 5, 6), (4, 7)]  # increasing j; copies appended in that order


# -- Props. 1 (i), 2 (i): critical points map to critical points --------------------------------


@pytest.mark.parametrize(
    ("example", "layer", "copies"),
    [
        ("spec_example", 1, {0: 2}),
        ("spec_example", 1, {0: 3, 2: 2}),
        ("scalar_example", 1, {1: 2}),
        ("deep_example", 2, {0: 2}),
        ("deep_example", 1, {0: 3, 2: 2}),
        ("deep_example", 3, {1: 2, 2: 2}),
    ],
)
def test_points_of_critical_points_are_critical(example, layer, copies, request):
    fitted = request.getfixturevalue(example)
    small_grad = fitted.loss(fitted.net).grad_inf(fitted.theta)
    net, theta, _ = ws.higher_order_point(fitted.net, fitted.theta, layer, copies)
    grad = fitted.loss(net).grad_inf(theta)
    print(f"  {net} {copies}: grad_inf small {small_grad:.1e} -> point {grad:.1e}")
    assert small_grad <= 1e-12  # the smaller network is converged
    assert grad <= 1e-11  # Props. 1 (i), 2 (i): rounding level, as the smaller network's


# -- Props. 1 (ii), 2 (ii): the equal-loss subspace -------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize(("layer", "copies"), [(1, {0: 2}), (2, {0: 3, 2: 2}), (3, {1: 2})])
def test_equal_loss_directions_keep_the_loss(activation, layer, copies):
    small, theta_small, _ = deep_random(activation)
    net, theta, groups = ws.higher_order_point(small, theta_small, layer, copies)
    loss = ws.Loss(net, gaussian(60, DEEP[0], 5), gaussian(60, DEEP[-1], 6))
    E = ws.equal_loss_directions(net, theta, layer, groups)
    C = ws.critical_directions(net, theta, layer, groups)
    K = sum(c - 1 for c in copies.values())
    n_next = net.widths[layer + 1]
    assert E.shape == (net.num_params, K * n_next) and C.shape == (net.num_params, K)
    eye = torch.eye(E.shape[1], dtype=E.dtype)
    assert torch.allclose(E.T @ E, eye, rtol=0, atol=1e-15)  # orthonormal to rounding
    assert torch.allclose(C.T @ C, eye[:K, :K], rtol=0, atol=1e-15)  # orthonormal
    CN = torch.cat([C, ws.noncritical_directions(net, theta, layer, groups)], dim=1)
    assert torch.allclose(CN.T @ CN, eye, rtol=0, atol=1e-15)  # split + rest: orthonormal,
    assert torch.allclose(E @ (E.T @ CN), CN, rtol=0, atol=1e-15)  # K n_k+1 of them in span E
    coef = torch.randn(8, E.shape[1], dtype=E.dtype, generator=torch.Generator().manual_seed(3))
    steps = theta + (coef / coef.norm(dim=1, keepdim=True)) @ E.T  # random unit steps
    change = rel_change(loss, theta, torch.cat([steps, theta + 10 * (steps - theta)]))
    print(f"  {activation} layer {layer} {copies}: max rel. loss change {change:.1e}")
    assert change <= 1e-12  # relative to max(1, L), steps of length 1 and 10


@pytest.mark.parametrize(
    ("example", "layer", "copies"),
    [("spec_example", 1, {0: 2}), ("deep_example", 2, {0: 2}), ("deep_example", 1, {0: 3, 2: 2})],
)
def test_split_ratios_are_critical_and_the_rest_is_not(example, layer, copies, request):
    """docs/theory.md section 2: the K split-ratio directions are Hessian null vectors along which
    the gradient stays zero; the other K (n_{k+1} - 1) equal-loss directions are not, so the point
    is a strict saddle with K zero eigenvalues (the smaller network has none)."""
    fitted = request.getfixturevalue(example)
    net, theta, groups = ws.higher_order_point(fitted.net, fitted.theta, layer, copies)
    loss = fitted.loss(net)
    K, n_next = sum(c - 1 for c in copies.values()), net.widths[layer + 1]
    E = ws.equal_loss_directions(net, theta, layer, groups)
    C = ws.critical_directions(net, theta, layer, groups)
    N = ws.noncritical_directions(net, theta, layer, groups)
    assert N.shape[1] == K * (n_next - 1) and E.shape[1] == K * n_next
    H = loss.hessian(theta)
    r_crit = hv_ratio(H, C)
    spectral = torch.linalg.eigvalsh(H).abs().max()
    r_other = torch.linalg.svdvals(H @ N).min() / spectral  # min |Hv| / (|H||v|), v in span N
    g_crit = max(loss.grad_inf(theta + s * v) for s in (0.5, 1.0) for v in C.T)
    g_other = min(loss.grad_inf(theta + 0.5 * v) for v in N.T)
    neg, zero, pos, ev = eigen_counts(loss, theta)
    small_counts = eigen_counts(fitted.loss(fitted.net), fitted.theta)[:3]
    print(
        f"  {net} {copies}: |Hv|/(|H||v|) split ratios <= {r_crit.max():.1e}, others >= "
        f"{r_other:.1e}; grad_inf along split ratios {g_crit:.1e}, others at 0.5 >= "
        f"{g_other:.1e}; eigenvalues neg/zero/pos {neg}/{zero}/{pos} (small {small_counts}); "
        f"lowest {[f'{v:.2e}' for v in ev[: neg + 2].tolist()]}"
    )
    assert r_crit.max() <= 1e-8  # null vectors of H, to rounding (seen: 1e-17)
    assert g_crit <= 1e-11  # the gradient stays at rounding level along the family
    assert r_other >= 1e-12  # no null vector off the family: rounding is 1e-17 (seen >= 4e-9)
    assert g_other >= 1e-10  # the gradient grows off it: rounding is 1e-15 (seen >= 1e-7)
    assert neg >= 1  # a strict saddle (H v != 0 with v'Hv = 0 forces indefiniteness)
    assert small_counts[1] == 0 and zero == K  # K zero eigenvalues, not K * n_{k+1}


def test_spec_checked_example(spec_example):
    """docs/theory.md section 2's record: 2-3-2 tanh, neuron 0 duplicated; a parallel and a
    perpendicular to w in the equal-loss plane; index 2 and one zero eigenvalue."""
    net, theta, (l, m) = ws.permutation_point(spec_example.net, spec_example.theta, 1, 0)
    loss = spec_example.loss(net)
    w = ws.output_vector(net, theta, 1, l)
    perp = torch.stack([-w[1], w[0]])
    along, across = torch.zeros_like(theta), torch.zeros_like(theta)
    for d, u in ((along, w / w.norm()), (across, perp / perp.norm())):
        d[net.output_index(1, l)], d[net.output_index(1, m)] = u / 2**0.5, -u / 2**0.5
    H = loss.hessian(theta)
    ratios = hv_ratio(H, torch.stack([along, across], dim=1))
    grads = [loss.grad_inf(theta + 0.5 * d) for d in (along, across)]
    changes = [abs(loss(theta + 0.5 * d) - loss(theta)) for d in (along, across)]
    neg, zero, pos, ev = eigen_counts(loss, theta)
    print(
        f"  parallel: |Hv|/(|H||v|) {ratios[0]:.1e}, grad_inf at 0.5 {grads[0]:.1e}, "
        f"loss change {changes[0]:.1e}\n  perpendicular: |Hv|/(|H||v|) {ratios[1]:.1e}, "
        f"grad_inf at 0.5 {grads[1]:.1e}, loss change {changes[1]:.1e}\n  lowest "
        f"eigenvalues {[f'{v:.2e}' for v in ev[:4].tolist()]}: index {neg}, {zero} zero"
    )
    assert ratios[0] <= 1e-8 and grads[0] <= 1e-11  # parallel to w: critical
    assert ratios[1] >= 1e-6 and grads[1] >= 1e-6  # perpendicular: not (seen 6e-5, 9e-5)
    assert max(changes) <= 1e-12 * max(1.0, loss(theta))  # both keep the loss
    assert (neg, zero) == (2, 1)  # as docs/theory.md section 2 records: index 2, one zero


def test_printed_claim_holds_with_one_output(scalar_example):
    """n_{k+1} = 1: the equal-loss subspace is the split-ratio family, all critical (Prop. 2
    (ii) as printed)."""
    net, theta, groups = ws.higher_order_point(
        scalar_example.net, scalar_example.theta, 1, {0: 2, 2: 3}
    )
    loss = scalar_example.loss(net)
    E = ws.equal_loss_directions(net, theta, 1, groups)
    C = ws.critical_directions(net, theta, 1, groups)
    ratios = hv_ratio(loss.hessian(theta), E)
    grad = max(loss.grad_inf(theta + s * v) for s in (0.5, 1.0) for v in E.T)
    neg, zero, pos, _ = eigen_counts(loss, theta)
    print(
        f"  {net}: |Hv|/(|H||v|) <= {ratios.max():.1e}, grad_inf along <= {grad:.1e}, "
        f"eigenvalues neg/zero/pos {neg}/{zero}/{pos}"
    )
    assert E.shape == C.shape == (net.num_params, 3)
    assert torch.allclose(E @ (E.T @ C), C, rtol=0, atol=1e-15)  # same span (equal dims)
    assert ratios.max() <= 1e-8  # every equal-loss direction is a Hessian null vector
    assert grad <= 1e-11  # and keeps the gradient at rounding level
    assert zero == 3  # K = 3 zero eigenvalues


# -- Sec. 4.1 / appendix Fig. 4: the output-weight shift ----------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_output_shift_keeps_the_loss(activation):
    small, theta_small, loss_small = deep_random(activation)
    net, point, (l, m) = ws.permutation_point(small, theta_small, 2, 1)
    loss = ws.Loss(net, loss_small.X, loss_small.Y)
    E = ws.equal_loss_directions(net, point, 2, [(l, m)])
    start = point + E @ torch.tensor([0.7, -1.3, 2.0], dtype=E.dtype)  # t = 1/4: w_l != w_m
    shift = ws.output_shift(net, start, 2, l, m, num=11)
    assert shift.shape == (11, net.num_params) and torch.equal(shift[0], start)
    change = rel_change(loss, start, shift)
    print(f"  {activation}: output shift, max rel. loss change {change:.1e}")
    assert change <= 1e-12  # relative to max(1, L)
    w_l, w_m = ws.output_vector(net, shift[-1], 2, l), ws.output_vector(net, shift[-1], 2, m)
    assert torch.equal(w_l, w_m)  # ends on equal output weights (Lemma 1)
    assert torch.allclose(shift[-1], point, rtol=0, atol=1e-15)  # back at the point: rounding


# -- Prop. 1 (iii): the constant-loss permutation path ------------------------------------------


@pytest.mark.parametrize(
    ("activation", "layer", "seed"),
    [("tanh", 1, 0), ("tanh", 2, 1), ("relu", 2, 2), ("relu", 3, 3)],
)
def test_permutation_path_reaches_any_ordering_at_constant_loss(activation, layer, seed):
    small, theta_small, loss_small = deep_random(activation)
    net, point, (l, m) = ws.permutation_point(small, theta_small, layer, 0)
    loss = ws.Loss(net, loss_small.X, loss_small.Y)
    E = ws.equal_loss_directions(net, point, layer, [(l, m)])
    start = point + 0.8 * E[:, 0]  # unequal split of the pair's output weights
    rng = random.Random(seed)
    n = net.widths[layer]
    for _ in range(4):
        perm = rng.sample(range(n), n)
        path = ws.equal_loss_permutation_path(net, start, layer, (l, m), perm)
        target = ws.permute(net, start, layer, perm)
        change = rel_change(loss, start, path)
        print(
            f"  {activation} layer {layer} perm {perm}: {path.shape[0]} points, "
            f"max rel. loss change {change:.1e}"
        )
        assert change <= 1e-12  # relative to max(1, L)
        assert all(ws.same_function(net, start, net, p, loss.X) for p in path)  # rtol 1e-12
        assert torch.equal(path[0], start) and torch.equal(path[-1], target)  # exact ends
        inv = ws.invert(perm)
        assert torch.equal(
            ws.neuron_vector(net, path[-1], layer, inv[l]),  # the pair again
            ws.neuron_vector(net, path[-1], layer, inv[m]),
        )  # coincides


def test_permutation_path_is_piecewise_linear_with_shared_corners():
    small, theta_small, _ = deep_random("tanh")
    net, point, pair = ws.permutation_point(small, theta_small, 2, 1)
    perm = [4, 3, 0, 5, 1, 2]
    keys = permutation_path_keys(net, point, 2, pair, perm)
    moving = [k for k in range(len(keys) - 1) if not torch.equal(keys[k], keys[k + 1])]
    path = ws.equal_loss_permutation_path(net, point, 2, pair, perm, points_per_segment=4)
    assert path.shape[0] == 3 * len(moving) + 1
    corners = path[::3]
    assert torch.equal(corners, keys[[0] + [k + 1 for k in moving]])  # exact corners
    mid = path[1::3]
    lines = keys[moving] + (keys[[k + 1 for k in moving]] - keys[moving]) / 3
    assert torch.allclose(mid, lines, rtol=0, atol=1e-15)  # on the segment, to rounding
    identity = ws.equal_loss_permutation_path(net, point, 2, pair, list(range(6)))
    assert torch.equal(identity[-1], point)


def test_permutation_path_from_a_higher_order_point():
    small, theta_small, loss_small = deep_random("relu")
    net, theta, groups = ws.higher_order_point(small, theta_small, 1, {0: 3, 2: 2})
    loss = ws.Loss(net, loss_small.X, loss_small.Y)
    perm = [6, 5, 4, 3, 2, 1, 0]
    path = ws.equal_loss_permutation_path(net, theta, 1, groups[1], perm)
    assert rel_change(loss, theta, path) <= 1e-12  # relative to max(1, L)
    assert torch.equal(path[-1], ws.permute(net, theta, 1, perm))  # exact


# -- bad inputs ---------------------------------------------------------------------------------


def test_bad_point_inputs_raise():
    small, theta, _ = deep_random("tanh")
    with pytest.raises(ValueError, match="layer=4 is not a hidden layer"):
        ws.permutation_point(small, theta, 4, 0)
    with pytest.raises(ValueError, match="neuron=4 out of range"):
        ws.permutation_point(small, theta, 1, 4)
    with pytest.raises(ValueError, match=r"copies\[1\] must be an int >= 1"):
        ws.higher_order_point(small, theta, 1, {0: 2, 1: 0})
    with pytest.raises(ValueError, match=r"copies key \(a neuron\)=7 out of range"):
        ws.higher_order_point(small, theta, 1, {7: 2})
    with pytest.raises(ValueError, match="order K >= 1"):
        ws.higher_order_point(small, theta, 1, {0: 1})
    with pytest.raises(TypeError, match="copies must be a dict"):
        ws.higher_order_point(small, theta, 1, [2, 1])
    with pytest.raises(ValueError, match="theta_small must be a 1-D tensor"):
        ws.higher_order_point(small, theta[1:], 1, {0: 2})


def test_bad_groups_raise():
    small, theta_small, _ = deep_random("tanh")
    net, theta, groups = ws.higher_order_point(small, theta_small, 2, {0: 3})
    with pytest.raises(ValueError, match="neurons 0 and 1 of layer 2 are not copies"):
        ws.equal_loss_directions(net, theta, 2, [(0, 1)])
    with pytest.raises(ValueError, match="neuron 5 appears twice"):
        ws.critical_directions(net, theta, 2, [(0, 5), (5, 6)])
    with pytest.raises(ValueError, match="each group must list >= 2 copies"):
        ws.equal_loss_directions(net, theta, 2, [(0,)])
    with pytest.raises(ValueError, match="groups must be a non-empty list"):
        ws.equal_loss_directions(net, theta, 2, [])
    with pytest.raises(ValueError, match="group member=9 out of range"):
        ws.equal_loss_directions(net, theta, 2, [(0, 9)])
    with pytest.raises(ValueError, match="group member=5 out of range for layer 1"):
        ws.equal_loss_directions(net, theta, 1, groups)  # groups of layer 2 given for layer 1
    silent = theta.clone()
    for i in groups[0]:
        silent[net.output_index(2, i)] = 0.0
    with pytest.raises(ValueError, match="total output weight zero"):
        ws.critical_directions(net, silent, 2, groups)


def test_bad_shift_and_path_inputs_raise():
    small, theta_small, _ = deep_random("tanh")
    net, theta, (l, m) = ws.permutation_point(small, theta_small, 2, 1)
    with pytest.raises(ValueError, match="l=0 and m=1 of layer 2 differ beyond rtol"):
        ws.output_shift(net, theta, 2, 0, 1)
    with pytest.raises(ValueError, match="num must be an int >= 2"):
        ws.output_shift(net, theta, 2, l, m, num=1)
    with pytest.raises(ValueError, match="l and m must be two different neurons"):
        ws.output_shift(net, theta, 2, l, l)
    with pytest.raises(ValueError, match="differ beyond rtol"):
        ws.equal_loss_permutation_path(net, theta, 2, (0, 2), list(range(6)))
    with pytest.raises(ValueError, match="perm must have length 6"):
        ws.equal_loss_permutation_path(net, theta, 2, (l, m), [0, 1])
    with pytest.raises(ValueError, match="pair must be two neuron indices"):
        ws.equal_loss_permutation_path(net, theta, 2, (l, m, 0), list(range(6)))
    with pytest.raises(ValueError, match="points_per_segment must be an int >= 2"):
        ws.equal_loss_permutation_path(net, theta, 2, (l, m), list(range(6)), 1)
    with pytest.raises(ValueError, match="layer=4 is not a hidden layer"):
        ws.equal_loss_permutation_path(net, theta, 4, (l, m), list(range(6)))
