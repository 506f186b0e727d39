"""Tables of results in the notebooks: rows in, an HTML table out (and plain text in a terminal).

A chapter that lists many measured values (the zoo of Chapter 2, the dropout schemes of
Chapter 5) builds its rows as plain Python values and hands them to :func:`table`; the result
displays as an HTML table in Jupyter and in the book, and prints as aligned text elsewhere.
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._validation import param_error

__all__ = ["Table", "table"]


def _cell(value: Any, digits: int) -> str:
    """One cell in words: floats with ``digits`` significant digits, None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):.{digits}g}"
    return str(value)


@dataclass(frozen=True)
class Table:
    """A table of text cells, shown as HTML in a notebook (``_repr_html_``), as text by ``str``.

    Attributes
    ----------
    header : tuple of str
        The column titles.
    rows : tuple of tuple of str
        The cells, already in words (one tuple per row, as long as ``header``).
    caption : str or None
        Shown above the table.
    """

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str | None = None

    def to_html(self) -> str:
        """The table as an HTML ``<table>`` (every cell escaped)."""
        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                       for row in self.rows)
        cap = f"<caption>{esc(self.caption)}</caption>" if self.caption else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def _repr_html_(self) -> str:
        return self.to_html()

    def __str__(self) -> str:
        lines = [self.header, *self.rows]
        widths = [max(len(line[j]) for line in lines) for j in range(len(self.header))]
        text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                for line in lines]
        text.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(([self.caption] if self.caption else []) + text)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], *, caption: str | None = None,
          digits: int = 4) -> Table:
    """A table of results, displayed as HTML in a notebook and as aligned text in a terminal.

    Parameters
    ----------
    rows : sequence of sequences
        One sequence of cells per row, each as long as ``header``. A cell is a string, a number
        (floats are shown with ``digits`` significant digits) or None (an empty cell).
    header : sequence of str
        The column titles.
    caption : str, optional
        A line shown above the table.
    digits : int
        Significant digits of float cells (format strings yourself for another layout).

    Returns
    -------
    Table
        Displayed as an HTML table when it is the last expression of a cell (or passed to
        IPython's ``display``); ``str(table)`` is plain text.

    Notes
    -----
    Every cell is HTML-escaped, so names such as ``<lambda>`` or ``a < b`` show as written.
    Used in Chapter 2 (the zoo of measured degrees).

    Examples
    --------
    >>> t = table([["ReLU", 1.0], ["Sigmoid", None]], ["entry", "degree"])
    >>> print(t)
    entry    degree
    -------  ------
    ReLU     1
    Sigmoid
    >>> t.to_html().startswith("<table><thead><tr><th>entry</th>")
    True
    """
    func = "table"
    if isinstance(header, str) or not isinstance(header, Sequence) or not header:
        raise param_error("header", func, "a non-empty sequence of column titles", header, TypeError)
    if isinstance(rows, str) or not isinstance(rows, Sequence):
        raise param_error("rows", func, "a sequence of rows (sequences of cells)", rows, TypeError)
    if isinstance(digits, bool) or not isinstance(digits, numbers.Integral) or digits < 1:
        raise param_error("digits", func, "an int >= 1", digits)
    cells = []
    for row in rows:
        if isinstance(row, str) or not isinstance(row, Sequence) or len(row) != len(header):
            raise param_error("rows", func, f"rows of {len(header)} cells (one per header entry)",
                              row)
        cells.append(tuple(_cell(c, int(digits)) for c in row))
    return Table(tuple(str(h) for h in header), tuple(cells), caption)
