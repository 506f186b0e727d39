r"""The network problem of Chapter 4: data, model, loss, regularizer and their objective.

.. math::

    f(W) = \ell\big(Y, \Phi_r(A; W)\big) + \lambda\,\Theta(W)

validated once at the public boundary (``_prepare``) and evaluated by one objective
(``_objective_parts``) that training, the last-layer step, the certificates and growth share.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from .._runtime import auto_threads, resolve_device
from .._runtime import precision as precision_context
from .._validation import HypothesisWarning, check_array, check_choice, check_scalar, param_error
from .model import ParallelSubnetworks
from .regularizers import REGULARIZERS, _layer_norms, _prox, _theta, regularizer_degree

__all__ = ["LOSSES", "network_loss"]

#: Losses, convex and differentiable in the output X, summed over samples.
LOSSES = ("squared", "cross_entropy")


def network_loss(X: torch.Tensor, Y: torch.Tensor, loss: str = "squared") -> torch.Tensor:
    r"""The loss :math:`\ell(Y, X)`, summed over samples.

    ``"squared"``: :math:`\frac12\lVert Y - X\rVert_F^2`; ``"cross_entropy"``:
    :math:`-\sum_{n,c} Y_{nc}\log\operatorname{softmax}(X_{n,:})_c` (rows of ``Y`` are
    probability vectors, e.g. one-hot labels). Used in Chapter 4.
    """
    if loss == "squared":
        return 0.5 * ((X - Y) ** 2).sum()
    return -(Y * torch.log_softmax(X, dim=1)).sum()


def _check_model(model: Any, func: str) -> ParallelSubnetworks:
    if not isinstance(model, ParallelSubnetworks):
        raise param_error("model", func, "a hdlcore.ParallelSubnetworks", model, TypeError)
    return model


def _prepare(model, A, Y, lam, loss, regularizer, func, *, device=None, warn_degree=True):
    """Validate the problem at the public boundary; return tensors on the model's device."""
    model = _check_model(model, func)
    lam = check_scalar(lam, "lam", func, gt=0)
    check_choice(loss, "loss", func, LOSSES)
    check_choice(regularizer, "regularizer", func, REGULARIZERS)
    A = check_array(A, "A", func, ndim=2, shape=(None, model.in_features))
    Y = check_array(Y, "Y", func, ndim=2, shape=(A.shape[0], model.out_features))
    dev = resolve_device(device, func)
    if dev is not None:
        model.to(dev)
    p = model.weights[0]
    if not bool(torch.isfinite(p).all()) or not all(bool(torch.isfinite(w).all()) for w in model.weights):
        raise param_error("model", func, "a network with finite weights", model)
    A_t = torch.as_tensor(A).to(dtype=p.dtype, device=p.device)
    Y_t = torch.as_tensor(Y).to(dtype=p.dtype, device=p.device)
    if loss == "cross_entropy" and (bool((Y_t < 0).any()) or
                                    not torch.allclose(Y_t.sum(1), torch.ones_like(Y_t[:, 0]))):
        raise param_error("Y", func, "rows that are probability vectors (one-hot labels) for the "
                          "cross-entropy loss", Y)
    K, q = model.degree, regularizer_degree(regularizer, model.degree)
    if warn_degree and K != q:
        warnings.warn(degree_mismatch_message(K, q, regularizer), HypothesisWarning, stacklevel=3)
    return model, A_t, Y_t, lam


def degree_mismatch_message(K: int, q: int, regularizer: str) -> str:
    return (f"network of degree {K}, regularizer of degree {q} ({regularizer!r}): the hypothesis "
            "'the regularizer is positively homogeneous of the same degree as the network' fails, so "
            "a local minimum with a zero subnetwork need not be global and the polar certifies nothing")


def _objective_parts(model, A, Y, loss, regularizer, precision, scale=1.0, norms=None):
    """(loss with its autograd graph, Theta as a detached tensor)."""
    with precision_context(precision, A.device.type):
        X = model(A)
    value = network_loss(X.float() if X.dtype == torch.bfloat16 else X, Y, loss) * scale
    if norms is None:
        norms = _layer_norms(list(model.weights))
    return value, _theta(norms, regularizer).sum()


def _gradient_mapping(model, A, Y, lam, loss, regularizer, lr, precision):
    """Full-batch residual ||W - prox(W - lr grad)|| / lr, without changing the model."""
    params = list(model.weights)
    value, reg = _objective_parts(model, A, Y, loss, regularizer, precision)
    grads = torch.autograd.grad(value, params)
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        norms = _layer_norms(params)
        torch._foreach_add_(params, grads, alpha=-lr)
        _prox(params, lr, lam, regularizer, norms, False)
        diff = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(torch._foreach_sub(params, saved))))
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    return float(diff) / lr, float(value.detach()), float(reg)


def model_threads(model: ParallelSubnetworks, A: torch.Tensor) -> int | None:
    """The runtime policy's thread count for a step of ``model`` on the samples ``A``."""
    return auto_threads("network", A.shape[0] * sum(w.numel() for w in model.weights), A.device.type)
