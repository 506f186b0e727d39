"""Observed entries as a sparse matrix: completion without an m x n array (Chapter 3, at scale).

A sparse ``Y`` (a ``scipy.sparse`` matrix or array in any format, or a torch sparse COO, CSR or
CSC tensor, on the CPU or a GPU) lists the observations: its stored entries are the observed
ones, an explicit zero included, and every other entry is unobserved. The loss is the one of a
mask,

.. math:: \\ell(UV^\\top) = \\tfrac12 \\sum_{(i, j)\\in\\Omega} \\big(Y_{ij} - u_i^\\top v_j\\big)^2 ,

and everything the solvers need is computed on the stored entries only: the residual values
:math:`R_{ij} = Y_{ij} - u_i^\\top v_j` on :math:`\\Omega` (a sampled product), the products
:math:`Rx` and :math:`R^\\top y` (what Lanczos needs), and the per-row ridge systems
:math:`(\\sum_{j\\in\\Omega_i} v_j v_j^\\top + \\lambda I)\\, u_i = \\sum_{j\\in\\Omega_i} Y_{ij} v_j` of
alternating least squares. Memory is O(nnz + (m + n) r), plus the r x r systems of one block of
rows at a time and the k (m + n) numbers of a k-step Lanczos run of a certificate; no m x n array
is formed (except on request for a small matrix, see ``DENSE_LIMIT``).

:class:`SparseMatrix` is a matrix on the observed pattern, seen by rows (for ``R @ x``) and by
columns (for ``R.T @ y``); :class:`SparseProblem` is the sparse counterpart of the dense
``Problem`` (hdlcore.matrix.problem) that every solver takes. The same classes serve
torch.distributed (:mod:`hdlcore.matrix.distributed`): there each process holds the entries of a
block of rows and of a block of columns, and the ``gather`` and ``sum`` of its communicator are
collectives. Used by :func:`hdlcore.grow`, :func:`hdlcore.solve_factorized`,
:func:`hdlcore.certify`, :func:`hdlcore.polar` and :func:`hdlcore.sigma_max` when ``Y`` is sparse.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .._backend import is_tensor, to_numpy
from .._validation import check_scalar, param_error

__all__ = ["is_sparse", "SparseMatrix", "SparseProblem", "DENSE_LIMIT", "GRAM_LIMIT", "X_LIMIT"]

#: A sparse matrix is turned into a dense one (for an exact SVD) only up to this many entries.
DENSE_LIMIT = 2**22
#: Above DENSE_LIMIT, an exact top singular value uses the Gram matrix of the smaller side up to this size.
GRAM_LIMIT = 256
#: Results of sparse problems expose ``X = U V^T`` up to this many entries (``entries`` otherwise).
X_LIMIT = 2**24
#: Rows per block of the ridge systems: ``block * r * r`` numbers at a time.
_BLOCK_NUMBERS = 2**22


def is_sparse(A: Any) -> bool:
    """True for a ``scipy.sparse`` matrix or array, or a torch sparse tensor."""
    if type(A).__module__.startswith("scipy.sparse"):
        return True
    return is_tensor(A) and str(A.layout) != "torch.strided"


def _real_dtype(dtype, name, func, value):
    """The float dtype a sparse input computes in (ints and bools become float64, halves float32)."""
    import torch

    if isinstance(dtype, torch.dtype):
        if dtype.is_complex:
            raise param_error(name, func, "a real sparse matrix", value, TypeError)
        if dtype in (torch.float16, torch.bfloat16):
            return torch.float32
        return dtype if dtype.is_floating_point else torch.float64
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise param_error(name, func, "a real sparse matrix", value, TypeError)
    if dtype.kind not in "biuf":
        raise param_error(name, func, "a real sparse matrix", value, TypeError)
    return torch.float32 if dtype in (np.float16, np.float32) else torch.float64


def coordinates(Y: Any, name: str, func: str, *, check_duplicates: bool = True, allow_empty: bool = False):
    """Validate a sparse matrix; return ``rows, cols, values, shape, back`` (tensors, int64 indices).

    Any scipy format (duplicates kept, so that they can be reported) or a torch COO/CSR/CSC tensor
    (an uncoalesced COO tensor keeps its duplicates too). ``back`` maps result tensors to the
    caller's array type: numpy for scipy input, tensors (on the input's device) otherwise.
    """
    import torch

    if is_tensor(Y):
        if Y.ndim != 2 or Y.dense_dim() != 0:
            raise param_error(name, func, "a 2-D sparse matrix", Y)
        dtype = _real_dtype(Y.dtype, name, func, Y)
        m, n = (int(s) for s in Y.shape)
        dev = Y.device
        if Y.layout == torch.sparse_coo:
            idx = Y._indices()
            rows, cols, vals = idx[0], idx[1], Y._values()
        elif Y.layout == torch.sparse_csr:
            counts = Y.crow_indices().diff()
            rows = torch.repeat_interleave(torch.arange(m, device=dev), counts)
            cols, vals = Y.col_indices(), Y.values()
        elif Y.layout == torch.sparse_csc:
            counts = Y.ccol_indices().diff()
            cols = torch.repeat_interleave(torch.arange(n, device=dev), counts)
            rows, vals = Y.row_indices(), Y.values()
        else:
            raise param_error(name, func, "a scipy.sparse matrix or a torch sparse COO, CSR or CSC "
                              "tensor", Y, TypeError)
        back = _identity
    else:
        if getattr(Y, "ndim", 2) != 2:
            raise param_error(name, func, "a 2-D sparse matrix", Y)
        dtype = _real_dtype(Y.dtype, name, func, Y)
        coo = Y.tocoo()  # any format; duplicates are kept
        m, n = (int(s) for s in coo.shape)
        rows = torch.from_numpy(np.asarray(coo.row, dtype=np.int64))
        cols = torch.from_numpy(np.asarray(coo.col, dtype=np.int64))
        vals = torch.from_numpy(np.asarray(coo.data))
        back = to_numpy
    rows, cols = rows.to(torch.int64), cols.to(torch.int64)
    vals = vals.to(dtype)
    if vals.numel() == 0 and not allow_empty:
        raise param_error(name, func, "a sparse matrix with at least one stored (observed) entry", Y)
    if not bool(torch.isfinite(vals).all()):
        raise param_error(name, func, "finite (no NaN or inf among the stored entries)", Y)
    if check_duplicates:
        duplicates(rows, cols, (m, n), name, func, Y)
    return rows, cols, vals, (m, n), back


def duplicates(rows, cols, shape, name, func, value, *, lin=None) -> Any:
    """Raise if a coordinate is stored twice; return the row-major order of the entries."""
    import torch

    lin = rows * shape[1] + cols if lin is None else lin
    key, order = torch.sort(lin, stable=True)
    same = key[1:] == key[:-1]
    if bool(same.any()):
        k = int(key[1:][same][0])
        count = int((key == k).sum())
        raise param_error(name, func, f"a sparse matrix without duplicate coordinates (entry "
                          f"({k // shape[1]}, {k % shape[1]}) is stored {count} times; an observed entry "
                          f"is stored once: add duplicates up first, e.g. Y.sum_duplicates() or "
                          f"Y.coalesce(), if that is what they mean)", value)
    return order


def _identity(t):
    return t


# -- the pattern: rows and columns of the stored entries --------------------------------------
class View:
    """The stored entries of a block of rows ``[start, stop)`` in CSR form (the columns of the
    transposed matrix for a column view): ``crow`` (k + 1,) and ``idx`` (nnz,) int64 tensors.

    ``bounds`` lists the first row of every process's block and the number of rows (P + 1
    numbers; ``(0, m)`` on one process).
    """

    def __init__(self, crow, idx, bounds, rank: int, width: int):
        self.crow, self.idx = crow, idx
        self.bounds, self.rank, self.width = tuple(int(b) for b in bounds), rank, int(width)
        self._scipy = None

    @property
    def start(self) -> int:
        return self.bounds[self.rank]

    @property
    def stop(self) -> int:
        return self.bounds[self.rank + 1]

    @property
    def nnz(self) -> int:
        return int(self.idx.numel())

    def ones(self, dtype):
        """Ones on the stored entries (kept: the Gram matrices need them every half-sweep)."""
        import torch

        if getattr(self, "_ones", None) is None or self._ones.dtype != dtype:
            self._ones = torch.ones(self.nnz, dtype=dtype, device=self.idx.device)
        return self._ones

    def local_rows(self):
        """Local row index (0 .. k - 1) of each stored entry."""
        import torch

        k = self.stop - self.start
        return torch.repeat_interleave(torch.arange(k, device=self.idx.device), self.crow.diff())

    def csr(self, vals, lo: int = 0, hi: int | None = None):
        """Rows ``lo:hi`` of the block with values ``vals`` as a torch CSR tensor."""
        import torch

        hi = self.stop - self.start if hi is None else hi
        a, b = int(self.crow[lo]), int(self.crow[hi])
        with warnings.catch_warnings():  # "sparse CSR support is in beta": what is used here is tested
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(self.crow[lo: hi + 1] - a, self.idx[a:b], vals[a:b],
                                           (hi - lo, self.width), check_invariants=False)

    def matmul(self, vals, X, lo: int = 0, hi: int | None = None):
        """``A[lo:hi] @ X`` for the block's matrix ``A`` with values ``vals``: (k, width) @ (width[, c])."""
        import torch

        if X.device.type == "cpu":  # scipy's CSR product: several times faster than torch's on CPUs
            import scipy.sparse as sp

            if self._scipy is None:
                self._scipy = sp.csr_matrix((vals.numpy(), self.idx.numpy(), self.crow.numpy()),
                                            shape=(self.stop - self.start, self.width))
            A = self._scipy
            A.data = vals.numpy()
            if lo != 0 or (hi is not None and hi != A.shape[0]):
                A = A[lo:hi]
            return torch.from_numpy(np.asarray(A @ X.numpy()))
        return self.csr(vals, lo, hi) @ X.contiguous()

    def sampled(self, vals, A, B):
        """``vals - <a_i, b_j>`` on the stored entries: ``A`` (k, r) the block's rows, ``B`` (width, r)."""
        import torch

        if A.shape[1] == 0:
            return vals.clone()
        # (k, r) @ (r, width) sampled on the pattern -> (nnz,): never an m x n array
        return torch.sparse.sampled_addmm(self.csr(vals), A, B.T, beta=1.0, alpha=-1.0).values()


class Local:
    """The communicator of one process: blocks are whole, sums are local."""

    rank, size = 0, 1

    def gather(self, block, bounds):
        return block

    def sum(self, t):
        return t


class Pattern:
    """The observed set, by rows and by columns. On one process ``perm`` maps row-major
    positions to column-major ones (the column view holds the same entries)."""

    def __init__(self, rows: View, cols: View, shape, comm, perm=None):
        self.rows, self.cols, self.shape, self.comm, self.perm = rows, cols, tuple(shape), comm, perm

    @classmethod
    def single(cls, rows, cols, shape, order=None):
        """One process: ``rows``, ``cols`` already in row-major order (``order`` sorts them if given)."""
        import torch

        m, n = shape
        if order is not None:
            rows, cols = rows[order], cols[order]
        crow = torch.zeros(m + 1, dtype=torch.int64, device=rows.device)
        crow[1:] = torch.cumsum(torch.bincount(rows, minlength=m), 0)
        perm = torch.sort(cols * m + rows, stable=True)[1]  # row-major position of column-major entry k
        ccol = torch.zeros(n + 1, dtype=torch.int64, device=rows.device)
        ccol[1:] = torch.cumsum(torch.bincount(cols, minlength=n), 0)
        return cls(View(crow, cols, (0, m), 0, n), View(ccol, rows[perm], (0, n), 0, m), shape, Local(),
                   perm)

    @property
    def T(self) -> Pattern:
        return Pattern(self.cols, self.rows, self.shape[::-1], self.comm, None if self.perm is None
                       else _Inverse(self.perm))


class _Inverse:
    """The inverse of a permutation, computed when first used."""

    def __init__(self, perm):
        self.perm, self._inv = perm, None

    def __call__(self):
        import torch

        if self._inv is None:
            self._inv = torch.empty_like(self.perm)
            self._inv[self.perm] = torch.arange(self.perm.numel(), device=self.perm.device)
        return self._inv


def _permute(perm, vals):
    import torch

    return torch.index_select(vals, 0, perm() if callable(perm) else perm)


class SparseMatrix:
    """A matrix whose stored entries are the observed ones: ``vals`` in the row view's order and
    ``cvals`` in the column view's (computed when first needed: a permutation on one process, a
    function of the column block in a distributed run).

    Supports what the solvers use: ``A @ X`` (``X`` dense, (n,) or (n, c); the result is dense
    and whole on every process), ``A.T``, ``shape``, ``dtype``, ``device``, :meth:`sq_sum`,
    :meth:`dot`, :meth:`to_dense` (small matrices only) and :meth:`exact_top`; the Lanczos runs of
    :mod:`hdlcore.matrix.spectral` take it as an operator.
    """

    ndim = 2

    def __init__(self, pattern: Pattern, vals, cvals=None):
        self.pattern, self.vals, self._cvals = pattern, vals, cvals

    @property
    def cvals(self):
        if self._cvals is None:
            self._cvals = _permute(self.pattern.perm, self.vals)
        elif callable(self._cvals):
            self._cvals = self._cvals()
        return self._cvals

    @property
    def shape(self) -> tuple[int, int]:
        return self.pattern.shape

    @property
    def dtype(self):
        return self.vals.dtype

    @property
    def device(self):
        return self.vals.device

    @property
    def nnz(self) -> int:
        """Stored entries, on all processes together."""
        return int(self.pattern.comm.sum(self.vals.new_tensor([float(self.vals.numel())]))[0])

    @property
    def T(self) -> SparseMatrix:
        return SparseMatrix(self.pattern.T, self.cvals, self.vals)

    def with_values(self, vals, cvals=None) -> SparseMatrix:
        return SparseMatrix(self.pattern, vals, cvals)

    def to(self, dtype) -> SparseMatrix:
        c = self._cvals
        c = c.to(dtype) if c is not None and not callable(c) else None
        return SparseMatrix(self.pattern, self.vals.to(dtype), c)

    def __matmul__(self, X):
        """``A @ X`` for a dense ``X`` of shape (n,) or (n, c)."""
        p = self.pattern
        local = p.rows.matmul(self.vals, X)  # (k, n) @ (n[, c]) -> (k[, c]), this process's rows
        return p.comm.gather(local.to(X.dtype), p.rows.bounds)

    def sq_sum(self) -> float:
        """:math:`\\sum_{(i,j)\\in\\Omega} A_{ij}^2` in float64."""
        import torch

        s = torch.linalg.vector_norm(self.vals, dtype=torch.float64).square().reshape(1)
        return float(self.pattern.comm.sum(s)[0])

    def dot(self, other: SparseMatrix) -> float:
        """:math:`\\sum_{(i,j)\\in\\Omega} A_{ij} B_{ij}` for two matrices on the same pattern (float64)."""
        import torch

        s = torch.sum(self.vals.to(torch.float64) * other.vals.to(torch.float64)).reshape(1)
        return float(self.pattern.comm.sum(s)[0])

    def to_dense(self):
        """The dense (m, n) tensor, zeros off the pattern: only up to ``DENSE_LIMIT`` entries."""
        import torch

        m, n = self.shape
        if m * n > DENSE_LIMIT:
            raise ValueError(f"A {m} x {n} sparse matrix is not made dense (more than {DENSE_LIMIT} "
                             f"entries): its singular values need method='probabilistic' (or 'auto'); "
                             f"the polars of pairs with an l2+ side against an l2-type side need it dense.")
        p = self.pattern
        D = torch.zeros(m, n, dtype=self.dtype, device=self.device)
        r = p.rows.local_rows() + p.rows.start
        D[r, p.rows.idx] = self.vals
        return p.comm.sum(D)

    def best_line(self, p: int, nonneg: bool, both_signs: bool, rows: bool = True):
        """The row (``rows``) or column maximizing the support function of the unit ball of an
        l``p`` norm (at the line's positive part if ``nonneg``; the better of the line and its
        negative if ``both_signs``), and that line as a dense vector: ``(i, line)``. The polar of a
        norm pair with an l1-type side is this support at the best line (unstored entries are 0)."""
        import torch

        A = self if rows else self.T
        view, comm = A.pattern.rows, A.pattern.comm
        k = view.stop - view.start
        local = view.local_rows()

        def support(x):
            x = (x.clamp_min(0) if nonneg else x.abs()).to(torch.float64)
            out = torch.zeros(k, dtype=torch.float64, device=x.device)
            if p == 2:
                return out.index_add_(0, local, x * x).sqrt()
            return out.scatter_reduce_(0, local, x, "amax", include_self=True)

        vals = support(A.vals)
        if both_signs and nonneg:
            vals = torch.maximum(vals, support(-A.vals))
        i = int(comm.gather(vals, view.bounds).argmax())
        line = torch.zeros(A.shape[1], dtype=self.dtype, device=self.device)
        if view.start <= i < view.stop:
            lo, hi = int(view.crow[i - view.start]), int(view.crow[i - view.start + 1])
            line[view.idx[lo:hi]] = A.vals[lo:hi]
        return i, comm.sum(line)

    def fro_upper(self) -> float:
        """A proven upper bound on :math:`\\sigma_1`: the Frobenius norm, rounding included."""
        import torch

        m, n = self.shape
        eps = float(torch.finfo(self.dtype).eps)
        return math.sqrt(self.sq_sum()) * (1 + 2 * (m + n) * eps)

    def exact_top(self) -> tuple:
        """The top singular triplet, exactly: ``(value, u, v, "exact", upper, 0.0, 0, True)`` (the
        fields of :class:`hdlcore.matrix.spectral.SigmaMax`).

        A full SVD of the dense matrix up to ``DENSE_LIMIT`` entries, else the
        eigendecomposition of the Gram matrix of the smaller side when it has at most
        :data:`GRAM_LIMIT` columns (both proofs up to the rounding allowance
        ``max(m, n) * eps * sigma_1``); a clear error otherwise. The probabilistic and krylov Lanczos runs of
        :mod:`hdlcore.matrix.spectral` take this matrix as an operator (``A @ x``, ``A.T @ y``).
        """
        import torch

        m, n = self.shape
        eps = float(torch.finfo(self.dtype).eps)
        if m * n <= DENSE_LIMIT:
            P, S, Qh = torch.linalg.svd(self.to_dense(), full_matrices=False)
            value, u, v = float(S[0]), P[:, 0], Qh[0]
        elif min(m, n) <= GRAM_LIMIT:
            A = self if n <= m else self.T  # (big, k), k = min(m, n)
            k = A.shape[1]
            G = torch.empty(k, k, dtype=torch.float64, device=self.device)
            for lo in range(0, k, 32):  # G = A^T A by blocks of 32 columns: O(big * 32) memory
                E = torch.zeros(k, min(32, k - lo), dtype=self.dtype, device=self.device)
                E[torch.arange(lo, lo + E.shape[1]), torch.arange(E.shape[1])] = 1
                G[:, lo: lo + E.shape[1]] = (A.T @ (A @ E)).to(torch.float64)
            w, Q = torch.linalg.eigh((G + G.T) / 2)
            value = float(w[-1].clamp_min(0)) ** 0.5
            x = Q[:, -1].to(self.dtype)
            y = A @ x
            y = y / max(float(torch.linalg.vector_norm(y)), 1e-300)
            u, v = (y, x) if n <= m else (x, y)
        else:
            raise ValueError(f"The exact top singular value of a {m} x {n} sparse matrix needs a dense "
                             f"matrix of more than {DENSE_LIMIT} entries or a Gram matrix larger than "
                             f"{GRAM_LIMIT} x {GRAM_LIMIT}: use method='probabilistic' (or 'auto').")
        return (value, u, v, "exact", value * (1 + max(m, n) * eps), 0.0, 0, True)


# -- the problem ---------------------------------------------------------------------------------
class SparseProblem:
    """Validated sparse data: the sparse counterpart of ``Problem`` (hdlcore.matrix.problem).

    ``Y`` is a :class:`SparseMatrix` (its pattern is the observed set ``M``); ``Mf`` is the same
    pattern with ones (so ``Mf @ x`` sums over the observed entries of each row).
    """

    x_max_entries = X_LIMIT

    def __init__(self, Y: SparseMatrix, back):
        self.Y, self.back = Y, back
        self.M = Y.pattern  # not None: never the full-data formulas
        self._ones = None

    @property
    def Mf(self) -> SparseMatrix:
        import torch

        if self._ones is None:
            self._ones = self.Y.with_values(torch.ones_like(self.Y.vals),
                                            lambda: torch.ones_like(self.Y.cvals))
        return self._ones

    @property
    def shape(self):
        return self.Y.shape

    @property
    def comm(self):
        return self.Y.pattern.comm

    def agree(self, func: str, rng, **options):
        """Nothing to agree on in one process (see :mod:`hdlcore.matrix.distributed`)."""
        return rng

    def astype(self, dtype) -> SparseProblem:
        return SparseProblem(self.Y.to(dtype), self.back)

    def transposed(self) -> SparseProblem:
        """The problem seen from ``V``: ``Y^T``."""
        return SparseProblem(self.Y.T, self.back)

    def y_norm(self) -> float:
        return math.sqrt(self.Y.sq_sum())

    def residual(self, U, V) -> SparseMatrix:
        """:math:`R = M\\odot(Y - UV^\\top)` on the stored entries."""
        return self._minus(self.Y, U, V)

    def residual_of_zero(self, A, B) -> SparseMatrix:
        """:math:`-M\\odot(AB^\\top)` on the stored entries (the residual of data 0; no m x n array)."""
        import torch

        Y = self.Y
        return self._minus(Y.with_values(torch.zeros_like(Y.vals), lambda: torch.zeros_like(Y.cvals)), A, B)

    @staticmethod
    def _minus(base: SparseMatrix, A, B) -> SparseMatrix:
        """``base - M * (A B^T)`` on the stored entries, in the row view (the column view when first
        needed)."""
        p = base.pattern
        rv, cv = p.rows, p.cols
        vals = rv.sampled(base.vals, A[rv.start: rv.stop], B)  # (nnz,)
        if p.perm is not None:
            return base.with_values(vals)
        return base.with_values(vals, lambda: cv.sampled(base.cvals, B[cv.start: cv.stop], A))

    def sampled_sq(self, A, B) -> float:
        """:math:`\\sum_\\Omega (AB^\\top)_{ij}^2` for ``A`` (m, k), ``B`` (n, k): never an m x n array."""
        return self.residual_of_zero(A, B).sq_sum()

    def loss(self, R) -> float:
        """:math:`\\tfrac12\\sum_\\Omega R_{ij}^2` (float64)."""
        return 0.5 * R.sq_sum()

    def inner(self, R) -> float:
        """:math:`\\langle R, M\\odot Y\\rangle` (float64)."""
        return R.dot(self.Y)

    def masked(self, A, inplace: bool = False):
        return A


def ridge_rows(Y: SparseMatrix, V, lam: float, U_old):
    """The sparse counterpart of the dense ALS half-step (``hdlcore.matrix.factorized``): rows of
    :math:`\\arg\\min_U \\tfrac12\\lVert M\\odot(Y - UV^\\top)\\rVert^2 + \\tfrac\\lambda2\\lVert U\\rVert^2`,
    each the solution of :math:`(V^\\top D_i V + \\lambda I) u_i = V^\\top D_i y_i`, by blocks of rows.

    Returns ``(U, gain, g2)`` as the dense version does (``U`` whole on every process).
    """
    import torch

    view, comm = Y.pattern.rows, Y.pattern.comm
    r = V.shape[1]
    k = view.stop - view.start
    iu, ju = torch.triu_indices(r, r, device=V.device)
    VV = V[:, iu] * V[:, ju]  # (n, r(r+1)/2): the distinct products v_jk v_jl
    where = torch.empty(r, r, dtype=torch.int64, device=V.device)  # (k, l) -> column of VV
    where[iu, ju] = where[ju, iu] = torch.arange(iu.numel(), device=V.device)
    ones = view.ones(V.dtype)
    U_loc = U_old[view.start: view.stop]
    out = torch.empty(k, r, dtype=V.dtype, device=V.device)
    sums = torch.zeros(4, dtype=torch.float64, device=V.device)  # <B, U>, quad, |g|^2, |B|^2
    step = max(1, _BLOCK_NUMBERS // max(r * r, 1))
    for lo in range(0, k, step):
        hi = min(lo + step, k)
        B = view.matmul(Y.vals, V, lo, hi).to(V.dtype)  # (b, n) @ (n, r) -> (b, r)
        Gu = view.matmul(ones, VV, lo, hi).to(V.dtype)  # (b, r(r+1)/2): per-row Grams V^T D_i V
        G = torch.index_select(Gu, 1, where.reshape(-1)).view(hi - lo, r, r)
        G.diagonal(dim1=1, dim2=2).add_(lam)  # (b, r, r): V^T D_i V + lam I, positive definite
        L, info = torch.linalg.cholesky_ex(G)
        if bool((info == 0).all()):
            U = torch.cholesky_solve(B.unsqueeze(-1), L).squeeze(-1)  # (b, r, r) \ (b, r, 1) -> (b, r)
        else:  # rounding made a system indefinite (float32, tiny lam): pivoted LU
            U = torch.linalg.solve(G, B.unsqueeze(-1)).squeeze(-1)
        g = (G @ U_loc[lo:hi].unsqueeze(-1)).squeeze(-1) - B  # gradient in U at the old point
        quad = (U.unsqueeze(1) @ G @ U.unsqueeze(-1)).sum() - lam * (U * U).sum()
        sums += torch.stack([(B * U).sum(), quad, (g * g).sum(), (B * B).sum()]).to(torch.float64)
        out[lo:hi] = U
    sums = comm.sum(sums)
    bu, quad, g2, b2 = (float(s) for s in sums)
    return comm.gather(out, view.bounds), bu - 0.5 * quad, g2 / max(b2, 1e-300)


def prepare(Y: Any, mask: Any, lam: Any, func: str) -> tuple[SparseProblem, float]:
    """Validate sparse ``Y`` (``mask`` must be None) and ``lam``; the problem in row-major order."""
    if mask is not None:
        raise param_error("mask", func, "None when Y is sparse (its stored entries are the observed ones)",
                          mask)
    lam = check_scalar(lam, "lam", func, gt=0)
    rows, cols, vals, shape, back = coordinates(Y, "Y", func, check_duplicates=False)
    order = duplicates(rows, cols, shape, "Y", func, Y)
    pattern = Pattern.single(rows, cols, shape, order)
    return SparseProblem(SparseMatrix(pattern, vals[order]), back), lam


def matrix(A: Any, name: str, func: str) -> tuple[SparseMatrix, Any]:
    """A validated sparse matrix argument (``polar``'s ``Z``, ``sigma_max``'s ``A``) and ``back``."""
    rows, cols, vals, shape, back = coordinates(A, name, func, check_duplicates=False)
    order = duplicates(rows, cols, shape, name, func, A)
    return SparseMatrix(Pattern.single(rows, cols, shape, order), vals[order]), back
