"""The convex side: singular value thresholding and the nuclear-norm solver, against oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import hdlcore as hd

seeds = st.integers(0, 2**32 - 1)


def _svt_numpy(X, tau):
    W, s, Zt = np.linalg.svd(X, full_matrices=False)
    return (W * np.maximum(s - tau, 0)) @ Zt


def _objective(Y, X, lam, mask=None):
    R = (Y - X) if mask is None else mask * (Y - X)
    return 0.5 * np.sum(R**2) + lam * np.linalg.svd(X, compute_uv=False).sum()


def _cvxpy_completion(Y, mask, lam):
    cp = pytest.importorskip("cvxpy")  # an independent oracle, test dependency only
    X = cp.Variable(Y.shape)
    obj = 0.5 * cp.sum_squares(cp.multiply(mask.astype(float), Y - X)) + lam * cp.normNuc(X)
    problem = cp.Problem(cp.Minimize(obj))
    problem.solve(solver=cp.SCS, eps_abs=1e-10, eps_rel=1e-10, max_iters=200000)
    return X.value, problem.value


@given(seed=seeds, m=st.integers(1, 8), n=st.integers(1, 8), tau=st.floats(0.0, 3.0))
def test_prox_nuclear_matches_the_closed_form_and_moreau(seed, m, n, tau):
    rng = np.random.default_rng(seed)
    X, Z = 2 * rng.standard_normal((m, n)), 2 * rng.standard_normal((m, n))
    P = hd.prox_nuclear(X, tau)
    np.testing.assert_allclose(P, _svt_numpy(X, tau), atol=1e-10)
    # non-expansive
    assert np.linalg.norm(P - hd.prox_nuclear(Z, tau)) <= np.linalg.norm(X - Z) + 1e-10
    # Moreau: X = prox_{tau |.|_*}(X) + projection of X onto the spectral-norm ball of radius tau
    W, s, Zt = np.linalg.svd(X, full_matrices=False)
    np.testing.assert_allclose(P + (W * np.minimum(s, tau)) @ Zt, X, atol=1e-10)


def test_prox_nuclear_minimizes_its_objective():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 4))
    P = hd.prox_nuclear(X, 1.0)

    def obj(Z):
        return 0.5 * np.sum((Z - X) ** 2) + np.linalg.svd(Z, compute_uv=False).sum()

    for _ in range(50):
        assert obj(P) <= obj(P + 0.05 * rng.standard_normal(X.shape)) + 1e-12


def test_prox_nuclear_keeps_type_device_and_dtype():
    X = torch.randn(6, 4, dtype=torch.float32)
    P = hd.prox_nuclear(X, 0.5)
    assert isinstance(P, torch.Tensor) and P.dtype == torch.float32 and P.device == X.device
    np.testing.assert_allclose(P.numpy(), _svt_numpy(X.double().numpy(), 0.5), atol=1e-5)


def test_full_data_is_one_singular_value_thresholding():
    Y = np.random.default_rng(1).standard_normal((12, 9))
    res = hd.solve_convex(Y, 1.5)
    np.testing.assert_allclose(res.X, _svt_numpy(Y, 1.5), atol=1e-12)
    assert res.objective == pytest.approx(_objective(Y, res.X, 1.5), rel=1e-12)
    assert res.converged and res.n_iter == 0
    assert res.certificate.is_global and res.certificate.polar == pytest.approx(1.0, abs=1e-12)
    U, V = res.U, res.V
    np.testing.assert_allclose(U.T @ U, V.T @ V, atol=1e-12)  # balanced factors


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_completion_matches_cvxpy(seed):
    rng = np.random.default_rng(seed)
    Y, _ = hd.low_rank_matrix(10, 8, 2, noise=0.3, rng=rng)
    mask = hd.random_mask((10, 8), 0.5, rng=rng)
    lam = 0.8
    X_ref, f_ref = _cvxpy_completion(Y, mask, lam)
    res = hd.solve_convex(Y, lam, mask)
    assert res.converged and res.certificate.is_global
    assert res.objective == pytest.approx(_objective(Y, X_ref, lam, mask), rel=1e-6)
    assert res.objective <= f_ref * (1 + 1e-7)
    np.testing.assert_allclose(res.X, X_ref, atol=1e-3)
    # the certificate's lower bound is below the independent solver's value
    assert res.certificate.lower <= f_ref * (1 + 1e-9)


def test_unobserved_entries_are_ignored():
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((9, 7))
    mask = hd.random_mask((9, 7), 0.6, rng=rng)
    Y2 = np.where(mask, Y, 1e6)
    a, b = hd.solve_convex(Y, 1.0, mask), hd.solve_convex(Y2, 1.0, mask)
    np.testing.assert_allclose(a.X, b.X, atol=1e-10)


def test_float32_and_torch_in_torch_out():
    rng = np.random.default_rng(4)
    Y, _ = hd.low_rank_matrix(12, 10, 2, noise=0.2, rng=rng)
    mask = hd.random_mask((12, 10), 0.6, rng=rng)
    ref = hd.solve_convex(Y, 1.0, mask)
    for dtype, rtol in ((torch.float64, 1e-9), (torch.float32, 1e-5)):
        res = hd.solve_convex(torch.tensor(Y, dtype=dtype), 1.0, torch.from_numpy(mask))
        assert isinstance(res.X, torch.Tensor) and res.X.dtype == dtype
        assert res.objective == pytest.approx(ref.objective, rel=rtol)
    res32 = hd.solve_convex(Y.astype(np.float32), 1.0, mask)
    assert isinstance(res32.X, np.ndarray) and res32.X.dtype == np.float32
    assert res32.converged and res32.certificate.tol == 1e-3


def test_not_converged_warns_and_says_so():
    rng = np.random.default_rng(5)
    Y = rng.standard_normal((10, 10))
    mask = hd.random_mask((10, 10), 0.5, rng=rng)
    with pytest.warns(hd.ConvergenceWarning, match="solve_convex did not converge"):
        res = hd.solve_convex(Y, 0.5, mask, max_iter=2)
    assert not res.converged


def test_history_is_monotone():
    rng = np.random.default_rng(6)
    Y, _ = hd.low_rank_matrix(15, 12, 3, noise=0.5, rng=rng)
    mask = hd.random_mask((15, 12), 0.4, rng=rng)
    res = hd.solve_convex(Y, 0.7, mask)
    f = res.history["objective"]
    assert np.all(np.diff(f) <= 1e-12 * f[0])


OK = dict(Y=np.ones((2, 2)), lam=1.0)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({**OK, "Y": np.array([[1.0, np.nan]])}, ValueError, "'Y' parameter of solve_convex must be finite"),
        ({**OK, "Y": np.array([[1.0, np.inf]])}, ValueError, "must be finite"),
        ({**OK, "Y": np.ones(3)}, ValueError, "'Y' parameter of solve_convex must be a 2-D array"),
        ({**OK, "lam": 0.0}, ValueError, "'lam' parameter of solve_convex must be a float > 0"),
        ({**OK, "lam": -1.0}, ValueError, "Got -1.0 instead"),
        ({**OK, "mask": np.ones((2, 3), bool)}, ValueError, r"mask of shape \(2, 2\)"),
        ({**OK, "mask": np.zeros((2, 2), bool)}, ValueError, "at least one observed"),
        ({**OK, "mask": np.full((2, 2), 0.5)}, ValueError, "boolean mask"),
        ({**OK, "Y": "abc"}, TypeError, "'Y' parameter of solve_convex"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        hd.solve_convex(**kwargs)


def test_prox_nuclear_bad_input():
    with pytest.raises(ValueError, match="'tau' parameter of prox_nuclear must be a float >= 0"):
        hd.prox_nuclear(np.eye(2), -1.0)
    with pytest.raises(ValueError, match="'X' parameter of prox_nuclear must be finite"):
        hd.prox_nuclear(np.array([[np.nan]]), 1.0)


@pytest.mark.cuda
def test_cuda_tensors_stay_on_the_gpu():
    rng = np.random.default_rng(7)
    Y, _ = hd.low_rank_matrix(40, 30, 3, noise=0.2, rng=rng)
    mask = hd.random_mask((40, 30), 0.5, rng=rng)
    ref = hd.solve_convex(Y, 1.0, mask)
    for dtype in (torch.float32, torch.float64):
        res = hd.solve_convex(torch.tensor(Y, dtype=dtype, device="cuda"), 1.0,
                              torch.tensor(mask, device="cuda"))
        assert res.X.device.type == "cuda" and res.X.dtype == dtype
        assert res.objective == pytest.approx(ref.objective, rel=1e-9 if dtype == torch.float64 else 1e-4)
    P = hd.prox_nuclear(torch.tensor(Y, device="cuda"), 1.0)
    assert P.device.type == "cuda"
