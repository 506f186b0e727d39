"""Sphinx extension: collect every ``hdlcore.notebook.check`` run by the build into tables.

While a notebook executes during the build, :func:`hdlcore.notebook.check` appends its
outcome to the file named by ``HDLCORE_CHECKS_LOG``; this extension sets that variable, and
``HDLCORE_CHECKS_DOC`` to the page being read, so each record knows its chapter.

The directive ::

    ```{checks}
    ```

renders the checks of the current page ("What we checked"), and ``` ```{checks} all``` ```
every check of the book with the environment that ran it. Each row links to the statement
labelled with the check's id (``(mf-polar-le-one)=`` in the notebook); a check without such a
label, or a page whose table is empty, is a build warning (an error under ``-W``).
"""

from __future__ import annotations

import json
import os
import platform
import uuid
from importlib import metadata
from pathlib import Path

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

_VERSIONS = ("hdlcore", "numpy", "scipy", "torch", "matplotlib", "cvxpy", "scikit-learn",
             "jupyter-book", "sphinx", "myst-nb")


class checks_placeholder(nodes.General, nodes.Element):
    """Replaced by a table once every page has been read."""


class ChecksDirective(SphinxDirective):
    optional_arguments = 1
    has_content = False

    def run(self):
        scope = (self.arguments[0] if self.arguments else "page").strip()
        if scope not in ("page", "all"):
            raise self.error(f"checks: scope must be 'page' or 'all', got {scope!r}")
        node = checks_placeholder(scope=scope, docname=self.env.docname)
        self.set_source_info(node)
        return [node]


def _log_path(app) -> Path:
    return Path(app.doctreedir) / "hdl_checks.jsonl"


def _builder_inited(app) -> None:
    path = _log_path(app)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    os.environ["HDLCORE_CHECKS_LOG"] = str(path)
    os.environ["HDLCORE_CHECKS_RUN"] = uuid.uuid4().hex
    if not hasattr(app.env, "hdl_checks"):
        app.env.hdl_checks = {}
        app.env.hdl_setups = {}


def _source_read(app, docname, source) -> None:
    os.environ["HDLCORE_CHECKS_DOC"] = docname


def _doctree_read(app, doctree) -> None:
    docname = app.env.docname
    run = os.environ.get("HDLCORE_CHECKS_RUN")
    checks: dict[str, dict] = {}
    setups = []
    with open(_log_path(app), encoding="utf-8") as fh:
        for line in fh:
            entry = json.loads(line)
            if entry.get("doc") != docname or entry.get("run") != run:
                continue
            if entry.get("kind") == "setup":
                setups.append(entry)
            else:
                checks[entry["id"]] = entry
    if checks:
        app.env.hdl_checks[docname] = list(checks.values())
    if setups:
        app.env.hdl_setups[docname] = setups[-1]


def _purge(app, env, docname) -> None:
    getattr(env, "hdl_checks", {}).pop(docname, None)
    getattr(env, "hdl_setups", {}).pop(docname, None)


def _merge(app, env, docnames, other) -> None:
    for attr in ("hdl_checks", "hdl_setups"):
        getattr(env, attr).update({d: getattr(other, attr)[d] for d in docnames
                                   if d in getattr(other, attr)})


def measured_text(entry: dict) -> list[tuple[str, bool | None]]:
    """What a check record measured, in words: one ``(line, passed)`` per part.

    A single-condition check gives one line (``"0.0213 ≤ 0.05"``, ``passed`` None since the
    row's result says it); a :func:`hdlcore.notebook.check_all` record gives one line per named
    part (``"polar at most 1: 0.9999 ≤ 1.000001"``) with that part's outcome. Records written
    before parts existed fall back to their value and bound.
    """
    parts = entry.get("parts") or []
    if parts:
        return [(f"{p['name']}: {p['text']}", bool(p["passed"])) for p in parts]
    text = entry.get("text") or " ".join(x for x in (entry.get("value", ""),
                                                     entry.get("bound", "")) if x)
    return [(text or "true", None)]


def check_link(app, fromdoc: str, check_id: str, text: str, warn_from: str | None = None):
    """A reference to the statement labelled ``(check_id)=``, or plain text when none exists.

    With ``warn_from`` (the page the check ran on) a missing label is a build warning.
    """
    target = app.env.get_domain("std").anonlabels.get(check_id)
    if target is None:
        if warn_from is not None:
            logger.warning(f"check '{check_id}' has no statement labelled "
                           f"({check_id})= in {warn_from}", location=fromdoc)
        return nodes.Text(text)
    uri = app.builder.get_relative_uri(fromdoc, target[0]) + "#" + target[1]
    return nodes.reference("", text, refuri=uri, internal=True)


def _measured_cell(entry: dict) -> nodes.entry:
    cell = nodes.entry()
    for line, ok in measured_text(entry):
        para = nodes.paragraph(text=line)
        if ok is False:
            para += nodes.strong(text="  FAIL")
        cell += para
    return cell


def table_skeleton(headers: tuple[str, ...], widths: tuple[int, ...],
                   css: str) -> tuple[nodes.table, nodes.tbody]:
    """An empty docutils table with its header row; rows go into the returned body."""
    table = nodes.table(classes=[css])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    row = nodes.row()
    for h in headers:
        row += nodes.entry("", nodes.paragraph(text=h))
    head += row
    body = nodes.tbody()
    group += body
    return table, body


def _table(app, fromdoc: str, rows: list[dict]) -> nodes.table:
    table, body = table_skeleton(("Claim", "Measured in this build", "Result"), (50, 42, 8), "hdl-checks")
    for entry in rows:
        claim = nodes.paragraph()
        claim += check_link(app, fromdoc, entry["id"], entry["claim"], warn_from=entry["doc"])
        claim += nodes.Text(" ")
        claim += nodes.literal(text=entry["id"])
        row = nodes.row()
        row += nodes.entry("", claim)
        row += _measured_cell(entry)
        row += nodes.entry("", nodes.paragraph(text="pass" if entry["passed"] else "FAIL"))
        body += row
    return table


def all_records(app) -> dict[str, dict]:
    """Every check recorded in this build, by id (in reading order of the pages)."""
    return {e["id"]: e for doc in _toc_order(app) for e in app.env.hdl_checks.get(doc, [])}


def _environment(app) -> nodes.Node:
    lines = [f"Python {platform.python_version()} on {platform.machine()}"]
    for name in _VERSIONS:
        try:
            lines.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    para = nodes.paragraph(text="Built with " + ", ".join(lines) + ".")
    devices = sorted({s.get("device", "?") for s in app.env.hdl_setups.values()})
    if devices:
        para += nodes.Text(" Chapters ran on: " + ", ".join(devices) + ".")
    return para


def _doctree_resolved(app, doctree, fromdoc) -> None:
    env = app.env
    for node in list(doctree.findall(checks_placeholder)):
        if node["scope"] == "page":
            rows = env.hdl_checks.get(node["docname"], [])
            if not rows:
                logger.warning(f"no checks were recorded for {node['docname']} "
                               "(was it executed?)", location=node)
            node.replace_self(_table(app, fromdoc, rows) if rows else [])
            continue
        out: list[nodes.Node] = []
        order = [d for d in _toc_order(app) if d in env.hdl_checks]
        total = sum(len(env.hdl_checks[d]) for d in order)
        passed = sum(e["passed"] for d in order for e in env.hdl_checks[d])
        out.append(nodes.paragraph(
            text=f"{total} claims checked in {len(order)} chapters during this build: "
                 f"{passed} passed, {total - passed} failed."))
        out.append(_environment(app))
        for doc in order:
            section = nodes.rubric(text=nodes.Text(env.titles[doc].astext()))
            out += [section, _table(app, fromdoc, env.hdl_checks[doc])]
        node.replace_self(out)


def _toc_order(app) -> list[str]:
    """Every page in reading order: the root, then its toctrees depth first."""
    seen: list[str] = []

    def walk(doc: str) -> None:
        if doc in seen:
            return
        seen.append(doc)
        for child in app.env.toctree_includes.get(doc, []):
            walk(child)

    walk(app.config.root_doc)
    return seen


def setup(app):
    app.add_node(checks_placeholder)
    app.add_directive("checks", ChecksDirective)
    app.connect("builder-inited", _builder_inited)
    app.connect("source-read", _source_read)
    app.connect("doctree-read", _doctree_read)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _doctree_resolved)
    return {"version": "0.1", "env_version": 1, "parallel_read_safe": False,
            "parallel_write_safe": True}
