r"""The exact convex step of a network: the best last layer given the others.

With the first :math:`K-1` layers of every subnetwork fixed, the output is linear in the last
layers, :math:`X = \sum_i H_i W_i^K` (:math:`H_i` the last hidden features of subnetwork
:math:`i`), and the regularizer is a convex function of each :math:`\lVert W_i^K\rVert_F`:

.. math::

    \min_{W^K}\ \ell\Big(Y, \sum_i H_i W_i^K\Big) + \lambda\sum_i g_i\big(\lVert W_i^K\rVert_F\big),
    \qquad g_i(n) = c_i\,n,\ \ \tfrac1K n^K,\ \ \tfrac12 n^2,

for the product (:math:`c_i = \prod_{k<K}\lVert W_i^k\rVert_F`, a group lasso), its balanced
form and weight decay. This block is convex: :func:`fit_last_layer` solves it to high accuracy
by accelerated proximal gradient (FISTA with restarts; for the squared loss the Gram matrix of
the features is formed once, so an iteration costs one small matrix product). A block-coordinate
step of the network problem, it can only decrease the objective; it is what makes the
meta-algorithm's local descent reach the kinks of ReLU networks, where gradient steps stall.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .. import _runtime
from .._validation import check_scalar
from .problem import NetworkProblem, objective_value, prepare_network, summed_loss
from .regularizers import _layer_norms, _prox, _radial_balanced

__all__ = ["LastLayerResult", "fit_last_layer"]


@dataclass(frozen=True)
class LastLayerResult:
    """Outcome of :func:`fit_last_layer` (the model is updated in place)."""

    objective: float  #: of the whole network problem, after the step
    objective_before: float
    iterations: int
    gap: float | None  #: duality gap of the convex block (squared loss), else None
    converged: bool
    merged: int  #: duplicate subnetworks merged into others before the step


def _radial_prox(n: torch.Tensor, t: torch.Tensor, kind: str, K: int) -> torch.Tensor:
    """New norms for the prox of t * g(n) (radial, per subnetwork)."""
    if kind == "product":
        return (n - t).clamp_min(0)  # t includes c_i
    if kind == "balanced":
        return _radial_balanced(n, t, K)
    return n / (1 + t)


def fit_last_layer(
    model, A: Any, Y: Any, lam: float, *, loss: str = "squared", regularizer: str = "product",
    max_iter: int = 3000,
    tol: float = 1e-12,
    merge: bool = True,
) -> LastLayerResult:
    r"""Replace the last layer of every subnetwork by the exact minimizer given the other layers.

    Parameters
    ----------
    model : ParallelSubnetworks
        Updated in place (then rebalanced for the product regularizer).
    A, Y, lam, loss, regularizer
        The problem, as in :func:`hdlcore.train`.
    max_iter : int
        FISTA iterations at most.
    tol : float
        Stop when the block's duality gap (squared loss) or its relative decrease over 100
        iterations (other losses) is below ``tol`` times the objective.
    merge : bool
        First merge subnetworks whose other layers coincide up to positive scales (relative
        distance 1e-6), which makes the block problem singular; kept only if the objective
        does not increase.

    Returns
    -------
    LastLayerResult

    Notes
    -----
    The block problem is in the module's docstring; for the product regularizer it is a group
    lasso whose zero groups are zero subnetworks. Its dual, for the squared loss, gives the
    gap: with :math:`R = Y - X` scaled so that
    :math:`\lVert H_i^\top R\rVert_F \le \lambda c_i`, the value
    :math:`\langle Y, R\rangle - \frac12\lVert R\rVert_F^2` is a lower bound. Used by
    :func:`hdlcore.grow_network` and :func:`hdlcore.train` (Chapter 4).

    References
    ----------
    A. Beck and M. Teboulle, A fast iterative shrinkage-thresholding algorithm for linear inverse
    problems, SIAM J. Imaging Sciences 2(1), 2009.

    Examples
    --------
    >>> import hdlcore as hd, torch
    >>> A, Y = hd.two_spirals(40, rng=0)
    >>> net = hd.ParallelSubnetworks(2, 1, 10, hidden=(1,), rng=0, dtype=torch.float64)
    >>> res = hd.fit_last_layer(net, A, Y, lam=0.5)
    >>> res.converged, res.objective <= res.objective_before
    (True, True)
    """
    func = "fit_last_layer"
    prob = prepare_network(model, A, Y, lam, func, loss=loss, regularizer=regularizer)
    max_iter = check_scalar(max_iter, "max_iter", func, kind="int", ge=1)
    tol = check_scalar(tol, "tol", func, ge=0)
    with _runtime.threads(prob.threads()):
        return last_layer_step(prob, max_iter=max_iter, tol=tol, merge=merge)


@torch.no_grad()
def last_layer_step(prob: NetworkProblem, *, max_iter: int = 3000, tol: float = 1e-12,
                    merge: bool = True) -> LastLayerResult:
    """:func:`fit_last_layer` on a validated problem (the caller sets the threads)."""
    params = list(prob.model.weights)
    f0 = objective_value(prob).objective
    saved = [p.detach().clone() for p in params]
    merged = 0
    if merge and prob.regularizer == "product":
        merged = _merge_same_pattern(params, prob.A) + _merge_duplicates(params)
    it, gap, converged = _solve_block(prob, max_iter, tol)
    f1 = objective_value(prob).objective
    if merged and f1 > f0:  # the merge moved a direction by up to 1e-6: undo if it did not pay
        for p, s_ in zip(params, saved, strict=True):
            p.copy_(s_)
        it, gap, converged = _solve_block(prob, max_iter, tol)
        f1, merged = objective_value(prob).objective, 0
    return LastLayerResult(objective=f1, objective_before=f0, iterations=it, gap=gap, converged=converged,
                           merged=merged)


def _merge_duplicates(params, atol: float = 1e-6) -> int:
    r"""Merge subnetworks whose layers before the last are equal up to positive scales (in place).

    Such subnetworks compute :math:`c_i\hat H W_i^K` with the same features :math:`\hat H`, so
    :math:`c_j \hat H (W_j^K + (c_i/c_j) W_i^K)` replaces both and, by the triangle inequality,
    does not increase the product regularizer. Exact duplicates make the block problem singular.
    Returns the number of subnetworks merged away.
    """
    K, r = len(params), params[0].shape[0]
    if K == 1:
        return 0
    norms = _layer_norms(params)
    active = (norms > 0).all(dim=0)
    U = torch.cat([(w.reshape(r, -1) / norms[k].clamp_min(1e-300)[:, None])
                   for k, w in enumerate(params[:-1])], dim=1)  # (r, D): the unit-normalized earlier layers
    dist = torch.cdist(U, U)
    c = norms[:-1].prod(dim=0)
    merged, alive = 0, active.clone()
    for i in range(r):
        if not alive[i]:
            continue
        for j in range(i):
            if alive[j] and float(dist[i, j]) <= atol * (K - 1) ** 0.5:
                params[-1][j] += (c[i] / c[j]) * params[-1][i]
                for w in params:
                    w[i] = 0
                alive[i], merged = False, merged + 1
                break
    return merged


def _merge_same_pattern(params, A) -> int:
    r"""One hidden layer, one neuron per subnetwork: merge neurons with one activation pattern.

    Neurons :math:`i` with the same pattern :math:`D = \operatorname{diag}(\mathbb 1[Aw_i > 0])`
    and positively parallel output vectors :math:`v_i = s_i\hat v` compute
    :math:`DA\big(\sum_i s_i w_i\big)\hat v^\top` on the data, and :math:`w = \sum_i s_i w_i` stays
    in the closed cone of that pattern; one neuron :math:`(w/\sqrt{\lVert w\rVert},
    \sqrt{\lVert w\rVert}\hat v)` replaces them with the same output and
    :math:`\lVert w\rVert \le \sum_i\lVert w_i\rVert\lVert v_i\rVert` (Pilanci and Ergen's
    observation: within a pattern the problem is convex). Returns the number merged away.
    """
    if len(params) != 2 or params[0].shape[2] != 1:
        return 0
    W1, W2 = params[0][:, :, 0], params[1][:, 0, :]  # (r, d), (r, C)
    n2 = W2.norm(dim=1)
    live = (W1.norm(dim=1) > 0) & (n2 > 0)
    pattern = (A @ W1.T > 0).T  # (r, N)
    vhat = W2 / n2.clamp_min(1e-300)[:, None]
    merged, alive = 0, live.clone()
    for i in range(W1.shape[0]):
        if not alive[i]:
            continue
        same = alive & (pattern == pattern[i]).all(dim=1) & ((vhat @ vhat[i]) >= 1 - 1e-12)
        same[i] = False
        idx = same.nonzero().flatten()
        if idx.numel() == 0:
            continue
        group = torch.cat([idx.new_tensor([i]), idx])
        w = (n2[group][:, None] * W1[group]).sum(dim=0)  # sum_i s_i w_i
        nw = w.norm()
        params[0][i, :, 0] = w / nw.sqrt()
        params[1][i, 0, :] = nw.sqrt() * vhat[i]
        for j in idx.tolist():
            params[0][j] = 0
            params[1][j] = 0
        alive[idx] = False
        merged += int(idx.numel())
    return merged


@torch.no_grad()
def _solve_block(prob: NetworkProblem, max_iter: int, tol: float):
    """FISTA (+ Newton on the active groups) for the last layer; returns (iterations, gap, converged)."""
    model, A_t, Y_t = prob.model, prob.A, prob.Y
    lam, loss, regularizer = prob.lam, prob.loss, prob.regularizer
    params = list(model.weights)
    K, r = len(params), model.num_subnets
    norms = _layer_norms(params)  # (K, r)
    if K == 1:
        H = A_t[None].expand(r, *A_t.shape)  # (r, N, d): the "features" of a linear model
    else:
        H = model._features(A_t)  # (r, N, h)
    N, h, C = H.shape[1], H.shape[2], Y_t.shape[1]
    Hf = H.transpose(0, 1).reshape(N, r * h)  # (N, r h)
    c = norms[:-1].prod(dim=0) if K > 1 else torch.ones(r, dtype=norms.dtype, device=norms.device)
    if regularizer == "product":
        weight = c
    else:  # the other layers enter as constants; only the last layer's norm moves
        weight = torch.ones_like(c)
    B = params[-1].detach().clone()  # (r, h, C)
    if loss == "squared":
        G = Hf.T @ Hf  # (r h, r h)
        HtY = (Hf.T @ Y_t).reshape(r, h, C)
        L = float(torch.linalg.eigvalsh(G)[-1]) if G.numel() else 1.0
    else:
        L = 0.5 * float(torch.linalg.matrix_norm(Hf, 2)) ** 2
    L = max(L, 1e-300)

    def smooth_and_grad(Bv):
        if loss == "squared":
            GB = (G @ Bv.reshape(r * h, C)).reshape(r, h, C)
            grad = GB - HtY
            value = 0.5 * float((Bv * GB).sum()) - float((Bv * HtY).sum()) + 0.5 * float((Y_t**2).sum())
            return value, grad
        X = Hf @ Bv.reshape(r * h, C)
        value = float(summed_loss(X, Y_t, loss))
        grad = (Hf.T @ (torch.softmax(X, dim=1) - Y_t)).reshape(r, h, C)
        return value, grad

    def reg_value(Bv):
        n = Bv.reshape(r, -1).norm(dim=1)
        if regularizer == "product":
            return float((weight * n).sum())
        return float((n**K).sum() / K) if regularizer == "balanced" else float(0.5 * (n**2).sum())

    def prox(V, t):
        n = V.reshape(r, -1).norm(dim=1)
        new = _radial_prox(n, t * lam * weight, regularizer, K)
        return V * (new / n.clamp_min(torch.finfo(n.dtype).tiny)).reshape(r, 1, 1)

    def objective(Bv):
        return smooth_and_grad(Bv)[0] + lam * reg_value(Bv)

    def block_gap(Bv):  # squared loss and product: f - (dual value at a feasible residual)
        R = Y_t - Hf @ Bv.reshape(r * h, C)  # (N, C)
        corr = (Hf.T @ R).reshape(r, -1).norm(dim=1)  # ||H_i^T R||_F
        ratio = torch.where(corr > 0, lam * weight / corr.clamp_min(1e-300), torch.inf)
        Rs = R * float(ratio.min().clamp(max=1))
        return objective(Bv) - (float((Y_t * Rs).sum()) - 0.5 * float((Rs**2).sum()))

    exact_gap = loss == "squared" and regularizer == "product"
    x, y, tk = B, B.clone(), 1.0
    fx = objective(x)
    gap, converged, it, last_check = None, False, 0, fx
    for it in range(1, max_iter + 1):
        _, gy = smooth_and_grad(y)
        x_new = prox(y - gy / L, 1.0 / L)
        if float(((y - x_new) * (x_new - x)).sum()) > 0:  # gradient restart (O'Donoghue, Candes)
            y, tk = x_new.clone(), 1.0
        else:
            t_new = (1 + (1 + 4 * tk * tk) ** 0.5) / 2
            y = x_new + ((tk - 1) / t_new) * (x_new - x)
            tk = t_new
        x = x_new
        if it % 100 == 0:
            if exact_gap:
                x = _newton_polish(x, G, HtY, Y_t, lam * weight, objective)
                y, tk = x.clone(), 1.0
                gap = block_gap(x)
                if gap <= tol * max(abs(objective(x)), 1e-300):
                    converged = True
                    break
            else:
                fx = objective(x)
                if last_check - fx <= tol * abs(fx):
                    converged = True
                    break
                last_check = fx
    if objective(x) > objective(B):  # never worse than where we started
        x = B
    params[-1].copy_(x)
    if regularizer == "product":
        _prox(params, 0.0, lam, regularizer, None, True)  # zero dead subnetworks, rebalance
    return it, gap, converged


def _newton_polish(B, G, HtY, Y, tau, objective, iters: int = 30):
    r"""Newton's method on the active groups of the group lasso (squared loss), kept if better.

    On the groups with :math:`B_i \ne 0` the objective
    :math:`\frac12\lVert Y - HB\rVert^2 + \sum_i \tau_i\lVert B_i\rVert` is smooth, with Hessian
    :math:`G_{SS} + \operatorname{blockdiag}(\tau_i(I - \hat b_i\hat b_i^\top)/\lVert B_i\rVert)`:
    once FISTA has found the active groups, a few Newton steps reach machine precision.
    """
    r, h, C = B.shape
    active = B.reshape(r, -1).norm(dim=1) > 0
    S = active.nonzero().flatten()
    m = int(S.numel()) * h * C
    if m == 0 or m > 3000:
        return B
    idx = (S[:, None] * h + torch.arange(h, device=B.device)[None]).flatten()  # rows of G for S
    G_S = G[idx][:, idx]  # (|S| h, |S| h)
    best, f_best = B, objective(B)
    x = B[S].clone()  # (s, h, C)
    for _ in range(iters):
        n = x.reshape(len(S), -1).norm(dim=1).clamp_min(1e-300)  # (s,)
        u = x.reshape(len(S), -1) / n[:, None]  # unit groups, (s, h C)
        GX = (G_S @ x.reshape(-1, C)).reshape_as(x)
        grad = (GX - HtY[S] + (tau[S] / n)[:, None, None] * x).reshape(len(S), -1)  # (s, h C)
        # Hessian: kron(G_S, I_C) in (group, h, C) ordering plus the norms' curvature per group
        Hess = torch.kron(G_S, torch.eye(C, dtype=G.dtype, device=G.device))
        blocks = (tau[S] / n)[:, None, None] * (torch.eye(h * C, dtype=G.dtype, device=G.device)
                                                 - u[:, :, None] * u[:, None, :])
        Hess = Hess + torch.block_diag(*blocks)
        try:
            step = torch.linalg.solve(Hess, grad.reshape(-1)).reshape_as(x)
        except RuntimeError:
            break
        t, f_old = 1.0, objective(_scatter(best, S, x))
        while t > 1e-8:
            cand = x - t * step
            if (cand.reshape(len(S), -1).norm(dim=1) > 0).all():
                full = _scatter(best, S, cand)
                f_c = objective(full)
                if f_c <= f_old:
                    break
            t /= 2
        if t <= 1e-8:
            break
        x = cand
        if f_c < f_best:
            best, f_best = full, f_c
        if f_old - f_c <= 1e-16 * abs(f_old):
            break
    return best


def _scatter(B, S, xS):
    out = torch.zeros_like(B)
    out[S] = xS
    return out

