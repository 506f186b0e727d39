"""Positive homogeneity, measured: the degree of a network, a layer, an input map or a regularizer.

The theory of the book needs the network output and the regularizer to be positively homogeneous
*of the same degree* (Chapter 2). This module turns that hypothesis into a measurement on any torch
model or function of tensors:

- :func:`degree` scales a group of tensors by ``a > 0`` over several scales, fits ``p`` in
  ``f(a x) = a^p f(x)`` and reports the worst deviation, cross-checked by Euler's identity;
- :func:`euler_degree` is that independent estimate alone, ``<grad f(x), x> / f(x)`` by autograd;
- :func:`check_degrees` says whether a network and a regularizer have equal degrees, naming the
  mismatch when they do not;
- :func:`balanced_rescaling` moves along the rescaling symmetry of a bias-free ReLU network to the
  point where every layer has the same norm (the AM-GM equality case).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import Array
from .._validation import HypothesisWarning, check_array, check_devices, check_scalar
from .scaling import Problem, build_problem, directional_derivative, evaluate_scales

__all__ = ["DegreeResult", "DegreeCheck", "degree", "euler_degree", "check_degrees",
           "balanced_rescaling", "default_rtol", "DEFAULT_SCALES", "HALF_SCALES"]

#: Scales tried by default: irregular on purpose (a function that is homogeneous only at powers of
#: two, or only for a near 1, is caught), from 0.3 to 3.7.
DEFAULT_SCALES = (0.3, 0.55, 0.8, 1.3, 2.1, 3.7)
#: Default scales in float16 / bfloat16, whose narrow range cannot hold ``a^p f`` for a deep
#: network over :data:`DEFAULT_SCALES` (0.3^8 underflows to subnormals, 3.7^8 overflows).
HALF_SCALES = (0.8, 0.9, 1.12, 1.25)


@dataclass(frozen=True)
class DegreeResult:
    """The measured degree of positive homogeneity of ``f`` at one point (see :func:`degree`).

    Attributes
    ----------
    degree : float
        The degree ``p`` when ``f`` is homogeneous: the least-squares fit of
        ``log|f(a x)| - log|f(x)|`` against ``log a``, rounded to the nearest integer when that
        integer fits within ``rtol``. NaN when ``f`` is not homogeneous (see ``fitted_degree``).
    max_deviation : float
        ``max_a max_j |f_j(a x) - a^p f_j(x)| / (a^p max_j |f_j(x)|)``: signs included, relative to
        the largest entry of ``f(x)``, at ``fitted_degree`` or at its nearest integer when that
        integer fits within ``rtol``.
    homogeneous : bool
        ``max_deviation <= rtol`` and Euler's identity holds within ``rtol`` (when autograd gives it).
    verdict : str
        ``"homogeneous of degree 3"`` or ``"not homogeneous: ..."`` with the evidence.
    fitted_degree : float
        The least-squares ``p`` before rounding (also when ``f`` is not homogeneous).
    euler_degree : float
        ``<D, f> / <f, f>`` with ``D = d/da f(a x)|_{a=1} = <grad f(x), x>`` (autograd); NaN when
        autograd cannot give it (see ``notes``).
    euler_deviation : float
        ``max_j |D_j - p f_j(x)| / max_j |f_j(x)|``, Euler's identity at the reported ``p``.
    scales, deviations : tuple of float
        The scales ``a`` tried and the relative deviation at each.
    sign_changes : int
        Entries clearly non-zero in ``f(x)`` whose sign differs in some ``f(a x)``.
    rtol : float
        Tolerance used (default :func:`default_rtol` of the output's dtype).
    scaled : str
        What was scaled, in words.
    notes : tuple of str
        How randomness, batch statistics or a missing gradient were handled.
    """

    degree: float
    max_deviation: float
    homogeneous: bool
    verdict: str
    fitted_degree: float
    euler_degree: float
    euler_deviation: float
    scales: tuple[float, ...]
    deviations: tuple[float, ...]
    sign_changes: int
    rtol: float
    scaled: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DegreeCheck:
    """Whether a network and a regularizer are homogeneous of the same degree (:func:`check_degrees`)."""

    matched: bool
    network_degree: float
    regularizer_degree: float
    message: str
    network: DegreeResult
    regularizer: DegreeResult


def _fit(problem: Problem, scales: tuple[float, ...] | None, rtol: float | None,
         euler: bool) -> DegreeResult:
    extra = []
    if scales is None:
        import torch

        half = problem.dtype in (torch.float16, torch.bfloat16)
        scales = HALF_SCALES if half else DEFAULT_SCALES
        if half:
            extra.append(f"{problem.dtype} has a narrow range: scales narrowed to {HALF_SCALES}")
    F0, Fa = evaluate_scales(problem, scales)  # (n,) float64 numpy, (len(scales), n)
    notes = list(problem.notes) + extra
    dtype_eps = problem.eps
    tol = float(rtol) if rtol is not None else default_rtol(dtype_eps)
    what, func = problem.describe, problem.func
    peak = float(np.abs(F0).max())
    log_a = np.log(np.asarray(scales))
    if peak == 0.0:
        moved = np.abs(Fa).max(axis=1)
        if not moved.any():
            raise ValueError(
                f"The '{problem.point_name}' parameter of {func} must be a point where f is not "
                f"identically zero. Got f = 0 there and at every scale tried ({what}), so every "
                f"degree p fits and the degree is undefined instead.")
        a_bad = scales[int(np.argmax(moved))]
        verdict = f"not homogeneous: f(x) = 0 but f(a x) != 0 at a = {a_bad:g} ({what})"
        return DegreeResult(math.nan, math.inf, False, verdict, math.nan, math.nan, math.nan,
                            tuple(scales), tuple(math.inf if m else 0.0 for m in moved), 0, tol, what,
                            tuple(notes))
    clear = np.abs(F0) > 10 * tol * peak  # entries clearly non-zero: the fit uses these
    with np.errstate(divide="ignore"):
        ratio = np.log(np.abs(Fa[:, clear])) - np.log(np.abs(F0[clear]))  # (s, m)
    weights = np.broadcast_to(log_a[:, None], ratio.shape)
    ok = np.isfinite(ratio)
    p_fit = float((weights[ok] * ratio[ok]).sum() / (weights[ok] ** 2).sum()) if ok.any() else math.nan
    flips = int((np.sign(Fa[:, clear]) != np.sign(F0[clear])).any(axis=0).sum())

    def deviations(p: float) -> np.ndarray:
        scale = np.asarray(scales) ** p
        return np.abs(Fa - scale[:, None] * F0).max(axis=1) / (scale * peak)

    p, devs = p_fit, deviations(p_fit) if math.isfinite(p_fit) else np.full(len(scales), math.inf)
    if math.isfinite(p_fit) and round(p_fit) != p_fit:
        devs_int = deviations(round(p_fit))
        if devs_int.max() <= tol:
            p, devs = float(round(p_fit)), devs_int
    max_dev = float(devs.max())
    p_euler, e_dev = math.nan, math.nan
    if euler:
        D, why = directional_derivative(problem)
        if D is None:
            notes.append(f"Euler check unavailable: {why}")
        else:
            p_euler = float(D @ F0 / (F0 @ F0))
            e_dev = float(np.abs(D - p * F0).max() / peak) if math.isfinite(p) else math.inf
    scaling_ok = max_dev <= tol
    euler_ok = not math.isfinite(p_euler) or e_dev <= tol * max(1.0, abs(p))
    if scaling_ok and euler_ok:
        verdict = f"homogeneous of degree {p:.6g}"
    elif scaling_ok:
        verdict = (f"not homogeneous: f(a x) = a^{p:.6g} f(x) at the scales tried, but Euler's identity "
                   f"fails (<grad f(x), x> = {p_euler:.4g} f(x) in least squares; deviation {e_dev:.2g})")
    else:
        worst = int(np.argmax(devs))
        verdict = (f"not homogeneous: f(a x) differs from a^p f(x) by up to {max_dev:.2g} of max|f(x)| "
                   f"(at a = {scales[worst]:g}, best-fit p = {p_fit:.4g})")
        if flips:
            verdict += f"; {flips} entries change sign"
    verdict += "" if scaling_ok and euler_ok else f" [{what}]"
    homogeneous = scaling_ok and euler_ok
    return DegreeResult(p if homogeneous else math.nan, max_dev, homogeneous, verdict, p_fit, p_euler, e_dev,
                        tuple(float(a) for a in scales), tuple(float(d) for d in devs), flips, tol,
                        what, tuple(notes))


def default_rtol(eps: float) -> float:
    """Default tolerance for a dtype of machine epsilon ``eps``: ``2 eps^(2/3)``."""
    return 2.0 * eps ** (2.0 / 3.0)


def _check_scales(scales: Any, func: str) -> tuple[float, ...] | None:
    if scales is None:
        return None  # the default depends on the dtype: see _fit
    seq = [scales] if np.ndim(scales) == 0 else list(np.asarray(scales, dtype=object).ravel())
    values = tuple(check_scalar(a, "scales", func, gt=0) for a in seq)
    values = tuple(a for a in values if a != 1.0)
    if not values:
        raise ValueError(f"The 'scales' parameter of {func} must contain a scale a > 0 other than 1. "
                         f"Got {scales!r} instead.")
    return values


def degree(
    f: Callable[..., Any],
    params: Any = None,
    *,
    inputs: Array | Sequence[Array] | None = None,
    wrt: str = "params",
    argnums: int | Sequence[int] | None = None,
    powers: Sequence[float] | Mapping[str, float] | None = None,
    scales: Sequence[float] | None = None,
    rtol: float | None = None,
    euler: bool = True,
) -> DegreeResult:
    r"""Measure the degree ``p`` of positive homogeneity of ``f`` in a group of tensors.

    Parameters
    ----------
    f : callable or torch.nn.Module
        A function of tensors, called as ``f(*params)``, returning a tensor of any shape (a scalar
        for a regularizer); or a module, called as ``f(inputs)`` (``f(*inputs)`` for a tuple).
    params : tuple of tensors, or (for a module) parameters, submodules or parameter names
        For a function: its arguments, all scaled jointly (or those in ``argnums``); numpy arrays
        are passed to ``f`` as numpy arrays (then no Euler check). For a module: which parameters
        to scale, as a list of parameters, submodules or names (``[net[0]]`` for one layer) or a
        filter on names (``lambda name: not name.endswith("bias")`` for the weights alone);
        default all of them.
    inputs : tensor or tuple of tensors
        The module's input ``A`` (required for a module; numpy is converted to the module's dtype).
    wrt : {"params", "inputs", "both"}
        For a module: scale its parameters, its input ``A``, or both.
    argnums : int or sequence of int, optional
        For a function: the positions of ``params`` to scale (default all).
    powers : sequence of float or mapping name -> float, optional
        Scale tensor ``j`` by ``a ** powers[j]`` instead of ``a`` (weighted homogeneity, e.g. the
        bias of layer ``k`` by ``a^k``); aligned with the scaled tensors, or keyed by parameter name.
    scales : sequence of float, optional
        The scales ``a > 0`` tried (default :data:`DEFAULT_SCALES`, :data:`HALF_SCALES` in float16
        and bfloat16; ``a = 1`` is dropped).
    rtol : float, optional
        Tolerance on the relative deviation; default ``2 eps^(2/3)`` of the output's dtype
        (7.3e-11 in float64, 4.8e-5 in float32, 2e-2 in float16, and in float32 on CUDA when
        TF32 is allowed): far above rounding errors of deep networks, far below the effect of a bias.
    euler : bool
        Also check Euler's identity by autograd (one forward and a double backward).

    Returns
    -------
    DegreeResult

    Notes
    -----
    ``f`` is positively homogeneous of degree ``p`` in ``x`` when

    .. math:: f(a x) = a^p f(x) \quad \text{for all } a > 0,

    entrywise and with signs. A differentiable such ``f`` satisfies Euler's identity
    :math:`\langle \nabla f(x), x\rangle = p f(x)`, computed here as the derivative of
    :math:`a \mapsto f(a x)` at :math:`a = 1` (:func:`euler_degree`). Both are measured at one
    point, over finitely many scales, to a tolerance: a pass is evidence, a failure is a proof
    (up to rounding). Module parameters and buffers are never modified: evaluations go through
    :func:`torch.func.functional_call` with copies of the buffers (a batch norm in training mode
    uses batch statistics and its running statistics stay as they were), and every evaluation
    sees the same random numbers (dropout masks are held fixed), the caller's generator state
    being restored afterwards. Used in Chapters 2 and 5.

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in neural network training, CVPR 2017.

    Examples
    --------
    >>> import torch
    >>> U, V = torch.randn(5, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    >>> degree(lambda U, V: U @ V.T, (U, V)).degree
    2.0
    >>> degree(lambda U, V: U @ V.T, (U, V), argnums=0).verdict
    'homogeneous of degree 1'
    >>> degree(torch.sigmoid, (U,)).homogeneous
    False
    """
    problem = build_problem(f, params, inputs=inputs, wrt=wrt, argnums=argnums, powers=powers,
                            func="degree", f_name="f")
    return _fit(problem, _check_scales(scales, "degree"), _check_rtol(rtol, "degree"), euler)


def _check_rtol(rtol: Any, func: str) -> float | None:
    return None if rtol is None else check_scalar(rtol, "rtol", func, gt=0)


def euler_degree(
    f: Callable[..., Any],
    params: Any = None,
    *,
    inputs: Array | Sequence[Array] | None = None,
    wrt: str = "params",
    argnums: int | Sequence[int] | None = None,
    powers: Sequence[float] | Mapping[str, float] | None = None,
) -> float:
    r"""The degree given by Euler's identity, :math:`\langle D, f\rangle / \langle f, f\rangle`.

    ``D = <grad f(x), x> = d/da f(a x)|_{a=1}`` is computed by autograd at the point alone, so this
    is an estimate independent of the scaling fit of :func:`degree` (same arguments). Returns NaN
    when autograd cannot differentiate ``f`` (numpy code, ``.item()``, ``no_grad``); raises when
    ``f`` is identically zero at the point.

    Notes
    -----
    For ``f`` positively homogeneous of degree ``p`` and differentiable at ``x``,

    .. math:: \sum_j \langle \nabla_{x_j} f(x), x_j\rangle = p\, f(x),

    entrywise for a tensor-valued ``f``. Used in Chapter 2.

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in tensor factorization, deep learning, and
    beyond, arXiv:1506.07540, 2015.

    Examples
    --------
    >>> import torch
    >>> W = torch.randn(3, 4, dtype=torch.float64)
    >>> round(euler_degree(lambda W: W.norm() ** 3, (W,)), 10)
    3.0
    """
    problem = build_problem(f, params, inputs=inputs, wrt=wrt, argnums=argnums, powers=powers,
                            func="euler_degree", f_name="f")
    F0, _ = evaluate_scales(problem, ())
    if not np.abs(F0).max() > 0:
        raise ValueError(f"The '{problem.point_name}' parameter of euler_degree must be a point where "
                         f"f is not identically zero. Got f = 0 there ({problem.describe}): the degree "
                         "is undefined instead.")
    D, _ = directional_derivative(problem)
    return math.nan if D is None else float(D @ F0 / (F0 @ F0))


def check_degrees(
    network: Callable[..., Any],
    regularizer: Callable[..., Any],
    params: Any = None,
    *,
    inputs: Array | Sequence[Array] | None = None,
    scales: Sequence[float] | None = None,
    rtol: float | None = None,
    warn: bool = False,
) -> DegreeCheck:
    """Check the theorem's hypothesis: network and regularizer homogeneous of the *same* degree.

    Parameters
    ----------
    network : callable or torch.nn.Module
        A function of ``params`` (``network(*params)``), or a module evaluated at ``inputs``.
    regularizer : callable
        ``regularizer(*params)`` for a function, ``regularizer(module)`` for a module; it must
        return a scalar. A ``regularizer(module)`` must read the weights through the module
        (``module.parameters()``, ``module[0].weight``), not through tensors captured beforehand,
        which are not scaled.
    params : tuple of tensors, or (for a module) parameters / submodules / names
        What is scaled, jointly for both (for a module: default all its parameters).
    inputs : tensor or tuple of tensors
        The module's input (modules only).
    scales, rtol
        As in :func:`degree`.
    warn : bool
        Also emit a :class:`~hdlcore.HypothesisWarning` carrying the message when the degrees differ.

    Returns
    -------
    DegreeCheck
        ``matched``, both degrees, a ``message`` such as ``"hypothesis fails: network of degree 3,
        regularizer of degree 2"``, and both :class:`DegreeResult`.

    Notes
    -----
    The global-optimality theorem asks for :math:`\\Phi(aW) = a^p \\Phi(W)` and
    :math:`\\Theta(aW) = a^p \\Theta(W)` with the same ``p``: with a regularizer of lower degree every
    zero subnetwork is a local minimum along the path that grows it, and the certificate fails
    (Chapter 2 shows it numerically). Used in Chapters 2 and 5.

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in neural network training, CVPR 2017.

    Examples
    --------
    >>> import torch
    >>> U, V = torch.randn(5, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    >>> check_degrees(lambda U, V: U @ V.T, lambda U, V: U.norm() * V.norm(), (U, V)).matched
    True
    >>> check_degrees(lambda U, V: U @ V.T, lambda U, V: U.norm(), (U, V)).message
    'hypothesis fails: network of degree 2, regularizer of degree 1'
    """
    func = "check_degrees"
    scales, rtol = _check_scales(scales, func), _check_rtol(rtol, func)
    if not callable(regularizer):
        raise TypeError(f"The 'regularizer' parameter of {func} must be a callable returning a scalar. "
                        f"Got {regularizer!r} instead.")
    net = build_problem(network, params, inputs=inputs, func=func, f_name="network")
    reg = build_problem(network, params, inputs=inputs, func=func, f_name="network",
                        regularizer=regularizer)
    net_result, reg_result = _fit(net, scales, rtol, True), _fit(reg, scales, rtol, True)
    pn, pr = net_result.degree, reg_result.degree
    if not net_result.homogeneous or not reg_result.homogeneous:
        parts = [f"the {name} is {r.verdict}" for name, r in (("network", net_result),
                                                             ("regularizer", reg_result))
                 if not r.homogeneous]
        message, matched = "hypothesis fails: " + "; ".join(parts), False
    else:
        tol = max(1e-6, math.sqrt(max(net_result.rtol, reg_result.rtol)))
        matched = abs(pn - pr) <= tol * max(1.0, abs(pn))
        message = (f"hypothesis holds: network and regularizer are both homogeneous of degree {pn:.6g}"
                   if matched else
                   f"hypothesis fails: network of degree {pn:.6g}, regularizer of degree {pr:.6g}")
    if warn and not matched:
        warnings.warn(message, HypothesisWarning, stacklevel=2)
    return DegreeCheck(matched, pn, pr, message, net_result, reg_result)


def balanced_rescaling(weights: Sequence[Array]) -> list[Array]:
    r"""Rescale layers ``W^k -> c_k W^k`` (``c_k > 0``, ``prod_k c_k = 1``) to equal norms.

    A bias-free ReLU network is unchanged by such a rescaling (each layer is homogeneous of degree
    1), and so is :math:`\prod_k \lVert W^k\rVert`; the balanced sum
    :math:`\frac1K\sum_k \lVert W^k\rVert^K` is not, and is smallest, equal to the product (AM-GM),
    exactly at the rescaling returned here, where every layer has norm
    :math:`(\prod_k \lVert W^k\rVert)^{1/K}` (Frobenius norms). Same array type out as in.

    Notes
    -----
    .. math:: \min_{c > 0,\ \prod_k c_k = 1}\ \frac1K \sum_k \lVert c_k W^k\rVert^K
              = \prod_k \lVert W^k\rVert.

    Used in Chapter 2.

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in neural network training, CVPR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> Ws = balanced_rescaling([np.eye(2), 4 * np.eye(2)])
    >>> [round(float(np.linalg.norm(W)), 6) for W in Ws]
    [2.828427, 2.828427]
    """
    func = "balanced_rescaling"
    if isinstance(weights, str) or not isinstance(weights, Sequence) or len(weights) == 0:
        raise TypeError(f"The 'weights' parameter of {func} must be a non-empty list of arrays. "
                        f"Got {weights!r:.80} instead.")
    check_devices(func, {"weights": list(weights)})
    Ws = [check_array(W, "weights", func, ndim=None) for W in weights]
    norms = [float(W.detach().double().norm()) if hasattr(W, "detach") else float(np.linalg.norm(W))
             for W in Ws]
    if min(norms) == 0.0:
        raise ValueError(f"The 'weights' parameter of {func} must have no zero layer (a zero layer "
                         f"cannot be rescaled to a positive norm). Got layer norms {norms} instead.")
    target = math.exp(sum(math.log(n) for n in norms) / len(norms))  # geometric mean
    return [W * (target / n) for W, n in zip(Ws, norms, strict=True)]
