"""Dropout vs DropConnect on linear factorizations: the regularizer each masking scheme adds.

Chapter 5 (Dropout analysis). Every scheme multiplies some entries of a linear model by
i.i.d. Bernoulli(:math:`\\rho`) masks rescaled by :math:`1/\\rho` (so the mean model is the
unmasked one). With the squared loss, the expected loss is the loss of the mean model plus the
sum of the per-entry variances, a regularizer that depends only on *which* entries carry a
mask, not on how masks are shared between entries. :func:`dropconnect_penalty` lists the
closed forms.

The schemes (``scheme=``: ``"units"`` is dropout, ``"U"``, ``"V"``, ``"UV"`` DropConnect on
one or both factors, ``"X"`` on the output, ``"A"`` on a network's inputs) and the two models
(matrix factorization ``X = U V^T``, or a linear network ``X = A V U^T`` with one mask per
sample) are described once in :mod:`hdlcore.dropout.masks`. The closed form, the exact
enumeration and the Monte Carlo estimate are the one estimator of :mod:`hdlcore.dropout.risk`,
of which dropout is the scheme ``"units"``.
"""

from __future__ import annotations

from typing import Any

from .masks import scheme_penalty
from .risk import MonteCarloEstimate, expected_risk, expected_risk_exact, expected_risk_mc, setup

__all__ = [
    "dropconnect_penalty",
    "dropconnect_risk",
    "dropconnect_risk_exact",
    "dropconnect_risk_mc",
]


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
    p = setup("dropconnect_penalty", None, U, V, keep, scheme, A)
    with p.threads():
        return p.back(scheme_penalty(p.U, p.V, p.A, p.keep, p.scheme))


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
    p = setup("dropconnect_risk", Y, U, V, keep, scheme, A)
    return p.back(expected_risk(p))


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
    p = setup("dropconnect_risk_exact", Y, U, V, keep, scheme, A)
    return p.back(expected_risk_exact(p, "dropconnect_risk_exact", chunk))


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
    p = setup("dropconnect_risk_mc", Y, U, V, keep, scheme, A)
    return expected_risk_mc(p, "dropconnect_risk_mc", num_samples, rng, chunk)
