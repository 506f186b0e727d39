r"""Training parallel subnetworks by proximal gradient steps that zero whole subnetworks.

:func:`train` minimizes

.. math::

    f(W) = \ell\big(Y, \Phi_r(A; W)\big) + \lambda\,\Theta(W)

by proximal (stochastic) gradient steps: a gradient step on the loss for every layer of every
subnetwork at once (one forward and one backward pass of the batched network), then the proximal
step of the regularizer, layer by layer given the other layers' norms
(:func:`hdlcore.networks.regularizers.prox_subnetworks`). With the product regularizer the
proximal step is a group soft-thresholding, so whole subnetworks become exactly zero.
Full-batch runs choose the step by backtracking (the objective decreases at every step);
mini-batch runs use a fixed step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _runtime
from .._validation import check_rng, check_scalar, warn_not_converged
from .model import ParallelSubnetworks
from .problem import NetworkProblem, gradient_mapping, model_threads, objective_value, prepare_network
from .proximal import full_batch, mini_batch
from .regularizers import _prox

__all__ = ["TrainResult", "train"]

@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns (the model itself is trained in place and kept here)."""

    model: ParallelSubnetworks
    objective: float  #: f(W) = loss + lam * Theta on all the data
    loss: float
    regularizer: float  #: Theta(W)
    active: int  #: number of non-zero subnetworks
    active_mask: np.ndarray  #: (r,) booleans
    converged: bool | None  #: residual <= tol * initial residual (None: not assessed)
    residual: float  #: norm of the full-batch gradient mapping ||W - prox(W - lr grad)|| / lr
    steps: int
    lam: float
    loss_kind: str
    regularizer_kind: str
    device: str
    precision: str
    seconds: float
    history: dict[str, np.ndarray] = field(repr=False)


def train(
    model: ParallelSubnetworks, A: Any, Y: Any, lam: float, *,
    loss: str = "squared", regularizer: str = "product",
    steps: int = 1000,
    lr: float | None = None,
    batch_size: int | None = None,
    tol: float | None = 1e-6,
    rebalance: bool | None = None,
    precision: str = "full",
    device: Any = None,
    rng: Any = None,
    progress: bool = False,
    log_every: int | None = None,
    threads: int | str | None = "auto",
) -> TrainResult:
    r"""Train a :class:`ParallelSubnetworks` by proximal gradient steps (in place).

    Parameters
    ----------
    model : ParallelSubnetworks
        Trained in place (and returned in the result).
    A : array (N, d)
        Inputs, one sample per row (numpy or torch; moved to the model's device and dtype).
    Y : array (N, C)
        Targets (one-hot rows for ``loss="cross_entropy"``).
    lam : float
        Regularization weight :math:`\lambda > 0`.
    loss : {"squared", "cross_entropy"}
        Summed over samples (see :func:`network_loss`).
    regularizer : {"product", "balanced", "weight_decay"}
        :math:`\theta` (see :mod:`hdlcore.networks.regularizers`). A regularizer whose degree is
        not the network's raises a :class:`~hdlcore.HypothesisWarning`.
    steps : int
        Number of (mini-batch) steps at most.
    lr : float, optional
        Step size. Full batch: the initial step of the backtracking search (default: one that
        moves the weights by 1% of their norm; it then grows by 1.5 per step). Mini-batch:
        the fixed step (default: found by backtracking on the first batch, then halved).
    batch_size : int, optional
        Mini-batch size (samples drawn without replacement, epoch by epoch, from ``rng``); None
        for full-batch steps with backtracking, which decrease the objective at every step.
    tol : float or None
        Stop when the gradient mapping's norm falls below ``tol`` times its initial value (full
        batch; for mini-batch runs it is assessed once at the end). None: run all ``steps``.
    rebalance : bool, optional
        Rescale each subnetwork's layers to equal norms after each step (changes neither the
        output nor the product regularizer; improves the conditioning). Default: True for the
        product regularizer.
    precision : {"full", "tf32", "bf16"}
        Matrix products in the parameters' dtype (IEEE), TF32 (CUDA), or bf16 autocast.
    device : optional
        Move the model there first (a CUDA device where there is none is an error).
    rng : numpy Generator or int, optional
        Order of the mini-batches.
    progress : bool
        Show a tqdm progress bar.
    log_every : int, optional
        Record the full objective every ``log_every`` steps (default: 1 for full batch, once per
        epoch for mini-batches).
    threads : int, "auto" or None
        CPU threads for the run; "auto" uses one thread for small problems (on a shared 2-core
        machine, intra-op parallelism only slows tiny operations down).

    Returns
    -------
    TrainResult
        The model, the objective, the number of active (non-zero) subnetworks, the history
        (``step``, ``objective``, ``loss``, ``regularizer``, ``active``, ``lr``) and whether the
        run converged (a :class:`~hdlcore.ConvergenceWarning` is raised when it did not).

    Notes
    -----
    A step is :math:`W \leftarrow \operatorname{prox}(W - \eta\nabla_W\ell)` where the proximal
    step shrinks layer :math:`k` of subnetwork :math:`i` by the group soft-threshold
    :math:`\eta\lambda\prod_{j\neq k}\lVert W_i^j\rVert_F` computed at the current iterate; its
    fixed points are exactly the stationary points of :math:`f`. On the CPU a run is bit-for-bit
    repeatable for a given model and ``rng``. Used in Chapter 4.

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in neural network training, CVPR 2017
    (local descent on parallel subnetworks with a product-of-norms regularizer).

    Examples
    --------
    >>> import torch
    >>> import hdlcore as hd
    >>> A, Y = hd.two_spirals(40, rng=0)
    >>> net = hd.ParallelSubnetworks(2, 1, num_subnets=8, hidden=(1,), rng=0, dtype=torch.float64)
    >>> res = hd.train(net, A, Y, lam=0.5, steps=300, tol=None)
    >>> bool(res.objective < res.history["objective"][0]), res.active <= 8
    (True, True)
    """
    func = "train"
    prob = prepare_network(model, A, Y, lam, func, loss=loss, regularizer=regularizer, precision=precision,
                           device=device)
    steps = check_scalar(steps, "steps", func, kind="int", ge=0)
    N = prob.A.shape[0]
    if lr is not None:
        lr = check_scalar(lr, "lr", func, gt=0)
    if batch_size is not None:
        batch_size = check_scalar(batch_size, "batch_size", func, kind="int", ge=1, le=N)
    tol = check_tol(tol, "tol", func)
    gen = check_rng(rng, "rng", func)
    if threads == "auto":
        threads = model_threads(prob.model, prob.A[: batch_size or N])
    elif threads is not None:
        threads = check_scalar(threads, "threads", func, kind="int", ge=1)
    if log_every is not None:
        log_every = check_scalar(log_every, "log_every", func, kind="int", ge=1)
    with _runtime.threads(threads):
        return fit(prob, steps=steps, lr=lr, batch_size=batch_size, tol=tol, rebalance=rebalance, gen=gen,
                   log_every=log_every, progress=progress)


def check_tol(tol: Any, name: str, func: str) -> float | None:
    """A stopping tolerance: a float >= 0, or None (run every step)."""
    return None if tol is None else check_scalar(tol, name, func, ge=0)


def fit(prob: NetworkProblem, *, steps: int, lr: float | None = None, batch_size: int | None = None,
        tol: float | None = None, rebalance: bool | None = None, gen: Any = None,
        log_every: int | None = None, progress: bool = False) -> TrainResult:
    """:func:`train` on a validated problem (the caller sets the threads)."""
    model, lam = prob.model, prob.lam
    N = prob.A.shape[0]
    if rebalance is None:
        rebalance = prob.regularizer == "product"
    full = batch_size is None or batch_size == N
    if log_every is None:
        log_every = 1 if batch_size is None or full else max(1, N // batch_size)
    start = time.perf_counter()
    if rebalance:  # the initial layers may be far from balanced: this changes neither X nor Theta
        _prox(list(model.weights), 0.0, lam, prob.regularizer, None, True)
    bar = _runtime.progress_bar(steps, progress)
    if full:
        hists, conv, n_done, lr_used = full_batch(prob, steps=steps, lr0=lr, tol=tol, rebalance=rebalance,
                                                  log_every=log_every, bar=bar)
        hist, n_done, lr_used = hists[0], n_done[0], lr_used[0]
        converged = None if tol is None else conv[0]
        residual = gradient_mapping(prob, lr_used)
    else:
        hist, converged, residual, n_done, lr_used = mini_batch(
            prob, steps=steps, lr=lr, batch_size=batch_size, rebalance=rebalance, log_every=log_every,
            gen=gen, tol=tol, bar=bar)
    if converged is False:
        h = hist["objective"]
        warn_not_converged(prob.func, f"after {n_done} steps the objective still decreased by "
                           f"{(h[max(0, len(h) - 11)] - h[-1]) / abs(h[-1]):.3g} (relative) over the last "
                           f"records, above tol = {tol:g}; raise steps, or tol" if len(h) > 1 and
                           np.isfinite(h[-1]) else "the objective diverged; use a smaller lr", stacklevel=4)
    return result(prob, hist, converged, residual, n_done, time.perf_counter() - start)


def result(prob: NetworkProblem, hist: dict, converged: bool | None, residual: float, steps: int,
           seconds: float) -> TrainResult:
    """The :class:`TrainResult` of ``prob.model`` after a run."""
    obj = objective_value(prob)
    mask = prob.model.active().cpu().numpy()
    return TrainResult(
        model=prob.model, objective=obj.objective, loss=obj.loss, regularizer=obj.regularizer,
        active=int(mask.sum()), active_mask=mask, converged=converged, residual=residual, steps=int(steps),
        lam=prob.lam, loss_kind=prob.loss, regularizer_kind=prob.regularizer, device=str(prob.device),
        precision=prob.precision, seconds=seconds, history={k: np.asarray(v) for k, v in hist.items()},
    )
