"""The chapters' notebooks, read without running them: shape, labels, table of contents."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import notebooks  # noqa: E402  (tools/notebooks.py)

CHAPTERS = notebooks.chapters()
CHECK_ID = re.compile(r"""\bcheck\(\s*(?:[^()]|\([^()]*\))*?\bid\s*=\s*["']([a-z0-9-]+)["']""", re.S)


def _ids_and_labels(path: Path) -> tuple[list[str], set[str]]:
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return CHECK_ID.findall(code), set(re.findall(r"^\(([^)\s]+)\)=\s*$", text, re.M))


def test_there_are_chapters():
    assert CHAPTERS, "no notebook in chapters/"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_notebook_shape_and_no_outputs(path):
    assert notebooks.problems(path) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_check_has_a_labelled_statement(path):
    ids, labels = _ids_and_labels(path)
    assert ids, f"{path.name} checks nothing"
    missing = [i for i in ids if i not in labels]
    assert not missing, f"checks without a '(id)=' label on their statement: {missing}"


def test_check_ids_are_unique_across_the_book():
    seen: dict[str, str] = {}
    for path in CHAPTERS:
        ids, _ = _ids_and_labels(path)
        for i in ids:
            assert i not in seen, f"check id {i!r} used in {seen.get(i)} and {path.name}"
            seen[i] = path.name


def test_table_of_contents_lists_every_chapter_and_only_existing_pages():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files:
        assert any((ROOT / f).with_suffix(s).exists() for s in (".md", ".ipynb")), f
    listed = {f for f in files if f.startswith("chapters/")}
    assert listed == {f"chapters/{p.stem}" for p in CHAPTERS}
    assert [f for f in files if f.startswith("chapters/")] == sorted(listed), "tutorial order"


def test_bootstrap_cell_names_the_configured_repository():
    url, branch = notebooks.repository()
    assert url.startswith("https://github.com/")
    assert f"git+{url}@{branch}" in notebooks.bootstrap_source()


def _old_shape_notebook(path: Path) -> None:
    """A chapter as `fix` wrote it before: bootstrap first, then the title; one long line."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("try:\n    import hdlcore\nexcept ImportError:\n"
                                  "    %pip install hdlcore", metadata={"tags": ["hide-cell"]}),
        nbformat.v4.new_markdown_cell("# A chapter\n\nIts introduction."),
        nbformat.v4.new_code_cell("import hdlcore as hd\n\nrng, device = hd.notebook.setup(seed=0)",
                                  execution_count=3),
        nbformat.v4.new_code_cell("value = hd.notebook.check('a claim that is long enough to be "
                                  "wrapped', 1.0, id='x-claim', le=2.0, and_more=[1, 2, 3, 4, 5])"),
        nbformat.v4.new_code_cell(f"print(f'a printed line of {'much ' * 20}text, x = {{x:.3f}}, "
                                  "and the end')"),
    ]
    nbformat.write(nb, path)


def test_fix_puts_the_bootstrap_cell_after_the_title(tmp_path):
    path = tmp_path / "99_chapter.ipynb"
    _old_shape_notebook(path)
    assert any("the first cell is not a markdown cell" in p for p in notebooks.problems(path))
    notebooks.fix(path)
    assert notebooks.problems(path) == []
    cells = nbformat.read(path, as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "code", "code", "code", "code"]
    assert cells[0].source.startswith("# A chapter")
    assert cells[1].source == notebooks.bootstrap_source()
    assert cells[1].metadata["tags"] == ["hide-cell"]
    before = path.read_text()
    notebooks.fix(path)  # idempotent: a second fix changes nothing
    assert path.read_text() == before


def test_fix_formats_code_to_the_column_width(tmp_path):
    path = tmp_path / "99_chapter.ipynb"
    _old_shape_notebook(path)
    notebooks.fix(path)
    code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert "\n" in code[-2], "the long call was not wrapped"
    width = notebooks.NOTEBOOK_LINE_LENGTH
    assert max(len(line) for src in code for line in src.splitlines()) <= width
    # the long f-string was split by implicit concatenation: the same string when run
    printed = code[-1]
    assert sum(line.strip().startswith(('"', 'f"')) for line in printed.splitlines()) >= 2
    assert eval(printed.replace("print(", "(", 1), {"x": 1.0}) == (  # noqa: S307
        f"a printed line of {'much ' * 20}text, x = 1.000, and the end")


def test_bootstrap_lines_fit_the_column():
    assert max(map(len, notebooks.bootstrap_source().splitlines())) <= notebooks.NOTEBOOK_LINE_LENGTH
