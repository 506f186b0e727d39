"""Certificates: the bound they prove holds at every point, and they never claim more."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import hdlcore as hd

seeds = st.integers(0, 2**32 - 1)


def _svt_optimum(Y, lam):
    s = np.linalg.svd(Y, compute_uv=False)
    t = np.maximum(s - lam, 0)
    return 0.5 * np.sum(np.minimum(s, lam) ** 2) + lam * t.sum()


@given(seed=seeds, m=st.integers(1, 7), n=st.integers(1, 7), r=st.integers(0, 4),
       lam=st.floats(0.1, 3.0), scale=st.floats(0.0, 2.0))
def test_proven_bound_holds_at_random_points_full_data(seed, m, n, r, lam, scale):
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((m, n)) * 2
    U, V = scale * rng.standard_normal((m, r)), scale * rng.standard_normal((n, r))
    cert = hd.certify(Y, U, V, lam)
    f_star = _svt_optimum(Y, lam)
    assert cert.objective == pytest.approx(hd.factorized_objective(Y, U, V, lam), rel=1e-12)
    assert cert.objective - f_star <= cert.bound * (1 + 1e-9) + 1e-9
    assert cert.lower <= f_star * (1 + 1e-12) + 1e-12
    if cert.is_global:
        assert cert.objective - f_star <= cert.tol * cert.objective + 1e-9


@pytest.fixture(scope="module")
def completion():
    rng = np.random.default_rng(11)
    Y, _ = hd.low_rank_matrix(12, 9, 2, noise=0.3, rng=rng)
    mask = hd.random_mask(Y.shape, 0.5, rng=rng)
    ref = hd.solve_convex(Y, 0.8, mask, tol=1e-8)
    return Y, mask, ref.objective - ref.certificate.bound, ref.objective


@given(seed=seeds, r=st.integers(0, 5), scale=st.floats(0.0, 1.5))
def test_proven_bound_holds_at_random_points_with_missing_entries(completion, seed, r, scale):
    Y, mask, f_lower, f_upper = completion
    rng = np.random.default_rng(seed)
    U, V = scale * rng.standard_normal((12, r)), scale * rng.standard_normal((9, r))
    cert = hd.certify(Y, U, V, 0.8, mask)
    assert cert.objective - f_upper <= cert.bound * (1 + 1e-9) + 1e-9  # F - F* <= F - f_lower... <= bound
    assert cert.lower <= f_upper * (1 + 1e-12)


@given(seed=seeds, r=st.integers(1, 6), lam=st.floats(0.2, 3.0))
def test_proven_bound_holds_for_the_row_sparse_and_nonnegative_pairs(seed, r, lam):
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((6, 4)) * 2
    rows = np.linalg.norm(Y, axis=1, keepdims=True)
    X = Y * np.maximum(1 - lam / rows, 0)
    f_rows = 0.5 * np.sum((Y - X) ** 2) + lam * np.linalg.norm(X, axis=1).sum()
    U, V = rng.standard_normal((6, r)), rng.standard_normal((4, r))
    cert = hd.certify(Y, U, V, lam, norms=("l1", "l2"))
    assert cert.polar_kind == "exact"
    assert cert.objective - f_rows <= cert.bound * (1 + 1e-9) + 1e-9
    Xp = np.maximum(Y - lam, 0)
    f_pos = 0.5 * np.sum((Y - Xp) ** 2) + lam * Xp.sum()
    cert = hd.certify(Y, np.abs(U), np.abs(V), lam, norms=("l1+", "l1+"))
    assert cert.objective - f_pos <= cert.bound * (1 + 1e-9) + 1e-9


def test_the_papers_bound_at_stationary_points():
    # F(X) - F* <= lam Omega(X*) (polar - 1)_+ at stationary points of undersized factorizations.
    Y, _ = hd.low_rank_matrix(20, 15, 6, noise=0.2, rng=3)
    lam = 1.0
    W, s, Zt = np.linalg.svd(Y, full_matrices=False)
    nuc_star = np.maximum(s - lam, 0).sum()
    f_star = _svt_optimum(Y, lam)
    for r in range(1, 6):
        res = hd.solve_factorized(Y, lam, r, rng=r, tol=1e-15)
        cert = res.certificate
        assert abs(cert.euler_gap) < 1e-7 * cert.objective  # stationary
        gap = res.objective - f_star
        assert 0 < gap <= lam * nuc_star * (cert.polar - 1) * (1 + 1e-9)
        assert gap <= cert.bound


def test_global_at_the_optimum_and_not_elsewhere():
    Y = np.diag([5.0, 3.0, 1.0, 0.5])
    s = np.sqrt([3.0, 1.0])
    U = np.zeros((4, 2))
    U[0, 0], U[1, 1] = s
    cert = hd.certify(Y, U, U, 2.0)
    assert cert.is_global and cert.polar == pytest.approx(1.0, abs=1e-14)
    assert cert.polar_kind == "exact" and "proven" in cert.proves
    bad = hd.certify(Y, U[:, :1], U[:, :1], 2.0)  # one column short: polar = 3 / 2
    assert bad.is_global is False and bad.polar == pytest.approx(1.5)  # disproven, not just unproven
    assert bad.descent == pytest.approx(-0.5 * 2.0**2 * 0.5**2) and "proven not optimal" in bad.proves
    near = hd.certify(Y, U * (1 + 1e-4), U * (1 + 1e-4), 2.0)  # slightly off: neither proven nor disproven
    assert near.is_global is None and "not certified" in near.proves
    assert 0 < near.bound and -near.descent <= near.tol * near.objective
    zero = hd.certify(Y, np.zeros((4, 0)), np.zeros((4, 0)), 2.0)  # X = 0
    assert zero.polar == pytest.approx(2.5) and zero.size == 0
    assert "is_global=True" in str(cert)


def test_krylov_is_evidence_not_proof():
    Y, _ = hd.low_rank_matrix(60, 50, 3, noise=0.3, rng=0)
    res = hd.grow(Y, 5.0, rng=0)
    exact = hd.certify(Y, res.U, res.V, 5.0, method="exact")
    kry = hd.certify(Y, res.U, res.V, 5.0, method="krylov", rng=1)
    assert exact.is_global
    assert kry.polar_kind == "krylov" and not kry.is_global  # never claims a proof
    assert kry.is_global_estimate and "evidence, not proof" in kry.proves
    assert kry.polar <= exact.polar * (1 + 1e-12)  # a Ritz value is a lower bound...
    assert kry.polar == pytest.approx(exact.polar, rel=1e-8)  # ...converged to tolerance
    assert kry.polar_upper >= exact.polar  # the Frobenius bound is proven
    assert "Lanczos" in kry.basis


def test_hard_pair_certificate_is_labelled():
    rng = np.random.default_rng(5)
    Y = np.abs(rng.standard_normal((6, 5)))
    res = hd.grow(Y, 1.0, norms=("l2+", "l2"), rng=0)
    cert = res.certificate
    assert cert.polar_kind == "lower_bound" and "NP-hard" in cert.basis
    assert cert.polar_upper >= cert.polar
    assert cert.bound >= cert.bound_estimate  # the proven bound uses the proven upper bound
    assert cert.is_global == (cert.bound <= cert.tol * cert.objective)


@given(seed=seeds, m=st.integers(1, 40), n=st.integers(1, 40))
def test_sigma_max_exact_and_krylov_agree_with_numpy(seed, m, n):
    A = np.random.default_rng(seed).standard_normal((m, n))
    s1 = np.linalg.svd(A, compute_uv=False)[0]
    ex = hd.sigma_max(A, method="exact")
    kr = hd.sigma_max(A, method="krylov", tol=1e-12, rng=seed)
    assert ex.value == pytest.approx(s1, rel=1e-12) and ex.kind == "exact"
    assert kr.value == pytest.approx(s1, rel=1e-9) and kr.value <= s1 * (1 + 1e-12)
    assert kr.upper >= s1 and kr.converged
    np.testing.assert_allclose(np.abs(A @ kr.v), kr.value * np.abs(kr.u), atol=1e-6 * s1)


def test_krylov_on_a_flat_top_spectrum():
    # The residual's spectrum near an optimum: many singular values just below the top.
    rng = np.random.default_rng(0)
    P, _ = np.linalg.qr(rng.standard_normal((300, 300)))
    Q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    s = np.concatenate([1 - 1e-4 * np.arange(20), rng.random(180) * 0.9])
    A = (P[:, :200] * s) @ Q.T
    kr = hd.sigma_max(A, method="krylov", tol=1e-10, rng=1)
    assert kr.converged and kr.value <= 1 + 1e-12
    assert kr.value == pytest.approx(1.0, rel=1e-8)
    short = hd.sigma_max(A, method="krylov", tol=1e-12, max_steps=5, rng=1)
    assert not short.converged and short.value < 1  # a lower bound, flagged as unconverged


def test_type_and_device_are_respected():
    Y = torch.randn(8, 6, dtype=torch.float32)
    cert = hd.certify(Y, torch.zeros(8, 1), torch.zeros(6, 1), 1.0)
    assert cert.tol == 1e-4 and isinstance(cert.polar, float)
    s = hd.sigma_max(Y)
    assert isinstance(s.u, torch.Tensor) and s.u.dtype == torch.float32


Y32, U31, V21 = np.ones((3, 2)), np.ones((3, 1)), np.ones((2, 1))


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((Y32, np.ones((2, 1)), V21, 1.0), {}, "'U' parameter of certify must be an array of shape"),
        ((Y32, U31, np.ones((2, 2)), 1.0), {}, "as many columns as U"),
        ((Y32, U31, V21, -1.0), {}, "'lam' parameter of certify"),
        ((Y32, -U31, V21, 1.0), dict(norms=("l1+", "l2")), "non-negative"),
        ((Y32, U31, V21, 1.0), dict(tol=0.0), "'tol' parameter of certify"),
        ((Y32, U31, V21, 1.0), dict(method="randomized"), "'method' parameter"),
        ((Y32, np.full((3, 1), np.nan), V21, 1.0), {}, "'U' parameter of certify must be finite"),
        ((Y32, U31, V21, 1.0), dict(norms="l2/l9"), "'norms' parameter of certify"),
    ],
)
def test_bad_input_is_a_clear_error(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        hd.certify(*args, **kwargs)


def _plain_dual_gap(Y, mask, U, V, lam):
    """F - D(R / max(1, sigma_1(R) / lam)): the scaled residual's duality gap."""
    M = np.ones_like(Y) if mask is None else mask.astype(float)
    R = M * (Y - U @ V.T)
    f = 0.5 * np.sum(R * R) + lam * np.sum(np.linalg.norm(U, axis=0) * np.linalg.norm(V, axis=0))
    s = max(1.0, np.linalg.norm(R, 2) / lam)
    return f - (np.sum(R * M * Y) / s - np.sum(R * R) / (2 * s * s))


@pytest.fixture(scope="module")
def near_optima():
    """A 60 x 50 completion (50 % observed, optimum of rank 19) and its optimum (tol 1e-12)."""
    rng = np.random.default_rng(3)
    Y, _ = hd.low_rank_matrix(60, 50, 4, noise=0.3, rng=rng)
    mask = hd.random_mask(Y.shape, 0.5, rng=rng)
    return Y, mask, hd.grow(Y, 1.5, mask, rng=0, tol=1e-12)


@pytest.mark.parametrize("masked", [False, True])
def test_clipped_dual_point_bounds_hold_near_the_optimum(near_optima, masked):
    # The certificate's second dual point (the residual's values above lam clipped on the observed
    # entries) is tried when the scaled residual's bounds are within CLIP_TRY of proving: every
    # bound must hold against F* (the singular value thresholding without a mask; with one, a
    # tight solve, an upper bound on F*, so the check stays necessary), and a clipped bound is
    # used only where it is smaller.
    Y, mask, ref = near_optima
    rng = np.random.default_rng(1)
    if masked:
        lam, f_star, U0, V0 = 1.5, ref.objective, ref.U, ref.V
    else:
        mask, lam = None, 4.0
        f_star = _svt_optimum(Y, lam)
        P, S, Qh = np.linalg.svd(Y, full_matrices=False)
        k = int((S > lam).sum())
        U0, V0 = P[:, :k] * np.sqrt(S[:k] - lam), Qh[:k].T * np.sqrt(S[:k] - lam)
    used = 0
    for scale in np.geomspace(1e-7, 1e-3, 12):
        U = U0 + scale * rng.standard_normal(U0.shape) * np.linalg.norm(U0, axis=0)
        cert = hd.certify(Y, U, V0, lam, mask)
        assert cert.objective - f_star <= cert.bound * (1 + 1e-9) + 1e-9
        if "clipped" in cert.basis:
            used += 1
            polar_bound = cert.objective * max(cert.polar_upper - 1, 0) + cert.euler_gap
            assert cert.bound < min(_plain_dual_gap(Y, mask, U, V0, lam), polar_bound)
    assert used >= 1


def test_clipped_dual_point_proves_where_the_scaled_residual_does_not(near_optima):
    # Along grow's own descent (cut at a sweep budget) the excess over lam sits on a few
    # directions: the clipped point proves points that the scaled residual does not.
    import warnings

    Y, mask, ref = near_optima
    proved_by_clip = 0
    for it in range(21, 47, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hd.ConvergenceWarning)
            res = hd.grow(Y, 1.5, mask, rng=0, max_iter=it)
        cert = hd.certify(Y, res.U, res.V, 1.5, mask)
        assert cert.objective - ref.objective <= cert.bound * (1 + 1e-9) + 1e-9
        polar_bound = cert.objective * max(cert.polar_upper - 1, 0) + cert.euler_gap
        plain = min(_plain_dual_gap(Y, mask, res.U, res.V, 1.5), polar_bound)
        proved_by_clip += cert.is_global is True and plain > cert.tol * cert.objective
    assert proved_by_clip >= 1


def test_clipped_dual_point_without_a_mask_is_the_projection_onto_the_spectral_ball():
    from hdlcore.matrix.certificates import clipped_dual
    from hdlcore.matrix.problem import prepare

    rng = np.random.default_rng(0)
    R = rng.standard_normal((30, 20))
    prob, lam = prepare(R, None, 3.0, "test", None)
    W, k = clipped_dual(prob, prob.Y, lam)
    P, S, Qh = np.linalg.svd(R, full_matrices=False)
    assert k == int((S > 3.0).sum()) > 0
    np.testing.assert_allclose(W.numpy(), (P * np.minimum(S, 3.0)) @ Qh, atol=1e-10)
