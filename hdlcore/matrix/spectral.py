"""The largest singular value, computed in a way a certificate can state honestly.

A polar certificate for the nuclear norm needs an *upper* bound on :math:`\\sigma_1(R)` of a
residual ``R``. Three ways are offered, and each says what it proves:

- ``"exact"``: a full SVD (LAPACK through torch), accurate to rounding. A proof, up to the
  rounding allowance ``max(m, n) * eps * sigma_1`` of a backward-stable SVD. Where only the
  value is asked for, on the CPU: the top eigenvalue of the smaller Gram matrix in float64 (a
  third cheaper), with the allowance of its own rounding (``GramEigh.top``).
- ``"probabilistic"``: Golub-Kahan-Lanczos bidiagonalization from a start drawn uniformly on the
  unit sphere, run until an upper bound that holds with probability at least ``1 - delta`` over
  the start decides the caller's test (or reaches the accuracy ``tol``). Two bounds are
  combined, each at ``delta / 2``: the a-priori bound of Kuczyński and Woźniakowski (1992) and
  an a-posteriori bound from the Lanczos polynomial (van Dorsselaer, Hochstenbach and van der
  Vorst, 2000); see :func:`sigma_max`. A proof with a stated failure probability.
- ``"krylov"``: the same bidiagonalization run until the top Ritz residual is below
  ``tol * sigma``. The Ritz value is a **lower bound** on :math:`\\sigma_1`; a small residual
  proves only that *some* singular value lies near it, so this is evidence, not proof. The
  deterministic bound :math:`\\sigma_1 \\le \\lVert R\\rVert_F` is returned alongside.

``method="auto"`` is exact where a full SVD is cheap (:data:`EXACT_SIZE_LIMIT`, measured), and
probabilistic above. A randomized low-rank SVD is never used: it underestimates
:math:`\\sigma_1` by percents when the top of the spectrum is flat, which is exactly the
residual's spectrum near an optimum.

Used by Chapter 3 (matrix factorization) through :func:`hdlcore.polar` and :func:`hdlcore.certify`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import Array, as_compute_tensor, is_tensor
from .._runtime import one_thread_when_small
from .._validation import check_array, check_choice, check_rng, check_scalar
from . import sparse

__all__ = ["SigmaMax", "sigma_max", "EXACT_SIZE_LIMIT", "METHODS"]

#: The ways to compute sigma_1, as accepted by every function that certifies.
METHODS = ("auto", "exact", "probabilistic", "krylov")

#: ``method="auto"`` uses a full SVD when ``m * n * min(m, n)`` is at most this (1000 x 1000), and
#: the probabilistic bound above: exact while the SVD is cheap relative to the solve. Measured by
#: ``benchmarks/bench_certificates.py`` on the project's 2-core CPU (one thread, load average ~11,
#: medians of 3 interleaved runs; benchmarks/results/certificates*.json). Certifying grow's optimum
#: of the completion problems of bench_completion.py, n = 400 / 700 / 1000 / 1500 / 2000: full SVD
#: 0.09 / 0.31 / 1.0 / 4.4 / 12.9 s (0.27 / 0.38 / 0.54 / 0.80 / 1.66 times grow's own time),
#: probabilistic (delta = 1e-9, 26-29 Lanczos steps) 0.06 / 0.13 / 0.27 / 0.63 / 0.94 s. On the hard
#: case, synthetic flat-top spectra (20 values within 1e-3, bulk up to 0.9 or 0.99; 180-400 steps to
#: prove sigma_1 <= (1 + 1e-6) sigma_1): SVD 0.19 / 0.5-1.1 / 2.6-3.1 / 8.6-15 / 48-52 s at
#: n = 700 / 1000 / 1500 / 2000 / 3000, probabilistic 0.33-0.56 / 0.68-3.3 / 2.1-6.2 / 7.5-9.9 /
#: 14-25 s. So above 1000 x 1000 the SVD costs more than half the solve, the probabilistic run is
#: 7-14 times cheaper on real residuals, and at most 2.4 times dearer on the adversarial spectra.
#: Not measured on a GPU.
EXACT_SIZE_LIMIT = 1000**3

#: Kuczyński-Woźniakowski's constant: P[theta_1 < (1 - eps) lambda_1] <= 1.648 sqrt(n) e^{-(2k-1) sqrt(eps)}.
KW_CONSTANT = 1.648
#: The a-priori bound is evaluated at k = ceil(8 * ratio^j) only, with a union bound over them.
_KW_RATIO = 1.1


@dataclass(frozen=True)
class SigmaMax:
    """The largest singular value of a matrix and how it was obtained.

    Attributes
    ----------
    value : float
        The computed :math:`\\sigma_1`: exact to rounding, or the top Ritz value (a lower bound).
    u, v : array or None
        Unit left and right singular vectors (the top pair, or its Ritz approximation).
    kind : str
        ``"exact"``, ``"probabilistic"`` or ``"krylov"``.
    upper : float
        An upper bound on :math:`\\sigma_1`: proven (``value`` plus its rounding allowance) when
        exact; holding with probability at least ``1 - failure_probability`` over the random start
        when probabilistic; the Frobenius norm (proven) after a krylov run.
    residual : float
        ``||A^T u - value v||`` of the returned pair (0 for an exact SVD).
    steps : int
        Lanczos steps (0 for an exact SVD).
    converged : bool
        Exact; or the stopping test was met (krylov: Ritz residual at most ``tol * value``;
        probabilistic: the threshold decided, or ``upper <= (1 + tol) value``).
    failure_probability : float
        The probability, over the random start, that ``upper`` is wrong (0 unless probabilistic).
    detail : str
        For a probabilistic run: the two bounds and why it stopped.
    """

    value: float
    u: Any
    v: Any
    kind: str
    upper: float
    residual: float
    steps: int
    converged: bool
    failure_probability: float = 0.0
    detail: str = ""

    @property
    def accuracy(self) -> float:
        """Relative width of the bracket ``upper / value - 1`` (inf when ``value`` is 0)."""
        return self.upper / self.value - 1 if self.value > 0 else math.inf

    @property
    def basis(self) -> str:
        """One sentence: how the value was obtained and what it proves."""
        if self.kind == "exact":
            if self.detail:
                return f"exact: {self.detail} (proof, sigma_1 <= {self.upper:.12g})"
            return "exact: full SVD (proof, up to the rounding allowance max(m, n)*eps*sigma_1)"
        if self.kind == "probabilistic":
            return (f"probabilistic: Lanczos bidiagonalization from a uniformly random start, "
                    f"{self.steps} steps; sigma_1 <= {self.upper:.10g} with probability >= "
                    f"1 - {self.failure_probability:.3g} over the start (relative accuracy "
                    f"{self.accuracy:.1e}); {self.detail}")
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
    max_steps: int | None = None,
    rng: np.random.Generator | int | None = None,
    failure_probability: float = 1e-9,
    threshold: float | None = None,
) -> SigmaMax:
    """Largest singular value with an upper bound: exact, probabilistic, or Lanczos evidence.

    Parameters
    ----------
    A : (m, n) array or tensor, or a sparse matrix (zeros off its stored entries)
    method : {"auto", "exact", "probabilistic", "krylov"}
        ``"auto"`` is exact while ``m * n * min(m, n) <= EXACT_SIZE_LIMIT`` (1000 x 1000), and
        probabilistic above.
    tol : float
        krylov: stop when the top Ritz residual is at most ``tol * value``. probabilistic: stop
        when ``upper <= (1 + tol) * value`` (or at the rounding floor of that accuracy).
    max_steps : int, optional
        Largest Krylov dimension (default 400 for krylov, 1000 for probabilistic).
    rng : numpy Generator, int or None
        Draws the Lanczos start vector.
    failure_probability : float
        ``delta``: probabilistic only; ``upper`` fails with probability at most this.
    threshold : float, optional
        probabilistic only: stop as soon as the test ``sigma_1 <= threshold`` is decided, either
        proven (``upper <= threshold``) or refuted (``value > threshold``; ``value`` is a lower
        bound).

    Returns
    -------
    SigmaMax
        ``u`` and ``v`` have ``A``'s array type; the scalars are Python floats.

    Notes
    -----
    Used in Chapter 3 by the certificates. Lanczos works on the Gram matrix of the smaller side
    implicitly (Golub and Kahan, 1965): :math:`A V_k = U_k B_k`,
    :math:`A^\\top U_k = V_k B_k^\\top + \\beta_k v_{k+1} e_k^\\top`, so
    :math:`T_k = B_k^\\top B_k` is the Lanczos matrix of :math:`A^\\top A` from :math:`v_1` and
    its eigenvalues :math:`\\theta_1 \\ge \\dots` are Ritz values of :math:`\\lambda_1 = \\sigma_1^2`.
    The vectors are reorthogonalized in full (classical Gram-Schmidt, a second pass only when the
    first removed much: "twice is enough"), which keeps the Ritz values those of an orthonormal
    basis. That costs about :math:`4k(m + n)` flops at step ``k`` against :math:`4mn` for the two
    products with a dense ``A``: a fraction :math:`k(m + n)/(mn)` of them, small while ``k`` is
    well below ``min(m, n)``; the probabilistic default cap is 1000 steps (residuals at a
    completion optimum needed 26-39 in ``benchmarks/bench_certificates.py``, flat-top spectra up
    to 400). Memory: :math:`k(m + n)` numbers, buffers grown by doubling.

    The probabilistic upper bound on :math:`\\lambda_1` (an ``n x n`` Gram matrix, ``n = min(m, n)``,
    start :math:`v_1` uniform on its unit sphere) is the smaller of two, each failing with
    probability at most :math:`\\delta/2`:

    - a priori (Kuczyński and Woźniakowski 1992, Lanczos with a random start):
      :math:`P[\\theta_1 < (1-\\varepsilon)\\lambda_1] \\le 1.648\\sqrt{n}\\,e^{-(2k-1)\\sqrt{\\varepsilon}}`
      for ``k`` steps, so :math:`\\lambda_1 \\le \\theta_1/(1-\\varepsilon_k)` with
      :math:`\\varepsilon_k = (\\ln(1.648\\sqrt{n}/\\delta_k)/(2k-1))^2`; it is checked at
      ``J`` steps on a geometric grid, with :math:`\\delta_k = \\delta/(2J)` (a union bound). The
      steps it needs grow like :math:`\\ln(1.648\\sqrt n/\\delta)/(2\\sqrt\\varepsilon)`. The
      theorem is stated for positive definite matrices; a singular Gram matrix is the limit of
      :math:`A^\\top A + tI` (same Krylov spaces, Ritz values shifted by ``t``), and Fatou's lemma
      carries the bound over.
    - a posteriori (the Lanczos polynomial): with :math:`p_k(x) = \\det(xI - T_k)` and
      :math:`\\gamma_1 = x_1^\\top v_1`, :math:`p_k(A^\\top A)v_1 = \\prod_j \\beta'_j\\,v_{k+1}`
      (:math:`\\beta'_j = \\alpha_j\\beta_j`, the off-diagonal of :math:`T_k`), hence
      :math:`|\\gamma_1|\\,|p_k(\\lambda_1)| \\le \\prod_j\\beta'_j`. Since :math:`p_k` increases
      beyond :math:`\\theta_1`, :math:`|\\gamma_1| \\ge t` implies :math:`\\lambda_1 \\le x` where
      :math:`x > \\theta_1` solves :math:`p_k(x) = \\prod_j\\beta'_j/t`; and
      :math:`P[|\\gamma_1| < t] \\le t\\sqrt{2(n-1)/\\pi}` (the density of a coordinate of a
      uniform unit vector is at most :math:`\\Gamma(n/2)/(\\sqrt\\pi\\,\\Gamma((n-1)/2))`). One
      event covers every step, so it is checked at every step without a union bound.

    Both are theorems of exact arithmetic; with full reorthogonalization the computed
    :math:`T_k` is that of a nearby matrix, and the returned bound adds a rounding allowance
    ``(max(m, n) + k) * eps``. The tests check it empirically against full SVDs on flat-top
    spectra, over many random starts, and from adversarial starts with
    :math:`|\\gamma_1| = t` exactly.

    References
    ----------
    G. Golub and W. Kahan, Calculating the singular values and pseudo-inverse of a matrix,
    SIAM J. Numer. Anal. B 2(2), 1965.
    J. Kuczyński and H. Woźniakowski, Estimating the largest eigenvalue by the power and Lanczos
    algorithms with a random start, SIAM J. Matrix Anal. Appl. 13(4), 1992.
    J. L. M. van Dorsselaer, M. E. Hochstenbach and H. A. van der Vorst, Computing probabilistic
    bounds for extreme eigenvalues of symmetric matrices with the Lanczos method, SIAM J. Matrix
    Anal. Appl. 22(3), 2000.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.diag([3.0, 2.0, 1.0])
    >>> s = sigma_max(A)
    >>> round(s.value, 12), s.kind
    (3.0, 'exact')
    >>> p = sigma_max(np.diag(np.linspace(1, 2, 50)), method="probabilistic", rng=0)
    >>> p.kind, p.value <= 2 <= p.upper, p.accuracy < 1e-9
    ('probabilistic', True, True)
    """
    func = "sigma_max"
    if sparse.is_sparse(A):  # zeros off the stored entries; never made dense unless small
        At, back = sparse.matrix(A, "A", func)
    else:
        A = check_array(A, "A", func, ndim=2)
        At, back = as_compute_tensor(A)
    method = check_choice(method, "method", func, METHODS)
    tol = check_scalar(tol, "tol", func, gt=0, lt=1)
    if max_steps is not None:
        max_steps = check_scalar(max_steps, "max_steps", func, kind="int", ge=1)
    rng = check_rng(rng, "rng", func)
    failure_probability = check_scalar(failure_probability, "failure_probability", func, gt=0, lt=1)
    if threshold is not None:
        threshold = check_scalar(threshold, "threshold", func, ge=0)
    out = top_singular(At, method=method, tol=tol, max_steps=max_steps, rng=rng,
                       failure_probability=failure_probability, threshold=threshold)
    return SigmaMax(out.value, back(out.u), back(out.v), out.kind, out.upper, out.residual,
                    out.steps, out.converged, out.failure_probability, out.detail)


def resolve_method(method: str, shape) -> str:
    """``"auto"`` -> ``"exact"`` or ``"probabilistic"`` by size (see :data:`EXACT_SIZE_LIMIT`)."""
    if method != "auto":
        return method
    m, n = shape
    return "exact" if m * n * min(m, n) <= EXACT_SIZE_LIMIT else "probabilistic"


def top_singular(A, *, method: str = "auto", tol: float = 1e-10, max_steps: int | None = None,
                 rng: np.random.Generator | None = None, vectors: bool = True, v0=None,
                 failure_probability: float = 1e-9, threshold: float | None = None) -> SigmaMax:
    """Internal (trusted arguments, tensors in and out): see :func:`sigma_max`.

    ``v0`` (a warm start, krylov only) is used inside :func:`hdlcore.grow`, never by a certificate.
    """
    import torch

    m, n = A.shape
    method = resolve_method(method, (m, n))
    if not is_tensor(A) and (method == "exact" or min(m, n) < 3):
        # Observed entries (hdlcore.matrix.sparse.SparseMatrix): a dense SVD when small, the Gram
        # matrix when thin. The Lanczos runs below need only A @ x and A.T @ y, so they take it as is.
        return SigmaMax(*A.exact_top())
    if method == "exact":
        if vectors:
            P, S, Qh = torch.linalg.svd(A, full_matrices=False)
            u, v, value = P[:, 0], Qh[0], float(S[0])
        else:
            # Values only, on the CPU: the smaller Gram matrix's top eigenvalue, with its own
            # rounding allowance (GramEigh.top), cheaper than svdvals.
            eig = gram_eigh(A, vectors=False) if min(m, n) else None
            if eig is not None:
                value, upper = eig.top()
                return SigmaMax(value, None, None, "exact", upper, 0.0, 0, True, 0.0, _GRAM_DETAIL)
            value = float(torch.linalg.svdvals(A)[0])
            u = v = None
        eps = float(torch.finfo(A.dtype).eps)
        return SigmaMax(value, u, v, "exact", value * (1 + max(m, n) * eps), 0.0, 0, True)
    rng = rng if rng is not None else np.random.default_rng()
    if method == "probabilistic":
        return _probabilistic(A, delta=failure_probability, threshold=threshold, tol=tol,
                              max_steps=1000 if max_steps is None else max_steps, rng=rng, vectors=vectors)
    return _lanczos(A, tol=tol, max_steps=400 if max_steps is None else max_steps, rng=rng, v0=v0)


def span_blocks(R, U, V):
    """Orthonormal bases ``Qu``, ``Qv`` of the spans of U and V and the blocks of R on them:
    ``A = Qu^T R Qv``, ``B = Qu^T R (I - P_V)``, ``C = (I - P_U) R Qv``, ``D = (I - P_U) R (I - P_V)``
    (two products of size m x n x r and two rank-r updates)."""
    import torch

    Qu, Qv = torch.linalg.qr(U)[0], torch.linalg.qr(V)[0]  # (m, r), (n, r)
    RQv = R @ Qv  # (m, n) @ (n, r) -> (m, r)
    QuR = Qu.T @ R  # (r, m) @ (m, n) -> (r, n)
    A = Qu.T @ RQv  # (r, r)
    C = RQv - Qu @ A  # (I - P_U) R Qv, (m, r)
    B = QuR - A @ Qv.T  # Qu^T R (I - P_V), (r, n)
    D = torch.addmm(R, Qu, QuR, alpha=-1)  # (I - P_U) R
    D = torch.addmm(D, C, Qv.T, alpha=-1)  # ... (I - P_V): (m, r) @ (r, n)
    return Qu, Qv, A, B, C, D


def block_norm(a: float, b: float, c: float, d: float) -> float:
    """``|[[a, b], [c, d]]|_2`` of a 2 x 2 matrix with entries >= 0 (nondecreasing in each entry),
    rounded up: the bound ``sigma_1(R) <= block_norm(|A|, |B|, |C|, |D|)`` of :func:`split_top`."""
    s = a * a + b * b + c * c + d * d
    det = a * d - b * c
    return math.sqrt((s + math.sqrt(max(s * s - 4 * det * det, 0.0))) / 2) * (1 + 8 * np.finfo(float).eps)


def split_top(R, U, V, *, threshold: float, delta: float, rng: np.random.Generator, tol: float = 1e-10,
              max_steps: int = 1000) -> SigmaMax | None:
    """Decide ``sigma_1(R) <= threshold`` from the blocks of ``R`` on the spans of U and V: three
    small blocks exactly, the large one ``D`` by a probabilistic Lanczos run (dense tensors only).

    With ``A, B, C, D`` as in :func:`span_blocks` and a unit ``x = x_1 + x_2`` (``x_1`` in the
    span of V, ``x_2`` orthogonal to it), :math:`P_U R x = A x_1 + B x_2` and
    :math:`(I - P_U) R x = C x_1 + D x_2` (the blocks written as maps on the full spaces), so
    :math:`\\lVert Rx\\rVert \\le \\lVert N (\\lVert x_1\\rVert, \\lVert x_2\\rVert)\\rVert` with
    :math:`N = [[\\lVert A\\rVert, \\lVert B\\rVert], [\\lVert C\\rVert, \\lVert D\\rVert]]`, and
    :math:`\\sigma_1(R) \\le \\lVert N\\rVert_2` (:func:`block_norm`), which is nondecreasing in each
    entry: upper bounds on the four norms give an upper bound on :math:`\\sigma_1(R)`.
    ``|A|``, ``|B|``, ``|C|`` (r x r, r x n, m x r) come from full SVDs, each with a rounding
    allowance ``2 (m + n) eps |R|_F`` for the products and projections that formed it plus the
    SVD's own ``max(m, n) eps``; ``|D|`` from the probabilistic run of :func:`top_singular`
    (failure probability ``delta``), stopped as soon as ``|N| <= threshold`` is proven or
    ``|D|``'s Ritz value alone exceeds ``threshold`` (refuted: :math:`\\sigma_1(D) \\le \\sigma_1(R)`).

    Why: at a stationary point of the factorized problem, ``B = C = 0`` and ``A``'s singular
    values all equal lam (``R V = lam U``): the cluster at the top of R's spectrum, on which
    Lanczos on R spends hundreds of steps before its bound is within 1e-6 of lam, sits in the
    r x r block, and ``D``'s top, which decides, lies below lam (at a global optimum) with a gap
    the bound converges on in fewer steps. Returns None (nothing decided, nothing run on D) when
    the small blocks alone make ``|N| > threshold``; otherwise a :class:`SigmaMax` with
    ``value = max(|A|, Ritz value of D)`` (a lower bound on :math:`\\sigma_1(R)`, as A and D are
    compressions of R), ``upper = |N|`` (probabilistic) and no vectors.
    """
    import torch

    m, n = R.shape
    eps = float(torch.finfo(R.dtype).eps)
    Qu, Qv, A, B, C, D = span_blocks(R, U, V)
    allow = 2 * (m + n) * eps * float(torch.linalg.vector_norm(R))
    a, b, c = (float(torch.linalg.svdvals(X)[0]) * (1 + max(m, n) * eps) + allow for X in (A, B, C))
    if block_norm(a, b, c, 0.0) > threshold:
        return None
    lo, hi = 0.0, threshold  # the largest |D| bound that still proves, by bisection
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if block_norm(a, b, c, mid) <= threshold else (lo, mid)
    d_max = max(lo - allow, 0.0)
    d = _probabilistic(D, delta=delta, threshold=d_max, tol=tol, max_steps=max_steps, rng=rng, vectors=False)
    upper = block_norm(a, b, c, d.upper + allow)
    value = max(a - allow, d.value)
    detail = (f"split on the spans of U and V (r = {U.shape[1]}): |A| <= {a:.12g}, |B| <= {b:.3g}, "
              f"|C| <= {c:.3g} (full SVDs), |D| <= {d.upper + allow:.12g} (probabilistic Lanczos on D, "
              f"{d.steps} steps: {d.detail})")
    return SigmaMax(value, None, None, "probabilistic", upper, d.residual, d.steps, d.converged, delta,
                    detail)


class _Bidiagonalization:
    """Golub-Kahan-Lanczos on ``A`` (``A @ x``, ``A.T @ y``) with full reorthogonalization.

    After ``k`` steps: ``alphas[:k]`` (diagonal of B_k), ``betas[:k]`` (superdiagonal, and
    ``betas[k-1]`` couples to ``v_{k+1}``), ``U[:, :k]``, ``V[:, :k+1]``. Buffers grow by doubling.
    """

    def __init__(self, A, v, k_max: int):
        import torch

        self.A, self.k_max, self.k = A, k_max, 0
        m, n = A.shape
        kw = dict(dtype=A.dtype, device=A.device)
        cap = min(k_max, 32)
        self.V = torch.zeros(n, cap + 1, **kw)  # right Lanczos vectors (columns)
        self.U = torch.zeros(m, cap, **kw)  # left Lanczos vectors
        self.V[:, 0] = v / torch.linalg.vector_norm(v)
        self.alphas: list[float] = []
        self.betas: list[float] = []

    def step(self) -> bool:
        """One step; False when the Krylov space became invariant (a zero alpha or beta)."""
        import torch

        j, A = self.k, self.A
        if j >= self.U.shape[1]:
            cap = min(2 * self.U.shape[1], self.k_max)
            self.V = torch.cat([self.V, self.V.new_zeros(self.V.shape[0], cap + 1 - self.V.shape[1])], 1)
            self.U = torch.cat([self.U, self.U.new_zeros(self.U.shape[0], cap - self.U.shape[1])], 1)
        U, V = self.U, self.V
        if j == 0:
            p = A @ V[:, 0]  # (m, n) @ (n,) -> (m,)
        else:
            p = A @ V[:, j] - self.betas[-1] * U[:, j - 1]  # A v_j - beta u_{j-1} (A: any operator)
            p = _reorthogonalize(p, U[:, :j])
        alpha = float(torch.linalg.vector_norm(p))
        self.alphas.append(alpha)
        if alpha == 0:  # A v_j lies in span(U): invariant
            self.betas.append(0.0)
            self.k = j + 1
            return False
        U[:, j] = p / alpha
        q = A.T @ U[:, j] - alpha * V[:, j]  # A^T u_j - alpha v_j, (n,)
        q = _reorthogonalize(q, V[:, : j + 1])
        beta = float(torch.linalg.vector_norm(q))
        self.betas.append(beta)
        self.k = j + 1
        if beta == 0:
            return False
        V[:, j + 1] = q / beta
        return True


def _lanczos(A, *, tol: float, max_steps: int, rng: np.random.Generator, v0=None) -> SigmaMax:
    """krylov: run until the top Ritz residual is below ``tol * value``; top Ritz triplet."""
    import torch

    m, n = A.shape
    k_max = min(m, n, max_steps)
    eps = float(torch.finfo(A.dtype).eps)
    fro = (float(torch.linalg.vector_norm(A)) * (1 + 2 * (m + n) * eps) if is_tensor(A)
           else A.fro_upper())  # proven, rounding included
    dt, dev = A.dtype, A.device
    if v0 is None:  # a random start (the default)
        v = torch.as_tensor(rng.standard_normal(n), dtype=dt, device=dev)
    else:  # a warm start (used inside hdlcore.grow, never by a certificate)
        noise = torch.as_tensor(rng.standard_normal(n), dtype=dt, device=dev)
        v = v0.to(dtype=dt, device=dev) + 1e-3 * noise / n**0.5
    gkl = _Bidiagonalization(A, v, k_max)
    tiny = eps * max(fro, float(torch.finfo(dt).tiny))
    while gkl.k < k_max:
        going = gkl.step()
        k = gkl.k
        invariant = not going or gkl.alphas[-1] <= tiny or gkl.betas[-1] <= tiny
        if invariant or k == k_max or _check_now(k):
            value, resid = _ritz_value(gkl.alphas, gkl.betas, k)
            if invariant or resid <= tol * value:
                break
    value, u, v, resid = _ritz(gkl.U, gkl.V, gkl.alphas, gkl.betas, gkl.k)
    converged = resid <= tol * value or gkl.k == min(m, n)
    return SigmaMax(value, u, v, "krylov", fro, resid, gkl.k, bool(converged))


def _probabilistic(A, *, delta: float, threshold: float | None, tol: float, max_steps: int,
                   rng: np.random.Generator, vectors: bool) -> SigmaMax:
    """probabilistic: Lanczos from a uniform random start until the bound decides (see sigma_max)."""
    import torch

    m, n = A.shape
    op = A.T if m < n else A  # the Gram matrix of the smaller side: n_small x n_small
    mo, no = op.shape
    k_max = min(no, max_steps)
    eps = float(torch.finfo(A.dtype).eps)
    v = torch.as_tensor(rng.standard_normal(no), dtype=A.dtype, device=A.device)  # uniform direction
    gkl = _Bidiagonalization(op, v, k_max)
    t = start_threshold(no, delta / 2)
    schedule = kw_schedule(k_max)
    delta_kw = delta / 2 / len(schedule)
    kw_steps = set(schedule)
    log_prod = 0.0  # log prod_j alpha_j beta_j = log ||p_k(A^T A) v_1||
    lam_kw = lam_poly = math.inf
    value = upper = 0.0
    reason = "the step cap reached"
    while gkl.k < k_max:
        going = gkl.step()
        k = gkl.k
        ab = gkl.alphas[-1] * gkl.betas[-1]
        log_prod = log_prod + math.log(ab) if ab > 0 else -math.inf
        if going and k < k_max and k > 16 and k % max(1, k // 32) and k not in kw_steps:
            continue  # bounds every step up to 16, then every ~3% of k
        d, e = _tridiagonal(gkl.alphas, gkl.betas, k)
        thetas = _eigvals_tridiagonal(d, e)  # descending
        theta = max(float(thetas[0]), 0.0)
        if k in kw_steps:
            eps_k = kw_eps(no, k, delta_kw)
            if eps_k < 1:
                lam_kw = min(lam_kw, theta / (1 - eps_k))
        lam_poly = polynomial_bound(thetas, log_prod - math.log(t))
        rho = (max(m, n) + k) * eps  # rounding allowance, relative
        value = math.sqrt(theta)
        upper = math.sqrt(min(lam_kw, lam_poly)) * (1 + rho)
        if threshold is not None and upper <= threshold:
            reason = f"proven sigma_1 <= threshold {threshold:.10g}"
            break
        if threshold is not None and value > threshold:
            reason = f"refuted sigma_1 <= threshold {threshold:.10g} (the Ritz value exceeds it)"
            break
        if not going:
            reason = "the Krylov space is invariant"
            break
        if upper <= (1 + max(tol, 2 * rho)) * value:
            reason = f"relative accuracy {max(tol, 2 * rho):.1e} reached"
            break
    converged = reason != "the step cap reached"
    u, v, resid = _top_ritz_pair(gkl, value, vectors)
    if m < n:
        u, v = v, u
    kw_text = f"{math.sqrt(lam_kw):.10g}" if lam_kw < math.inf else "none yet"
    detail = (f"stopped: {reason}; bounds on sigma_1: a posteriori (Lanczos polynomial) "
              f"{math.sqrt(lam_poly):.10g}, a priori (Kuczynski-Wozniakowski) {kw_text}")
    return SigmaMax(value, u, v, "probabilistic", upper, resid, gkl.k, converged, delta, detail)


def _top_ritz_pair(gkl, value: float, vectors: bool):
    """Top Ritz pair from the top eigenvector q of T_k (no k x k SVD): v = V_k q, u = U_k B_k q / value."""
    import torch
    from scipy.linalg import eigh_tridiagonal

    k = gkl.k
    if value == 0:  # A = 0 (with probability 1): any unit pair is singular
        u = gkl.U.new_zeros(gkl.U.shape[0])
        u[0] = 1
        return (u, gkl.V[:, 0], 0.0) if vectors else (None, None, 0.0)
    d, e = _tridiagonal(gkl.alphas, gkl.betas, k)
    if k == 1:
        q = np.ones(1)
    else:
        q = eigh_tridiagonal(d, e, select="i", select_range=(k - 1, k - 1))[1][:, 0]
    a, b = np.asarray(gkl.alphas[:k]), np.asarray(gkl.betas[:k])
    resid = abs(a[-1] * b[-1] * q[-1]) / value  # ||A^T u - value v|| = alpha_k beta_k |q_k| / value
    if not vectors:
        return None, None, float(resid)
    Bq = a * q
    Bq[:-1] += b[:-1] * q[1:]  # (B_k q)_i = alpha_i q_i + beta_i q_{i+1}
    dt, dev = gkl.U.dtype, gkl.U.device
    v = gkl.V[:, :k] @ torch.as_tensor(q, dtype=dt, device=dev)  # (n, k) @ (k,) -> (n,)
    u = gkl.U[:, :k] @ torch.as_tensor(Bq, dtype=dt, device=dev)  # (m, k) @ (k,) -> (m,)
    return u / torch.linalg.vector_norm(u), v / torch.linalg.vector_norm(v), float(resid)


def start_threshold(n: int, delta: float) -> float:
    """A ``t`` with ``P[|x^T b| < t] <= delta`` for ``b`` uniform on the unit sphere of R^n, ``|x| = 1``."""
    if n == 1:
        return 1.0
    if n == 2:  # x^T b = cos(phi) with phi uniform: P = (2/pi) arcsin(t)
        return math.sin(math.pi * delta / 2)
    # density c_n (1 - s^2)^((n-3)/2) <= c_n = Gamma(n/2) / (sqrt(pi) Gamma((n-1)/2)) <= sqrt((n-1)/(2 pi))
    return delta * math.sqrt(math.pi / (2 * (n - 1)))


def kw_eps(n: int, k: int, delta: float) -> float:
    """Relative accuracy of theta_1 on lambda_1 after ``k`` steps; fails with probability <= delta."""
    return (math.log(KW_CONSTANT * math.sqrt(n) / delta) / (2 * k - 1)) ** 2


def kw_schedule(k_max: int) -> list[int]:
    """The steps at which the a-priori bound is evaluated: ceil(8 * 1.1^j), and ``k_max``."""
    ks: list[int] = []
    j = 0
    while (k := math.ceil(8 * _KW_RATIO**j)) < k_max:
        if not ks or k > ks[-1]:
            ks.append(k)
        j += 1
    return [*ks, k_max]


def _tridiagonal(alphas, betas, k):
    """Diagonal and off-diagonal of T_k = B_k^T B_k (float64, CPU)."""
    a = np.asarray(alphas[:k], dtype=np.float64)
    b = np.asarray(betas[: k - 1], dtype=np.float64)
    d = a * a
    d[1:] += b * b
    return d, a[:-1] * b


def _eigvals_tridiagonal(d, e):
    """Eigenvalues of a symmetric tridiagonal matrix, largest first."""
    if len(d) == 1:
        return d.copy()
    from scipy.linalg import eigvalsh_tridiagonal

    return eigvalsh_tridiagonal(d, e)[::-1]


def polynomial_bound(thetas, log_target: float) -> float:
    """An ``x`` at or just above the root ``x > thetas[0]`` of ``sum_j log(x - theta_j) = log_target``.

    Newton's method in ``y = log(x - theta_1)``, where the left side is convex and increasing,
    from ``x - theta_1 = exp(log_target / k)`` (at or above the root, since every term is at least
    ``y``): the iterates decrease to the root and never cross it, so each is a valid bound.
    """
    th1 = float(thetas[0])
    if log_target == -math.inf:  # p_k(A) v_1 = 0: lambda_1 is a Ritz value
        return th1
    gaps = th1 - np.asarray(thetas, dtype=np.float64)  # >= 0
    h = math.exp(log_target / len(gaps))
    for _ in range(100):
        terms = gaps + h
        excess = float(np.sum(np.log(terms))) - log_target  # >= 0 (up to rounding)
        slope = float(np.sum(h / terms))  # d/dy of the left side, >= 1
        step = excess / slope
        if step <= 1e-15:
            break
        h *= math.exp(-step)
    return th1 + h


def _check_now(k: int) -> bool:
    """Convergence checks at k = 8, 12, 16, ... (every 4 steps), then every k/8 steps: a check
    costs an SVD of the k x k bidiagonal matrix, O(k^3), so checks stay a small part of the work."""
    return k >= 8 and k % max(4, 4 * (k // 32)) == 0


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
    u = u / torch.linalg.vector_norm(u).clamp_min(torch.finfo(dt).tiny)
    v = v / torch.linalg.vector_norm(v)
    return float(S[0]), u, v, float(resid)


def _addmv(y, A, x, beta: float):
    """``beta y + A x`` for a dense tensor (one fused call) or a sparse matrix ``A``."""
    import torch

    return torch.addmv(y, A, x, beta=beta) if is_tensor(A) else A @ x + beta * y


def _fro(A) -> float:
    """``|A|_F`` of a dense tensor or a :class:`hdlcore.matrix.sparse.SparseMatrix`."""
    import torch

    return float(torch.linalg.vector_norm(A)) if is_tensor(A) else A.sq_sum() ** 0.5


def top_triplets(A, *, above: float, k_max: int, tol: float = 1e-3, rng: np.random.Generator,
                 exact: bool = False):
    """Internal: the singular triplets of ``A`` with values above ``above`` (at most ``k_max``).

    Returns ``(values, P, Q)``: values (k,) in decreasing order and unit left/right vectors
    (m, k), (n, k). By a full SVD when ``exact``, otherwise from a random start by Lanczos
    bidiagonalization with full reorthogonalization (``k_max < 8``) or a block Krylov method
    (:func:`_block_triplets`), run until the Ritz triplets above ``above`` (and the
    next one) have residuals below ``tol * sigma_1``. Ritz values are lower bounds and a missed
    value is possible: the growth steps of :func:`hdlcore.grow` use these directions, whose
    effect is measured on the objective itself; a certificate never does.
    """
    import torch

    m, n = A.shape
    if exact:
        out = gram_triplets(A, above=above, k_max=k_max, native=True)  # directions: A's precision
        if out is not None:
            return out
        P, S, Qh = torch.linalg.svd(A, full_matrices=False)
        k = min(int((S > above).sum()), k_max)
        return S[:k], P[:, :k], Qh[:k].T
    if k_max >= _BLOCK_TRIPLETS:
        return _block_triplets(A, above=above, k_max=k_max, tol=tol, rng=rng)
    k_steps = min(m, n)
    eps = float(torch.finfo(A.dtype).eps)
    dev, dt = A.device, A.dtype
    fro = _fro(A)
    tiny = eps * max(fro, float(torch.finfo(dt).tiny))
    cap = min(k_steps, 2 * k_max + 24)  # Krylov dimension allocated (grown when needed)
    Vk = torch.zeros(n, cap + 1, dtype=dt, device=dev)
    Uk = torch.zeros(m, cap, dtype=dt, device=dev)
    v = torch.as_tensor(rng.standard_normal(n), dtype=dt, device=dev)
    Vk[:, 0] = v / torch.linalg.vector_norm(v)
    alphas: list[float] = []
    betas: list[float] = []
    k = 0
    for j in range(k_steps):
        if j == cap:  # more steps than allocated: double the storage
            cap = min(k_steps, 2 * cap)
            Vk = torch.cat([Vk, torch.zeros(n, cap + 1 - Vk.shape[1], dtype=dt, device=dev)], 1)
            Uk = torch.cat([Uk, torch.zeros(m, cap - Uk.shape[1], dtype=dt, device=dev)], 1)
        if j == 0:
            p = A @ Vk[:, 0]  # (m, n) @ (n,) -> (m,)
        else:
            p = _addmv(Uk[:, j - 1], A, Vk[:, j], -betas[-1])
            p = _reorthogonalize(p, Uk[:, :j])
        alpha = float(torch.linalg.vector_norm(p))
        if alpha <= tiny:
            break
        alphas.append(alpha)
        Uk[:, j] = p / alpha
        q = _addmv(Vk[:, j], A.T, Uk[:, j], -alpha)
        q = _reorthogonalize(q, Vk[:, : j + 1])
        beta = float(torch.linalg.vector_norm(q))
        betas.append(beta)
        k = j + 1
        if beta <= tiny:
            break
        Vk[:, j + 1] = q / beta
        if _check_now(k):
            P, S, _ = _bidiagonal_svd(alphas, betas, k)
            count = min(int((S > above).sum()), k_max)
            want = min(count + 1, k)
            resid = (betas[k - 1] * P[k - 1, :want]).abs()
            if count < k - 1 and bool((resid <= tol * float(S[0])).all()):
                break
    if k == 0:
        return (torch.zeros(0, dtype=dt, device=dev), torch.zeros(m, 0, dtype=dt, device=dev),
                torch.zeros(n, 0, dtype=dt, device=dev))
    P, S, Qh = _bidiagonal_svd(alphas, betas, k)
    count = min(int((S > above).sum()), k_max)
    Pc = Uk[:, :k] @ P[:, :count].to(dtype=dt, device=dev)  # (m, k) @ (k, c) -> (m, c)
    Qc = Vk[:, :k] @ Qh[:count].T.to(dtype=dt, device=dev)  # (n, k) @ (k, c) -> (n, c)
    return S[:count].to(dtype=dt, device=dev), Pc, Qc


#: gram_triplets hands back to a full SVD when ``above`` is below this fraction of sigma_1: the
#: Gram matrix's eigenvalues carry an error of about ``n * eps * sigma_1**2``, which at
#: ``sigma_i = 1e-3 sigma_1`` is still only ``n * eps * 1e6`` relative to ``sigma_i**2``.
_GRAM_FLOOR = 1e-3


def _gram(A, native: bool = False):
    """The smaller Gram matrix of a dense CPU tensor ``A``, in float64 (in float32 for a float32
    ``A`` when ``native``), whether it is ``A^T A`` (n x n, else ``A A^T``), ``A`` in that precision
    and the power of two it was divided by (1 unless its entries would overflow or underflow once
    squared); None on other devices (their SVDs are kept) or with entries that are not finite."""
    import torch

    if not is_tensor(A) or A.device.type != "cpu" or A.dtype not in (torch.float32, torch.float64):
        return None
    A64 = A if native and A.dtype == torch.float32 else A.double()
    amax = float(A64.abs().max()) if A64.numel() else 0.0
    if not math.isfinite(amax):
        return None
    scale = 1.0
    span = 400 if A64.dtype == torch.float64 else 40  # squares (times the order) stay normal
    if amax > 0 and not 2.0**-span <= amax <= 2.0**span:
        scale = 2.0 ** math.frexp(amax)[1]  # exact: a power of two
        A64 = A64 / scale
    right = A.shape[0] >= A.shape[1]
    return (A64.T @ A64 if right else A64 @ A64.T), right, A64, scale


@dataclass(frozen=True)
class GramEigh:
    """Internal: the eigendecomposition of a matrix's smaller Gram matrix (``gram_eigh``), from
    which its top singular value with a proven bound and its top triplets are read without a
    second decomposition."""

    w: Any  # (k,) eigenvalues, ascending, of the Gram matrix of A / scale
    X: Any  # (k, k) eigenvectors, or None (values only)
    right: bool  # the Gram matrix is A^T A (X holds right vectors)
    A64: Any  # A / scale in float64 (float32 for a float32 A asked for natively)
    scale: float  # a power of two (1 unless A's entries would overflow or underflow once squared)

    def top(self) -> tuple[float, float]:
        """``(sigma_1, upper)``: the top eigenvalue's root and a bound that covers the rounding.

        With ``G = fl(A^T A)`` formed in float64 (``A`` is ``p x k``, ``p`` the inner dimension),
        ``|G - A^T A| <= gamma_p |A|^T |A|`` entrywise, so ``|G - A^T A|_2 <= p eps |A|_F^2``
        (``gamma_p < p eps``); and the computed top eigenvalue of the symmetric G is, as for the
        SVD's allowance (:func:`top_singular`), within ``k eps |G|_2`` of G's. Hence
        ``sigma_1^2 <= w_top (1 + 2 k eps) + p eps |A|_F^2``: relative to ``sigma_1`` the
        allowance is ``k eps + p eps |A|_F^2 / (2 sigma_1^2)``, about 1e-11 at 1000 x 1000. (The
        squared values lose accuracy at the bottom of the spectrum, never at its top.)
        """
        import torch

        k = int(self.w.shape[0])
        if k == 0:
            return 0.0, 0.0
        p = self.A64.shape[0] if self.right else self.A64.shape[1]
        eps = float(torch.finfo(self.A64.dtype).eps)
        top = max(float(self.w[-1]), 0.0)
        fro2 = float(torch.linalg.vector_norm(self.A64)) ** 2
        upper = math.sqrt(top * (1 + 2 * k * eps) + p * eps * fro2 * (1 + 1e-6)) * (1 + 4 * eps)
        return self.scale * math.sqrt(top), self.scale * upper

    def triplets(self, above: float, k_max: int, dtype):
        """The triplets above ``above`` (at most ``k_max``), decreasing; None where the squared values
        lose accuracy (``above`` below ``_GRAM_FLOOR * sigma_1``, or in float32 where the
        eigenvalues' rounding, about ``k eps sigma_1^2``, is within a hundredth of ``above**2``)
        or without vectors."""
        import torch

        above = above / self.scale
        k = int(self.w.shape[0])
        floor = max(_GRAM_FLOOR**2, 100 * k * float(torch.finfo(self.w.dtype).eps))
        if self.X is None or above <= 0 or above * above < floor * float(self.w[-1]):
            return None
        c = min(int((self.w > above * above).sum()), k_max)
        w, X = self.w.flip(0)[:c], self.X.flip(1)[:, :c]  # decreasing, at most k_max
        S = w.sqrt()
        other = (self.A64 @ X) / S if self.right else (self.A64.T @ X) / S  # (m, c) or (n, c)
        P, Q = (other, X) if self.right else (X, other)
        return (S * self.scale).to(dtype), P.to(dtype), Q.to(dtype)


def gram_eigh(A, vectors: bool = True, native: bool = False) -> GramEigh | None:
    """Internal: the eigenvalues (and vectors) of the smaller Gram matrix of a dense CPU tensor, in
    float64 (torch's eigvalsh / eigh; at 400 x 400 the values take 8 ms against 10 ms for
    ``svdvals``, with vectors 12 ms against 22 to 50 ms for the full SVD; at 1000 x 1000, 60 and
    100 ms against 95 and 210 to 360 ms). ``native``: a float32 ``A`` stays in float32 (directions
    and loop evidence; about half the time; the bound of ``GramEigh.top`` then uses float32's
    rounding unit). None on other devices (their SVDs are kept). scipy's
    ``dsyevr`` for the top eigenvalue alone is a little faster, but its OpenBLAS threads then keep
    spinning against torch's and slowed :func:`hdlcore.grow` twofold."""
    import torch

    got = _gram(A, native)
    if got is None:
        return None
    G, right, A64, scale = got
    if vectors:
        w, X = torch.linalg.eigh(G)
        return GramEigh(w, X, right, A64, scale)
    return GramEigh(torch.linalg.eigvalsh(G), None, right, A64, scale)


def gram_triplets(A, *, above: float, k_max: int, native: bool = False):
    """Internal: :func:`top_triplets` exact, from the eigenpairs of the smaller Gram matrix above
    ``above**2``, the other side's vectors ``A q / sigma``. None where a full SVD is needed
    instead: another device, or ``above`` below ``_GRAM_FLOOR * sigma_1``."""
    if above <= 0 or min(A.shape) == 0:
        return None
    eig = gram_eigh(A, native=native)
    return None if eig is None else eig.triplets(above, k_max, A.dtype)


_GRAM_DETAIL = "the smaller Gram matrix's top eigenvalue (float64, with its rounding allowance)"

#: top_triplets asks for this many directions or more: block Krylov (matrix-matrix products).
#: Up to 8, single-vector Lanczos (on grow's residuals at 400 x 400 after the first growth step,
#: 8 directions asked for: 2.5-8 ms against 10-17 ms for a block of 16).
_BLOCK_TRIPLETS = 9
#: Block size of _block_triplets (8 to 64 measured on the residuals of grow at n = 2000, rank 151:
#: 16 and 32 alike, 64 slower where few directions are above the threshold).
_BLOCK = 16


def _block_triplets(A, *, above: float, k_max: int, tol: float, rng: np.random.Generator):
    """:func:`top_triplets` by a block Krylov method on ``A^T A`` (blocks of 16 vectors), with the
    Rayleigh-Ritz triplets of the whole space after every block.

    With an orthonormal basis ``V_K`` of ``span{V_1, (A^T A) V_1, ...}`` (``n x K``) and the stored
    products ``W = A V_K`` and ``Z = A^T W``, the Ritz values are the square roots of the
    eigenvalues ``theta_i`` of ``H = V_K^T Z = W^T W``, the right Ritz vectors ``v_i = V_K y_i``,
    the left ``u_i = W y_i / sigma_i``, and ``|A^T u_i - sigma_i v_i| = |Z y_i - theta_i V_K y_i|
    / sigma_i`` needs no further product. Each block step reads ``A`` twice for ``b`` vectors (two
    matrix-matrix products) where single-vector Lanczos reads it twice per vector: on the
    growth steps of grow at n = 2000 (rank 151), 1.6 s for the six calls against 3.5 s, with
    residuals of the same size. The stopping rule is :func:`top_triplets`'s: the triplets above ``above``
    (at most ``k_max``) and the next one have residuals below ``tol * sigma_1``.
    """
    import torch

    m, n = A.shape
    dt, dev = A.dtype, A.device
    eps = float(torch.finfo(dt).eps)
    b = min(_BLOCK, n)
    X = torch.as_tensor(rng.standard_normal((n, b)), dtype=dt, device=dev)
    Vk = torch.linalg.qr(X)[0]  # (n, b)
    Ws, Zs = [], []
    fro = _fro(A)
    tiny = eps * max(fro, float(torch.finfo(dt).tiny))
    block = Vk
    while True:
        W = A @ block  # (m, n) @ (n, b) -> (m, b)
        Z = A.T @ W  # (n, m) @ (m, b) -> (n, b): (A^T A) block
        Ws.append(W)
        Zs.append(Z)
        K = Vk.shape[1]
        Wk, Zk = torch.cat(Ws, 1), torch.cat(Zs, 1)  # (m, K), (n, K)
        H = Wk.T @ Wk  # (K, m) @ (m, K): V_K^T A^T A V_K
        theta, Yh = torch.linalg.eigh((H + H.T) / 2)  # ascending
        theta, Yh = theta.flip(0).clamp_min(0), Yh.flip(1)
        sig = theta.sqrt()
        count = min(int((sig > above).sum()), k_max)
        want = min(count + 1, K)
        Yw = Yh[:, :want]
        resid = torch.linalg.vector_norm(Zk @ Yw - (Vk @ Yw) * theta[:want], dim=0)  # (want,)
        resid = resid / sig[:want].clamp_min(tiny)
        s1 = float(sig[0])
        done = count < K - 1 and bool((resid <= tol * max(s1, tiny)).all())
        if done or K >= n or s1 <= tiny:  # converged, or the whole space (Ritz = exact)
            break
        # The next block: (A^T A) block, orthogonalized against the space (twice: "twice is enough"),
        # without the directions already in it (rounding level: near an invariant subspace, and
        # always once the space holds the range of A^T, when m < n), so that the space grows
        # until the triplets converge or it is invariant (the Ritz triplets then exact).
        X = Z - Vk @ (Vk.T @ Z)
        X = X - Vk @ (Vk.T @ X)
        Qx, sx, _ = torch.linalg.svd(X, full_matrices=False)  # (n, b): an orthonormal basis, ranked
        keep = sx > 100 * eps * max(s1 * s1, tiny)
        if not bool(keep.any()):  # an invariant subspace
            break
        block = Qx[:, keep][:, :n - K]
        Vk = torch.cat([Vk, block], 1)
    S = sig[:count]
    Yc = Yh[:, :count]
    P = (Wk @ Yc) / S.clamp_min(tiny)  # (m, K) @ (K, c): left Ritz vectors
    Q = Vk @ Yc  # (n, K) @ (K, c)
    return S, P, Q
