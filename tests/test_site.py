"""The built website, loaded in headless Chromium: formulas rendered, figures, launch buttons.

Needs `_build/html` (``make book``). ``make test`` builds it first and sets HDL_REQUIRE_SITE=1,
so that a missing build fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import re
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
#: Pages with no mathematics of their own.
NO_MATH = {"claims", "ledger", "references", "performance", "reproducibility", "library/index"}
#: The generated back matter (tests below check what the build put on each).
BACK_MATTER = ("performance", "reproducibility")
#: The width at which the book is read (and at which code lines must fit their column).
WINDOW = "1400,900"

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
    if page not in NO_MATH:  # every content page has some mathematics
        assert expected > 0, "no formula at all on this page"
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


# ------------------------------------------------------------------ layout, measured in Chromium

#: Run in the page once MathJax has typeset it: which code lines and display equations are wider
#: than their column, whether the top bar is empty, and how many search fields are visible.
MEASURE = """
<script>
(function () {
  function visible(el) { var r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; }
  function measure() {
    var out = {code: [], math: [], codeBlocks: 0, displayMath: 0};
    document.querySelectorAll("main pre").forEach(function (pre) {
      if (pre.closest(".cell_output, .output, #hdl-measure")) return;  // outputs wrap (CSS)
      out.codeBlocks += 1;
      if (pre.scrollWidth > pre.clientWidth + 1) {
        var longest = pre.textContent.split("\\n").reduce(function (a, b) {
          return b.length > a.length ? b : a; }, "");
        out.code.push({line: longest, scrollWidth: pre.scrollWidth, clientWidth: pre.clientWidth});
      }
    });
    document.querySelectorAll('main mjx-container[display="true"]').forEach(function (c) {
      out.displayMath += 1;
      var math = c.querySelector("mjx-math");
      var box = c.parentElement.getBoundingClientRect().width;
      if (math && math.getBoundingClientRect().width > box + 1) {
        var section = c.closest("section");
        out.math.push({section: section ? section.id : "", width: math.getBoundingClientRect().width,
                       column: box});
      }
    });
    var header = document.getElementById("pst-header");
    out.headerHeight = header ? header.getBoundingClientRect().height : 0;
    out.headerItems = header ? header.querySelectorAll("button, input, a, .navbar-item").length : 0;
    out.searchFields = Array.from(document.querySelectorAll(".search-button-field")).filter(visible).length;
    var pre = document.createElement("pre");
    pre.id = "hdl-measure";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  var tries = 0;
  var timer = setInterval(function () {
    tries += 1;
    var mj = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
    if (mj || tries > 50) {
      clearInterval(timer);
      (mj || Promise.resolve()).then(function () { setTimeout(measure, 200); });
    }
  }, 100);
})();
</script>
"""


def measure(chromium: str, page: Path) -> dict:
    """Load a page at the book's reading width and measure its layout (see MEASURE)."""
    probe = page.with_name(f".hdl-measure-{page.name}")  # same folder: relative links work
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    try:
        with tempfile.TemporaryDirectory() as profile:
            run = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={profile}", f"--window-size={WINDOW}",
                 "--hide-scrollbars", "--virtual-time-budget=20000", "--dump-dom", probe.as_uri()],
                capture_output=True, text=True, timeout=180)
    finally:
        probe.unlink()
    assert run.returncode == 0, run.stderr[-2000:]
    found = BeautifulSoup(run.stdout, "html.parser").find(id="hdl-measure")
    assert found is not None, "the measuring script did not run"
    return json.loads(found.get_text())


@pytest.fixture(scope="module")
def layouts(site, chromium) -> dict:
    return {page: measure(chromium, site / f"{page}.html") for page in PAGES}


@pytest.mark.parametrize("page", PAGES)
def test_no_code_line_wider_than_its_column(layouts, page):
    wide = layouts[page]["code"]
    assert not wide, f"{len(wide)} code blocks need a sideways scroll at {WINDOW}: " + "; ".join(
        f"{w['line'].strip()[:90]!r} ({w['scrollWidth']} > {w['clientWidth']} px)" for w in wide)


@pytest.mark.parametrize("page", PAGES)
def test_no_display_equation_wider_than_its_column(layouts, page):
    wide = layouts[page]["math"]
    assert not wide, "display equations cut off at " + WINDOW + ": " + "; ".join(
        f"in section {w['section']!r} ({w['width']:.0f} > {w['column']:.0f} px)" for w in wide)


def test_layout_measure_sees_code_and_equations(layouts):
    """The measurement is not vacuous: it finds the chapters' code blocks and display math."""
    for page in CHAPTERS:
        assert layouts[page]["codeBlocks"] > 0, page
    assert sum(layouts[p]["displayMath"] for p in CHAPTERS) > 0


@pytest.mark.parametrize("page", PAGES)
def test_one_search_field_and_no_empty_top_bar(layouts, page):
    layout = layouts[page]
    assert layout["searchFields"] == 1, f"{layout['searchFields']} visible search fields"
    assert layout["headerHeight"] == 0 and layout["headerItems"] == 0, \
        "pydata-sphinx-theme's top bar is back (set html_theme_options.navbar_persistent: [])"


@pytest.mark.parametrize("page", CHAPTERS)
def test_printed_lines_share_one_output_box(site, page):
    soup = BeautifulSoup((site / f"{page}.html").read_text(), "html.parser")
    outputs = soup.select("div.cell_output")
    assert outputs, "no cell output on this chapter page (was it executed?)"
    for out in outputs:
        for stream in ("stream", "stderr"):
            boxes = [d for d in out.find_all("div", recursive=False)
                     if stream in d.get("class", []) and "output" in d.get("class", [])]
            assert len(boxes) <= 1, f"a cell's {stream} is split over {len(boxes)} boxes"


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_title_comes_before_the_bootstrap_toggle(site, page):
    html = (site / f"{page}.html").read_text()
    soup = BeautifulSoup(html, "html.parser")
    title = soup.select_one("main h1")
    toggle = soup.select_one("main div.cell.tag_hide-cell")
    assert title is not None and toggle is not None
    assert "import hdlcore" in toggle.get_text(), "the hidden cell is the bootstrap cell"
    assert html.index(str(title)[:60]) < html.index(str(toggle)[:60])


def test_references_are_labelled_author_year(site):
    soup = BeautifulSoup((site / "references.html").read_text(), "html.parser")
    labels = [lab.get_text().strip("[]") for lab in soup.select("main .citation .label")]
    assert labels, "no bibliography entry"
    bad = [lab for lab in labels if not re.fullmatch(r"\D+, (\d{4}[a-z]?|n\.d\.)", lab)]
    assert not bad, f"references not labelled 'Author, Year': {bad[:5]}"
    assert len(set(labels)) == len(labels), "two references share a label"


def test_back_matter_pages_are_in_the_sidebar(site):
    soup = BeautifulSoup((site / f"{TOC['root']}.html").read_text(), "html.parser")
    links = {a["href"].split("#")[0] for a in soup.select("nav.bd-docs-nav a[href]")}
    for page in BACK_MATTER:
        assert f"{page}.html" in links, f"{page} is not in the sidebar"


def test_reproducibility_page_lists_every_chapter_with_its_time(site):
    from importlib import metadata

    soup = BeautifulSoup((site / "reproducibility.html").read_text(), "html.parser")
    rows = soup.select("table.hdl-exec-times tbody tr")
    chapters = [r for r in rows if r.find("a", href=True)]
    assert len(chapters) == len(CHAPTERS)
    for row, page in zip(chapters, CHAPTERS, strict=True):
        cells = [td.get_text(strip=True) for td in row.find_all("td")]
        assert row.find("a")["href"].startswith(f"{page}.html"), cells
        assert float(cells[1]) > 0 and cells[2] == "yes", cells
    software = {tr.find_all("td")[0].get_text(strip=True): tr.find_all("td")[1].get_text(strip=True)
                for tr in soup.select("table.hdl-software tbody tr")}
    assert software["numpy"] == metadata.version("numpy")
    assert software["Python"].startswith(".".join(map(str, __import__("sys").version_info[:2])))
    machine = {tr.find_all("td")[0].get_text(strip=True) for tr in soup.select("table.hdl-machine tr")}
    assert {"CPU", "CPU cores", "memory", "GPU"} <= machine


def test_performance_page_shows_every_result_file(site):
    soup = BeautifulSoup((site / "performance.html").read_text(), "html.parser")
    files = sorted((ROOT / "benchmarks" / "results").glob("*.json")) + sorted(
        (ROOT / "benchmarks" / "results" / "gpu").glob("*.json"))
    assert files
    for path in files:
        kind = "gpu" if path.parent.name == "gpu" else "cpu"
        section = soup.find("section", id=re.sub(r"[^a-z0-9]+", "-", f"bench-{kind}-{path.stem}".lower()))
        assert section is not None, f"no section for {path.name}"
        text = section.get_text(" ")
        assert "Reproduce it:" in text and section.find("table") is not None, path.name
        data = json.loads(path.read_text())
        data = data if isinstance(data, dict) else {}
        info = data.get("info") if isinstance(data.get("info"), dict) else {}
        named = [v for v in (info.get("device_name"), data.get("device"), data.get("name"))
                 if isinstance(v, str) and v.startswith("NVIDIA")]
        if kind == "gpu" and named:
            assert named[0] in text, f"{path.name}: the GPU is not named"
    assert soup.select("figure.hdl-bench-figure img[src^='data:image/svg+xml']"), "no plot"
