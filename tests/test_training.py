"""hd.train / train_many / train_step / fit_last_layer: descent, determinism, oracles, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import hdlcore as hd
from hdlcore.networks.problem import NetworkProblem, gradient_mapping

F64 = torch.float64


@pytest.fixture(scope="module")
def spirals():
    return hd.two_spirals(40, rng=0)


def _net(r=6, hidden=(1,), seed=0, d=2, C=1, dtype=F64):
    return hd.ParallelSubnetworks(d, C, r, hidden, rng=seed, dtype=dtype)


def test_full_batch_decreases_the_objective_and_zeroes_whole_subnetworks(spirals):
    A, Y = spirals
    net = _net(r=12, seed=1)
    res = hd.train(net, A, Y, lam=2.0, steps=400, tol=None)
    obj = res.history["objective"]
    assert np.all(np.diff(obj) <= 1e-12 * obj[:-1])  # monotone (backtracking)
    assert res.objective < obj[0] and res.active < 12
    n = net.layer_norms().detach()
    dead = ~res.active_mask
    assert torch.count_nonzero(n[:, torch.as_tensor(dead)]) == 0  # every layer of a dead subnetwork
    assert res.history["active"][-1] == res.active
    assert isinstance(res, hd.TrainResult)
    with pytest.raises(AttributeError):
        res.objective = 0.0  # frozen


def test_training_step_is_bit_for_bit_repeatable_on_cpu(spirals):
    A, Y = spirals
    At, Yt = torch.as_tensor(A), torch.as_tensor(Y)
    runs = []
    for _ in range(2):
        net = _net(r=8, hidden=(5, 4), seed=3)
        for _ in range(5):
            hd.train_step(net, At, Yt, 0.3, 1e-2)
        runs.append([w.detach().clone() for w in net.weights])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


@pytest.mark.parametrize("batch_size", [None, 8])
def test_train_is_bit_for_bit_repeatable_for_a_seed(spirals, batch_size):
    A, Y = spirals
    outs = []
    for _ in range(2):
        net = _net(r=6, hidden=(4,), seed=5)
        res = hd.train(net, A, Y, lam=0.5, steps=60, batch_size=batch_size, rng=11, tol=None, lr=0.01)
        outs.append(([w.detach().clone() for w in net.weights], res.history["objective"]))
    assert all(torch.equal(a, b) for a, b in zip(outs[0][0], outs[1][0], strict=True))
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


def test_single_linear_subnetwork_matches_cvxpy_group_lasso():
    """K = 1, r = 1: min 1/2||Y - A W||^2 + lam ||W||_F is convex: compare with cvxpy."""
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(0)
    A, Y = rng.standard_normal((30, 5)), rng.standard_normal((30, 3))
    lam = 4.0
    W = cp.Variable((5, 3))
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - A @ W) + lam * cp.norm(W, "fro")))
    prob.solve(solver="CLARABEL")
    net = hd.ParallelSubnetworks(5, 3, 1, (), rng=0, dtype=F64)
    res = hd.train(net, A, Y, lam, steps=3000, tol=1e-13)
    assert res.converged
    assert abs(res.objective - prob.value) <= 1e-7 * prob.value
    np.testing.assert_allclose(net.weights[0][0].detach().numpy(), W.value, atol=1e-4)


def test_fixed_points_are_stationary_points():
    """Smooth case (K = 1, several groups): at convergence the gradient mapping vanishes."""
    rng = np.random.default_rng(1)
    A, Y = rng.standard_normal((25, 4)), rng.standard_normal((25, 2))
    net = hd.ParallelSubnetworks(4, 2, 1, (), rng=0, dtype=F64)
    hd.train(net, A, Y, 1.0, steps=3000, tol=1e-14)
    At, Yt = torch.as_tensor(A), torch.as_tensor(Y)
    residual = gradient_mapping(NetworkProblem(net, At, Yt, 1.0), 1e-3)
    assert residual < 1e-6


def test_mini_batch_and_cross_entropy():
    A, labels = hd.data.digits()
    A, labels = A[:300], labels[:300]
    Y = np.eye(10)[labels]
    net = hd.ParallelSubnetworks(64, 10, 8, (16,), rng=0, dtype=torch.float32)
    res = hd.train(net, A, Y, lam=0.05, loss="cross_entropy", steps=120, batch_size=50, rng=0, lr=0.003,
                   tol=None)
    assert res.converged is None and res.steps == 120
    assert res.history["objective"][-1] < 0.5 * res.history["objective"][0]
    assert len(res.history["step"]) == 21  # every epoch of 6 batches, plus the start
    acc = float((net(torch.as_tensor(A, dtype=torch.float32)).argmax(1).numpy() == labels).mean())
    assert acc > 0.8


def test_mini_batch_default_step_and_bf16_on_cpu(spirals):
    A, Y = spirals
    net = _net(r=6, hidden=(4,), dtype=torch.float32)
    res = hd.train(net, A, Y, lam=0.5, steps=40, batch_size=10, rng=0, precision="bf16", tol=None)
    assert np.isfinite(res.objective) and res.history["lr"][-1] > 0


def test_train_many_equals_train(spirals):
    A, Y = spirals
    nets = [_net(r=r, seed=s) for r in (2, 5) for s in range(2)]
    copies = [hd.ParallelSubnetworks.from_weights([w.detach().clone() for w in n.weights]) for n in nets]
    many = hd.train_many(nets, A, Y, lam=0.4, steps=150, tol=None)
    for net, copy, res in zip(nets, copies, many, strict=True):
        alone = hd.train(copy, A, Y, lam=0.4, steps=150, tol=None)
        assert res.steps == alone.steps
        assert abs(res.objective - alone.objective) <= 1e-9 * alone.objective
        for a, b in zip(net.weights, copy.weights, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


def test_train_many_rejects_mixed_architectures(spirals):
    A, Y = spirals
    with pytest.raises(ValueError, match="same layers"):
        hd.train_many([_net(hidden=(1,)), _net(hidden=(2,))], A, Y, 1.0)
    with pytest.raises(TypeError, match="non-empty list"):
        hd.train_many([], A, Y, 1.0)


def test_fit_last_layer_matches_cvxpy_group_lasso(spirals):
    """Given the first layers, the last layer solves a group lasso: compare with cvxpy."""
    cp = pytest.importorskip("cvxpy")
    A, Y = spirals
    net = _net(r=7, hidden=(3,), seed=4)
    lam = 0.8
    At = torch.as_tensor(A)
    with torch.no_grad():
        H = net._features(At).numpy()  # (r, N, h)
        c = net.layer_norms()[0].numpy()
    B = [cp.Variable((3, 1)) for _ in range(7)]
    X = sum(H[i] @ B[i] for i in range(7))
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Y - X) + lam * sum(c[i] * cp.norm(B[i], "fro")
                                                                          for i in range(7))))
    prob.solve(solver="CLARABEL")
    res = hd.fit_last_layer(net, A, Y, lam, merge=False)
    assert res.converged and res.gap is not None and res.gap < 1e-9 * res.objective
    assert abs(res.objective - prob.value) <= 1e-7 * prob.value
    assert res.objective <= res.objective_before


def test_fit_last_layer_merges_duplicates(spirals):
    A, Y = spirals
    net = _net(r=3, seed=2)
    with torch.no_grad():
        net.weights[0][1] = 2.0 * net.weights[0][0]  # subnetwork 1 duplicates subnetwork 0
    res = hd.fit_last_layer(net, A, Y, lam=0.5)
    assert res.merged == 1 and res.objective <= res.objective_before + 1e-12


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(lam=0.0), ValueError, "'lam' parameter of train must be a float > 0"),
    (dict(lam=-1.0), ValueError, "'lam' parameter"),
    (dict(lam=float("nan")), ValueError, "'lam' parameter"),
    (dict(steps=-1), ValueError, "'steps' parameter"),
    (dict(batch_size=0), ValueError, "'batch_size' parameter"),
    (dict(batch_size=1000), ValueError, "'batch_size' parameter"),
    (dict(loss="hinge"), ValueError, "'loss' parameter"),
    (dict(regularizer="l2"), ValueError, "'regularizer' parameter"),
    (dict(precision="fp8"), ValueError, "'precision' parameter"),
    (dict(device="nonsense"), ValueError, "'device' parameter"),
])
def test_bad_arguments(spirals, kwargs, exc, match):
    A, Y = spirals
    args = dict(lam=1.0) | kwargs
    lam = args.pop("lam")
    with pytest.raises(exc, match=match):
        hd.train(_net(), A, Y, lam, **args)


def test_bad_data(spirals):
    A, Y = spirals
    with pytest.raises(ValueError, match=r"'A' parameter of train must be an array of shape \(any, 2\)"):
        hd.train(_net(), np.ones((40, 3)), Y, 1.0)
    with pytest.raises(ValueError, match=r"'Y' parameter of train must be an array of shape \(40, 1\)"):
        hd.train(_net(), A, np.ones((39, 1)), 1.0)
    with pytest.raises(ValueError, match="finite"):
        hd.train(_net(), np.where(np.arange(80).reshape(40, 2) == 3, np.nan, A), Y, 1.0)
    with pytest.raises(ValueError, match="finite"):
        hd.train(_net(), A, np.full_like(Y, np.inf), 1.0)
    with pytest.raises(TypeError, match="hdlcore.ParallelSubnetworks"):
        hd.train(torch.nn.Linear(2, 1), A, Y, 1.0)
    with pytest.raises(ValueError, match="probability vectors"):
        hd.train(_net(), A, Y, 1.0, loss="cross_entropy")
    net = _net()
    with torch.no_grad():
        net.weights[0][0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite weights"):
        hd.train(net, A, Y, 1.0)


@pytest.mark.parametrize("fn", ["train", "fit_last_layer", "network_objective"])
@pytest.mark.parametrize("which", ["A", "Y"])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_complex_data_is_refused_not_cast(spirals, fn, which, kind):
    A, Y = spirals
    data = {"A": A, "Y": Y}
    data[which] = data[which] + 1j * data[which]
    if kind == "torch":
        data = {k: torch.as_tensor(v) for k, v in data.items()}
    with pytest.raises(TypeError, match=rf"The '{which}' parameter of {fn} must be a real array \(not"):
        getattr(hd, fn)(_net(), data["A"], data["Y"], 0.5)


def test_float16_data_is_computed_in_the_model_dtype(spirals):
    """float16 data is upcast to the model's dtype: the same run as with the float16 values in float64."""
    A, Y = spirals
    A16, Y16 = A.astype(np.float16), Y.astype(np.float16)
    half = hd.train(_net(), A16, Y16, 0.5, steps=50, tol=None)
    full = hd.train(_net(), A16.astype(np.float64), Y16.astype(np.float64), 0.5, steps=50, tol=None)
    assert half.objective == full.objective and np.isfinite(half.objective)
    with pytest.raises(TypeError, match="'model' parameter of train must be a network with float32 or "):
        hd.train(_net(dtype=torch.float16), A, Y, 0.5)


def test_tensors_on_different_devices_are_refused_naming_both(spirals):
    A, Y = spirals
    At, Ym = torch.as_tensor(A), torch.as_tensor(Y, device="meta")  # meta: a second device on any machine
    for fn in (hd.train, hd.fit_last_layer, hd.certify_network):
        with pytest.raises(ValueError, match=rf"'Y' parameter of {fn.__name__} must be on the same device "
                                             r"as 'A' \(cpu\)"):
            fn(_net(), At, Ym, 0.5)


def test_train_many_with_a_nan_weight_in_a_later_model(spirals):
    A, Y = spirals
    bad = _net(seed=1)
    with torch.no_grad():
        bad.weights[1][2] = float("nan")
    with pytest.raises(ValueError, match="'models' parameter of train_many must be a network with finite "
                                         "weights"):
        hd.train_many([_net(), bad], A, Y, 0.5, steps=5)


def test_network_objective_is_the_objective_that_training_reports(spirals):
    A, Y = spirals
    res = hd.train(_net(), A, Y, 0.5, steps=30, tol=None)
    obj = hd.network_objective(res.model, A, Y, 0.5)
    assert obj.objective == pytest.approx(res.objective, rel=1e-14)
    with torch.no_grad():  # an independent evaluation, by hand
        X = res.model(torch.as_tensor(A)).numpy()
    theta = float(hd.network_regularizer(res.model, "product").detach())
    assert obj.loss == pytest.approx(0.5 * np.sum((X - Y) ** 2), rel=1e-12)
    assert obj.regularizer == pytest.approx(theta, rel=1e-12)
    assert obj.objective == pytest.approx(obj.loss + 0.5 * theta, rel=1e-12)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_requested_without_cuda(spirals):
    A, Y = spirals
    with pytest.raises(RuntimeError, match="no CUDA device"):
        hd.train(_net(), A, Y, 1.0, device="cuda")


def test_degree_mismatch_warns_and_names_the_hypothesis(spirals):
    A, Y = spirals
    with pytest.warns(hd.HypothesisWarning, match="network of degree 3, regularizer of degree 2"):
        hd.train(_net(hidden=(3, 3)), A, Y, 1.0, regularizer="weight_decay", steps=2, tol=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", hd.HypothesisWarning)  # one hidden layer: degree 2 both
        hd.train(_net(hidden=(3,)), A, Y, 1.0, regularizer="weight_decay", steps=2, tol=None)
        hd.train(_net(hidden=(3, 3)), A, Y, 1.0, regularizer="balanced", steps=2, tol=None)


def test_non_convergence_warns(spirals):
    A, Y = spirals
    with pytest.warns(hd.ConvergenceWarning, match="train did not converge"):
        res = hd.train(_net(r=10), A, Y, 0.2, steps=12, tol=1e-14)
    assert res.converged is False


def test_numpy_and_tensor_inputs_give_the_same_result(spirals):
    A, Y = spirals
    a = hd.train(_net(seed=9), A, Y, 0.5, steps=30, tol=None)
    b = hd.train(_net(seed=9), torch.as_tensor(A), torch.as_tensor(Y), 0.5, steps=30, tol=None)
    assert a.objective == b.objective


@pytest.mark.cuda
def test_cuda_training_matches_cpu(spirals):
    A, Y = spirals
    cpu = _net(r=8, hidden=(6, 5), seed=3)
    gpu = hd.ParallelSubnetworks.from_weights([w.detach().clone().cuda() for w in cpu.weights])
    At, Yt = torch.as_tensor(A), torch.as_tensor(Y)
    for _ in range(20):
        hd.train_step(cpu, At, Yt, 0.3, 1e-2)
        hd.train_step(gpu, At.cuda(), Yt.cuda(), 0.3, 1e-2)
    for a, b in zip(cpu.weights, gpu.weights, strict=True):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-9, atol=1e-11)
    res = hd.train(gpu, A, Y, 0.3, steps=50, tol=None, precision="tf32")
    assert res.device.startswith("cuda") and np.isfinite(res.objective)


def test_convolutional_subnetworks_train_and_certify():
    A, labels = hd.data.digits()
    A, labels = A[:120], labels[:120]
    Y = np.eye(10)[labels]
    net = hd.ParallelSubnetworks(64, 10, 4, hidden=(8,), conv=[(3, 3, 2)], input_shape=(1, 8, 8), rng=0,
                                 dtype=F64)
    res = hd.train(net, A, Y, 0.5, loss="cross_entropy", steps=40, tol=None)
    assert res.objective < res.history["objective"][0]
    cert = hd.certify_network(net, A, Y, 0.5, loss="cross_entropy", num_starts=4, steps=10, rng=0)
    assert cert.polar_kind == "lower_bound" and cert.polar_upper >= cert.polar
