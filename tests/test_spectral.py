"""The probabilistic bound on sigma_1: never below the true value, and certificates that use it.

The hard case for Lanczos is a flat top spectrum (many singular values within 1e-3 of the
largest, as in a residual near an optimum): the Ritz value creeps up slowly, so an upper bound
that trusted it would be wrong. Every trial compares with a full SVD.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hdlcore as hd
from hdlcore.matrix.spectral import (
    EXACT_SIZE_LIMIT,
    kw_eps,
    kw_schedule,
    polynomial_bound,
    resolve_method,
    start_threshold,
)


def _flat_top(rng, m, n, top=20, spread=1e-3, bulk=0.9, x1=None, gap=0.0):
    """(m, n) with singular values 1, then top-1 in (1 - gap - spread, 1 - gap], then a bulk in [0, bulk)."""
    r = min(m, n)
    top = min(top, r)
    s = np.concatenate([[1.0], 1 - gap - spread * rng.random(top - 1), bulk * rng.random(r - top)])
    P, _ = np.linalg.qr(rng.standard_normal((m, r)))
    G = rng.standard_normal((n, r))
    if x1 is not None:  # prescribe the top right singular vector
        G[:, 0] = x1
    Q, _ = np.linalg.qr(G)
    return (P * s) @ Q.T


def test_upper_bound_is_never_below_sigma_1_on_flat_top_spectra():
    # Hundreds of matrices and starts, stopped anywhere: at a step cap, at a threshold just above
    # or just below sigma_1, or at the accuracy tol. The bound must hold at every stop.
    rng = np.random.default_rng(0)
    worst, stops, trials = math.inf, set(), 0
    for _ in range(60):
        m, n = rng.integers(20, 70, size=2)
        A = _flat_top(rng, m, n, top=int(rng.integers(2, 25)), spread=10.0 ** rng.uniform(-5, -2),
                      bulk=rng.uniform(0.5, 0.999))
        s1 = np.linalg.svd(A, compute_uv=False)[0]
        for _ in range(5):
            kw = dict(rng=rng, max_steps=int(rng.integers(2, min(m, n) + 1)))
            kw["threshold"] = [None, s1 * (1 + 1e-4), s1 * (1 - 1e-6)][int(rng.integers(3))]
            s = hd.sigma_max(A, method="probabilistic", tol=10.0 ** rng.uniform(-10, -3), **kw)
            assert s.kind == "probabilistic" and s.failure_probability == 1e-9
            assert s.value <= s1 * (1 + 1e-13)  # a Ritz value is a lower bound
            assert s.upper >= s1, (s.upper / s1 - 1, s.basis)
            worst = min(worst, s.upper / s1 - 1)
            stops.add(s.basis.split("stopped: ")[1].split(" ")[0])
            trials += 1
    assert trials == 300 and worst >= 0
    assert {"proven", "refuted", "the", "relative"} <= stops  # every way of stopping was exercised


def test_failure_frequency_is_below_delta_even_at_a_large_delta():
    # At delta = 0.2 the bound may fail with probability 0.2; over 150 random starts on one flat
    # matrix, more than 0.2 * 150 + 3 sd = 44 failures would contradict the theorem.
    rng = np.random.default_rng(1)
    A = _flat_top(rng, 60, 50, top=20, spread=1e-3)
    s1 = np.linalg.svd(A, compute_uv=False)[0]
    fails = sum(hd.sigma_max(A, method="probabilistic", failure_probability=0.2, max_steps=8,
                             rng=rng).upper < s1 for _ in range(150))
    assert fails <= 44


@pytest.mark.parametrize("seed", range(8))
def test_bound_holds_from_adversarial_starts(seed):
    # The a-posteriori bound is deterministic given |x_1^T v_1| >= t: build the matrix so that the
    # start the library will draw (the same generator) has exactly that overlap with the top
    # right singular vector, the worst start the theorem allows, hiding sigma_1 from Lanczos.
    rng = np.random.default_rng(100 + seed)
    m, n = 90, 60
    b = np.random.default_rng(seed).standard_normal(n)
    b /= np.linalg.norm(b)
    t = start_threshold(n, 1e-9 / 2)
    w = rng.standard_normal(n)
    w -= (w @ b) * b
    x1 = t * b + math.sqrt(1 - t * t) * w / np.linalg.norm(w)
    A = _flat_top(rng, m, n, top=int(rng.integers(2, 20)), spread=1e-2, bulk=rng.uniform(0.5, 0.99),
                  x1=x1, gap=1e-3)
    s1 = np.linalg.svd(A, compute_uv=False)[0]
    for cap in (5, 20, 40):
        s = hd.sigma_max(A, method="probabilistic", max_steps=cap, rng=seed)
        assert s.upper >= s1, (cap, s.upper / s1 - 1)
    # ...and the same start, with its small overlap, does make a run of krylov miss sigma_1.
    assert hd.sigma_max(A, method="krylov", max_steps=5, rng=seed).value < (1 - 5e-4) * s1


def test_inverted_kuczynski_wozniakowski_bound():
    # eps(k, delta) inverts 1.648 sqrt(n) exp(-(2k - 1) sqrt(eps)) = delta.
    n, k, delta = 10_000, 500, 1e-9
    eps = kw_eps(n, k, delta)
    assert 1.648 * math.sqrt(n) * math.exp(-(2 * k - 1) * math.sqrt(eps)) == pytest.approx(delta, rel=1e-9)
    # The cost law of the issue: ~1000 steps for eps = 1e-4 at delta = 1e-9, ~10x more for 1e-6.
    steps = [next(k for k in range(1, 10**6) if kw_eps(n, k, delta) <= e) for e in (1e-4, 1e-6)]
    assert 900 <= steps[0] <= 1400 and 9 <= steps[1] / steps[0] <= 11
    assert kw_schedule(100)[-1] == 100 and len(kw_schedule(1000)) < 60


def test_start_threshold_is_a_valid_quantile():
    # P[|x^T b| < t] <= delta for b uniform on the sphere: check by Monte Carlo at a large delta.
    rng = np.random.default_rng(2)
    for n, delta in ((2, 0.3), (3, 0.3), (50, 0.3), (400, 0.1)):
        b = rng.standard_normal((20000, n))
        frac = np.mean(np.abs(b[:, 0]) / np.linalg.norm(b, axis=1) < start_threshold(n, delta))
        assert frac <= delta + 4 * math.sqrt(delta / 20000)
        assert frac >= 0.5 * delta  # and it is not needlessly small
    assert start_threshold(1, 1e-9) == 1.0


def test_polynomial_bound_solves_its_equation_from_above():
    thetas = np.array([2.0, 1.5, 1.0, 0.2])
    for target in (-20.0, 0.0, 5.0):
        x = polynomial_bound(thetas, target)
        assert x > 2.0 and np.sum(np.log(x - thetas)) >= target - 1e-12
        assert np.sum(np.log(x * (1 - 1e-9) - thetas)) < target or x - 2.0 < 1e-12
    assert polynomial_bound(thetas, -math.inf) == 2.0


def test_exact_probabilistic_and_krylov_agree_and_state_their_kind():
    rng = np.random.default_rng(3)
    A = _flat_top(rng, 120, 80)
    s1 = np.linalg.svd(A, compute_uv=False)[0]
    ex = hd.sigma_max(A, method="exact")
    pr = hd.sigma_max(A, method="probabilistic", rng=1)
    tr = hd.sigma_max(A.T, method="probabilistic", rng=1)  # the start is on the smaller side
    assert ex.kind == "exact" and ex.failure_probability == 0
    assert pr.value == pytest.approx(s1, rel=1e-12) and s1 <= pr.upper <= s1 * (1 + 1e-9)
    assert pr.converged and pr.accuracy <= 1e-9 and "with probability >= 1 - 1e-09" in pr.basis
    assert tr.value == pytest.approx(s1, rel=1e-12) and tr.u.shape == (80,) and tr.v.shape == (120,)
    np.testing.assert_allclose(A @ pr.v, pr.value * pr.u, atol=1e-8)
    np.testing.assert_allclose(A.T @ tr.v, tr.value * tr.u, atol=1e-8)
    assert pr.residual < 1e-8


def test_auto_is_exact_below_the_measured_limit_and_probabilistic_above():
    assert resolve_method("auto", (300, 200)) == "exact"
    side = round(EXACT_SIZE_LIMIT ** (1 / 3))
    assert resolve_method("auto", (side, side)) == "exact"
    assert resolve_method("auto", (side + 1, side + 1)) == "probabilistic"
    assert resolve_method("krylov", (10, 10)) == "krylov"


def test_zero_matrix_and_tensor_type():
    s = hd.sigma_max(np.zeros((5, 4)), method="probabilistic", rng=0)
    assert s.value == 0 and s.upper == 0 and s.converged and s.u.shape == (5,)
    A = torch.randn(30, 20, dtype=torch.float32)
    s = hd.sigma_max(A, method="probabilistic", rng=0)
    assert isinstance(s.u, torch.Tensor) and s.u.dtype == torch.float32
    assert s.upper >= float(torch.linalg.svdvals(A.double())[0])


@pytest.fixture(scope="module")
def completion():
    rng = np.random.default_rng(4)
    Y, _ = hd.low_rank_matrix(70, 50, 3, noise=0.3, rng=rng)
    mask = hd.random_mask(Y.shape, 0.6, rng=rng)
    res = hd.grow(Y, 2.0, mask, rng=0)
    ref = hd.solve_convex(Y, 2.0, mask, tol=1e-8)
    assert res.certificate.is_global
    return Y, mask, res, ref.objective - ref.certificate.bound  # a proven lower bound on F*


def test_probabilistic_certificate_agrees_with_the_exact_one(completion):
    Y, mask, res, _ = completion
    exact = hd.certify(Y, res.U, res.V, 2.0, mask, method="exact")
    prob = hd.certify(Y, res.U, res.V, 2.0, mask, method="probabilistic", rng=5)
    assert exact.is_global and prob.is_global
    assert prob.polar_kind == "probabilistic" and prob.failure_probability == 1e-9
    assert prob.polar <= exact.polar * (1 + 1e-12) <= prob.polar_upper * (1 + 1e-12)
    assert prob.bound <= prob.tol * prob.objective and prob.polar_accuracy < 1e-5  # the upper bound decided
    assert prob.proves.startswith("proven with probability >= 1 - 1e-09 over the random start")
    assert "Lanczos accuracy" in prob.proves and "probabilistic" in prob.basis
    assert exact.failure_probability == 0 and "probability" not in exact.proves


def test_is_global_is_never_claimed_near_but_not_at_the_optimum(completion):
    # Points near the optimum (scaled columns, small perturbations): whenever the probabilistic
    # certificate says is_global, the point is within tol of the optimum (F* from the convex
    # solver's proven lower bound), and the exact certificate agrees; where the exact certificate
    # cannot prove (its bound above tol * F: the polar above 1 + tol and the duality gap too
    # large), it never says so.
    Y, mask, res, f_lower = completion
    rng = np.random.default_rng(6)
    U0, V0 = np.asarray(res.U), np.asarray(res.V)
    claims = {True: 0, None: 0, False: 0}
    above = 0
    for i in range(24):
        eta = 10.0 ** rng.uniform(-9, -2)
        if i % 2:
            U = U0 * (1 + eta * rng.standard_normal(U0.shape[1]))  # rescaled columns
        else:
            U = U0 + eta * rng.standard_normal(U0.shape)
        exact = hd.certify(Y, U, V0, 2.0, mask, method="exact")
        prob = hd.certify(Y, U, V0, 2.0, mask, method="probabilistic", rng=i)
        claims[prob.is_global] += 1
        if exact.bound > exact.tol * exact.objective:
            above += 1
            assert not prob.is_global
        if prob.is_global:
            assert exact.is_global and prob.objective - f_lower <= prob.tol * prob.objective
        assert prob.polar <= exact.polar * (1 + 1e-12) <= prob.polar_upper * (1 + 1e-12)
    assert claims[True] >= 3 and claims[True] + claims[False] + claims[None] == 24 and above >= 3


def test_grow_reports_a_probabilistic_certificate():
    Y, _ = hd.low_rank_matrix(60, 40, 3, noise=0.2, rng=7)
    res = hd.grow(Y, 3.0, rng=0, polar_method="probabilistic", failure_probability=1e-6)
    cert = res.certificate
    assert cert.polar_kind == "probabilistic" and cert.failure_probability == 1e-6 and cert.is_global
    assert "with probability >= 1 - 1e-06" in cert.proves


@pytest.mark.parametrize("func, kwargs, match", [
    ("sigma_max", {"failure_probability": 0.0}, "'failure_probability' parameter of sigma_max"),
    ("sigma_max", {"failure_probability": 1.5}, "'failure_probability' parameter of sigma_max"),
    ("sigma_max", {"threshold": -1.0}, "'threshold' parameter of sigma_max"),
    ("sigma_max", {"method": "randomized"}, "'method' parameter of sigma_max"),
    ("polar", {"failure_probability": -1e-9}, "'failure_probability' parameter of polar"),
])
def test_bad_input_is_refused(func, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(hd, func)(np.ones((3, 2)), **kwargs)
    with pytest.raises(ValueError, match="'failure_probability' parameter of certify"):
        hd.certify(np.ones((3, 2)), np.ones((3, 1)), np.ones((2, 1)), 1.0, failure_probability=2.0)


@pytest.mark.parametrize("k_max, dtype", [(4, torch.float64), (10, torch.float64), (40, torch.float32),
                                          (200, torch.float64)])
def test_top_triplets_match_a_full_svd(k_max, dtype):
    # The growth directions of grow (Lanczos below 8 directions, block Krylov above): the values
    # above the threshold, to the residual tolerance, against a full SVD.
    from hdlcore.matrix.spectral import top_triplets

    rng = np.random.default_rng(k_max)
    m, n = 300, 240
    s = np.concatenate([np.linspace(3, 1.5, 60), rng.uniform(0, 1.2, n - 60)])
    P0, _ = np.linalg.qr(rng.standard_normal((m, n)))
    Q0, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = torch.as_tensor((P0 * s) @ Q0.T, dtype=dtype)
    S, P, Q = top_triplets(A, above=1.4, k_max=k_max, tol=1e-3, rng=np.random.default_rng(0))
    exact = np.sort(s)[::-1]
    count = min(int((exact > 1.4).sum()), k_max)
    assert S.shape == (count,) and P.shape == (m, count) and Q.shape == (n, count)
    assert np.allclose(S.double().numpy(), exact[:count], rtol=1e-4, atol=0)
    resid = torch.linalg.vector_norm(A.T @ P - Q * S, dim=0) / float(S[0])
    assert float(resid.max()) <= 1.5e-3
    assert torch.allclose(P.T @ P, torch.eye(count, dtype=dtype), atol=1e-3)


@pytest.mark.parametrize("shape", [(150, 140), (60, 200), (200, 60), (40, 33)])
def test_top_triplets_when_the_krylov_space_fills_the_whole_space(shape):
    # Half the spectrum above the threshold: the block Krylov space grows to the whole space
    # (or, for m < n, to the range of A^T plus the start), where its Ritz triplets are exact. It
    # once stopped a block short of min(m, n) and returned Ritz values that were not singular values.
    from hdlcore.matrix.spectral import top_triplets

    m, n = shape
    rng = np.random.default_rng(m + n)
    A = torch.as_tensor(rng.standard_normal((m, n)))
    exact = np.linalg.svd(A.numpy(), compute_uv=False)
    above = float(np.median(exact))
    S, P, Q = top_triplets(A, above=above, k_max=min(m, n) + 1, tol=1e-7, rng=np.random.default_rng(0))
    count = int((exact > above).sum())
    assert S.shape == (count,)
    np.testing.assert_allclose(S.numpy(), exact[:count], rtol=1e-10)
    resid = torch.linalg.vector_norm(A.T @ P - Q * S, dim=0) / float(S[0])
    assert float(resid.max()) <= 1e-7


@pytest.mark.parametrize("shape, dtype", [((300, 240), torch.float64), ((90, 260), torch.float64),
                                          ((260, 90), torch.float32), ((50, 50), torch.float64)])
def test_gram_route_matches_a_full_svd(shape, dtype):
    # grow's exact tests and growth directions take the smaller Gram matrix's eigenpairs (about
    # half a full SVD's time): the values above the threshold, both sides' vectors, sigma_1.
    from hdlcore.matrix.spectral import gram_eigh, gram_triplets, top_triplets

    def gram_top_value(A):  # sigma_1 by the Gram route, as grow's tests and certificates take it
        return gram_eigh(A, vectors=False).top()[0]

    m, n = shape
    rng = np.random.default_rng(m * n)
    r = min(m, n)
    s = np.concatenate([np.linspace(5, 2, r // 4), rng.uniform(0, 1.8, r - r // 4)])
    P0, _ = np.linalg.qr(rng.standard_normal((m, r)))
    Q0, _ = np.linalg.qr(rng.standard_normal((n, r)))
    A = torch.as_tensor((P0 * s) @ Q0.T, dtype=dtype)
    exact = np.linalg.svd(A.double().numpy(), compute_uv=False)
    rtol = 1e-12 if dtype == torch.float64 else 1e-6
    assert gram_top_value(A) == pytest.approx(exact[0], rel=rtol)
    for k_max in (3, r):
        S, P, Q = top_triplets(A, above=1.9, k_max=k_max, rng=np.random.default_rng(0), exact=True)
        count = min(int((exact > 1.9).sum()), k_max)
        assert S.dtype == P.dtype == Q.dtype == dtype
        assert S.shape == (count,) and P.shape == (m, count) and Q.shape == (n, count)
        np.testing.assert_allclose(S.double().numpy(), exact[:count], rtol=rtol)
        for X, Z in ((A @ Q, P), (A.T @ P, Q)):  # A q = s p and A^T p = s q
            assert float((torch.linalg.vector_norm(X - Z * S, dim=0) / S).max()) <= 100 * rtol
        assert torch.allclose(P.T @ P, torch.eye(count, dtype=dtype), atol=100 * rtol)
    # Nothing above the threshold: no directions; a threshold far below sigma_1 (squared values
    # would lose accuracy there) and a non-CPU tensor hand back to the SVD.
    assert gram_triplets(A, above=10.0, k_max=5)[0].shape == (0,)
    assert gram_triplets(A, above=1e-5, k_max=5) is None
    assert gram_top_value(torch.zeros(4, 0, dtype=dtype)) == 0.0
    assert gram_top_value(torch.zeros(3, 5, dtype=dtype)) == 0.0


@pytest.mark.parametrize("kind", ["flat", "rank-one", "decaying", "huge", "tiny", "wide"])
def test_gram_bound_covers_sigma_1(kind):
    # Certificates take sigma_1 from the smaller Gram matrix on the CPU (GramEigh.top): the value
    # must match a full SVD and the bound must cover it with an allowance far below any tolerance,
    # also where |A|_F^2 / sigma_1^2 is largest (a flat spectrum) and where the squares would
    # overflow or underflow without the power-of-two scaling.
    from hdlcore.matrix.spectral import gram_eigh, top_singular

    rng = np.random.default_rng(len(kind))
    m, n = (200, 150) if kind != "wide" else (60, 240)
    r = min(m, n)
    P0, _ = np.linalg.qr(rng.standard_normal((m, r)))
    Q0, _ = np.linalg.qr(rng.standard_normal((n, r)))
    s = {"flat": np.ones(r), "rank-one": np.r_[3.0, np.zeros(r - 1)]}.get(kind, np.geomspace(7, 1e-3, r))
    scale = {"huge": 1e200, "tiny": 1e-200}.get(kind, 1.0)
    A = torch.as_tensor((P0 * s) @ Q0.T * scale)
    exact = float(np.linalg.svd(A.numpy(), compute_uv=False)[0])
    value, upper = gram_eigh(A, vectors=False).top()
    assert value == pytest.approx(exact, rel=1e-13)
    assert exact <= upper <= exact * (1 + 1e-10)
    out = top_singular(A, method="exact", vectors=False)  # the certificate's values-only route
    assert (out.value, out.upper) == (value, upper) and "Gram" in out.basis
    assert np.isfinite(upper) and upper > 0
    bad = A.clone()
    bad[0, 0] = float("inf")
    assert gram_eigh(bad) is None  # not finite: the SVD's business (inputs are validated before)
    # grow's loop evidence in float32 (native): the bound then uses float32's rounding unit
    A32 = (A / scale).float()
    exact32 = float(np.linalg.svd(A32.double().numpy(), compute_uv=False)[0])
    value32, upper32 = gram_eigh(A32, vectors=False, native=True).top()
    assert value32 == pytest.approx(exact32, rel=1e-5)
    assert exact32 <= upper32 <= exact32 * (1 + 1e-2)  # flat: p eps |A|_F^2 / sigma_1^2 = 2e-3
