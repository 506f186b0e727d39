r"""An independent oracle: the exact convex program of two-layer ReLU networks (Pilanci and Ergen).

Pilanci and Ergen (ICML 2020) show that training a two-layer ReLU network with scalar output and
weight decay,

.. math::

    \min_{m,\,u_j,\,\alpha_j}\ \tfrac12\Big\lVert \sum_{j=1}^m \psi(A u_j)\alpha_j - y\Big\rVert_2^2
    + \frac{\lambda}{2}\sum_{j=1}^m \big(\lVert u_j\rVert_2^2 + \alpha_j^2\big),

has the same optimal value as the convex program over the activation patterns
:math:`D_i = \operatorname{diag}(\mathbb 1[A g_i \ge 0])` that the data allow,

.. math::

    \min_{v_i, w_i}\ \tfrac12\Big\lVert \sum_i D_i A (v_i - w_i) - y\Big\rVert_2^2
    + \lambda\sum_i \big(\lVert v_i\rVert_2 + \lVert w_i\rVert_2\big)
    \quad\text{s.t.}\quad (2D_i - I)Av_i \ge 0,\ (2D_i - I)Aw_i \ge 0,

and a network attaining it is read off the solution: :math:`u = v_i/\sqrt{\lVert v_i\rVert}`,
:math:`\alpha = \sqrt{\lVert v_i\rVert}` (and :math:`-\sqrt{\lVert w_i\rVert}` for :math:`w_i`).
By the balanced rescaling, weight decay and :math:`\lambda\sum_j\lVert u_j\rVert\,|\alpha_j|`
have the same optimum, so this is also the optimum of Chapter 4's product regularizer with one
hidden layer. The program is solved with cvxpy, independently of :mod:`hdlcore`'s training
and polar code. For 2-D inputs every pattern is enumerated exactly (the patterns are constant
on the arcs of the unit circle between the angles where :math:`a_j^\top g = 0`); in higher
dimensions patterns are sampled and the result is only an upper bound on the optimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import is_tensor
from .._validation import check_array, check_devices, check_rng, check_scalar, param_error

__all__ = ["ConvexReLUResult", "activation_patterns_2d", "convex_relu"]

#: At most this many entries in the matrix of random directions that sample patterns (d > 2).
MAX_SAMPLES = 10**8


@dataclass(frozen=True)
class ConvexReLUResult:
    """The optimum of the convex program and a two-layer network attaining it."""

    objective: float  #: optimal value of the convex program (= the network's optimum if exact)
    X: Any  #: (N, 1) output of the optimal network (numpy, or a tensor for tensor input)
    W1: Any  #: (d, m) first-layer weights u_j as columns
    W2: Any  #: (m, 1) output weights alpha_j
    patterns: Any  #: (P, N) booleans, the activation patterns used
    exact: bool  #: every pattern enumerated: objective is the global optimum
    status: str  #: solver status
    solver: str


def activation_patterns_2d(A: Any) -> np.ndarray:
    r"""All activation patterns :math:`\mathbb 1[Ag > 0]` of 2-D inputs, exactly: ``(P, N)`` booleans.

    The patterns are constant on the open arcs of the unit circle between consecutive angles
    where :math:`a_j^\top g = 0` (at most ``2N`` arcs); one pattern per arc, duplicates and the
    all-inactive pattern removed. Used in Chapter 4.

    Examples
    --------
    >>> activation_patterns_2d(np.array([[1.0, 0.0], [0.0, 1.0]])).astype(int).tolist()
    [[0, 1], [1, 0], [1, 1]]
    """
    A = check_array(A, "A", "activation_patterns_2d", ndim=2, shape=(None, 2))
    A = A.detach().cpu().double().numpy() if is_tensor(A) else np.asarray(A, dtype=np.float64)
    nz = np.linalg.norm(A, axis=1) > 0
    if not nz.any():
        return np.zeros((0, A.shape[0]), dtype=bool)
    base = np.arctan2(A[nz, 1], A[nz, 0])
    cuts = np.unique(np.mod(np.concatenate([base + np.pi / 2, base - np.pi / 2]), 2 * np.pi))
    nxt = np.append(cuts[1:], cuts[0] + 2 * np.pi)
    mid = (cuts + nxt) / 2
    D = (A @ np.stack([np.cos(mid), np.sin(mid)]) > 0).T  # (P, N)
    D = np.unique(D, axis=0)
    return D[D.any(axis=1)]


def convex_relu(
    A: Any,
    Y: Any,
    lam: float,
    *,
    patterns: Any = None,
    num_samples: int = 2000,
    rng: Any = None,
    solver: str = "CLARABEL",
) -> ConvexReLUResult:
    r"""Solve the Pilanci-Ergen convex program of a two-layer ReLU network with weight decay.

    Parameters
    ----------
    A : array (N, d)
        Inputs (no bias column is added: the network is bias-free, as in Chapter 4).
    Y : array (N, 1) or (N,)
        Scalar targets.
    lam : float
        :math:`\lambda > 0`, with the loss :math:`\frac12\lVert\cdot\rVert^2` (summed).
    patterns : array (P, N) of bools, optional
        Activation patterns to use; default: all of them for ``d = 2``
        (:func:`activation_patterns_2d`), else those of ``num_samples`` random directions.
    num_samples : int
        Random directions used to sample patterns when ``d != 2``.
    rng : numpy Generator or int, optional
    solver : str
        A cvxpy conic solver; Clarabel (interior point) gives about 8 correct digits.

    Returns
    -------
    ConvexReLUResult
        ``exact`` is True when every pattern was used (``d = 2``, default ``patterns``): then
        ``objective`` is the optimum of the network problem; otherwise an upper bound.

    Notes
    -----
    The program is in the module's docstring. Used in Chapter 4 as the independent oracle.

    References
    ----------
    M. Pilanci and T. Ergen, Neural networks are convex regularizers: exact polynomial-time
    convex optimization formulations for two-layer networks, ICML 2020.

    Examples
    --------
    >>> A = np.array([[1.0, 0.2], [-0.3, 1.0], [-1.0, -0.5]]); y = np.array([1.0, -1.0, 0.5])
    >>> res = convex_relu(A, y, lam=0.1)
    >>> res.exact, bool(np.isclose(res.objective, 0.5 * np.sum((res.X[:, 0] - y) ** 2)
    ...     + 0.1 * np.sum(np.linalg.norm(res.W1, axis=0) * np.abs(res.W2[:, 0])), rtol=1e-6))
    (True, True)
    """
    import cvxpy as cp

    func = "convex_relu"
    A_in = A
    check_devices(func, {"A": A, "Y": Y})
    A = check_array(A, "A", func, ndim=2)
    A = A.detach().cpu().double().numpy() if is_tensor(A) else np.asarray(A, dtype=np.float64)
    Y = check_array(Y, "Y", func, ndim=(1, 2))
    Y = Y.detach().cpu().double().numpy() if is_tensor(Y) else np.asarray(Y, dtype=np.float64)
    if Y.ndim == 2 and Y.shape[1] != 1:
        raise param_error("Y", func, "scalar targets, of shape (N,) or (N, 1)", Y)
    y = Y.reshape(-1)
    N, d = A.shape
    if y.shape[0] != N:
        raise param_error("Y", func, f"{N} targets (one per row of A)", Y)
    lam = check_scalar(lam, "lam", func, gt=0)
    if patterns is not None:
        D = np.asarray(patterns, dtype=bool)
        if D.ndim != 2 or D.shape[1] != N:
            raise param_error("patterns", func, f"a (P, {N}) boolean array", patterns)
        exact = False
    elif d == 2:
        D, exact = activation_patterns_2d(A), True
    else:
        # the directions are a (d, num_samples) matrix: refuse a typo before allocating it
        num_samples = check_scalar(num_samples, "num_samples", func, kind="int", ge=1, le=MAX_SAMPLES // d)
        G = check_rng(rng, "rng", func).standard_normal((d, num_samples))
        D = np.unique((A @ G > 0).T, axis=0)
        D, exact = D[D.any(axis=1)], False
    P = D.shape[0]
    if P == 0:  # every network outputs zero
        return ConvexReLUResult(0.5 * float(y @ y), np.zeros((N, 1)), np.zeros((d, 0)), np.zeros((0, 1)),
                                D, exact, "trivial", "none")
    Dm = D.T.astype(np.float64)  # (N, P)
    S = 2 * Dm - 1
    V, W = cp.Variable((P, d)), cp.Variable((P, d))
    pre_v, pre_w = A @ V.T, A @ W.T  # (N, P): a_n^T v_i
    pred = cp.sum(cp.multiply(Dm, pre_v - pre_w), axis=1)
    objective = 0.5 * cp.sum_squares(pred - y) + lam * (cp.sum(cp.norm(V, 2, axis=1))
                                                         + cp.sum(cp.norm(W, 2, axis=1)))
    prob = cp.Problem(cp.Minimize(objective), [cp.multiply(S, pre_v) >= 0, cp.multiply(S, pre_w) >= 0])
    prob.solve(solver=solver)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"convex_relu: the solver {solver} returned status {prob.status!r}")
    cols, outs = [], []
    for M, sign in ((V.value, 1.0), (W.value, -1.0)):
        for i in range(P):
            n = np.linalg.norm(M[i])
            if n > 1e-9 * max(1.0, np.abs(M).max()):
                cols.append(M[i] / np.sqrt(n))
                outs.append(sign * np.sqrt(n))
    W1 = np.array(cols).T.reshape(d, -1)
    W2 = np.array(outs).reshape(-1, 1)
    X = (Dm * (A @ (V.value - W.value).T)).sum(axis=1, keepdims=True)
    if is_tensor(A_in):  # a tensor in, tensors out on its device and dtype
        import torch

        dt = A_in.dtype if A_in.is_floating_point() else torch.float64
        X, W1, W2 = (torch.as_tensor(x).to(device=A_in.device, dtype=dt) for x in (X, W1, W2))
        D = torch.as_tensor(D).to(A_in.device)
    return ConvexReLUResult(float(prob.value), X, W1, W2, D, exact, prob.status, solver)
