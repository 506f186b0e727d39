"""Dropout vs DropConnect on linear factorizations: the regularizer each masking scheme adds.

Chapter 5 (Dropout analysis). Every scheme multiplies some entries of a linear model by
i.i.d. Bernoulli(:math:`\\rho`) masks rescaled by :math:`1/\\rho` (so the mean model is the
unmasked one). With the squared loss, the expected loss is the loss of the mean model plus the
sum of the per-entry variances, a regularizer that depends only on *which* entries carry a
mask, not on how masks are shared between entries. The schemes (``scheme=``):

- ``"units"``: dropout, hidden unit ``k`` (column ``k`` of ``U`` and ``V``) dropped as a whole;
- ``"U"``: DropConnect on the entries of ``U`` (the output layer of a network);
- ``"V"``: DropConnect on the entries of ``V`` (the input layer of a network);
- ``"UV"``: DropConnect on the entries of both factors, independent masks;
- ``"X"``: a mask on the entries of the output ``X``;
- ``"A"``: dropout on the inputs of a network (needs ``A``).

Two models: matrix factorization ``X = U V^T`` (``A=None``; one mask for the whole matrix), or
a linear network with one hidden layer ``X = A V U^T`` (``A`` is N x d, one sample per row,
``V`` the input layer, ``U`` the output layer; masks drawn independently for every sample,
as dropout does within a minibatch). :func:`dropconnect_penalty` lists the closed forms.
"""

from __future__ import annotations

from typing import Any

from .._validation import check_choice, check_scalar, param_error
from .risk import (
    MAX_EXACT_BITS,
    MonteCarloEstimate,
    _all_masks,
    _estimate,
    _keep,
    _mask_weights,
    _tensors,
    _torch_generator,
)

__all__ = [
    "SCHEMES",
    "dropconnect_mask_shape",
    "dropconnect_output",
    "dropconnect_penalty",
    "dropconnect_risk",
    "dropconnect_risk_exact",
    "dropconnect_risk_mc",
]

#: The masking schemes, in the order of the book's table.
SCHEMES = ("units", "U", "V", "UV", "X", "A")


def _setup(func: str, Y: Any, U: Any, V: Any, A: Any, scheme: str) -> tuple[list[Any], Any]:
    check_choice(scheme, "scheme", func, SCHEMES)
    arrays = {"U": U, "V": V}
    if Y is not None:
        arrays = {"Y": Y, **arrays}
    if A is not None:
        arrays["A"] = A
    elif scheme == "A":
        raise param_error("A", func, "an input matrix (scheme 'A' drops the inputs of a network)", A)
    tensors, back = _tensors(func, **arrays)
    named = dict(zip(arrays, tensors, strict=True))
    U_t, V_t = named["U"], named["V"]
    if U_t.shape[1] != V_t.shape[1]:
        raise param_error("V", func, f"an array with {U_t.shape[1]} columns, as many as 'U'", V)
    if A is not None and named["A"].shape[1] != V_t.shape[0]:
        raise param_error("A", func, f"an array with {V_t.shape[0]} columns, as many as 'V' has rows", A)
    if Y is not None:
        rows = U_t.shape[0] if A is None else named["A"].shape[0]
        cols = V_t.shape[0] if A is None else U_t.shape[0]
        if tuple(named["Y"].shape) != (rows, cols):
            model = "U V^T" if A is None else "A V U^T"
            raise param_error("Y", func, f"an array of shape ({rows}, {cols}), the shape of {model}", Y)
    return [named.get("Y"), U_t, V_t, named.get("A")], back


def dropconnect_mask_shape(scheme: str, U_shape: tuple[int, int], V_shape: tuple[int, int],
                           A_shape: tuple[int, int] | None = None) -> tuple[int, ...]:
    """Shape of one mask of ``scheme`` (per sample when ``A`` is given). Chapter 5.

    Examples
    --------
    >>> dropconnect_mask_shape("UV", (3, 2), (4, 2))
    (14,)
    """
    check_choice(scheme, "scheme", "dropconnect_mask_shape", SCHEMES)
    (m, r), (n, _) = U_shape, V_shape
    if A_shape is None:
        sizes = {"units": r, "U": m * r, "V": n * r, "UV": (m + n) * r, "X": m * n}
    else:
        sizes = {"units": r, "U": m * r, "V": n * r, "UV": (m + n) * r, "X": m, "A": n}
    if scheme not in sizes:
        raise param_error("scheme", "dropconnect_mask_shape", "'units', 'U', 'V', 'UV' or 'X' "
                          "without inputs A", scheme)
    return (sizes[scheme],)


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
    N = A.shape[0]
    if scheme == "A":
        return (A[None] * masks / keep) @ V @ U.T  # (b, N, d) @ (d, r) @ (r, c) -> (b, N, c)
    if scheme == "X":
        return masks * (A @ V @ U.T)[None] / keep
    if scheme == "units":
        return ((A @ V)[None] * masks / keep) @ U.T  # (b, N, r) @ (r, c)
    if scheme == "U":
        MU = masks.view(b, N, m, r)
        return _einsum("sk,bsjk->bsj", A @ V, U * MU / keep)
    if scheme == "V":
        MV = masks.view(b, N, n, r)
        H = _einsum("sl,bslk->bsk", A, V * MV / keep)  # (b, N, r)
        return H @ U.T
    MU, MV = masks[..., : m * r].view(b, N, m, r), masks[..., m * r:].view(b, N, n, r)
    H = _einsum("sl,bslk->bsk", A, V * MV)  # (b, N, r)
    return _einsum("bsk,bsjk->bsj", H, U * MU) / keep**2


def _einsum(spec: str, *ops: Any) -> Any:
    import torch

    return torch.einsum(spec, *ops)


def _penalty(U: Any, V: Any, A: Any, keep: float, scheme: str) -> Any:
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


def dropconnect_penalty(U: Any, V: Any, keep: float, scheme: str = "units", *, A: Any = None) -> Any:
    """Closed-form regularizer of a masking scheme: expected loss minus the mean model's loss.

    Notes
    -----
    With :math:`\\lambda = (1-\\rho)/\\rho`, :math:`H = AV` (``H = V`` without ``A``) and
    :math:`D = \\operatorname{diag}(A^\\top A)` (``D = I`` without ``A``):

    - ``"units"`` (dropout) and ``"U"``: :math:`\\lambda \\sum_k \\|u_k\\|^2 \\|h_k\\|^2`;
    - ``"V"``: :math:`\\lambda \\sum_k \\|u_k\\|^2 v_k^\\top D v_k` (equal to ``"units"`` for
      matrix factorization);
    - ``"UV"``: :math:`\\lambda \\sum_k \\|u_k\\|^2 (\\|h_k\\|^2 + v_k^\\top D v_k / \\rho)`,
      i.e. :math:`\\frac{1-\\rho^2}{\\rho^2}\\sum_k\\|u_k\\|^2\\|v_k\\|^2` for matrix factorization;
    - ``"X"``: :math:`\\lambda \\|X\\|_F^2`, ridge on the output;
    - ``"A"``: :math:`\\lambda \\|D^{1/2} V U^\\top\\|_F^2`, ridge on the end-to-end map.

    Each is checked against :func:`dropconnect_risk_exact` and :func:`dropconnect_risk_mc`.
    Used in Chapter 5.

    References
    ----------
    L. Wan, M. Zeiler, S. Zhang, Y. LeCun, R. Fergus, "Regularization of neural networks using
    DropConnect", ICML 2013. P. Mianjy, R. Arora, R. Vidal, "On the implicit bias of dropout",
    ICML 2018.

    Examples
    --------
    >>> import numpy as np
    >>> U, V = np.array([[1.0], [1.0]]), np.array([[2.0]])
    >>> [dropconnect_penalty(U, V, 0.5, s) for s in ("units", "U", "UV", "X")]
    [8.0, 8.0, 24.0, 8.0]
    """
    func = "dropconnect_penalty"
    keep = _keep(keep, func)
    (_, U_t, V_t, A_t), back = _setup(func, None, U, V, A, scheme)
    return back(_penalty(U_t, V_t, A_t, keep, scheme))


def dropconnect_risk(Y: Any, U: Any, V: Any, keep: float, scheme: str = "units", *, A: Any = None) -> Any:
    """Closed-form expected squared loss :math:`\\mathbb{E}\\|Y - \\hat X\\|_F^2` of a masking scheme.

    The loss of the mean model (``U V^T``, or ``A V U^T``) plus :func:`dropconnect_penalty`.
    ``scheme="units"`` without ``A`` equals :func:`hdlcore.dropout_risk`. Chapter 5.

    Examples
    --------
    >>> import numpy as np
    >>> dropconnect_risk(np.eye(2), np.eye(2), np.eye(2), 0.5, "X")
    2.0
    """
    func = "dropconnect_risk"
    keep = _keep(keep, func)
    (Y_t, U_t, V_t, A_t), back = _setup(func, Y, U, V, A, scheme)
    X = U_t @ V_t.T if A_t is None else A_t @ V_t @ U_t.T
    return back(((Y_t - X) ** 2).sum() + _penalty(U_t, V_t, A_t, keep, scheme))


def dropconnect_risk_exact(Y: Any, U: Any, V: Any, keep: float, scheme: str = "units", *,
                           A: Any = None, chunk: int = 4096) -> Any:
    """Expected loss by exact enumeration of every mask (at most 2^20 masks per sample).

    For a network, masks of different samples are independent and the loss is a sum over
    samples, so the expectation is the sum of per-sample expectations, each enumerated
    exactly. Chapter 5.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Y, U, V = rng.normal(size=(2, 2)), rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    >>> bool(np.isclose(dropconnect_risk_exact(Y, U, V, 0.6, "UV"), dropconnect_risk(Y, U, V, 0.6, "UV")))
    True
    """
    func = "dropconnect_risk_exact"
    keep = _keep(keep, func)
    (Y_t, U_t, V_t, A_t), back = _setup(func, Y, U, V, A, scheme)
    (bits,) = dropconnect_mask_shape(scheme, tuple(U_t.shape), tuple(V_t.shape),
                                     None if A_t is None else tuple(A_t.shape))
    if bits > MAX_EXACT_BITS:
        raise param_error("scheme", func, f"a scheme with at most {MAX_EXACT_BITS} mask bits per "
                          f"sample on these shapes (it has {bits})", scheme)
    masks = _all_masks(bits, U_t)  # (2^bits, bits)
    weights = _mask_weights(masks, keep)
    samples = [None] if A_t is None else range(A_t.shape[0])
    total = U_t.new_zeros(())
    for s in samples:
        for start in range(0, masks.shape[0], chunk):
            M = masks[start:start + chunk]
            if s is None:
                Xs = dropconnect_output(U_t, V_t, M, keep, scheme)  # (b, m, n)
                target = Y_t[None]
            else:
                Xs = dropconnect_output(U_t, V_t, M[:, None, :], keep, scheme, A_t[s:s + 1])  # (b, 1, c)
                target = Y_t[s:s + 1][None]
            losses = ((target - Xs) ** 2).flatten(1).sum(1)
            total = total + (weights[start:start + chunk] * losses).sum()
    return back(total)


def dropconnect_risk_mc(Y: Any, U: Any, V: Any, keep: float, scheme: str = "units", *, A: Any = None,
                        num_samples: int = 10_000, rng: Any = None, chunk: int = 1024) -> MonteCarloEstimate:
    """Monte Carlo estimate of the expected loss of a masking scheme, with its standard error.

    Each draw samples a fresh mask (one per sample of ``A`` for a network). ``rng``: a numpy
    Generator, an int seed, None or a ``torch.Generator`` on the data's device. Chapter 5.

    Examples
    --------
    >>> import numpy as np
    >>> Y = U = V = np.eye(2)
    >>> est = dropconnect_risk_mc(Y, U, V, 0.5, "U", num_samples=4000, rng=1)
    >>> abs(est.z_score(dropconnect_risk(Y, U, V, 0.5, "U"))) < 5
    True
    """
    import torch

    func = "dropconnect_risk_mc"
    keep = _keep(keep, func)
    num_samples = check_scalar(num_samples, "num_samples", func, kind="int", ge=2)
    (Y_t, U_t, V_t, A_t), _ = _setup(func, Y, U, V, A, scheme)
    (bits,) = dropconnect_mask_shape(scheme, tuple(U_t.shape), tuple(V_t.shape),
                                     None if A_t is None else tuple(A_t.shape))
    gen = _torch_generator(rng, func, U_t.device)
    lead = () if A_t is None else (A_t.shape[0],)
    losses = []
    for start in range(0, num_samples, chunk):
        b = min(chunk, num_samples - start)
        probs = torch.full((b, *lead, bits), keep, dtype=U_t.dtype, device=U_t.device)
        M = torch.bernoulli(probs, generator=gen)
        Xs = dropconnect_output(U_t, V_t, M, keep, scheme, A_t)
        losses.append(((Y_t[None] - Xs) ** 2).flatten(1).sum(1).double())
    return _estimate(torch.cat(losses))
