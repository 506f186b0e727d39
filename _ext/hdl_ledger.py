"""Sphinx extension: the talk's claims ledger, with verdicts decided by this build's checks.

The claims, the talk's words, the book's verdicts and the ids of the checks that decide each
claim live in one data file (``ledger.yml`` at the root of the book; config value
``hdl_ledger_file``). The directive ::

    ```{ledger}
    ```

renders them as one table. A claim shows its verdict (holds, holds with conditions, imprecise,
false) only when every deciding check ran in the same build and passed; otherwise it shows
**FAILING** (a deciding check failed) or **MISSING** (a deciding check did not run). The check
records come from :mod:`hdl_checks`, which collects every ``hdlcore.notebook.check`` run while
the chapters execute.

A FAILING claim is always a build warning. A MISSING claim is a build warning when
``hdl_ledger_strict`` is true (the default; an error under ``-W``), and an info message
otherwise; the environment variable ``HDL_LEDGER_STRICT`` (``1``/``0``) overrides the config.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from docutils import nodes
from hdl_checks import all_records, check_link, measured_text, table_skeleton
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

VERDICTS = ("holds", "holds with conditions", "imprecise", "false")
FAILING, MISSING = "FAILING", "MISSING"
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_AT = re.compile(r"^\d{1,3}:[0-5]\d$")
_FIELDS = {"id", "claim", "talk", "at", "verdict", "why", "checks"}
_REQUIRED = {"id", "claim", "verdict", "why", "checks"}


class LedgerError(ValueError):
    """The ledger file is malformed; the message names the file, the claim and the field."""


@dataclass(frozen=True)
class Claim:
    """One claim of the talk, as stored in the ledger file."""

    id: str
    claim: str
    verdict: str
    why: str
    checks: tuple[str, ...]
    talk: str = ""
    at: str = ""


@dataclass(frozen=True)
class Status:
    """What the page shows for a claim, given the checks that ran in this build."""

    shown: str  # the claim's verdict, FAILING or MISSING
    failing: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def load_ledger(path: str | Path) -> list[Claim]:
    """Read and validate the ledger file: a mapping with a list ``claims``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LedgerError(f"{path}: cannot read the ledger: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list) or not data["claims"]:
        raise LedgerError(f"{path}: expected a mapping with a non-empty list 'claims'")
    claims, seen = [], set()
    for n, raw in enumerate(data["claims"], 1):
        where = f"{path}: claim {n}"
        if not isinstance(raw, dict):
            raise LedgerError(f"{where}: expected a mapping, got {raw!r}")
        where = f"{path}: claim {n} ({raw.get('id', '?')})"
        if missing := sorted(_REQUIRED - set(raw)):
            raise LedgerError(f"{where}: missing field(s) {', '.join(missing)}")
        if unknown := sorted(set(raw) - _FIELDS):
            raise LedgerError(f"{where}: unknown field(s) {', '.join(unknown)}")
        for field in ("id", "claim", "verdict", "why", "talk", "at"):
            if field in raw and (not isinstance(raw[field], str) or not raw[field].strip()):
                raise LedgerError(f"{where}: '{field}' must be a non-empty string")
        if not _ID.match(raw["id"]):
            raise LedgerError(f"{where}: 'id' must be [a-z0-9] words joined by '-'")
        if raw["id"] in seen:
            raise LedgerError(f"{where}: duplicate id")
        seen.add(raw["id"])
        if raw["verdict"] not in VERDICTS:
            raise LedgerError(f"{where}: 'verdict' must be one of {', '.join(VERDICTS)}; "
                              f"got {raw['verdict']!r}")
        if "at" in raw and not _AT.match(raw["at"]):
            raise LedgerError(f"{where}: 'at' must be a time m:ss; got {raw['at']!r}")
        checks = raw["checks"]
        if (not isinstance(checks, list) or not checks
                or not all(isinstance(c, str) and _ID.match(c) for c in checks)):
            raise LedgerError(f"{where}: 'checks' must be a non-empty list of check ids")
        if len(set(checks)) != len(checks):
            raise LedgerError(f"{where}: 'checks' lists an id twice")
        claims.append(Claim(id=raw["id"], claim=raw["claim"].strip(),
                            verdict=raw["verdict"], why=raw["why"].strip(),
                            checks=tuple(checks), talk=raw.get("talk", "").strip(),
                            at=raw.get("at", "")))
    return claims


def claim_status(claim: Claim, records: dict[str, dict]) -> Status:
    """The verdict a claim may show: its own only when every deciding check ran and passed."""
    failing = tuple(c for c in claim.checks if c in records and not records[c]["passed"])
    missing = tuple(c for c in claim.checks if c not in records)
    if failing:
        return Status(FAILING, failing, missing)
    if missing:
        return Status(MISSING, failing, missing)
    return Status(claim.verdict)


def summary(claims: list[Claim], statuses: list[Status]) -> str:
    """One sentence: how many claims, and how many of each verdict in this build."""
    counts = {v: sum(s.shown == v for s in statuses) for v in (*VERDICTS, FAILING, MISSING)}
    parts = [f"{counts[v]} {v}" for v in VERDICTS if counts[v]]
    text = f"{len(claims)} claims of the talk; decided by this build's checks: " + (
        ", ".join(parts) if parts else "none")
    if counts[FAILING]:
        text += f"; {counts[FAILING]} FAILING (a deciding check failed)"
    if counts[MISSING]:
        n = len({c for s in statuses for c in s.missing})
        text += (f"; {counts[MISSING]} MISSING ({n} deciding check{'s' * (n != 1)} "
                 "not run in this build)")
    return text + "."


def _css(verdict: str) -> str:
    return "hdl-verdict-" + re.sub(r"[^a-z]+", "-", verdict.lower()).strip("-")


def _verdict_cell(claim: Claim, status: Status) -> nodes.entry:
    cell = nodes.entry()
    para = nodes.paragraph()
    para += nodes.inline(text=status.shown, classes=["hdl-verdict", _css(status.shown)])
    cell += para
    if status.shown in (FAILING, MISSING):
        cell += nodes.paragraph(text=f"(verdict when checked: {claim.verdict})",
                                classes=["hdl-ledger-note"])
    return cell


def _checks_cell(app, fromdoc: str, claim: Claim, records: dict[str, dict]) -> nodes.entry:
    cell = nodes.entry()
    for check_id in claim.checks:
        para = nodes.paragraph()
        entry = records.get(check_id)
        link = check_link(app, fromdoc, check_id, "")
        if isinstance(link, nodes.reference):
            link += nodes.literal(text=check_id)
            if entry is not None:
                link["reftitle"] = entry["claim"] + ": " + "; ".join(
                    line for line, _ in measured_text(entry))
            para += link
        else:
            para += nodes.literal(text=check_id)
        outcome = "missing" if entry is None else ("pass" if entry["passed"] else "FAIL")
        para += nodes.Text(" ")
        para += nodes.inline(text=outcome, classes=["hdl-check-outcome", f"hdl-check-{outcome}"])
        cell += para
    return cell


def ledger_table(app, fromdoc: str, claims: list[Claim],
                 records: dict[str, dict]) -> list[nodes.Node]:
    """The summary sentence and the table, for the page ``fromdoc``."""
    statuses = [claim_status(c, records) for c in claims]
    out: list[nodes.Node] = [nodes.paragraph(text=summary(claims, statuses),
                                             classes=["hdl-ledger-summary"])]
    table, body = table_skeleton(("The talk", "Verdict", "Why", "Decided by"), (38, 12, 32, 18),
                                 "hdl-ledger")
    for claim, status in zip(claims, statuses, strict=True):
        row = nodes.row(ids=[f"claim-{claim.id}"], classes=[_css(status.shown)])
        talk = nodes.entry()
        talk += nodes.paragraph("", "", nodes.strong(text=claim.claim))
        if claim.talk:
            quote = nodes.paragraph(classes=["hdl-ledger-quote"])
            quote += nodes.emphasis(text=f"“{claim.talk}”")
            if claim.at:
                quote += nodes.Text(f" (≈ {claim.at})")
            talk += quote
        row += talk
        row += _verdict_cell(claim, status)
        row += nodes.entry("", nodes.paragraph(text=claim.why))
        row += _checks_cell(app, fromdoc, claim, records)
        body += row
    out.append(table)
    return out


def is_strict(config_value: bool) -> bool:
    """Whether a MISSING claim is a warning: ``HDL_LEDGER_STRICT`` overrides the config."""
    env = os.environ.get("HDL_LEDGER_STRICT", "").strip().lower()
    if env in ("1", "true", "yes", "on"):
        return True
    if env in ("0", "false", "no", "off"):
        return False
    return bool(config_value)


class ledger_placeholder(nodes.General, nodes.Element):
    """Replaced by the ledger once every page has been read and executed."""


class LedgerDirective(SphinxDirective):
    has_content = False

    def run(self):
        path = Path(self.env.srcdir) / self.config.hdl_ledger_file
        self.env.note_dependency(str(path))
        try:
            load_ledger(path)
        except LedgerError as exc:
            raise self.error(str(exc)) from None
        node = ledger_placeholder(path=str(path))
        self.set_source_info(node)
        self.env.hdl_ledger_docs = getattr(self.env, "hdl_ledger_docs", set()) | {
            self.env.docname}
        return [node]


def _doctree_resolved(app, doctree, fromdoc) -> None:
    for node in list(doctree.findall(ledger_placeholder)):
        claims = load_ledger(node["path"])
        records = all_records(app)
        strict = is_strict(app.config.hdl_ledger_strict)
        for claim in claims:
            status = claim_status(claim, records)
            if status.failing:
                logger.warning(f"ledger: claim '{claim.id}' is FAILING: check(s) "
                               f"{', '.join(status.failing)} failed in this build",
                               location=node)
            if status.missing:
                message = (f"ledger: claim '{claim.id}' is MISSING check(s) "
                           f"{', '.join(status.missing)} (not run in this build)")
                if strict:
                    logger.warning(message + "; set hdl_ledger_strict: false to allow",
                                   location=node)
                else:
                    logger.info(message)
        node.replace_self(ledger_table(app, fromdoc, claims, records))


def _outdated(app, env, added, changed, removed) -> list[str]:
    """The ledger page depends on every chapter's checks: rebuild it whenever any is read."""
    docs = getattr(env, "hdl_ledger_docs", set())
    return sorted(d for d in docs if d in env.found_docs) if (added or changed) else []


def _purge(app, env, docname) -> None:
    getattr(env, "hdl_ledger_docs", set()).discard(docname)


def setup(app):
    app.setup_extension("hdl_checks")
    app.add_config_value("hdl_ledger_file", "ledger.yml", "env")
    app.add_config_value("hdl_ledger_strict", True, "env")
    app.add_node(ledger_placeholder)
    app.add_directive("ledger", LedgerDirective)
    app.connect("env-get-outdated", _outdated)
    app.connect("env-purge-doc", _purge)
    app.connect("doctree-resolved", _doctree_resolved)
    return {"version": "0.1", "env_version": 1, "parallel_read_safe": False,
            "parallel_write_safe": True}


__all__ = ["VERDICTS", "FAILING", "MISSING", "Claim", "Status", "LedgerError", "load_ledger",
           "claim_status", "summary", "ledger_table", "is_strict"]
