"""Data the chapters use, made by the code or shipped inside a package (nothing is downloaded).

- :func:`low_rank_matrix` and :func:`random_mask`: matrix factorization and completion problems.
- :func:`two_spirals`: a 2-D classification problem for one-hidden-layer networks.
- :func:`digits`: scikit-learn's bundled 8x8 handwritten digits (1797 images).
- :func:`ilsvrc_top5`: the ImageNet challenge's winning top-5 errors, with their sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_rng, check_scalar, check_size, param_error

__all__ = [
    "low_rank_matrix",
    "random_mask",
    "two_spirals",
    "digits",
    "IlsvrcEntry",
    "ilsvrc_top5",
    "ILSVRC_HUMAN_TOP5",
]


def _check_matrix_size(m: int, n: int, names: tuple[str, str], func: str) -> None:
    """Refuse an ``m x n`` float64 matrix larger than this machine's memory, naming the larger side."""
    big, small = (m, n) if m >= n else (n, m)
    check_size(big, names[0] if m >= n else names[1], func, entries_per_unit=small)


def low_rank_matrix(
    m: int,
    n: int,
    rank: int,
    *,
    noise: float = 0.0,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A rank-``rank`` matrix plus Gaussian noise: returns ``(Y, X_true)``.

    ``X_true = G H^T`` with standard Gaussian ``G`` (m x rank) and ``H`` (n x rank), scaled so
    that its entries have unit variance; ``Y = X_true + noise * N(0, 1)``.

    Examples
    --------
    >>> Y, X = low_rank_matrix(30, 20, 3, noise=0.1, rng=0)
    >>> Y.shape, int(np.linalg.matrix_rank(X))
    ((30, 20), 3)
    """
    func = "low_rank_matrix"
    m = check_scalar(m, "m", func, kind="int", ge=1)
    n = check_scalar(n, "n", func, kind="int", ge=1)
    _check_matrix_size(m, n, ("m", "n"), func)
    rank = check_scalar(rank, "rank", func, kind="int", ge=0, le=min(m, n))
    noise = check_scalar(noise, "noise", func, ge=0)
    rng = check_rng(rng, "rng", func)
    G = rng.standard_normal((m, rank))
    H = rng.standard_normal((n, rank))
    X = G @ H.T / np.sqrt(max(rank, 1))  # (m, r) @ (r, n) -> (m, n), unit-variance entries
    return X + noise * rng.standard_normal((m, n)), X


def random_mask(
    shape: tuple[int, int],
    fraction: float,
    *,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """A boolean mask, True where observed, each entry observed with probability ``fraction``.

    Every row and every column gets at least one observed entry (a matrix-completion problem
    with an empty row or column has no information about it).

    Examples
    --------
    >>> M = random_mask((50, 40), 0.3, rng=0)
    >>> bool(M.any(axis=0).all() and M.any(axis=1).all())
    True
    """
    func = "random_mask"
    fraction = check_scalar(fraction, "fraction", func, gt=0, le=1)
    rng = check_rng(rng, "rng", func)
    if not isinstance(shape, tuple | list) or len(shape) != 2:
        raise param_error("shape", func, "a pair (m, n) of ints >= 1", shape, TypeError)
    m, n = (check_scalar(s, "shape", func, kind="int", ge=1) for s in shape)
    _check_matrix_size(m, n, ("shape", "shape"), func)
    mask = rng.random((m, n)) < fraction
    mask[np.arange(m), rng.integers(0, n, size=m)] = True
    mask[rng.integers(0, m, size=n), np.arange(n)] = True
    return mask


def two_spirals(
    n: int = 200,
    *,
    turns: float = 1.25,
    noise: float = 0.02,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane: returns ``(A, Y)``.

    ``A`` is ``(n, 2)`` (inputs, one sample per row, inside the unit disc) and ``Y`` is
    ``(n, 1)`` with entries ``+1`` and ``-1`` (one spiral each, ``n // 2`` and ``n - n // 2``
    points).

    Examples
    --------
    >>> A, Y = two_spirals(100, rng=0)
    >>> A.shape, Y.shape, sorted(set(Y.ravel().tolist()))
    ((100, 2), (100, 1), [-1.0, 1.0])
    """
    func = "two_spirals"
    n = check_size(n, "n", func, ge=2, entries_per_unit=3)
    turns = check_scalar(turns, "turns", func, gt=0)
    noise = check_scalar(noise, "noise", func, ge=0)
    rng = check_rng(rng, "rng", func)
    sizes = (n // 2, n - n // 2)
    points, labels = [], []
    for sign, size in zip((1.0, -1.0), sizes, strict=True):
        t = np.sqrt(rng.random(size)) * turns * 2 * np.pi + 0.5
        radius = t / (turns * 2 * np.pi + 0.5)
        xy = sign * radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
        points.append(xy + noise * rng.standard_normal((size, 2)))
        labels.append(np.full(size, sign))
    return np.concatenate(points), np.concatenate(labels)[:, None]


def digits(*, scale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits: ``(A, labels)``.

    ``A`` is ``(1797, 64)`` (8x8 images, one per row) with pixel values in ``[0, 1]`` when
    ``scale`` (raw values are 0..16); ``labels`` are the integers 0..9. Ships with
    scikit-learn, so nothing is downloaded.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    A = bunch.data.astype(np.float64)
    return (A / 16.0 if scale else A), bunch.target.copy()


@dataclass(frozen=True)
class IlsvrcEntry:
    """One year of the ILSVRC classification task: the winner's top-5 error on the test set."""

    year: int
    team: str
    top5_error: float  # percent, without outside training data
    with_extra_data: float | None  # percent, the same team's entry with outside data, if any
    source: str  # BibTeX key in references.bib


def ilsvrc_top5() -> list[IlsvrcEntry]:
    """The winning top-5 classification errors of ILSVRC, 2010 to 2015, with sources.

    The human reference (5.1 %, one trained annotator) is from Russakovsky et al. (2015),
    which also tabulates the 2010 to 2014 winners; the 2015 figure is He et al. (2016).
    ``top5_error`` is the entry trained on the challenge's data only; for 2012 and 2013 the
    winners also submitted an entry trained with outside data (``with_extra_data``).
    """
    return [
        IlsvrcEntry(2010, "NEC-UIUC", 28.2, None, "russakovsky2015imagenet"),
        IlsvrcEntry(2011, "XRCE", 25.8, None, "russakovsky2015imagenet"),
        IlsvrcEntry(2012, "SuperVision (AlexNet)", 16.4, 15.3, "krizhevsky2012imagenet"),
        IlsvrcEntry(2013, "Clarifai", 11.7, 11.2, "russakovsky2015imagenet"),
        IlsvrcEntry(2014, "GoogLeNet", 6.66, None, "szegedy2015going"),
        IlsvrcEntry(2015, "MSRA (ResNet ensemble)", 3.57, None, "he2016deep"),
    ]


#: Top-5 error of a trained human annotator (Russakovsky et al., 2015), in percent.
ILSVRC_HUMAN_TOP5 = 5.1
