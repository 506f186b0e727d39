"""The regularization path and the choice of lam on held-out entries: certified optima along a
decreasing grid, checked against closed forms and independent convex solvers."""

from __future__ import annotations

import numpy as np
import pytest

import hdlcore as hd


def _svt_objective(s, lam):
    """1/2 |Y - SVT(Y)|^2 + lam |SVT(Y)|_* from the singular values s of Y."""
    return 0.5 * np.sum(np.minimum(s, lam) ** 2) + lam * np.maximum(s - lam, 0).sum()


def test_full_data_path_from_rank_zero_to_above_one_hundred_matches_svt():
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((120, 110))
    s = np.linalg.svd(Y, compute_uv=False)
    lams = np.geomspace(1.001 * s[0], 0.5 * (s[104] + s[105]), 7)
    path = hd.grow_path(Y, lams, rng=0)
    ranks = np.array([(s > lam).sum() for lam in lams])
    assert ranks[0] == 0 and ranks[-1] > 100
    np.testing.assert_array_equal(path.ranks, ranks)
    np.testing.assert_allclose(path.objectives, [_svt_objective(s, lam) for lam in lams], rtol=1e-9)
    assert path.certified and path.converged
    assert all(r.certificate.polar_kind == "exact" for r in path.results)
    assert np.all(np.diff(path.history["time"]) >= 0) and path.history["lam"] is not None


def test_masked_path_matches_the_convex_solver_at_every_lam():
    rng = np.random.default_rng(1)
    Y, _ = hd.low_rank_matrix(30, 25, 3, noise=0.3, rng=rng)
    mask = hd.random_mask(Y.shape, 0.5, rng=rng)
    lams = [6.0, 3.0, 1.5, 0.8, 0.4]
    path = hd.grow_path(Y, lams, mask, rng=0)
    for lam, res in zip(lams, path.results, strict=True):
        ref = hd.solve_convex(Y, lam, mask)
        assert res.objective == pytest.approx(ref.objective, rel=1e-6)
        assert res.certificate.is_global is True and res.lam == lam
    assert np.all(np.diff(path.ranks) >= 0)  # the rank grows as lam decreases (here)
    assert path.ranks[-1] > path.ranks[0]


def test_each_point_of_a_path_never_increases_its_objective():
    rng = np.random.default_rng(2)
    Y, _ = hd.low_rank_matrix(50, 40, 10, noise=0.5, rng=rng)
    mask = hd.random_mask(Y.shape, 0.4, rng=rng)
    path = hd.grow_path(Y, [8.0, 3.0, 1.5], mask, rng=0)  # sizes above 16: inexact ALS rows
    assert path.ranks[-1] > 16
    for res in path.results:
        f = res.history["objective"]
        assert np.all(np.diff(f) <= 1e-12 * f[0])
        sweeps = res.history["sweep_objective"]
        assert np.all(np.diff(sweeps) <= 1e-12 * sweeps[0])


def test_tiny_path_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(3)
    Y, _ = hd.low_rank_matrix(8, 7, 2, noise=0.2, rng=rng)
    mask = hd.random_mask(Y.shape, 0.6, rng=rng)
    lams = [2.0, 0.7]
    path = hd.grow_path(Y, lams, mask, rng=0)
    for lam, res in zip(lams, path.results, strict=True):
        X = cp.Variable(Y.shape)
        cost = 0.5 * cp.sum_squares(cp.multiply(mask.astype(float), Y - X)) + lam * cp.normNuc(X)
        prob = cp.Problem(cp.Minimize(cost))
        prob.solve(solver=cp.SCS, eps_abs=1e-9, eps_rel=1e-9, max_iters=200_000)
        assert res.objective == pytest.approx(prob.value, rel=1e-5)
        # What the certificate proves: F - bound <= F* <= SCS's value (a feasible X), and F within
        # tol of F* (grow stops once that is proven, which the clipped dual point can do earlier).
        assert res.objective - res.certificate.bound <= prob.value * (1 + 1e-9)
        assert res.objective <= prob.value * (1 + res.certificate.tol)


def test_default_grid_starts_where_zero_is_optimal():
    Y, _ = hd.low_rank_matrix(20, 15, 2, noise=0.1, rng=4)
    path = hd.grow_path(Y, n_lams=5, lam_min_ratio=0.1, rng=0)
    s = np.linalg.svd(Y, compute_uv=False)
    assert path.lams[0] == pytest.approx(s[0], rel=1e-12)
    np.testing.assert_allclose(path.lams[-1] / path.lams[0], 0.1)
    assert path.ranks[0] == 0 and path.certified


def test_row_sparse_path_keeps_its_closed_form():
    rng = np.random.default_rng(5)
    Y = rng.standard_normal((12, 6))
    lams = [2.5, 1.5, 0.5]
    path = hd.grow_path(Y, lams, norms=("l1", "l2"), rng=0)
    norms = np.linalg.norm(Y, axis=1, keepdims=True)
    for lam, res in zip(lams, path.results, strict=True):
        X = Y * np.maximum(1 - lam / norms, 0)
        f = 0.5 * np.sum((Y - X) ** 2) + lam * np.linalg.norm(X, axis=1).sum()
        assert res.objective == pytest.approx(f, rel=1e-8) and res.certificate.is_global is True


def test_select_lambda_holds_out_observed_entries_and_picks_the_best():
    rng = np.random.default_rng(6)
    Y, _ = hd.low_rank_matrix(40, 30, 3, noise=0.5, rng=rng)
    mask = hd.random_mask(Y.shape, 0.5, rng=rng)
    sel = hd.select_lambda(Y, mask, holdout=0.25, n_lams=10, rng=7)
    assert not np.any(sel.train_mask & sel.holdout_mask)
    np.testing.assert_array_equal(sel.train_mask | sel.holdout_mask, mask)
    assert sel.holdout_mask.sum() == round(0.25 * mask.sum())
    assert sel.index == int(np.argmin(sel.heldout_error)) and sel.lam == sel.path.lams[sel.index]
    # the held-out error is recomputed here from the path's own points
    X = sel.path.results[sel.index].X
    err = np.sqrt(np.mean((Y - X)[sel.holdout_mask] ** 2))
    assert sel.heldout_error[sel.index] == pytest.approx(err, rel=1e-10)
    assert 0 < sel.index < len(sel.path) - 1  # an interior minimum on this problem
    assert sel.path.certified and sel.result.certificate.is_global is True
    assert sel.result.lam == sel.lam
    assert sel.result.objective == pytest.approx(hd.solve_convex(Y, sel.lam, mask).objective, rel=1e-6)
    again = hd.select_lambda(Y, mask, holdout=0.25, n_lams=10, rng=7)
    np.testing.assert_array_equal(again.holdout_mask, sel.holdout_mask)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lams=[1.0, 2.0]), "'lams' parameter of grow_path must be a strictly decreasing"),
        (dict(lams=[2.0, -1.0]), "'lams' parameter of grow_path"),
        (dict(lams=[2.0, 2.0]), "'lams' parameter of grow_path"),
        (dict(lams=[]), "'lams' parameter of grow_path"),
        (dict(lams=[[2.0, 1.0]]), "'lams' parameter of grow_path"),
        (dict(lams=[2.0, np.nan]), "'lams' parameter of grow_path"),
        (dict(n_lams=0), "'n_lams' parameter of grow_path"),
        (dict(lam_min_ratio=1.0), "'lam_min_ratio' parameter of grow_path"),
        (dict(mask=np.zeros((4, 3), bool)), "at least one observed"),
        (dict(norms=("l3", "l2")), "'norms' parameter of grow_path"),
    ],
)
def test_grow_path_bad_input_is_a_clear_error(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        hd.grow_path(np.ones((4, 3)), **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(holdout=0.0), "'holdout' parameter of select_lambda must be a float > 0"),
        (dict(holdout=1.0), "'holdout' parameter of select_lambda"),
        (dict(holdout=0.01), "leaving at least one of the 12 observed entries on each side"),
        (dict(lams=[1.0, 3.0]), "'lams' parameter of select_lambda"),
        (dict(mask=np.zeros((4, 3), bool)), "at least one observed"),
    ],
)
def test_select_lambda_bad_input_is_a_clear_error(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        hd.select_lambda(np.ones((4, 3)), **kwargs)


def test_sparse_path_is_the_dense_masked_path():
    # The observed entries as a scipy.sparse matrix: the same grid (lam_max by Lanczos on the
    # sparse matrix), the same ranks, the same certified objectives as the dense path with a mask.
    import scipy.sparse as sp

    Y, _ = hd.low_rank_matrix(80, 60, 4, noise=0.5, rng=3)
    mask = hd.random_mask(Y.shape, 0.4, rng=4)
    dense = hd.grow_path(Y, mask=mask, n_lams=8, rng=0)
    sparse = hd.grow_path(sp.csr_matrix(np.where(mask, Y, 0.0)), n_lams=8, rng=0)
    np.testing.assert_allclose(sparse.lams, dense.lams, rtol=1e-10)
    assert all(r.certificate.is_global is True for r in sparse.results)
    np.testing.assert_array_equal(sparse.history["rank"], dense.history["rank"])
    np.testing.assert_allclose(sparse.history["objective"], dense.history["objective"], rtol=2e-6)
    assert sparse.history["rank"].max() > 10


def test_select_lambda_on_sparse_data_is_the_dense_selection():
    # The observed entries as a sparse matrix (scipy CSR, then a torch COO tensor): the held-out
    # entries are drawn from the stored ones in the same row-major order as from a dense mask, so
    # the split, the error curve and the choice match the dense run; both sides stay sparse.
    import scipy.sparse as sp
    import torch

    rng = np.random.default_rng(6)
    Y, _ = hd.low_rank_matrix(40, 30, 3, noise=0.5, rng=rng)
    mask = hd.random_mask(Y.shape, 0.5, rng=rng)
    dense = hd.select_lambda(Y, mask, holdout=0.25, n_lams=8, rng=7)
    Ys = sp.csr_matrix(np.where(mask, Y, 0.0))
    assert Ys.nnz == mask.sum()
    coo = torch.sparse_coo_tensor(np.array(np.nonzero(mask)), Y[mask], Y.shape, check_invariants=True)
    for data in (Ys, coo):
        sel = hd.select_lambda(data, holdout=0.25, n_lams=8, rng=7)
        assert sp.issparse(sel.holdout_mask) and sp.issparse(sel.train_mask)
        np.testing.assert_array_equal(sel.holdout_mask.toarray(), dense.holdout_mask)
        np.testing.assert_array_equal(sel.train_mask.toarray(), dense.train_mask)
        np.testing.assert_allclose(sel.path.lams, dense.path.lams, rtol=1e-10)
        # certified to 1e-6 in objective: the points (hence held-out errors) agree to about 1e-4
        np.testing.assert_allclose(sel.heldout_error, dense.heldout_error, rtol=1e-3)
        assert sel.index == dense.index and sel.path.certified
        assert sel.result.certificate.is_global is True
        assert sel.result.objective == pytest.approx(dense.result.objective, rel=2e-6)
        assert isinstance(sel.result.U, torch.Tensor) == isinstance(data, torch.Tensor)
    with pytest.raises(ValueError, match="'mask' parameter of select_lambda must be None"):
        hd.select_lambda(Ys, mask)
    with pytest.raises(ValueError, match="leaving at least one of the 3 observed entries"):
        hd.select_lambda(sp.csr_matrix(np.eye(3)), holdout=0.1)
