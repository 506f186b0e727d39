r"""The meta-algorithm for networks: train, certify, add the polar's subnetwork (or prune), repeat.

Haeffele and Vidal's meta-algorithm, with :func:`hdlcore.train` as the local descent and
:func:`hdlcore.certify_network` as the check:

1. train the current network (zero subnetworks are pruned afterwards);
2. compute the polar :math:`\omega` of :math:`Z = -\nabla_X\ell/\lambda` and its maximizer
   :math:`w^\star` (:math:`\theta(w^\star) = 1`);
3. stop if the certificate proves global optimality (``bound <= tol * f``), or, with a
   lower-bound polar, if no subnetwork with :math:`\omega > 1 + tol` is found;
4. else append :math:`w^\star` at its best scale (for the squared loss
   :math:`s^\star = \lambda(\omega - 1)/\lVert\phi(w^\star)\rVert_F^2`, exact), which decreases
   the objective since its slope at zero is :math:`\lambda(1 - \omega) < 0`, and go to 1.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import _runtime
from .._validation import (
    ConvergenceWarning,
    check_array,
    check_devices,
    check_rng,
    check_scalar,
    param_error,
    warn_not_converged,
)
from .certificates import NetworkCertificate, add_at_best_scale, certify
from .last_layer import last_layer_step
from .model import ParallelSubnetworks, check_network_size
from .patterns import patterns_apply, patterns_step
from .problem import NetworkProblem, prepare_network
from .regularizers import regularizer_degree
from .training import TrainResult, check_tol, fit

__all__ = ["GrowNetworkResult", "grow_network"]


@dataclass(frozen=True)
class GrowNetworkResult:
    """What :func:`grow_network` returns."""

    model: ParallelSubnetworks
    objective: float
    certificate: NetworkCertificate  #: of the returned model
    converged: bool  #: the stopping rule of step 3 was met
    rounds: int
    seconds: float
    history: dict[str, np.ndarray] = field(repr=False)  #: per round: r, objective, polar, ...
    trainings: list[TrainResult] = field(repr=False)


def grow_network(
    A: Any,
    Y: Any,
    lam: float,
    *,
    hidden: tuple[int, ...] = (1,),
    model: ParallelSubnetworks | None = None,
    loss: str = "squared",
    regularizer: str = "product",
    max_rounds: int = 30,
    steps: int = 3000,
    train_tol: float = 1e-10,
    tol: float = 1e-6,
    num_starts: int = 64,
    rng: Any = None,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
) -> GrowNetworkResult:
    r"""Grow a network by the meta-algorithm until its certificate says it is globally optimal.

    Parameters
    ----------
    A, Y, lam, loss, regularizer
        The problem, as in :func:`hdlcore.train` (``regularizer`` must have the network's degree).
    hidden : tuple of int
        Architecture of each subnetwork (used when ``model`` is None); ``(1,)``: one neuron each.
    model : ParallelSubnetworks, optional
        Starting point (default: one random subnetwork drawn from ``rng``).
    max_rounds : int
        Rounds of train / certify / add.
    steps, train_tol
        Passed to :func:`hdlcore.train` (full batch) at each round.
    tol : float
        Of :func:`hdlcore.certify_network`.
    num_starts : int
        Of the lower-bound polar (networks other than one hidden layer on 2-D inputs).
    rng, dtype, device
        For the initial network and the polar's random starts.

    Returns
    -------
    GrowNetworkResult
        The final model and its certificate, and per round (``history``): the number of
        subnetworks ``r``, ``active``, the ``objective`` after training, the ``polar`` and
        ``objective_after_add`` (the objective once the new subnetwork is added).

    Notes
    -----
    Each added subnetwork decreases the objective, and an exact polar stops the loop only with a
    proof of global optimality (to the relative accuracy ``tol``). With a lower-bound polar the
    loop stops when no descending subnetwork is found, which is not a proof. Used in Chapter 4.

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in neural network training, CVPR 2017
    (the meta-algorithm that alternates local descent and the addition of the polar's maximizer).

    Examples
    --------
    >>> import hdlcore as hd
    >>> A, Y = hd.two_spirals(30, rng=0)
    >>> res = hd.grow_network(A, Y, lam=2.0, rng=0)
    >>> res.converged, res.certificate.is_global
    (True, True)
    """
    func = "grow_network"
    gen = check_rng(rng, "rng", func)
    if model is None:
        check_devices(func, {"A": A, "Y": Y})
        A, Y = check_array(A, "A", func), check_array(Y, "Y", func)
        if dtype not in (torch.float32, torch.float64):
            raise param_error("dtype", func, "torch.float32 or torch.float64", dtype, TypeError)
        if not isinstance(hidden, tuple | list):
            raise param_error("hidden", func, "a tuple of ints >= 1 (layer widths)", hidden, TypeError)
        hidden = tuple(check_scalar(h, "hidden", func, kind="int", ge=1) for h in hidden)
        widths = (A.shape[1], *hidden, Y.shape[1])
        check_network_size([(1, a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)],
                           {"hidden": max(hidden, default=1)}, func)
        model = ParallelSubnetworks(A.shape[1], Y.shape[1], 1, hidden, rng=gen, dtype=dtype, device=device)
    prob = prepare_network(model, A, Y, lam, func, loss=loss, regularizer=regularizer, device=device,
                           warn_degree=False)
    K = prob.model.degree
    if regularizer_degree(regularizer, K) != K:
        raise param_error("regularizer", func, f"a regularizer of the network's degree {K} "
                          "(the certificate that stops the meta-algorithm needs it)", regularizer)
    max_rounds = check_scalar(max_rounds, "max_rounds", func, kind="int", ge=1)
    steps = check_scalar(steps, "steps", func, kind="int", ge=0)
    train_tol_checked = check_tol(train_tol, "train_tol", func)
    tol = check_scalar(tol, "tol", func, gt=0)
    num_starts = check_scalar(num_starts, "num_starts", func, kind="int", ge=1)
    start = time.perf_counter()
    hist: dict[str, list] = {k: [] for k in ("round", "r", "active", "objective", "polar",
                                             "objective_after_add")}
    trainings: list[TrainResult] = []
    with _runtime.threads(prob.threads()):
        prob, cert, converged, rnd = _rounds(prob, max_rounds, steps, train_tol_checked, tol, num_starts, gen,
                                             hist, trainings)
    if not converged:
        warn_not_converged(func, f"after {max_rounds} rounds the certificate says: {cert.proves}")
    return GrowNetworkResult(
        model=prob.model, objective=cert.objective, certificate=_boundary(cert, A), converged=converged,
        rounds=rnd, seconds=time.perf_counter() - start,
        history={k: np.asarray(v, dtype=float) for k, v in hist.items()}, trainings=trainings,
    )


def _boundary(cert: NetworkCertificate, A: Any) -> NetworkCertificate:
    """The certificate's maximizer in the caller's array type (numpy in, numpy out)."""
    if cert.maximizer is None or torch.is_tensor(A):
        return cert
    return dataclasses.replace(cert, maximizer=[w.detach().cpu().numpy() for w in cert.maximizer])


def _rounds(prob: NetworkProblem, max_rounds, steps, train_tol, tol, num_starts, gen, hist, trainings):
    converged, cert, rnd = False, None, 0
    for rnd in range(1, max_rounds + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # the certificate judges the point
            trainings.append(fit(prob, steps=steps, tol=train_tol))
        if patterns_apply(prob):
            prob = prob.with_model(patterns_step(prob).model)
        else:
            last_layer_step(prob)
        model = prob.model
        if 0 < int(model.active().sum()) < model.num_subnets:
            prob = prob.with_model(model.select(model.active()))
        cert = certify(prob, tol=tol, num_starts=num_starts, num_directions=0, gen=gen)
        hist["round"].append(rnd)
        hist["r"].append(prob.model.num_subnets)
        hist["active"].append(int(prob.model.active().sum()))
        hist["objective"].append(cert.objective)
        hist["polar"].append(cert.polar)
        if cert.is_global or (cert.polar_kind == "lower_bound" and cert.polar <= 1 + tol):
            converged = True
            hist["objective_after_add"].append(np.nan)
            break
        if cert.polar is None or cert.maximizer is None or cert.polar <= 1 + tol:  # bound still too large
            hist["objective_after_add"].append(np.nan)
            continue  # train further from here
        model, _, f_new = add_at_best_scale(prob, cert.maximizer)
        if not bool(model.active().all()):  # drop zero subnetworks (the start may be all zero)
            model = model.select(model.active())
        prob = prob.with_model(model)
        hist["objective_after_add"].append(f_new)
    return prob, cert, converged, rnd
