"""The built website, loaded in headless Chromium: formulas rendered, figures, launch buttons.

Needs `_build/html` (``make book``). ``make test`` builds it first and sets HDL_REQUIRE_SITE=1,
so that a missing build fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
PAGES = [TOC["root"]] + [c["file"] for part in TOC["parts"] for c in part["chapters"]]
CHAPTERS = [p for p in PAGES if p.startswith("chapters/")]
REPO = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]

pytestmark = pytest.mark.site


@pytest.fixture(scope="module")
def site() -> Path:
    if not (HTML / "index.html").exists():
        if os.environ.get("HDL_REQUIRE_SITE"):
            pytest.fail("_build/html is missing: `make book` must run before the site tests")
        pytest.skip("_build/html is missing (run `make book`)")
    return HTML


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("HDL_REQUIRE_SITE"):
            pytest.fail("chromium is missing: `make setup` installs Debian's chromium")
        pytest.skip("chromium is not installed")
    return exe


def render(chromium: str, page: Path) -> BeautifulSoup:
    """The DOM of a page after its scripts (MathJax) ran, in headless Chromium."""
    with tempfile.TemporaryDirectory() as profile:
        run = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
             "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return BeautifulSoup(run.stdout, "html.parser")


def test_every_page_of_the_toc_was_built(site):
    for page in PAGES:
        assert (site / f"{page}.html").exists(), page


@pytest.mark.parametrize("page", PAGES)
def test_formulas_rendered(site, chromium, page):
    raw = BeautifulSoup((site / f"{page}.html").read_text(), "html.parser")
    expected = len(raw.select(".math"))
    dom = render(chromium, site / f"{page}.html")
    maths = dom.select(".math")
    assert len(maths) == expected
    unrendered = [m.get_text()[:60] for m in maths if m.find("mjx-container") is None]
    assert not unrendered, f"formulas left as raw TeX: {unrendered[:5]}"
    assert len(dom.find_all("mjx-container")) >= expected
    if page != "references":  # every content page has some mathematics
        assert expected > 0 or page in ("claims", "ledger"), "no formula at all on this page"
    for tag in dom(["pre", "code", "script", "style", "mjx-container", "textarea"]):
        tag.decompose()
    body = dom.body.get_text(" ") if dom.body else ""
    for raw_tex in ("\\(", "\\[", "$$", "\\begin{"):
        assert raw_tex not in body, f"raw TeX {raw_tex!r} left in the page text"


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_has_figures_and_launch_buttons(site, page):
    html = (site / f"{page}.html")
    soup = BeautifulSoup(html.read_text(), "html.parser")
    images = [img["src"] for img in soup.select("main img") if "_images/" in img.get("src", "")]
    assert images, "no figure on this chapter page"
    for src in images:
        assert (html.parent / src).resolve().exists(), f"missing image {src}"
    captions = soup.select("figure figcaption .caption-number")
    assert captions, "no numbered figure caption"
    colab = f"colab.research.google.com/github/{REPO.removeprefix('https://github.com/')}"
    links = [a["href"] for a in soup.find_all("a", href=True)]
    assert any(colab in h and h.endswith(f"{page}.ipynb") for h in links), "no Colab button"
    assert any(h.endswith(f"{Path(page).name}.ipynb") and "_sources" in h for h in links), \
        "no download button for the notebook"


def test_math_is_served_offline(site):
    assert (site / "mathjax" / "es5" / "tex-mml-chtml.js").exists()
    for page in PAGES:
        text = (site / f"{page}.html").read_text()
        assert "cdn.jsdelivr.net" not in text and "mathjax@3/es5" not in text, page


def test_claims_page_lists_this_builds_checks(site):
    soup = BeautifulSoup((site / "claims.html").read_text(), "html.parser")
    rows = soup.select("table.hdl-checks tbody tr")
    assert len(rows) >= len(CHAPTERS)
    assert all(r.find("a", href=True) for r in rows), "a claim without a link to its statement"
    assert not any(r.find_all("td")[-1].get_text(strip=True) != "pass" for r in rows)


def test_ledger_shows_a_verdict_decided_by_this_builds_checks(site):
    soup = BeautifulSoup((site / "ledger.html").read_text(), "html.parser")
    rows = soup.select("table.hdl-ledger tbody tr")
    assert len(rows) >= 21, "fewer claims than issue 11 lists"
    verdicts = ("holds", "holds with conditions", "imprecise", "false", "MISSING")
    for row in rows:
        cells = row.find_all("td")
        shown = cells[1].get_text(" ", strip=True).split(" (")[0]
        assert shown in verdicts, f"{row.get('id')}: {shown}"
        for line in cells[3].find_all("p"):
            ran = line.get_text(" ", strip=True).endswith(("pass", "FAIL"))
            assert not ran or line.find("a", href=True), f"{row.get('id')}: check without a link"
