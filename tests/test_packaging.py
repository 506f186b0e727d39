"""Installing hdlcore never reinstalls torch or numpy; the book's environment is pinned."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

import hdlcore

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements(lines):
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_package_metadata_has_lower_bounds_only():
    deps = PYPROJECT["project"]["dependencies"]
    extras = [d for group in PYPROJECT["project"]["optional-dependencies"].values() for d in group]
    for dep in deps + extras:
        assert "==" not in dep and "<" not in dep and "~=" not in dep, dep
        assert re.search(r">=\s*\d", dep), f"{dep}: give a lower bound"
    names = {re.split(r"[<>=\[ ]", d)[0].lower() for d in deps}
    assert {"numpy", "torch"} <= names


def test_book_environment_is_pinned_exactly():
    reqs = _requirements((ROOT / "requirements.txt").read_text().splitlines())
    assert reqs, "requirements.txt is empty"
    for req in reqs:
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-]+", req), f"not pinned: {req}"
    pinned = {r.split("==")[0].lower(): r.split("==")[1] for r in reqs}
    assert pinned["torch"] == "2.13.0"
    assert pinned["jupyter-book"].startswith("1.")
    for name in ("nbval", "pytest", "numpy", "matplotlib", "cvxpy", "scikit-learn", "hypothesis", "ruff"):
        assert name in pinned, name
    # the package's own dependencies are all part of the book's environment
    for dep in PYPROJECT["project"]["dependencies"]:
        assert re.split(r"[<>=\[ ]", dep)[0].lower() in pinned, dep


def test_version_is_consistent():
    assert hdlcore.__version__ == PYPROJECT["project"]["version"]


def test_every_export_resolves():
    for name in hdlcore.__all__:
        assert getattr(hdlcore, name) is not None, name
