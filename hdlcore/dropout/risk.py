"""Dropout for matrix factorization: the expected loss, three ways, by one estimator for every scheme.

Chapter 5 (Dropout analysis). Dropping the columns of a factorization ``X = U V^T`` with
i.i.d. Bernoulli masks (retain probability ``keep``, written :math:`\\rho` in the book) and
rescaling by :math:`1/\\rho` is, in expectation, the factorization problem with the regularizer
:math:`\\lambda \\sum_k \\|u_k\\|^2 \\|v_k\\|^2`, :math:`\\lambda = (1 - \\rho)/\\rho`. This module
computes that expectation three ways: closed form (:func:`dropout_risk`), exact enumeration of
the :math:`2^r` masks (:func:`dropout_risk_exact`) and Monte Carlo with its standard error
(:func:`dropout_risk_mc`).

The three are written once, for every masking scheme of :mod:`hdlcore.dropout.masks`
(``expected_risk``, ``expected_risk_exact``, ``expected_risk_mc`` on a validated ``Masked``
problem): dropout is the scheme ``"units"``, and the DropConnect functions of
:mod:`hdlcore.dropout.dropconnect` are the other schemes. The regularizer dropout induces on
``X`` and the global optimum are in :mod:`hdlcore.dropout.regularizer`, training with real
masks in :mod:`hdlcore.dropout.training`.

Loss convention: :math:`\\|Y - X\\|_F^2`, without a factor 1/2, as in the expectation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .._runtime import auto_threads, threads
from .._validation import check_choice, check_scalar, param_error
from ._inputs import as_tensors, check_fits, check_keep, check_shapes, torch_generator
from .masks import (
    MAX_EXACT_BITS,
    SCHEMES,
    all_masks,
    dropconnect_output,
    mask_bits,
    mask_probabilities,
    random_masks,
    scheme_penalty,
)

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


# --------------------------------------------------------------------------- the one estimator
@dataclass(frozen=True)
class Masked:
    """A validated masking problem: tensors of one dtype on one device, the scheme and ``keep``.

    ``Y`` is None for a penalty alone; ``A`` is None for matrix factorization. ``back`` turns a
    result tensor into the caller's array type and dtype.
    """

    Y: Any
    U: Any
    V: Any
    A: Any
    keep: float
    scheme: str
    back: Any

    @property
    def bits(self) -> int:
        """Mask bits per draw (per sample of a network)."""
        (m, r), n = self.U.shape, self.V.shape[0]
        return mask_bits(self.scheme, m, r, n, self.A is not None)

    @property
    def draw_shape(self) -> tuple[int, ...]:
        """Shape of one draw of masks: ``(bits,)``, or ``(N, bits)`` for a network."""
        return (self.bits,) if self.A is None else (self.A.shape[0], self.bits)

    @property
    def output_size(self) -> int:
        """Entries of the model's output (``m n``, or ``N c`` for a network)."""
        return self.U.shape[0] * (self.V.shape[0] if self.A is None else self.A.shape[0])

    def threads(self, masks: int = 1) -> Any:
        """The library's thread policy for ``masks`` masked models at a time (a context manager):
        one CPU thread when the work is small (:mod:`hdlcore._runtime`'s ``"dropout"`` size)."""
        work = self.output_size * self.U.shape[1] * masks
        return threads(auto_threads("dropout", work, self.U.device.type))


def setup(func: str, Y: Any, U: Any, V: Any, keep: Any, scheme: str = "units", A: Any = None) -> Masked:
    """Validate the arguments of a public function of the estimator, once (``Y`` may be None)."""
    keep = check_keep(keep, func)
    check_choice(scheme, "scheme", func, SCHEMES)
    if A is None and scheme == "A":
        raise param_error("A", func, "an input matrix (scheme 'A' drops the inputs of a network)", A)
    arrays = {"Y": Y, "U": U, "V": V, "A": A}
    arrays = {k: a for k, a in arrays.items() if a is not None}
    tensors, back = as_tensors(func, **arrays)
    t = dict(zip(arrays, tensors, strict=True))
    check_shapes(func, t["U"], t["V"], t.get("Y"), t.get("A"), arrays)
    return Masked(t.get("Y"), t["U"], t["V"], t.get("A"), keep, scheme, back)


def _model(p: Masked) -> Any:
    return p.U @ p.V.T if p.A is None else p.A @ p.V @ p.U.T  # the mean model: (m, n) or (N, c)


def expected_risk(p: Masked) -> Any:
    """Closed form: the mean model's squared loss plus the scheme's penalty (a 0-dim tensor)."""
    with p.threads():
        return ((p.Y - _model(p)) ** 2).sum() + scheme_penalty(p.U, p.V, p.A, p.keep, p.scheme)


def _check_chunk(func: str, chunk: Any, p: Masked, batches: int) -> int:
    """``chunk`` masks are evaluated at once: an int >= 1 whose arrays fit in memory."""
    chunk = check_scalar(chunk, "chunk", func, kind="int", ge=1)
    b = min(chunk, batches)
    per_mask = p.output_size + math.prod(p.draw_shape) + p.U.numel() + p.V.numel()
    check_fits(func, "chunk", chunk, 3.0 * b * per_mask * p.U.element_size())
    return chunk


def expected_risk_exact(p: Masked, func: str, chunk: Any) -> Any:
    """Exact enumeration of every mask (per sample of a network), weighted by its probability."""
    bits = p.bits
    if bits > MAX_EXACT_BITS:
        if p.scheme == "units":
            raise param_error("U", func, f"an array with at most {MAX_EXACT_BITS} columns "
                                         f"(2^{MAX_EXACT_BITS} masks)", p.U)
        raise param_error("scheme", func, f"a scheme with at most {MAX_EXACT_BITS} mask bits per "
                                          f"sample on these shapes (it has {bits})", p.scheme)
    chunk = _check_chunk(func, chunk, p, 2**bits)
    with p.threads(min(chunk, 2**bits)):
        masks = all_masks(bits, p.U)  # (2^bits, bits)
        weights = mask_probabilities(masks, p.keep)
        # a network's loss is a sum over samples with independent masks: enumerate each sample's
        samples = [None] if p.A is None else range(p.A.shape[0])
        total = p.U.new_zeros(())
        for s in samples:
            for start in range(0, masks.shape[0], chunk):
                M = masks[start:start + chunk]  # (b, bits)
                if s is None:
                    Xs = dropconnect_output(p.U, p.V, M, p.keep, p.scheme)  # (b, m, n)
                    target = p.Y[None]
                else:
                    Xs = dropconnect_output(p.U, p.V, M[:, None, :], p.keep, p.scheme,
                                            p.A[s:s + 1])  # (b, 1, c)
                    target = p.Y[s:s + 1][None]
                losses = ((target - Xs) ** 2).flatten(1).sum(1)  # (b,)
                total = total + (weights[start:start + chunk] * losses).sum()
    return total


def expected_risk_mc(p: Masked, func: str, num_samples: Any, rng: Any, chunk: Any) -> MonteCarloEstimate:
    """Monte Carlo over ``num_samples`` fresh draws of masks, with the standard error."""
    import torch

    num_samples = check_scalar(num_samples, "num_samples", func, kind="int", ge=2)
    chunk = _check_chunk(func, chunk, p, num_samples)
    gen = torch_generator(rng, func, p.U.device)
    chunks: list[torch.Tensor] = []
    with p.threads(min(chunk, num_samples)):
        for start in range(0, num_samples, chunk):
            b = min(chunk, num_samples - start)
            M = random_masks((b, *p.draw_shape), p.keep, gen, p.U)  # (b, bits) or (b, N, bits)
            Xs = dropconnect_output(p.U, p.V, M, p.keep, p.scheme, p.A)  # (b, m, n) or (b, N, c)
            chunks.append(((p.Y[None] - Xs) ** 2).flatten(1).sum(1).double())
    losses = torch.cat(chunks)
    n = losses.numel()
    return MonteCarloEstimate(mean=float(losses.mean()), stderr=float(losses.std() / math.sqrt(n)),
                              num_samples=int(n))


def _factors(func: str, U: Any, V: Any) -> tuple[Any, Any, Any]:
    (U_t, V_t), back = as_tensors(func, U=U, V=V)
    check_shapes(func, U_t, V_t, originals={"U": U, "V": V})
    return U_t, V_t, back


# --------------------------------------------------------------------------- dropout
def dropout_lambda(keep: float) -> float:
    """The regularization weight of dropout with retain probability ``keep``: ``(1 - keep) / keep``.

    In PyTorch's convention (``nn.Dropout(p)``, ``p`` the DROP probability, survivors scaled by
    ``1 / (1 - p)``) the same weight is ``p / (1 - p)``. Used in Chapter 5.

    Examples
    --------
    >>> dropout_lambda(0.5), dropout_lambda(0.75)
    (1.0, 0.3333333333333333)
    """
    keep = check_keep(keep, "dropout_lambda")
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
    >>> import numpy as np
    >>> column_products(np.array([[3.0, 0.0]]), np.array([[1.0, 2.0]]))
    array([3., 0.])
    """
    U_t, V_t, back = _factors("column_products", U, V)
    return back(U_t.norm(dim=0) * V_t.norm(dim=0))  # (r,)


def dropout_penalty(U: Any, V: Any) -> Any:
    """:math:`\\sum_k \\|u_k\\|^2 \\|v_k\\|^2`, the regularizer dropout adds (before its weight).

    It is also the squared :math:`\\ell_2` path norm of the linear network with input weights
    ``V`` and output weights ``U`` (Chapter 5), and has degree 4 in ``(U, V)`` where ``U V^T``
    has degree 2.

    Examples
    --------
    >>> import numpy as np
    >>> dropout_penalty(np.array([[1.0, 2.0]]), np.array([[3.0, 1.0]]))
    13.0
    """
    U_t, V_t, back = _factors("dropout_penalty", U, V)
    return back(((U_t * U_t).sum(0) * (V_t * V_t).sum(0)).sum())


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
    >>> import numpy as np
    >>> Y = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> dropout_risk(Y, np.eye(2), np.eye(2), keep=0.5)
    2.0
    """
    p = setup("dropout_risk", Y, U, V, keep)
    return p.back(expected_risk(p))


def dropout_risk_exact(Y: Any, U: Any, V: Any, keep: float, *, chunk: int = 4096) -> Any:
    """Expected dropout loss by exact enumeration of all :math:`2^r` column masks (``r <= 20``).

    An oracle for :func:`dropout_risk`: it forms :math:`Y - U\\operatorname{diag}(r)V^\\top/\\rho`
    for every mask and weighs its squared norm by the mask's probability. Chapter 5.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Y, U, V = rng.normal(size=(3, 4)), rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    >>> bool(np.isclose(dropout_risk_exact(Y, U, V, 0.7), dropout_risk(Y, U, V, 0.7)))
    True
    """
    p = setup("dropout_risk_exact", Y, U, V, keep)
    return p.back(expected_risk_exact(p, "dropout_risk_exact", chunk))


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
    >>> import numpy as np
    >>> Y = np.eye(3); U = V = np.eye(3)[:, :2]
    >>> est = dropout_risk_mc(Y, U, V, 0.5, num_samples=4000, rng=0)
    >>> abs(est.z_score(dropout_risk(Y, U, V, 0.5))) < 5
    True
    """
    return expected_risk_mc(setup("dropout_risk_mc", Y, U, V, keep), "dropout_risk_mc", num_samples, rng,
                            chunk)


# --------------------------------------------------------------------------- doubling
def duplicate_columns(U: Any, V: Any, copies: int = 2) -> tuple[Any, Any]:
    """Repeat every column ``copies`` times, scaled by ``1/sqrt(copies)``: same ``U V^T``.

    The dropout penalty :func:`dropout_penalty` is divided by ``copies``: with a fixed retain
    probability, a larger factorization is regularized less (Chapter 5).

    Examples
    --------
    >>> import numpy as np
    >>> U, V = np.array([[1.0, 2.0]]), np.array([[3.0, 1.0]])
    >>> U2, V2 = duplicate_columns(U, V)
    >>> U2.shape, bool(np.allclose(U2 @ V2.T, U @ V.T)), round(dropout_penalty(U2, V2), 12)
    ((1, 4), True, 6.5)
    """
    func = "duplicate_columns"
    copies = check_scalar(copies, "copies", func, kind="int", ge=1)
    U_t, V_t, back = _factors(func, U, V)
    (m, r), n = U_t.shape, V_t.shape[0]
    check_fits(func, "copies", copies, 2.0 * (m + n) * r * copies * U_t.element_size())
    s = 1.0 / math.sqrt(copies)
    return back(U_t.repeat(1, copies) * s), back(V_t.repeat(1, copies) * s)
