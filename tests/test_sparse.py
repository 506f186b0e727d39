"""Sparse observed entries: the same results as a dense Y with a mask, without an m x n array.

Oracles: the dense path with ``mask`` (itself tested against singular value thresholding and an
independent convex solver). Every scipy format and torch layout is accepted; bad input is reported
with the library's error shape.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import hdlcore as hd
from hdlcore.matrix import sparse


def problem(m=30, n=20, rank=2, frac=0.4, noise=0.1, seed=0):
    """A completion problem: dense Y and mask, and the observed entries as coordinates."""
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n)) + noise * rng.standard_normal((m, n))
    mask = rng.random((m, n)) < frac
    i, j = np.nonzero(mask)
    return Y, mask, i, j


SCIPY = ["coo", "csr", "csc", "lil", "dok", "bsr"]
TORCH = ["torch_coo", "torch_csr", "torch_csc"]


def as_sparse(Y, i, j, kind):
    """The observed entries of ``Y`` in format ``kind`` (explicit zeros kept)."""
    if kind.startswith("torch"):
        t = torch.sparse_coo_tensor(np.vstack([i, j]), Y[i, j], Y.shape, check_invariants=True).coalesce()
        return {"torch_coo": t, "torch_csr": t.to_sparse_csr(), "torch_csc": t.to_sparse_csc()}[kind]
    coo = sp.coo_matrix((Y[i, j], (i, j)), shape=Y.shape)
    return coo if kind == "coo" else coo.asformat(kind)


@pytest.mark.parametrize("kind", SCIPY + TORCH)
def test_solve_factorized_als_is_the_dense_masked_run(kind):
    Y, mask, i, j = problem()
    if kind == "bsr":  # blocks store zeros too: only a fully observed matrix is a faithful BSR
        mask[:] = True
        i, j = np.nonzero(mask)
    dense = hd.solve_factorized(Y, 1.0, 3, mask, rng=1)
    res = hd.solve_factorized(as_sparse(Y, i, j, kind), 1.0, 3, rng=1)
    assert isinstance(res.U, torch.Tensor) == kind.startswith("torch")
    U = res.U.numpy() if kind.startswith("torch") else res.U
    assert res.n_iter == dense.n_iter
    np.testing.assert_allclose(U, dense.U, rtol=1e-9, atol=1e-11)
    assert res.objective == pytest.approx(dense.objective, rel=1e-12)
    assert res.certificate.polar == pytest.approx(dense.certificate.polar, rel=1e-10)


@pytest.mark.parametrize("norms", [("l2", "l2"), ("l1", "l2"), ("l2+", "l1")])
def test_solve_factorized_prox_is_the_dense_masked_run(norms):
    Y, mask, i, j = problem(seed=3)
    Ys = as_sparse(Y, i, j, "csr")
    dense = hd.solve_factorized(Y, 1.0, 3, mask, norms, method="prox", rng=1, max_iter=3000)
    res = hd.solve_factorized(Ys, 1.0, 3, None, norms, method="prox", rng=1, max_iter=3000)
    np.testing.assert_allclose(res.U, dense.U, rtol=1e-8, atol=1e-10)
    assert res.objective == pytest.approx(dense.objective, rel=1e-12)
    assert res.certificate.polar == pytest.approx(dense.certificate.polar, rel=1e-10)
    assert res.certificate.polar_kind == dense.certificate.polar_kind
    value = hd.factorized_objective(Ys, res.U, res.V, 1.0, None, norms)
    assert value == pytest.approx(hd.factorized_objective(Y, res.U, res.V, 1.0, mask, norms), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grow_reaches_the_dense_masked_optimum(seed):
    Y, mask, i, j = problem(seed=seed)
    dense = hd.grow(Y, 1.0, mask, rng=0)
    res = hd.grow(as_sparse(Y, i, j, "coo"), 1.0, rng=0)
    assert res.converged and res.certificate.is_global and dense.certificate.is_global
    assert res.objective == pytest.approx(dense.objective, rel=1e-8)
    np.testing.assert_allclose(res.X, dense.X, atol=1e-4 * np.abs(dense.X).max())


def test_certify_matches_dense_on_the_same_point():
    Y, mask, i, j = problem(seed=4)
    res = hd.solve_factorized(Y, 1.0, 2, mask, rng=0)
    Ys = as_sparse(Y, i, j, "csr")
    for method in ("exact", "krylov"):
        a = hd.certify(Y, res.U, res.V, 1.0, mask, method=method, rng=5)
        b = hd.certify(Ys, res.U, res.V, 1.0, method=method, rng=5)
        assert b.polar_kind == a.polar_kind
        for field in ("polar", "objective", "bound", "euler_gap"):
            assert getattr(b, field) == pytest.approx(getattr(a, field), rel=1e-9, abs=1e-9), field


def test_polar_and_sigma_max_of_a_sparse_matrix_are_those_of_its_dense_matrix():
    Y, mask, i, j = problem(seed=5)
    Z, Zs = np.where(mask, Y, 0.0), as_sparse(Y, i, j, "csc")
    s = np.linalg.svd(Z, compute_uv=False)[0]
    for method in ("exact", "krylov"):
        got = hd.sigma_max(Zs, method=method, rng=0)
        assert got.value == pytest.approx(s, rel=1e-10) and got.kind == method
        assert got.upper >= s
        P = hd.polar(Zs, method=method, rng=0)
        assert P.value == pytest.approx(s, rel=1e-10)
        assert float(P.u @ Z @ P.v) == pytest.approx(s, rel=1e-8)  # a maximizer
    # the pairs with an l1-type side: the best row or column, by reductions over the stored entries
    for norms in hd.NORM_PAIRS:
        if "l1" not in norms[0] and "l1" not in norms[1]:
            continue
        for sign in (1.0, -1.0):
            P, Q = hd.polar(sign * Zs, norms), hd.polar(sign * Z, norms)
            assert P.kind == Q.kind == "exact"
            assert P.value == pytest.approx(Q.value, rel=1e-12), norms
            assert float(P.u @ (sign * Z) @ P.v) == pytest.approx(Q.value, rel=1e-12), norms
            np.testing.assert_allclose(hd.norm_pair(norms).theta(P.u[:, None], P.v[:, None]), 1.0)


def test_exact_top_singular_value_of_a_thin_sparse_matrix_by_its_gram(monkeypatch):
    monkeypatch.setattr(sparse, "DENSE_LIMIT", 10)  # force the Gram route on a small matrix
    rng = np.random.default_rng(0)
    A = sp.random(300, 7, density=0.3, random_state=1, format="csr")
    A.data = rng.standard_normal(A.nnz)
    got = hd.sigma_max(A, method="exact")
    s = np.linalg.svd(A.toarray(), compute_uv=False)[0]
    assert got.kind == "exact" and got.value == pytest.approx(s, rel=1e-12)
    assert float(got.u @ (A @ got.v)) == pytest.approx(s, rel=1e-10)
    monkeypatch.setattr(sparse, "GRAM_LIMIT", 5)
    with pytest.raises(ValueError, match="method='probabilistic'"):
        hd.sigma_max(A, method="exact")


def test_an_explicit_zero_is_an_observed_zero():
    Y, mask, i, j = problem(seed=6)
    Y[i[0], j[0]] = 0.0
    Ys = sp.coo_matrix((Y[i, j], (i, j)), shape=Y.shape)  # entry (i0, j0) stored as 0.0
    assert Ys.nnz == i.size
    a = hd.solve_factorized(Ys, 1.0, 2, rng=0)
    b = hd.solve_factorized(Y, 1.0, 2, mask, rng=0)
    mask[i[0], j[0]] = False
    c = hd.solve_factorized(Y, 1.0, 2, mask, rng=0)
    assert a.objective == pytest.approx(b.objective, rel=1e-12)
    assert abs(a.objective - c.objective) > 1e-6 * abs(c.objective)


def test_float32_in_float32_out():
    Y, mask, i, j = problem(seed=7)
    Ys = as_sparse(Y.astype(np.float32), i, j, "csr")
    res = hd.grow(Ys, 1.0, rng=0)
    assert res.U.dtype == np.float32 and res.certificate.is_global


def test_torch_sparse_input_gives_tensors_and_entries():
    Y, mask, i, j = problem(seed=8)
    res = hd.grow(as_sparse(Y, i, j, "torch_csr"), 1.0, rng=0)
    assert isinstance(res.U, torch.Tensor) and isinstance(res.X, torch.Tensor)
    rows, cols = torch.as_tensor(i), torch.as_tensor(j)
    torch.testing.assert_close(res.entries(rows, cols), res.X[rows, cols])


@pytest.mark.parametrize("case, name, message", [
    ("mask", "mask", "must be None when Y is sparse"),
    ("duplicate_scipy", "Y", "without duplicate coordinates (entry (0, 0) is stored 2 times"),
    ("duplicate_torch", "Y", "without duplicate coordinates (entry (0, 0) is stored 2 times"),
    ("nan", "Y", "must be finite"),
    ("empty", "Y", "at least one stored (observed) entry"),
    ("complex", "Y", "must be a real sparse matrix"),
    ("lam", "lam", "must be a float > 0"),
])
def test_bad_sparse_input_is_reported_by_name(case, name, message):
    Y = sp.coo_matrix((np.array([1.0, 2.0]), (np.array([0, 1]), np.array([0, 1]))), shape=(3, 3))
    lam, mask = 1.0, None
    if case == "mask":
        mask = np.ones((3, 3), bool)
    elif case == "duplicate_scipy":
        Y = sp.coo_matrix((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([0, 0]))), shape=(3, 3))
    elif case == "duplicate_torch":  # an uncoalesced COO tensor
        Y = torch.sparse_coo_tensor([[0, 0], [0, 0]], [1.0, 2.0], (3, 3), check_invariants=False)
    elif case == "nan":
        Y.data[1] = np.nan
    elif case == "empty":
        Y = sp.csr_matrix((3, 3))
    elif case == "complex":
        Y = Y.astype(complex)
    elif case == "lam":
        lam = -1.0
    for func, call in (("grow", lambda: hd.grow(Y, lam, mask)),
                       ("solve_factorized", lambda: hd.solve_factorized(Y, lam, 2, mask)),
                       ("certify", lambda: hd.certify(Y, np.zeros((3, 1)), np.zeros((3, 1)), lam, mask))):
        with pytest.raises((ValueError, TypeError)) as err:
            call()
        assert f"The '{name}' parameter of {func} must" in str(err.value) and message in str(err.value)


def test_solve_convex_refuses_sparse_data_and_points_to_grow():
    Y, mask, i, j = problem()
    with pytest.raises(TypeError, match="'Y' parameter of solve_convex must be a dense array .* use grow"):
        hd.solve_convex(as_sparse(Y, i, j, "csr"), 1.0)


def test_x_of_a_large_sparse_problem_is_refused_with_a_way_to_get_entries(monkeypatch):
    monkeypatch.setattr(sparse.SparseProblem, "x_max_entries", 100)
    Y, mask, i, j = problem(seed=9)
    res = hd.solve_factorized(as_sparse(Y, i, j, "csr"), 1.0, 2, rng=0)
    with pytest.raises(ValueError, match=r"result\.entries\(rows, cols\)"):
        res.X  # noqa: B018
    np.testing.assert_allclose(res.entries(i, j), (res.U @ res.V.T)[i, j])


@pytest.mark.cuda
def test_cuda_sparse_tensors_give_the_cpu_result():
    Y, mask, i, j = problem(seed=10)
    t = as_sparse(Y, i, j, "torch_csr")
    for run in (lambda A: hd.grow(A, 1.0, rng=0), lambda A: hd.solve_factorized(A, 1.0, 3, rng=1)):
        cpu, gpu = run(t), run(t.to("cuda"))
        assert gpu.U.device.type == "cuda" and gpu.certificate.is_global == cpu.certificate.is_global
        assert gpu.objective == pytest.approx(cpu.objective, rel=1e-9)
        torch.testing.assert_close(gpu.X.cpu(), cpu.X, atol=1e-5 * float(cpu.X.abs().max()), rtol=0)
    c = hd.certify(t.to("cuda"), gpu.U, gpu.V, 1.0, method="krylov", rng=0)
    assert c.polar == pytest.approx(gpu.certificate.polar, rel=1e-8)


@pytest.mark.slow
def test_a_huge_sparse_problem_never_forms_a_dense_array():
    """200000 x 20000 (4e9 entries, 32 GB dense) at 0.01 % observed: grow certifies it in a
    process whose peak memory stays far below one dense array."""
    code = textwrap.dedent("""
        import resource, numpy as np, scipy.sparse as sp, hdlcore as hd
        m, n, k = 200000, 20000, 400000
        rng = np.random.default_rng(0)
        lin = np.unique(rng.integers(0, m * n, k))
        i, j = lin // n, lin % n
        u, v = rng.standard_normal(m), rng.standard_normal(n)
        Y = sp.coo_matrix((3 * u[i] * v[j] + 0.01 * rng.standard_normal(lin.size), (i, j)), shape=(m, n))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        res = hd.solve_factorized(Y, 1.0, 1, rng=0, max_iter=5, certify=False)
        cert = hd.certify(Y, res.U, res.V, 1.0, method="krylov", rng=0)
        try:
            res.X
            raise SystemExit("X was formed")
        except ValueError:
            pass
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((peak - before) / 1024, cert.polar_kind, res.U.shape)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    extra_mb, kind, _ = out.stdout.split(maxsplit=2)
    assert kind == "krylov"
    assert float(extra_mb) < 400  # MB: O(nnz + (m + n) r); one dense 200000 x 20000 array is 32000 MB


def test_grow_takes_block_steps_on_sparse_data_at_moderate_rank():
    # An optimum of rank about 80 from 30 % of a 300 x 250 matrix: block growth (directions by
    # block Krylov on the sparse residual, line searches on the observed entries), L-BFGS and the
    # restricted solve, as on dense data; one column per step needed 116 polar tests and 20 s.
    Y, _ = hd.low_rank_matrix(300, 250, 5, noise=0.5, rng=0)
    mask = hd.random_mask(Y.shape, 0.3, rng=1)
    i, j = np.nonzero(mask)
    dense = hd.grow(Y, 3.0, mask, rng=0)
    res = hd.grow(as_sparse(Y, i, j, "csr"), 3.0, rng=0)
    assert res.certificate.is_global is True and dense.certificate.is_global is True
    assert res.size > 60
    assert res.objective == pytest.approx(dense.objective, rel=2e-6)
    assert len(res.history["size"]) < 30
    assert res.size == np.linalg.matrix_rank(res.X, tol=1e-8 * np.abs(res.X).max())  # no zero columns
    sweeps = res.history["sweep_objective"]
    assert np.all(np.diff(sweeps) <= 1e-12 * sweeps[0])


def test_sampled_products_and_lbfgs_match_the_dense_masked_ones():
    from hdlcore.matrix import quasi_newton
    from hdlcore.matrix.problem import prepare

    Y, mask, i, j = problem(m=40, n=30, rank=3, seed=7)
    dense, _ = prepare(Y, mask, 1.0, "test")
    sparse_prob, _ = sparse.prepare(as_sparse(Y, i, j, "csr"), None, 1.0, "test")
    rng = np.random.default_rng(1)
    A, B = torch.from_numpy(rng.standard_normal((40, 4))), torch.from_numpy(rng.standard_normal((30, 4)))
    assert sparse_prob.sampled_sq(A, B) == pytest.approx(dense.sampled_sq(A, B), rel=1e-12)
    Z = sparse_prob.residual_of_zero(A, B)
    np.testing.assert_allclose((Z @ B).numpy(), -(mask * (A @ B.T).numpy()) @ B.numpy(), atol=1e-10)
    np.testing.assert_allclose((Z.T @ A).numpy(), -(mask * (A @ B.T).numpy()).T @ A.numpy(), atol=1e-10)
    out = [quasi_newton.lbfgs(p, A, B, 1.0, 1e-14, 15, objs, [], 0.0) for p, objs in
           ((dense, []), (sparse_prob, []))]
    np.testing.assert_allclose(out[0][0].numpy(), out[1][0].numpy(), atol=1e-8)
    np.testing.assert_allclose(out[0][1].numpy(), out[1][1].numpy(), atol=1e-8)
