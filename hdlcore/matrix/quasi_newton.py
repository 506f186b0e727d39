"""Preconditioned L-BFGS on the balanced factorized objective (l2/l2, data with a mask, dense or sparse).

.. math:: f(U, V) = \\tfrac12\\lVert M\\odot(UV^\\top - Y)\\rVert_F^2
   + \\tfrac\\lambda2\\left(\\lVert U\\rVert_F^2 + \\lVert V\\rVert_F^2\\right)

Alternating least squares converges linearly, and near an optimum of moderate rank slowly: on a
400 x 400 completion with an optimum of rank 51, about 80 sweeps take the polar from 1 + 1e-3 to
1 + 1e-6, and each sweep costs about 16 products of size m x n x r. A quasi-Newton step costs
three (the residual and the two gradients), and with the metric of the ALS rows as its initial
Hessian, L-BFGS needs about 100 of them for the same progress.

The metric is block diagonal: row ``i`` of ``U`` gets :math:`c_i V^\\top V + \\lambda I` with
:math:`c_i` the fraction of row ``i`` observed (the preconditioner of the conjugate-gradient ALS
rows), the rows of ``V`` likewise; it is inverted through one eigendecomposition of
:math:`V^\\top V` and one of :math:`U^\\top U` per call. Steps use a backtracking Armijo line search,
so the objective decreases monotonically, as with ALS.

Used by :func:`hdlcore.grow` for the final descents (the polar within 10 % of 1); see
``benchmarks/bench_ranks.py``.

References
----------
J. Nocedal, Updating quasi-Newton matrices with limited storage, Math. Comp. 35, 1980;
D. C. Liu and J. Nocedal, On the limited memory BFGS method for large scale optimization,
Math. Program. 45, 1989.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__: list[str] = []

#: Pairs (s, y) kept.
MEMORY = 12
#: Armijo's sufficient-decrease constant.
_ARMIJO = 1e-4
#: Halvings of the step before the line search gives up (the objective is at rounding level).
_HALVINGS = 30


@dataclass
class Memory:
    """The L-BFGS pairs, kept between calls at the same point (``U``, ``V`` as returned)."""

    U: Any = None
    V: Any = None
    pairs: list = field(default_factory=list)
    stalled: bool = False  # the line search found no decrease (rounding level)

    def at(self, U, V) -> bool:
        return self.U is U and self.V is V


def row_metric_solver(Mf, V, lam):
    """``G -> Z`` whose rows solve :math:`(c_i V^\\top V + \\lambda I) z_i = g_i`, with :math:`c_i` the
    fraction of row ``i`` of the mask ``Mf`` observed: the ALS rows' ridge systems with each row's
    mask replaced by its mean. One eigendecomposition of :math:`V^\\top V` serves every row; used
    by L-BFGS here and by the conjugate-gradient ALS rows (:mod:`hdlcore.matrix.factorized`)."""
    import torch

    d, E = torch.linalg.eigh(V.T @ V)  # (r,), (r, r)
    if isinstance(Mf, torch.Tensor):
        frac = Mf.mean(1, keepdim=True)  # (m, 1)
    else:  # a sparse mask (hdlcore.matrix.sparse): its row counts
        frac = (Mf @ torch.ones(Mf.shape[1], dtype=V.dtype, device=V.device))[:, None] / Mf.shape[1]
    den = frac * d + lam  # (m, r)
    return lambda G: ((G @ E) / den) @ E.T


def lbfgs(prob, U, V, lam, tol, max_iter, objectives, times, start, memory: Memory | None = None):
    """At most ``max_iter`` preconditioned L-BFGS steps on ``f(U, V)``.

    Stops when the relative decrease of the last step and the squared relative gradient
    ``(|grad_U|^2 + |grad_V|^2) / (|(M*Y) V|^2 + |(M*Y)^T U|^2)`` (the scale taken at the start)
    are both at most ``tol`` (the test of the ALS sweeps), or when the line search cannot
    decrease ``f`` any more: then ``memory.stalled`` is set, and the caller goes on with ALS, whose
    stopping test is the gradient alone (the objective's rounding does not stop it). ``memory``
    carries the pairs to the next call when it starts where this one stopped.
    Returns ``(U, V, converged, steps)``.
    """
    import torch

    Yt, Mf = prob.Y, prob.Mf
    m = U.shape[0]
    if memory is None or not memory.at(U, V):
        memory = memory if memory is not None else Memory()
        memory.pairs = []
    pairs = memory.pairs  # (s, y, 1 / <s, y>), flat vectors of the stacked factors [U; V]
    metric_u, metric_v = row_metric_solver(Mf, V, lam), row_metric_solver(Mf.T, U, lam)

    def precondition(g):  # g: flat gradient of [U; V] -> flat
        G = g.view(-1, U.shape[1])
        return torch.cat([metric_u(G[:m]), metric_v(G[m:])]).view(-1)

    dense = isinstance(Yt, torch.Tensor)

    def value(W):
        if dense:  # M * (U V^T - Y), in place (Yt is already zero where unobserved)
            R = (W[:m] @ W[m:].T).sub_(Yt).mul_(Mf)  # (m, r) @ (r, n) -> (m, n)
            loss = 0.5 * float(torch.dot(R.view(-1), R.view(-1)))
        else:  # sparse: R = M * (Y - U V^T) on the observed entries (the opposite sign)
            R = prob.residual(W[:m], W[m:])
            loss = prob.loss(R)
        return loss + 0.5 * lam * float(torch.dot(W.view(-1), W.view(-1))), R

    def gradient(W, R):
        G = torch.empty_like(W)
        if dense:
            torch.mm(R, W[m:], out=G[:m])  # (m, n) @ (n, r)
            torch.mm(R.T, W[:m], out=G[m:])  # (n, m) @ (m, r)
            return G.add_(W, alpha=lam).view(-1)
        G[:m], G[m:] = R @ W[m:], R.T @ W[:m]  # sparse (m, n) @ (n, r), (n, m) @ (m, r)
        return (lam * W - G).view(-1)

    # The gradient's scale, |(M*Y) V|^2 + |(M*Y)^T U|^2, fixed for the call (it barely moves).
    scale = max(float(((Yt @ V) ** 2).sum() + ((Yt.T @ U) ** 2).sum()), 1e-300)
    W = torch.cat([U, V])
    f, R = value(W)
    g = gradient(W, R)
    converged, steps = False, 0
    while steps < max_iter:
        # Two-loop recursion with the block-diagonal metric as the initial inverse Hessian.
        q = g.clone()
        alphas = []
        for s_, y_, rho in reversed(pairs):
            a = rho * float(torch.dot(s_, q))
            alphas.append(a)
            q.add_(y_, alpha=-a)
        d = precondition(q)  # the metric is already to scale: no Shanno-Phua factor
        for (s_, y_, rho), a in zip(pairs, reversed(alphas), strict=True):
            d.add_(s_, alpha=a - rho * float(torch.dot(y_, d)))
        slope = -float(torch.dot(g, d))
        if slope >= 0:  # not a descent direction (rounding): restart from the metric alone
            pairs.clear()
            d = precondition(g)
            slope = -float(torch.dot(g, d))
        t = 1.0
        for _ in range(_HALVINGS):
            Wn = W - t * d.view_as(W)
            fn, Rn = value(Wn)
            if fn <= f + _ARMIJO * t * slope:
                break
            t /= 2
        else:  # no decrease at any step length: the objective is at its rounding level
            memory.stalled = True
            break
        gn = gradient(Wn, Rn)
        s_, y_ = (Wn - W).view(-1), gn - g
        sy = float(torch.dot(s_, y_))
        if sy > 1e-12 * float(torch.linalg.vector_norm(s_) * torch.linalg.vector_norm(y_)):
            pairs.append((s_, y_, 1 / sy))
            del pairs[:-MEMORY]
        decrease = f - fn
        W, f, g = Wn, fn, gn
        steps += 1
        objectives.append(f)
        times.append(time.perf_counter() - start)
        if max(decrease, float(torch.dot(g, g)) / scale * abs(f)) <= tol * max(abs(f), 1e-300):
            converged = True
            break
    U, V = W[:m], W[m:]
    memory.U, memory.V = U, V
    return U, V, converged, steps
