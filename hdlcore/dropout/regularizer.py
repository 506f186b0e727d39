"""The regularizer dropout induces on ``X``, and the closed-form global optimum it gives.

Chapter 5 (Dropout analysis). Over all factorizations ``X = U V^T`` of size ``d``, the dropout
penalty :math:`\\sum_k \\|u_k\\|^2\\|v_k\\|^2` is at least :math:`\\|X\\|_*^2/d`, with equality
at an *equalized* factorization (all products :math:`\\|u_k\\|\\|v_k\\|` equal), which
:func:`equalized_factorization` builds. Dropout matrix factorization of size ``d`` is therefore
the convex problem :math:`\\min_X \\|Y - X\\|_F^2 + (\\lambda/d)\\|X\\|_*^2` (rank at most
``d``), solved in closed form by singular value shrinkage with a data-dependent threshold
(:func:`dropout_global_minimum`, :func:`dropout_optimum`). With a fixed retain probability the
induced weight :math:`\\lambda/d` fades as ``d`` grows; with ``keep = keep_schedule(d, beta)``
the optimum does not depend on ``d``.

Loss convention: :math:`\\|Y - X\\|_F^2`, without a factor 1/2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import is_tensor
from .._runtime import auto_threads, threads
from .._validation import check_array, check_scalar, param_error
from ._inputs import as_tensors, check_fits, check_keep

__all__ = [
    "DropoutOptimum",
    "dropout_omega",
    "equalized_factorization",
    "squared_nuclear_shrinkage",
    "dropout_global_minimum",
    "dropout_optimum",
]


@dataclass(frozen=True)
class DropoutOptimum:
    """The global minimum of dropout matrix factorization of size ``d`` (see :func:`dropout_global_minimum`).

    ``X`` the optimal output, ``U, V`` an equalized factorization of it with ``d`` columns (all
    products ``|u_k| |v_k|`` equal), ``objective`` the minimal expected loss, ``threshold`` the
    data-dependent shrinkage :math:`\\mu`, ``rank`` the rank of ``X``, ``lam`` the weight
    :math:`\\lambda = (1-\\rho)/\\rho`.
    """

    X: Any
    U: Any
    V: Any
    objective: float
    threshold: float
    rank: int
    lam: float
    singular_values: np.ndarray


def _svd(X_t: Any) -> tuple[Any, Any, Any]:
    """The thin SVD ``X = W diag(s) Z^T``, on one CPU thread for a small matrix (the library's policy)."""
    import torch

    with threads(auto_threads("matrix", X_t.numel(), X_t.device.type)):
        W, s, Zh = torch.linalg.svd(X_t, full_matrices=False)
    return W, s, Zh.mT


def _numerical_rank(s: Any, shape: tuple[int, int]) -> int:
    if s.numel() == 0 or float(s[0]) == 0.0:
        return 0
    tol = float(s[0]) * max(shape) * float(np.finfo(np.float32 if s.dtype.itemsize == 4 else
                                                    np.float64).eps)
    return int((s > tol).sum())


def dropout_omega(X: Any, d: int) -> Any:
    """The regularizer induced on ``X`` by dropout of size ``d``: :math:`\\|X\\|_*^2 / d`.

    Notes
    -----
    .. math::

        \\Omega_d(X) = \\min_{U \\in \\mathbb{R}^{m\\times d}, V \\in \\mathbb{R}^{n\\times d},\\,
        UV^\\top = X} \\sum_{k=1}^d \\|u_k\\|^2\\|v_k\\|^2 = \\frac{\\|X\\|_*^2}{d}
        \\quad (d \\ge \\operatorname{rank} X),

    by Cauchy-Schwarz (:math:`\\sum_k a_k^2 \\ge (\\sum_k a_k)^2/d`) and
    :math:`\\sum_k \\|u_k\\|\\|v_k\\| \\ge \\|X\\|_*`; :func:`equalized_factorization` attains it.
    Returns ``inf`` when ``d < rank X`` (no factorization of size ``d`` exists). Chapter 5.

    References
    ----------
    Cavazza et al., AISTATS 2018.

    Examples
    --------
    >>> dropout_omega(np.diag([3.0, 1.0]), 2)
    8.0
    """
    func = "dropout_omega"
    d = check_scalar(d, "d", func, kind="int", ge=1)
    (X_t,), back = as_tensors(func, X=X)
    _check_size(func, d, X_t, rotation=False)
    s = _svd(X_t)[1]
    if _numerical_rank(s, tuple(X_t.shape)) > d:
        return back(X_t.new_tensor(math.inf))
    return back(s.sum() ** 2 / d)


def _equalizing_rotation(s: np.ndarray, d: int) -> np.ndarray:
    """Orthogonal Q (d x d) with diag(Q^T diag(s) Q) constant = sum(s)/d (Givens rotations)."""
    S = np.zeros((d, d))
    S[: len(s), : len(s)] = np.diag(s)
    Q = np.eye(d)
    t = S.trace() / d
    free = list(range(d))
    tol = 64 * np.finfo(float).eps * max(S.trace(), 1.0)
    while len(free) > 1:
        diag = np.array([S[i, i] for i in free])
        i, j = free[int(np.argmax(diag))], free[int(np.argmin(diag))]
        a, c, b = S[i, i], S[j, j], S[i, j]
        if a - t <= tol:
            break  # every free diagonal entry already equals t
        half, mean = (a - c) / 2, (a + c) / 2
        R = math.hypot(half, b)
        two_phi = math.atan2(b, half) + math.acos(max(-1.0, min(1.0, (t - mean) / R)))
        cs, sn = math.cos(two_phi / 2), math.sin(two_phi / 2)
        G = np.array([[cs, -sn], [sn, cs]])  # new column i = cs e_i + sn e_j (plane i, j)
        Q[:, [i, j]] = Q[:, [i, j]] @ G
        S[:, [i, j]] = S[:, [i, j]] @ G  # S <- G^T S G, touching rows and columns i, j only
        S[[i, j], :] = G.T @ S[[i, j], :]
        free.remove(i)
    return Q


def equalized_factorization(X: Any, d: int) -> tuple[Any, Any]:
    """A factorization ``X = U V^T`` of size ``d`` with every product ``|u_k||v_k| = |X|_* / d``.

    It attains :math:`\\Omega_d(X) = \\|X\\|_*^2/d` (:func:`dropout_omega`). Construction: the
    balanced SVD factors :math:`W\\Sigma^{1/2}`, :math:`Z\\Sigma^{1/2}` padded with zero columns to
    ``d``, rotated by an orthogonal ``Q`` built from at most ``d - 1`` Givens rotations so that
    :math:`Q^\\top \\Sigma Q` has a constant diagonal (Schur-Horn; the equalization step of
    Mianjy, Arora and Vidal, ICML 2018). Works for every ``d >= rank X``. Chapter 5.

    Raises
    ------
    ValueError
        If ``d`` is smaller than the rank of ``X``.

    Examples
    --------
    >>> from hdlcore.dropout import column_products
    >>> U, V = equalized_factorization(np.diag([3.0, 1.0, 0.0]), 3)
    >>> bool(np.allclose(U @ V.T, np.diag([3.0, 1.0, 0.0]))), np.round(column_products(U, V), 12)
    (True, array([1.33333333, 1.33333333, 1.33333333]))
    """
    func = "equalized_factorization"
    d = check_scalar(d, "d", func, kind="int", ge=1)
    (X_t,), back = as_tensors(func, X=X)
    _check_size(func, d, X_t)
    W, s, Z = _svd(X_t)
    k = _numerical_rank(s, tuple(X_t.shape))
    if k > d:
        raise param_error("d", func, f"an int >= rank(X) = {k}", d)
    U_t, V_t = _equalized(X_t, W, s, Z, k, d)
    return back(U_t), back(V_t)


def _check_size(func: str, d: int, X_t: Any, rotation: bool = True) -> None:
    """A factorization of size ``d`` must fit in memory (its factors, and the ``d x d`` rotation
    that equalizes it when one is built): a size whose factors could not even be stored is
    refused, before anything is allocated."""
    m, n = X_t.shape
    nbytes = X_t.element_size() * 2.0 * (m + n) * d
    if rotation:
        nbytes += (16.0 + X_t.element_size()) * d * d
    check_fits(func, "d", d, nbytes)


def _equalized(X_t: Any, W: Any, s: Any, Z: Any, k: int, d: int) -> tuple[Any, Any]:
    """The equalized factorization of ``X = W diag(s) Z^T`` (rank ``k <= d``) with ``d`` columns."""
    root = s[:k].sqrt()
    U0 = X_t.new_zeros((X_t.shape[0], d))
    V0 = X_t.new_zeros((X_t.shape[1], d))
    U0[:, :k] = W[:, :k] * root  # (m, k)
    V0[:, :k] = Z[:, :k] * root  # (n, k)
    Q = X_t.new_tensor(_equalizing_rotation(s[:k].detach().double().cpu().numpy(), d))  # (d, d)
    return U0 @ Q, V0 @ Q  # (m, d), (n, d)


# --------------------------------------------------------------------------- global optimum
def squared_nuclear_shrinkage(
    sigma: Any, tau: float, size: int | None = None
) -> tuple[np.ndarray, float, int]:
    """Solve :math:`\\min_{s \\ge 0} \\sum_i (\\sigma_i - s_i)^2 + \\tau (\\sum_i s_i)^2`.

    Parameters
    ----------
    sigma : 1-D array
        Non-negative values (singular values), any order.
    tau : float >= 0
        Weight of the squared sum (``lam / d`` for dropout of size ``d``).
    size : int, optional
        At most ``size`` entries of ``s`` may be non-zero (a factorization of size ``size``);
        the largest ``sigma`` keep them.

    Returns
    -------
    s : ndarray
        The minimizer, :math:`s_i = (\\sigma_i - \\mu)_+` on the ``size`` largest entries.
    mu : float
        The threshold :math:`\\mu = \\tau S_k / (1 + \\tau k)`, :math:`S_k` the sum of the
        ``k`` largest :math:`\\sigma`.
    k : int
        The number of non-zero entries, the largest ``j`` with
        :math:`\\sigma_j > \\tau S_j / (1 + \\tau j)`.

    Notes
    -----
    The problem is strictly convex; the KKT conditions give
    :math:`s_i = (\\sigma_i - \\tau \\sum_j s_j)_+`. Chapter 5 checks it against L-BFGS-B.

    Examples
    --------
    >>> s, mu, k = squared_nuclear_shrinkage([5, 4, 3, 1, 0.5], tau=0.5)
    >>> np.round(s, 12).tolist(), mu, k
    ([2.6, 1.6, 0.6, 0.0, 0.0], 2.4, 3)
    """
    func = "squared_nuclear_shrinkage"
    arr = check_array(sigma, "sigma", func, ndim=1)  # real (complex refused), finite, not empty
    sig = arr.detach().double().cpu().numpy() if is_tensor(arr) else np.asarray(arr, dtype=np.float64)
    if (sig < 0).any():
        raise param_error("sigma", func, "an array of non-negative values", sigma)
    tau = check_scalar(tau, "tau", func, ge=0)
    if size is not None:
        size = check_scalar(size, "size", func, kind="int", ge=0)
    return _shrinkage(sig, tau, size)


def _shrinkage(sig: np.ndarray, tau: float, size: int | None) -> tuple[np.ndarray, float, int]:
    order = np.argsort(-sig, kind="stable")
    srt = sig[order]
    limit = len(srt) if size is None else min(size, len(srt))
    sums = np.cumsum(srt[:limit])
    j = np.arange(1, limit + 1)
    active = srt[:limit] > tau * sums / (1 + tau * j)
    k = int(np.nonzero(active)[0].max() + 1) if active.any() else 0
    mu = float(tau * sums[k - 1] / (1 + tau * k)) if k else 0.0
    s = np.zeros_like(sig)
    s[order[:k]] = np.maximum(srt[:k] - mu, 0.0)
    return s, mu, k


def dropout_global_minimum(Y: Any, keep: float, d: int) -> DropoutOptimum:
    """Closed-form global minimum of dropout matrix factorization of size ``d``.

    Parameters
    ----------
    Y : array (m, n)
        The data.
    keep : float in (0, 1]
        Retain probability :math:`\\rho`; for a rate growing with ``d`` pass
        ``keep_schedule(d, beta)``.
    d : int >= 1
        The size ``r`` of the factorization (``d`` in Cavazza et al.).

    Returns
    -------
    DropoutOptimum
        ``X`` (same array type as ``Y``), an equalized factorization ``U, V`` of size ``d``,
        the minimal expected loss, the threshold :math:`\\mu` and the rank.

    Notes
    -----
    .. math::

        \\min_{U, V \\text{ of size } d} \\|Y - UV^\\top\\|_F^2 + \\lambda \\sum_k \\|u_k\\|^2\\|v_k\\|^2
        = \\min_{\\operatorname{rank} X \\le d} \\|Y - X\\|_F^2 + \\frac{\\lambda}{d}\\|X\\|_*^2,

    solved by :math:`X^\\star = W \\operatorname{diag}((\\sigma_i(Y) - \\mu)_+) Z^\\top` over the
    ``d`` leading singular pairs of :math:`Y = W\\Sigma Z^\\top`, with
    :math:`\\mu = \\lambda \\sum_{i \\le k}\\sigma_i / (d + \\lambda k)` (von Neumann's trace
    inequality reduces the problem to :func:`squared_nuclear_shrinkage` with
    :math:`\\tau = \\lambda/d`). The optimal value is reached by the factors ``U, V``.
    Chapter 5 checks it against L-BFGS-B over the singular values and against gradient descent
    on the factorized objective.

    References
    ----------
    Cavazza et al., AISTATS 2018 ("data dependent singular-value thresholding").

    Examples
    --------
    >>> opt = dropout_global_minimum(np.diag([5.0, 4.0, 3.0, 1.0]), keep=0.5, d=2)
    >>> np.round(np.diag(opt.X), 12).tolist(), opt.threshold, opt.rank
    ([2.75, 1.75, 0.0, 0.0], 2.25, 2)
    """
    func = "dropout_global_minimum"
    keep = check_keep(keep, func)
    d = check_scalar(d, "d", func, kind="int", ge=1)
    (Y_t,), back = as_tensors(func, Y=Y)
    _check_size(func, d, Y_t)
    lam, W, s, Z, mu, k, s_np = _shrink(Y_t, keep, d)
    X_t = (W * s) @ Z.T  # (m, p) diag(s) (p, n) -> (m, n)
    # X's SVD is Y's, shrunk: W diag(s) Z^T with s sorted (its top k entries non-zero)
    U_t, V_t = _equalized(X_t, W, s, Z, k, d)
    objective = float(((Y_t - X_t) ** 2).sum()) + lam / d * float(s_np.sum()) ** 2
    return DropoutOptimum(X=back(X_t), U=back(U_t), V=back(V_t), objective=objective,
                          threshold=mu, rank=k, lam=lam, singular_values=s_np[:k])


def _shrink(Y_t: Any, keep: float, d: int) -> tuple[float, Any, Any, Any, float, int, np.ndarray]:
    """Y's SVD and its shrunk singular values: (lam, W, s, Z, mu, k, s as numpy)."""
    lam = (1.0 - keep) / keep
    W, sig, Z = _svd(Y_t)
    s_np, mu, k = _shrinkage(sig.detach().double().cpu().numpy(), lam / d, d)
    return lam, W, Y_t.new_tensor(s_np), Z, mu, k, s_np


def dropout_optimum(Y: Any, keep: float, d: int) -> Any:
    """The closed-form global optimum ``X`` of dropout matrix factorization of size ``d``.

    Shorthand for ``dropout_global_minimum(Y, keep, d).X``: loss :math:`\\|Y - X\\|_F^2`
    (no 1/2), retain probability ``keep``, size ``d`` (the book's ``r``, ``d`` in Cavazza et
    al.). Same array type as ``Y``. Chapter 5.

    Examples
    --------
    >>> np.round(np.diag(dropout_optimum(np.diag([5.0, 4.0, 3.0]), 0.5, 3)), 12).tolist()
    [3.0, 2.0, 1.0]
    """
    func = "dropout_optimum"
    keep = check_keep(keep, func)
    d = check_scalar(d, "d", func, kind="int", ge=1)
    (Y_t,), back = as_tensors(func, Y=Y)
    _check_size(func, d, Y_t, rotation=False)
    _, W, s, Z, _, _, _ = _shrink(Y_t, keep, d)
    return back((W * s) @ Z.T)  # (m, p) diag(s) (p, n) -> (m, n)
