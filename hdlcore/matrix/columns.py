"""One growth step of the meta-algorithm: add the polar's maximizer as a column, at the exact scale.

At a point :math:`(U, V)` with masked residual :math:`R = M\\odot(Y - UV^\\top)`, let
:math:`(u, v)` attain the polar, :math:`u^\\top R v = \\lambda\\,\\Omega_\\theta^\\circ(R/\\lambda)` with
:math:`\\theta(u, v) = 1`. Adding the column :math:`(\\sqrt s\\,u, \\sqrt s\\,v)` changes the
objective by

.. math::

    \\phi(s) = -s\\,(u^\\top R v - \\lambda) + \\tfrac12 s^2\\,\\lVert M\\odot uv^\\top\\rVert_F^2 ,

a parabola in :math:`s \\ge 0`, minimized at
:math:`s^\\star = (u^\\top R v - \\lambda)_+ / \\lVert M\\odot uv^\\top\\rVert_F^2` (the exact line search),
where it equals :math:`-\\tfrac12 (u^\\top R v - \\lambda)_+^2 / \\lVert M\\odot uv^\\top\\rVert_F^2`. So
the objective decreases exactly when the polar exceeds 1. Placing the column into a zero column
of :math:`(U, V)` instead of appending it gives the same point :math:`UV^\\top` and the same change.

:func:`add_column` is this step as a public function (Chapter 3 uses it to show that a point is
not a global minimum, and that a zero column at a stationary point can be a saddle);
:func:`hdlcore.grow` takes the same step after each local descent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import Array
from .._runtime import one_thread_when_small
from .._validation import check_choice, check_rng, check_scalar, param_error
from .norms import norm_pair
from .problem import factors, prepare

__all__ = ["ColumnStep", "add_column"]


@dataclass(frozen=True)
class ColumnStep:
    """The point after one growth step (:func:`add_column`).

    Attributes
    ----------
    U, V : arrays of shapes (m, r + 1) and (n, r + 1) (or (m, r), (n, r) with ``at``)
        The factors with the new column (the caller's array type, device and dtype).
    polar : float
        :math:`\\Omega_\\theta^\\circ(R/\\lambda)` at the starting point, as computed.
    polar_kind : str
        ``"exact"``, ``"krylov"`` or ``"lower_bound"`` (see :func:`hdlcore.polar`); the step's
        change below holds for the column used, whatever the kind.
    scale : float
        :math:`s^\\star`: the column is :math:`(\\sqrt{s^\\star} u, \\sqrt{s^\\star} v)`, zero when the
        polar is at most 1.
    change : float
        The change of the objective from the step, :math:`-\\tfrac12(u^\\top R v - \\lambda)_+^2 /
        \\lVert M\\odot uv^\\top\\rVert_F^2 \\le 0` (computed from the formula, not by evaluating
        the objective).
    masked_norm2 : float
        :math:`\\lVert M\\odot uv^\\top\\rVert_F^2` (at most 1 for l2 columns).
    column : int
        Index of the new column in ``U`` and ``V``.
    """

    U: Array
    V: Array
    polar: float
    polar_kind: str
    scale: float
    change: float
    masked_norm2: float
    column: int


def exact_step(prob, R, u, v, lam: float) -> tuple[float, float, float]:
    """Internal (trusted tensors): ``(s*, change, |M * u v^T|_F^2)`` for the column ``(u, v)``."""
    a = float(u @ (R @ v))  # <R, u v^T> = lam * polar
    uu, vv = u * u, v * v
    den = float(uu @ (prob.Mf @ vv)) if prob.Mf is not None else float(uu.sum() * vv.sum())
    den = max(den, 1e-300)
    excess = max(a - lam, 0.0)
    return excess / den, -0.5 * excess**2 / den, den


def append_column(prob, U, V, R, u, v, lam: float, at: int | None = None):
    """Internal: ``(U, V, s*, change, den)`` with the column ``(u, v)`` at its exact scale, appended
    (``at=None``) or written into column ``at``."""
    import torch

    u, v = (x.to(dtype=R.dtype, device=R.device) for x in (u, v))  # theta(u, v) = 1
    s, change, den = exact_step(prob, R, u, v, lam)
    root = s**0.5
    if at is None:
        U = torch.cat([U, root * u[:, None]], 1)
        V = torch.cat([V, root * v[:, None]], 1)
    else:
        U, V = U.clone(), V.clone()
        U[:, at], V[:, at] = root * u, root * v
    return U, V, s, change, den


@one_thread_when_small
def add_column(
    Y: Array,
    U: Array,
    V: Array,
    lam: float,
    mask: Array | None = None,
    norms: Any = ("l2", "l2"),
    *,
    at: int | None = None,
    method: str = "auto",
    rng: np.random.Generator | int | None = None,
) -> ColumnStep:
    """Add the polar's maximizer to :math:`(U, V)` as a column at the exact line-search scale.

    Parameters
    ----------
    Y : (m, n) array or tensor, or sparse matrix
        Data (entries where ``mask`` is False are ignored); a sparse ``Y`` lists the observed
        entries (then ``mask`` is None), as in :func:`hdlcore.grow`.
    U, V : (m, r) and (n, r) arrays or tensors
        The point (``r = 0`` is allowed: the point ``X = 0``).
    lam : float
        :math:`\\lambda > 0`.
    mask : (m, n) bool array, optional
        True where observed.
    norms : pair of str
        Column norms of :math:`\\theta` (default l2/l2).
    at : int, optional
        Index of a zero column of ``U`` and ``V`` to fill instead of appending a new one.
    method : {"auto", "exact", "krylov"}
        How :math:`\\sigma_1` is computed for l2/l2, as in :func:`hdlcore.polar`.
    rng : numpy Generator, int or None
        Lanczos start vector and heuristic starts of the polar.

    Returns
    -------
    ColumnStep
        The new factors, the polar, the scale :math:`s^\\star` and the change of the objective.

    Notes
    -----
    With :math:`R = M\\odot(Y - UV^\\top)` and the maximizer :math:`(u, v)` of the polar
    (:math:`\\theta(u, v) = 1`):

    .. math:: s^\\star = \\frac{(u^\\top R v - \\lambda)_+}{\\lVert M\\odot uv^\\top\\rVert_F^2},
       \\qquad F(U', V') - F(U, V) = -\\frac{(u^\\top R v - \\lambda)_+^2}
       {2\\lVert M\\odot uv^\\top\\rVert_F^2}.

    The step that :func:`hdlcore.grow` takes when the polar test fails. Used in Chapter 3.

    References
    ----------
    B. D. Haeffele and R. Vidal, Structured low-rank matrix factorization: global optimality,
    algorithms, and applications, IEEE TPAMI 42(6), 2020 (arXiv:1708.07850).

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.diag([5.0, 3.0, 1.0])
    >>> step = add_column(Y, np.zeros((3, 0)), np.zeros((3, 0)), lam=2.0)
    >>> step.U.shape, round(step.scale, 12), round(step.change, 12)  # sqrt(5 - 2) e_1, -(5 - 2)^2 / 2
    ((3, 1), 3.0, -4.5)
    """
    func = "add_column"
    prob, lam = prepare(Y, mask, lam, func)
    pair = norm_pair(norms, func)
    Ut, Vt = factors(prob, U, V, func, pair)
    method = check_choice(method, "method", func, ("auto", "exact", "krylov"))
    rng = check_rng(rng, "rng", func)
    r = int(Ut.shape[1])
    if at is not None:
        at = check_scalar(at, "at", func, kind="int", ge=0)
        if at >= r or bool(Ut[:, at].any()) or bool(Vt[:, at].any()):
            raise param_error("at", func, f"the index of a zero column of U and V (r = {r})", at)
    R = prob.residual(Ut, Vt)
    pol = pair._polar(R, method=method, rng=rng)
    Ut, Vt, s, change, den = append_column(prob, Ut, Vt, R, pol.u, pol.v, lam, at)
    return ColumnStep(U=prob.back(Ut), V=prob.back(Vt), polar=pol.value / lam, polar_kind=pol.kind,
                      scale=s, change=change, masked_norm2=den, column=r if at is None else at)
