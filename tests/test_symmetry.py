"""Defs. 1-3 and 5: neuron vectors, permutations of hidden layers, distances, permutation sets."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import weightsym as ws
from weightsym import symmetry

DEEP = [3, 4, 5, 3, 2]  # three hidden layers of widths 4, 5, 3
ACTIVATIONS = ["tanh", "relu"]


def deep(activation: str = "tanh", seed: int = 0) -> tuple[ws.MLP, torch.Tensor, torch.Tensor]:
    net = ws.MLP(DEEP, activation)
    X = torch.randn(40, DEEP[0], dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    return net, net.init(seed), X


def max_rel_diff(net_a, theta_a, net_b, theta_b, X) -> float:
    fa, fb = net_a(theta_a, X), net_b(theta_b, X)
    return float((fa - fb).abs().max()) / max(1.0, float(fa.abs().max()))


def layer_perms(layer: int) -> st.SearchStrategy:
    return st.permutations(range(DEEP[layer]))


# -- Defs. 1 and 2 ------------------------------------------------------------------------------


def test_neuron_and_output_vectors_follow_the_layout():
    net, theta, _ = deep()
    W2, b2 = net.unflatten(theta)[1]
    W3 = net.unflatten(theta)[2][0]
    v = ws.neuron_vector(net, theta, 2, 3)
    assert torch.equal(v, torch.cat([W2[3], b2[3:4]]))  # exact: a copy of the same numbers
    assert torch.equal(ws.output_vector(net, theta, 2, 3), W3[:, 3])  # exact
    v[0] = 99.0  # a copy: theta is not modified
    assert theta[net.neuron_slice(2, 3)][0] != 99.0


# -- Def. 3: permutations -----------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("layer", [1, 2, 3])
def test_permute_and_swap_keep_f(activation, layer):
    net, theta, X = deep(activation)
    perm = torch.randperm(DEEP[layer], generator=torch.Generator().manual_seed(layer))
    moved = ws.permute(net, theta, layer, perm)
    swapped = ws.swap(net, theta, layer, 0, DEEP[layer] - 1)
    for other in (moved, swapped):
        assert not torch.equal(other, theta)
        assert max_rel_diff(net, theta, net, other, X) <= 1e-12  # f unchanged, relative
        assert ws.same_function(net, theta, net, other, X)  # rtol 1e-12 by default


def test_permute_moves_rows_entries_and_columns():
    net, theta, _ = deep()
    perm = (2, 0, 4, 1, 3)
    moved = ws.permute(net, theta, 2, perm)
    (W2, b2), (W3, b3) = net.unflatten(theta)[1:3]
    (W2n, b2n), (W3n, b3n) = net.unflatten(moved)[1:3]
    for i, p in enumerate(perm):  # new neuron i is old neuron perm[i]; all exact copies
        assert torch.equal(W2n[i], W2[p]) and b2n[i] == b2[p]
        assert torch.equal(W3n[:, i], W3[:, p])
    assert torch.equal(b3n, b3)
    assert torch.equal(ws.permute(net, theta, 2, np.array(perm)), moved)  # NumPy perms too
    untouched = [net.offsets[0], net.offsets[1], net.offsets[3], net.offsets[4]]
    assert torch.equal(moved[: untouched[1]], theta[: untouched[1]])  # layer 1: exact
    assert torch.equal(moved[untouched[2] :], theta[untouched[2] :])  # layer 4: exact


@settings(max_examples=40, deadline=None)
@given(p=layer_perms(2), q=layer_perms(2))
def test_permutations_compose(p, q):
    net, theta, _ = deep()
    twice = ws.permute(net, ws.permute(net, theta, 2, p), 2, q)
    assert torch.equal(twice, ws.permute(net, theta, 2, ws.compose(p, q)))  # exact: copies


@settings(max_examples=40, deadline=None)
@given(p=layer_perms(3))
def test_invert_round_trips(p):
    net, theta, _ = deep()
    identity = tuple(range(len(p)))
    assert ws.compose(p, ws.invert(p)) == identity
    assert ws.compose(ws.invert(p), p) == identity
    back = ws.permute(net, ws.permute(net, theta, 3, p), 3, ws.invert(p))
    assert torch.equal(back, theta)  # exact


@settings(max_examples=30, deadline=None)
@given(pair=st.lists(st.integers(0, DEEP[1] - 1), min_size=2, max_size=2, unique=True))
def test_swap_is_an_involution_and_a_transposition(pair):
    net, theta, _ = deep()
    l, m = pair
    once = ws.swap(net, theta, 1, l, m)
    assert torch.equal(ws.swap(net, once, 1, l, m), theta)  # exact
    assert torch.equal(ws.swap(net, theta, 1, m, l), once)  # exact: symmetric in l, m
    perm = list(range(DEEP[1]))
    perm[l], perm[m] = m, l
    assert torch.equal(once, ws.permute(net, theta, 1, perm))  # exact


def test_permutations_of_different_layers_commute():
    net, theta, X = deep("relu")
    a = ws.permute(net, ws.permute(net, theta, 1, [3, 2, 1, 0]), 2, [4, 3, 2, 1, 0])
    b = ws.permute(net, ws.permute(net, theta, 2, [4, 3, 2, 1, 0]), 1, [3, 2, 1, 0])
    assert torch.equal(a, b)  # exact
    assert ws.same_function(net, theta, net, a, X)  # rtol 1e-12


def test_same_function_detects_a_change_and_compares_different_widths():
    net, theta, X = deep()
    nudged = theta.clone()
    nudged[5] += 1e-6
    assert not ws.same_function(net, theta, net, nudged, X)
    assert ws.same_function(net, theta, net, nudged, X, rtol=1e-3)
    big, theta_big, _ = ws.permutation_point(net, theta, 2, 1)
    assert ws.same_function(net, theta, big, theta_big, X)  # different widths, rtol 1e-12


# -- Def. 3: the size of the permutation set ----------------------------------------------------


def brute_force_set_size(net: ws.MLP, theta: torch.Tensor) -> int:
    """Distinct points over all products of permutations of the hidden layers."""
    orders = [itertools.permutations(range(net.widths[k])) for k in net.hidden_layers]
    points = set()
    for perms in itertools.product(*orders):
        x = theta
        for k, p in zip(net.hidden_layers, perms):
            x = ws.permute(net, x, k, p)
        points.add(tuple(x.tolist()))
    return len(points)


def test_permutation_set_size_generic():
    net = ws.MLP([2, 3, 2, 4, 1], "tanh")
    theta = net.init(3)
    assert ws.permutation_set_size(net, theta) == 6 * 2 * 24
    assert brute_force_set_size(ws.MLP([2, 3, 2, 1]), ws.MLP([2, 3, 2, 1]).init(1)) == 12


@pytest.mark.parametrize("copies", [{0: 2}, {0: 3}, {0: 2, 1: 2}])
def test_permutation_set_size_with_duplicate_neurons(copies):
    small = ws.MLP([2, 2, 2, 1], "tanh")
    net, theta, groups = ws.higher_order_point(small, small.init(4), 1, copies)
    expected = math.factorial(net.widths[1]) * 2
    for group in groups:
        expected //= math.factorial(len(group))
    assert ws.permutation_set_size(net, theta) == expected
    assert brute_force_set_size(net, theta) == expected


def test_permutation_set_size_needs_equal_output_weights_and_honours_atol():
    small = ws.MLP([2, 2, 2, 1], "tanh")
    net, theta, (l, m) = ws.permutation_point(small, small.init(4), 1, 0)
    moved = theta.clone()
    moved[net.output_index(1, l)[0]] += 1e-9  # same vartheta, different w: distinct neurons
    assert ws.permutation_set_size(net, moved) == 12 == brute_force_set_size(net, moved)
    assert ws.permutation_set_size(net, moved, atol=1e-8) == 6


# -- Def. 5: distances and similarity -----------------------------------------------------------


def test_distances():
    net, theta, _ = deep()
    a, b = ws.neuron_vector(net, theta, 2, 0), ws.neuron_vector(net, theta, 2, 3)
    wa, wb = ws.output_vector(net, theta, 2, 0), ws.output_vector(net, theta, 2, 3)
    d_in = ws.distance(net, theta, 2, 0, 3)
    d_joint = ws.distance(net, theta, 2, 0, 3, kind="joint")
    angle = ws.distance(net, theta, 2, 0, 3, kind="angle")
    assert d_in == pytest.approx(float((a - b).norm()), rel=1e-15)  # same formula
    assert d_joint == pytest.approx(float(torch.cat([a - b, wa - wb]).norm()), rel=1e-15)
    cos = float(a @ b / (a.norm() * b.norm()))
    assert angle == pytest.approx(math.acos(cos), rel=1e-12)  # Kahan vs acos: well conditioned
    assert ws.distance(net, theta, 2, 3, 0, kind="angle") == pytest.approx(angle, rel=1e-15)


def test_angle_is_scale_free_and_exact_at_the_ends():
    net, theta, _ = deep()
    sl0, sl1 = net.neuron_slice(1, 0), net.neuron_slice(1, 1)
    theta = theta.clone()
    theta[sl1] = 3.0 * theta[sl0]
    assert ws.distance(net, theta, 1, 0, 1, kind="angle") <= 1e-15  # parallel: rounding only
    assert ws.distance(net, theta, 1, 0, 1) > 0
    theta[sl1] = -theta[sl0]
    assert ws.distance(net, theta, 1, 0, 1, kind="angle") == pytest.approx(math.pi, abs=1e-15)


def test_pairwise_cosine_and_most_similar_pair():
    net, theta, _ = deep()
    theta = theta.clone()
    theta[net.neuron_slice(2, 4)] = 2.0 * theta[net.neuron_slice(2, 1)] + 1e-3
    C = ws.pairwise_cosine(net, theta, 2)
    assert C.shape == (5, 5)
    assert torch.allclose(C, C.T, rtol=0, atol=1e-15)  # symmetric to rounding
    assert torch.allclose(C.diagonal(), torch.ones(5, dtype=C.dtype), rtol=0, atol=1e-15)
    assert ws.most_similar_pair(net, theta, 2) == (1, 4)


# -- bad inputs ---------------------------------------------------------------------------------


def test_bad_layers_neurons_and_thetas_raise():
    net, theta, X = deep()
    with pytest.raises(ValueError, match="layer=0 is not a hidden layer"):
        ws.permute(net, theta, 0, [0, 1, 2])
    with pytest.raises(ValueError, match="layer=4 is not a hidden layer"):
        ws.swap(net, theta, 4, 0, 1)
    with pytest.raises(TypeError, match="layer must be an int"):
        ws.neuron_vector(net, theta, 1.0, 0)
    with pytest.raises(ValueError, match="m=5 out of range"):
        ws.neuron_vector(net, theta, 2, 5)
    with pytest.raises(ValueError, match="l and m must be two different neurons"):
        ws.swap(net, theta, 2, 1, 1)
    with pytest.raises(ValueError, match="l=-1 out of range"):
        ws.distance(net, theta, 2, -1, 1)
    with pytest.raises(ValueError, match="theta must be a 1-D tensor of length"):
        ws.permute(net, theta[:-1], 1, [0, 1, 2, 3])
    bad = theta.clone()
    bad[3] = float("nan")
    with pytest.raises(ValueError, match="theta contains 1 NaN"):
        ws.swap(net, bad, 1, 0, 1)
    with pytest.raises(TypeError, match="net must be a weightsym.MLP"):
        ws.permute("net", theta, 1, [0, 1, 2, 3])


def test_bad_permutations_raise():
    net, theta, _ = deep()
    with pytest.raises(ValueError, match="perm must have length 4"):
        ws.permute(net, theta, 1, [0, 1, 2])
    with pytest.raises(ValueError, match=r"perm must be a permutation of 0\.\.3"):
        ws.permute(net, theta, 1, [0, 1, 1, 3])
    with pytest.raises(TypeError, match="perm must hold ints"):
        ws.permute(net, theta, 1, [0.0, 1, 2, 3])
    with pytest.raises(TypeError, match="perm must be a 1-D integer tensor"):
        ws.permute(net, theta, 1, torch.tensor([0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match="perm must be a sequence of ints"):
        ws.permute(net, theta, 1, "0123")
    with pytest.raises(ValueError, match="second must have length 3"):
        ws.compose([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="first must be a permutation"):
        ws.compose([0, 2], [0, 1])
    with pytest.raises(ValueError, match="perm must be a permutation"):
        ws.invert([1, 2])


def test_bad_options_raise():
    net, theta, X = deep()
    with pytest.raises(ValueError, match="unknown distance kind 'squared'"):
        ws.distance(net, theta, 1, 0, 1, kind="squared")
    zero = theta.clone()
    zero[net.neuron_slice(1, 1)] = 0.0
    with pytest.raises(ValueError, match="vartheta of neuron m=1 is zero"):
        ws.distance(net, zero, 1, 0, 1, kind="angle")
    with pytest.raises(ValueError, match=r"neurons \[1\] of layer 1 have vartheta = 0"):
        ws.pairwise_cosine(net, zero, 1)
    one = ws.MLP([2, 1, 1])
    with pytest.raises(ValueError, match="layer 1 has one neuron"):
        ws.most_similar_pair(one, one.init(0), 1)
    with pytest.raises(ValueError, match="atol must be a finite number >= 0"):
        ws.permutation_set_size(net, theta, atol=-1.0)
    with pytest.raises(ValueError, match="rtol must be a finite number >= 0"):
        ws.same_function(net, theta, net, theta, X, rtol=float("nan"))
    other = ws.MLP([3, 4, 1])
    with pytest.raises(ValueError, match="same input and output sizes"):
        ws.same_function(net, theta, other, other.init(0), X)
    with pytest.raises(ValueError, match=r"X must have shape \(T, 3\)"):
        ws.same_function(net, theta, net, theta, X[:, :2])


def test_coincide_uses_a_relative_tolerance():
    net, theta, _ = deep()
    theta = theta.clone()
    theta[net.neuron_slice(1, 1)] = theta[net.neuron_slice(1, 0)] * (1 + 1e-14)
    assert symmetry.coincide(net, theta, 1, 0, 1)  # default rtol 1e-12
    assert not symmetry.coincide(net, theta, 1, 0, 1, rtol=1e-16)
