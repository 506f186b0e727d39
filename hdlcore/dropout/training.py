"""Dropout training for real: stochastic gradient descent with random Bernoulli masks.

Chapter 5 (Dropout analysis). :func:`train_dropout` trains a factorization ``X = U V^T`` of
size ``d`` the way dropout is used in practice: at every step it draws fresh Bernoulli masks
(retain probability ``keep``), takes a gradient step on the *masked* loss, and never sees the
closed-form expectation. It runs in torch on the CPU or a GPU (the device of ``Y`` or the
``device`` argument). The same function runs the DropConnect schemes of
:mod:`hdlcore.dropout.dropconnect`, the talk's literal description of dropout (``scheme="update"``:
a random half of the weights is frozen at each step, with the forward pass unmasked), and,
with ``stochastic=False``, plain gradient descent on the deterministic expected objective.

The result records the expected objective (closed form, evaluated along the way, never used
by the updates) and the column products ``|u_k| |v_k|`` whose equalization Mianjy, Arora and
Vidal (ICML 2018) predict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._runtime import auto_threads, threads
from .._validation import check_array, check_choice, check_scalar, param_error, warn_not_converged
from ._inputs import as_tensors, check_fits, check_keep, torch_generator
from .masks import SCHEMES, dropconnect_output, mask_bits, random_masks, scheme_penalty

__all__ = ["TRAINING_SCHEMES", "DropoutTraining", "dropout_objective", "train_dropout"]

#: Schemes :func:`train_dropout` runs: those of :data:`hdlcore.dropout.masks.SCHEMES` for matrix
#: factorization, and ``"update"`` (freeze a random subset of weights at each step).
TRAINING_SCHEMES = (*[s for s in SCHEMES if s != "A"], "update")


@dataclass(frozen=True)
class DropoutTraining:
    """The outcome of :func:`train_dropout`.

    ``U, V, X`` the final factors and output (array type of ``Y``); ``objective`` the expected
    objective (closed form) at the end; ``history`` its values at ``recorded_steps``;
    ``products`` the column products ``|u_k||v_k|`` there, shape (records, d); ``grad_norm`` the
    norm of the expected objective's gradient at the end, relative to ``|Y|_F^{3/2}``;
    ``converged`` whether it is at most ``tol``.
    """

    U: Any
    V: Any
    X: Any
    objective: float
    history: np.ndarray
    recorded_steps: np.ndarray
    products: np.ndarray
    grad_norm: float
    converged: bool
    scheme: str
    keep: float
    stochastic: bool


def _objective(Y: Any, U: Any, V: Any, keep: float, scheme: str) -> Any:
    R = Y - U @ V.T  # (m, n)
    loss = (R * R).sum()
    if scheme == "update":
        return loss  # freezing weights in the update adds no term to the objective
    return loss + scheme_penalty(U, V, None, keep, scheme)


def dropout_objective(Y: Any, U: Any, V: Any, keep: float, scheme: str = "units") -> Any:
    """The deterministic objective a training scheme minimizes in expectation.

    The closed-form expected loss of :func:`hdlcore.dropconnect_risk` for a masking scheme,
    and the plain loss :math:`\\|Y - UV^\\top\\|_F^2` for ``"update"`` (whose expected step is
    ``keep`` times a gradient step on that loss). Chapter 5.

    Examples
    --------
    >>> import numpy as np
    >>> dropout_objective(np.eye(2), np.eye(2), np.eye(2), 0.5, "update")
    0.0
    """
    func = "dropout_objective"
    keep = check_keep(keep, func)
    check_choice(scheme, "scheme", func, TRAINING_SCHEMES)
    (Y_t, U_t, V_t), back = as_tensors(func, Y=Y, U=U, V=V)
    with threads(auto_threads("dropout", Y_t.numel() * U_t.shape[1], Y_t.device.type)):
        return back(_objective(Y_t, U_t, V_t, keep, scheme))


def _lr_at(t: int, steps: int, lr: float, decay_from: float) -> float:
    start = int(decay_from * steps)
    if t < start:
        return lr
    return lr * 0.5 * (1 + math.cos(math.pi * (t - start) / max(steps - start, 1)))  # cosine to 0


def train_dropout(
    Y: Any,
    keep: float,
    d: int,
    *,
    scheme: str = "units",
    stochastic: bool = True,
    steps: int = 4000,
    lr: float | None = None,
    masks_per_step: int = 1,
    decay_from: float = 0.5,
    U0: Any = None,
    V0: Any = None,
    rng: Any = None,
    record_every: int | None = None,
    tol: float | None = None,
) -> DropoutTraining:
    """Train a size-``d`` factorization of ``Y`` with dropout (real Bernoulli masks, SGD).

    Parameters
    ----------
    Y : array (m, n)
        The data; numpy (trained in float64 on the CPU) or a torch tensor (trained on its
        device and dtype).
    keep : float in (0, 1]
        Retain probability :math:`\\rho` (PyTorch's ``p = 1 - keep``).
    d : int >= 1
        Size of the factorization (number of columns of ``U`` and ``V``).
    scheme : str
        ``"units"`` (dropout, default), ``"U"``, ``"V"``, ``"UV"``, ``"X"`` (DropConnect
        variants, :mod:`hdlcore.dropout.dropconnect`) or ``"update"`` (each weight is updated with
        probability ``keep`` at each step, the forward pass is not masked).
    stochastic : bool
        True: every step draws ``masks_per_step`` masks and descends the masked loss. False:
        gradient descent on the closed-form expected objective (:func:`dropout_objective`).
    steps, lr, decay_from : int, float, float
        Number of steps; step size (default ``0.1 * keep**2 / sigma_1(Y)`` stochastic,
        ``0.2 * keep / sigma_1(Y)`` deterministic), constant for the first ``decay_from`` fraction
        of the steps, then cosine-decayed to zero.
    masks_per_step : int
        Masks averaged per stochastic step (a minibatch of masks).
    U0, V0 : arrays, optional
        Initial factors; default Gaussian with entries of size ``0.5 (sigma_1 / max(m, n))^{1/2}``.
    rng : numpy Generator, int, None or torch.Generator
        Source of the initialization and of the masks.
    record_every : int, optional
        Record the expected objective and column products every that many steps (default
        ``steps // 100``).
    tol : float, optional
        ``converged`` is ``grad_norm <= tol``; default 1e-6 (deterministic) or 3e-2
        (stochastic, whose final iterate keeps some noise).

    Returns
    -------
    DropoutTraining

    Notes
    -----
    For ``scheme="units"`` the stochastic step is an unbiased gradient of

    .. math::

        \\|Y - UV^\\top\\|_F^2 + \\lambda \\sum_k \\|u_k\\|^2\\|v_k\\|^2,
        \\quad \\lambda = (1-\\rho)/\\rho,

    whose global minimum :func:`hdlcore.dropout_global_minimum` gives in closed form; Chapter 5
    checks that training reaches it and equalizes the column products.

    References
    ----------
    P. Mianjy, R. Arora, R. Vidal, "On the implicit bias of dropout", ICML 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from hdlcore.dropout import dropout_global_minimum
    >>> Y = np.diag([3.0, 2.0, 1.0])
    >>> run = train_dropout(Y, 0.5, 2, steps=1500, rng=0)
    >>> bool(abs(run.objective - dropout_global_minimum(Y, 0.5, 2).objective) < 1e-3)
    True
    """
    import torch

    func = "train_dropout"
    keep = check_keep(keep, func)
    d = check_scalar(d, "d", func, kind="int", ge=1)
    check_choice(scheme, "scheme", func, TRAINING_SCHEMES)
    if not isinstance(stochastic, bool):
        raise param_error("stochastic", func, "a bool", stochastic, TypeError)
    steps = check_scalar(steps, "steps", func, kind="int", ge=1)
    masks_per_step = check_scalar(masks_per_step, "masks_per_step", func, kind="int", ge=1)
    decay_from = check_scalar(decay_from, "decay_from", func, ge=0, le=1)
    record_every = max(steps // 100, 1) if record_every is None else check_scalar(
        record_every, "record_every", func, kind="int", ge=1)
    tol = (3e-2 if stochastic else 1e-6) if tol is None else check_scalar(tol, "tol", func, gt=0)
    (Y_t,), back = as_tensors(func, Y=Y)
    m, n = Y_t.shape
    _check_memory(func, Y_t, d, scheme, stochastic, masks_per_step)
    gen = torch_generator(rng, func, Y_t.device)
    # the library's thread policy: small CPU problems run on one thread (restored afterwards)
    policy = auto_threads("dropout", m * n * d * masks_per_step, Y_t.device.type)
    with threads(policy):
        sigma1 = float(torch.linalg.matrix_norm(Y_t, ord=2))  # an SVD
    scale = max(sigma1, float(np.finfo(np.float64).tiny))
    if lr is None:
        lr = (0.1 * keep**2 if stochastic else 0.2 * keep) / scale
    lr = check_scalar(lr, "lr", func, gt=0)

    def init(given: Any, rows: int, name: str) -> Any:
        if given is None:
            std = 0.5 * math.sqrt(scale / max(m, n))
            return torch.randn((rows, d), generator=gen, device=Y_t.device, dtype=Y_t.dtype) * std
        check_array(given, name, func, ndim=2, shape=(rows, d))
        (_, g_t), _ = as_tensors(func, Y=Y, **{name: given})  # same array type as Y
        return g_t.to(device=Y_t.device, dtype=Y_t.dtype).clone()

    with threads(policy):
        return _train(Y_t, back, gen, init(U0, m, "U0"), init(V0, n, "V0"), keep, scheme, stochastic,
                      steps, lr, masks_per_step, decay_from, record_every, tol)


def _check_memory(func: str, Y_t: Any, d: int, scheme: str, stochastic: bool, masks_per_step: int) -> None:
    """The factors (with their gradients and copies) and one step's masks must fit in memory."""
    m, n = Y_t.shape
    size = Y_t.element_size()
    check_fits(func, "d", d, 8.0 * (m + n) * d * size)
    if stochastic and scheme != "update":
        per_mask = mask_bits(scheme, m, d, n, False) + (m + n) * d + m * n  # mask, masked factor, output
        check_fits(func, "masks_per_step", masks_per_step, 4.0 * masks_per_step * per_mask * size)


def _train(Y_t, back, gen, U, V, keep, scheme, stochastic, steps, lr, masks_per_step, decay_from,
           record_every, tol) -> DropoutTraining:
    import torch

    func = "train_dropout"
    m, n = Y_t.shape
    d = U.shape[1]
    U = U.requires_grad_(True)  # (m, d)
    V = V.requires_grad_(True)  # (n, d)
    bits = None if scheme == "update" else mask_bits(scheme, m, d, n, False)
    hist, rec_steps, prods = [], [], []

    last_good = (U.detach().clone(), V.detach().clone())

    def record(t: int) -> bool:
        """Record step t; False (and nothing recorded) when the iterate is no longer finite."""
        with torch.no_grad():
            value = float(_objective(Y_t, U, V, keep, scheme))
            if not math.isfinite(value):
                return False
            hist.append(value)
            prods.append((U.norm(dim=0) * V.norm(dim=0)).double().cpu().numpy())
            rec_steps.append(t)
        return True

    diverged = None
    for t in range(steps):
        if t % record_every == 0:
            if not record(t):
                diverged = t
                break
            last_good = (U.detach().clone(), V.detach().clone())
        if stochastic and scheme != "update":
            assert bits is not None  # every scheme but "update" draws mask bits
            M = random_masks((masks_per_step, bits), keep, gen, Y_t)  # (b, bits) fresh masks
            Xs = dropconnect_output(U, V, M, keep, scheme)  # (b, m, n)
            loss = ((Y_t[None] - Xs) ** 2).sum((1, 2)).mean()
        else:
            loss = _objective(Y_t, U, V, keep, scheme)
        gU, gV = torch.autograd.grad(loss, (U, V))
        if stochastic and scheme == "update":
            # the talk's description: only a random subset (probability keep) of weights moves
            gU = gU * torch.bernoulli(torch.full_like(gU, keep), generator=gen)
            gV = gV * torch.bernoulli(torch.full_like(gV, keep), generator=gen)
        step = _lr_at(t, steps, lr, decay_from)
        with torch.no_grad():
            U -= step * gU
            V -= step * gV
    if diverged is None and not record(steps):
        diverged = steps
    if diverged is not None:  # back to the last finite iterate, reported as not converged
        with torch.no_grad():
            U.copy_(last_good[0])
            V.copy_(last_good[1])
    obj = _objective(Y_t, U, V, keep, scheme)
    gU, gV = torch.autograd.grad(obj, (U, V))
    grad_norm = float(torch.sqrt((gU**2).sum() + (gV**2).sum())) / max(
        float(torch.linalg.matrix_norm(Y_t)) ** 1.5, float(np.finfo(np.float64).tiny))
    converged = diverged is None and grad_norm <= tol
    if diverged is not None:
        warn_not_converged(func, f"the iterates diverged by step {diverged} (lr={lr:g}); returned "
                                 f"the last finite iterate; pass a smaller 'lr'")
    elif not converged:
        warn_not_converged(func, f"relative gradient norm {grad_norm:.2e} > tol {tol:.1e} after "
                                 f"{steps} steps")
    U_f, V_f = U.detach(), V.detach()
    return DropoutTraining(
        U=back(U_f), V=back(V_f), X=back(U_f @ V_f.T), objective=float(obj.detach()),
        history=np.array(hist), recorded_steps=np.array(rec_steps), products=np.array(prods),
        grad_norm=grad_norm, converged=converged, scheme=scheme, keep=keep, stochastic=stochastic)
