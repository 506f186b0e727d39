"""The meta-algorithm: from one column to a certified global optimum, never increasing the objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hdlcore as hd
import hdlcore.matrix.meta as grow_module

seeds = st.integers(0, 2**32 - 1)


def _svt(Y, lam):
    W, s, Zt = np.linalg.svd(Y, full_matrices=False)
    t = np.maximum(s - lam, 0)
    return (W * t) @ Zt, 0.5 * np.sum(np.minimum(s, lam) ** 2) + lam * t.sum(), int((t > 0).sum())


@settings(max_examples=15)
@given(seed=seeds, m=st.integers(2, 25), n=st.integers(2, 25), lam=st.floats(0.3, 3.0))
def test_reaches_the_convex_optimum_with_full_data(seed, m, n, lam):
    rng = np.random.default_rng(seed)
    Y, _ = hd.low_rank_matrix(m, n, min(3, m, n), noise=0.3, rng=rng)
    X_star, f_star, k = _svt(Y, lam)
    res = hd.grow(Y, lam, rng=0)
    assert res.converged and res.certificate.is_global
    assert res.certificate.polar <= 1 + 1e-6
    assert res.objective == pytest.approx(f_star, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(res.X, X_star, atol=1e-4 * max(1.0, np.abs(X_star).max()))


@settings(max_examples=15)
@given(seed=seeds)
def test_objective_never_increases_across_a_growth_step(seed):
    rng = np.random.default_rng(seed)
    Y, _ = hd.low_rank_matrix(15, 12, 4, noise=0.5, rng=rng)
    mask = hd.random_mask(Y.shape, 0.6, rng=rng)
    res = hd.grow(Y, 0.5, mask, rng=0)
    f = res.history["objective"]
    assert np.all(np.diff(f) <= 1e-12 * f[0])
    sweeps = res.history["sweep_objective"]
    assert np.all(np.diff(sweeps) <= 1e-12 * f[0])
    # A block step may add several columns; a size decreases only where surplus columns are
    # pruned, which the objective check above covers.
    assert res.history["size"][1] >= 1


def test_appended_column_is_the_scaled_top_singular_pair():
    # From X = 0 the appended column is sqrt(sigma_1 - lam) (w_1, z_1) and the objective drops by
    # (sigma_1 - lam)^2 / 2 exactly (full data, l2/l2): the exact line search.
    from hdlcore.matrix.meta import _append
    from hdlcore.matrix.norms import norm_pair
    from hdlcore.matrix.problem import prepare

    Y, _ = hd.low_rank_matrix(10, 8, 3, rng=1)
    W, s, Zt = np.linalg.svd(Y)
    lam = 0.5
    prob, _ = prepare(Y, None, lam, "test")
    pair = norm_pair("l2/l2")
    U0, V0 = torch.zeros(10, 0, dtype=torch.float64), torch.zeros(8, 0, dtype=torch.float64)
    R = prob.residual(U0, V0)
    U, V = _append(prob, pair, U0, V0, R, pair._polar(R), lam)
    np.testing.assert_allclose(np.abs(U[:, 0].numpy()), np.sqrt(s[0] - lam) * np.abs(W[:, 0]), atol=1e-12)
    np.testing.assert_allclose(np.abs(V[:, 0].numpy()), np.sqrt(s[0] - lam) * np.abs(Zt[0]), atol=1e-12)
    f = hd.factorized_objective(Y, U.numpy(), V.numpy(), lam)
    assert f == pytest.approx(0.5 * np.sum(Y**2) - 0.5 * (s[0] - lam) ** 2, rel=1e-12)


def test_max_size_stops_with_a_warning():
    Y, _ = hd.low_rank_matrix(10, 8, 3, rng=1)
    with pytest.warns(hd.ConvergenceWarning, match="grow did not converge"):
        res = hd.grow(Y, 0.5, max_size=1, rng=0)
    s = np.linalg.svd(Y, compute_uv=False)
    assert res.size == 1 and not res.converged and not res.certificate.is_global
    assert res.history["size"][0] == 0 and res.history["polar"][0] == pytest.approx(s[0] / 0.5, rel=1e-12)
    assert res.certificate.polar == pytest.approx(s[1] / 0.5, rel=1e-6)  # the rank-1 optimum's polar


def test_masked_completion_matches_the_convex_solver():
    rng = np.random.default_rng(2)
    Y, _ = hd.low_rank_matrix(30, 25, 3, noise=0.2, rng=rng)
    mask = hd.random_mask(Y.shape, 0.4, rng=rng)
    ref = hd.solve_convex(Y, 1.0, mask)
    res = hd.grow(Y, 1.0, mask, rng=0)
    assert res.converged and res.certificate.is_global
    assert res.objective == pytest.approx(ref.objective, rel=1e-7)
    assert res.size == ref.size  # no column more than the convex optimum's rank


def test_row_sparse_pair_is_certified_and_matches_group_shrinkage():
    rng = np.random.default_rng(4)
    Y = rng.standard_normal((12, 6))
    lam = 2.0
    norms = np.linalg.norm(Y, axis=1, keepdims=True)
    X_star = Y * np.maximum(1 - lam / norms, 0)
    f_star = 0.5 * np.sum((Y - X_star) ** 2) + lam * np.linalg.norm(X_star, axis=1).sum()
    res = hd.grow(Y, lam, norms=("l1", "l2"), rng=0)
    assert res.converged and res.certificate.is_global and res.certificate.polar_kind == "exact"
    assert res.objective == pytest.approx(f_star, rel=1e-8)
    np.testing.assert_allclose(res.X, X_star, atol=1e-5)


def test_starts_from_given_factors():
    Y, _ = hd.low_rank_matrix(15, 10, 2, noise=0.1, rng=5)
    rng = np.random.default_rng(0)
    res = hd.grow(Y, 0.5, U0=rng.standard_normal((15, 1)), V0=rng.standard_normal((10, 1)), rng=0)
    _, f_star, _ = _svt(Y, 0.5)
    assert res.converged and res.objective == pytest.approx(f_star, rel=1e-9)
    assert res.history["size"][0] == 1


def test_float32_and_torch():
    Y, _ = hd.low_rank_matrix(30, 20, 3, noise=0.2, rng=6)
    mask = hd.random_mask(Y.shape, 0.5, rng=7)
    ref = hd.grow(Y, 1.0, mask, rng=0)
    for arr, m, dtype in ((torch.from_numpy(Y), torch.from_numpy(mask), torch.float64),
                          (torch.from_numpy(Y).float(), torch.from_numpy(mask), torch.float32),
                          (Y.astype(np.float32), mask, np.float32)):
        res = hd.grow(arr, 1.0, m, rng=0)
        assert res.converged and res.U.dtype == dtype and type(res.X) is type(arr)
        rtol = 1e-9 if dtype in (torch.float64, np.float64) else 1e-5
        assert res.objective == pytest.approx(ref.objective, rel=rtol)
        # Proven: F - F* <= tol F (by the polar, or by a duality gap, which can prove with the
        # polar slightly above 1 + tol).
        cert = res.certificate
        assert cert.is_global is True and cert.bound <= cert.tol * cert.objective
        assert cert.polar <= 1 + 10 * cert.tol


def test_large_matrices_use_lanczos_and_say_so():
    Y, _ = hd.low_rank_matrix(700, 80, 3, noise=0.1, rng=8)  # small enough for "auto" to be exact
    res = hd.grow(Y, 5.0, rng=0, polar_method="krylov")
    assert res.certificate.polar_kind == "krylov" and not res.certificate.is_global
    assert res.certificate.is_global_estimate and res.converged


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(Y=np.array([[np.inf, 1.0]]), lam=1.0), ValueError, "'Y' parameter of grow must be finite"),
        (dict(Y=np.ones((3, 2)), lam=0), ValueError, "'lam' parameter of grow must be a float > 0"),
        (dict(Y=np.ones((3, 2)), lam=1.0, mask=np.ones((3,), bool)), ValueError, "mask of shape"),
        (dict(Y=np.ones((3, 2)), lam=1.0, mask=np.zeros((3, 2))), ValueError, "at least one observed"),
        (dict(Y=np.ones((3, 2)), lam=1.0, norms=("l3", "l2")), ValueError, "'norms' parameter of grow"),
        (dict(Y=np.ones((3, 2)), lam=1.0, max_size=0), ValueError, "'max_size' parameter of grow"),
        (dict(Y=np.ones((3, 2)), lam=1.0, tol=2.0), ValueError, "'tol' parameter of grow"),
        (dict(Y=np.ones((3, 2)), lam=1.0, V0=np.ones((2, 1))), ValueError, "'U0' parameter of grow"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        hd.grow(**kwargs)


@pytest.mark.cuda
def test_cuda_path_matches_cpu():
    Y, _ = hd.low_rank_matrix(300, 200, 5, noise=0.1, rng=9)
    mask = hd.random_mask(Y.shape, 0.3, rng=10)
    ref = hd.grow(Y, 3.0, mask, rng=0)
    for dtype, rtol in ((torch.float64, 1e-9), (torch.float32, 1e-5)):
        Yt = torch.tensor(Y, dtype=dtype, device="cuda")
        res = hd.grow(Yt, 3.0, torch.tensor(mask, device="cuda"), rng=0)
        assert res.U.device.type == "cuda" and res.U.dtype == dtype and res.X.device.type == "cuda"
        assert res.converged and res.objective == pytest.approx(ref.objective, rel=rtol)


def test_small_problems_run_on_one_thread_and_restore_the_thread_count():
    before = torch.get_num_threads()
    seen = []
    original = grow_module.descend

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    grow_module.descend = spy
    try:
        hd.grow(np.diag([3.0, 2.0, 1.0]), 0.5)
    finally:
        grow_module.descend = original
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before


def test_block_step_from_zero_is_singular_value_thresholding_with_full_data():
    # Every direction above lam at once, with the exact line search: t = 1 with full data, so the
    # block is the SVT of the residual, and the objective is the closed form.
    from hdlcore.matrix.meta import _append_block
    from hdlcore.matrix.problem import prepare

    Y, _ = hd.low_rank_matrix(12, 9, 4, noise=0.1, rng=3)
    W, s, Zt = np.linalg.svd(Y, full_matrices=False)
    lam = 0.5 * (s[2] + s[3])  # three directions above lam
    prob, _ = prepare(Y, None, lam, "test")
    U0, V0 = torch.zeros(12, 0, dtype=torch.float64), torch.zeros(9, 0, dtype=torch.float64)
    P, Q = torch.from_numpy(W[:, :3].copy()), torch.from_numpy(Zt[:3].T.copy())
    U, V = _append_block(prob, U0, V0, prob.residual(U0, V0), P, Q, lam)
    X_star, f_star, k = _svt(Y, lam)
    assert k == 3 and U.shape[1] == 3
    np.testing.assert_allclose((U @ V.T).numpy(), X_star, atol=1e-12)
    assert hd.factorized_objective(Y, U.numpy(), V.numpy(), lam) == pytest.approx(f_star, rel=1e-12)


def test_block_step_never_increases_the_objective_with_a_mask():
    # Any unit directions, any mask: the exact line search on the block cannot increase F.
    from hdlcore.matrix.meta import _append_block
    from hdlcore.matrix.problem import prepare

    rng = np.random.default_rng(9)
    Y, _ = hd.low_rank_matrix(20, 15, 3, noise=0.3, rng=rng)
    mask = hd.random_mask(Y.shape, 0.4, rng=rng)
    prob, _ = prepare(Y, mask, 0.3, "test")
    U = torch.from_numpy(rng.standard_normal((20, 2)))
    V = torch.from_numpy(rng.standard_normal((15, 2)))
    f0 = hd.factorized_objective(Y, U.numpy(), V.numpy(), 0.3, mask)
    P = torch.linalg.qr(torch.from_numpy(rng.standard_normal((20, 5))))[0]
    Q = torch.linalg.qr(torch.from_numpy(rng.standard_normal((15, 5))))[0]
    Un, Vn = _append_block(prob, U, V, prob.residual(U, V), P, Q, 0.3)
    assert hd.factorized_objective(Y, Un.numpy(), Vn.numpy(), 0.3, mask) <= f0


def test_moderate_rank_completion_matches_the_convex_solver():
    # An optimum of rank above 16: block growth, pruning and conjugate-gradient ALS rows.
    rng = np.random.default_rng(10)
    Y, _ = hd.low_rank_matrix(70, 60, 5, noise=0.5, rng=rng)
    mask = hd.random_mask(Y.shape, 0.4, rng=rng)
    ref = hd.solve_convex(Y, 1.0, mask)
    res = hd.grow(Y, 1.0, mask, rng=0)
    assert ref.size > 16
    assert res.converged and res.certificate.is_global is True
    assert res.objective == pytest.approx(ref.objective, rel=1e-6)
    assert res.size == np.linalg.matrix_rank(res.X, tol=1e-8 * np.abs(res.X).max())
    sweeps = res.history["sweep_objective"]
    assert np.all(np.diff(sweeps) <= 1e-12 * sweeps[0])


def test_float32_growth_phase_keeps_the_objective_monotone_and_certified(monkeypatch):
    # Above 64 x 64 with a mask, float64 data are worked on in float32 while the polar is far above
    # 1: the switch to float64 must not raise the objective, and the result is certified in float64.
    rng = np.random.default_rng(4)
    Y, _ = hd.low_rank_matrix(150, 120, 5, noise=0.5, rng=rng)
    mask = hd.random_mask(Y.shape, 0.3, rng=rng)
    calls = []
    original = grow_module.descend

    def spy(prob, *args, **kwargs):
        calls.append(prob.Y.dtype)
        return original(prob, *args, **kwargs)

    monkeypatch.setattr(grow_module, "descend", spy)
    res = hd.grow(Y, 2.0, mask, rng=0)
    assert torch.float32 in calls and calls[-1] == torch.float64
    assert res.U.dtype == np.float64 and res.certificate.is_global is True
    sweeps = res.history["sweep_objective"]
    assert np.all(np.diff(sweeps) <= 1e-12 * sweeps[0])
    assert res.objective == pytest.approx(hd.solve_convex(Y, 2.0, mask, tol=1e-8).objective, rel=1e-6)
    # Data beyond float32's comfortable range stay float64 throughout (and the scaled problem's
    # optimum is the scaled optimum).
    calls.clear()
    big = hd.grow(Y * 1e20, 2.0e20, mask, rng=0)
    assert torch.float32 not in calls and big.certificate.is_global is True
    assert big.objective == pytest.approx(res.objective * 1e40, rel=1e-6)


@pytest.mark.parametrize("lam", [2.0, 1.6])  # 1.6: the clipped dual point handed over too
def test_grows_certificate_is_the_one_certify_computes(lam):
    # grow hands its certificate what its last test computed on the same residual (sigma_1 with
    # the Gram route's proven bound, the clipped dual point with its own): an independent
    # certify of the returned factors, computing everything itself, must state the same.
    rng = np.random.default_rng(21)
    Y, _ = hd.low_rank_matrix(120, 100, 5, noise=0.5, rng=rng)
    mask = hd.random_mask(Y.shape, 0.3, rng=rng)
    res = hd.grow(Y, lam, mask, rng=0)
    own = hd.certify(Y, res.U, res.V, lam, mask, method="exact")
    assert res.size > 16 and res.certificate.is_global is True and own.is_global is True
    assert res.certificate.polar == pytest.approx(own.polar, rel=1e-12)
    assert res.certificate.polar_upper >= own.polar * (1 - 1e-12)
    assert res.certificate.bound == pytest.approx(own.bound, rel=1e-6, abs=1e-9 * own.objective)
    assert res.certificate.objective == pytest.approx(own.objective, rel=1e-12)


@pytest.mark.parametrize("n, lam, exact", [(120, 1.0, True), (300, 6.0, True), (1100, 16.5, False)])
def test_full_data_grows_the_thresholding_in_one_step(n, lam, exact):
    # Without a mask the first growth step appends every direction of Y above lam (uncapped),
    # exact or to a tight Ritz residual: the optimum at once, whatever its rank (here 30-500,
    # lam inside the noise's spectrum, where the residual's gap at lam is small and ALS, a
    # subspace iteration, would refine rough directions slowly).
    Y, _ = hd.low_rank_matrix(n, n, 5, noise=0.5, rng=4)
    X_star, f_star, k = _svt(Y, lam)
    res = hd.grow(Y, lam, rng=0)
    assert k >= 30 and res.size == k
    assert res.history["size"][1] == k  # one growth step
    assert res.converged and res.certificate.is_global is True
    assert res.certificate.polar_kind == ("exact" if exact else "probabilistic")
    assert res.objective == pytest.approx(f_star, rel=1e-12)
    np.testing.assert_allclose(res.X, X_star, atol=1e-8 * np.abs(X_star).max())


def test_full_data_lanczos_growth_is_tight_beyond_the_full_svd():
    # Beyond the full SVD's size (_FULL_SVD_LIMIT, lowered here) the step's triplets come from
    # the block Krylov method at a Ritz residual of 1e-7: still the optimum in one step.
    Y, _ = hd.low_rank_matrix(150, 140, 5, noise=0.5, rng=5)
    lam = 5.0
    X_star, f_star, k = _svt(Y, lam)
    names = ("_FULL_SVD_LIMIT", "_SMALL", "EXACT_SIZE_LIMIT")  # no full SVD in the loop
    saved = [getattr(grow_module, k) for k in names]
    for name, value in zip(names, (0, 16, 0), strict=True):
        setattr(grow_module, name, value)
    try:
        res = hd.grow(Y, lam, rng=0)
    finally:
        for name, value in zip(names, saved, strict=True):
            setattr(grow_module, name, value)
    assert k >= 8 and res.size == k and res.history["size"][1] == k
    assert res.certificate.is_global is True
    assert res.objective == pytest.approx(f_star, rel=1e-10)
