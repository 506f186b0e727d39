"""Shared internals of the matrix-factorization modules (Chapter 3): input checks, masked loss.

The loss is :math:`\\ell(X) = \\tfrac12\\lVert M\\odot(Y - X)\\rVert_F^2` with a boolean mask ``M``
(True where observed; ``None`` means fully observed). Its gradient is :math:`-R` with the
masked residual :math:`R = M \\odot (Y - X)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._backend import Array, as_compute_tensor, as_tensor, is_tensor
from .._validation import (
    check_array,
    check_choice,
    check_devices,
    check_mask,
    check_rng,
    check_scalar,
    param_error,
)
from . import distributed, sparse
from .spectral import METHODS

__all__ = ["MatrixResult"]


@dataclass
class Problem:
    """Validated data as tensors: ``Y`` (m, n), ``M`` bool mask or None, ``Mf`` = M as Y's dtype."""

    Y: Any
    M: Any
    Mf: Any
    back: Any  # tensor -> the caller's array type

    @property
    def shape(self):
        return tuple(self.Y.shape)

    def masked(self, A, inplace: bool = False):
        """``M * A`` (``A`` itself without a mask); ``inplace``: overwrite ``A`` (a temporary: at
        2000 x 2000 a fresh product costs as much memory traffic as a tenth of an m x n x 100 one)."""
        if self.Mf is None:
            return A
        return A.mul_(self.Mf) if inplace else self.Mf * A

    def residual(self, U, V):
        """``R = M * (Y - U V^T)``."""
        import torch

        if U.shape[1] == 0:
            return self.masked(self.Y).clone()
        return self.masked(torch.addmm(self.Y, U, V.T, alpha=-1), inplace=True)  # (m, r) @ (r, n) -> (m, n)

    def sampled_sq(self, A, B) -> float:
        """:math:`\\lVert M\\odot(AB^\\top)\\rVert_F^2` for ``A`` (m, k), ``B`` (n, k)."""
        MD = self.masked(A @ B.T, inplace=True)  # (m, k) @ (k, n) -> (m, n)
        return float((MD * MD).sum())

    def loss(self, R) -> float:
        import torch

        if R.dtype == torch.float64:  # one pass, no m x n temporary
            flat = R.reshape(-1)
            return 0.5 * float(torch.dot(flat, flat))
        return 0.5 * float(torch.sum(R * R, dtype=torch.float64))

    # The interface shared with the sparse problem (hdlcore.matrix.sparse.SparseProblem).
    #: ``X = U V^T`` is always exposed by results of dense problems.
    x_max_entries = None

    def inner(self, R) -> float:
        """``<R, M * Y>`` (float64)."""
        import torch

        if R.dtype == torch.float64:
            return float(torch.dot(R.reshape(-1), self.Y.reshape(-1)))
        return float(torch.sum(R * self.Y, dtype=torch.float64))

    def y_norm(self) -> float:
        """``||M * Y||_F``."""
        import torch

        return float(torch.linalg.vector_norm(self.Y))

    def astype(self, dtype) -> Problem:
        return Problem(self.Y.to(dtype), self.M, None if self.Mf is None else self.Mf.to(dtype), self.back)

    def agree(self, func: str, rng, **options):
        """Nothing to agree on in one process (see :mod:`hdlcore.matrix.distributed`)."""
        return rng


def prepare(Y: Array, mask: Array | None, lam: float, func: str, group: Any = None) -> tuple[Any, float]:
    """Validate ``Y``, ``mask`` and ``lam`` at a public boundary; return tensors and ``lam``.

    float16 and bfloat16 data are computed in float32 (torch has no half-precision SVD on the
    CPU); the problem's ``back`` casts results to the input dtype. A sparse ``Y`` gives a
    :class:`~hdlcore.matrix.sparse.SparseProblem`, and a process group (a
    :class:`~hdlcore.matrix.distributed.Session`) a distributed one: the same interface.
    """
    import torch

    if group is not None:
        return distributed.prepare(group, Y, mask, lam, func)
    if sparse.is_sparse(Y):
        if func == "solve_convex":  # its proximal steps need the dense X
            raise param_error("Y", func, "a dense array or tensor (for sparse data use grow: its certified "
                              "optimum solves the same convex problem)", Y, TypeError)
        return sparse.prepare(Y, mask, lam, func)
    check_devices(func, {"Y": Y, "mask": mask})
    Y = check_array(Y, "Y", func, ndim=2)
    lam = check_scalar(lam, "lam", func, gt=0)
    Yt, back = as_compute_tensor(Y)
    if Yt.dtype not in (torch.float32, torch.float64):
        Yt = Yt.to(torch.float32)
    M = Mf = None
    if mask is not None:
        if not (is_tensor(mask) or hasattr(mask, "shape") or isinstance(mask, list | tuple)):
            raise param_error("mask", func, "a boolean array of Y's shape, or None", mask, TypeError)
        M = check_mask(mask, tuple(Yt.shape), "mask", func)
        M, _ = as_tensor(M)
        M = M.to(device=Yt.device, dtype=torch.bool)
        if bool(M.all()):
            M = None  # fully observed: use the faster full-data formulas
        else:
            Mf = M.to(Yt.dtype)
            Yt = Mf * Yt  # unobserved entries never enter; storing zeros there is harmless
    return Problem(Yt, M, Mf, back), lam


def factor(A: Any, name: str, func: str, rows: int, ref) -> Any:
    """Validate a factor (``rows`` x r, finite) and move it to the problem's dtype and device."""
    A = check_array(A, name, func, ndim=2, shape=(rows, None), min_size=0)
    At, _ = as_tensor(A)
    return At.to(dtype=ref.dtype, device=ref.device)


def factors(prob: Problem, U: Any, V: Any, func: str, pair=None,
            names: tuple[str, str] = ("U", "V")) -> tuple[Any, Any]:
    """Validate a point ``(U, V)`` of the problem: shapes, equal sizes, and the sign constraints
    of ``pair`` (a norm pair) when given; both moved to the problem's dtype and device."""
    m, n = prob.shape
    check_devices(func, {"Y": prob.Y, names[0]: U, names[1]: V})
    U = factor(U, names[0], func, m, prob.Y)
    V = factor(V, names[1], func, n, prob.Y)
    if U.shape[1] != V.shape[1]:
        raise param_error(names[1], func, f"an array with as many columns as {names[0]} ({U.shape[1]})", V)
    if pair is not None:
        for side, A, name in ((pair.u, U, names[0]), (pair.v, V, names[1])):
            if side.nonneg and bool((A < 0).any()):
                raise param_error(name, func, f"non-negative (norms {pair.name} constrain it)", A)
    return U, V


def descent_method(method: str, pair, func: str) -> str:
    """Resolve ``method``: alternating least squares for l2/l2, proximal descent otherwise."""
    method = check_choice(method, "method", func, ("auto", "als", "prox"))
    if method == "auto":
        return "als" if pair.name == "l2/l2" else "prox"
    if method == "als" and pair.name != "l2/l2":
        raise param_error("method", func, "'prox' or 'auto' for norms other than l2/l2", method)
    return method


def default_tol(dtype, tol64: float, tol32: float) -> float:
    """A tolerance per dtype (float32 cannot resolve float64's tolerances)."""
    import torch

    return tol32 if dtype == torch.float32 else tol64


def tolerance(tol: float | None, prob: Problem, func: str, tol64: float, tol32: float) -> float:
    """Validate ``tol`` in (0, 1), defaulting per dtype (:func:`default_tol`)."""
    if tol is None:
        tol = default_tol(prob.Y.dtype, tol64, tol32)
    return check_scalar(tol, "tol", func, gt=0, lt=1)


def solver_options(prob: Problem, func: str, tol: float | None, tols: tuple[float, float], max_iter: int,
                   polar_method: str, rng: Any) -> tuple[float, int, str, Any]:
    """The checks every matrix solver repeats: ``tol`` (default per dtype: ``tols`` = (float64,
    float32)), ``max_iter`` (>= 1), ``polar_method`` and ``rng``."""
    tol = tolerance(tol, prob, func, *tols)
    max_iter = check_scalar(max_iter, "max_iter", func, kind="int", ge=1)
    polar_method = check_choice(polar_method, "polar_method", func, METHODS)
    return tol, max_iter, polar_method, check_rng(rng, "rng", func)


@dataclass(frozen=True, repr=False)
class MatrixResult:
    """The result of a matrix-factorization solver (:func:`hdlcore.solve_convex`,
    :func:`hdlcore.solve_factorized`, :func:`hdlcore.grow`).

    Attributes
    ----------
    U, V : arrays of shapes (m, r) and (n, r)
        The factors (the caller's array type, device and dtype); :attr:`X` is ``U @ V.T``
        (for sparse data only when it is small: :meth:`entries` gives any entries).
    objective : float
        :math:`\\tfrac12\\lVert M\\odot(Y - UV^\\top)\\rVert_F^2 + \\lambda\\sum_i\\theta(u_i, v_i)`.
    history : dict of numpy arrays
        Per iteration (``"objective"``, ``"time"`` in seconds, ...) or, for :func:`hdlcore.grow`,
        per outer step (``"size"``, ``"objective"``, ``"polar"``, ``"iterations"``, ``"time"``).
    converged : bool
        The solver met its stopping rule (a ``ConvergenceWarning`` was issued otherwise).
    certificate : Certificate or None
        :func:`hdlcore.certify` at the returned point.
    n_iter : int
        Iterations (sweeps) of local descent, in total.
    lam : float
    norms : str
        The column-norm pair, e.g. ``"l2/l2"``.
    method : str
        The algorithm that produced the point.
    x_max_entries : int or None
        :attr:`X` is formed only up to this many entries (sparse data); None: always.
    """

    U: Array
    V: Array
    objective: float
    history: dict
    converged: bool
    certificate: Any
    n_iter: int
    lam: float
    norms: str
    method: str
    x_max_entries: int | None = None

    @property
    def X(self) -> Array:
        """The model output :math:`X = UV^\\top`, shape (m, n) (see :meth:`entries` for large sparse data)."""
        m, n = self.U.shape[0], self.V.shape[0]
        if self.x_max_entries is not None and m * n > self.x_max_entries:
            raise ValueError(f"X = U V^T of this sparse problem has {m} x {n} entries, more than the "
                             f"{self.x_max_entries} that results form: use result.entries(rows, cols) for "
                             f"the entries you need (e.g. held-out ones), or result.U and result.V.")
        return self.U @ self.V.T

    def entries(self, rows: Any, cols: Any) -> Any:
        """Entries :math:`X_{ij} = u_i^\\top v_j` at index arrays ``rows`` and ``cols`` (same length).

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> from hdlcore import grow
        >>> Y = np.diag([5.0, 3.0, 1.0])
        >>> i, j = np.indices(Y.shape).reshape(2, -1)  # every entry observed, zeros included
        >>> res = grow(sp.coo_matrix((Y[i, j], (i, j)), shape=Y.shape), lam=2.0)
        >>> np.round(res.entries(np.array([0, 1, 2]), np.array([0, 1, 0])), 8) + 0.0  # X* = diag(3, 1, 0)
        array([3., 1., 0.])
        """
        return (self.U[rows] * self.V[cols]).sum(1)

    @property
    def size(self) -> int:
        """Number of columns ``r`` of the factorization."""
        return int(self.U.shape[1])

    def __repr__(self) -> str:
        cert = self.certificate
        tail = "" if cert is None else f", polar={cert.polar:.8g}, is_global={cert.is_global}"
        return (f"MatrixResult(method={self.method!r}, norms={self.norms!r}, size={self.size}, "
                f"objective={self.objective:.10g}, converged={self.converged}, "
                f"n_iter={self.n_iter}{tail})")
