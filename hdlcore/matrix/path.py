"""The regularization path: the certified optimum along a decreasing sequence of ``lam``, and the
choice of ``lam`` on held-out entries.

.. math:: \\min_{U, V}\\ \\tfrac12\\lVert M\\odot(Y - UV^\\top)\\rVert_F^2
   + \\lambda\\sum_i\\theta(u_i, v_i), \\qquad \\lambda_1 > \\lambda_2 > \\dots > \\lambda_k

:func:`grow_path` solves each problem with :func:`hdlcore.grow`, started from the previous
solution (a warm start: the optimum moves little between neighbouring values, and its rank grows
as ``lam`` decreases); every point carries its own certificate. The default grid starts at
:math:`\\lambda_{\\max} = \\Omega^\\circ_\\theta(M\\odot Y)` (:math:`\\sigma_1(M\\odot Y)` for l2/l2),
the smallest ``lam`` at which :math:`X = 0` is optimal.
:func:`select_lambda` holds out a random part of the observed entries, runs the path on the
rest, and picks the ``lam`` with the smallest error on the held-out entries (Mazumder, Hastie and
Tibshirani's recipe for Soft-Impute).

Used by Chapter 3 (the digits completion) and ``benchmarks/bench_ranks.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import is_tensor
from .._runtime import one_thread_when_small
from .._validation import check_choice, check_scalar, param_error
from . import sparse
from .meta import _grow, grow_options
from .norms import norm_pair
from .problem import MatrixResult, Problem, prepare
from .sparse import SparseProblem

__all__ = ["PathResult", "LambdaSelection", "grow_path", "select_lambda"]


@dataclass(frozen=True, repr=False)
class PathResult:
    """The certified optima of :func:`grow_path`, one per ``lam``.

    Attributes
    ----------
    lams : (k,) numpy array
        The decreasing values of :math:`\\lambda`.
    results : tuple of MatrixResult
        :func:`hdlcore.grow`'s result at each ``lam`` (factors, objective, certificate).
    history : dict of numpy arrays
        One entry per ``lam``, ready to plot: ``"lam"``, ``"rank"`` (size of the optimum),
        ``"objective"``, ``"polar"``, ``"bound"`` (proven suboptimality), ``"is_global"``
        (True, False or None as in :class:`hdlcore.Certificate`), ``"n_iter"`` (descent sweeps)
        and ``"time"`` (seconds since the start, cumulative).
    norms : str
    converged : bool
        Every point met :func:`hdlcore.grow`'s stopping rule.
    """

    lams: np.ndarray
    results: tuple
    history: dict
    norms: str
    converged: bool

    @property
    def ranks(self) -> np.ndarray:
        """Size (rank for l2/l2) of the optimum at each ``lam``."""
        return self.history["rank"]

    @property
    def objectives(self) -> np.ndarray:
        return self.history["objective"]

    @property
    def certified(self) -> bool:
        """Every point is proven globally optimal to its tolerance."""
        return bool(all(r.certificate.is_global is True for r in self.results))

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> MatrixResult:
        return self.results[i]

    def __repr__(self) -> str:
        return (f"PathResult(norms={self.norms!r}, points={len(self)}, lam={self.lams[0]:.4g}..."
                f"{self.lams[-1]:.4g}, ranks={int(self.ranks.min())}...{int(self.ranks.max())}, "
                f"certified={self.certified}, converged={self.converged})")


@dataclass(frozen=True, repr=False)
class LambdaSelection:
    """The result of :func:`select_lambda`.

    Attributes
    ----------
    lam : float
        The value with the smallest held-out error.
    index : int
        Its position in ``path.lams``.
    heldout_error : (k,) numpy array
        Root-mean-square error :math:`\\sqrt{\\mathrm{mean}_{(i,j)\\in H}(Y_{ij} - X_{ij})^2}` on the
        held-out entries ``H``, for each ``lam`` of the path.
    path : PathResult
        The path fitted on the training entries only.
    train_mask, holdout_mask : (m, n) bool numpy arrays, or scipy.sparse CSR matrices
        The split of the observed entries (sparse matrices when ``Y`` is sparse).
    result : MatrixResult or None
        The certified optimum at ``lam`` on every observed entry (``refit=True``), warm-started
        from the path's point.
    history : dict of numpy arrays
        ``"lam"``, ``"heldout_error"``, ``"rank"`` (for a plot of the error curve).
    """

    lam: float
    index: int
    heldout_error: np.ndarray
    path: PathResult
    train_mask: Any
    holdout_mask: Any
    result: MatrixResult | None
    history: dict

    def __repr__(self) -> str:
        return (f"LambdaSelection(lam={self.lam:.6g}, index={self.index} of {len(self.path)}, "
                f"heldout_error={self.heldout_error[self.index]:.6g}, "
                f"rank={int(self.path.ranks[self.index])})")


def _pattern_mask(rows, cols, shape):
    """The (m, n) scipy.sparse CSR boolean matrix that is True at ``(rows[k], cols[k])``."""
    import scipy.sparse

    r, c = rows.cpu().numpy(), cols.cpu().numpy()
    return scipy.sparse.csr_matrix((np.ones(r.size, bool), (r, c)), shape=shape)


def _check_lams(lams: Any, func: str) -> np.ndarray:
    expected = "a strictly decreasing 1-D sequence of finite floats > 0"
    if is_tensor(lams):
        lams = lams.detach().cpu().numpy()
    try:
        arr = np.asarray(lams, dtype=np.float64)
    except (TypeError, ValueError):
        raise param_error("lams", func, expected, lams, TypeError) from None
    if arr.ndim != 1 or arr.size == 0:
        raise param_error("lams", func, expected, lams)
    if not (np.all(np.isfinite(arr)) and np.all(arr > 0) and np.all(np.diff(arr) < 0)):
        raise param_error("lams", func, expected, lams)
    return arr


def default_lams(prob, pair, n_lams: int, lam_min_ratio: float, rng, func: str) -> np.ndarray:
    """``n_lams`` values, geometric from lam_max = polar of ``M * Y`` down to ``lam_min_ratio * lam_max``."""
    lam_max = float(pair._polar(prob.Y, rng=rng, maximizer=False).value)
    if not lam_max > 0:
        raise param_error("Y", func, "not zero on every observed entry", None)
    return lam_max * np.geomspace(1.0, lam_min_ratio, n_lams)


def _path(prob, pair, lams, *, tol, method, max_iter, polar_method, max_size, rng, func):
    """Warm-started grow along ``lams`` (validated); returns the results and the last tensors."""
    import torch

    m, n = prob.shape
    U = torch.zeros(m, 0, dtype=prob.Y.dtype, device=prob.Y.device)
    V = torch.zeros(n, 0, dtype=prob.Y.dtype, device=prob.Y.device)
    results, factors = [], []
    start = time.perf_counter()
    times = []
    for lam in lams:
        res, U, V = _grow(prob, pair, float(lam), U, V, tol=tol, max_size=max_size, method=method,
                          max_iter=max_iter, polar_method=polar_method, rng=rng, func=func)
        results.append(res)
        factors.append((U, V))
        times.append(time.perf_counter() - start)
    certs = [r.certificate for r in results]
    hist = {
        "lam": np.asarray(lams, dtype=np.float64),
        "rank": np.array([r.size for r in results]),
        "objective": np.array([r.objective for r in results]),
        "polar": np.array([c.polar for c in certs]),
        "bound": np.array([c.bound for c in certs]),
        "is_global": np.array([c.is_global for c in certs], dtype=object),
        "n_iter": np.array([r.n_iter for r in results]),
        "time": np.array(times),
    }
    path = PathResult(lams=np.asarray(lams, dtype=np.float64), results=tuple(results), history=hist,
                      norms=pair.name, converged=all(r.converged for r in results))
    return path, factors


@one_thread_when_small
def grow_path(
    Y: Any,
    lams: Any = None,
    mask: Any = None,
    norms: Any = ("l2", "l2"),
    *,
    n_lams: int = 20,
    lam_min_ratio: float = 0.01,
    tol: float | None = None,
    max_size: int | None = None,
    method: str = "auto",
    max_iter: int = 100000,
    polar_method: str = "auto",
    rng: np.random.Generator | int | None = None,
) -> PathResult:
    """Certified global optima along a decreasing sequence of ``lam``, each warm-started from the last.

    Parameters
    ----------
    Y : (m, n) array or tensor, or a sparse matrix
        Data; entries where ``mask`` is False are ignored (they must still be finite). A
        ``scipy.sparse`` matrix or torch sparse tensor lists the observed entries (``mask`` must be
        None; one process: see :func:`hdlcore.grow`).
    lams : 1-D sequence of floats, optional
        Strictly decreasing, positive. Default: ``n_lams`` values geometric from
        :math:`\\lambda_{\\max} = \\Omega^\\circ_\\theta(M\\odot Y)` (the optimum there is 0) down to
        ``lam_min_ratio * lam_max``.
    mask : (m, n) bool array, optional
        True where observed.
    norms : pair of str
        Column norms of :math:`\\theta`, as in :func:`hdlcore.grow`.
    n_lams : int
        Length of the default grid.
    lam_min_ratio : float
        Smallest value of the default grid, relative to ``lam_max``, in (0, 1).
    tol, max_size, method, max_iter, polar_method, rng
        As in :func:`hdlcore.grow`, for every point.

    Returns
    -------
    PathResult
        One certified :class:`~hdlcore.MatrixResult` per ``lam`` and a ``history`` to plot
        (rank, objective, polar, proven bound and time against ``lam``).

    Notes
    -----
    Each point solves

    .. math:: \\min_{U, V}\\ \\tfrac12\\lVert M\\odot(Y - UV^\\top)\\rVert_F^2
       + \\lambda_j\\sum_i\\theta(u_i, v_i)

    with :func:`hdlcore.grow` started at the previous point's factors; its certificate is the
    same :func:`hdlcore.certify` as for a cold start. Used in Chapter 3.

    References
    ----------
    R. Mazumder, T. Hastie and R. Tibshirani, Spectral regularization algorithms for learning
    large incomplete matrices, JMLR 11, 2010. B. D. Haeffele and R. Vidal, Structured low-rank
    matrix factorization, IEEE TPAMI 2020.

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.diag([5.0, 3.0, 1.0])
    >>> path = grow_path(Y, lams=[4.0, 2.0, 0.5])
    >>> path.ranks.tolist(), path.certified
    ([1, 2, 3], True)
    """
    func = "grow_path"
    prob, _ = prepare(Y, mask, 1.0, func)
    if not isinstance(prob, Problem) and type(prob) is not SparseProblem:
        raise param_error("Y", func, "a dense array or tensor, or sparse data on one process (for several "
                          "processes use grow)", Y, TypeError)
    pair = norm_pair(norms, func)
    opts, rng = grow_options(prob, pair, tol, method, max_iter, polar_method, max_size, rng, func)
    n_lams = check_scalar(n_lams, "n_lams", func, kind="int", ge=1)
    lam_min_ratio = check_scalar(lam_min_ratio, "lam_min_ratio", func, gt=0, lt=1)
    if lams is None:
        lams = default_lams(prob, pair, n_lams, lam_min_ratio, rng, func)
    else:
        lams = _check_lams(lams, func)
    path, _ = _path(prob, pair, lams, rng=rng, func=func, **opts)
    return path


@one_thread_when_small
def select_lambda(
    Y: Any,
    mask: Any = None,
    lams: Any = None,
    *,
    holdout: float = 0.2,
    norms: Any = ("l2", "l2"),
    n_lams: int = 20,
    lam_min_ratio: float = 0.01,
    refit: bool = True,
    tol: float | None = None,
    max_iter: int = 100000,
    polar_method: str = "auto",
    rng: np.random.Generator | int | None = None,
) -> LambdaSelection:
    """Choose ``lam`` by the error on held-out observed entries along a certified path.

    Parameters
    ----------
    Y : (m, n) array or tensor, or a sparse matrix
        A ``scipy.sparse`` matrix or torch sparse tensor lists the observed entries (``mask``
        must be None); both sides of the split stay sparse (one process).
    mask : (m, n) bool array, optional
        True where observed (default: every entry).
    lams : 1-D sequence of floats, optional
        Strictly decreasing; default: :func:`grow_path`'s grid computed on the training entries.
    holdout : float
        Fraction of the observed entries held out, in (0, 1); at least one entry must fall on
        each side.
    norms : pair of str
    n_lams, lam_min_ratio
        The default grid, as in :func:`grow_path`.
    refit : bool
        Solve again at the chosen ``lam`` on every observed entry (certified, warm-started).
    tol, max_iter, polar_method
        As in :func:`hdlcore.grow`.
    rng : numpy Generator, int or None
        Draws the held-out entries (and Lanczos start vectors).

    Returns
    -------
    LambdaSelection
        The chosen ``lam``, the held-out error curve, the path and the refitted optimum.

    Notes
    -----
    With ``H`` the held-out entries and :math:`X_\\lambda` the certified optimum on the others,
    the choice is :math:`\\arg\\min_\\lambda \\sum_{(i,j)\\in H}(Y_{ij} - (X_\\lambda)_{ij})^2`
    over the grid. Used in Chapter 3.

    References
    ----------
    R. Mazumder, T. Hastie and R. Tibshirani, Spectral regularization algorithms for learning
    large incomplete matrices, JMLR 11, 2010.

    Examples
    --------
    >>> import hdlcore as hd
    >>> Y, _ = hd.low_rank_matrix(30, 30, 2, noise=0.3, rng=0)
    >>> sel = select_lambda(Y, hd.random_mask(Y.shape, 0.5, rng=1), n_lams=12, rng=2)
    >>> sel.path.certified, 0 < sel.index < 11, sel.result.certificate.is_global
    (True, True, True)
    """
    import torch

    func = "select_lambda"
    prob, _ = prepare(Y, mask, 1.0, func)  # dense (Problem) or sparse (SparseProblem), one process
    pair = norm_pair(norms, func)
    holdout = check_scalar(holdout, "holdout", func, gt=0, lt=1)
    refit = check_choice(refit, "refit", func, (True, False))
    opts, rng = grow_options(prob, pair, tol, "auto", max_iter, polar_method, None, rng, func)
    if isinstance(prob, SparseProblem):
        # The observed entries are the stored ones (validated, in row-major order, as a dense
        # mask's): split them, keep both sides sparse.
        view = prob.Y.pattern.rows
        rows_all, cols_all, vals_all = view.local_rows(), view.idx, prob.Y.vals
        idx = np.arange(vals_all.numel())
    else:
        observed = np.ones(prob.shape, bool) if prob.M is None else prob.M.cpu().numpy()
        idx = np.flatnonzero(observed)
    n_hold = int(round(holdout * idx.size))
    if n_hold < 1 or n_hold >= idx.size:
        raise param_error("holdout", func, f"a fraction in (0, 1) leaving at least one of the "
                          f"{idx.size} observed entries on each side", holdout)
    pick = rng.choice(idx, n_hold, replace=False)
    if isinstance(prob, SparseProblem):
        is_held = np.zeros(idx.size, bool)
        is_held[pick] = True
        tr, ho = (torch.as_tensor(np.flatnonzero(b), device=vals_all.device) for b in (~is_held, is_held))
        pattern = sparse.Pattern.single(rows_all[tr], cols_all[tr], prob.shape)  # still row-major
        train_prob = SparseProblem(sparse.SparseMatrix(pattern, vals_all[tr]), prob.back)
        rows, cols, y_held = rows_all[ho], cols_all[ho], vals_all[ho]
        train, held = (_pattern_mask(rows_all[sel], cols_all[sel], prob.shape) for sel in (tr, ho))
    else:
        held = np.zeros(prob.shape, bool)
        held.flat[pick] = True
        train = observed & ~held
        train_prob, _ = prepare(Y, torch.as_tensor(train, device=prob.Y.device) if is_tensor(Y) else train,
                                1.0, func)  # results in the caller's array type
        Yt = prob.Y  # float tensor (zero where unobserved; every held-out entry is observed)
        rows, cols = (torch.as_tensor(a, device=Yt.device) for a in np.nonzero(held))
        y_held = Yt[rows, cols]  # (h,)
    n_lams = check_scalar(n_lams, "n_lams", func, kind="int", ge=1)
    lam_min_ratio = check_scalar(lam_min_ratio, "lam_min_ratio", func, gt=0, lt=1)
    if lams is None:
        lams = default_lams(train_prob, pair, n_lams, lam_min_ratio, rng, func)
    else:
        lams = _check_lams(lams, func)
    path, factors = _path(train_prob, pair, lams, rng=rng, func=func, **opts)
    rmse = []
    for U, V in factors:
        x_held = (U[rows] * V[cols]).sum(1)  # (h, r) * (h, r) -> (h,): X at the held-out entries
        rmse.append(float(torch.sqrt(torch.mean((y_held - x_held) ** 2))))
    errors = np.array(rmse)
    best = int(np.argmin(errors))
    result = None
    if refit:
        U, V = factors[best]
        result, _, _ = _grow(prob, pair, float(lams[best]), U, V, rng=rng, func=func, **opts)
    hist = {"lam": path.lams, "heldout_error": errors, "rank": path.ranks}
    return LambdaSelection(lam=float(lams[best]), index=best, heldout_error=errors, path=path,
                           train_mask=train, holdout_mask=held, result=result, history=hist)
