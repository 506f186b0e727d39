"""The factorized side: local descent on U, V for a fixed size r.

.. math::

    \\min_{U\\in\\mathbb R^{m\\times r},\\,V\\in\\mathbb R^{n\\times r}}\\
    \\tfrac12\\lVert M\\odot(Y - UV^\\top)\\rVert_F^2 + \\lambda\\sum_{i=1}^r \\theta(u_i, v_i),
    \\qquad \\theta(u, v) = \\lVert u\\rVert_a \\lVert v\\rVert_b .

Two local methods, one code path for numpy and torch (CPU or GPU), float32 and float64:

- ``"als"`` (l2/l2 only): exact alternating minimization of the balanced form
  :math:`\\tfrac\\lambda2(\\lVert U\\rVert_F^2 + \\lVert V\\rVert_F^2)`, which has the same minimum
  (rescaling each column to :math:`\\lVert u_i\\rVert = \\lVert v_i\\rVert` turns one into the other).
  Each row of ``U`` solves an ``r x r`` ridge system,
  :math:`u_i = (V^\\top D_i V + \\lambda I)^{-1} V^\\top D_i y_i` with :math:`D_i` the mask of row ``i``.
- ``"prox"`` (any pair): proximal alternating linearized minimization with extrapolation
  (Bolte, Sabach and Teboulle, 2014; Xu and Yin, 2013): a gradient step on one factor and the
  column-wise prox of :math:`\\lambda\\lVert v_i\\rVert_b\\lVert\\cdot\\rVert_a`, which gives **exact
  zeros** (entries for l1, whole columns for l2).

Used by Chapter 3 (matrix factorization) and by :func:`hdlcore.grow`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .._backend import Array, is_tensor
from .._runtime import one_thread_when_small
from .._validation import check_size, param_error, warn_not_converged
from . import quasi_newton, sparse
from .certificates import certificate
from .distributed import collective
from .norms import NormPair, norm_pair
from .problem import MatrixResult, default_tol, descent_method, factors, prepare, solver_options

__all__ = ["solve_factorized", "factorized_objective"]


@collective
@one_thread_when_small
def solve_factorized(
    Y: Array,
    lam: float,
    rank: int,
    mask: Array | None = None,
    norms: Any = ("l2", "l2"),
    *,
    U0: Array | None = None,
    V0: Array | None = None,
    method: str = "auto",
    tol: float | None = None,
    max_iter: int = 10000,
    certify: bool = True,
    polar_method: str = "auto",
    rng: np.random.Generator | int | None = None,
    group: Any = None,
) -> MatrixResult:
    """Local descent on the factorized problem at a fixed size ``rank``.

    Parameters
    ----------
    Y : (m, n) array or tensor, or a sparse matrix
        Data; entries where ``mask`` is False are ignored (they must still be finite). A
        ``scipy.sparse`` matrix or torch sparse tensor lists the observed entries (``mask`` must
        be None; see :mod:`hdlcore.matrix.sparse`); with ``group``, this process's share of them.
    lam : float
        :math:`\\lambda > 0`.
    rank : int
        The size ``r`` (number of columns of ``U`` and ``V``); ignored when ``U0`` is given.
    mask : (m, n) bool array, optional
        True where observed.
    norms : pair of str
        Column norms of :math:`\\theta(u, v) = \\lVert u\\rVert_a\\lVert v\\rVert_b`: ``"l1"``,
        ``"l2"``, ``"l1+"``, ``"l2+"`` ("+": non-negative).
    U0, V0 : arrays, optional
        Starting point; default: Gaussian entries with scale :math:`(\\lVert Y\\rVert_F/\\sqrt{mnr})^{1/2}`
        drawn from ``rng`` (absolute values for non-negative sides).
    method : {"auto", "als", "prox"}
        "auto" is "als" for l2/l2 and "prox" otherwise.
    tol : float, optional
        "als" stops when both the relative decrease of the objective in one sweep and the squared
        relative gradient are at most ``tol``; "prox" when the relative decrease is at most ``tol``
        three sweeps in a row (default 1e-12 for float64, 1e-6 for float32).
    max_iter : int
        Sweep limit (a ``ConvergenceWarning`` and ``converged=False`` if reached).
    certify : bool
        Attach :func:`hdlcore.certify` at the returned point.
    polar_method : {"auto", "exact", "probabilistic", "krylov"}
        How the certificate computes :math:`\\sigma_1` (l2/l2).
    rng : numpy Generator, int or None
        Random start and Lanczos start vector.
    group : torch.distributed process group, optional
        Solve together with the other processes of the group, each passing a sparse ``Y`` of the
        full shape with its share of the observed entries (see :mod:`hdlcore.matrix.distributed`).

    Returns
    -------
    MatrixResult
        ``U``, ``V`` (columns rescaled so that :math:`\\lVert u_i\\rVert_a = \\lVert v_i\\rVert_b`),
        ``X``, ``objective`` (product form), ``history["objective"]`` per sweep, ``converged``,
        ``certificate``.

    Notes
    -----
    A stationary point of this problem need not be a global minimizer when ``rank`` is too
    small; its certificate says so (polar above 1). See :func:`hdlcore.grow` for the
    meta-algorithm that reaches a certified global minimizer. Used in Chapter 3.

    References
    ----------
    B. D. Haeffele and R. Vidal, Structured low-rank matrix factorization: global optimality,
    algorithms, and applications, IEEE TPAMI 42(6), 2020. J. Bolte, S. Sabach and M. Teboulle,
    Proximal alternating linearized minimization, Math. Program. 146, 2014.

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.diag([5.0, 3.0, 1.0])
    >>> res = solve_factorized(Y, lam=2.0, rank=2, rng=0)
    >>> round(res.objective, 8), res.certificate.is_global  # the SVT optimum: 1/2 (4+4+1) + 2 * 4
    (12.5, True)
    """
    func = "solve_factorized"
    prob, lam = prepare(Y, mask, lam, func, group)
    pair = norm_pair(norms, func)
    method = descent_method(method, pair, func)
    tol, max_iter, polar_method, rng = solver_options(prob, func, tol, (1e-12, 1e-6), max_iter,
                                                      polar_method, rng)
    rng = prob.agree(func, rng, lam=lam, rank=rank, norms=pair.name, U0=U0, V0=V0, method=method, tol=tol,
                     max_iter=max_iter, certify=certify, polar_method=polar_method)
    U, V = start_point(prob, pair, rank, U0, V0, rng, func)
    t0 = time.perf_counter()
    U, V, hist, converged, n_iter = descend(prob, pair, U, V, lam, method=method, tol=tol,
                                            max_iter=max_iter, start=t0)
    if not converged:
        warn_not_converged(func, f"relative decrease or squared gradient above tol={tol:g} after "
                           f"{n_iter} sweeps (max_iter={max_iter})")
    cert = None
    if certify:
        cert = certificate(prob, U, V, lam, pair, tol=default_tol(prob.Y.dtype, 1e-6, 1e-4),
                           method=polar_method, rng=rng)
    return MatrixResult(U=prob.back(U), V=prob.back(V), objective=_objective(prob, pair, U, V, lam),
                        history=hist, converged=converged, certificate=cert, n_iter=n_iter, lam=lam,
                        norms=pair.name, method=method, x_max_entries=prob.x_max_entries)


@one_thread_when_small
def factorized_objective(Y: Array, U: Array, V: Array, lam: float, mask: Array | None = None,
                         norms: Any = ("l2", "l2")) -> float:
    """:math:`\\tfrac12\\lVert M\\odot(Y - UV^\\top)\\rVert_F^2 + \\lambda\\sum_i\\theta(u_i, v_i)` (float64).

    The factorized objective at any point, for any norm pair; used in Chapter 3 to compare
    factorized and convex objectives.

    Examples
    --------
    >>> import numpy as np
    >>> factorized_objective(np.eye(2), np.eye(2), np.eye(2), lam=1.0)  # zero loss + lam * (1*1 + 1*1)
    2.0
    """
    func = "factorized_objective"
    prob, lam = prepare(Y, mask, lam, func)
    pair = norm_pair(norms, func)
    U, V = factors(prob, U, V, func)
    return _objective(prob, pair, U, V, lam)


def _objective(prob, pair: NormPair, U, V, lam) -> float:
    return prob.loss(prob.residual(U, V)) + lam * float(pair._theta(U, V).sum())


def start_point(prob, pair: NormPair, rank, U0, V0, rng, func):
    """Validated ``(U0, V0)``, or a random start of size ``rank``."""
    import torch

    m, n = prob.shape
    if (U0 is None) != (V0 is None):
        raise param_error("V0" if V0 is None else "U0", func, "given together with "
                          + ("U0" if V0 is None else "V0"), None)
    if U0 is not None:
        U, V = factors(prob, U0, V0, func, pair, names=("U0", "V0"))
        return U.clone(), V.clone()
    rank = check_size(rank, "rank", func, ge=1, entries_per_unit=m + n)
    scale = (prob.y_norm() / np.sqrt(m * n * rank)) ** 0.5
    U = torch.as_tensor(scale * rng.standard_normal((m, rank)), dtype=prob.Y.dtype, device=prob.Y.device)
    V = torch.as_tensor(scale * rng.standard_normal((n, rank)), dtype=prob.Y.dtype, device=prob.Y.device)
    return (U.abs() if pair.u.nonneg else U), (V.abs() if pair.v.nonneg else V)


def rebalance(pair: NormPair, U, V):
    """Rescale each column so that ``||u_i||_a == ||v_i||_b`` (``U V^T`` and the objective unchanged)."""
    import torch

    a, b = pair.u._raw(U), pair.v._raw(V)
    live = (a > 0) & (b > 0)
    one = torch.ones_like(a)
    ratio = torch.where(live, b / torch.where(live, a, one), one).sqrt()
    U = U * torch.where(live, ratio, torch.zeros_like(a))
    V = V * torch.where(live, 1 / ratio, torch.zeros_like(b))
    return U, V


def descend(prob, pair, U, V, lam, *, method, tol, max_iter, start, objectives=None, times=None,
            inexact=False, memory=None):
    """Run local descent; returns ``(U, V, history, converged, sweeps)`` with balanced columns.

    ``method="lbfgs"`` (l2/l2, dense data with a mask; internal to :func:`hdlcore.grow`) runs
    :func:`hdlcore.matrix.quasi_newton.lbfgs` with ``memory`` and leaves the columns unbalanced.

    ``inexact`` (ALS only): with a mask and more than ``_CG_RANK`` columns, each ridge half-sweep
    runs a few preconditioned conjugate-gradient steps from the current factor instead of
    forming every row's Gram matrix (see :func:`_cg_rows`)."""
    objectives = [] if objectives is None else objectives
    times = [] if times is None else times
    if method == "lbfgs":  # no rebalancing: the memory continues where the last call stopped
        U, V, converged, k = quasi_newton.lbfgs(prob, U, V, lam, tol, max_iter, objectives, times, start,
                                                memory)
    else:
        U, V = rebalance(pair, U, V)
        if method == "als":
            U, V, converged, k = _als(prob, pair, U, V, lam, tol, max_iter, objectives, times, start,
                                      inexact=inexact)
        else:
            U, V, converged, k = _palm(prob, pair, U, V, lam, tol, max_iter, objectives, times, start)
        U, V = rebalance(pair, U, V)
    hist = {"objective": np.array(objectives), "time": np.array(times)}
    return U, V, hist, converged, k


# -- alternating least squares (l2/l2, balanced form) ------------------------------------------
def _ridge_rows(Yt, Mf, V, lam, U_old):
    """Rows of the minimizer over U of 1/2|M*(Y - U V^T)|^2 + lam/2 |U|^2 (``Yt`` is M*Y).

    Returns ``(U, gain, g2)``: ``gain = <B, U> - 1/2 sum_i u_i^T G_i u_i`` (``B = Yt V``,
    ``G_i = V^T D_i V``), so that the loss at the new point is ``1/2 |M*Y|^2 - gain`` without
    forming a residual; and ``g2 = |(G + lam I) U_old - B|^2 / |B|^2``, the squared relative
    gradient in U at the old point (a stationarity measure immune to the objective's rounding).
    """
    import torch

    r = V.shape[1]
    eye = torch.eye(r, dtype=V.dtype, device=V.device)
    if not is_tensor(Yt):  # observed entries of a sparse Y: the same solves, by blocks of rows
        return sparse.ridge_rows(Yt, V, lam, U_old)
    B = Yt @ V  # (m, n) @ (n, r) -> (m, r)
    b2 = max(float((B * B).sum()), 1e-300)
    if Mf is None:
        G = V.T @ V  # (r, r)
        U = torch.linalg.solve(G + lam * eye, B.T).T
        g = U_old @ (G + lam * eye) - B
        return U, float((B * U).sum()) - 0.5 * float(((U.T @ U) * G).sum()), float((g * g).sum()) / b2
    iu, ju = torch.triu_indices(r, r, device=V.device)
    VV = V[:, iu] * V[:, ju]  # (n, r(r+1)/2): the distinct products v_jk v_jl
    Gu = Mf @ VV  # (m, n) @ (n, r(r+1)/2) -> (m, r(r+1)/2): per-row Grams V^T D_i V
    G = torch.empty(Yt.shape[0], r, r, dtype=V.dtype, device=V.device)
    G[:, iu, ju] = Gu
    G[:, ju, iu] = Gu
    G = G + lam * eye  # (m, r, r)
    U = torch.linalg.solve(G, B.unsqueeze(-1)).squeeze(-1)  # (m, r, r) \ (m, r, 1) -> (m, r)
    g = (G @ U_old.unsqueeze(-1)).squeeze(-1) - B  # gradient in U at the old point
    quad = (U.unsqueeze(1) @ G @ U.unsqueeze(-1)).sum() - lam * float((U * U).sum())
    return U, float((B * U).sum()) - 0.5 * float(quad), float((g * g).sum()) / b2


#: Above this many columns (with a mask) an inexact ALS sweep solves the ridge rows by
#: conjugate gradients: O(mnr) per step instead of the O(mnr^2) of the per-row Gram matrices.
_CG_RANK = 16
#: Conjugate-gradient steps per half-sweep of inexact ALS.
_CG_STEPS = 3


def _cg_rows(Yt, Mf, V, lam, U_old, steps=_CG_STEPS):
    """Approximate :func:`_ridge_rows`: ``steps`` preconditioned conjugate-gradient steps on every
    row's ridge system ``(V^T D_i V + lam I) u_i = V^T D_i y_i``, started at ``U_old``.

    The operator is applied to all rows at once, ``P -> (M * (P V^T)) V + lam P`` (O(mnr)); the
    preconditioner replaces ``D_i`` by its mean ``c_i I`` (the fraction observed in row ``i``), one
    eigendecomposition of ``V^T V`` for every row. Conjugate gradients from ``U_old`` never
    increase a row's quadratic, so the objective decreases monotonically as with exact rows.
    Returns ``(U, gain, g2)`` with :func:`_ridge_rows`'s meaning (``g2`` at ``U_old`` exactly).
    """
    import torch

    B = Yt @ V  # (m, n) @ (n, r) -> (m, r)
    b2 = max(float((B * B).sum()), 1e-300)
    precondition = quasi_newton.row_metric_solver(Mf, V, lam)  # rows solve (c_i V^T V + lam I) z = g

    def apply(P):
        return (Mf * (P @ V.T)) @ V + lam * P  # (m, r) @ (r, n) -> (m, n) -> (m, r)

    U = U_old
    G = B - apply(U)  # the negative gradient in U at U_old
    g2 = float((G * G).sum()) / b2
    Z = precondition(G)
    P = Z
    rz = (G * Z).sum(1, keepdim=True)
    tiny = torch.finfo(U.dtype).tiny
    for _ in range(steps):
        AP = apply(P)
        alpha = rz / (P * AP).sum(1, keepdim=True).clamp_min(tiny)
        U = U + alpha * P
        G = G - alpha * AP
        Z = precondition(G)
        rz_new = (G * Z).sum(1, keepdim=True)
        P = Z + (rz_new / rz.clamp_min(tiny)) * P
        rz = rz_new
    AU = B - G  # (V^T D_i V + lam I) u_i for every row, without another product
    gain = float((B * U).sum()) - 0.5 * float((U * (AU - lam * U)).sum())
    return U, gain, g2


def _als(prob, pair, U, V, lam, tol, max_iter, objectives, times, start, accelerate=True,
         inexact=False):
    """Alternating exact ridge updates. Stops when max(relative decrease, relative gradient^2)
    is at most ``tol``: the decrease alone stalls at the objective's rounding level."""
    import torch

    Yt, YtT = prob.Y, prob.Y.T
    Mf, MfT = prob.Mf, (None if prob.Mf is None else prob.Mf.T)
    if U.shape[1] == 0:
        objectives.append(prob.loss(prob.Y))
        times.append(time.perf_counter() - start)
        return U, V, True, 0
    # float64: the loss from the ridge solve's own quantities (cancellation costs ~1e-14);
    # float32 cannot afford the cancellation, so the residual is formed.
    cheap = Yt.dtype == torch.float64
    half_y2 = prob.loss(Yt)

    def balanced(U, V, gain):
        loss = half_y2 - gain if cheap else prob.loss(prob.residual(U, V))
        return loss + 0.5 * lam * float((U * U).sum() + (V * V).sum())

    def exact(U, V):
        return prob.loss(prob.residual(U, V)) + 0.5 * lam * float((U * U).sum() + (V * V).sum())

    f = exact(U, V)
    U_prev = V_prev = None
    alpha = 1.0  # extrapolation step along the last sweep's direction (adapted)
    best_g2, since_best = float("inf"), 0
    last_decrease = float("inf")
    k = 0
    rows = _cg_rows if inexact and Mf is not None and U.shape[1] > _CG_RANK else _ridge_rows
    for k in range(1, max_iter + 1):
        U, _, g2 = rows(Yt, Mf, V, lam, U)
        V, gain, _ = rows(YtT, MfT, U, lam, V)
        f_new = balanced(U, V, gain)
        objectives.append(f_new)
        times.append(time.perf_counter() - start)
        done = max(f - f_new, g2 * abs(f_new)) <= tol * max(abs(f_new), 1e-300)
        slow = f - f_new > 0.3 * last_decrease  # linear convergence with a ratio above 0.3
        last_decrease, f = f - f_new, f_new
        if done:
            return U, V, True, k
        # Stalled (at the rounding floor of this dtype, or converging too slowly to matter):
        # 50 sweeps without a 10 % gain on the best gradient end the descent, unconverged.
        best_g2, since_best = (g2, 0) if g2 < 0.81 * best_g2 else (best_g2, since_best + 1)
        if since_best >= 50:
            return U, V, False, k
        if accelerate and U_prev is not None and slow:
            # Extrapolate along the last sweep (a line search on the ALS trajectory) when ALS is
            # converging slowly; kept only if it lowers the objective, so the method stays monotone.
            Ue, Ve = U + alpha * (U - U_prev), V + alpha * (V - V_prev)
            fe = exact(Ue, Ve)
            if fe < f:
                U, V, f, alpha = Ue, Ve, fe, min(2 * alpha, 64.0)
                objectives[-1] = f
            else:
                alpha = max(alpha / 4, 0.25)
        U_prev, V_prev = U, V
    return U, V, False, k


# -- proximal alternating linearized minimization (any pair) --------------------------------
def _grad_U(prob, U, V):
    """Gradient of the loss in U: ``-R V``."""
    if prob.Mf is None:
        return U @ (V.T @ V) - prob.Y @ V  # cheaper than forming R with full data
    return -(prob.residual(U, V) @ V)


def _palm(prob, pair, U, V, lam, tol, max_iter, objectives, times, start):
    import torch

    if U.shape[1] == 0:
        objectives.append(prob.loss(prob.Y))
        times.append(time.perf_counter() - start)
        return U, V, True, 0
    ProbT = prob.transposed() if hasattr(prob, "transposed") else _Transposed(prob)
    f = _objective(prob, pair, U, V, lam)
    U_old, V_old, t = U, V, 1.0
    calm, k = 0, 0
    for k in range(1, max_iter + 1):
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        w = (t - 1) / t_next
        for attempt in (0, 1):
            ww = w if attempt == 0 else 0.0
            Uh = U + ww * (U - U_old)
            LU = max(float(torch.linalg.matrix_norm(V.T @ V, ord=2)), 1e-300)
            Un = pair.u._prox(Uh - _grad_U(prob, Uh, V) / LU, lam * pair.v._raw(V) / LU)
            Vh = V + ww * (V - V_old)
            LV = max(float(torch.linalg.matrix_norm(Un.T @ Un, ord=2)), 1e-300)
            Vn = pair.v._prox(Vh - _grad_U(ProbT, Vh, Un) / LV, lam * pair.u._raw(Un) / LV)
            f_new = _objective(prob, pair, Un, Vn, lam)
            if f_new <= f or ww == 0.0:
                break
            t_next = 1.0  # the extrapolated step increased F: restart without momentum
        U_old, V_old, U, V, t = U, V, Un, Vn, t_next
        objectives.append(f_new)
        times.append(time.perf_counter() - start)
        calm = calm + 1 if f - f_new <= tol * max(abs(f_new), 1e-300) else 0
        f = min(f, f_new)
        if calm >= 3:
            return U, V, True, k
        if k % 100 == 0:  # keep the two blocks' step sizes comparable
            U, V = rebalance(pair, U, V)
            U_old, V_old, t = U, V, 1.0
    return U, V, False, k


class _Transposed:
    """The problem seen from V: ``Y^T``, ``M^T``."""

    def __init__(self, prob):
        self.Y = prob.Y.T
        self.Mf = None if prob.Mf is None else prob.Mf.T

    def residual(self, V, U):
        import torch

        R = torch.addmm(self.Y, V, U.T, alpha=-1)
        return R if self.Mf is None else self.Mf * R
