"""The convex side of matrix factorization: singular value thresholding and nuclear-norm problems.

.. math:: \\min_X\\ \\tfrac12\\lVert M\\odot(Y - X)\\rVert_F^2 + \\lambda\\lVert X\\rVert_*

With every entry observed the solution is one singular value thresholding of ``Y``
(:func:`prox_nuclear`). With missing entries (matrix completion) :func:`solve_convex` runs
accelerated proximal gradient with a full SVD per step and function-value restarts. It is
the reference the factorized solvers are compared with, in Chapter 3 and in
``benchmarks/bench_completion.py``.
"""

from __future__ import annotations

import time

import numpy as np

from .._backend import Array, as_compute_tensor, as_tensor
from .._runtime import one_thread_when_small
from .._validation import check_array, check_scalar, warn_not_converged
from .certificates import certificate
from .norms import norm_pair
from .problem import MatrixResult, prepare, solver_options

__all__ = ["prox_nuclear", "solve_convex"]


@one_thread_when_small
def prox_nuclear(X: Array, tau: float) -> Array:
    """Singular value thresholding: the prox of :math:`\\tau\\lVert\\cdot\\rVert_*`.

    Parameters
    ----------
    X : (m, n) array or tensor
    tau : float
        Threshold, :math:`\\tau \\ge 0`.

    Returns
    -------
    array or tensor
        :math:`W\\,(\\Sigma - \\tau I)_+ Z^\\top` for :math:`X = W\\Sigma Z^\\top`, same type as ``X``.

    Notes
    -----
    .. math:: \\operatorname{prox}_{\\tau\\lVert\\cdot\\rVert_*}(X)
       = \\arg\\min_Z\\ \\tfrac12\\lVert Z - X\\rVert_F^2 + \\tau\\lVert Z\\rVert_* .

    Used in Chapter 3 (the closed-form convex optimum with full data).

    References
    ----------
    J.-F. Cai, E. J. Candès and Z. Shen, A singular value thresholding algorithm for matrix
    completion, SIAM J. Optim. 20(4), 2010.

    Examples
    --------
    >>> import numpy as np
    >>> prox_nuclear(np.diag([3.0, 1.0]), 2.0)
    array([[1., 0.],
           [0., 0.]])
    """
    func = "prox_nuclear"
    X = check_array(X, "X", func, ndim=2)
    tau = check_scalar(tau, "tau", func, ge=0)
    Xt, back = as_compute_tensor(X)
    P, s, Qh = _svt(Xt, tau)
    return back((P * s) @ Qh)  # (m, k) * (k,) @ (k, n) -> (m, n)


def _svt(X, tau):
    """Thresholded SVD factors ``(P, s, Qh)`` with ``s > 0`` only (full SVD)."""
    import torch

    P, S, Qh = torch.linalg.svd(X, full_matrices=False)
    s = (S - tau).clamp_min(0)
    k = int((s > 0).sum())
    return P[:, :k], s[:k], Qh[:k]


@one_thread_when_small
def solve_convex(
    Y: Array,
    lam: float,
    mask: Array | None = None,
    *,
    tol: float | None = None,
    max_iter: int = 5000,
    X0: Array | None = None,
    certify: bool = True,
    polar_method: str = "auto",
    rng: np.random.Generator | int | None = None,
) -> MatrixResult:
    """Nuclear-norm regularized least squares, full data (closed form) or masked (APG + restarts).

    Parameters
    ----------
    Y : (m, n) array or tensor
        Data; entries where ``mask`` is False are ignored (they must still be finite).
    lam : float
        :math:`\\lambda > 0`.
    mask : (m, n) bool array, optional
        True where observed; ``None`` means every entry is.
    tol : float, optional
        Stop when the certificate proves (with the computed polar) ``F(X) - F* <= tol * F(X)``
        (default 1e-7 for float64; 1e-3 for float32, whose SVDs
        resolve the certificate only to about 1e-4).
    max_iter : int
        Iteration limit of the masked solver (a :class:`~hdlcore.ConvergenceWarning` and
        ``converged=False`` if reached).
    X0 : (m, n) array, optional
        Starting point of the masked solver (default 0).
    certify : bool
        Attach :func:`hdlcore.certify`'s certificate (on the balanced SVD factors of ``X``).
    polar_method : {"auto", "exact", "probabilistic", "krylov"}
        How the certificate computes :math:`\\sigma_1`.
    rng : numpy Generator, int or None
        Lanczos start vector of the certificate.

    Returns
    -------
    MatrixResult
        ``X``; its balanced SVD factors ``U = W\\sqrt{S}``, ``V = Z\\sqrt{S}``; ``objective``;
        ``history["objective"]`` per iteration; ``converged``; ``certificate``.

    Notes
    -----
    .. math:: F(X) = \\tfrac12\\lVert M\\odot(Y - X)\\rVert_F^2 + \\lambda\\lVert X\\rVert_* .

    The masked loss has a 1-Lipschitz gradient, so the step is 1:
    :math:`X_{k+1} = \\operatorname{SVT}_\\lambda(W_k + M\\odot(Y - W_k))` at the extrapolated point
    :math:`W_k` (Beck and Teboulle, 2009); when the objective would increase, the momentum is
    reset and a plain proximal-gradient step is taken instead (O'Donoghue and Candès, 2015),
    so the objective decreases monotonically. Each step costs one full SVD, :math:`O(mn\\min(m,n))`.
    Used in Chapter 3 and as the reference in ``benchmarks/bench_completion.py``.

    References
    ----------
    J.-F. Cai, E. J. Candès and Z. Shen, SIAM J. Optim. 20(4), 2010. A. Beck and M. Teboulle,
    SIAM J. Imaging Sci. 2(1), 2009. B. O'Donoghue and E. Candès, Found. Comput. Math. 15, 2015.

    Examples
    --------
    >>> import numpy as np
    >>> res = solve_convex(np.diag([3.0, 1.0]), lam=2.0)
    >>> res.X.round(12), res.certificate.is_global
    (array([[1., 0.],
           [0., 0.]]), True)
    """
    func = "solve_convex"
    prob, lam = prepare(Y, mask, lam, func)
    tol, max_iter, polar_method, rng = solver_options(prob, func, tol, (1e-7, 1e-3), max_iter,
                                                      polar_method, rng)
    start = time.perf_counter()
    pair = norm_pair(("l2", "l2"))
    cert_tol = tol

    def cert_of(P, s, Qh):
        root = s.sqrt()
        return certificate(prob, P * root, Qh.T * root, lam, pair, tol=cert_tol, method=polar_method,
                           rng=rng)

    cert = None
    if prob.M is None:
        P, s, Qh = _svt(prob.Y, lam)
        objective = _objective(prob, (P * s) @ Qh, s, lam)
        hist = {"objective": np.array([objective]), "time": np.array([time.perf_counter() - start])}
        converged, n_iter = True, 0
    else:
        if X0 is not None:
            X0 = check_array(X0, "X0", func, ndim=2, shape=prob.shape)
            X0 = as_tensor(X0)[0].to(prob.Y)
        P, s, Qh, hist, converged, n_iter, cert = _apg(prob, lam, tol, max_iter, X0, start, cert_of)
        if not converged:
            warn_not_converged(func, f"the certified relative bound is above tol={tol:g} after "
                               f"{n_iter} iterations")
        objective = float(hist["objective"][-1])
    root = s.sqrt()
    U, V = P * root, Qh.T * root  # balanced factors: U^T U = V^T V = diag(s)
    if certify and cert is None:
        cert = cert_of(P, s, Qh)
    return MatrixResult(U=prob.back(U), V=prob.back(V), objective=objective, history=hist,
                        converged=converged, certificate=cert if certify else None, n_iter=n_iter,
                        lam=lam, norms="l2/l2", method="closed form (SVT)" if prob.M is None else "apg")


def _objective(prob, X, s, lam) -> float:
    R = prob.masked(prob.Y - X)
    return prob.loss(R) + lam * float(s.sum())


def _apg(prob, lam, tol, max_iter, X0, start, cert_of):
    """Accelerated proximal gradient with function-value restarts (monotone).

    Stops when the certificate's bound (with the computed polar) is at most ``tol * F``. The
    certificate costs about one step, so it is evaluated only once the objective decreases by
    less than ``tol * F`` per step (a larger decrease proves the gap is larger), and then at
    most every 5 steps.
    """
    import torch

    Y, Mf = prob.Y, prob.Mf  # Y is already zero where unobserved
    X = torch.zeros_like(Y) if X0 is None else X0.clone()
    if X0 is None:
        f = prob.loss(Y)
    else:
        f = _objective(prob, X, torch.linalg.svdvals(X), lam)
    X_prev, t = X, 1.0
    P = torch.zeros(Y.shape[0], 0, dtype=Y.dtype, device=Y.device)
    Qh = torch.zeros(0, Y.shape[1], dtype=Y.dtype, device=Y.device)
    s = torch.zeros(0, dtype=Y.dtype, device=Y.device)
    objectives, times = [f], [time.perf_counter() - start]
    converged, cert, last_check, stalled = False, None, -(10**9), 0
    eps = float(torch.finfo(Y.dtype).eps)
    k = 0
    for k in range(1, max_iter + 1):
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        W = X + ((t - 1) / t_next) * (X - X_prev) if t > 1 else X
        Pn, sn, Qhn = _svt(W + Mf * (Y - W), lam)  # gradient step (L = 1), then SVT
        Xn = (Pn * sn) @ Qhn
        fn = _objective(prob, Xn, sn, lam)
        if fn > f and t > 1:  # restart: drop the momentum, take a plain prox-gradient step
            t_next = 1.0
            Pn, sn, Qhn = _svt(X + Mf * (Y - X), lam)
            Xn = (Pn * sn) @ Qhn
            fn = _objective(prob, Xn, sn, lam)
        X_prev, X, t = X, Xn, t_next
        P, s, Qh = Pn, sn, Qhn
        decrease = f - fn
        f = min(f, fn)
        objectives.append(fn)
        times.append(time.perf_counter() - start)
        scale = max(abs(fn), 1e-300)
        stalled = stalled + 1 if decrease <= 4 * eps * scale else 0
        if decrease <= tol * scale and k - last_check >= 5:
            last_check = k
            cert = cert_of(P, s, Qh)
            if cert.bound_estimate <= tol * scale:
                converged = True
                break
            cert = None
        if stalled >= 10:  # rounding level: no further progress is possible
            break
    hist = {"objective": np.array(objectives), "time": np.array(times)}
    return P, s, Qh, hist, converged, k, cert
