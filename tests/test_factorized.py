"""The factorized solver: global optima where the size allows, closed forms for other pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hdlcore as hd


def _svt(Y, lam):
    W, s, Zt = np.linalg.svd(Y, full_matrices=False)
    s = np.maximum(s - lam, 0)
    return (W * s) @ Zt, 0.5 * np.sum((Y - (W * s) @ Zt) ** 2) + lam * s.sum(), int((s > 0).sum())


@pytest.fixture
def data():
    Y, _ = hd.low_rank_matrix(20, 15, 3, noise=0.3, rng=0)
    return Y


@pytest.mark.parametrize("method", ["als", "prox"])
def test_large_enough_size_reaches_the_convex_optimum(data, method):
    X_star, f_star, k = _svt(data, 1.7)  # sigma_5 = 1.91 > lam > sigma_6 = 1.49: a clear gap
    res = hd.solve_factorized(data, 1.7, k + 2, method=method, rng=1)
    assert res.converged
    assert res.objective == pytest.approx(f_star, rel=1e-9)
    np.testing.assert_allclose(res.X, X_star, atol=1e-5)
    assert res.certificate.polar <= 1 + 1e-4


def test_undersized_stationary_point_is_not_global(data):
    _, f_star, k = _svt(data, 1.5)
    res = hd.solve_factorized(data, 1.5, k - 1, rng=1, tol=1e-15)
    cert = res.certificate
    assert res.converged and not cert.is_global
    assert cert.polar > 1.1
    assert abs(cert.euler_residual) < 1e-6  # stationary: the Euler condition holds
    assert cert.lower <= f_star <= res.objective  # the bound brackets the optimum


def test_masked_matches_the_convex_solver():
    rng = np.random.default_rng(2)
    Y, _ = hd.low_rank_matrix(25, 20, 3, noise=0.2, rng=rng)
    mask = hd.random_mask(Y.shape, 0.5, rng=rng)
    ref = hd.solve_convex(Y, 1.0, mask)
    res = hd.solve_factorized(Y, 1.0, ref.size + 2, mask, rng=3)
    assert res.objective == pytest.approx(ref.objective, rel=1e-8)


def _group_shrinkage(Y, lam):
    norms = np.linalg.norm(Y, axis=1, keepdims=True)
    X_star = Y * np.maximum(1 - lam / norms, 0)
    return X_star, 0.5 * np.sum((Y - X_star) ** 2) + lam * np.linalg.norm(X_star, axis=1).sum()


def test_row_sparse_pair_matches_group_shrinkage():
    # theta = |u|_1 |v|_2 induces Omega(X) = sum of row norms: the optimum shrinks whole rows.
    rng = np.random.default_rng(4)
    Y = rng.standard_normal((12, 6))
    lam = 2.0
    X_star, f_star = _group_shrinkage(Y, lam)
    res = hd.solve_factorized(Y, lam, 12, norms=("l1", "l2"), U0=np.eye(12), V0=Y.T.copy(), tol=1e-14)
    assert res.objective == pytest.approx(f_star, rel=1e-9)
    np.testing.assert_allclose(res.X, X_star, atol=1e-6)
    assert np.count_nonzero(np.abs(res.U).sum(0)) == np.count_nonzero(X_star.any(1))  # exact zeros
    assert res.certificate.polar_kind == "exact" and res.certificate.is_global


@pytest.mark.parametrize("seed", range(4))
def test_random_starts_of_the_row_sparse_pair_are_certified_honestly(seed):
    # From random starts, descent on l1/l2 often stops at a stationary point that is not global,
    # even with as many columns as rows: the certificate must say so, and bracket the optimum.
    rng = np.random.default_rng(4)
    Y = rng.standard_normal((12, 6))
    _, f_star = _group_shrinkage(Y, 2.0)
    res = hd.solve_factorized(Y, 2.0, 12, norms=("l1", "l2"), rng=seed, tol=1e-14)
    cert = res.certificate
    assert cert.lower <= f_star * (1 + 1e-12) and f_star <= res.objective * (1 + 1e-12)
    if cert.is_global:
        assert res.objective == pytest.approx(f_star, rel=1e-6)
    else:
        assert cert.polar > 1 + cert.tol


def test_nonnegative_entrywise_pair_matches_shifted_positive_part():
    # l1+/l1+: Omega(X) = sum X_ij for X >= 0, so X* = (Y - lam)_+.
    rng = np.random.default_rng(6)
    Y = rng.standard_normal((5, 4)) + 0.5
    lam = 0.4
    X_star = np.maximum(Y - lam, 0)
    f_star = 0.5 * np.sum((Y - X_star) ** 2) + lam * X_star.sum()
    res = hd.solve_factorized(Y, lam, 20, norms=("l1+", "l1+"), rng=7, tol=1e-13)
    assert np.all(res.U >= 0) and np.all(res.V >= 0)
    assert res.objective == pytest.approx(f_star, rel=1e-6)


def test_prox_method_gives_exact_zeros():
    rng = np.random.default_rng(8)
    Y = rng.standard_normal((10, 6))
    res = hd.solve_factorized(Y, 2.5, 10, norms=("l1", "l2"), rng=9)
    assert np.count_nonzero(res.U == 0) > 0  # the l1 prox sets entries exactly to zero


def test_columns_are_balanced_and_objective_is_consistent(data):
    res = hd.solve_factorized(data, 1.5, 4, rng=1)
    np.testing.assert_allclose(np.linalg.norm(res.U, axis=0), np.linalg.norm(res.V, axis=0), rtol=1e-10)
    assert res.objective == pytest.approx(hd.factorized_objective(data, res.U, res.V, 1.5), rel=1e-12)
    f = res.history["objective"]
    assert np.all(np.diff(f) <= 1e-12 * f[0])  # ALS never increases the objective


def test_start_point_is_used(data):
    U0 = np.zeros((20, 1))
    U0[0] = 1.0
    V0 = np.ones((15, 1))
    res = hd.solve_factorized(data, 1.5, 99, U0=U0, V0=V0)
    assert res.size == 1


def test_float32_float64_numpy_and_torch(data):
    ref = hd.solve_factorized(data, 1.5, 5, rng=1)
    for arr, typ, dtype in (
        (data.astype(np.float32), np.ndarray, np.float32),
        (torch.from_numpy(data), torch.Tensor, torch.float64),
        (torch.from_numpy(data).float(), torch.Tensor, torch.float32),
    ):
        res = hd.solve_factorized(arr, 1.5, 5, rng=1)
        assert isinstance(res.U, typ) and res.U.dtype == dtype and isinstance(res.X, typ)
        rtol = 1e-9 if dtype in (np.float64, torch.float64) else 1e-5
        assert res.objective == pytest.approx(ref.objective, rel=rtol)


def test_not_converged_warns(data):
    with pytest.warns(hd.ConvergenceWarning, match="solve_factorized did not converge"):
        res = hd.solve_factorized(data, 1.5, 3, max_iter=1, rng=0)
    assert not res.converged


OK = dict(Y=np.ones((3, 2)), lam=1.0, rank=1)
ONES = np.ones((2, 1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({**OK, "Y": np.array([[np.nan, 1.0]])}, "'Y' parameter of solve_factorized must be finite"),
        ({**OK, "lam": 0.0}, "'lam' parameter of solve_factorized must be a float > 0"),
        ({**OK, "rank": 0}, "'rank' parameter of solve_factorized must be an int >= 1"),
        ({**OK, "mask": np.ones((2, 3), bool)}, "mask of shape"),
        ({**OK, "mask": np.zeros((3, 2), bool)}, "at least one observed"),
        ({**OK, "norms": ("l2", "linf")}, "'norms' parameter of solve_factorized"),
        ({**OK, "norms": ("l1", "l2"), "method": "als"}, "'method' parameter"),
        ({**OK, "U0": np.ones((3, 1))}, "'V0' parameter of solve_factorized"),
        ({**OK, "U0": np.ones((2, 1)), "V0": ONES}, "'U0' parameter"),
        ({**OK, "U0": np.ones((3, 2)), "V0": ONES}, "as many columns as U0"),
        ({**OK, "norms": ("l2+", "l2"), "U0": -np.ones((3, 1)), "V0": ONES}, "non-negative"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hd.solve_factorized(**kwargs)



@pytest.mark.cuda
def test_cuda_path_matches_cpu(data):
    ref = hd.solve_factorized(data, 1.5, 5, rng=1)
    mask = hd.random_mask(data.shape, 0.6, rng=0)
    refm = hd.solve_factorized(data, 1.5, 5, mask, rng=1)
    for dtype, rtol in ((torch.float64, 1e-9), (torch.float32, 1e-5)):
        Y = torch.tensor(data, dtype=dtype, device="cuda")
        res = hd.solve_factorized(Y, 1.5, 5, rng=1)
        assert res.U.device.type == "cuda" and res.U.dtype == dtype
        assert res.objective == pytest.approx(ref.objective, rel=rtol)
        resm = hd.solve_factorized(Y, 1.5, 5, torch.tensor(mask, device="cuda"), rng=1)
        assert resm.objective == pytest.approx(refm.objective, rel=rtol)
