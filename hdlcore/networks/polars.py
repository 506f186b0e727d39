r"""Polars of parallel ReLU subnetworks: exact for one hidden layer on 2-D inputs, else a lower bound.

For :math:`f(W) = \ell(\Phi_r(A;W)) + \lambda\Theta(W)` with subnetworks and regularizer of the
same degree, write :math:`Z = -\nabla_X\ell(X)/\lambda` at :math:`X = \Phi_r(A;W)`. The polar

.. math::

    \Omega^\circ(Z) = \sup_{\theta(w)\le 1}\langle Z, \phi(A; w)\rangle

decides: a value above 1 gives a subnetwork whose addition decreases :math:`f` (the point is not
a global minimum); a value at most 1 at a stationary point proves global optimality, and at any
point bounds :math:`f(W) - f^\star` (see :func:`certify_network`).

- :func:`polar_one_hidden_2d`: the polar **exactly**, for one hidden layer and 2-D inputs. On the
  unit circle the activation pattern of :math:`\psi(Aw)` is constant on the arcs between the
  ``2N`` angles where :math:`a_j^\top w = 0`; on each arc :math:`\lVert Z^\top D A w\rVert^2` is a
  quadratic form, maximized at an endpoint of the arc or at its top eigenvector.
- :func:`polar_lower_bound`: any architecture; a multi-start projected ascent over the product
  of unit spheres. Every value it returns is attained, so it is a **lower bound**.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import _runtime
from .._backend import is_tensor
from .._validation import check_array, check_devices, check_rng, check_scalar
from .model import ParallelSubnetworks
from .problem import check_model, model_threads

__all__ = ["NetworkPolarResult", "polar_one_hidden_2d", "polar_linear", "polar_lower_bound",
           "polar_upper_bound"]


@dataclass(frozen=True)
class NetworkPolarResult:
    r"""The polar :math:`\Omega^\circ(Z)` of a network regularizer and what was computed to get it.

    The network counterpart of the matrix :class:`~hdlcore.PolarResult` (same field names).

    Attributes
    ----------
    value : float
        The computed polar: exact (``kind="exact"``) or the best value found by an ascent, which
        is attained, hence a lower bound (``"lower_bound"``).
    subnet : list of arrays
        A maximizer ``[W^1 (d, h1), ..., W^K (h, C)]``, every layer of unit norm
        (:math:`\theta = 1`), attaining ``value``; numpy or tensors like the input.
    kind : str
        ``"exact"`` or ``"lower_bound"``.
    upper : float
        A proven upper bound on the polar (``value`` itself when exact).
    detail : str
        How the value was obtained, in words.
    """

    value: float
    subnet: list[Any]
    kind: str
    upper: float
    detail: str


def _back(result: NetworkPolarResult, ref: Any) -> NetworkPolarResult:
    """The result with its subnetwork in ``ref``'s array type: numpy in, numpy out; a tensor in,
    tensors on its device and dtype. The one conversion, at the public boundary."""
    if is_tensor(ref):
        layers = [w.to(device=ref.device, dtype=ref.dtype) for w in result.subnet]
    else:
        layers = [w.detach().cpu().numpy() for w in result.subnet]
    return NetworkPolarResult(result.value, layers, result.kind, result.upper, result.detail)


def _tensors(func: str, A: Any, Z: Any, d: int | None = None, C: int | None = None, like=None):
    """Validate ``A`` (N, d) and ``Z`` (N, C) and return them as tensors (float64, or ``like``'s)."""
    check_devices(func, {"A": A, "Z": Z})
    A = check_array(A, "A", func, ndim=2, shape=(None, d))
    Z = check_array(Z, "Z", func, ndim=2, shape=(A.shape[0], C))
    if like is None:
        dev = A.device if is_tensor(A) else None
        like = torch.empty(0, dtype=torch.float64, device=dev)
    return tuple(torch.as_tensor(x).to(like) for x in (A, Z))


def polar_one_hidden_2d(A: Any, Z: Any) -> NetworkPolarResult:
    r"""The exact polar of one-hidden-layer ReLU subnetworks on 2-D inputs.

    Parameters
    ----------
    A : array (N, 2)
        Inputs.
    Z : array (N, C)
        Usually :math:`-\nabla_X\ell/\lambda`.

    Returns
    -------
    NetworkPolarResult
        ``value`` :math:`=\max_{\lVert w\rVert\le1}\lVert Z^\top\psi(Aw)\rVert_2`, ``kind="exact"`` (so
        ``upper = value``), and ``subnet = [w (2, 1), v (1, C)]`` with
        :math:`v = Z^\top\psi(Aw)/\lVert\cdot\rVert`.

    Notes
    -----
    For :math:`\theta(w^1, w^2) = \lVert w^1\rVert\lVert w^2\rVert` (or its balanced form, or, for
    one hidden layer, weight decay) and :math:`\phi = \psi(Aw^1)(w^2)^\top`,

    .. math::

        \Omega^\circ(Z) = \sup_{\lVert w^1\rVert\le 1,\ \lVert w^2\rVert\le1}
        \langle Z, \psi(Aw^1)(w^2)^\top\rangle = \max_{\lVert w\rVert = 1}\lVert Z^\top\psi(Aw)\rVert_2,

    also for hidden layers wider than one neuron (by Cauchy-Schwarz a single neuron attains it).
    Cost :math:`O(N^2 C)`. Used in Chapter 4.

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in neural network training, CVPR 2017
    (the polar of the product regularizer for one-hidden-layer ReLU subnetworks).

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[1.0, 0.0], [0.0, 1.0]]); Z = np.array([[1.0], [1.0]])
    >>> bool(abs(polar_one_hidden_2d(A, Z).value - np.sqrt(2)) < 1e-12)  # w = (1, 1)/sqrt(2)
    True
    """
    A_t, Z_t = _tensors("polar_one_hidden_2d", A, Z, d=2)
    return _back(arcs_polar(A_t, Z_t), Z)


def arcs_polar(A: torch.Tensor, Z: torch.Tensor, h: int = 1) -> NetworkPolarResult:
    """:func:`polar_one_hidden_2d` on tensors (float64), its maximizer padded to ``h`` hidden units."""
    C = Z.shape[1]
    W1, W2 = A.new_zeros((2, h)), A.new_zeros((h, C))
    nz = torch.linalg.vector_norm(A, dim=1) > 0
    if not bool(nz.any()):
        W1[0, 0] = 1.0
        return NetworkPolarResult(0.0, [W1, W2], "exact", 0.0, "arcs (all inputs zero)")
    # Angles t where a_j^T w(t) = 0, w(t) = (cos t, sin t): t = atan2(a) +- pi/2.
    base = torch.atan2(A[nz, 1], A[nz, 0])
    cuts = torch.unique(torch.remainder(torch.cat([base + torch.pi / 2, base - torch.pi / 2]), 2 * torch.pi))
    t0 = cuts
    t1 = torch.cat([cuts[1:], cuts[:1] + 2 * torch.pi])  # arcs [t0, t1], cyclic
    mid = (t0 + t1) / 2
    Wm = torch.stack([torch.cos(mid), torch.sin(mid)])  # (2, P)
    D = (A @ Wm > 0).to(A.dtype).T  # (P, N): the pattern on each arc
    B = torch.einsum("pn,nc,nd->pcd", D, Z, A)  # Z^T D A per arc: (P, C, 2)
    M = torch.einsum("pcd,pce->pde", B, B)  # (P, 2, 2), f(w) = w^T M w on the arc
    cand_t = [t0, t1]
    top = torch.linalg.eigh(M)[1][:, :, 1]  # (P, 2): the top eigenvector (ascending eigenvalues)
    for sign in (1.0, -1.0):
        te = torch.atan2(sign * top[:, 1], sign * top[:, 0])
        inside = torch.remainder(te - t0, 2 * torch.pi) < (t1 - t0)
        cand_t.append(torch.where(inside, te, t0))  # outside the arc: fall back to an endpoint
    T = torch.stack(cand_t, dim=1)  # (P, 4) candidate angles per arc
    Wc = torch.stack([torch.cos(T), torch.sin(T)], dim=-1)  # (P, 4, 2)
    vals = torch.einsum("pkd,pde,pke->pk", Wc, M, Wc)
    w = Wc.reshape(-1, 2)[int(torch.argmax(vals))]
    # Evaluate the winner directly (not through its arc's quadratic form).
    g = Z.T @ torch.relu(A @ w)  # (C,)
    value = float(torch.linalg.vector_norm(g))
    W1[:, 0] = w
    if value > 0:
        W2[0] = g / value
    return NetworkPolarResult(value, [W1, W2], "exact", value, f"exact: maximum over the {len(cuts)} arcs "
                              "of the unit circle on which the activation pattern is constant")


def polar_upper_bound(model: ParallelSubnetworks, A: Any, Z: Any) -> float:
    r"""A crude but valid upper bound on the polar of the product regularizer.

    :math:`\langle Z, \phi(A;W)\rangle \le \lVert Z\rVert_F\,\lVert\phi(A;W)\rVert_F \le
    \lVert Z\rVert_F\,\lVert A\rVert_2\prod_j k_j` when every layer has unit Frobenius norm: the
    ReLU and max pooling do not increase norms, a dense layer's operator norm is at most its
    Frobenius norm, and a convolution with a ``k x k`` kernel at most ``k`` times it. Used by
    :func:`certify_network` (Chapter 4).
    """
    A_t, Z_t = _tensors("polar_upper_bound", A, Z, d=model.in_features, C=model.out_features)
    return upper_bound(model, A_t, Z_t)


def upper_bound(model: ParallelSubnetworks, A: torch.Tensor, Z: torch.Tensor) -> float:
    """:func:`polar_upper_bound` on tensors."""
    factor = float(np.prod([k for _, k, _ in model.conv])) if model.conv else 1.0
    return float(torch.linalg.vector_norm(Z)) * float(torch.linalg.matrix_norm(A, 2)) * factor


def _unit_layers(weights: list[torch.Tensor]) -> None:
    r = weights[0].shape[0]
    for w in weights:
        n = w.reshape(r, -1).norm(dim=1).clamp_min(torch.finfo(w.dtype).tiny)
        w.div_(n.reshape((-1,) + (1,) * (w.ndim - 1)))


def polar_lower_bound(
    model: ParallelSubnetworks,
    A: Any,
    Z: Any,
    *,
    num_starts: int = 64,
    steps: int = 200,
    include_model: bool = True,
    rng: Any = None,
) -> NetworkPolarResult:
    r"""A lower bound on the polar by multi-start projected ascent (any architecture).

    Parameters
    ----------
    model : ParallelSubnetworks
        Gives the architecture of one subnetwork (and, with ``include_model``, starting points:
        its non-zero subnetworks, normalized).
    A : array (N, d)
        Inputs.
    Z : array (N, C)
        Usually :math:`-\nabla_X\ell/\lambda`.
    num_starts : int
        Random starting subnetworks, all run at once as one batched :class:`ParallelSubnetworks`.
    steps : int
        Ascent steps: a normalized gradient step on each layer (with a step angle decreasing
        from 0.5 to 1e-3 rad), the layer renormalized, and the last layer set to its exact
        maximizer :math:`H^\top Z/\lVert H^\top Z\rVert_F` given the others.
    include_model : bool
        Also start from the model's own non-zero subnetworks.
    rng : numpy Generator or int, optional

    Returns
    -------
    NetworkPolarResult
        ``kind="lower_bound"``: the best value :math:`\langle Z,\phi(A;w)\rangle` found, at a
        subnetwork with every layer of unit Frobenius norm (so :math:`\theta(w) = 1`), and
        ``upper`` from :func:`polar_upper_bound`.

    Notes
    -----
    .. math::

        \Omega^\circ(Z) = \sup_{\prod_k\lVert W^k\rVert_F\le 1}\langle Z, \phi(A; W)\rangle
        = \sup_{\lVert W^k\rVert_F = 1\ \forall k}\langle Z, \phi(A; W)\rangle,

    a non-concave maximization (NP-hard in general). A value above 1 proves that the point is
    not a global minimum; a value at most 1 is evidence, not proof. Used in Chapter 4.

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in neural network training, CVPR 2017
    (the polar as the test of global optimality; computing it is hard in general).
    """
    func = "polar_lower_bound"
    model = check_model(model, func)
    num_starts = check_scalar(num_starts, "num_starts", func, kind="int", ge=1)
    steps = check_scalar(steps, "steps", func, kind="int", ge=0)
    gen = check_rng(rng, "rng", func)
    A_t, Z_t = _tensors(func, A, Z, d=model.in_features, C=model.out_features, like=model.weights[0])
    if model.degree == 1:  # linear subnetworks: the polar has a closed form
        return _back(linear_polar(A_t, Z_t), Z)
    with _runtime.threads(model_threads(model, A_t)):
        return _back(ascent_polar(model, A_t, Z_t, num_starts, steps, include_model, gen), Z)


def ascent_polar(model: ParallelSubnetworks, A: torch.Tensor, Z: torch.Tensor, num_starts: int, steps: int,
                 include_model: bool, gen: np.random.Generator) -> NetworkPolarResult:
    """:func:`polar_lower_bound` on tensors of the model's device and dtype."""
    p0 = model.weights[0]
    probe = ParallelSubnetworks(model.in_features, model.out_features, num_starts, model.hidden,
                                conv=model.conv or None, input_shape=model.input_shape,
                                rng=gen, dtype=p0.dtype, device=p0.device)
    weights = [w.detach().clone() for w in probe.weights]
    if include_model:
        act = model.active()
        if bool(act.any()):
            weights = [torch.cat([w, m.detach()[act]]) for w, m in zip(weights, model.weights, strict=True)]
    probe = ParallelSubnetworks.from_weights(weights, conv=model.conv or None, input_shape=model.input_shape)
    value, subnet = _ascent(probe, A, Z, steps)
    return NetworkPolarResult(value, subnet, "lower_bound", max(upper_bound(model, A, Z), value),
                              f"lower bound: the best of {probe.num_subnets} projected ascents x {steps} "
                              "steps (a value attained by a unit subnetwork); upper: ||Z||_F ||A||_2 "
                              "(times the kernel sizes)")


def _ascent(probe, A, Z, steps) -> tuple[float, list[torch.Tensor]]:
    """Ascent on the earlier layers; the last layer is always its maximizer H^T Z / ||H^T Z||.

    With the last layer at its maximizer the value of start s is ||H_s^T Z||_F (H_s: the last
    hidden features of unit-norm layers), so one forward and one backward pass per step give
    both the values and the gradients.
    """
    params = list(probe.weights)
    S = params[0].shape[0]
    hidden = params[:-1]
    best_val = torch.full((S,), -torch.inf, dtype=params[0].dtype, device=params[0].device)
    best = [w.detach().clone() for w in params]
    angles = np.geomspace(0.5, 1e-3, max(steps, 1))
    for t in range(steps + 1):
        with torch.no_grad():
            _unit_layers(hidden)
        H = probe._features(A)  # (S, N, h)
        G = torch.einsum("snh,nc->shc", H, Z)  # H^T Z per start: the best last layer, unnormalized
        val = G.reshape(S, -1).norm(dim=1)  # <Z, phi_s> at that last layer
        with torch.no_grad():
            better = val > best_val
            if bool(better.any()):
                for bw, w in zip(best[:-1], hidden, strict=True):
                    bw[better] = w.detach()[better]
                last = G.detach() / val.detach().clamp_min(torch.finfo(G.dtype).tiny)[:, None, None]
                best[-1][better] = last[better]
                best_val = torch.where(better, val.detach(), best_val)
        if t == steps:
            break
        grads = torch.autograd.grad(val.sum(), hidden)
        with torch.no_grad():
            for w, g in zip(hidden, grads, strict=True):
                shape = (-1,) + (1,) * (w.ndim - 1)
                g = g - (g * w).reshape(S, -1).sum(1).reshape(shape) * w  # tangent to the sphere
                gn = g.reshape(S, -1).norm(dim=1).clamp_min(torch.finfo(w.dtype).tiny)
                w.add_(g * (angles[t] / gn).reshape(shape))
    s = int(torch.argmax(best_val))
    return float(best_val[s]), [w[s].clone() for w in best]


def polar_linear(A: Any, Z: Any) -> NetworkPolarResult:
    r"""The exact polar of linear subnetworks (``K = 1``): :math:`\lVert A^\top Z\rVert_F`.

    With :math:`\phi(W) = AW` and :math:`\theta = \lVert W\rVert_F`, the supremum of
    :math:`\langle A^\top Z, W\rangle` over the unit ball is attained at
    :math:`W = A^\top Z/\lVert A^\top Z\rVert_F`. Used by :func:`hdlcore.certify_network`.
    """
    A_t, Z_t = _tensors("polar_linear", A, Z)
    return _back(linear_polar(A_t, Z_t), Z)


def linear_polar(A: torch.Tensor, Z: torch.Tensor) -> NetworkPolarResult:
    """:func:`polar_linear` on tensors."""
    G = A.T @ Z  # (d, C)
    n = float(torch.linalg.vector_norm(G))
    return NetworkPolarResult(n, [G / n if n > 0 else G], "exact", n, "exact: closed form ||A^T Z||_F")


def network_polar(model: ParallelSubnetworks, A: torch.Tensor, Z: torch.Tensor, polar: str, num_starts: int,
                  steps: int, gen: np.random.Generator) -> NetworkPolarResult:
    """The polar for :func:`~hdlcore.certify_network` (validated ``polar``), on the model's tensors."""
    if model.degree == 1 and polar != "lower_bound":
        return linear_polar(A, Z)
    if exact_polar_applies(model) and polar != "lower_bound":
        return arcs_polar(A, Z, h=model.hidden[0])
    return ascent_polar(model, A, Z, num_starts, steps, True, gen)


def exact_polar_applies(model: ParallelSubnetworks) -> bool:
    """One fully connected hidden layer on 2-D inputs (or a linear model): the polar is exact."""
    return model.degree == 1 or (not model.conv and len(model.hidden) == 1 and model.in_features == 2)
