"""ParallelSubnetworks and its regularizers: batched = sum of separate modules, degrees, prox, gradients."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import hdlcore as hd
from hdlcore.networks.regularizers import (
    _prox,
    network_regularizer_grad,
    prox_subnetworks,
    regularizer_degree,
)

F64 = torch.float64


def _net(r=5, hidden=(4, 3), d=3, C=2, seed=0, **kw):
    return hd.ParallelSubnetworks(d, C, r, hidden, rng=seed, dtype=F64, **kw)


@pytest.mark.parametrize("hidden", [(), (1,), (4,), (4, 3), (5, 2, 3)])
def test_equals_sum_of_separate_modules(hidden):
    net = _net(r=6, hidden=hidden, seed=1)
    A = torch.randn(11, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    modules = net.to_modules()
    assert len(modules) == 6
    expected = sum(m(A) for m in modules)
    torch.testing.assert_close(net(A), expected, rtol=1e-12, atol=1e-12)
    each = net.forward_each(A)
    for i, m in enumerate(modules):
        torch.testing.assert_close(each[i], m(A), rtol=1e-12, atol=1e-12)


def test_convolutional_equals_sum_of_separate_modules():
    net = hd.ParallelSubnetworks(2 * 8 * 8, 3, 4, hidden=(5,), conv=[(3, 3, 2), (4, 3, 2)],
                                 input_shape=(2, 8, 8), rng=0, dtype=F64)
    assert net.degree == 4
    A = torch.randn(7, 128, dtype=F64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(net(A), sum(m(A) for m in net.to_modules()), rtol=1e-11, atol=1e-12)
    # degree 4 jointly in the weights: scale every layer by a
    with torch.no_grad():
        before = net(A)
        for w in net.weights:
            w.mul_(1.7)
    torch.testing.assert_close(net(A), 1.7**4 * before, rtol=1e-11, atol=1e-12)


@given(K=st.integers(1, 4), a=st.floats(0.1, 5.0), seed=st.integers(0, 100))
def test_positive_homogeneity_of_degree_K(K, a, seed):
    net = _net(r=3, hidden=(3,) * (K - 1), seed=seed)
    A = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(seed))
    before = net(A)
    with torch.no_grad():
        for w in net.weights:
            w.mul_(a)
    assert net.degree == K
    torch.testing.assert_close(net(A), a**K * before, rtol=1e-10, atol=1e-12)


def test_degree_measured_by_hdlcore_homogeneity():
    if not hasattr(hd, "degree") or not hasattr(hd, "check_degrees"):
        pytest.skip("hdlcore.homogeneity is not available")
    net = _net(r=4, hidden=(5, 5), seed=2)
    A = torch.randn(9, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    assert hd.degree(net, inputs=A).degree == 3
    ok = hd.check_degrees(net, lambda m: hd.network_regularizer(m, "product"), inputs=A)
    assert ok.matched
    bad = hd.check_degrees(net, lambda m: hd.network_regularizer(m, "weight_decay"), inputs=A)
    assert not bad.matched and "network of degree 3, regularizer of degree 2" in bad.message
    for kind in hd.networks.REGULARIZERS:
        measured = hd.check_degrees(net, lambda m, kind=kind: hd.network_regularizer(m, kind), inputs=A)
        assert measured.regularizer_degree == regularizer_degree(kind, 3)


def test_from_weights_select_append_roundtrip():
    net = _net(r=5, seed=3)
    A = torch.randn(6, 3, dtype=F64)
    again = hd.ParallelSubnetworks.from_weights([w.detach() for w in net.weights])
    torch.testing.assert_close(again(A), net(A))
    part = net.select([0, 2])
    torch.testing.assert_close(part(A), net.forward_each(A)[[0, 2]].sum(0))
    bigger = part.append(net.subnetwork(4))
    torch.testing.assert_close(bigger(A), net.forward_each(A)[[0, 2, 4]].sum(0))
    mask = torch.tensor([True, False, False, False, True])
    assert net.select(mask).num_subnets == 2


def test_numpy_init_is_device_independent_and_seeded():
    a, b = _net(seed=7), _net(seed=7)
    assert all(torch.equal(x, y) for x, y in zip(a.weights, b.weights, strict=True))
    c = _net(seed=8)
    assert not torch.equal(a.weights[0], c.weights[0])
    g = hd.ParallelSubnetworks(3, 2, 4, (3,), rng=torch.Generator().manual_seed(0), dtype=F64)
    assert g.weights[0].shape == (4, 3, 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_features=0, out_features=1, num_subnets=2), "in_features"),
    (dict(in_features=2, out_features=1, num_subnets=0), "num_subnets"),
    (dict(in_features=2, out_features=1, num_subnets=2, hidden=(3, 0)), "hidden"),
    (dict(in_features=2, out_features=1, num_subnets=2, hidden=3), "hidden"),
    (dict(in_features=2, out_features=1, num_subnets=2, hidden=(2.5,)), "hidden"),
    (dict(in_features=16, out_features=1, num_subnets=2, conv=[(2, 3)]), "input_shape"),
    (dict(in_features=16, out_features=1, num_subnets=2, conv=[(2, 3)], input_shape=(1, 4, 5)),
     "input_shape"),
    (dict(in_features=16, out_features=1, num_subnets=2, conv=[(2, 2)], input_shape=(1, 4, 4)),
     "odd kernel"),
    (dict(in_features=4, out_features=1, num_subnets=2, conv=[(2, 3, 4), (2, 3, 2)], input_shape=(1, 2, 2)),
     "1 x 1"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        hd.ParallelSubnetworks(**kwargs)


def test_from_weights_needs_at_least_one_layer():
    with pytest.raises(ValueError, match=r"K >= 1"):
        hd.ParallelSubnetworks.from_weights([])
    with pytest.raises(ValueError, match="consistent shapes"):
        hd.ParallelSubnetworks.from_weights([torch.ones(2, 3, 4), torch.ones(2, 5, 1)])


# ----------------------------------------------------------------------------------- regularizers
@pytest.mark.parametrize("kind", ["product", "balanced", "weight_decay"])
@pytest.mark.parametrize("hidden", [(), (3,), (3, 2), (2, 2, 2)])
def test_hand_written_gradient_matches_autograd(kind, hidden):
    net = _net(r=4, hidden=hidden, seed=5)
    theta = hd.network_regularizer(net, kind)
    auto = torch.autograd.grad(theta, list(net.weights))
    hand = network_regularizer_grad(net, kind)
    for a, h in zip(auto, hand, strict=True):
        torch.testing.assert_close(a, h, rtol=1e-12, atol=1e-14)


def test_regularizer_values_and_means_inequality():
    net = _net(r=6, hidden=(4, 4), seed=6)
    n = net.layer_norms().detach()
    torch.testing.assert_close(hd.network_regularizer(net, "product"), n.prod(0).sum())
    torch.testing.assert_close(hd.network_regularizer(net, "balanced"), (n**3).sum() / 3)
    torch.testing.assert_close(hd.network_regularizer(net, "weight_decay"), 0.5 * (n**2).sum())
    assert hd.network_regularizer(net, "product") <= hd.network_regularizer(net, "balanced")
    with pytest.raises(ValueError, match="'kind' parameter"):
        hd.network_regularizer(net, "l1")


def test_rebalance_keeps_output_and_product_and_equalizes():
    net = _net(r=5, hidden=(4, 3), seed=9)
    A = torch.randn(8, 3, dtype=F64)
    with torch.no_grad():
        net.weights[0][1].mul_(30.0)
        net.weights[2][1].mul_(0.01)
    X, prod = net(A), hd.network_regularizer(net, "product")
    bal = hd.network_regularizer(net, "balanced")
    hd.rebalance(net)
    torch.testing.assert_close(net(A), X, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hd.network_regularizer(net, "product"), prod, rtol=1e-12, atol=0)
    n = net.layer_norms().detach()
    torch.testing.assert_close(n, n[:1].expand_as(n))
    # at balance the balanced form equals the product (equality case of the means inequality)
    torch.testing.assert_close(hd.network_regularizer(net, "balanced"), prod, rtol=1e-12, atol=0)
    assert hd.network_regularizer(net, "balanced") <= bal


@given(seed=st.integers(0, 1000), t=st.floats(0.01, 3.0))
def test_group_prox_optimality_and_moreau(seed, t):
    """Layer k of subnetwork i: W+ = argmin 1/2||W - V||^2 + t c ||W||; Moreau: V - W+ = proj_{t c B}(V)."""
    gen = torch.Generator().manual_seed(seed)
    V = [torch.randn(6, 3, 4, dtype=F64, generator=gen), torch.randn(6, 4, 2, dtype=F64, generator=gen)]
    norms = torch.rand(2, 6, dtype=F64, generator=gen) + 0.1  # the "other layers" norms used for c
    W = [v.clone() for v in V]
    _prox(W, t, 1.0, "product", norms, False)
    c = torch.stack([norms[1], norms[0]])  # c for layer 0 is ||layer 1|| and vice versa
    dead = torch.zeros(6, dtype=torch.bool)
    for k in range(2):
        vn = V[k].reshape(6, -1).norm(dim=1)
        dead |= vn <= t * c[k]
    for k in range(2):
        for i in range(6):
            v, w, tau = V[k][i], W[k][i], t * c[k][i]
            if dead[i]:
                assert torch.count_nonzero(w) == 0  # a zero layer zeroes the whole subnetwork
                continue
            # optimality: V - W = tau * W / ||W||  (W != 0)
            torch.testing.assert_close(v - w, tau * w / w.norm(), rtol=1e-10, atol=1e-12)
            # Moreau: V - prox(V) is the projection of V on the ball of radius tau
            proj = v * min(1.0, float(tau / v.norm()))
            torch.testing.assert_close(v - w, proj, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind, K", [("balanced", 3), ("balanced", 2), ("weight_decay", 3), ("balanced", 1)])
def test_radial_prox_optimality(kind, K):
    net = _net(r=5, hidden=(3,) * (K - 1), seed=11)
    V = [w.detach().clone() for w in net.weights]
    t = 0.37
    prox_subnetworks(net, t, 1.0, kind)
    for v, w in zip(V, net.weights, strict=True):
        for i in range(5):
            wi, vi = w[i].detach(), v[i]
            n = wi.norm()
            if n == 0:
                continue
            grad = (n ** (K - 2) * wi) if kind == "balanced" else wi  # gradient of g at W
            torch.testing.assert_close(wi - vi + t * grad, torch.zeros_like(wi), rtol=0, atol=1e-10)


def test_prox_validation():
    net = _net()
    with pytest.raises(ValueError, match="'lam' parameter of prox_subnetworks"):
        prox_subnetworks(net, 0.1, 0.0)
    with pytest.raises(ValueError, match="'step' parameter"):
        prox_subnetworks(net, -1.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert regularizer_degree("balanced", 4) == 4


def test_numpy_to_torch_dtypes_follow_the_model():
    net = hd.ParallelSubnetworks(2, 1, 3, (2,), rng=0)
    assert net.weights[0].dtype == torch.get_default_dtype()
    X = net(torch.as_tensor(np.ones((4, 2)), dtype=net.weights[0].dtype))
    assert X.shape == (4, 1)


def test_absurd_sizes_are_refused_before_allocating():
    fit = "whose arrays fit in memory"
    with pytest.raises(ValueError, match=f"'num_subnets' parameter of ParallelSubnetworks must be .*{fit}"):
        hd.ParallelSubnetworks(2, 1, 10**12, hidden=(1,))
    with pytest.raises(ValueError, match=f"'hidden' parameter of ParallelSubnetworks must be .*{fit}"):
        hd.ParallelSubnetworks(2, 1, 1, hidden=(10**6, 10**6))
    with pytest.raises(ValueError, match=f"'in_features' parameter of ParallelSubnetworks must be .*{fit}"):
        hd.ParallelSubnetworks(10**12, 1, 1, hidden=(1,))
    with pytest.raises(ValueError, match=f"'hidden' parameter of grow_network must be .*{fit}"):
        hd.grow_network(np.ones((3, 2)), np.ones((3, 1)), 0.5, hidden=(10**12,))
