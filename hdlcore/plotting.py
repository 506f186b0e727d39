"""The book's figure style, in one place.

:func:`apply_style` is called by :func:`hdlcore.notebook.setup`; chapters then use plain
matplotlib. Figures use the book's notation in their labels, a log scale for convergence
curves, and end with ``plt.show()``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PALETTE", "STYLE", "apply_style", "subplots"]

#: Colour-blind-safe cycle (Okabe and Ito), readable on the light and the dark theme.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

#: Matplotlib rc parameters of every figure in the book (applied by :func:`apply_style`).
STYLE: dict[str, Any] = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 110,
    "figure.facecolor": "white",
    "figure.constrained_layout.use": True,
    "savefig.facecolor": "white",
    "savefig.bbox": "tight",
    "axes.facecolor": "white",
    "axes.grid": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "grid.alpha": 0.3,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "image.cmap": "viridis",
    "mathtext.fontset": "cm",
}


def apply_style() -> None:
    """Apply :data:`STYLE` and :data:`PALETTE` to matplotlib's global settings."""
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update(STYLE)  # type: ignore[arg-type]  # matplotlib types its keys as literals
    mpl.rcParams["axes.prop_cycle"] = cycler(color=PALETTE)


def subplots(ncols: int = 1, nrows: int = 1, *, width: float = 3.4, height: float = 3.0, **kw):
    """``plt.subplots`` sized per panel (``width`` x ``height`` inches each)."""
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), **kw)
