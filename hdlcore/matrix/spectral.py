"""The largest singular value, computed in a way a certificate can state honestly.

A polar certificate for the nuclear norm needs :math:`\\sigma_1(R)` of a residual ``R``.
Two ways are offered, and each says what it proves:

- ``"exact"``: a full SVD (LAPACK through torch), accurate to rounding. This is a proof, up
  to the rounding allowance ``max(m, n) * eps * sigma_1`` of a backward-stable SVD.
- ``"krylov"``: Golub-Kahan-Lanczos bidiagonalization with full reorthogonalization from a
  random start, run until the top Ritz triplet's residual is below ``tol * sigma``. The Ritz
  value is a **lower bound** on :math:`\\sigma_1`; the small residual proves only that *some*
  singular value lies within it. A larger :math:`\\sigma_1` that the iteration missed is very
  unlikely from a random start, but not impossible, so this is evidence, not proof. The
  deterministic bound :math:`\\sigma_1 \\le \\lVert R\\rVert_F` is returned alongside.

A randomized low-rank SVD is never used: it underestimates :math:`\\sigma_1` by percents when
the top of the spectrum is flat, which is exactly the residual's spectrum near an optimum.

Used by Chapter 3 (matrix factorization) through :func:`hdlcore.polar` and
:func:`hdlcore.certify`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import Array, as_compute_tensor
from .._runtime import one_thread_when_small
from .._validation import check_array, check_choice, check_rng, check_scalar

__all__ = ["SigmaMax", "sigma_max", "EXACT_SIZE_LIMIT"]

#: ``method="auto"`` uses a full SVD when ``m * n * min(m, n)`` is at most this (a 500 x 500
#: matrix), Lanczos otherwise.
EXACT_SIZE_LIMIT = 500**3


@dataclass(frozen=True)
class SigmaMax:
    """The largest singular value of a matrix and how it was obtained.

    Attributes
    ----------
    value : float
        The computed :math:`\\sigma_1` (exact to rounding, or the top Ritz value).
    u, v : array
        Unit left and right singular vectors (the top pair, or its Ritz approximation).
    kind : str
        ``"exact"`` (full SVD) or ``"krylov"`` (Lanczos; ``value`` is a lower bound).
    upper : float
        A proven upper bound on :math:`\\sigma_1`: ``value`` plus its rounding allowance when
        exact, the Frobenius norm otherwise.
    residual : float
        ``||A^T u - value v||`` of the returned pair (0 for an exact SVD up to rounding).
    steps : int
        Lanczos steps (0 for an exact SVD).
    converged : bool
        Exact, or the Ritz residual reached ``tol * value``.
    """

    value: float
    u: Any
    v: Any
    kind: str
    upper: float
    residual: float
    steps: int
    converged: bool

    @property
    def basis(self) -> str:
        """One sentence: how the value was obtained and what it proves."""
        if self.kind == "exact":
            return "exact: full SVD (proof, up to the rounding allowance max(m, n)*eps*sigma_1)"
        state = "converged" if self.converged else "NOT converged"
        return (f"krylov: Lanczos bidiagonalization, {self.steps} steps, Ritz residual "
                f"{self.residual:.1e} ({state}); a lower bound on sigma_1 and evidence, not proof; "
                f"proven only sigma_1 <= ||R||_F = {self.upper:.6g}")


@one_thread_when_small
def sigma_max(
    A: Array,
    *,
    method: str = "auto",
    tol: float = 1e-10,
    max_steps: int = 400,
    rng: np.random.Generator | int | None = None,
) -> SigmaMax:
    """Largest singular value and its singular vectors, exact or by converged Lanczos.

    Parameters
    ----------
    A : (m, n) array or tensor
    method : {"auto", "exact", "krylov"}
        ``"auto"`` is exact for matrices up to 500 x 500 (see :data:`EXACT_SIZE_LIMIT`).
    tol : float
        Lanczos stops when the top Ritz residual is at most ``tol * value``.
    max_steps : int
        Largest Krylov dimension; the result has ``converged=False`` if it is reached first.
    rng : numpy Generator, int or None
        Draws the Lanczos start vector.

    Returns
    -------
    SigmaMax
        ``u`` and ``v`` have ``A``'s array type; the scalars are Python floats.

    Notes
    -----
    Used in Chapter 3 by the certificates. Lanczos works on :math:`A^\\top A` implicitly
    (Golub and Kahan, 1965): :math:`A V_k = U_k B_k`,
    :math:`A^\\top U_k = V_k B_k^\\top + \\beta_k v_{k+1} e_k^\\top`, and the
    residual of the top Ritz triplet :math:`(\\theta, U_k p, V_k q)` is :math:`\\beta_k |p_k|`.

    References
    ----------
    G. Golub and W. Kahan, Calculating the singular values and pseudo-inverse of a matrix,
    SIAM J. Numer. Anal. B 2(2), 1965.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.diag([3.0, 2.0, 1.0])
    >>> s = sigma_max(A)
    >>> round(s.value, 12), s.kind
    (3.0, 'exact')
    """
    func = "sigma_max"
    A = check_array(A, "A", func, ndim=2)
    method = check_choice(method, "method", func, ("auto", "exact", "krylov"))
    tol = check_scalar(tol, "tol", func, gt=0, lt=1)
    max_steps = check_scalar(max_steps, "max_steps", func, kind="int", ge=1)
    rng = check_rng(rng, "rng", func)
    At, back = as_compute_tensor(A)
    out = top_singular(At, method=method, tol=tol, max_steps=max_steps, rng=rng)
    return SigmaMax(out.value, back(out.u), back(out.v), out.kind, out.upper, out.residual,
                    out.steps, out.converged)


def top_singular(A, *, method: str = "auto", tol: float = 1e-10, max_steps: int = 400,
                 rng: np.random.Generator | None = None, vectors: bool = True, v0=None) -> SigmaMax:
    """Internal (trusted arguments, tensors in and out): see :func:`sigma_max`."""
    import torch

    m, n = A.shape
    if method == "auto":
        method = "exact" if m * n * min(m, n) <= EXACT_SIZE_LIMIT else "krylov"
    if method == "exact":
        if vectors:
            P, S, Qh = torch.linalg.svd(A, full_matrices=False)
            u, v, value = P[:, 0], Qh[0], float(S[0])
        else:
            value = float(torch.linalg.svdvals(A)[0])
            u = v = None
        eps = float(torch.finfo(A.dtype).eps)
        return SigmaMax(value, u, v, "exact", value * (1 + max(m, n) * eps), 0.0, 0, True)
    rng = rng if rng is not None else np.random.default_rng()
    return _lanczos(A, tol=tol, max_steps=max_steps, rng=rng, v0=v0)


def _lanczos(A, *, tol: float, max_steps: int, rng: np.random.Generator, v0=None) -> SigmaMax:
    """Golub-Kahan-Lanczos with full reorthogonalization; top Ritz triplet."""
    import torch

    m, n = A.shape
    k_max = min(m, n, max_steps)
    eps = float(torch.finfo(A.dtype).eps)
    fro = float(torch.linalg.vector_norm(A)) * (1 + 2 * (m + n) * eps)  # proven, rounding included
    dev, dt = A.device, A.dtype
    Vk = torch.zeros(n, k_max + 1, dtype=dt, device=dev)  # right Lanczos vectors (columns)
    Uk = torch.zeros(m, k_max, dtype=dt, device=dev)  # left Lanczos vectors
    if v0 is None:  # a random start (the default, and what a certificate uses)
        v = torch.as_tensor(rng.standard_normal(n), dtype=dt, device=dev)
    else:  # a warm start (used inside hdlcore.grow, never by a certificate)
        noise = torch.as_tensor(rng.standard_normal(n), dtype=dt, device=dev)
        v = v0.to(dtype=dt, device=dev) + 1e-3 * noise / n**0.5
    Vk[:, 0] = v / torch.linalg.vector_norm(v)
    alphas: list[float] = []
    betas: list[float] = []
    tiny = float(torch.finfo(dt).eps) * max(fro, float(torch.finfo(dt).tiny))
    k = 0
    for j in range(k_max):
        if j == 0:
            p = A @ Vk[:, 0]  # (m, n) @ (n,) -> (m,)
        else:
            p = torch.addmv(Uk[:, j - 1], A, Vk[:, j], beta=-betas[-1])  # A v_j - beta u_{j-1}
            p = _reorthogonalize(p, Uk[:, :j])
        alpha = float(torch.linalg.vector_norm(p))
        if alpha <= tiny:  # A v_j lies in span(U): the Krylov space is invariant
            break
        alphas.append(alpha)
        Uk[:, j] = p / alpha
        q = torch.addmv(Vk[:, j], A.T, Uk[:, j], beta=-alpha)  # A^T u_j - alpha v_j, (n,)
        q = _reorthogonalize(q, Vk[:, : j + 1])
        beta = float(torch.linalg.vector_norm(q))
        betas.append(beta)
        k = j + 1
        invariant = beta <= tiny
        if not invariant:
            Vk[:, j + 1] = q / beta
        if invariant or k == k_max or (k >= 8 and k % 4 == 0):
            value, resid = _ritz_value(alphas, betas, k)
            if invariant or resid <= tol * value:
                break
    value, u, v, resid = _ritz(Uk, Vk, alphas, betas, k)
    converged = resid <= tol * value or k == min(m, n)
    return SigmaMax(value, u, v, "krylov", fro, resid, k, bool(converged))


def _reorthogonalize(p, Q):
    """Remove the components of ``p`` along the orthonormal columns of ``Q`` (again if needed)."""
    import torch

    before = torch.linalg.vector_norm(p)
    p = torch.addmv(p, Q, Q.T @ p, alpha=-1)  # p - Q (Q^T p)
    if float(torch.linalg.vector_norm(p)) < 0.7 * float(before):  # "twice is enough" (Kahan, Parlett)
        p = torch.addmv(p, Q, Q.T @ p, alpha=-1)
    return p


def _bidiagonal_svd(alphas, betas, k):
    """SVD of the k x k upper bidiagonal matrix of the Lanczos coefficients (CPU, float64)."""
    import torch

    B = torch.diag(torch.tensor(alphas[:k], dtype=torch.float64))
    if k > 1:
        B = B + torch.diag(torch.tensor(betas[: k - 1], dtype=torch.float64), 1)
    return torch.linalg.svd(B)


def _ritz_value(alphas, betas, k):
    """Top Ritz value and its residual ``beta_k |p_k|`` (no vectors: the convergence test)."""
    P, S, _ = _bidiagonal_svd(alphas, betas, k)
    return float(S[0]), abs(betas[k - 1] * float(P[k - 1, 0]))


def _ritz(Uk, Vk, alphas, betas, k):
    """Top Ritz triplet of the k-step bidiagonalization and its residual."""
    import torch

    if k == 0:
        return 0.0, Uk[:, 0] * 0, Vk[:, 0], 0.0
    P, S, Qh = _bidiagonal_svd(alphas, betas, k)
    resid = abs(betas[k - 1] * float(P[k - 1, 0]))
    dt, dev = Uk.dtype, Uk.device
    u = Uk[:, :k] @ P[:, 0].to(dtype=dt, device=dev)  # (m, k) @ (k,) -> (m,)
    v = Vk[:, :k] @ Qh[0].to(dtype=dt, device=dev)  # (n, k) @ (k,) -> (n,)
    u = u / torch.linalg.vector_norm(u)
    v = v / torch.linalg.vector_norm(v)
    return float(S[0]), u, v, float(resid)
