r"""The network problem of Chapter 4: data, model, loss, regularizer and their one objective.

.. math::

    f(W) = \ell\big(Y, \Phi_r(A; W)\big) + \lambda\,\Theta(W)

Every public network function validates its arguments once, through ``prepare_network``,
into a frozen :class:`NetworkProblem` (tensors on the model's device and dtype, the loss, the
regularizer, ``lam``, the matmul precision and the name of the function the user called); the
internal loops (training, the last-layer step, the polars, the certificates, growth) take that
object and trust it. ``objective_parts`` is the one objective they all evaluate, and
:func:`network_objective` exposes it.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._runtime import auto_threads, resolve_device
from .._runtime import precision as precision_context
from .._validation import (
    HypothesisWarning,
    check_array,
    check_choice,
    check_devices,
    check_scalar,
    param_error,
)
from .model import ParallelSubnetworks
from .regularizers import REGULARIZERS, _layer_norms, _prox, _theta, regularizer_degree

__all__ = ["LOSSES", "PRECISIONS", "NetworkObjective", "NetworkProblem", "network_loss", "network_objective"]

#: Losses, convex and differentiable in the output X, summed over samples.
LOSSES = ("squared", "cross_entropy")
#: Matrix-product precisions: the parameters' dtype (IEEE), TF32 (CUDA), bf16 autocast.
PRECISIONS = ("full", "tf32", "bf16")


@dataclass(frozen=True)
class NetworkProblem:
    """A validated network problem; built by ``prepare_network``, trusted by the internal loops.

    ``A`` (N, d) and ``Y`` (N, C) are tensors on the model's device and dtype; ``func`` is the
    public function the user called (error and warning messages name it).
    """

    model: ParallelSubnetworks
    A: torch.Tensor
    Y: torch.Tensor
    lam: float
    loss: str = "squared"
    regularizer: str = "product"
    precision: str = "full"
    func: str = "train"

    @property
    def device(self) -> torch.device:
        return self.A.device

    @property
    def dtype(self) -> torch.dtype:
        return self.A.dtype

    def with_model(self, model: ParallelSubnetworks) -> NetworkProblem:
        """The same problem at another point (growth appends and prunes subnetworks)."""
        return dataclasses.replace(self, model=model)

    def threads(self) -> int | None:
        """The runtime policy's thread count for a full-batch step of this problem."""
        return model_threads(self.model, self.A)


@dataclass(frozen=True)
class NetworkObjective:
    r"""What :func:`network_objective` returns: :math:`f = \ell + \lambda\Theta` and its parts."""

    objective: float
    loss: float
    regularizer: float  #: Theta(W)
    lam: float


def network_loss(X: torch.Tensor, Y: torch.Tensor, loss: str = "squared") -> torch.Tensor:
    r"""The loss :math:`\ell(Y, X)`, summed over samples.

    ``"squared"``: :math:`\frac12\lVert Y - X\rVert_F^2`; ``"cross_entropy"``:
    :math:`-\sum_{n,c} Y_{nc}\log\operatorname{softmax}(X_{n,:})_c` (rows of ``Y`` are
    probability vectors, e.g. one-hot labels). ``X`` and ``Y`` are ``(N, C)`` tensors (numpy is
    converted); bfloat16 input is summed in float32 and returned in its own dtype. Used in
    Chapter 4.
    """
    func = "network_loss"
    check_choice(loss, "loss", func, LOSSES)
    check_devices(func, {"X": X, "Y": Y})
    X = torch.as_tensor(check_array(X, "X", func, ndim=2))
    Y = torch.as_tensor(check_array(Y, "Y", func, ndim=2, shape=tuple(X.shape))).to(X)
    return summed_loss(X, Y, loss).to(X.dtype)


def summed_loss(X: torch.Tensor, Y: torch.Tensor, loss: str) -> torch.Tensor:
    """:func:`network_loss` on trusted tensors, in float32 for bfloat16 ``X`` (bf16 autocast output);
    ``X`` may carry leading batch dimensions ``(..., N, C)`` (one loss per entry)."""
    if X.dtype == torch.bfloat16:
        X = X.float()
    if loss == "squared":
        return 0.5 * ((X - Y) ** 2).sum(dim=(-2, -1))
    return -(Y * torch.log_softmax(X, dim=-1)).sum(dim=(-2, -1))


def objective_parts(prob: NetworkProblem, model: ParallelSubnetworks | None = None, *, A=None, Y=None,
                    scale: float = 1.0, norms=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss with its autograd graph, Theta as a detached tensor) of ``model`` (default: the problem's).

    ``A``, ``Y`` replace the problem's data (a mini-batch); ``scale`` multiplies the loss.
    """
    model = prob.model if model is None else model
    A = prob.A if A is None else A
    with precision_context(prob.precision, A.device.type):
        X = model(A)
    value = summed_loss(X, prob.Y if Y is None else Y, prob.loss) * scale
    if norms is None:
        norms = _layer_norms(list(model.weights))
    return value, _theta(norms, prob.regularizer).sum()


def objective_value(prob: NetworkProblem, model: ParallelSubnetworks | None = None) -> NetworkObjective:
    """``objective_parts`` as floats, without autograd."""
    with torch.no_grad():
        value_t, reg_t = objective_parts(prob, model)
    value, reg = float(value_t), float(reg_t)
    return NetworkObjective(objective=value + prob.lam * reg, loss=value, regularizer=reg, lam=prob.lam)


def network_objective(model: ParallelSubnetworks, A: Any, Y: Any, lam: float, *, loss: str = "squared",
                      regularizer: str = "product") -> NetworkObjective:
    r"""The objective :math:`f(W) = \ell(Y, \Phi_r(A;W)) + \lambda\Theta(W)` of a network, and its parts.

    Parameters
    ----------
    model : ParallelSubnetworks
        The point :math:`W`.
    A, Y, lam, loss, regularizer
        The problem, as in :func:`hdlcore.train`.

    Returns
    -------
    NetworkObjective
        ``objective``, ``loss``, ``regularizer`` (:math:`\Theta(W)`) and ``lam``, as floats: the
        same function that :func:`hdlcore.train`, :func:`hdlcore.fit_last_layer`,
        :func:`hdlcore.certify_network` and :func:`hdlcore.grow_network` minimize or certify.

    Notes
    -----
    A regularizer of another degree than the network is allowed here (no warning): this is an
    evaluation, not a claim. Used in Chapter 4.

    Examples
    --------
    >>> import numpy as np, torch, hdlcore as hd
    >>> A, Y = np.ones((3, 2)), np.ones((3, 1))
    >>> net = hd.ParallelSubnetworks(2, 1, 2, hidden=(1,), rng=0, dtype=torch.float64)
    >>> with torch.no_grad():
    ...     _ = net.weights[0].zero_()
    >>> hd.network_objective(net, A, Y, lam=0.5).objective  # W = 0: f = ||Y||^2 / 2
    1.5
    """
    prob = prepare_network(model, A, Y, lam, "network_objective", loss=loss, regularizer=regularizer,
                           warn_degree=False)
    return objective_value(prob)


def check_model(model: Any, func: str, name: str = "model") -> ParallelSubnetworks:
    """A :class:`ParallelSubnetworks` with finite float32/float64 weights."""
    if not isinstance(model, ParallelSubnetworks):
        hint = (" (build one from a torch network's weights with ParallelSubnetworks.from_weights)"
                if isinstance(model, nn.Module) else "")
        raise param_error(name, func, f"a hdlcore.ParallelSubnetworks{hint}", model, TypeError)
    if model.weights[0].dtype not in (torch.float32, torch.float64):
        raise param_error(name, func, "a network with float32 or float64 weights (for bf16 products "
                          f"use precision='bf16'); its weights are {model.weights[0].dtype}", model,
                          TypeError)
    with torch.no_grad():
        if not all(bool(torch.isfinite(w).all()) for w in model.weights):
            raise param_error(name, func, "a network with finite weights (no NaN or inf)", model)
    return model


def check_data(A: Any, Y: Any, model: ParallelSubnetworks, func: str) -> tuple[Any, Any]:
    """``A`` (N, d) and ``Y`` (N, C): real, finite, on one device, of the model's sizes."""
    check_devices(func, {"A": A, "Y": Y})
    A = check_array(A, "A", func, ndim=2, shape=(None, model.in_features))
    Y = check_array(Y, "Y", func, ndim=2, shape=(A.shape[0], model.out_features))
    return A, Y


def prepare_network(model: Any, A: Any, Y: Any, lam: Any, func: str, *, loss: str = "squared",
                    regularizer: str = "product", precision: str = "full", device: Any = None,
                    warn_degree: bool = True) -> NetworkProblem:
    """Validate a network problem at the public boundary ``func``, once.

    Data of any real float dtype (float16 included) is cast to the model's dtype and moved to
    its device (``device`` moves the model first). Warns (:class:`~hdlcore.HypothesisWarning`)
    when the regularizer's degree is not the network's, unless ``warn_degree`` is False.
    """
    model = check_model(model, func)
    lam = check_scalar(lam, "lam", func, gt=0)
    check_choice(loss, "loss", func, LOSSES)
    check_choice(regularizer, "regularizer", func, REGULARIZERS)
    check_choice(precision, "precision", func, PRECISIONS)
    A, Y = check_data(A, Y, model, func)
    dev = resolve_device(device, func)
    if dev is not None:
        model.to(dev)
    p = model.weights[0]
    A_t = torch.as_tensor(A).to(dtype=p.dtype, device=p.device)
    Y_t = torch.as_tensor(Y).to(dtype=p.dtype, device=p.device)
    if loss == "cross_entropy" and (bool((Y_t < 0).any()) or
                                    not torch.allclose(Y_t.sum(1), torch.ones_like(Y_t[:, 0]))):
        raise param_error("Y", func, "rows that are probability vectors (one-hot labels) for the "
                          "cross-entropy loss", Y)
    K, q = model.degree, regularizer_degree(regularizer, model.degree)
    if warn_degree and K != q:
        warnings.warn(degree_mismatch_message(K, q, regularizer), HypothesisWarning, stacklevel=3)
    return NetworkProblem(model, A_t, Y_t, lam, loss, regularizer, precision, func)


def degree_mismatch_message(K: int, q: int, regularizer: str) -> str:
    return (f"network of degree {K}, regularizer of degree {q} ({regularizer!r}): the hypothesis "
            "'the regularizer is positively homogeneous of the same degree as the network' fails, so "
            "a local minimum with a zero subnetwork need not be global and the polar certifies nothing")


def gradient_mapping(prob: NetworkProblem, lr: float, model: ParallelSubnetworks | None = None) -> float:
    """Full-batch residual ||W - prox(W - lr grad)|| / lr, without changing the model."""
    model = prob.model if model is None else model
    params = list(model.weights)
    value, _ = objective_parts(prob, model)
    grads = torch.autograd.grad(value, params)
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        norms = _layer_norms(params)
        torch._foreach_add_(params, grads, alpha=-lr)
        _prox(params, lr, prob.lam, prob.regularizer, norms, False)
        diff = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(torch._foreach_sub(params, saved))))
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    return float(diff) / lr


def model_threads(model: ParallelSubnetworks, A: torch.Tensor) -> int | None:
    """The runtime policy's thread count for a step of ``model`` on the samples ``A``."""
    return auto_threads("network", A.shape[0] * sum(w.numel() for w in model.weights), A.device.type)
