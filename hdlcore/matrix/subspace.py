"""The convex problem restricted to the spans of the current factors (l2/l2, dense or sparse data).

With orthonormal bases ``Qu`` (m x r) and ``Qv`` (n x r) of the spans of ``U`` and ``V``, every
:math:`X = Q_u S Q_v^\\top` has :math:`\\lVert X\\rVert_* = \\lVert S\\rVert_*`, so

.. math:: \\min_{S\\in\\mathbb R^{r\\times r}}\\ \\tfrac12\\lVert M\\odot(Y - Q_u S Q_v^\\top)\\rVert_F^2
   + \\lambda\\lVert S\\rVert_*

is the nuclear-norm problem on those spans: convex, with ``r^2`` unknowns, and well conditioned
(its operator is close to ``p I`` for a mask observed at rate ``p``). Its solution fixes what the
factorized descents fix slowly near an optimum of moderate rank: the scales of the columns whose
singular values are small, where the factorized objective is nearly flat. On a 400 x 400
completion with an optimum of rank 51 whose last singular value is 0.012, the polar's excess
left after the growth steps lies almost entirely inside the spans (``Qu^T R Qv``), and L-BFGS
alone needed about 130 steps to take the polar from 1 + 7e-4 to 1 + 1e-6; alternating this solve
with 20-30 L-BFGS steps (which move the spans) needs about 40 (``grow`` at n = 400: 52-118 sweeps
instead of 146-152 at ranks 51-129).

Solved by FISTA (Beck and Teboulle, 2009) with a step from a few power iterations on the
restricted operator; each iteration costs two products of size m x n x r and an r x r SVD. The
result is kept only if it lowers the factorized objective, so every use keeps grow monotone.

Used by :func:`hdlcore.grow` (its final descents with a mask); see ``benchmarks/bench_ranks.py``.

References
----------
A. Beck and M. Teboulle, A fast iterative shrinkage-thresholding algorithm for linear inverse
problems, SIAM J. Imaging Sci. 2, 2009; C.-J. Hsieh and P. Olsen, Nuclear norm minimization via
active subspace selection, ICML 2014.
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []

#: FISTA iterations per restricted solve (the operator is well conditioned; more than 8 cost
#: more than they save inside hdlcore.grow, measured at n = 400, ranks 51-129).
ITERATIONS = 8
#: Power iterations for the step size (the estimate is then enlarged by _SAFETY).
_POWER = 6
_SAFETY = 1.1


def restricted_solve(prob, U, V, lam: float, iterations: int | None = None,
                     cache: dict | None = None) -> tuple[Any, Any, bool]:
    """FISTA on ``S`` with ``X = Qu S Qv^T``, started at the current ``X = U V^T``.

    Returns balanced factors of the solution (columns with zero singular value dropped) and
    True, or ``(U, V, False)`` when the solution does not lower the factorized objective
    ``1/2 |M * (Y - U V^T)|_F^2 + lam sum_i |u_i| |v_i|``. ``cache`` (a dict kept by the caller)
    carries the power iteration's vector to the next call of the same size, which then takes
    two power iterations instead of six.
    """
    import torch

    iterations = ITERATIONS if iterations is None else iterations
    R = prob.residual(U, V)  # M * (Y - U V^T)
    theta = torch.linalg.vector_norm(U, dim=0) * torch.linalg.vector_norm(V, dim=0)  # (r,)
    f = prob.loss(R) + lam * float(theta.sum())
    Qu, Ru = torch.linalg.qr(U)  # (m, r), (r, r)
    Qv, Rv = torch.linalg.qr(V)  # (n, r), (r, r)

    dense = isinstance(prob.Y, torch.Tensor)

    def op(S):  # Qu^T (M * (Qu S Qv^T)) Qv
        if dense:  # (m, r) @ (r, n) -> (m, n) -> (r, n) -> (r, r)
            return Qu.T @ prob.masked((Qu @ S) @ Qv.T, inplace=True) @ Qv
        # sparse: Qu S Qv^T on the observed entries only (the residual of Y = 0 is its negative)
        return -(Qu.T @ (prob.residual_of_zero(Qu @ S, Qv) @ Qv))

    # (r, m) @ (m, n) @ (n, r): the data's part on the spans (Y is M * Y)
    B = Qu.T @ prob.Y @ Qv if dense else Qu.T @ (prob.Y @ Qv)
    S0 = Ru @ Rv.T  # U V^T = Qu S0 Qv^T
    cache = {} if cache is None else cache
    E, last = cache.get("E"), 0.0
    if E is not None and E.shape != S0.shape:
        r0 = E.shape[0]
        if abs(S0.shape[0] - r0) <= max(2, r0 // 10):
            # A few columns grown or pruned since the last call: the spans barely changed, and so
            # did the operator's norm (0.552, 0.562, 0.557 at n = 400 for 50, 52, 51 columns).
            # The last vector, cut or padded, starts the power iteration, and the estimate is at
            # least the last norm, so that two iterations cannot underestimate it much.
            pad = torch.zeros(S0.shape, dtype=S0.dtype, device=S0.device)
            k = min(r0, S0.shape[0])
            pad[:k, :k] = E[:k, :k]
            E, last = pad, cache["norm"]
        else:
            E = None
    power = _POWER if E is None else 2
    if E is None:
        E = torch.randn(S0.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(S0)
    step = 0.0
    for _ in range(power):  # the operator's norm (at most 1 for a 0/1 mask)
        E = op(E)
        step = float(torch.linalg.vector_norm(E))
        E = E / max(step, 1e-300)
    step = max(step, last)
    cache["E"], cache["norm"] = E, step
    L = min(max(step * _SAFETY, 1e-12), 1.0)  # (exactly 1 without a mask)
    S, Z, t = S0, S0, 1.0
    G = -(Qu.T @ (R @ Qv))  # the loss's gradient at S0, from the residual: (r, m) @ ((m, n) @ (n, r))
    s = torch.zeros(0, dtype=S0.dtype, device=S0.device)
    P, Qh = S0[:, :0], S0[:0]
    for k in range(iterations):
        if k:
            G = op(Z) - B  # gradient of the loss at Z
        S_new, P, s, Qh = _shrink(Z - G / L, lam / L)  # prox of (lam / L) |.|_*
        t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
        Z = S_new + ((t - 1) / t_new) * (S_new - S)
        S, t = S_new, t_new
    root = s.sqrt()
    Un, Vn = (Qu @ P) * root, (Qv @ Qh.T) * root
    # The factorized objective of the factors returned (their own column norms, as f above).
    theta_n = torch.linalg.vector_norm(Un, dim=0) * torch.linalg.vector_norm(Vn, dim=0)
    fn = prob.loss(prob.residual(Un, Vn)) + lam * float(theta_n.sum())
    if fn < f:
        return Un, Vn, True
    return U, V, False


def _shrink(A, tau: float):
    """Singular value soft-thresholding of a small square ``A`` by ``tau``: ``(S, P, s, Qh)`` with
    ``S = P diag(s) Qh`` over the values left above zero (``s > 0``).

    From the eigendecomposition of ``A^T A``: ``Qh``'s rows are its eigenvectors above ``tau**2``,
    ``sigma`` the roots of their eigenvalues, ``P = A Qh^T / sigma``. At r = 51 / 98 / 129,
    0.28 / 0.77 / 1.33 ms against 0.39 / 1.27 / 2.28 ms for a full SVD (two cores, interleaved).
    Only values above ``tau`` are kept, where squaring loses nothing that matters: the
    eigenvalues' rounding, ``r eps sigma_1^2``, moves a value ``sigma`` by ``r eps sigma_1^2 /
    (2 sigma)``; a cluster of equal values, whose vectors the eigendecomposition may mix, is
    shrunk alike whatever its basis.
    """
    import torch

    w, E = torch.linalg.eigh(A.T @ A)  # ascending
    sigma = w.clamp_min(0).sqrt()
    keep = sigma > tau
    sigma, E = sigma[keep], E[:, keep]
    P = A @ E  # (r, k): the left vectors times sigma
    P = P / torch.linalg.vector_norm(P, dim=0).clamp_min(torch.finfo(A.dtype).tiny)
    s = sigma - tau
    return (P * s) @ E.T, P, s, E.T
