"""The library reference (library/*.md, built by _ext/hdl_api.py): every public name has an entry.

Reads the built website like tests/test_site.py (``make test`` builds it first).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

import hdlcore as hd

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
PAGES = [s["file"] for part in TOC["parts"] for c in part["chapters"]
         for s in [c, *c.get("sections", [])] if s["file"].startswith("library/")]

pytestmark = pytest.mark.site


@pytest.fixture(scope="module")
def anchors() -> dict[str, str]:
    """Every documented object id on the reference pages -> the page."""
    if not (HTML / "index.html").exists():
        if os.environ.get("HDL_REQUIRE_SITE"):
            pytest.fail("_build/html is missing: `make book` must run before the site tests")
        pytest.skip("_build/html is missing (run `make book`)")
    found = {}
    for page in PAGES:
        soup = BeautifulSoup((HTML / f"{page}.html").read_text(), "html.parser")
        found.update({dt["id"]: page for dt in soup.select("dt[id]")})
    return found


def documented_id(name: str) -> str:
    obj = getattr(hd, name)
    module = getattr(obj, "__module__", None) if callable(obj) else None
    if module is None or not module.startswith("hdlcore"):  # a constant: where its module lists it
        module = "hdlcore." + hd._EXPORTS[name]
    return f"{module}.{name}"


def test_the_reference_pages_are_in_the_table_of_contents():
    assert {"library/index", "library/matrix", "library/networks", "library/dropout",
            "library/homogeneity", "library/support"} <= set(PAGES)


@pytest.mark.parametrize("name", sorted(n for n in hd.__all__ if not inspect.ismodule(getattr(hd, n))
                                        and n != "__version__"))
def test_every_public_name_has_a_reference_entry(anchors, name):
    assert documented_id(name) in anchors, f"hd.{name} has no entry on the library reference pages"


def test_every_subpackage_name_has_a_reference_entry(anchors):
    missing = []
    for sub in (hd.matrix, hd.networks, hd.dropout, hd.homogeneity):
        for name in sub.__all__:
            obj = getattr(sub, name)
            module = obj.__module__ if callable(obj) and obj.__module__.startswith("hdlcore") else None
            if module is None:
                module = next(m for m in (f"{sub.__name__}.{k}" for k in dir(sub))
                              if name in getattr(getattr(sub, m.rpartition(".")[2], None), "__all__", ()))
            if f"{module}.{name}" not in anchors:
                missing.append(f"{sub.__name__}.{name}")
    assert not missing


def test_reference_entries_link_to_the_chapters_that_use_them(anchors):
    soup = BeautifulSoup((HTML / "library/matrix.html").read_text(), "html.parser")
    entry = soup.find("dt", id="hdlcore.matrix.meta.grow").find_next_sibling("dd")
    assert any("03_matrix_factorization" in a.get("href", "") for a in entry.select("a"))
