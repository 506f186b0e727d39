"""Preconditioned L-BFGS, the final descent of ``grow`` with a mask: monotone, stationary, certified."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import hdlcore as hd
from hdlcore.matrix import quasi_newton
from hdlcore.matrix.problem import prepare


def _problem(m=30, n=24, rank=3, observed=0.5, seed=0):
    Y, _ = hd.low_rank_matrix(m, n, rank, noise=0.3, rng=seed)
    mask = hd.random_mask((m, n), observed, rng=seed + 1)
    return Y, mask


def _objective(Y, mask, U, V, lam):
    R = mask * (U @ V.T - Y)
    return 0.5 * np.sum(R**2) + 0.5 * lam * (np.sum(U**2) + np.sum(V**2))


def test_steps_decrease_the_objective_and_reach_a_stationary_point():
    Y, mask = _problem()
    lam, r = 1.0, 6
    prob, _ = prepare(Y, mask, lam, "test")
    gen = torch.Generator().manual_seed(0)
    U = 0.3 * torch.randn(30, r, dtype=torch.float64, generator=gen)
    V = 0.3 * torch.randn(24, r, dtype=torch.float64, generator=gen)
    objectives: list[float] = []
    U, V, converged, steps = quasi_newton.lbfgs(prob, U, V, lam, 1e-14, 5000, objectives, [],
                                                time.perf_counter())
    assert converged and steps == len(objectives)
    assert np.all(np.diff(objectives) <= 0)  # Armijo: every accepted step decreases f
    # the gradient, by autograd, vanishes to the relative accuracy asked for
    Ut, Vt = U.clone().requires_grad_(), V.clone().requires_grad_()
    Mt, Yt = torch.as_tensor(mask, dtype=torch.float64), torch.as_tensor(Y)
    f = 0.5 * ((Mt * (Ut @ Vt.T - Yt)) ** 2).sum() + 0.5 * lam * ((Ut**2).sum() + (Vt**2).sum())
    f.backward()
    g2 = float((Ut.grad**2).sum() + (Vt.grad**2).sum())
    scale = float((((Mt * Yt) @ V) ** 2).sum() + (((Mt * Yt).T @ U) ** 2).sum())
    assert g2 / scale < 1e-12
    assert objectives[-1] == pytest.approx(_objective(Y, mask, U.numpy(), V.numpy(), lam), rel=1e-12)


def test_the_memory_continues_only_from_the_point_it_returned():
    Y, mask = _problem(seed=3)
    prob, _ = prepare(Y, mask, 0.8, "test")
    gen = torch.Generator().manual_seed(1)
    U = torch.randn(30, 4, dtype=torch.float64, generator=gen)
    V = torch.randn(24, 4, dtype=torch.float64, generator=gen)
    memory = quasi_newton.Memory()
    U, V, _, steps = quasi_newton.lbfgs(prob, U, V, 0.8, 0.0, 5, [], [], 0.0, memory)
    assert steps == 5 and memory.at(U, V) and len(memory.pairs) > 0
    kept = len(memory.pairs)
    quasi_newton.lbfgs(prob, U, V, 0.8, 0.0, 3, [], [], 0.0, memory)
    assert len(memory.pairs) > kept or len(memory.pairs) == quasi_newton.MEMORY
    quasi_newton.lbfgs(prob, U.clone(), V, 0.8, 0.0, 1, [], [], 0.0, memory)  # another point: a fresh start
    assert len(memory.pairs) <= 1


@pytest.mark.parametrize("lam", [4.0, 1.5, 0.6])
def test_grow_with_the_quasi_newton_polish_matches_the_convex_solver(lam):
    # 60 x 50 with a mask: sizes above 16 use the conjugate-gradient ALS rows and the L-BFGS polish
    Y, mask = _problem(60, 50, 5, 0.4, seed=4)
    res = hd.grow(Y, lam, mask, rng=0)
    ref = hd.solve_convex(Y, lam, mask)
    assert res.certificate.is_global is True and res.converged
    assert res.objective == pytest.approx(ref.objective, rel=1e-6)
    assert res.objective >= res.certificate.lower


def test_grow_reaches_a_high_rank_optimum_with_the_polish():
    Y, mask = _problem(80, 70, 5, 0.5, seed=7)
    lam = 0.05 * float(np.linalg.norm(mask * Y, 2))  # low lam: an optimum of large rank
    res = hd.grow(Y, lam, mask, rng=0)
    assert res.certificate.is_global is True
    assert res.size > 30
    ref = hd.solve_convex(Y, lam, mask)
    assert res.objective == pytest.approx(ref.objective, rel=1e-6)
    assert res.size == int(np.sum(np.linalg.svd(ref.X, compute_uv=False) > 1e-6 * lam))
