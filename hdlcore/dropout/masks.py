"""The masking schemes of dropout and DropConnect: where the masks go, and what they cost.

Chapter 5 (Dropout analysis). Every scheme multiplies some entries of a linear model by i.i.d.
Bernoulli(:math:`\\rho`) masks rescaled by :math:`1/\\rho` (so the mean model is the unmasked
one). A scheme is described here once, by

- the number of mask bits it draws (:func:`dropconnect_mask_shape`),
- the masked model's output for a batch of masks (:func:`dropconnect_output`),
- the variance it adds to the squared loss in expectation, its closed-form regularizer
  (``scheme_penalty``; the formulas are listed in :func:`hdlcore.dropconnect_penalty`),

and the estimator of :mod:`hdlcore.dropout.risk` (closed form, exact enumeration of every mask
weighted by its probability, Monte Carlo over random masks) works for every scheme alike. The
schemes (``scheme=``):

- ``"units"``: dropout, hidden unit ``k`` (column ``k`` of ``U`` and ``V``) dropped as a whole;
- ``"U"``: DropConnect on the entries of ``U`` (the output layer of a network);
- ``"V"``: DropConnect on the entries of ``V`` (the input layer of a network);
- ``"UV"``: DropConnect on the entries of both factors, independent masks;
- ``"X"``: a mask on the entries of the output ``X``;
- ``"A"``: dropout on the inputs of a network (needs ``A``).

Two models: matrix factorization ``X = U V^T`` (``A=None``; one mask for the whole matrix), or
a linear network with one hidden layer ``X = A V U^T`` (``A`` is N x d, one sample per row,
``V`` the input layer, ``U`` the output layer; masks drawn independently for every sample, as
dropout does within a minibatch). Internal building blocks work on torch tensors and trust
their callers; the public functions validate at the boundary.
"""

from __future__ import annotations

from typing import Any

from .._validation import check_choice, param_error

__all__ = ["SCHEMES", "dropconnect_mask_shape", "dropconnect_output"]

#: The masking schemes, in the order of the book's table.
SCHEMES = ("units", "U", "V", "UV", "X", "A")

#: Exact enumeration visits ``2**bits`` masks (per sample of a network); at most this many bits.
MAX_EXACT_BITS = 20


def mask_bits(scheme: str, m: int, r: int, n: int, network: bool) -> int:
    """Bits of one mask of ``scheme`` (per sample for a network), ``U`` (m, r), ``V`` (n, r)."""
    if scheme == "units":
        return r
    if scheme == "U":
        return m * r
    if scheme == "V":
        return n * r
    if scheme == "UV":
        return (m + n) * r
    if scheme == "X":
        return m if network else m * n
    return n  # "A": one bit per input coordinate


def dropconnect_mask_shape(scheme: str, U_shape: tuple[int, int], V_shape: tuple[int, int],
                           A_shape: tuple[int, int] | None = None) -> tuple[int, ...]:
    """Shape of one mask of ``scheme`` (per sample when ``A`` is given). Chapter 5.

    Examples
    --------
    >>> dropconnect_mask_shape("UV", (3, 2), (4, 2))
    (14,)
    """
    func = "dropconnect_mask_shape"
    check_choice(scheme, "scheme", func, SCHEMES)
    if scheme == "A" and A_shape is None:
        raise param_error("scheme", func, "'units', 'U', 'V', 'UV' or 'X' without inputs A", scheme)
    (m, r), (n, _) = U_shape, V_shape
    return (mask_bits(scheme, m, r, n, A_shape is not None),)


def all_masks(bits: int, like: Any) -> Any:
    """Every 0/1 mask of ``bits`` bits, one per row: shape ``(2**bits, bits)``, ``like``'s dtype."""
    import torch

    codes = torch.arange(2**bits, device=like.device)
    return ((codes[:, None] >> torch.arange(bits, device=like.device)) & 1).to(like.dtype)  # (2^b, b)


def mask_probabilities(masks: Any, keep: float) -> Any:
    """Probability of each mask (a row of 0/1 bits) under i.i.d. Bernoulli(``keep``) bits."""
    on = masks.sum(-1)
    bits = masks.shape[-1]
    return keep**on * (1.0 - keep) ** (bits - on)


def random_masks(shape: tuple[int, ...], keep: float, generator: Any, like: Any) -> Any:
    """Random 0/1 masks of ``shape``, each bit 1 with probability ``keep`` (``like``'s dtype and device)."""
    import torch

    probs = torch.full(shape, keep, dtype=like.dtype, device=like.device)
    return torch.bernoulli(probs, generator=generator)


def dropconnect_output(U: Any, V: Any, masks: Any, keep: float, scheme: str, A: Any = None) -> Any:
    """The masked model's output for a batch of flat 0/1 masks (see :func:`dropconnect_mask_shape`).

    ``masks`` has shape ``(b, bits)`` for matrix factorization (output ``(b, m, n)``) and
    ``(b, N, bits)`` for a network (output ``(b, N, c)``, one mask per sample). Tensors only
    (an internal building block of the estimators and of :func:`hdlcore.train_dropout`).
    """
    (m, r), n = U.shape, V.shape[0]
    b = masks.shape[0]
    if A is None:
        if scheme == "units":
            return (U[None] * masks[:, None, :] / keep) @ V.T  # (b, m, r) @ (r, n) -> (b, m, n)
        if scheme == "U":
            return (U[None] * masks.view(b, m, r) / keep) @ V.T
        if scheme == "V":
            return U[None] @ (V[None] * masks.view(b, n, r) / keep).mT  # (b, m, n)
        if scheme == "UV":
            MU, MV = masks[:, : m * r].view(b, m, r), masks[:, m * r:].view(b, n, r)
            return (U[None] * MU) @ (V[None] * MV).mT / keep**2
        return masks.view(b, m, n) * (U @ V.T)[None] / keep  # "X"
    import torch

    N = A.shape[0]
    if scheme == "A":
        return (A[None] * masks / keep) @ V @ U.T  # (b, N, d) @ (d, r) @ (r, c) -> (b, N, c)
    if scheme == "X":
        return masks * (A @ V @ U.T)[None] / keep
    if scheme == "units":
        return ((A @ V)[None] * masks / keep) @ U.T  # (b, N, r) @ (r, c)
    if scheme == "U":
        MU = masks.view(b, N, m, r)
        return torch.einsum("sk,bsjk->bsj", A @ V, U * MU / keep)
    if scheme == "V":
        MV = masks.view(b, N, n, r)
        H = torch.einsum("sl,bslk->bsk", A, V * MV / keep)  # (b, N, r)
        return H @ U.T
    MU, MV = masks[..., : m * r].view(b, N, m, r), masks[..., m * r:].view(b, N, n, r)
    H = torch.einsum("sl,bslk->bsk", A, V * MV)  # (b, N, r)
    return torch.einsum("bsk,bsjk->bsj", H, U * MU) / keep**2


def scheme_penalty(U: Any, V: Any, A: Any, keep: float, scheme: str) -> Any:
    """The variance a scheme adds to the squared loss in expectation (its regularizer); tensors.

    See :func:`hdlcore.dropconnect_penalty` for the formulas.
    """
    lam = (1.0 - keep) / keep
    u2 = (U * U).sum(0)  # (r,) |u_k|^2
    if A is None:
        v2 = (V * V).sum(0)
        if scheme in ("units", "U", "V"):
            return lam * (u2 * v2).sum()
        if scheme == "UV":
            return (1.0 - keep**2) / keep**2 * (u2 * v2).sum()
        X = U @ V.T
        return lam * (X * X).sum()  # "X"
    H = A @ V  # (N, r)
    h2 = (H * H).sum(0)  # |A v_k|^2
    Dv = ((A * A).sum(0)[:, None] * V * V).sum(0)  # v_k^T diag(A^T A) v_k
    if scheme in ("units", "U"):
        return lam * (u2 * h2).sum()
    if scheme == "V":
        return lam * (u2 * Dv).sum()
    if scheme == "UV":
        return lam * (u2 * (h2 + Dv / keep)).sum()
    if scheme == "X":
        X = H @ U.T
        return lam * (X * X).sum()
    M = V @ U.T  # (d, c) end-to-end map
    return lam * ((A * A).sum(0)[:, None] * M * M).sum()  # "A"
