r"""What a trained network proves: :func:`certify_network`, a function of the point alone.

For :math:`f(W) = \ell(\Phi_r(A;W)) + \lambda\Theta(W)`, :math:`X = \Phi_r(A;W)` and
:math:`Z = -\nabla_X\ell(X)/\lambda`, three facts are used (Haeffele and Vidal; the proofs are
in Chapter 4):

1. if network and regularizer have the same degree and :math:`W` is a local minimum with a zero
   subnetwork, then :math:`W` is a global minimum;
2. a subnetwork :math:`w` with :math:`\theta(w) = 1` and :math:`\langle Z, \phi(w)\rangle > 1`
   decreases :math:`f` when added at a small scale: :math:`W` is not a global minimum;
3. for any point and any upper bound :math:`\bar\omega\ge\Omega^\circ(Z)`, convexity of
   :math:`\ell\ge 0` gives :math:`f(W) - f^\star \le \lambda(\Theta(W) - \langle Z, X\rangle)
   + f(W)(\bar\omega - 1)_+`, and for the squared loss the dual point
   :math:`Z/\max(1, \bar\omega)` gives :math:`f^\star \ge \lambda\langle Y, Z'\rangle -
   \tfrac{\lambda^2}{2}\lVert Z'\rVert_F^2`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import _runtime
from .._backend import is_tensor
from .._validation import check_choice, check_rng, check_scalar, param_error
from .polars import NetworkPolarResult, exact_polar_applies, network_polar
from .problem import (
    NetworkProblem,
    degree_mismatch_message,
    objective_value,
    prepare_network,
    summed_loss,
)
from .regularizers import _theta, network_regularizer_grad, regularizer_degree

__all__ = ["NetworkCertificate", "certify_network", "add_subnetwork"]

#: The choices of ``certify_network(polar=...)``.
POLARS = ("auto", "exact", "lower_bound")


@dataclass(frozen=True)
class NetworkCertificate:
    """What :func:`certify_network` proved at a point, and the evidence.

    The fields shared with the matrix :class:`~hdlcore.Certificate` have the same names and
    meanings: ``polar``, ``polar_kind``, ``polar_upper``, ``objective``, ``bound``, ``is_global``,
    ``descent``, ``proves``, ``basis``, ``tol``.

    ``is_global`` is True only when proven (``bound <= tol * objective``), False only when
    disproven (a subnetwork that decreases the objective was found and the decrease verified),
    and None when nothing is proven; ``proves`` says it in words.
    """

    objective: float  #: f(W)
    loss: float
    regularizer: float  #: Theta(W)
    lam: float
    degree_network: int
    degree_regularizer: int
    degrees_match: bool
    polar: float | None  #: exact value, or a lower bound (see polar_kind); None if not applicable
    polar_kind: str  #: "exact", "lower_bound" or "not_applicable"
    polar_upper: float | None  #: a proven upper bound on the polar (the value itself when exact)
    bound: float | None  #: proven f(W) - f* <= bound (computed with polar_upper)
    is_global: bool | None  #: True proven, False disproven by a verified descent, None unknown
    descent: float | None  #: f after adding the maximizer at its best scale, minus f(W) (verified)
    proves: str  #: what is proven, in words
    basis: str  #: how the polar (and its upper bound) was obtained, in words
    maximizer: list[Any] | None  #: the subnetwork attaining ``polar`` (theta = 1), A's array type
    euler_residual: float  #: ``max_i |<Z, phi_i> - theta_i| / max(1, max_i theta_i)``
    stationarity: float  #: relative norm of grad loss + lam * grad Theta over non-zero subnetworks
    zero_subnets: np.ndarray  #: indices of the zero subnetworks
    zero_slot_slope: float | None  #: min over tested directions of (f(slot = tau w) - f) / tau^q
    local_min_with_zero: bool  #: a zero subnetwork, stationary, and no descent found in its slot
    tol: float


def add_subnetwork(model, A, Y, lam, subnet, *, loss="squared", regularizer="product"):
    r"""Append ``subnet`` (layers of unit norm) at the scale that minimizes the objective.

    Scaling every layer by :math:`s^{1/K}` gives the output :math:`X + s\,\phi(w)` and adds
    :math:`\lambda s` to the product regularizer (and its balanced form), or
    :math:`\lambda\frac K2 s^{2/K}` to weight decay. For the squared loss and the product the
    best scale is :math:`s^\star = (\langle R, \phi(w)\rangle - \lambda)_+/\lVert\phi(w)\rVert_F^2`
    with :math:`R = Y - X` (exact); otherwise a golden-section search on this one-dimensional
    function. Returns ``(new_model, s, objective)``. Used by :func:`hdlcore.grow_network` and
    :func:`hdlcore.certify_network` (Chapter 4). Trusts its inputs (tensors on the model's device).
    """
    prob = NetworkProblem(model, A, Y, lam, loss, regularizer, "full", "add_subnetwork")
    return add_at_best_scale(prob, subnet)


def add_at_best_scale(prob: NetworkProblem, subnet: list[torch.Tensor]):
    """:func:`add_subnetwork` on a validated problem; ``subnet``: tensors of the model's dtype."""
    model, A, Y, lam, loss, regularizer = prob.model, prob.A, prob.Y, prob.lam, prob.loss, prob.regularizer
    K = model.degree
    p0 = model.weights[0]
    subnet = [torch.as_tensor(w).to(p0) for w in subnet]
    one = type(model).from_weights([w[None] for w in subnet], conv=model.conv or None,
                                   input_shape=model.input_shape)
    with torch.no_grad():
        phi = one(A)  # (N, C)
        X = model(A)
    base = prob.lam * objective_value(prob).regularizer

    def f(s: float) -> float:
        cost = (K / 2) * s ** (2 / K) if regularizer == "weight_decay" else s
        with torch.no_grad():
            return float(summed_loss(X + s * phi, Y, loss)) + base + lam * cost

    if loss == "squared" and regularizer != "weight_decay":
        s = max(float(((Y - X) * phi).sum()) - lam, 0.0) / max(float((phi**2).sum()), 1e-300)
    else:
        hi = 1e-6
        while f(2 * hi) < f(hi) and hi < 1e12:
            hi *= 2
        a, b = 0.0, 2 * hi
        g = (np.sqrt(5) - 1) / 2
        for _ in range(100):
            c, d = b - g * (b - a), a + g * (b - a)
            if f(c) < f(d):
                b = d
            else:
                a = c
        s = (a + b) / 2 if f((a + b) / 2) < f(0.0) else 0.0
    new = model.append([w * s ** (1.0 / K) for w in subnet])
    return new, s, f(s)


def certify_network(
    model, A: Any, Y: Any, lam: float, *, loss: str = "squared", regularizer: str = "product",
    polar: str = "auto",
    tol: float = 1e-3,
    num_starts: int = 64,
    steps: int = 200,
    num_directions: int = 8,
    rng: Any = None,
) -> NetworkCertificate:
    r"""Certify a point :math:`W` of :math:`\ell(Y, \Phi_r(A;W)) + \lambda\Theta(W)`: what is proven.

    Parameters
    ----------
    model : ParallelSubnetworks
        The point (e.g. from :func:`hdlcore.train`, or any torch training run).
    A, Y, lam, loss, regularizer
        The problem, as in :func:`hdlcore.train`.
    polar : {"auto", "exact", "lower_bound"}
        "auto": exact for one fully connected hidden layer on 2-D inputs
        (:func:`~hdlcore.polar_one_hidden_2d`), else a lower bound
        (:func:`~hdlcore.polar_lower_bound`).
    tol : float
        Relative tolerance: proven global when ``bound <= tol * objective``; a polar above
        ``1 + tol`` is acted on (its subnetwork added and the decrease verified).
    num_starts, steps
        Of the lower-bound ascent.
    num_directions : int
        Random unit subnetworks tried in the zero-slot test (besides the polar's maximizer).
    rng : numpy Generator or int, optional

    Returns
    -------
    NetworkCertificate

    Notes
    -----
    With :math:`Z = -\nabla_X\ell/\lambda` and :math:`\bar\omega \ge \Omega^\circ(Z)`,

    .. math::

        f(W) - f^\star \le \lambda\big(\Theta(W) - \langle Z, \Phi_r(A;W)\rangle\big)
        + f(W)\,(\bar\omega - 1)_+ ,

    the first term vanishing at stationary points (Euler's identity). ``bound`` is the
    smaller of this and, for the squared loss, :math:`f(W)` minus the dual value at
    :math:`Z/\max(1,\bar\omega)`. Only an exact polar (or the crude
    :func:`~hdlcore.networks.polars.polar_upper_bound`) gives :math:`\bar\omega`; a lower bound
    never proves optimality. Used in Chapter 4.

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in neural network training, CVPR 2017
    (global optimality of local minima with a zero subnetwork, and the polar as the test).

    Examples
    --------
    >>> import hdlcore as hd, torch
    >>> A, Y = hd.two_spirals(30, rng=0)
    >>> net = hd.ParallelSubnetworks(2, 1, 12, hidden=(1,), rng=0, dtype=torch.float64)
    >>> cert = hd.certify_network(net, A, Y, lam=0.5)  # an untrained network
    >>> cert.polar_kind, cert.is_global
    ('exact', False)
    """
    func = "certify_network"
    prob = prepare_network(model, A, Y, lam, func, loss=loss, regularizer=regularizer)
    check_choice(polar, "polar", func, POLARS)
    if polar == "exact" and not exact_polar_applies(prob.model):
        raise param_error("polar", func, "'auto' or 'lower_bound': the exact polar needs one fully "
                          "connected hidden layer and 2-D inputs", polar)
    tol = check_scalar(tol, "tol", func, gt=0)
    num_starts = check_scalar(num_starts, "num_starts", func, kind="int", ge=1)
    steps = check_scalar(steps, "steps", func, kind="int", ge=0)
    num_directions = check_scalar(num_directions, "num_directions", func, kind="int", ge=0)
    gen = check_rng(rng, "rng", func)
    with _runtime.threads(prob.threads()):
        cert = certify(prob, polar=polar, tol=tol, num_starts=num_starts, steps=steps,
                       num_directions=num_directions, gen=gen)
    if cert.maximizer is not None:  # numpy in, numpy out; a tensor in, tensors on its device
        layers = [w.to(A.device) if is_tensor(A) else w.detach().cpu().numpy() for w in cert.maximizer]
        cert = dataclasses.replace(cert, maximizer=layers)
    return cert


def _stationarity(prob: NetworkProblem, g_w, active, kink_tol=1e-9) -> float:
    r"""Relative norm of the least element of :math:`\partial_W(\ell + \lambda\Theta)` (non-zero subnets).

    At a minimum of a ReLU network, first-layer hyperplanes typically pass through data points
    (a pre-activation exactly 0), where autograd's :math:`\psi'(0) = 0` is one element of the
    Clarke subdifferential :math:`[0, 1]`. Each such kink gets a multiplier
    :math:`\sigma\in[0,1]`, chosen by bounded least squares to make the residual smallest; deeper
    layers use :math:`\psi'(0) = 0`.
    """
    model, A, Y, lam, loss = prob.model, prob.A, prob.Y, prob.lam, prob.loss
    params = list(model.weights)
    K, r = len(params), model.num_subnets
    g_reg = network_regularizer_grad(model, prob.regularizer)
    R = [(g.detach() + lam * h) * active.reshape((-1,) + (1,) * (g.ndim - 1)).to(g.dtype)
         for g, h in zip(g_w, g_reg, strict=True)]
    den = sum(float(((lam * h)[active] ** 2).sum()) for h in g_reg)
    if K >= 2 and not model.conv:
        W1 = params[0]  # (r, d, h1)
        d, h1 = W1.shape[1], W1.shape[2]
        P = (A @ W1.detach().transpose(0, 1).reshape(d, r * h1))  # (N, r h1) pre-activations
        H1 = torch.relu(P).requires_grad_()
        delta = torch.autograd.grad(summed_loss(model.forward_from_first_hidden(H1), Y, loss), H1)[0]
        with torch.no_grad():
            scale = A.norm(dim=1)[:, None] * W1.detach().norm(dim=1).reshape(1, r * h1)
            live = active.repeat_interleave(h1)[None]
            kinks = ((P.abs() <= kink_tol * scale) & (scale > 0) & live).nonzero()  # (m, 2): n, i h1 + j
        m = kinks.shape[0]
        if 0 < m <= 4000:
            from scipy.optimize import lsq_linear

            n, col = kinks[:, 0], kinks[:, 1]
            i, j = col // h1, col % h1
            # sigma_e adds delta[n, col] * a_n to the gradient of W1[i, :, j]
            rows = ((i * d)[:, None] + torch.arange(d, device=A.device)[None]) * h1 + j[:, None]  # (m, d)
            B = torch.zeros(r * d * h1, m, dtype=P.dtype, device=A.device)
            B[rows, torch.arange(m, device=A.device)[:, None].expand(m, d)] = delta[n, col][:, None] * A[n]
            used = B.abs().sum(1) > 0
            Bu, b = B[used].cpu().numpy(), -R[0].reshape(-1)[used].cpu().numpy()
            on = (P[n, col] > 0).to(P.dtype).cpu().numpy()  # autograd used psi'(P) = 1 there already
            sigma = lsq_linear(Bu, b, bounds=(-on, 1 - on), method="bvls" if m <= 200 else "trf").x
            R[0] = R[0] + (B @ torch.as_tensor(sigma, dtype=B.dtype, device=B.device)).reshape(R[0].shape)
    num = sum(float((x**2).sum()) for x in R)
    if K == 1 and bool((~active).any()):  # a zero linear subnetwork: need ||grad|| <= lam
        num += float((g_w[0].detach()[~active].reshape(int((~active).sum()), -1).norm(dim=1) - lam)
                     .clamp_min(0).pow(2).sum())
    return (num / den) ** 0.5 if den > 0 else num**0.5


def _slot_objective(prob: NetworkProblem, subnet: list[torch.Tensor], scale: float) -> float:
    """f after appending ``scale * subnet`` (each layer multiplied by scale**(1/K))."""
    model = prob.model
    bigger = model.append([w * scale ** (1.0 / model.degree) for w in subnet])
    return objective_value(prob, bigger).objective


def certify(prob: NetworkProblem, *, polar: str = "auto", tol: float = 1e-3, num_starts: int = 64,
            steps: int = 200, num_directions: int = 8, gen: Any = None) -> NetworkCertificate:
    """:func:`certify_network` on a validated problem; the maximizer as tensors of the model's dtype."""
    model, A_t, Y_t = prob.model, prob.A, prob.Y
    lam, loss, regularizer = prob.lam, prob.loss, prob.regularizer
    K, q = model.degree, regularizer_degree(regularizer, model.degree)
    params = list(model.weights)
    X = model(A_t)
    value = summed_loss(X, Y_t, loss)
    grads = torch.autograd.grad(value, params + [X])  # loss gradient: weights, then the output
    Z = (-grads[-1] / lam).detach()  # (N, C)
    g_w = grads[:-1]
    with torch.no_grad():
        norms = model.layer_norms()
        theta = _theta(norms, regularizer)  # (r,)
        Theta, f = float(theta.sum()), float(value.detach()) + lam * float(theta.sum())
        inner = torch.einsum("rnc,nc->r", model.forward_each(A_t), Z)
        euler = float((inner - theta).abs().max() / max(1.0, float(theta.max())))
        active = (norms > 0).all(dim=0)
        inner_X = float((Z * X).sum())
    stationarity = _stationarity(prob, g_w, active)
    zero = np.nonzero((~active).cpu().numpy())[0]
    matched = K == q
    pol: NetworkPolarResult | None = None
    upper = bound = descent = slope = None
    if matched:
        pol = network_polar(model, A_t, Z, polar, num_starts, steps, gen)
        upper = pol.upper
        bound = lam * (Theta - inner_X) + max(f, 0.0) * max(upper - 1.0, 0.0)
        if loss == "squared":
            Zd = Z / max(1.0, upper)
            dual = lam * float((Y_t * Zd).sum()) - 0.5 * lam**2 * float((Zd**2).sum())
            bound = min(bound, f - dual)
        bound = max(bound, 0.0)
        if pol.value > 1 + tol:
            descent = add_at_best_scale(prob, pol.subnet)[2] - f
    # Zero-slot test: add tau * w (theta(w) = 1) for small tau, compare f.
    dirs = [] if pol is None else [pol.subnet]
    if num_directions:
        rand = type(model)(model.in_features, model.out_features, num_directions, model.hidden,
                           conv=model.conv or None, input_shape=model.input_shape, rng=gen,
                           dtype=params[0].dtype, device=params[0].device)
        for i in range(num_directions):
            dirs.append([w / w.norm() for w in rand.subnetwork(i)])
    if dirs:
        eps = 1e-6 * max(1.0, abs(f)) / lam
        slope = min((_slot_objective(prob, w, eps) - f) / eps for w in dirs)
    local_zero = bool(len(zero) > 0 and stationarity <= tol and (slope is None or slope >= -tol * lam))
    if pol is None or bound is None or upper is None:  # degrees differ: no polar
        is_global = None
        proves = "nothing about global optimality: " + degree_mismatch_message(K, q, regularizer)
        basis = "no polar: the regularizer is not of the network's degree"
    else:
        basis = pol.detail
        kind = pol.kind.replace("_", " ")
        if bound <= tol * max(abs(f), 1e-300):
            is_global = True
            proves = (f"global minimum, to within f - f* <= {bound:.3g} (relative {bound / abs(f):.2g} "
                      f"<= tol {tol:g}); polar {kind} {pol.value:.6g}, upper bound {upper:.6g}")
        elif pol.value > 1 + tol and descent is not None and descent < 0:
            is_global = False
            proves = (f"not a global minimum: polar {kind} {pol.value:.6g} > 1 + tol; adding the maximizing "
                      f"subnetwork at its best scale lowers the objective by {-descent:.3g}")
        else:
            is_global = None
            if pol.kind == "exact":
                proves = (f"no proof yet: exact polar {pol.value:.6g}, but the bound {bound:.3g} exceeds "
                          f"tol * f = {tol * abs(f):.3g} (train closer to a stationary point)")
            else:
                proves = (f"no proof: polar lower bound {pol.value:.6g} <= 1 + tol (no subnetwork that "
                          "decreases the objective found): evidence of global optimality, not a proof; "
                          f"proven upper bound {upper:.3g}")
    return NetworkCertificate(
        objective=f, loss=float(value.detach()), regularizer=Theta, lam=lam, degree_network=K,
        degree_regularizer=q, degrees_match=matched, polar=None if pol is None else pol.value,
        polar_kind="not_applicable" if pol is None else pol.kind, polar_upper=upper, bound=bound,
        is_global=is_global, descent=descent, proves=proves, basis=basis,
        maximizer=None if pol is None else pol.subnet, euler_residual=euler, stationarity=stationarity,
        zero_subnets=zero, zero_slot_slope=slope, local_min_with_zero=local_zero, tol=tol,
    )
