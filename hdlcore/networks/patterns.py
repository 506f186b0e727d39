r"""One hidden layer with the activation patterns held fixed: a convex problem, solved exactly.

A one-hidden-layer network with one neuron per subnetwork and scalar output computes
:math:`\sum_i \psi(A w_i)\alpha_i`. If neuron :math:`i` keeps its activation pattern
:math:`D_i = \operatorname{diag}(\mathbb 1[Aw_i > 0])` on the data, then
:math:`\psi(Aw_i) = D_iAw_i` is linear in :math:`w_i`, and with :math:`v_i = |\alpha_i| w_i`
(so :math:`\theta_i = \lVert w_i\rVert|\alpha_i| = \lVert v_i\rVert`) the training problem becomes

.. math::

    \min_{v}\ \tfrac12\Big\lVert \sum_i s_i D_i A v_i - y\Big\rVert_2^2 + \lambda\sum_i\lVert v_i\rVert_2
    \quad\text{s.t.}\quad v_i \in \mathcal K_i = \{v : (2D_i - I)Av \ge 0\},

:math:`s_i = \operatorname{sign}\alpha_i`: the convex program of Pilanci and Ergen restricted to
the patterns in use. Neurons sharing a pattern and a sign merge into one. :func:`fit_within_patterns`
solves it by accelerated projected proximal gradient: the proximal map of
:math:`\tau\lVert\cdot\rVert + \iota_{\mathcal K}` is the projection on the cone followed by radial
shrinkage. For 2-D inputs the cones are wedges and the projection is closed form. In the
meta-algorithm (:func:`hdlcore.grow_network`) this is the local descent: the exact minimum over
all networks whose neurons keep their current patterns, which gradient steps reach only slowly
because the minimum usually sits on a kink (a neuron's boundary through a data point).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._validation import check_scalar, param_error
from .model import ParallelSubnetworks
from .problem import NetworkProblem, prepare_network

__all__ = ["PatternFitResult", "fit_within_patterns"]


@dataclass(frozen=True)
class PatternFitResult:
    """Outcome of :func:`fit_within_patterns` (the model is replaced, see ``model``)."""

    model: ParallelSubnetworks  #: one neuron per (pattern, sign) in use, then zero subnetworks
    objective: float
    objective_before: float
    iterations: int
    gap: float  #: duality gap of the restricted convex problem (its optimum is within gap)
    converged: bool


def _cones(A: np.ndarray, D: np.ndarray, V: np.ndarray):
    """Edges of the closed cone {v : (2D - I) A v >= 0} of each pattern (column of D), in 2-D.

    Returns ``(e0, e1, kind)``: unit edge directions (m, 2) and ``kind`` 0 for a wedge of angle
    below pi, 1 for a half-plane {<v, e0> >= 0}, 2 for the ray through the current ``V``
    (a pattern that only a direction on a cut has, e.g. with collinear opposite samples).
    """
    nz = np.linalg.norm(A, axis=1) > 0
    base = np.arctan2(A[nz, 1], A[nz, 0])
    cuts = np.unique(np.mod(np.concatenate([base + np.pi / 2, base - np.pi / 2]), 2 * np.pi))
    hi = np.append(cuts[1:], cuts[0] + 2 * np.pi)
    mid = (cuts + hi) / 2
    arcs = (A @ np.stack([np.cos(mid), np.sin(mid)]) > 0).T  # (arcs, N)
    lookup = {row.tobytes(): k for k, row in enumerate(arcs)}
    m = D.shape[1]
    e0, e1, kind = np.zeros((m, 2)), np.zeros((m, 2)), np.zeros(m, dtype=int)
    for i in range(m):
        k = lookup.get(D[:, i].tobytes())
        if k is None:
            u = V[i] / max(np.linalg.norm(V[i]), 1e-300)
            e0[i], e1[i], kind[i] = u, u, 2
        elif hi[k] - cuts[k] >= np.pi - 1e-12:
            e0[i], kind[i] = (np.cos(mid[k]), np.sin(mid[k])), 1
        else:
            e0[i], e1[i] = (np.cos(cuts[k]), np.sin(cuts[k])), (np.cos(hi[k]), np.sin(hi[k]))
    return e0, e1, kind


def _project_cones(V: np.ndarray, e0: np.ndarray, e1: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Project each row of V (m, 2) on its cone (see :func:`_cones`)."""
    det = e0[:, 0] * e1[:, 1] - e0[:, 1] * e1[:, 0]
    det = np.where(kind == 0, det, 1.0)
    a = (V[:, 0] * e1[:, 1] - V[:, 1] * e1[:, 0]) / det  # coordinates in the (e0, e1) basis
    b = (e0[:, 0] * V[:, 1] - e0[:, 1] * V[:, 0]) / det
    p0 = np.maximum((V * e0).sum(1), 0)[:, None] * e0
    p1 = np.maximum((V * e1).sum(1), 0)[:, None] * e1
    closer0 = np.linalg.norm(V - p0, axis=1) <= np.linalg.norm(V - p1, axis=1)
    wedge = np.where(((a >= 0) & (b >= 0))[:, None], V, np.where(closer0[:, None], p0, p1))
    half = V - np.minimum((V * e0).sum(1), 0)[:, None] * e0
    return np.where((kind == 0)[:, None], wedge, np.where((kind == 1)[:, None], half, p0))


def fit_within_patterns(
    model: ParallelSubnetworks,
    A: Any,
    Y: Any,
    lam: float,
    *,
    max_iter: int = 20000,
    tol: float = 1e-13,
) -> PatternFitResult:
    r"""The exact best one-hidden-layer network whose neurons keep their activation patterns.

    Parameters
    ----------
    model : ParallelSubnetworks
        One hidden layer, one neuron per subnetwork (``hidden=(1,)``), 2-D inputs, scalar output.
    A, Y, lam
        The problem (squared loss, product regularizer), as in :func:`hdlcore.train`.
    max_iter, tol
        FISTA iterations at most; stop when the duality gap of the restricted problem is below
        ``tol`` times its objective.

    Returns
    -------
    PatternFitResult
        With a new model of the same size ``r``: one neuron per pattern and sign in use, the
        other subnetworks zero (never worse than the input).

    Notes
    -----
    The problem is in the module's docstring. Its dual, :math:`\max_R \langle y, R\rangle -
    \frac12\lVert R\rVert^2` subject to :math:`\lVert \Pi_{\mathcal K_i^\circ}\ldots\rVert`, is not
    needed: the gap is computed from the optimality conditions of each group,
    :math:`\lVert\Pi_{\mathcal K_i}(s_i A^\top D_i R)\rVert \le \lambda`, by scaling :math:`R`.
    Used by :func:`hdlcore.grow_network` (Chapter 4).

    References
    ----------
    M. Pilanci and T. Ergen, Neural networks are convex regularizers, ICML 2020.
    """
    func = "fit_within_patterns"
    prob = prepare_network(model, A, Y, lam, func)
    if not patterns_apply(prob):
        raise param_error("model", func, "a one-hidden-layer network with one neuron per subnetwork, "
                          "2-D inputs and a scalar output", model)
    max_iter = check_scalar(max_iter, "max_iter", func, kind="int", ge=1)
    tol = check_scalar(tol, "tol", func, ge=0)
    return patterns_step(prob, max_iter=max_iter, tol=tol)


def patterns_apply(prob: NetworkProblem) -> bool:
    """Whether :func:`fit_within_patterns` applies: one neuron per subnetwork, 2-D inputs, scalar
    output, squared loss, product regularizer."""
    model = prob.model
    return (model.hidden == (1,) and model.in_features == 2 and model.out_features == 1 and not model.conv
            and prob.loss == "squared" and prob.regularizer == "product")


def patterns_step(prob: NetworkProblem, *, max_iter: int = 20000, tol: float = 1e-13) -> PatternFitResult:
    """:func:`fit_within_patterns` on a validated problem (where :func:`patterns_apply`)."""
    model, lam = prob.model, prob.lam
    An = prob.A.detach().cpu().numpy().astype(np.float64)
    y = prob.Y.detach().cpu().numpy().astype(np.float64)[:, 0]
    W1 = model.weights[0].detach().cpu().numpy()[:, :, 0].astype(np.float64)  # (r, 2)
    a = model.weights[1].detach().cpu().numpy()[:, 0, 0].astype(np.float64)  # (r,)
    live = (np.linalg.norm(W1, axis=1) > 0) & (a != 0)
    V0, s0 = W1[live] * np.abs(a[live])[:, None], np.sign(a[live])
    f_before = _objective(An, y, lam, V0, s0)
    if not live.any():
        return PatternFitResult(model, f_before, f_before, 0, 0.0, True)
    D0 = An @ W1[live].T > 0  # (N, m) patterns
    keys = np.concatenate([D0.T, s0[:, None] > 0], axis=1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    m = len(uniq)
    D, s = uniq[:, :-1].T.astype(np.float64), np.where(uniq[:, -1], 1.0, -1.0)  # (N, m), (m,)
    V = np.zeros((m, 2))
    np.add.at(V, inv, V0)  # neurons of one pattern and sign merge (a sum of cone elements)
    e0, e1, kind = _cones(An, D > 0, V)
    M = s[:, None, None] * np.einsum("nm,nd->mnd", D, An)  # (m, N, 2): s_i D_i A
    Mf = M.transpose(1, 0, 2).reshape(len(y), 2 * m)  # (N, 2m)
    L = max(np.linalg.norm(Mf, 2) ** 2, 1e-300)

    def prox(X, t):
        P = _project_cones(X, e0, e1, kind)
        n = np.linalg.norm(P, axis=1, keepdims=True)
        return P * np.maximum(0, 1 - t * lam / np.maximum(n, 1e-300))

    def gap_of(X):
        R = y - Mf @ X.reshape(-1)
        G = (Mf.T @ R).reshape(m, 2)  # s_i A^T D_i R
        c = np.linalg.norm(_project_cones(G, e0, e1, kind), axis=1).max()  # dual feasibility needs <= lam
        Rs = R * min(1.0, lam / c) if c > 0 else R
        return _objective(An, y, lam, X, s, Mf) - (y @ Rs - 0.5 * Rs @ Rs)

    x, z, tk, it, gap = V.copy(), V.copy(), 1.0, 0, np.inf
    for it in range(1, max_iter + 1):
        grad = (Mf.T @ (Mf @ z.reshape(-1) - y)).reshape(m, 2)
        x_new = prox(z - grad / L, 1 / L)
        if ((z - x_new) * (x_new - x)).sum() > 0:  # gradient restart
            z, tk = x_new, 1.0
        else:
            t_new = (1 + np.sqrt(1 + 4 * tk * tk)) / 2
            z, tk = x_new + ((tk - 1) / t_new) * (x_new - x), t_new
        x = x_new
        if it % 200 == 0:
            gap = gap_of(x)
            if gap <= tol * abs(_objective(An, y, lam, x, s, Mf)):
                break
    else:
        gap = gap_of(x)
    f = _objective(An, y, lam, x, s, Mf)
    if f > f_before:  # cannot happen at convergence; keep the input otherwise
        return PatternFitResult(model, f_before, f_before, it, float(gap), False)
    keep = np.linalg.norm(x, axis=1) > 0
    n = np.linalg.norm(x[keep], axis=1)
    r = model.num_subnets
    W1n, W2n = np.zeros((r, 2)), np.zeros(r)  # the size r is kept: unused slots are zero
    W1n[: keep.sum()] = x[keep] / np.sqrt(n)[:, None]
    W2n[: keep.sum()] = s[keep] * np.sqrt(n)
    p = model.weights[0]
    new = ParallelSubnetworks.from_weights([torch.as_tensor(W1n[:, :, None]).to(p),
                                            torch.as_tensor(W2n[:, None, None]).to(p)])
    return PatternFitResult(new, float(f), float(f_before), it, float(gap), bool(gap <= tol * abs(f)))


def _objective(A, y, lam, V, s, Mf=None) -> float:
    """1/2 ||sum_i s_i psi(A v_i) - y||^2 + lam sum ||v_i|| (psi: the patterns of the v_i)."""
    X = np.maximum(A @ V.T, 0) @ s if Mf is None else Mf @ V.reshape(-1)
    return float(0.5 * np.sum((X - y) ** 2) + lam * np.linalg.norm(V, axis=1).sum())
