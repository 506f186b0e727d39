"""The Pilanci-Ergen oracle: exact pattern enumeration in 2-D, and a brute-force dense-grid check."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hdlcore as hd


@settings(max_examples=12)
@given(N=st.integers(1, 7), seed=st.integers(0, 10_000))
def test_2d_patterns_are_all_the_patterns(N, seed):
    """Brute force over all 2^N sign patterns: D is realizable iff some w has (2D - 1) A w > 0 (an LP)."""
    from scipy.optimize import linprog

    A = np.random.default_rng(seed).standard_normal((N, 2))
    D = hd.activation_patterns_2d(A)
    realizable = set()
    for code in range(1, 2**N):
        sign = np.array([1.0 if code >> n & 1 else -1.0 for n in range(N)])
        # maximize t subject to sign_n a_n^T w >= t, -1 <= w <= 1, t <= 1
        res = linprog([0, 0, -1], A_ub=np.column_stack([-sign[:, None] * A, np.ones(N)]), b_ub=np.zeros(N),
                      bounds=[(-1, 1), (-1, 1), (None, 1)])
        if res.status == 0 and -res.fun > 1e-9:
            realizable.add(tuple(sign > 0))
    assert {tuple(r) for r in D} == realizable
    assert len(D) <= 2 * N


def _grid_lasso(A, y, lam, n=3600):
    """Brute force: the network problem over a dense grid of unit neuron directions (a Lasso).

    With theta = ||u|| |alpha| and ||u|| = 1 the problem is a Lasso over the dictionary psi(A u_m).
    The grid holds n equispaced angles and the 2N angles where a sample switches on or off, so
    any neuron lies between two grid directions at most 2 pi / n apart on which psi(A .) is
    linear: it is a positive combination of them at a cost at most 1 / cos(pi / n) times
    larger. The grid value is therefore within that factor above the optimum (never below).
    """
    kinks = np.arctan2(A[:, 1], A[:, 0])
    t = np.concatenate([np.linspace(0, 2 * np.pi, n, endpoint=False), kinks + np.pi / 2, kinks - np.pi / 2])
    Dct = np.maximum(A @ np.stack([np.cos(t), np.sin(t)]), 0)  # (N, n)
    c = cp.Variable(len(t))
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Dct @ c - y) + lam * cp.norm1(c)))
    prob.solve(solver="CLARABEL")
    return prob.value, 1 / np.cos(np.pi / n)


@pytest.mark.parametrize("seed, N, lam", [(0, 5, 0.1), (1, 7, 0.5), (2, 4, 0.02)])
def test_oracle_against_brute_force_grid(seed, N, lam):
    rng = np.random.default_rng(seed)
    A, y = rng.standard_normal((N, 2)), rng.standard_normal(N)
    res = hd.convex_relu(A, y, lam)
    grid, factor = _grid_lasso(A, y, lam)
    assert res.exact
    assert res.objective <= grid * (1 + 1e-7)  # the grid is feasible for the network problem
    assert grid <= res.objective * factor * (1 + 1e-7)  # and within its resolution


def test_oracle_equals_fit_within_all_patterns():
    """Two independent solvers of the same convex program: cvxpy (Clarabel) and hdlcore's FISTA."""
    A, Y = hd.two_spirals(20, rng=4)
    lam = 0.4
    res = hd.convex_relu(A, Y, lam)
    D = hd.activation_patterns_2d(A)
    # one neuron of each sign in every pattern: a direction strictly inside each pattern's arc
    W = []
    t = np.linspace(0, 2 * np.pi, 20_000, endpoint=False)
    dirs = np.stack([np.cos(t), np.sin(t)], 1)
    pats = dirs @ A.T > 0
    for row in D:
        W.append(dirs[np.flatnonzero((pats == row).all(1))[0]])
    W = np.array(W)
    W1 = np.concatenate([W, W])[:, :, None] * 0.1
    W2 = np.concatenate([np.full(len(W), 0.1), np.full(len(W), -0.1)])[:, None, None]
    net = hd.ParallelSubnetworks.from_weights([W1, W2])
    fit = hd.fit_within_patterns(net, A, Y, lam)
    assert fit.converged and fit.gap <= 1e-10 * fit.objective
    assert abs(fit.objective - res.objective) <= 1e-7 * res.objective


def test_oracle_network_attains_the_objective():
    A, Y = hd.two_spirals(30, rng=3)
    lam = 0.3
    res = hd.convex_relu(A, Y, lam)
    X = np.maximum(A @ res.W1, 0) @ res.W2  # the network read off the solution
    np.testing.assert_allclose(X, res.X, atol=1e-6)
    value = 0.5 * np.sum((X - Y) ** 2) + lam * np.sum(np.linalg.norm(res.W1, axis=0) * np.abs(res.W2[:, 0]))
    assert np.isclose(value, res.objective, rtol=1e-6)
    # weight decay at the balanced scale: the same value (both degree 2)
    wd = 0.5 * np.sum((X - Y) ** 2) + lam / 2 * (np.sum(res.W1**2) + np.sum(res.W2**2))
    assert np.isclose(wd, res.objective, rtol=1e-6)


def test_higher_dimensions_sample_patterns_and_say_so():
    rng = np.random.default_rng(5)
    A, y = rng.standard_normal((10, 3)), rng.standard_normal(10)
    res = hd.convex_relu(A, y, 0.5, num_samples=500, rng=0)
    assert not res.exact and res.objective <= 0.5 * y @ y


def test_oracle_bad_input():
    A = np.ones((4, 2))
    with pytest.raises(ValueError, match="scalar targets"):
        hd.convex_relu(A, np.ones((4, 2)), 1.0)
    with pytest.raises(ValueError, match="'lam' parameter of convex_relu"):
        hd.convex_relu(A, np.ones(4), 0.0)
    with pytest.raises(ValueError, match="4 targets"):
        hd.convex_relu(A, np.ones(3), 1.0)
    with pytest.raises(ValueError, match="finite"):
        hd.convex_relu(A, np.array([1.0, np.nan, 0, 0]), 1.0)


def test_absurd_number_of_sampled_directions_is_refused():
    A, y = np.ones((5, 3)), np.ones(5)
    with pytest.raises(ValueError, match="'num_samples' parameter of convex_relu must be an int >= 1 and <="):
        hd.convex_relu(A, y, 0.5, num_samples=10**12)
