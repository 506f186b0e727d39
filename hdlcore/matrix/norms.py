"""Column regularizers theta(u, v) = ||u||_a ||v||_b, their proxes, polars and induced norms.

A *norm pair* ``(a, b)`` defines the regularizer of one column pair of a factorization
:math:`X = UV^\\top`,

.. math:: \\theta(u, v) = \\lVert u\\rVert_a\\,\\lVert v\\rVert_b ,

which is positively homogeneous of degree 2, like :math:`(u, v) \\mapsto uv^\\top`. Each side is
one of ``"l1"``, ``"l2"``, or their non-negative variants ``"l1+"``, ``"l2+"`` (the norm plus
the constraint that the column be entrywise non-negative). For every pair this module gives

- :meth:`NormPair.theta`, the per-column values;
- :meth:`ColumnNorm.prox`, the prox of :math:`\\tau\\lVert\\cdot\\rVert` (soft-thresholding, group
  shrinkage, with the non-negativity projection), used by the factorized solver;
- :meth:`NormPair.polar`, :math:`\\Omega_\\theta^\\circ(Z) = \\sup_{\\theta(u,v)\\le 1} u^\\top Z v`, with
  its maximizer: in closed form when one side is an l1-type ball (the supremum sits at a vertex
  :math:`\\pm e_i`) or for l2/l2 (the top singular pair). For the remaining pairs (an l2+ side
  against an l2-type side: non-negative matrix factorization type) the polar is NP-hard in
  general; :meth:`NormPair.polar` then returns a **lower bound** from alternating maximization,
  labelled ``kind="lower_bound"``, with a proven upper bound (a singular value of a relaxation);
- :meth:`NormPair.induced`, :math:`\\Omega_\\theta(X)`, in closed form where it has one
  (nuclear norm, sums of row or column norms, entrywise l1 norm).

Used by Chapter 3 (matrix factorization).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._backend import as_compute_tensor, is_tensor
from .._runtime import one_thread_when_small
from .._validation import param_error

__all__ = ["ColumnNorm", "NormPair", "PolarResult", "NORMS", "NORM_PAIRS", "norm_pair"]

#: The column norms: l1, l2, and their non-negative variants l1+, l2+ (the norm plus the constraint
#: that the column be entrywise non-negative).
NORMS = ("l1", "l2", "l1+", "l2+")


@dataclass(frozen=True)
class ColumnNorm:
    """One side of a norm pair: ``"l1"``, ``"l2"``, ``"l1+"`` or ``"l2+"`` ("+": entries >= 0).

    Every method works column-wise on a matrix (or on a vector) and keeps the array type.
    """

    name: str

    @property
    def p(self) -> int:
        return 1 if self.name.startswith("l1") else 2

    @property
    def nonneg(self) -> bool:
        return self.name.endswith("+")

    # -- public, type-preserving -------------------------------------------------------------
    def value(self, X: Any) -> Any:
        """Column norms (``inf`` for a column with a negative entry when non-negative)."""
        return _apply(self._value, X)

    def prox(self, X: Any, tau: Any) -> Any:
        """Column-wise prox of :math:`\\tau\\lVert\\cdot\\rVert` (+ the non-negativity constraint).

        ``tau`` is a scalar or one value per column.
        """
        t, back = as_compute_tensor(X)
        return back(self._prox(t, _like(tau, t)))

    def support(self, Z: Any) -> Any:
        """Column-wise support function of the unit ball, :math:`\\sup_{x \\in B} z^\\top x`."""
        return _apply(lambda z: self._support(z)[0], Z)

    def argmax(self, Z: Any) -> Any:
        """Column-wise maximizer of :meth:`support` (a point of the unit ball)."""
        return _apply(lambda z: self._support(z)[1], Z)

    def project_dual(self, Z: Any, tau: Any) -> Any:
        """Projection onto :math:`\\{y: \\text{support}(y) \\le \\tau\\}` (the prox of the conjugate).

        Moreau's identity reads ``prox(x, tau) + project_dual(x, tau) == x``.
        """
        t, back = as_compute_tensor(Z)
        return back(self._project_dual(t, _like(tau, t)))

    # -- internal, tensors -----------------------------------------------------------------------
    def _raw(self, X):
        import torch

        return X.abs().sum(0) if self.p == 1 else torch.linalg.vector_norm(X, dim=0)

    def _value(self, X):
        import torch

        val = self._raw(X)
        if self.nonneg:
            val = torch.where((X < 0).any(0), torch.full_like(val, float("inf")), val)
        return val

    def _prox(self, X, tau):
        import torch

        if self.nonneg:
            X = X.clamp_min(0)
        if self.p == 1:
            return torch.sign(X) * (X.abs() - tau).clamp_min(0)
        norm = torch.linalg.vector_norm(X, dim=0)
        scale = (1 - tau / torch.where(norm > 0, norm, torch.ones_like(norm))).clamp_min(0)
        return X * scale

    def _support(self, Z):
        """(values, maximizers) column-wise."""
        import torch

        W = Z.clamp_min(0) if self.nonneg else Z
        if self.p == 2:
            val = torch.linalg.vector_norm(W, dim=0)
            safe = torch.where(val > 0, val, torch.ones_like(val))
            return val, W / safe
        idx = W.abs().argmax(0) if not self.nonneg else W.argmax(0)
        top = W.gather(0, idx.unsqueeze(0)).squeeze(0)
        val = top.abs() if not self.nonneg else top.clamp_min(0)
        arg = torch.zeros_like(W)
        arg.scatter_(0, idx.unsqueeze(0), torch.sign(top).unsqueeze(0))
        return val, arg

    def _project_dual(self, Z, tau):
        import torch

        if self.p == 1:
            return Z.clamp(max=tau) if self.nonneg else torch.maximum(torch.minimum(Z, tau), -tau)
        W = Z.clamp_min(0) if self.nonneg else Z
        norm = torch.linalg.vector_norm(W, dim=0)
        scale = torch.minimum(torch.ones_like(norm), tau / torch.where(norm > 0, norm, torch.ones_like(norm)))
        return Z - W + W * scale

    def _gauge_rows(self, X, symmetric: bool):
        """Gauge of the unit ball (or of its symmetric hull), column-wise; used by ``induced``."""
        import torch

        if not self.nonneg:
            return self._raw(X)
        if symmetric:  # conv(B u -B) for the non-negative ball: ||x+|| + ||x-||
            return self._raw(X.clamp_min(0)) + self._raw((-X).clamp_min(0))
        val = self._raw(X)
        return torch.where((X < 0).any(0), torch.full_like(val, float("inf")), val)


@dataclass(frozen=True)
class PolarResult:
    """The polar :math:`\\Omega_\\theta^\\circ(Z)` and what was computed to get it.

    Attributes
    ----------
    value : float
        The computed polar: exact (``kind="exact"``), the top Ritz value of a Lanczos run
        (``"probabilistic"`` or ``"krylov"``: a lower bound), or the best value found by a
        heuristic (``"lower_bound"``).
    u, v : array
        A maximizer: ``u @ Z @ v == value`` with ``theta(u, v) == 1`` (or ``0`` when the value is 0).
    kind : str
        ``"exact"``, ``"probabilistic"``, ``"krylov"`` or ``"lower_bound"``.
    upper : float
        An upper bound on the polar: proven, or (``"probabilistic"``) holding with probability
        at least ``1 - failure_probability`` over a random start.
    detail : str
        How the value was obtained, in words.
    failure_probability : float
        0 unless ``kind == "probabilistic"``.
    """

    value: float
    u: Any
    v: Any
    kind: str
    upper: float
    detail: str
    failure_probability: float = 0.0

    @property
    def is_exact(self) -> bool:
        return self.kind == "exact"


@dataclass(frozen=True)
class NormPair:
    """A column regularizer :math:`\\theta(u, v) = \\lVert u\\rVert_a \\lVert v\\rVert_b`.

    Examples
    --------
    >>> import numpy as np
    >>> pair = norm_pair(("l1", "l2"))
    >>> Z = np.array([[3.0, 4.0], [1.0, 0.0]])
    >>> res = pair.polar(Z)  # max row norm: the vertex u = e_1
    >>> res.value, res.kind
    (5.0, 'exact')
    """

    u: ColumnNorm
    v: ColumnNorm
    name: str = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "name", f"{self.u.name}/{self.v.name}")

    @property
    def closed_form(self) -> bool:
        """Whether the polar (and the induced norm) has a closed form for this pair."""
        return self.u.p == 1 or self.v.p == 1 or not (self.u.nonneg or self.v.nonneg)

    def theta(self, U: Any, V: Any) -> Any:
        """Per-column values :math:`\\theta(u_i, v_i)` (shape ``(r,)``)."""
        Ut, back = as_compute_tensor(U)
        Vt, _ = as_compute_tensor(V)
        return back(self._theta(Ut, Vt.to(Ut)))

    def _theta(self, U, V):
        return self.u._value(U) * self.v._value(V)

    @one_thread_when_small
    def polar(self, Z: Any, *, method: str = "auto", tol: float = 1e-10, starts: int = 8,
              rng: np.random.Generator | int | None = None,
              failure_probability: float = 1e-9) -> PolarResult:
        """:math:`\\sup_{\\theta(u, v)\\le 1} u^\\top Z v` and a maximizer (see :class:`PolarResult`).

        ``method``, ``tol`` and ``failure_probability`` choose how :math:`\\sigma_1` is computed
        for l2/l2 (see :func:`hdlcore.matrix.spectral.sigma_max`); ``starts`` is the number of
        starting points of the heuristic for pairs without a closed form. :func:`hdlcore.polar`
        validates its input and calls this.
        """
        Zt, back = as_compute_tensor(Z)
        rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        res = self._polar(Zt, method=method, tol=tol, starts=starts, rng=rng,
                          failure_probability=failure_probability)
        return PolarResult(res.value, back(res.u), back(res.v), res.kind, res.upper, res.detail,
                           res.failure_probability)

    def _polar(self, Z, *, method="auto", tol=1e-10, starts=8, rng=None, maximizer=True,
               v0=None, failure_probability=1e-9, threshold=None) -> PolarResult:
        import torch

        if not is_tensor(Z) and (self.u.p == 1 or self.v.p == 1):  # sparse (hdlcore.matrix.sparse)
            rows = self.u.p == 1  # the best row (column) by reductions over the stored entries
            vert, other = (self.u, self.v) if rows else (self.v, self.u)
            i, line = Z.best_line(other.p, other.nonneg, not vert.nonneg, rows)
            res = self._vertex_polar(line.unsqueeze(0 if rows else 1), vert, other, rows)
            e = torch.zeros(Z.shape[0 if rows else 1], dtype=Z.dtype, device=Z.device)
            e[i] = (res.u if rows else res.v)[0]
            pu, pv = (e, res.v) if rows else (res.u, e)
            return PolarResult(res.value, pu, pv, res.kind, res.upper, res.detail.replace("O(mn)", "O(nnz)"))
        if not is_tensor(Z) and (self.u.nonneg or self.v.nonneg):
            Z = Z.to_dense()  # sparse: the NP-hard pairs' heuristic works on the dense matrix (small Z only)
        if self.u.p == 1:  # vertices +-e_i (or e_i): row i against the v-ball
            return self._vertex_polar(Z, self.u, self.v, rows=True)
        if self.v.p == 1:
            return self._vertex_polar(Z, self.v, self.u, rows=False)
        from .spectral import top_singular

        if not (self.u.nonneg or self.v.nonneg):
            s = top_singular(Z, method=method, tol=tol, rng=rng, vectors=maximizer, v0=v0,
                             failure_probability=failure_probability, threshold=threshold)
            kind = s.kind
            detail = "sigma_1(Z), " + (
                (s.detail or "full SVD") if kind == "exact" else s.basis if kind == "probabilistic" else
                f"Lanczos to Ritz residual {s.residual:.1e} in {s.steps} steps (a lower bound)")
            return PolarResult(s.value, s.u, s.v, kind, s.upper, detail, s.failure_probability)
        # Hard pairs: alternating maximization (each step maximizes over one side exactly).
        upper = top_singular(Z, method="exact" if method != "krylov" else "krylov", vectors=False).upper
        if self.u.nonneg and self.v.nonneg:
            upper = min(upper, top_singular(Z.clamp_min(0), method="exact", vectors=False).upper)
        best = (-float("inf"), None, None)
        P, _, Qh = torch.linalg.svd(Z, full_matrices=False)
        inits = [s * Qh[0] for s in (1.0, -1.0)]
        inits += [torch.as_tensor(rng.standard_normal(Z.shape[1]), dtype=Z.dtype, device=Z.device)
                  for _ in range(max(starts - 2, 0))]
        for v in inits:
            v = self.v._support(v.unsqueeze(1))[1].squeeze(1)
            val = -float("inf")
            for _ in range(1000):  # monotone ascent: each half-step maximizes one side exactly
                u = self.u._support((Z @ v).unsqueeze(1))[1].squeeze(1)  # (m,)
                sv, v = self.v._support((Z.T @ u).unsqueeze(1))  # (n, 1)
                v, new = v.squeeze(1), float(sv[0])
                done = new <= val + 1e-15 * max(abs(new), 1.0)
                val = max(val, new)
                if done:
                    break
            if val > best[0]:
                best = (val, u, v)
        val, u, v = best
        detail = (f"lower bound: best of {len(inits)} runs of alternating maximization (the polar of "
                  f"{self.name} is NP-hard in general); proven upper bound {upper:.6g} from a singular value")
        return PolarResult(max(val, 0.0), u, v, "lower_bound", max(upper, val), detail)

    @staticmethod
    def _vertex_polar(Z, vert: ColumnNorm, other: ColumnNorm, rows: bool) -> PolarResult:
        import torch

        W = Z.T if rows else Z  # columns of W are the rows (or columns) of Z
        vals, args = other._support(W)
        sign = 1.0
        if not vert.nonneg:
            vals_neg, args_neg = other._support(-W)
            if bool((vals_neg > vals).any()):
                flip = vals_neg > vals
                vals = torch.where(flip, vals_neg, vals)
                args = torch.where(flip.unsqueeze(0), args_neg, args)
                signs = torch.where(flip, -torch.ones_like(vals), torch.ones_like(vals))
            else:
                signs = torch.ones_like(vals)
        i = int(vals.argmax())
        value = float(vals[i])
        if not vert.nonneg:
            sign = float(signs[i])
        e = torch.zeros(W.shape[1], dtype=Z.dtype, device=Z.device)
        e[i] = sign if value > 0 else 0.0
        a = args[:, i] if value > 0 else torch.zeros_like(args[:, i])
        u, v = (e, a) if rows else (a, e)
        detail = f"closed form: max over the vertices of the {vert.name} ball (O(mn))"
        return PolarResult(value, u, v, "exact", value, detail)

    @one_thread_when_small
    def induced(self, X: Any) -> float:
        """:math:`\\Omega_\\theta(X) = \\min\\{\\sum_i \\theta(u_i, v_i): UV^\\top = X\\}`, in closed form.

        Nuclear norm for l2/l2; for an l1-type side the atoms are :math:`\\pm e_i v^\\top`, so
        :math:`\\Omega` is a sum over rows (or columns) of the other side's gauge (``inf`` where
        a non-negativity constraint makes ``X`` unreachable). Raises ``ValueError`` for the pairs
        without a closed form.
        """
        Xt, _ = as_compute_tensor(X)
        return float(self._induced(Xt))

    def _induced(self, X):
        import torch

        if self.u.p == 1:
            return self.v._gauge_rows(X.T, symmetric=not self.u.nonneg).sum()
        if self.v.p == 1:
            return self.u._gauge_rows(X, symmetric=not self.v.nonneg).sum()
        if not (self.u.nonneg or self.v.nonneg):
            return torch.linalg.svdvals(X).sum()
        raise param_error("norms", "induced", "a pair with a closed-form induced norm (not "
                          "l2+ against an l2-type side)", self.name)


def _apply(fn, X):
    """Apply a column-wise function; a vector is one column (and comes back as a vector/scalar)."""
    t, back = as_compute_tensor(X)
    vec = t.ndim == 1
    out = fn(t.unsqueeze(1) if vec else t)
    if vec:
        out = out.squeeze(-1) if out.ndim == 2 else out.squeeze(0)
    return back(out)


def _like(tau, t):
    import torch

    if is_tensor(tau):
        return tau.to(dtype=t.dtype, device=t.device)
    return torch.as_tensor(np.asarray(tau, dtype=np.float64), dtype=t.dtype, device=t.device)


#: Every pair of the four column norms, keyed by ``(a, b)``.
NORM_PAIRS: dict[tuple[str, str], NormPair] = {
    (a, b): NormPair(ColumnNorm(a), ColumnNorm(b)) for a in NORMS for b in NORMS
}


def norm_pair(norms: Any, func: str = "norm_pair", name: str = "norms") -> NormPair:
    """Look up a pair: ``("l2", "l2")``, ``"l1/l2"`` or a :class:`NormPair`; a clear error otherwise.

    Used in Chapter 3 (the row-sparse pair and the induced norms).

    Examples
    --------
    >>> norm_pair("l1/l2").name, norm_pair(("l2+", "l2")).closed_form
    ('l1/l2', False)
    """
    if isinstance(norms, NormPair):
        return norms
    key = tuple(norms.split("/")) if isinstance(norms, str) else norms
    try:
        key = tuple(str(k) for k in key) if not isinstance(key, str | bytes) else None
    except TypeError:
        key = None
    if key not in NORM_PAIRS:
        allowed = "a pair (a, b) of " + ", ".join(repr(n) for n in NORMS) + " such as ('l2', 'l2')"
        raise param_error(name, func, allowed, norms)
    return NORM_PAIRS[key]
