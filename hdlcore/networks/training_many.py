"""Training several independent networks at once: one batched forward pass for all of them.

Chapter 4 asks how often random starts reach the global minimum as the size ``r`` grows: that is
dozens of small trainings. :func:`train_many` concatenates the models (same layers, any sizes)
into one :class:`~hdlcore.ParallelSubnetworks` whose subnetwork outputs are summed per model, and
runs the full-batch proximal gradient of :func:`hdlcore.train` with one step size and one
stopping rule per model, so each model is trained exactly as it would be alone.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from .. import _runtime
from .._validation import check_scalar, param_error, warn_not_converged
from .model import ParallelSubnetworks
from .problem import check_model, gradient_mapping, model_threads, prepare_network
from .proximal import full_batch
from .regularizers import _prox
from .training import TrainResult, check_tol, result

__all__ = ["train_many"]


def train_many(
    models: list[ParallelSubnetworks], A: Any, Y: Any, lam: float, *,
    loss: str = "squared", regularizer: str = "product",
    steps: int = 1000,
    lr: float | None = None,
    tol: float | None = 1e-6,
    rebalance: bool | None = None,
    precision: str = "full",
    log_every: int = 1,
    threads: int | str | None = "auto",
) -> list[TrainResult]:
    r"""Train several independent networks at once, as one batched network (full batch, in place).

    The models (same layers, any numbers of subnetworks; e.g. several sizes ``r`` and several
    random starts) are concatenated into one :class:`ParallelSubnetworks` whose outputs are
    summed per model, so one forward and one backward pass serve all of them. Each model keeps
    its own backtracking step size and stopping rule: the result is that of :func:`train` run on
    each model alone (full batch), up to the order of floating-point sums. Parameters are those
    of :func:`train`.

    Returns
    -------
    list of TrainResult
        One per model, in order.

    Examples
    --------
    >>> import hdlcore as hd, torch
    >>> A, Y = hd.two_spirals(30, rng=0)
    >>> nets = [hd.ParallelSubnetworks(2, 1, r, hidden=(1,), rng=s, dtype=torch.float64)
    ...         for r in (2, 8) for s in range(3)]
    >>> results = hd.train_many(nets, A, Y, lam=0.5, steps=200)
    >>> len(results), all(res.objective < res.history["objective"][0] for res in results)
    (6, True)

    Notes
    -----
    Used in Chapter 4 (how often random starts reach the global minimum, as ``r`` grows).
    """
    func = "train_many"
    if not isinstance(models, list | tuple) or not models:
        raise param_error("models", func, "a non-empty list of hdlcore.ParallelSubnetworks", models,
                          TypeError)
    first = check_model(models[0], func, "models")
    for m in models:
        check_model(m, func, "models")
        same = (m.in_features, m.out_features, m.hidden, m.conv, m.input_shape, m.weights[0].dtype,
                m.weights[0].device)
        if same != (first.in_features, first.out_features, first.hidden, first.conv, first.input_shape,
                    first.weights[0].dtype, first.weights[0].device):
            raise param_error("models", func, "networks with the same layers, dtype and device", models)
    prob = prepare_network(first, A, Y, lam, func, loss=loss, regularizer=regularizer, precision=precision)
    steps = check_scalar(steps, "steps", func, kind="int", ge=0)
    lr = None if lr is None else check_scalar(lr, "lr", func, gt=0)
    tol = check_tol(tol, "tol", func)
    log_every = check_scalar(log_every, "log_every", func, kind="int", ge=1)
    if rebalance is None:
        rebalance = regularizer == "product"
    sizes = [m.num_subnets for m in models]
    big = ParallelSubnetworks.from_weights(
        [torch.cat([m.weights[k].detach() for m in models]) for k in range(first.degree)],
        conv=first.conv or None, input_shape=first.input_shape)
    dev = prob.device
    groups = torch.repeat_interleave(torch.arange(len(models), device=dev), torch.tensor(sizes, device=dev))
    start = time.perf_counter()
    if rebalance:  # as in train: balanced layers, the same outputs and product regularizer
        _prox(list(big.weights), 0.0, prob.lam, regularizer, None, True)
    if threads == "auto":
        threads = model_threads(big, prob.A)
    elif threads is not None:
        threads = check_scalar(threads, "threads", func, kind="int", ge=1)
    with _runtime.threads(threads):
        hists, conv, n_done, lrs = full_batch(
            prob.with_model(big), steps=steps, lr0=lr, tol=tol, rebalance=rebalance, log_every=log_every,
            bar=_runtime.progress_bar(steps, False), groups=groups, M=len(models))
        seconds = time.perf_counter() - start
        out, offset = [], 0
        for i, m in enumerate(models):
            with torch.no_grad():
                for p, w in zip(m.weights, big.weights, strict=True):
                    p.copy_(w[offset:offset + m.num_subnets])
            offset += m.num_subnets
            prob_i = prob.with_model(m)
            converged = None if tol is None else bool(conv[i])
            if converged is False:
                warn_not_converged(func, f"model {i} still decreasing after {n_done[i]} steps")
            out.append(result(prob_i, hists[i], converged, gradient_mapping(prob_i, lrs[i]), n_done[i],
                              seconds))
    return out
