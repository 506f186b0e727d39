"""The machinery catches a false claim: nbval fails, and so does the book build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "false_claim.ipynb"


@pytest.mark.slow
def test_nbval_fails_on_a_false_check(tmp_path):
    nb = tmp_path / "false_claim.ipynb"
    shutil.copy(FIXTURE, nb)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-c", "/dev/null", "--nbval-lax", "--nbval-current-env", str(nb)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAIL [fixture-false] two plus two is five" in run.stdout
    assert "1 failed" in run.stdout


@pytest.mark.slow
def test_book_build_fails_on_a_false_check(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(FIXTURE, book / "false_claim.ipynb")
    (book / "intro.md").write_text("# Intro\n")
    (book / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: false_claim\n")
    config = (ROOT / "_config.yml").read_text()
    (book / "_config.yml").write_text(
        config.replace("hdl_checks: _ext/", f"hdl_checks: {ROOT / '_ext'}/")
              .replace("html_extra_path: [node_modules]", "html_extra_path: []")
              .replace("  - references.bib", f"  - {ROOT / 'references.bib'}"))
    jb = Path(sys.executable).with_name("jupyter-book")
    run = subprocess.run([str(jb), "build", str(book), "--all", "-W", "-n", "--keep-going"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode != 0, run.stdout[-3000:]
    assert "fixture-false" in run.stdout + run.stderr
