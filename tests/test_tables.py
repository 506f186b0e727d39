"""hd.table: rows of results as an HTML table in a notebook, as aligned text elsewhere."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import hdlcore as hd


def test_html_has_one_row_per_row_and_escapes_every_cell():
    t = hd.table([["<lambda>", 1.0], ["a & b", None]], ["entry", "p < 2"], caption="x > y")
    html = t._repr_html_()
    assert html == t.to_html()
    assert html.count("<tr>") == 3 and html.count("<td>") == 4
    assert "&lt;lambda&gt;" in html and "a &amp; b" in html and "p &lt; 2" in html
    assert "<caption>x &gt; y</caption>" in html
    assert "<lambda>" not in html


def test_cells_in_words_plain_floats_and_significant_digits():
    t = hd.table([[np.float64(0.21314159), np.int64(3), True, None, 7]], list("abcde"), digits=3)
    assert t.rows == (("0.213", "3", "True", "", "7"),)
    assert "np.float64" not in str(t)


def test_text_form_is_aligned():
    lines = str(hd.table([["ReLU", 1], ["Sigmoid", 2]], ["entry", "degree"])).splitlines()
    assert lines[0].index("degree") == lines[2].index("1") == lines[3].index("2")
    assert set(lines[1].replace(" ", "")) == {"-"}


def test_the_table_is_frozen():
    t = hd.table([], ["a"])
    assert t.rows == () and dataclasses.is_dataclass(t)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.rows = ()  # type: ignore[misc]


@pytest.mark.parametrize("kwargs, param", [
    (dict(rows=[["a"]], header=[]), "header"),
    (dict(rows=[["a"]], header="ab"), "header"),
    (dict(rows="ab", header=["a"]), "rows"),
    (dict(rows=[["a", "b"]], header=["a"]), "rows"),
    (dict(rows=[["a"]], header=["a"], digits=0), "digits"),
])
def test_bad_input_gets_the_library_error(kwargs, param):
    with pytest.raises((ValueError, TypeError), match=f"The '{param}' parameter of table must be "):
        hd.table(**kwargs)
