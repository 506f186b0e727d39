"""Polars and certificates of networks: exact 2-D polar vs grid search, bounds, what is proven."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hdlcore as hd
from hdlcore.networks.certificates import add_subnetwork
from hdlcore.networks.polars import polar_upper_bound

F64 = torch.float64


def _grid_polar(A, Z, n=200_000):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    W = np.stack([np.cos(t), np.sin(t)])  # (2, n)
    return np.linalg.norm(Z.T @ np.maximum(A @ W, 0), axis=0).max()


@settings(max_examples=25)
@given(N=st.integers(1, 25), C=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_exact_2d_polar_against_dense_grid(N, C, seed):
    rng = np.random.default_rng(seed)
    A, Z = rng.standard_normal((N, 2)), rng.standard_normal((N, C))
    pol = hd.polar_one_hidden_2d(A, Z)
    grid = _grid_polar(A, Z)
    assert grid <= pol.value * (1 + 1e-12) + 1e-12  # exact is an upper bound of every sample
    # the grid is within its resolution: |f(t) - f(t*)| <= ||Z|| ||A|| (2 pi / n)
    assert pol.value - grid <= np.linalg.norm(Z) * np.linalg.norm(A, 2) * 2 * np.pi / 200_000 + 1e-12
    w, v = pol.subnet
    assert np.isclose(np.linalg.norm(w), 1) and (pol.value == 0 or np.isclose(np.linalg.norm(v), 1))
    attained = float(Z.ravel() @ (np.maximum(A @ w, 0) @ v).ravel())
    assert np.isclose(attained, pol.value, rtol=1e-12, atol=1e-14)


def test_exact_polar_on_a_kink_and_degenerate_inputs():
    # the maximum sits exactly where a sample switches on: an arc endpoint
    A = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    Z = np.array([[1.0], [2.0], [-5.0]])
    assert np.isclose(hd.polar_one_hidden_2d(A, Z).value, _grid_polar(A, Z, 400_000), rtol=1e-9)
    zero = hd.polar_one_hidden_2d(np.zeros((3, 2)), np.ones((3, 1)))
    assert zero.value == 0.0
    torch_in = hd.polar_one_hidden_2d(torch.as_tensor(A), torch.as_tensor(Z))
    assert np.isclose(torch_in.value, hd.polar_one_hidden_2d(A, Z).value)
    with pytest.raises(ValueError, match=r"'A' parameter of polar_one_hidden_2d must be an array of shape"):
        hd.polar_one_hidden_2d(np.ones((3, 3)), Z)


@pytest.mark.parametrize("hidden", [(1,), (3,)])
def test_lower_bound_is_below_the_exact_polar_and_close(hidden):
    rng = np.random.default_rng(3)
    A, Z = rng.standard_normal((30, 2)), rng.standard_normal((30, 2))
    exact = hd.polar_one_hidden_2d(A, Z).value
    net = hd.ParallelSubnetworks(2, 2, 3, hidden, rng=0, dtype=F64)
    low = hd.polar_lower_bound(net, A, Z, num_starts=32, steps=150, rng=0)
    assert low.kind == "lower_bound"
    assert low.value <= exact * (1 + 1e-10)  # wider hidden layers do not beat one neuron
    assert low.value >= 0.99 * exact
    # the returned subnetwork is feasible (every layer of unit norm) and attains the value
    sub = hd.ParallelSubnetworks.from_weights([torch.as_tensor(w)[None] for w in low.subnet])
    assert torch.allclose(sub.layer_norms(), torch.ones(2, 1, dtype=F64))
    attained = float((sub(torch.as_tensor(A)) * torch.as_tensor(Z)).sum().detach())
    assert np.isclose(attained, low.value, rtol=1e-9)
    assert polar_upper_bound(net, A, Z) >= exact


def test_lower_bound_for_deep_and_convolutional_subnetworks():
    rng = np.random.default_rng(4)
    A, Z = rng.random((12, 16)), rng.standard_normal((12, 3))
    for net in (hd.ParallelSubnetworks(16, 3, 2, (5, 4), rng=0, dtype=F64),
                hd.ParallelSubnetworks(16, 3, 2, (4,), conv=[(2, 3, 2)], input_shape=(1, 4, 4), rng=0,
                                       dtype=F64)):
        low = hd.polar_lower_bound(net, A, Z, num_starts=16, steps=60, rng=1)
        assert 0 < low.value <= polar_upper_bound(net, A, Z)


@pytest.fixture(scope="module")
def spirals_optimum():
    A, Y = hd.two_spirals(24, rng=1)
    lam = 0.5
    oracle = hd.convex_relu(A, Y, lam)
    return A, Y, lam, oracle


def test_oracle_network_is_certified_global(spirals_optimum):
    A, Y, lam, oracle = spirals_optimum
    net = hd.ParallelSubnetworks.from_weights([torch.as_tensor(oracle.W1.T[:, :, None]),
                                               torch.as_tensor(oracle.W2[:, :, None])])
    cert = hd.certify_network(net, A, Y, lam, tol=1e-6)
    assert cert.polar_kind == "exact" and cert.is_global is True
    assert abs(cert.polar - 1) < 1e-5 and cert.bound < 1e-6 * cert.objective
    assert "global minimum" in cert.proves


def test_untrained_network_is_disproven_and_the_decrease_verified(spirals_optimum):
    A, Y, lam, oracle = spirals_optimum
    net = hd.ParallelSubnetworks(2, 1, 4, (1,), rng=0, dtype=F64)
    cert = hd.certify_network(net, A, Y, lam)
    assert cert.is_global is False and cert.polar > 1 and cert.descent < 0
    # the gap bound is valid: f - f* <= bound, f* from the independent oracle
    assert cert.objective - oracle.objective <= cert.bound + 1e-9
    # add_subnetwork: exact line search, decrease = lam^2 (omega - 1)^2 / (2 ||phi||^2)
    At, Yt = torch.as_tensor(A), torch.as_tensor(Y)
    new, s, f_new = add_subnetwork(net, At, Yt, lam, cert.maximizer)
    w, v = cert.maximizer
    phi = np.maximum(A @ w, 0) @ v
    predicted = lam**2 * (cert.polar - 1) ** 2 / (2 * (phi**2).sum())
    assert np.isclose(cert.objective - f_new, predicted, rtol=1e-8)
    assert new.num_subnets == 5


def test_grow_network_reaches_the_oracle(spirals_optimum):
    A, Y, lam, oracle = spirals_optimum
    res = hd.grow_network(A, Y, lam, rng=0)
    assert res.converged and res.certificate.is_global
    assert abs(res.objective - oracle.objective) <= 1e-6 * oracle.objective
    assert np.all(np.diff(res.history["objective"]) <= 1e-9)  # every round decreases (or keeps) f
    assert res.certificate.euler_residual < 1e-6


def test_zero_slot_slope_and_local_minimum_with_a_zero_subnetwork(spirals_optimum):
    A, Y, lam, oracle = spirals_optimum
    res = hd.grow_network(A, Y, lam, rng=0)
    net = res.model.append([np.zeros((2, 1)), np.zeros((1, 1))])  # a zero slot at the optimum
    cert = hd.certify_network(net, A, Y, lam, tol=1e-5, rng=0)
    assert list(cert.zero_subnets) == [net.num_subnets - 1]
    # first-order slope of adding tau w in the slot: lam (1 - <Z, phi(w)>) >= lam (1 - polar)
    assert cert.zero_slot_slope >= lam * (1 - cert.polar) - 1e-4
    assert cert.zero_slot_slope >= -1e-4
    assert cert.local_min_with_zero and cert.is_global


def test_degree_mismatch_certifies_nothing():
    A, Y = hd.two_spirals(20, rng=0)
    net = hd.ParallelSubnetworks(2, 1, 3, (4, 4), rng=0, dtype=F64)
    with pytest.warns(hd.HypothesisWarning, match="network of degree 3, regularizer of degree 2"):
        cert = hd.certify_network(net, A, Y, 1.0, regularizer="weight_decay")
    assert cert.polar is None and cert.polar_kind == "not_applicable" and cert.is_global is None
    assert cert.proves.startswith("nothing about global optimality")
    with pytest.raises(ValueError, match="'regularizer' parameter of grow_network"):
        hd.grow_network(A, Y, 1.0, hidden=(3, 3), regularizer="weight_decay")


def test_lower_bound_certificate_says_evidence_only():
    A, Y = hd.two_spirals(30, rng=2)
    net = hd.ParallelSubnetworks(2, 1, 6, (4, 4), rng=0, dtype=F64)
    hd.train(net, A, Y, 3.0, steps=300, tol=1e-9)
    cert = hd.certify_network(net, A, Y, 3.0, num_starts=16, steps=60, rng=0)
    assert cert.polar_kind == "lower_bound"
    if cert.polar <= 1 + cert.tol:
        assert cert.is_global is None and "evidence" in cert.proves
    else:
        assert cert.is_global is False and cert.descent < 0
    with pytest.raises(ValueError, match="'polar' parameter"):
        hd.certify_network(net, A, Y, 3.0, polar="exact")


def test_certificate_bad_input():
    A, Y = hd.two_spirals(20, rng=0)
    net = hd.ParallelSubnetworks(2, 1, 3, (1,), rng=0, dtype=F64)
    with pytest.raises(ValueError, match="'lam' parameter of certify_network"):
        hd.certify_network(net, A, Y, -1.0)
    with pytest.raises(ValueError, match="'tol' parameter"):
        hd.certify_network(net, A, Y, 1.0, tol=0)
    with pytest.raises(ValueError, match="'Y' parameter"):
        hd.certify_network(net, A, Y[:5], 1.0)


@pytest.mark.parametrize("fn", ["certify_network", "grow_network", "polar_one_hidden_2d", "convex_relu"])
def test_complex_data_is_refused_not_cast(fn):
    A, Y = hd.two_spirals(20, rng=0)
    net = hd.ParallelSubnetworks(2, 1, 3, (1,), rng=0, dtype=F64)
    args = {"certify_network": (net, A, Y + 0j, 0.5), "grow_network": (A, Y + 0j, 0.5),
            "polar_one_hidden_2d": (A, Y + 0j), "convex_relu": (A, Y + 0j, 0.5)}[fn]
    name = "Z" if fn == "polar_one_hidden_2d" else "Y"
    with pytest.raises(TypeError, match=rf"The '{name}' parameter of {fn} must be a real array"):
        getattr(hd, fn)(*args)


def test_float16_data_gives_the_float64_result():
    A, Y = hd.two_spirals(20, rng=0)
    A16, Y16 = A.astype(np.float16), Y.astype(np.float16)
    A64, Y64 = A16.astype(np.float64), Y16.astype(np.float64)
    assert hd.polar_one_hidden_2d(A16, Y16).value == hd.polar_one_hidden_2d(A64, Y64).value
    net = hd.ParallelSubnetworks(2, 1, 3, (1,), rng=0, dtype=F64)
    assert hd.certify_network(net, A16, Y16, 0.5).bound == hd.certify_network(net, A64, Y64, 0.5).bound
    assert hd.convex_relu(A16, Y16, 0.5).objective == pytest.approx(hd.convex_relu(A64, Y64, 0.5).objective,
                                                                    rel=1e-12)


def test_plain_torch_network_is_refused_with_the_way_to_convert_it():
    A, Y = hd.two_spirals(20, rng=0)
    seq = torch.nn.Sequential(torch.nn.Linear(2, 3, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(3, 1, bias=False))
    with pytest.raises(TypeError, match=r"'model' parameter of certify_network must be a hdlcore."
                                        r"ParallelSubnetworks \(build one .*\.from_weights"):
        hd.certify_network(seq, A, Y, 0.5)


@pytest.mark.parametrize("kwargs, name", [(dict(steps=-1), "steps"), (dict(train_tol=-1.0), "train_tol"),
                                          (dict(tol=0.0), "tol"), (dict(num_starts=0), "num_starts"),
                                          (dict(max_rounds=0), "max_rounds"), (dict(hidden=(0,)), "hidden"),
                                          (dict(dtype=torch.float16), "dtype")])
def test_grow_network_errors_name_grow_network(kwargs, name):
    """Arguments passed down to training and certification are validated once, by grow_network."""
    A, Y = hd.two_spirals(20, rng=0)
    with pytest.raises((ValueError, TypeError), match=rf"The '{name}' parameter of grow_network must be"):
        hd.grow_network(A, Y, 0.5, **kwargs)


def test_polar_results_speak_the_matrix_vocabulary():
    """NetworkPolarResult and NetworkCertificate use the field names of PolarResult and Certificate."""
    import dataclasses

    def names(cls):  # fields and properties
        return {f.name for f in dataclasses.fields(cls)} | {n for n in dir(cls) if not n.startswith("_")}

    shared_polar = {"value", "kind", "upper", "detail"}
    assert shared_polar <= names(hd.PolarResult) and shared_polar <= names(hd.NetworkPolarResult)
    shared_cert = {"polar", "polar_kind", "polar_upper", "objective", "bound", "is_global", "descent",
                   "proves", "basis", "tol"}
    assert shared_cert <= names(hd.Certificate) and shared_cert <= names(hd.NetworkCertificate)
    A, Y = hd.two_spirals(20, rng=0)
    exact = hd.polar_one_hidden_2d(A, Y)
    assert exact.kind == "exact" and exact.upper == exact.value and "arcs" in exact.detail
    net = hd.ParallelSubnetworks(2, 1, 3, (4, 4), rng=0, dtype=F64)
    low = hd.polar_lower_bound(net, A, Y, num_starts=4, steps=5, rng=0)
    assert low.kind == "lower_bound" and low.value <= low.upper == polar_upper_bound(net, A, Y)
    cert = hd.certify_network(net, A, Y, 0.5, num_starts=4, steps=5, rng=0)
    assert cert.polar_kind == "lower_bound" and "projected ascent" in cert.basis


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_certificate_and_growth_on_a_device(device):
    """The same calls on any device: tensors stay on the model's device, numbers agree with float64 CPU."""
    A, Y = hd.two_spirals(24, rng=1)
    lam = 0.5
    cpu = hd.grow_network(A, Y, lam, rng=0)
    net = hd.ParallelSubnetworks.from_weights([w.detach().to(device) for w in cpu.model.weights])
    cert = hd.certify_network(net, A, Y, lam, tol=1e-6, rng=0)
    assert cert.is_global and abs(cert.objective - cpu.objective) <= 1e-10 * cpu.objective
    deep = hd.ParallelSubnetworks(2, 1, 4, (5, 5), rng=0, dtype=F64, device=device)
    res = hd.train(deep, A, Y, lam, steps=50, tol=None)
    assert res.device.startswith(device)
    fit = hd.fit_last_layer(deep, A, Y, lam)
    assert fit.objective <= res.objective + 1e-9
    low = hd.certify_network(deep, A, Y, lam, num_starts=8, steps=20, rng=0)
    assert low.polar_kind == "lower_bound" and low.polar > 0
    many = hd.train_many([hd.ParallelSubnetworks(2, 1, 3, (1,), rng=s, dtype=F64, device=device)
                          for s in range(2)], A, Y, lam, steps=30, tol=None)
    assert all(m.model.weights[0].device.type == device for m in many)


def test_same_array_type_out_as_in():
    A, Y = hd.two_spirals(20, rng=0)
    At, Yt = torch.as_tensor(A), torch.as_tensor(Y)
    Z = Y / 0.5
    assert isinstance(hd.polar_one_hidden_2d(A, Z).subnet[0], np.ndarray)
    assert isinstance(hd.polar_one_hidden_2d(At, torch.as_tensor(Z)).subnet[0], torch.Tensor)
    net = hd.ParallelSubnetworks(2, 1, 3, (4,), rng=0, dtype=F64)
    assert isinstance(hd.polar_lower_bound(net, At, torch.as_tensor(Z), num_starts=4, steps=5).subnet[0],
                      torch.Tensor)
    small = hd.ParallelSubnetworks(2, 1, 3, (1,), rng=0, dtype=F64)
    assert isinstance(hd.certify_network(small, A, Y, 0.5).maximizer[0], np.ndarray)
    assert isinstance(hd.certify_network(small, At, Yt, 0.5).maximizer[0], torch.Tensor)
    res = hd.convex_relu(At[:8], Yt[:8], 0.5)
    assert isinstance(res.X, torch.Tensor) and res.X.dtype == torch.float64


def test_grow_network_validates_its_problem_once(monkeypatch):
    """The rounds (train, last layer, certificate, growth) trust the problem validated at the boundary."""
    from hdlcore.networks import problem

    calls = []
    real = problem.check_data
    monkeypatch.setattr(problem, "check_data", lambda *a: calls.append(a[-1]) or real(*a))
    A, Y = hd.two_spirals(24, rng=1)
    res = hd.grow_network(A, Y, 0.5, rng=0)
    assert res.rounds >= 2 and calls == ["grow_network"]
