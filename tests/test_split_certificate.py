"""The split bound on sigma_1(R) (hdlcore.matrix.spectral.split_top): never below sigma_1.

``sigma_1(R) <= |[[|A|, |B|], [|C|, |D|]]|_2`` for the blocks of R on the spans of U and V, with
``|D|`` bounded by the probabilistic Lanczos run. Checked against full SVDs on residuals shaped
like those near an optimum (a cluster at lam on the spans, small off-diagonal blocks, a rest
below lam), on random points (large off-diagonal blocks: the split cannot prove and says so), and
inside ``hdlcore.certify``, whose probabilistic certificates take it where it decides.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hdlcore as hd
import hdlcore.matrix.certificates as certificates
from hdlcore.matrix.spectral import block_norm, span_blocks, split_top


def _near_optimum(rng, m, n, r, lam=1.0, gap=1e-3, off=1e-6, cluster=1e-7):
    """(R, U, V): R has r singular values within ``cluster`` of lam on the spans of U and V, a
    rest whose top is ``gap`` below lam, and off-diagonal blocks of norm about ``off``."""
    Qu, _ = np.linalg.qr(rng.standard_normal((m, m)))
    Qv, _ = np.linalg.qr(rng.standard_normal((n, n)))
    k = min(m, n)
    S = np.zeros((m, n))
    S[:r, :r] = np.diag(lam * (1 + cluster * rng.uniform(-1, 1, r)))
    rest = lam * (1 - gap) * np.concatenate([[1.0], rng.uniform(0, 1, k - r - 1)])
    S[r:k, r:k] = np.diag(rest)
    S[:r, r:] += off * rng.standard_normal((r, n - r)) / np.sqrt(n)
    S[r:, :r] += off * rng.standard_normal((m - r, r)) / np.sqrt(m)
    R = Qu @ S @ Qv.T
    mix = rng.standard_normal((r, r))  # U, V: any bases of the spans, not the singular vectors
    return R, Qu[:, :r] @ mix, Qv[:, :r] @ mix.T


def _t(x):
    return torch.as_tensor(x, dtype=torch.float64)


def test_block_norm_is_the_2x2_norm_rounded_up_and_monotone():
    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b, c, d = rng.uniform(0, 2, 4) * 10.0 ** rng.uniform(-8, 0, 4)
        exact = np.linalg.norm(np.array([[a, b], [c, d]]), 2)
        assert exact <= block_norm(a, b, c, d) <= exact * (1 + 1e-14)
        assert block_norm(a, b, c, d + 1e-3) >= block_norm(a, b, c, d)


def test_blocks_reassemble_R_and_their_norms_bound_sigma_1():
    rng = np.random.default_rng(1)
    for _ in range(20):
        m, n, r = int(rng.integers(10, 40)), int(rng.integers(10, 40)), int(rng.integers(1, 6))
        R, U, V = (_t(x) for x in (rng.standard_normal((m, n)), rng.standard_normal((m, r)),
                                   rng.standard_normal((n, r))))
        Qu, Qv, A, B, C, D = span_blocks(R, U, V)
        back = Qu @ A @ Qv.T + Qu @ B + C @ Qv.T + D  # the four blocks as maps on the full spaces
        assert torch.allclose(back, R, atol=1e-12)
        norms = [float(torch.linalg.matrix_norm(X, 2)) for X in (A, B, C, D)]
        assert float(torch.linalg.matrix_norm(R, 2)) <= block_norm(*norms) * (1 + 1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_split_upper_bound_is_never_below_sigma_1_near_an_optimum(seed):
    rng = np.random.default_rng(10 + seed)
    m, n, r = 90, 70, int(rng.integers(2, 12))
    off = 10.0 ** rng.uniform(-9, -4)
    R, U, V = _near_optimum(rng, m, n, r, gap=10.0 ** rng.uniform(-3, -1), off=off)
    s1 = float(np.linalg.svd(R, compute_uv=False)[0])
    for threshold in (s1 * (1 + 1e-6), s1 * (1 + 1e-4), s1 * (1 - 1e-9), 2 * s1):
        s = split_top(_t(R), _t(U), _t(V), threshold=threshold, delta=1e-9, rng=np.random.default_rng(seed))
        if s is None:  # the small blocks alone exceed the threshold
            small = span_blocks(_t(R), _t(U), _t(V))[2:5]  # A, B, C
            norms = [float(torch.linalg.matrix_norm(X, 2)) for X in small]
            assert block_norm(*norms, 0.0) > threshold * 0.999
            continue
        assert s.kind == "probabilistic" and s.failure_probability == 1e-9 and s.u is None
        assert s.value <= s1 * (1 + 1e-12) and s.upper >= s1, (s.upper / s1 - 1, s.detail)
        if threshold > s1 * (1 + 1e-5) and off < 1e-6:
            assert s.upper <= threshold  # decided: proven
        assert "split on the spans of U and V" in s.detail


def test_split_does_not_decide_where_the_off_diagonal_blocks_are_large():
    # A random point: the blocks' norms bound sigma_1 loosely, so the split neither proves nor
    # refutes a threshold just above sigma_1 (certify then runs Lanczos on R itself).
    rng = np.random.default_rng(2)
    for _ in range(5):
        R, U, V = rng.standard_normal((60, 50)), rng.standard_normal((60, 4)), rng.standard_normal((50, 4))
        s1 = float(np.linalg.svd(R, compute_uv=False)[0])
        threshold = s1 * (1 + 1e-6)
        s = split_top(_t(R), _t(U), _t(V), threshold=threshold, delta=1e-9, rng=rng)
        assert s is None or (s.value <= threshold < s.upper and s.upper >= s1)


def test_split_needs_fewer_lanczos_steps_than_R_on_a_cluster_at_lam():
    # The top of R: 20 values within 1e-7 of lam on the spans; the rest 1e-3 below.
    rng = np.random.default_rng(3)
    R, U, V = _near_optimum(rng, 400, 300, 20, gap=1e-3, off=1e-8)
    s1 = float(np.linalg.svd(R, compute_uv=False)[0])
    threshold = s1 * (1 + 1e-6)
    split = split_top(_t(R), _t(U), _t(V), threshold=threshold, delta=1e-9, rng=np.random.default_rng(0))
    full = hd.sigma_max(R, method="probabilistic", threshold=threshold, rng=0)
    assert split.upper <= threshold and s1 <= split.upper
    assert full.upper <= threshold and s1 <= full.upper
    assert split.steps < 0.7 * full.steps, (split.steps, full.steps)


@pytest.fixture(scope="module")
def completion():
    rng = np.random.default_rng(4)
    Y, _ = hd.low_rank_matrix(90, 70, 3, noise=0.3, rng=rng)
    mask = hd.random_mask(Y.shape, 0.6, rng=rng)
    res = hd.grow(Y, 4.5, mask, rng=0, tol=1e-9)  # near-stationary: B, C ~ 1e-6
    assert res.certificate.is_global and 0 < res.size <= 70 // 4
    return Y, mask, res


def test_certify_takes_the_split_and_agrees_with_the_exact_certificate(completion):
    Y, mask, res = completion
    exact = hd.certify(Y, res.U, res.V, 4.5, mask, method="exact")
    prob = hd.certify(Y, res.U, res.V, 4.5, mask, method="probabilistic", rng=1)
    assert "split on the spans of U and V" in prob.basis
    assert exact.is_global and prob.is_global and prob.polar_kind == "probabilistic"
    assert prob.polar <= exact.polar * (1 + 1e-12) <= prob.polar_upper * (1 + 1e-12)


def test_certificates_near_the_optimum_never_claim_more_than_the_exact_one(completion, monkeypatch):
    # Perturbed points: the split certificate (where it decides) and the run on R alone make the
    # same claims up to their probabilities, and never prove where the exact bound cannot.
    Y, mask, res = completion
    rng = np.random.default_rng(6)
    U0, V0 = np.asarray(res.U), np.asarray(res.V)
    claims = []
    for i in range(16):
        eta = 10.0 ** rng.uniform(-9, -2)
        U = U0 + eta * rng.standard_normal(U0.shape)
        exact = hd.certify(Y, U, V0, 4.5, mask, method="exact")
        prob = hd.certify(Y, U, V0, 4.5, mask, method="probabilistic", rng=i)
        assert prob.polar <= exact.polar * (1 + 1e-12) <= prob.polar_upper * (1 + 1e-12)
        if exact.bound > exact.tol * exact.objective:
            assert not prob.is_global
        claims.append(prob.is_global)
    assert True in claims and (False in claims or None in claims)
    monkeypatch.setattr(certificates, "split_top", lambda *a, **k: None)  # the run on R alone
    full = hd.certify(Y, res.U, res.V, 4.5, mask, method="probabilistic", rng=1)
    assert full.is_global and "split" not in full.basis

