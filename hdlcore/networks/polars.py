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
from .._validation import check_array, check_choice, check_rng, check_scalar, param_error
from .model import ParallelSubnetworks
from .problem import model_threads

__all__ = ["Polar", "polar_one_hidden_2d", "polar_linear", "polar_lower_bound", "polar_upper_bound"]


@dataclass(frozen=True)
class Polar:
    """A value of the polar and the subnetwork that attains it (``theta(subnet) = 1``)."""

    value: float
    kind: str  #: "exact" or "lower_bound"
    subnet: list[np.ndarray]  #: [W^1 (d, h1), ..., W^K (h, C)], each layer of unit norm
    method: str


def _like(arrays: list[np.ndarray], ref: Any) -> list[Any]:
    """numpy in, numpy out; a tensor in, tensors out on its device and dtype."""
    if is_tensor(ref):
        return [torch.as_tensor(a).to(device=ref.device, dtype=ref.dtype) for a in arrays]
    return arrays


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float64) if is_tensor(x) else np.asarray(x, dtype=np.float64)


def polar_one_hidden_2d(A: Any, Z: Any) -> Polar:
    r"""The exact polar of one-hidden-layer ReLU subnetworks on 2-D inputs.

    Parameters
    ----------
    A : array (N, 2)
        Inputs.
    Z : array (N, C)
        Usually :math:`-\nabla_X\ell/\lambda`.

    Returns
    -------
    Polar
        ``value`` :math:`=\max_{\lVert w\rVert\le1}\lVert Z^\top\psi(Aw)\rVert_2`, ``kind="exact"``,
        and ``subnet = [w (2, 1), v (1, C)]`` with :math:`v = Z^\top\psi(Aw)/\lVert\cdot\rVert`.

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
    B. D. Haeffele and R. Vidal, Global optimality in neural network training, CVPR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[1.0, 0.0], [0.0, 1.0]]); Z = np.array([[1.0], [1.0]])
    >>> bool(abs(polar_one_hidden_2d(A, Z).value - np.sqrt(2)) < 1e-12)  # w = (1, 1)/sqrt(2)
    True
    """
    func = "polar_one_hidden_2d"
    Z_in = Z
    A = _np(check_array(A, "A", func, ndim=2, shape=(None, 2)))
    Z = _np(check_array(Z, "Z", func, ndim=2, shape=(A.shape[0], None)))
    nz = np.linalg.norm(A, axis=1) > 0
    if not nz.any():
        return Polar(0.0, "exact", _like([np.array([[1.0], [0.0]]), np.zeros((1, Z.shape[1]))], Z_in), "arcs")
    # Angles t where a_j^T w(t) = 0, w(t) = (cos t, sin t): t = atan2(a) +- pi/2.
    base = np.arctan2(A[nz, 1], A[nz, 0])
    cuts = np.unique(np.mod(np.concatenate([base + np.pi / 2, base - np.pi / 2]), 2 * np.pi))
    t0 = cuts
    t1 = np.append(cuts[1:], cuts[0] + 2 * np.pi)  # arcs [t0, t1], cyclic
    mid = (t0 + t1) / 2
    Wm = np.stack([np.cos(mid), np.sin(mid)])  # (2, P)
    D = (A @ Wm > 0).astype(np.float64).T  # (P, N): the pattern on each arc
    B = np.einsum("pn,nc,nd->pcd", D, Z, A)  # Z^T D A per arc: (P, C, 2)
    M = np.einsum("pcd,pce->pde", B, B)  # (P, 2, 2), f(w) = w^T M w on the arc
    cand_t = [t0, t1]
    evals, evecs = np.linalg.eigh(M)  # ascending
    top = evecs[:, :, 1]  # (P, 2)
    for sign in (1.0, -1.0):
        te = np.arctan2(sign * top[:, 1], sign * top[:, 0])
        inside = np.mod(te - t0, 2 * np.pi) < (t1 - t0)
        cand_t.append(np.where(inside, te, t0))  # outside the arc: fall back to an endpoint
    T = np.stack(cand_t, axis=1)  # (P, 4) candidate angles per arc
    Wc = np.stack([np.cos(T), np.sin(T)], axis=-1)  # (P, 4, 2)
    vals = np.einsum("pkd,pde,pke->pk", Wc, M, Wc)
    p, k = np.unravel_index(np.argmax(vals), vals.shape)
    w = Wc[p, k]
    # Evaluate the winner directly (not through its arc's quadratic form).
    g = Z.T @ np.maximum(A @ w, 0.0)  # (C,)
    value = float(np.linalg.norm(g))
    v = g / value if value > 0 else np.zeros_like(g)
    return Polar(value, "exact", _like([w[:, None], v[None, :]], Z_in), "arcs")


def polar_upper_bound(model: ParallelSubnetworks, A: Any, Z: Any) -> float:
    r"""A crude but valid upper bound on the polar of the product regularizer.

    :math:`\langle Z, \phi(A;W)\rangle \le \lVert Z\rVert_F\,\lVert\phi(A;W)\rVert_F \le
    \lVert Z\rVert_F\,\lVert A\rVert_2\prod_j k_j` when every layer has unit Frobenius norm: the
    ReLU and max pooling do not increase norms, a dense layer's operator norm is at most its
    Frobenius norm, and a convolution with a ``k x k`` kernel at most ``k`` times it. Used by
    :func:`certify_network` (Chapter 4).
    """
    A, Z = _np(A), _np(Z)
    factor = float(np.prod([k for _, k, _ in model.conv])) if model.conv else 1.0
    return float(np.linalg.norm(Z) * np.linalg.norm(A, 2) * factor)


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
) -> Polar:
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
    Polar
        ``kind="lower_bound"``: the best value :math:`\langle Z,\phi(A;w)\rangle` found, at a
        subnetwork with every layer of unit Frobenius norm (so :math:`\theta(w) = 1`).

    Notes
    -----
    .. math::

        \Omega^\circ(Z) = \sup_{\prod_k\lVert W^k\rVert_F\le 1}\langle Z, \phi(A; W)\rangle
        = \sup_{\lVert W^k\rVert_F = 1\ \forall k}\langle Z, \phi(A; W)\rangle,

    a non-concave maximization (NP-hard in general). A value above 1 proves that the point is
    not a global minimum; a value at most 1 is evidence, not proof. Used in Chapter 4.

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in neural network training, CVPR 2017.
    """
    func = "polar_lower_bound"
    Z_in = Z
    if not isinstance(model, ParallelSubnetworks):
        raise param_error("model", func, "a hdlcore.ParallelSubnetworks", model, TypeError)
    num_starts = check_scalar(num_starts, "num_starts", func, kind="int", ge=1)
    steps = check_scalar(steps, "steps", func, kind="int", ge=0)
    gen = check_rng(rng, "rng", func)
    if model.degree == 1:  # linear subnetworks: the polar has a closed form
        return polar_linear(A, Z)
    p0 = model.weights[0]
    A = torch.as_tensor(check_array(A, "A", func, shape=(None, model.in_features))).to(p0)
    Z = torch.as_tensor(check_array(Z, "Z", func, shape=(A.shape[0], model.out_features))).to(p0)
    probe = ParallelSubnetworks(model.in_features, model.out_features, num_starts, model.hidden,
                                conv=model.conv or None, input_shape=model.input_shape,
                                rng=gen, dtype=p0.dtype, device=p0.device)
    weights = [w.detach().clone() for w in probe.weights]
    if include_model:
        act = model.active()
        if bool(act.any()):
            weights = [torch.cat([w, m.detach()[act]]) for w, m in zip(weights, model.weights, strict=True)]
    probe = ParallelSubnetworks.from_weights(weights, conv=model.conv or None, input_shape=model.input_shape)
    with _runtime.threads(model_threads(probe, A)):
        pol = _ascent(probe, A, Z, steps)
    return Polar(pol.value, pol.kind, _like(pol.subnet, Z_in), pol.method)


def _ascent(probe, A, Z, steps) -> Polar:
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
    subnet = [_np(w[s]) for w in best]
    return Polar(float(best_val[s]), "lower_bound", subnet,
                 f"projected ascent, {S} starts x {steps} steps")


def polar_linear(A: Any, Z: Any) -> Polar:
    r"""The exact polar of linear subnetworks (``K = 1``): :math:`\lVert A^\top Z\rVert_F`.

    With :math:`\phi(W) = AW` and :math:`\theta = \lVert W\rVert_F`, the supremum of
    :math:`\langle A^\top Z, W\rangle` over the unit ball is attained at
    :math:`W = A^\top Z/\lVert A^\top Z\rVert_F`. Used by :func:`hdlcore.certify_network`.
    """
    Z_in, A, Z = Z, _np(A), _np(Z)
    G = A.T @ Z
    n = float(np.linalg.norm(G))
    return Polar(n, "exact", _like([G / n if n > 0 else G], Z_in), "closed form")


def _polar_auto(model, A, Z, polar, num_starts, steps, rng) -> Polar:
    if model.degree == 1 and polar != "lower_bound":
        return polar_linear(A, Z)
    exact_ok = not model.conv and len(model.hidden) == 1 and model.in_features == 2
    check_choice(polar, "polar", "certify_network", ("auto", "exact", "lower_bound"))
    if polar == "exact" and not exact_ok:
        raise param_error("polar", "certify_network", "'auto' or 'lower_bound': the exact polar needs one "
                          "fully connected hidden layer and 2-D inputs", polar)
    if exact_ok and polar != "lower_bound":
        pol = polar_one_hidden_2d(A, Z)
        h = model.hidden[0]
        W1 = np.zeros((2, h))
        W1[:, :1] = _np(pol.subnet[0])
        W2 = np.zeros((h, model.out_features))
        W2[:1] = _np(pol.subnet[1])
        return Polar(pol.value, "exact", _like([W1, W2], Z), pol.method)
    return polar_lower_bound(model, A, Z, num_starts=num_starts, steps=steps, rng=rng)
