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
from .problem import _gradient_mapping, _objective_parts
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
    params = list(model.weights)
    value, _ = _objective_parts(model, A, Y, loss, regularizer, precision, scale)
    grads = torch.autograd.grad(value, params)
    with torch.no_grad():
        norms = _layer_norms(params)
        torch._foreach_add_(params, grads, alpha=-lr)
        _prox(params, lr, lam, regularizer, norms, rebalance)
    return value.detach()


_SIGMA = 1e-4  # sufficient decrease
_WINDOW = 10  # steps over which the relative decrease is compared with tol


def model_losses(model, A, Y, loss, precision, groups, M):
    """Loss of each model, (M,), with its autograd graph."""
    with precision_context(precision, A.device.type):
        if M == 1:
            X = model(A)[None]  # (1, N, C)
        else:
            each = model.forward_each(A)  # (R, N, C)
            X = torch.zeros((M, *each.shape[1:]), dtype=each.dtype, device=each.device)
            X = X.index_add(0, groups, each)  # (M, N, C)
    if X.dtype == torch.bfloat16:
        X = X.float()
    if loss == "squared":
        return 0.5 * ((X - Y) ** 2).sum(dim=(1, 2))
    return -(Y * torch.log_softmax(X, dim=2)).sum(dim=(1, 2))


def _per_model(values, groups, M):
    """Sum a per-subnetwork vector (R,) over models -> (M,)."""
    return torch.zeros(M, dtype=values.dtype, device=values.device).index_add(0, groups, values)


def _sub_shape(w):
    return (-1,) + (1,) * (w.ndim - 1)


def full_batch(model, A, Y, lam, loss, regularizer, steps, lr0, tol, rebalance, precision, log_every,
               bar, groups=None, M=1):
    """Run the loop; return (histories per model, converged (M,), steps done (M,), lr (M,)).

    A model stops when its objective decreased by at most ``tol * |f|`` over the last ten steps
    (at a minimum of a ReLU network the objective is typically not differentiable: hyperplanes
    of neurons pass through data points, so the gradient mapping need not vanish), or when no
    step size decreases it (numerically stationary).
    """
    params = list(model.weights)
    R = params[0].shape[0]
    dev, dt = params[0].device, params[0].dtype
    if groups is None:
        groups = torch.zeros(R, dtype=torch.long, device=dev)
    lr = torch.full((M,), float(lr0 or 1.0), dtype=dt, device=dev)
    running = torch.ones(M, dtype=torch.bool, device=dev)
    converged = torch.zeros(M, dtype=torch.bool, device=dev)
    done = torch.zeros(M, dtype=torch.long, device=dev)
    hists = [{k: [] for k in ("step", "objective", "loss", "regularizer", "active", "lr")} for _ in range(M)]

    def evaluate(norms):
        values = model_losses(model, A, Y, loss, precision, groups, M)
        theta = _theta(norms, regularizer)  # (R,)
        regs = _per_model(theta, groups, M)
        active = _per_model((norms > 0).all(dim=0).to(dt), groups, M)
        return values, regs, active

    def record(t, values, regs, active, which):
        v, g, a, s = (x.detach().cpu().tolist() for x in (values, regs, active, lr))
        for m in which:
            h = hists[m]
            h["step"].append(t)
            h["objective"].append(v[m] + lam * g[m])
            h["loss"].append(v[m])
            h["regularizer"].append(g[m])
            h["active"].append(int(round(a[m])))
            h["lr"].append(s[m])
        if not bar.disable:
            bar.set_postfix(objective=f"{v[0] + lam * g[0]:.6g}", active=int(round(a[0])), refresh=False)

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
    if not bar.disable:
        bar.set_postfix(objective=f"{value + lam * reg:.6g}", active=active, refresh=False)


def _new_history():
    return {k: [] for k in ("step", "objective", "loss", "regularizer", "active", "lr")}


def mini_batch(model, A, Y, lam, loss, regularizer, steps, lr, batch_size, rebalance, precision, log_every,
                gen, tol, bar):
    """Proximal SGD with a fixed step; returns (history, converged, residual, steps, lr).

    ``converged`` compares the last two recorded full objectives (relative change <= tol); None
    when ``tol`` is None. A non-finite objective restores the last recorded weights and stops.
    """
    N = A.shape[0]
    scale = N / batch_size
    hist = _new_history()
    value, reg = _objective_parts(model, A, Y, loss, regularizer, precision)
    active = int(model.active().sum())
    _record(hist, 0, float(value.detach()), float(reg), lam, active, lr or float("nan"), bar)
    saved = [p.detach().clone() for p in model.weights]
    order, pos, t, diverged = np.empty(0, dtype=np.int64), 0, 0, False
    device = A.device
    for t in range(1, steps + 1):
        if pos + batch_size > len(order):
            order, pos = gen.permutation(N), 0
        idx = torch.from_numpy(order[pos:pos + batch_size]).to(device)
        pos += batch_size
        Ab, Yb = A.index_select(0, idx), Y.index_select(0, idx)
        if lr is None:  # backtracking on the first batch, then a fixed, halved step
            lr = _first_step(model, Ab, Yb, lam, loss, regularizer, precision, scale) / 2
        train_step(model, Ab, Yb, lam, lr, loss=loss, regularizer=regularizer, scale=scale,
                   precision=precision, rebalance=rebalance)
        if t % log_every == 0 or t == steps:
            with torch.no_grad():
                value, reg = _objective_parts(model, A, Y, loss, regularizer, precision)
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
    residual = _gradient_mapping(model, A, Y, lam, loss, regularizer, lr or 1e-3, precision)[0]
    if diverged:
        converged = False
    elif tol is None or len(hist["objective"]) < 2:
        converged = None
    else:
        a, b = hist["objective"][-2:]
        converged = bool(abs(a - b) <= tol * abs(b))
    return hist, converged, residual, t, lr


def _first_step(model, A, Y, lam, loss, regularizer, precision, scale) -> float:
    params = list(model.weights)
    saved = [p.detach().clone() for p in params]
    value, reg = _objective_parts(model, A, Y, loss, regularizer, precision, scale)
    f = float(value.detach()) + lam * float(reg)
    grads = torch.autograd.grad(value, params)
    lr = 1.0
    with torch.no_grad():
        norms = _layer_norms(params)
        while lr > 1e-12:
            for p, s, g in zip(params, saved, grads, strict=True):
                torch.add(s, g, alpha=-lr, out=p.data)
            _prox(params, lr, lam, regularizer, norms, False)
            v, r = _objective_parts(model, A, Y, loss, regularizer, precision, scale)
            if float(v) + lam * float(r) < f:
                break
            lr *= 0.5
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    return lr
