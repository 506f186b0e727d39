"""Dropout for matrix factorization: the expected loss, three ways.

Chapter 5 (Dropout analysis). Dropping the columns of a factorization ``X = U V^T`` with
i.i.d. Bernoulli masks (retain probability ``keep``, written :math:`\\rho` in the book) and
rescaling by :math:`1/\\rho` is, in expectation, the factorization problem with the regularizer
:math:`\\lambda \\sum_k \\|u_k\\|^2 \\|v_k\\|^2`, :math:`\\lambda = (1 - \\rho)/\\rho`. This module
computes that expectation three ways: closed form (:func:`dropout_risk`), exact enumeration of
the :math:`2^r` masks (:func:`dropout_risk_exact`) and Monte Carlo with its standard error
(:func:`dropout_risk_mc`). The regularizer it induces on ``X`` and the global optimum are in
:mod:`hdlcore.dropout.regularizer`, training with real masks in :mod:`hdlcore.dropout.training`.

Loss convention: :math:`\\|Y - X\\|_F^2`, without a factor 1/2, as in the expectation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import as_tensor, is_tensor
from .._validation import check_array, check_scalar, param_error

__all__ = [
    "MonteCarloEstimate",
    "dropout_lambda",
    "keep_schedule",
    "column_products",
    "dropout_penalty",
    "dropout_risk",
    "dropout_risk_exact",
    "dropout_risk_mc",
    "duplicate_columns",
]

MAX_EXACT_BITS = 20  # exact enumeration visits 2**bits masks


@dataclass(frozen=True)
class MonteCarloEstimate:
    """A Monte Carlo mean with its standard error (``std / sqrt(num_samples)``)."""

    mean: float
    stderr: float
    num_samples: int

    def z_score(self, value: float) -> float:
        """How many standard errors the estimate lies from ``value``: ``(mean - value) / stderr``."""
        if self.stderr == 0:
            return 0.0 if self.mean == value else math.copysign(math.inf, self.mean - value)
        return (self.mean - value) / self.stderr


# --------------------------------------------------------------------------- validation helpers
def _keep(keep: Any, func: str) -> float:
    return check_scalar(keep, "keep", func, gt=0, le=1)


def _tensors(func: str, **arrays: Any) -> tuple[list[Any], Any]:
    """Validate 2-D arrays, convert them to torch on one device/dtype; return (tensors, back)."""
    import torch

    checked = {name: check_array(a, name, func, ndim=2) for name, a in arrays.items()}
    kinds = {name: is_tensor(a) for name, a in checked.items()}
    first = next(iter(checked))
    if len(set(kinds.values())) > 1:
        odd = next(n for n, k in kinds.items() if k != kinds[first])
        want = "a torch tensor" if kinds[first] else "a numpy array"
        raise param_error(odd, func, f"{want} (like '{first}')", checked[odd], TypeError)
    if kinds[first]:
        device = checked[first].device
        dtype = checked[first].dtype
        for a in checked.values():
            dtype = torch.promote_types(dtype, a.dtype)
    else:
        device = None
        dtype = {np.dtype(np.float32): torch.float32}.get(
            np.result_type(*[a.dtype for a in checked.values()]), torch.float64)
    out, back = [], None
    for a in checked.values():
        t, back = as_tensor(a, dtype=dtype, device=device)
        out.append(t)
    return out, back


def _factors(func: str, U: Any, V: Any, Y: Any = None) -> tuple[list[Any], Any]:
    arrays = {"Y": Y, "U": U, "V": V} if Y is not None else {"U": U, "V": V}
    tensors, back = _tensors(func, **arrays)
    *rest, U_t, V_t = tensors
    if U_t.shape[1] != V_t.shape[1]:
        raise param_error("V", func, f"an array with {U_t.shape[1]} columns, as many as 'U'", V)
    if rest:
        m, n = rest[0].shape
        if U_t.shape[0] != m:
            raise param_error("U", func, f"an array with {m} rows, as many as 'Y'", U)
        if V_t.shape[0] != n:
            raise param_error("V", func, f"an array with {n} rows, as many columns as 'Y' has", V)
    return tensors, back


def _scalar_out(t: Any, back: Any) -> Any:
    return back(t)  # numpy callers get a Python float, torch callers a 0-dim tensor


# --------------------------------------------------------------------------- the expectation
def dropout_lambda(keep: float) -> float:
    """The regularization weight of dropout with retain probability ``keep``: ``(1 - keep) / keep``.

    In PyTorch's convention (``nn.Dropout(p)``, ``p`` the DROP probability, survivors scaled by
    ``1 / (1 - p)``) the same weight is ``p / (1 - p)``. Used in Chapter 5.

    Examples
    --------
    >>> dropout_lambda(0.5), dropout_lambda(0.75)
    (1.0, 0.3333333333333333)
    """
    keep = _keep(keep, "dropout_lambda")
    return (1.0 - keep) / keep


def keep_schedule(d: int, beta: float) -> float:
    """Retain probability ``beta / (beta + d)`` for a factorization of size ``d``.

    It makes :math:`\\lambda(d)/d = 1/\\beta` constant, so the regularizer induced on ``X``,
    :math:`(\\lambda/d)\\|X\\|_*^2 = \\|X\\|_*^2/\\beta`, and the global optimum no longer depend on
    ``d`` (for ``d`` at least the optimum's rank). The drop rate ``d / (beta + d)`` grows with ``d``.
    Used in Chapter 5.

    Examples
    --------
    >>> keep_schedule(2, 2.0), dropout_lambda(keep_schedule(8, 2.0)) / 8
    (0.5, 0.5)
    """
    d = check_scalar(d, "d", "keep_schedule", kind="int", ge=1)
    beta = check_scalar(beta, "beta", "keep_schedule", gt=0)
    return beta / (beta + d)


def column_products(U: Any, V: Any) -> Any:
    """The products ``|u_k| |v_k|`` of the columns' norms, a vector of length ``r``. Chapter 5.

    Examples
    --------
    >>> column_products(np.array([[3.0, 0.0]]), np.array([[1.0, 2.0]]))
    array([3., 0.])
    """
    (U_t, V_t), back = _factors("column_products", U, V)
    return back(U_t.norm(dim=0) * V_t.norm(dim=0))  # (r,)


def dropout_penalty(U: Any, V: Any) -> Any:
    """:math:`\\sum_k \\|u_k\\|^2 \\|v_k\\|^2`, the regularizer dropout adds (before its weight).

    It is also the squared :math:`\\ell_2` path norm of the linear network with input weights
    ``V`` and output weights ``U`` (Chapter 5), and has degree 4 in ``(U, V)`` where ``U V^T``
    has degree 2.

    Examples
    --------
    >>> dropout_penalty(np.array([[1.0, 2.0]]), np.array([[3.0, 1.0]]))
    13.0
    """
    (U_t, V_t), back = _factors("dropout_penalty", U, V)
    return _scalar_out(((U_t * U_t).sum(0) * (V_t * V_t).sum(0)).sum(), back)


def dropout_risk(Y: Any, U: Any, V: Any, keep: float) -> Any:
    """Closed-form expected dropout loss of the factorization ``(U, V)``.

    Parameters
    ----------
    Y : array (m, n)
        The data.
    U, V : arrays (m, r), (n, r)
        The factors; column ``k`` of both is dropped together.
    keep : float in (0, 1]
        The retain probability :math:`\\rho` (PyTorch's drop probability is ``p = 1 - keep``).

    Returns
    -------
    float (numpy input) or 0-dim tensor (torch input)

    Notes
    -----
    With :math:`r_k \\sim \\mathrm{Bernoulli}(\\rho)` i.i.d.,

    .. math::

        \\mathbb{E}_r \\Big\\| Y - \\tfrac{1}{\\rho} U \\operatorname{diag}(r) V^\\top \\Big\\|_F^2
        = \\|Y - UV^\\top\\|_F^2 + \\lambda \\sum_{k=1}^r \\|u_k\\|^2 \\|v_k\\|^2,
        \\qquad \\lambda = \\frac{1-\\rho}{\\rho} = \\frac{p}{1-p}.

    Checked against :func:`dropout_risk_exact` and :func:`dropout_risk_mc`. Used in Chapter 5.

    References
    ----------
    J. Cavazza, P. Morerio, B. Haeffele, C. Lane, V. Murino, R. Vidal, "Dropout as a low-rank
    regularizer for matrix factorization", AISTATS 2018.

    Examples
    --------
    >>> Y = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> dropout_risk(Y, np.eye(2), np.eye(2), keep=0.5)
    2.0
    """
    func = "dropout_risk"
    keep = _keep(keep, func)
    (Y_t, U_t, V_t), back = _factors(func, U, V, Y)
    lam = (1.0 - keep) / keep
    R = Y_t - U_t @ V_t.T  # (m, n)
    pen = ((U_t * U_t).sum(0) * (V_t * V_t).sum(0)).sum()
    return _scalar_out((R * R).sum() + lam * pen, back)


def _all_masks(bits: int, like: Any) -> Any:
    import torch

    codes = torch.arange(2**bits, device=like.device)
    return ((codes[:, None] >> torch.arange(bits, device=like.device)) & 1).to(like.dtype)  # (2^b, b)


def _mask_weights(masks: Any, keep: float) -> Any:
    on = masks.sum(1)
    bits = masks.shape[1]
    return keep**on * (1.0 - keep) ** (bits - on)  # probability of each mask


def dropout_risk_exact(Y: Any, U: Any, V: Any, keep: float, *, chunk: int = 4096) -> Any:
    """Expected dropout loss by exact enumeration of all :math:`2^r` column masks (``r <= 20``).

    An oracle for :func:`dropout_risk`: it forms :math:`Y - U\\operatorname{diag}(r)V^\\top/\\rho`
    for every mask and weighs its squared norm by the mask's probability. Chapter 5.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> Y, U, V = rng.normal(size=(3, 4)), rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    >>> bool(np.isclose(dropout_risk_exact(Y, U, V, 0.7), dropout_risk(Y, U, V, 0.7)))
    True
    """
    func = "dropout_risk_exact"
    keep = _keep(keep, func)
    (Y_t, U_t, V_t), back = _factors(func, U, V, Y)
    r = U_t.shape[1]
    if r > MAX_EXACT_BITS:
        raise param_error("U", func, f"an array with at most {MAX_EXACT_BITS} columns "
                          f"(2^{MAX_EXACT_BITS} masks)", U)
    masks = _all_masks(r, U_t)  # (2^r, r)
    weights = _mask_weights(masks, keep)
    total = Y_t.new_zeros(())
    for start in range(0, masks.shape[0], chunk):
        M = masks[start:start + chunk]  # (b, r)
        Xs = (U_t[None] * M[:, None, :] / keep) @ V_t.T  # (b, m, r) @ (r, n) -> (b, m, n)
        losses = ((Y_t[None] - Xs) ** 2).sum((1, 2))  # (b,)
        total = total + (weights[start:start + chunk] * losses).sum()
    return _scalar_out(total, back)


def _torch_generator(rng: Any, func: str, device: Any) -> Any:
    """A torch.Generator on ``device`` from a numpy Generator, an int seed, None or a torch.Generator."""
    import torch

    if isinstance(rng, torch.Generator):
        if torch.device(rng.device).type != torch.device(device).type:
            raise param_error("rng", func, f"a torch.Generator on the data's device ({device})", rng)
        return rng
    from .._validation import check_rng

    seed = int(check_rng(rng, "rng", func).integers(2**62))
    return torch.Generator(device=device).manual_seed(seed)


def dropout_risk_mc(
    Y: Any, U: Any, V: Any, keep: float, *, num_samples: int = 10_000, rng: Any = None,
    chunk: int = 4096,
) -> MonteCarloEstimate:
    """Monte Carlo estimate of the expected dropout loss, with its standard error.

    Draws ``num_samples`` masks :math:`r \\sim \\mathrm{Bernoulli}(\\rho)^r`, averages
    :math:`\\|Y - U\\operatorname{diag}(r)V^\\top/\\rho\\|_F^2` and reports the standard error
    ``std / sqrt(num_samples)``. ``rng``: a numpy Generator, an int seed, None, or a
    ``torch.Generator`` on the data's device. Chapter 5.

    Examples
    --------
    >>> Y = np.eye(3); U = V = np.eye(3)[:, :2]
    >>> est = dropout_risk_mc(Y, U, V, 0.5, num_samples=4000, rng=0)
    >>> abs(est.z_score(dropout_risk(Y, U, V, 0.5))) < 5
    True
    """
    import torch

    func = "dropout_risk_mc"
    keep = _keep(keep, func)
    num_samples = check_scalar(num_samples, "num_samples", func, kind="int", ge=2)
    (Y_t, U_t, V_t), _ = _factors(func, U, V, Y)
    gen = _torch_generator(rng, func, Y_t.device)
    r = U_t.shape[1]
    losses = []
    for start in range(0, num_samples, chunk):
        b = min(chunk, num_samples - start)
        probs = torch.full((b, r), keep, dtype=U_t.dtype, device=U_t.device)
        M = torch.bernoulli(probs, generator=gen)  # (b, r)
        Xs = (U_t[None] * M[:, None, :] / keep) @ V_t.T  # (b, m, n)
        losses.append(((Y_t[None] - Xs) ** 2).sum((1, 2)).double())
    return _estimate(torch.cat(losses))


def _estimate(losses: Any) -> MonteCarloEstimate:
    n = losses.numel()
    return MonteCarloEstimate(mean=float(losses.mean()), stderr=float(losses.std() / math.sqrt(n)),
                              num_samples=int(n))


# --------------------------------------------------------------------------- doubling
def duplicate_columns(U: Any, V: Any, copies: int = 2) -> tuple[Any, Any]:
    """Repeat every column ``copies`` times, scaled by ``1/sqrt(copies)``: same ``U V^T``.

    The dropout penalty :func:`dropout_penalty` is divided by ``copies``: with a fixed retain
    probability, a larger factorization is regularized less (Chapter 5).

    Examples
    --------
    >>> U, V = np.array([[1.0, 2.0]]), np.array([[3.0, 1.0]])
    >>> U2, V2 = duplicate_columns(U, V)
    >>> U2.shape, bool(np.allclose(U2 @ V2.T, U @ V.T)), round(dropout_penalty(U2, V2), 12)
    ((1, 4), True, 6.5)
    """
    func = "duplicate_columns"
    copies = check_scalar(copies, "copies", func, kind="int", ge=1)
    (U_t, V_t), back = _factors(func, U, V)
    s = 1.0 / math.sqrt(copies)
    return back(U_t.repeat(1, copies) * s), back(V_t.repeat(1, copies) * s)
