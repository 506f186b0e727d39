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
