"""The convex problem on the factors' spans, and the split polar test of ``grow``'s large sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hdlcore as hd
from hdlcore.matrix import meta
from hdlcore.matrix.problem import prepare
from hdlcore.matrix.subspace import restricted_solve


def _problem(m=40, n=30, rank=4, observed=0.5, seed=0):
    Y, _ = hd.low_rank_matrix(m, n, rank, noise=0.3, rng=seed)
    mask = hd.random_mask((m, n), observed, rng=seed + 1)
    return Y, mask


def _objective(prob, U, V, lam):
    theta = torch.linalg.vector_norm(U, dim=0) * torch.linalg.vector_norm(V, dim=0)
    return prob.loss(prob.residual(U, V)) + lam * float(theta.sum())


def _factors(X, k):
    P, s, Qh = np.linalg.svd(X)
    return (torch.as_tensor(P[:, :k] * np.sqrt(s[:k])), torch.as_tensor(Qh[:k].T * np.sqrt(s[:k])))


def test_restricted_solve_matches_cvxpy_on_the_same_spans():
    cp = pytest.importorskip("cvxpy")  # an independent oracle, test dependency only
    Y, mask = _problem(seed=2)
    lam = 1.0
    prob, _ = prepare(Y, mask, lam, "test")
    gen = torch.Generator().manual_seed(0)
    U = torch.randn(40, 5, dtype=torch.float64, generator=gen)
    V = torch.randn(30, 5, dtype=torch.float64, generator=gen)
    Un, Vn, moved = restricted_solve(prob, U, V, lam, iterations=3000)
    assert moved
    Qu, Qv = np.linalg.qr(U.numpy())[0], np.linalg.qr(V.numpy())[0]
    S = cp.Variable((5, 5))
    X = Qu @ S @ Qv.T
    loss = 0.5 * cp.sum_squares(cp.multiply(mask.astype(float), Y - X))
    problem = cp.Problem(cp.Minimize(loss + lam * cp.normNuc(S)))
    problem.solve(solver=cp.SCS, eps=1e-10, max_iters=200000)
    assert _objective(prob, Un, Vn, lam) == pytest.approx(problem.value, rel=1e-6)
    # the solution lies on the spans it was given
    Xn = (Un @ Vn.T).numpy()
    assert np.allclose(Xn, Qu @ (Qu.T @ Xn @ Qv) @ Qv.T, atol=1e-8)


def test_restricted_solve_never_raises_the_objective_and_drops_surplus_columns():
    Y, mask = _problem(seed=5)
    lam = 2.0
    prob, _ = prepare(Y, mask, lam, "test")
    ref = hd.solve_convex(Y, lam, mask, tol=1e-8)
    k = int(np.sum(np.linalg.svd(ref.X, compute_uv=False) > 1e-6))
    U, V = _factors(ref.X, k)
    gen = torch.Generator().manual_seed(3)
    # three surplus columns, small and random: the optimum on the enlarged spans is the same X
    U = torch.cat([U, 1e-2 * torch.randn(40, 3, dtype=torch.float64, generator=gen)], 1)
    V = torch.cat([V, 1e-2 * torch.randn(30, 3, dtype=torch.float64, generator=gen)], 1)
    f0 = _objective(prob, U, V, lam)
    Un, Vn, moved = restricted_solve(prob, U, V, lam, iterations=2000)
    assert moved and _objective(prob, Un, Vn, lam) <= f0
    assert Un.shape[1] == k  # the surplus directions got value 0 (the prox's exact zeros)
    assert _objective(prob, Un, Vn, lam) == pytest.approx(ref.objective, rel=1e-8)
    # at its own solution nothing more is gained: returned unchanged
    U2, V2, moved2 = restricted_solve(prob, Un, Vn, lam, iterations=50)
    assert _objective(prob, U2, V2, lam) <= _objective(prob, Un, Vn, lam)
    if not moved2:
        assert U2 is Un and V2 is Vn


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_polar_bounds_sigma_1_and_is_tight_at_an_optimum(seed):
    Y, mask = _problem(60, 50, 4, 0.5, seed=seed)
    lam = 1.5
    prob, _ = prepare(Y, mask, lam, "test")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    # anywhere: the blocks' norms bound sigma_1(R) from above (D's Lanczos run is exact at this size)
    U = torch.randn(60, 6, dtype=torch.float64, generator=gen)
    V = torch.randn(50, 6, dtype=torch.float64, generator=gen)
    R = prob.residual(U, V)
    sp = meta._split_polar(R, U, V, lam, 1e-6, rng, None)
    exact = float(torch.linalg.svdvals(R)[0])
    assert sp.polar.value >= exact * (1 - 1e-9)
    assert sp.d <= exact * (1 + 1e-9) and sp.a <= exact * (1 + 1e-9)
    # at grow's certified optimum: A's values are lam, D's top is below it, and the bound is sharp
    res = hd.grow(Y, lam, mask, rng=0, tol=1e-9)
    U, V = torch.as_tensor(res.U), torch.as_tensor(res.V)
    R = prob.residual(U, V)
    sp = meta._split_polar(R, U, V, lam, 1e-6, rng, None)
    exact = float(torch.linalg.svdvals(R)[0])
    assert sp.a == pytest.approx(lam, rel=1e-6)
    assert sp.d < lam
    assert sp.polar.value == pytest.approx(exact, rel=1e-6)


@pytest.mark.parametrize("lam", [3.0, 1.0, 0.4])
def test_grow_with_split_tests_matches_the_convex_solver(monkeypatch, lam):
    # Split tests run where a full SVD is dear (above 1000 x 1000); forced here at 90 x 80.
    monkeypatch.setattr(meta, "EXACT_SIZE_LIMIT", 0)
    calls = []
    split = meta._split_polar
    monkeypatch.setattr(meta, "_split_polar", lambda *a: calls.append(1) or split(*a))
    Y, mask = _problem(90, 80, 5, 0.4, seed=8)
    res = hd.grow(Y, lam, mask, rng=0)
    assert calls  # the path under test was taken
    ref = hd.solve_convex(Y, lam, mask, tol=1e-7)
    assert res.certificate.is_global is True and res.converged
    assert res.objective == pytest.approx(ref.objective, rel=1e-6)
    assert res.size == int(np.sum(np.linalg.svd(ref.X, compute_uv=False) > 1e-6 * lam))


def test_grow_returns_factors_with_a_fixed_sign_convention():
    # singular vectors have arbitrary signs; grow's columns do not: u_i's largest entry is positive
    Y, mask = _problem(50, 40, 4, 0.5, seed=11)
    for data in (Y, -Y):
        res = hd.grow(data, 1.0, mask, rng=0)
        U = np.asarray(res.U)
        assert np.all(U[np.abs(U).argmax(0), np.arange(U.shape[1])] > 0)
    a, b = hd.grow(Y, 1.0, mask, rng=0), hd.grow(-Y, 1.0, mask, rng=0)
    assert np.allclose(np.asarray(a.U) @ np.asarray(a.V).T, -(np.asarray(b.U) @ np.asarray(b.V).T), atol=1e-6)
