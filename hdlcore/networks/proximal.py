"""The proximal gradient loops: full batch with backtracking (one or several networks), and mini-batch.

Several independent networks of the same architecture are trained as one batched
:class:`~hdlcore.ParallelSubnetworks` whose subnetworks carry a model index: one forward pass
gives every subnetwork's output, summed per model; every model has its own step size, its own
backtracking test and its own stopping rule, so the result is what training each model alone
would give (up to the order of floating-point sums). Used by :func:`hdlcore.train` and
:func:`hdlcore.train_many`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._runtime import precision as precision_context
from .problem import NetworkProblem, gradient_mapping, objective_parts, summed_loss
from .regularizers import _layer_norms, _prox, _theta

__all__ = ["train_step"]


def train_step(model: Any, A: torch.Tensor, Y: torch.Tensor, lam: float, lr: float, *,
               loss: str = "squared", regularizer: str = "product", scale: float = 1.0,
               precision: str = "full", rebalance: bool = True) -> torch.Tensor:
    r"""One proximal gradient step, in place: forward, backward, gradient step, proximal step.

    ``scale`` multiplies the loss (``N / batch`` makes a mini-batch gradient unbiased for the
    full loss). Trusts its inputs (tensors on the model's device): :func:`train` validates them.
    Returns the loss of the batch (before the step). Used by :func:`train` and the benchmarks.
    """
    prob = NetworkProblem(model, A, Y, lam, loss, regularizer, precision, "train_step")
    return step(prob, lr, scale=scale, rebalance=rebalance)


def step(prob: NetworkProblem, lr: float, *, A=None, Y=None, scale: float = 1.0,
         rebalance: bool = True) -> torch.Tensor:
    """:func:`train_step` on a validated problem (``A``, ``Y``: a mini-batch of its data)."""
    params = list(prob.model.weights)
    value, _ = objective_parts(prob, A=A, Y=Y, scale=scale)
    grads = torch.autograd.grad(value, params)
    with torch.no_grad():
        norms = _layer_norms(params)
        torch._foreach_add_(params, grads, alpha=-lr)
        _prox(params, lr, prob.lam, prob.regularizer, norms, rebalance)
    return value.detach()


_SIGMA = 1e-4  # sufficient decrease
_WINDOW = 10  # steps over which the relative decrease is compared with tol


def model_losses(prob: NetworkProblem, groups, M):
    """Loss of each model, (M,), with its autograd graph (the subnetworks of model m: groups == m)."""
    model = prob.model
    with precision_context(prob.precision, prob.device.type):
        if M == 1:
            X = model(prob.A)[None]  # (1, N, C)
        else:
            each = model.forward_each(prob.A)  # (R, N, C)
            X = torch.zeros((M, *each.shape[1:]), dtype=each.dtype, device=each.device)
            X = X.index_add(0, groups, each)  # (M, N, C)
    return summed_loss(X, prob.Y, prob.loss)


def _per_model(values, groups, M):
    """Sum a per-subnetwork vector (R,) over models -> (M,)."""
    return torch.zeros(M, dtype=values.dtype, device=values.device).index_add(0, groups, values)


def _sub_shape(w):
    return (-1,) + (1,) * (w.ndim - 1)


def full_batch(prob: NetworkProblem, *, steps, lr0, tol, rebalance, log_every, bar, groups=None, M=1):
    """Run the loop on ``prob.model`` (``M`` models: the subnetworks with ``groups == m`` form model m).

    Returns (histories per model, converged (M,), steps done (M,), lr (M,)).

    A model stops when its objective decreased by at most ``tol * |f|`` over the last ten steps
    (at a minimum of a ReLU network the objective is typically not differentiable: hyperplanes
    of neurons pass through data points, so the gradient mapping need not vanish), or when no
    step size decreases it (numerically stationary).
    """
    model, lam, regularizer = prob.model, prob.lam, prob.regularizer
    params = list(model.weights)
    R = params[0].shape[0]
    dev, dt = params[0].device, params[0].dtype
    if groups is None:
        groups = torch.zeros(R, dtype=torch.long, device=dev)
    lr = torch.full((M,), float(lr0 or 1.0), dtype=dt, device=dev)
    running = torch.ones(M, dtype=torch.bool, device=dev)
    converged = torch.zeros(M, dtype=torch.bool, device=dev)
    done = torch.zeros(M, dtype=torch.long, device=dev)
    hists = [_new_history() for _ in range(M)]

    def evaluate(norms):
        values = model_losses(prob, groups, M)
        theta = _theta(norms, regularizer)  # (R,)
        regs = _per_model(theta, groups, M)
        active = _per_model((norms > 0).all(dim=0).to(dt), groups, M)
        return values, regs, active

    def record(t, values, regs, active, which):
        v, g, a, s = (x.detach().cpu().tolist() for x in (values, regs, active, lr))
        for m in which:
            _record(hists[m], t, v[m], g[m], lam, int(round(a[m])), s[m], bar if m == 0 else None)

    norms = _layer_norms(params)
    values, regs, active = evaluate(norms)
    grads = torch.autograd.grad(values.sum(), params)
    if lr0 is None:  # a first step that moves the weights by 1% of their norm, then adapt
        w2 = sum(_per_model((p.detach() ** 2).reshape(R, -1).sum(1), groups, M) for p in params)
        g2 = sum(_per_model((g**2).reshape(R, -1).sum(1), groups, M) for g in grads)
        lr = torch.where(g2 > 0, (0.01 * w2.sqrt() / g2.sqrt().clamp_min(1e-300)).clamp(max=1.0), 1.0)
    f = (values.detach() + lam * regs)  # (M,)
    record(0, values, regs, active, range(M))
    recent = [f.clone()]
    for t in range(1, steps + 1):
        old = [p.detach().clone() for p in params]
        norms = _layer_norms(params)
        pending = running.clone()
        accepted_any = torch.zeros_like(running)
        while bool(pending.any()):
            lr_sub = torch.where(pending, lr, 0.0)[groups]  # (R,): 0 keeps a subnetwork in place
            with torch.no_grad():
                for p, o, g in zip(params, old, grads, strict=True):
                    upd = o - lr_sub.reshape(_sub_shape(p)) * g
                    keep = (~pending[groups]).reshape(_sub_shape(p))
                    p.copy_(torch.where(keep, p, upd))
                new = _prox(params, lr_sub, lam, regularizer, norms, False, only=pending[groups])
                diff2 = sum(_per_model(((p - o) ** 2).reshape(R, -1).sum(dim=1), groups, M)
                            for p, o in zip(params, old, strict=True))
                if rebalance:
                    new = _prox(params, 0.0, lam, regularizer, None, True, only=pending[groups])
            values, regs, active = evaluate(new)
            f_new = values.detach() + lam * regs
            ok = pending & ((f_new <= f - _SIGMA / (2 * lr) * diff2 + 4e-16 * f.abs()) | (diff2 == 0))
            accepted_any |= ok
            pending &= ~ok
            lr = torch.where(pending, lr * 0.5, lr)
            stalled = pending & (lr < 1e-30)
            if bool(stalled.any()):  # no decrease at any step size: numerically stationary
                with torch.no_grad():
                    back = stalled[groups]
                    for p, o in zip(params, old, strict=True):
                        p.copy_(torch.where(back.reshape(_sub_shape(p)), o, p))
                running &= ~stalled
                converged |= stalled
                pending &= ~stalled
        if not bool(accepted_any.any()):
            break
        grads = torch.autograd.grad(values.sum(), params)
        f = torch.where(accepted_any, f_new, f)
        done = torch.where(accepted_any, t, done)
        which = accepted_any.nonzero().flatten().tolist()
        if t % log_every == 0 or t == steps:
            record(t, values, regs, active, which)
        bar.update(1)
        recent.append(f.clone())
        if len(recent) > _WINDOW + 1:
            recent.pop(0)
            if tol is not None:
                stop = running & (recent[0] - f <= tol * f.abs())
                if bool(stop.any()):
                    for m in stop.nonzero().flatten().tolist():
                        if hists[m]["step"][-1] != t:
                            record(t, values, regs, active, [m])
                    converged |= stop
                    running &= ~stop
        if not bool(running.any()):
            break
        lr = torch.where(running, lr * 1.5, lr)
    bar.close()
    return hists, converged.cpu().tolist(), done.cpu().tolist(), lr.cpu().tolist()


def _record(hist, step, value, reg, lam, active, lr, bar):
    hist["step"].append(step)
    hist["objective"].append(value + lam * reg)
    hist["loss"].append(value)
    hist["regularizer"].append(reg)
    hist["active"].append(active)
    hist["lr"].append(lr)
    if bar is not None and not bar.disable:
        bar.set_postfix(objective=f"{value + lam * reg:.6g}", active=active, refresh=False)


def _new_history():
    return {k: [] for k in ("step", "objective", "loss", "regularizer", "active", "lr")}


def mini_batch(prob: NetworkProblem, *, steps, lr, batch_size, rebalance, log_every, gen, tol, bar):
    """Proximal SGD with a fixed step; returns (history, converged, residual, steps, lr).

    ``converged`` compares the last two recorded full objectives (relative change <= tol); None
    when ``tol`` is None. A non-finite objective restores the last recorded weights and stops.
    """
    model, A, Y, lam = prob.model, prob.A, prob.Y, prob.lam
    N = A.shape[0]
    scale = N / batch_size
    hist = _new_history()
    value, reg = objective_parts(prob)
    active = int(model.active().sum())
    _record(hist, 0, float(value.detach()), float(reg), lam, active, lr or float("nan"), bar)
    saved = [p.detach().clone() for p in model.weights]
    order, pos, t, diverged = np.empty(0, dtype=np.int64), 0, 0, False
    for t in range(1, steps + 1):
        if pos + batch_size > len(order):
            order, pos = gen.permutation(N), 0
        idx = torch.from_numpy(order[pos:pos + batch_size]).to(A.device)
        pos += batch_size
        Ab, Yb = A.index_select(0, idx), Y.index_select(0, idx)
        if lr is None:  # backtracking on the first batch, then a fixed, halved step
            lr = first_step(prob, scale, A=Ab, Y=Yb) / 2
        step(prob, lr, A=Ab, Y=Yb, scale=scale, rebalance=rebalance)
        if t % log_every == 0 or t == steps:
            with torch.no_grad():
                value, reg = objective_parts(prob)
            if not (bool(torch.isfinite(value)) and bool(torch.isfinite(reg))):
                with torch.no_grad():
                    for p, s in zip(model.weights, saved, strict=True):
                        p.copy_(s)
                diverged = True
                break
            saved = [p.detach().clone() for p in model.weights]
            _record(hist, t, float(value), float(reg), lam, int(model.active().sum()), lr, bar)
        bar.update(1)
    bar.close()
    residual = gradient_mapping(prob, lr or 1e-3)
    if diverged:
        converged = False
    elif tol is None or len(hist["objective"]) < 2:
        converged = None
    else:
        a, b = hist["objective"][-2:]
        converged = bool(abs(a - b) <= tol * abs(b))
    return hist, converged, residual, t, lr


def first_step(prob: NetworkProblem, scale: float = 1.0, *, A=None, Y=None) -> float:
    """The largest step 2^-k <= 1 whose proximal gradient step decreases the (batch) objective."""
    params = list(prob.model.weights)
    lam = prob.lam
    saved = [p.detach().clone() for p in params]
    value, reg = objective_parts(prob, A=A, Y=Y, scale=scale)
    f = float(value.detach()) + lam * float(reg)
    grads = torch.autograd.grad(value, params)
    lr = 1.0
    with torch.no_grad():
        norms = _layer_norms(params)
        while lr > 1e-12:
            for p, s, g in zip(params, saved, grads, strict=True):
                torch.add(s, g, alpha=-lr, out=p.data)
            _prox(params, lr, lam, prob.regularizer, norms, False)
            v, r = objective_parts(prob, A=A, Y=Y, scale=scale)
            if float(v) + lam * float(r) < f:
                break
            lr *= 0.5
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    return lr
