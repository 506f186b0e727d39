r"""Regularizers of parallel subnetworks, their hand-written gradients, and their proximal steps.

Three per-subnetwork regularizers :math:`\theta(W_i)` of the layer norms
:math:`n_{ik} = \lVert W_i^k\rVert_F`, summed over subnetworks into :math:`\Theta(W)`:

==================  ==========================================  ===============
``kind``            :math:`\theta(W_i)`                          degree
==================  ==========================================  ===============
``"product"``       :math:`\prod_{k=1}^K n_{ik}`                 ``K``
``"balanced"``      :math:`\frac1K\sum_{k=1}^K n_{ik}^K`         ``K``
``"weight_decay"``  :math:`\frac12\sum_{k=1}^K n_{ik}^2`         ``2``
==================  ==========================================  ===============

The product and its balanced form induce the same convex regularizer :math:`\Omega`: by the
inequality of arithmetic and geometric means the balanced form is at least the product, with
equality when the layer norms are equal, and rescaling the layers of a subnetwork by positive
factors with product one changes neither its output (ReLU and max pooling are positively
homogeneous) nor the product. For ``K = 2`` the balanced form *is* weight decay; for ``K > 2``
weight decay has degree 2, not ``K``, and the theorem of Chapter 4 does not apply to it.
"""

from __future__ import annotations

import torch

from .._validation import check_choice, check_scalar

__all__ = [
    "REGULARIZERS",
    "regularizer_degree",
    "subnetwork_regularizer",
    "network_regularizer",
    "network_regularizer_grad",
    "prox_subnetworks",
    "rebalance",
    "zero_subnets",
]

#: The regularizers of :func:`network_regularizer`.
REGULARIZERS = ("product", "balanced", "weight_decay")


def regularizer_degree(kind: str, num_layers: int) -> int:
    """Degree of positive homogeneity of ``kind`` for subnetworks of ``num_layers`` layers.

    >>> regularizer_degree("product", 3), regularizer_degree("weight_decay", 3)
    (3, 2)
    """
    check_choice(kind, "kind", "regularizer_degree", REGULARIZERS)
    K = check_scalar(num_layers, "num_layers", "regularizer_degree", kind="int", ge=1)
    return 2 if kind == "weight_decay" else K


def _theta(norms: torch.Tensor, kind: str) -> torch.Tensor:
    K = norms.shape[0]  # norms: (K, r)
    if kind == "product":
        return norms.prod(dim=0)
    if kind == "balanced":
        return (norms**K).sum(dim=0) / K
    return 0.5 * (norms**2).sum(dim=0)


def subnetwork_regularizer(model, kind: str = "product") -> torch.Tensor:
    r"""Per-subnetwork values :math:`\theta(W_i)`, shape ``(r,)`` (differentiable).

    Used in Chapter 4.
    """
    check_choice(kind, "kind", "subnetwork_regularizer", REGULARIZERS)
    return _theta(model.layer_norms(), kind)


def network_regularizer(model, kind: str = "product") -> torch.Tensor:
    r"""The regularizer :math:`\Theta(W) = \sum_i \theta(W_i)` of a :class:`ParallelSubnetworks`.

    Parameters
    ----------
    model : ParallelSubnetworks
    kind : {"product", "balanced", "weight_decay"}
        See the module's table.

    Returns
    -------
    torch.Tensor
        A scalar, differentiable with respect to the model's weights.

    Notes
    -----
    .. math::

        \Theta(W) = \sum_{i=1}^r \prod_{k=1}^K \lVert W_i^k\rVert_F \quad(\text{product}).

    Used in Chapter 4.

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in neural network training, CVPR 2017
    (the product of layer norms, positively homogeneous of the network's degree).

    Examples
    --------
    >>> from hdlcore import ParallelSubnetworks
    >>> net = ParallelSubnetworks(2, 1, 3, hidden=(4,), rng=0)
    >>> bool(network_regularizer(net, "product") <= network_regularizer(net, "balanced"))
    True
    """
    check_choice(kind, "kind", "network_regularizer", REGULARIZERS)
    return _theta(model.layer_norms(), kind).sum()


def network_regularizer_grad(model, kind: str = "product") -> list[torch.Tensor]:
    r"""Hand-written gradient of :math:`\Theta` with respect to each layer, ``[(r, ...), ...]``.

    For the product, :math:`\partial\theta/\partial W_i^k = (\prod_{j\ne k} n_{ij})\,
    W_i^k / n_{ik}` (zero where :math:`n_{ik} = 0`, an element of the subdifferential); for the
    balanced form :math:`n_{ik}^{K-2} W_i^k`; for weight decay :math:`W_i^k`. The tests check it
    against autograd. Used in Chapter 4.
    """
    check_choice(kind, "kind", "network_regularizer_grad", REGULARIZERS)
    with torch.no_grad():
        norms = model.layer_norms()  # (K, r)
        K = norms.shape[0]
        out = []
        for k, w in enumerate(model.weights):
            shape = (-1,) + (1,) * (w.ndim - 1)
            if kind == "product":
                others = torch.cat([norms[:k], norms[k + 1:]]).prod(dim=0)
                scale = torch.where(norms[k] > 0, others / norms[k].clamp_min(1e-300), 0.0)
            elif kind == "balanced":
                scale = norms[k] ** (K - 2) if K > 2 else torch.ones_like(norms[k])
                if K == 1:
                    scale = torch.where(norms[k] > 0, 1.0 / norms[k].clamp_min(1e-300), 0.0)
            else:
                scale = torch.ones_like(norms[k])
            out.append(w.detach() * scale.reshape(shape))
        return out


def _radial_balanced(v: torch.Tensor, t: torch.Tensor, K: int) -> torch.Tensor:
    """Solve ``s + t s^(K-1) = v`` for ``s >= 0`` (the prox of ``t/K ||x||^K`` on norms)."""
    if K == 1:
        return (v - t).clamp_min(0)
    if K == 2:
        return v / (1 + t)
    s = v.clone()
    for _ in range(60):  # Newton from above: monotone and quadratic, s stays in [0, v]
        g = s + t * s ** (K - 1) - v
        s = (s - g / (1 + (K - 1) * t * s ** (K - 2))).clamp_min(0)
    return s


@torch.no_grad()
def prox_subnetworks(model, step: float, lam: float, kind: str = "product", *,
                     norms: torch.Tensor | None = None, rebalance: bool = False) -> None:
    r"""Proximal step on the regularizer, in place: each layer of each subnetwork, given the others.

    For the product, layer :math:`k` of subnetwork :math:`i` is group soft-thresholded,

    .. math::

        W_i^k \leftarrow W_i^k\Big(1 - \frac{\eta\lambda\, c_{ik}}{\lVert W_i^k\rVert_F}\Big)_+,
        \qquad c_{ik} = \prod_{j\ne k} n_{ij},

    the exact proximal operator of :math:`\eta\lambda c_{ik}\lVert\cdot\rVert_F`, where the other
    layers' norms :math:`n_{ij}` are those of ``norms`` (the iterate *before* the gradient step,
    so that the fixed points of "gradient step, then this prox" are exactly the stationary points
    of :math:`\ell + \lambda\Theta`), or the current ones if ``norms`` is None. A subnetwork with
    one zero layer computes zero and costs zero; its other layers are then set to zero too, so
    whole subnetworks become exactly zero. The balanced form and weight decay are separable over
    layers and get their exact proximal operators (a radial shrinkage that never reaches zero).
    With ``rebalance`` the layers are then rescaled as in :func:`rebalance`; everything is one
    pass over the norms and one multiplication per layer.

    Used by :func:`hdlcore.train` (Chapter 4).
    """
    func = "prox_subnetworks"
    check_choice(kind, "kind", func, REGULARIZERS)
    step = check_scalar(step, "step", func, ge=0)
    lam = check_scalar(lam, "lam", func, gt=0)
    _prox(list(model.weights), step, lam, kind, norms, rebalance)


def _layer_norms(weights: list[torch.Tensor]) -> torch.Tensor:
    """Frobenius norms of each layer of each subnetwork, (K, r), without autograd."""
    r = weights[0].shape[0]
    return torch.stack([torch.linalg.vector_norm(w.detach().reshape(r, -1), dim=1) for w in weights])


@torch.no_grad()
def _prox(weights, step, lam, kind, norms=None, rebalance=False, only=None) -> torch.Tensor:
    """The proximal step of :func:`prox_subnetworks` (trusted input); returns the new norms (K, r).

    ``step`` is a float or a tensor (r,) (one step per subnetwork); ``only`` (r,) booleans
    restricts the step to some subnetworks (the others are left exactly as they are).
    """
    K = len(weights)
    current = _layer_norms(weights)  # (K, r)
    if norms is None:
        norms = current
    tiny = torch.finfo(current.dtype).tiny
    t = step * lam  # float or (r,)
    if not torch.is_tensor(t) and t == 0:
        factor = torch.ones_like(current)
    elif kind == "product":
        if K == 1:
            c = torch.ones_like(current)
        else:  # c[k] = prod_{j != k} norms[j], without dividing by a norm that may be zero
            ones = torch.ones_like(norms[:1])
            left = torch.cumprod(torch.cat([ones, norms[:-1]]), dim=0)
            right = torch.cumprod(torch.cat([ones, norms.flip(0)[:-1]]), dim=0).flip(0)
            c = left * right
        factor = (1 - t * c / current.clamp_min(tiny)).clamp_min(0)
    elif kind == "balanced":
        factor = _radial_balanced(current, t * torch.ones_like(current), K) / current.clamp_min(tiny)
    else:
        factor = 1.0 / (1.0 + t * torch.ones_like(current))
    new = current * factor  # (K, r) norms after the step
    dead = (new == 0).any(dim=0)  # (r,): a zero layer zeroes the whole subnetwork
    if rebalance and K > 1:
        target = new.clamp_min(tiny).log().mean(dim=0).exp()  # geometric mean of the norms, (r,)
        factor = factor * target / new.clamp_min(tiny)
        new = target.expand_as(new)
    factor = torch.where(dead, 0.0, factor)
    new = torch.where(dead, 0.0, new)
    if only is not None:
        factor = torch.where(only, factor, 1.0)
        new = torch.where(only, new, current)
    for f, w in zip(factor, weights, strict=True):
        w.mul_(f.reshape((-1,) + (1,) * (w.ndim - 1)))
    return new


def zero_subnets(model) -> torch.Tensor:
    """Set every layer of a subnetwork to zero when one of its layers is zero; return the mask."""
    dead = ~model.active()
    prox_subnetworks(model, 0.0, 1.0)
    return dead


def rebalance(model) -> None:
    r"""Rescale the layers of each subnetwork to equal norms, in place.

    Replaces :math:`W_i^k` by :math:`W_i^k\, g_i / n_{ik}` with
    :math:`g_i = (\prod_k n_{ik})^{1/K}`: the network's output and the product regularizer do
    not change, and the balanced form and weight decay can only decrease (the means
    inequality). Subnetworks with a zero layer are set to zero. Used by :func:`hdlcore.train`
    with the product regularizer (Chapter 4).

    Examples
    --------
    >>> import torch
    >>> from hdlcore import ParallelSubnetworks
    >>> net = ParallelSubnetworks(3, 2, 4, hidden=(5,), rng=0, dtype=torch.float64)
    >>> A = torch.randn(6, 3, dtype=torch.float64)
    >>> before = net(A)
    >>> rebalance(net)
    >>> n = net.layer_norms()
    >>> bool(torch.allclose(n[0], n[1])), bool(torch.allclose(net(A), before))
    (True, True)
    """
    prox_subnetworks(model, 0.0, 1.0, rebalance=True)
