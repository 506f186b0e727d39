"""Sphinx extension: the book's generated back matter and its bibliography labels.

Two directives, each filled in by the build from what it measured or found:

``` ```{reproducibility}``` ```
    the Python and package versions, the machine (CPU model, cores, memory, GPU), and each
    chapter's execution time in this build (myst-nb's execution record,
    ``env.nb_metadata[doc]["exec_data"]``). A chapter that was not executed is a build warning.

``` ```{benchmarks}``` ```
    one section per JSON file under ``benchmarks/results/`` and ``benchmarks/results/gpu/``:
    the device it ran on (as the JSON names it), its tables, the command that reproduces it, and
    plots drawn at build time from the JSON. A file of an unknown shape is shown as generic
    tables, never an error, so new results appear on the next build.

It also registers the pybtex style ``authoryear``: the references page labels each entry
"Author and Author, Year" like the citations in the text (``bibtex_reference_style:
author_year``), instead of numbers.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from docutils import nodes
from hdl_checks import _toc_order
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

#: Packages whose versions the reproducibility page lists, in this order.
PACKAGES = ("hdlcore", "numpy", "scipy", "torch", "matplotlib", "cvxpy", "scs", "clarabel",
            "scikit-learn", "jupyter-book", "sphinx", "myst-nb", "myst-parser", "jupyter-cache",
            "nbclient", "ipykernel", "sphinx-book-theme", "pydata-sphinx-theme",
            "sphinxcontrib-bibtex", "pytest", "nbval", "ruff")

#: Folders (relative to the book's root) whose JSON files the performance page shows.
RESULT_DIRS = ("benchmarks/results", "benchmarks/results/gpu")

#: The command that reruns every GPU benchmark at once (benchmarks/gpu_all.sh).
GPU_ALL = "OUT=benchmarks/results/gpu bash benchmarks/gpu_all.sh"


# ---------------------------------------------------------------------------- machine facts

def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def memory_bytes() -> int | None:
    """Total physical memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def gpus() -> list[str]:
    """The CUDA devices torch sees in the build's own process (empty on a CPU machine)."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [f"{torch.cuda.get_device_name(i)} "
            f"({torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB)"
            for i in range(torch.cuda.device_count())]


def machine_facts() -> list[tuple[str, str]]:
    """(what, value) rows describing the machine that runs the build."""
    logical = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = logical
    mem = memory_bytes()
    rows = [
        ("operating system", platform.platform()),
        ("CPU", cpu_model()),
        ("CPU cores", f"{logical} logical" + (f", {usable} usable by the build" if usable != logical
                                                else "")),
        ("memory", f"{mem / 2**30:.1f} GiB" if mem else "unknown"),
        ("GPU", "; ".join(gpus()) or "none (torch sees no CUDA device)"),
    ]
    if hasattr(os, "getloadavg"):
        rows.append(("load average when the build started (1, 5, 15 min)",
                     ", ".join(f"{x:.2f}" for x in _START["load"])))
    return rows


def software_facts() -> list[tuple[str, str]]:
    """(package, version) rows: Python first, then :data:`PACKAGES` that are installed."""
    rows = [("Python", f"{platform.python_version()} ({platform.python_implementation()})")]
    for name in PACKAGES:
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            pass
    return rows


def git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return out.stdout.strip() + (" with uncommitted changes" if dirty else "")


_START: dict = {"load": (0.0, 0.0, 0.0), "time": 0.0}


def _builder_inited(app) -> None:
    _START["load"] = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    _START["time"] = time.time()


# ---------------------------------------------------------------------------- docutils helpers

def _table(headers: list[str] | None, rows: list[list], classes: list[str]) -> nodes.table:
    """A docutils table (no header row when ``headers`` is None); a cell is text, or a node
    put in as it is."""
    table = nodes.table(classes=classes)
    cols = len(headers) if headers else max((len(r) for r in rows), default=1)
    group = nodes.tgroup(cols=cols)
    table += group
    for _ in range(cols):
        group += nodes.colspec(colwidth=1)
    if headers:
        head = nodes.thead()
        group += head
        row = nodes.row()
        for h in headers:
            row += nodes.entry("", nodes.paragraph(text=str(h)))
        head += row
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for cell in cells:
            if isinstance(cell, nodes.Node):
                row += nodes.entry("", cell)
            else:
                row += nodes.entry("", nodes.paragraph(text=str(cell)))
        body += row
    return table


def _para(*parts) -> nodes.paragraph:
    para = nodes.paragraph()
    for part in parts:
        para += part if isinstance(part, nodes.Node) else nodes.Text(part)
    return para


def _section(document, title: str, name: str) -> nodes.section:
    section = nodes.section(ids=[nodes.make_id(name)], names=[nodes.fully_normalize_name(name)])
    section += nodes.title(text=title)
    document.note_implicit_target(section)
    return section


# ---------------------------------------------------------------------------- reproducibility

class reproducibility_placeholder(nodes.General, nodes.Element):
    """Replaced by the tables once every chapter has been executed and read."""


class ReproducibilityDirective(SphinxDirective):
    has_content = False

    def run(self):
        self.env.hdl_repro_docs = getattr(self.env, "hdl_repro_docs", set()) | {self.env.docname}
        node = reproducibility_placeholder(docname=self.env.docname)
        self.set_source_info(node)
        return [node]


def executed_chapters(app) -> list[tuple[str, dict | None]]:
    """(docname, myst-nb's execution record or None) for every notebook page, in TOC order."""
    env = app.env
    records = getattr(env, "nb_metadata", {})
    out = []
    for doc in _toc_order(app):
        if doc not in env.found_docs or Path(env.doc2path(doc)).suffix != ".ipynb":
            continue
        out.append((doc, records.get(doc, {}).get("exec_data")))
    return out


def _reproducibility(app, fromdoc: str, node) -> list[nodes.Node]:
    env = app.env
    out: list[nodes.Node] = []
    commit = git_commit(Path(app.srcdir))
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(_START["time"] or time.time()))
    out.append(_para(f"This build started on {stamp}" +
                     (f" from commit {commit}" if commit else "") + "."))

    rows = []
    total = 0.0
    setups = getattr(env, "hdl_setups", {})
    for doc, data in executed_chapters(app):
        link = nodes.reference("", env.titles[doc].astext(),
                               refuri=app.builder.get_relative_uri(fromdoc, doc), internal=True)
        device = setups.get(doc, {}).get("device", "not recorded")
        if not data or data.get("runtime") is None:
            logger.warning(f"{doc} was not executed in this build: no execution time to show",
                           location=node)
            rows.append([_para(link), "not executed", "", device])
            continue
        total += float(data["runtime"])
        ok = "yes" if data.get("succeeded") else "NO"
        rows.append([_para(link), f"{float(data['runtime']):.1f}", ok, device])
    rows.append([_para(nodes.strong(text="all chapters")), f"{total:.1f}", "", ""])
    out.append(nodes.rubric(text="Execution time of each chapter in this build"))
    out.append(_para("Seconds from starting the notebook's kernel to its last cell, as myst-nb "
                     "measured them while this build executed every chapter "
                     "(execution mode: ", nodes.literal(text=str(app.config.nb_execution_mode)),
                     ")."))
    out.append(_table(["chapter", "seconds", "ran without error", "device"], rows,
                      ["hdl-repro", "hdl-exec-times"]))

    out.append(nodes.rubric(text="Machine"))
    out.append(_table(None, [list(r) for r in machine_facts()], ["hdl-repro", "hdl-machine"]))
    out.append(nodes.rubric(text="Software"))
    out.append(_table(["package", "version"], [list(r) for r in software_facts()],
                      ["hdl-repro", "hdl-software"]))
    return out


# ---------------------------------------------------------------------------- benchmarks

class BenchmarksDirective(SphinxDirective):
    """One section per benchmark JSON file, from the files present at build time."""

    has_content = False

    def run(self):
        root = Path(self.env.srcdir)
        out: list[nodes.Node] = []
        files = benchmark_files(root)
        self.env.hdl_bench_files = [str(p) for p in files]
        self.env.hdl_bench_docs = getattr(self.env, "hdl_bench_docs", set()) | {self.env.docname}
        if not files:
            return [_para("No benchmark results in " + ", ".join(RESULT_DIRS) + " yet.")]
        for kind, title in (("cpu", "CPU results"), ("gpu", "GPU results")):
            group = [p for p in files if _kind(p) == kind]
            if not group:
                continue
            part = _section(self.state.document, title, f"benchmarks-{kind}")
            if kind == "gpu":
                part += _para("Every GPU result at once, on a CUDA machine: ",
                              nodes.literal(text=GPU_ALL), ".")
            for path in group:
                self.env.note_dependency(str(path))
                part += render_result(self.state.document, root, path)
            out.append(part)
        return out


def benchmark_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for folder in RESULT_DIRS:
        files += sorted((root / folder).glob("*.json"))
    return files


def _kind(path: Path) -> str:
    return "gpu" if path.parent.name == "gpu" else "cpu"


def load(path: Path):
    """The JSON of a result file (NaN and Infinity allowed, as Python writes them)."""
    return json.loads(path.read_text())


def command_for(root: Path, path: Path, data) -> str | None:
    """The command that rewrites ``path``: the JSON's own ``command`` if it records one, else
    the benchmark script whose name the file's name starts with, with the options the JSON
    records (threads) and the output the file's name needs."""
    if isinstance(data, dict) and isinstance(data.get("command"), str):
        return data["command"]
    parts = path.stem.split("_")
    gpu = _kind(path) == "gpu"
    for k in range(len(parts), 0, -1):
        name = "_".join(parts[:k])
        script = root / "benchmarks" / (f"{name}.py" if gpu else f"bench_{name}.py")
        if script.exists():
            break
    else:
        return None
    rel = script.relative_to(root).as_posix()
    source = script.read_text()
    args: list[str] = []
    info = data.get("info", {}) if isinstance(data, dict) else {}
    threads = info.get("threads_requested") if isinstance(info, dict) else None
    if threads is not None and '"--threads"' in source:
        args += ["--threads", str(threads)]
    if gpu:
        args += ["--out", path.parent.relative_to(root).as_posix()]
        return " ".join(["python3", rel, *args])
    if name != path.stem:
        args += ["--out", path.relative_to(root).as_posix()]
    return " ".join(["python", rel, *args])


def device_for(path: Path, data) -> str:
    """The device as the JSON names it (a GPU's name where it records one)."""
    info = data.get("info", {}) if isinstance(data, dict) else {}
    if not isinstance(info, dict):
        info = {}
    merged = {**(data if isinstance(data, dict) else {}), **info}
    if _kind(path) == "gpu":
        for key in ("device_name", "gpu", "name", "device"):
            value = merged.get(key)
            if isinstance(value, str) and value not in ("cuda", "cpu") and not value.startswith("cuda:"):
                return value
        return "a GPU (its name is not recorded in the JSON)"
    bits = []
    for key in ("machine", "cpu", "cpu_model"):
        if isinstance(merged.get(key), str):
            bits.append(merged[key])
            break
    if merged.get("cpu_count") is not None:
        bits.append(f"{merged['cpu_count']} cores")
    threads = merged.get("threads", merged.get("torch_threads"))
    if threads is not None:
        bits.append(f"{threads} thread{'s' if threads != 1 else ''}")
    return ", ".join(bits) or "CPU (not described in the JSON)"


def fmt(value) -> str:
    """A JSON value as a short table cell."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            short = f"{value:.4g}"
            if float(short) != value and abs(value - 1) < 1e-3:
                return f"{value:.9g}"  # a polar near 1: its digits are the point
            return short
        return f"{value:.3e}"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if len(value) <= 3 and all(_is_scalar(v) for v in value):
            return "[" + ", ".join(fmt(v) for v in value) + "]"
        numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers and len(numbers) == len(value):
            return f"{len(value)} values, {fmt(min(numbers))} to {fmt(max(numbers))}"
        return f"{len(value)} items"
    if isinstance(value, dict):
        text = ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
        return text if len(text) <= 160 else text[:157] + "…"
    return str(value)


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _records_table(records: list[dict]) -> nodes.table:
    headers: list[str] = []
    for rec in records:
        for key in rec:
            if key not in headers:
                headers.append(key)
    rows = [[fmt(rec.get(h)) for h in headers] for rec in records]
    return _table(headers, rows, ["hdl-bench"])


def render_value(name: str, value) -> list[nodes.Node]:
    """Generic rendering of one JSON value as tables (never fails)."""
    out: list[nodes.Node] = []
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out.append(_records_table(value))
    elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        records = [{name or "key": k, **v} for k, v in value.items()]
        out.append(_records_table(records))
    elif isinstance(value, dict) and value:
        out.append(_table(None, [[k, fmt(v)] for k, v in value.items()], ["hdl-bench"]))
    else:
        out.append(_para(fmt(value)))
    return out


def render_result(document, root: Path, path: Path) -> nodes.section:
    rel = path.relative_to(root).as_posix()
    section = _section(document, path.name, f"bench-{_kind(path)}-{path.stem}")
    try:
        data = load(path)
    except (OSError, ValueError) as exc:
        logger.warning(f"benchmark result {rel} is not readable JSON: {exc}")
        section += _para("This file is not readable JSON: ", nodes.literal(text=str(exc)))
        return section
    lines = _para("File ", nodes.literal(text=rel), ". Ran on: ",
                  nodes.strong(text=device_for(path, data)), ".")
    section += lines
    command = command_for(root, path, data)
    recorded = isinstance(data, dict) and isinstance(data.get("command"), str)
    reproduce = _para("Reproduce it: ", nodes.literal(text=command) if command
                      else nodes.emphasis(text="the JSON records no command and no script "
                                               "matches its name"))
    if command and not recorded:
        reproduce += nodes.Text(" (derived from the file's name and the options its JSON "
                                "records; the JSON has no command line, so check the script's "
                                "--help for other options that wrote it)")
    section += reproduce
    if isinstance(data, dict):
        scalars = {k: v for k, v in data.items() if _is_scalar(v) and k != "command"}
        info = data.get("info")
        if isinstance(info, dict):
            scalars = {**{f"{k}": v for k, v in info.items()}, **scalars}
        if scalars:
            section += nodes.rubric(text="Setting")
            section += _table(None, [[k, fmt(v)] for k, v in scalars.items()], ["hdl-bench"])
        for key, value in data.items():
            if key == "info" or _is_scalar(value) or key == "history":
                continue
            section += nodes.rubric(text=key.replace("_", " "))
            section += render_value(key, value)
    else:
        section += render_value("", data)
    for figure in plots(path, data):
        section += figure
    return section


# ---------------------------------------------------------------------------- plots

def _figure(fig, caption: str, alt: str) -> nodes.figure:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    uri = "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    figure = nodes.figure(classes=["hdl-bench-figure"])
    figure += nodes.image(uri=uri, alt=alt, candidates={"?": uri})
    figure += nodes.caption(text=caption)
    return figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "font.size": 10, "axes.grid": True,
                         "grid.alpha": 0.3, "svg.hashsalt": "hdl", "svg.fonttype": "none"})
    return plt


def plots(path: Path, data) -> list[nodes.figure]:
    """Figures drawn from a result's JSON: time against size for every method of a sweep
    (rows with a numeric ``n``, a ``method`` and a ``median_s``), and the history of a run
    (``history`` with a ``time`` list and ``objective``/``polar`` lists)."""
    out = []
    if not isinstance(data, dict):
        return out
    rows = data.get("rows")
    if isinstance(rows, list):
        sweep = [r for r in rows if isinstance(r, dict) and isinstance(r.get("n"), (int, float))
                 and isinstance(r.get("median_s"), (int, float)) and "method" in r]
        methods = list(dict.fromkeys(r["method"] for r in sweep))
        if len({r["n"] for r in sweep}) >= 2:
            plt = _pyplot()
            fig, ax = plt.subplots(figsize=(6.4, 3.6))
            for method in methods:
                pts = sorted((r["n"], r["median_s"]) for r in sweep if r["method"] == method)
                ax.loglog([p[0] for p in pts], [p[1] for p in pts], "o-", label=str(method))
            from matplotlib.ticker import NullFormatter, ScalarFormatter

            sizes = sorted({r["n"] for r in sweep})
            ax.set_xticks(sizes)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.tick_params(axis="x", labelrotation=45)
            ax.set_xlabel("n (matrix is n × n)")
            ax.set_ylabel("median time (s)")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
            out.append(_figure(fig, f"Median time against size, {path.name} "
                                    f"({device_for(path, data)}).",
                               f"log-log plot of time against n for {', '.join(map(str, methods))}"))
    history = data.get("history")
    if isinstance(history, dict) and isinstance(history.get("time"), list):
        series = [k for k in ("objective", "polar") if isinstance(history.get(k), list)
                  and len(history[k]) == len(history["time"])]
        if series:
            plt = _pyplot()
            fig, axes = plt.subplots(1, len(series), figsize=(3.6 * len(series), 3.2),
                                     squeeze=False)
            for ax, key in zip(axes[0], series, strict=True):
                ax.semilogy(history["time"], history[key], "o-", markersize=3)
                ax.set_xlabel("time (s)")
                ax.set_ylabel(key)
            fig.tight_layout()
            out.append(_figure(fig, f"History of the run in {path.name} "
                                    f"({device_for(path, data)}).",
                               f"{' and '.join(series)} against time"))
    return out


def _env_get_outdated(app, env, added, changed, removed) -> list[str]:
    """Re-read the page that lists benchmarks when a result file appears or disappears, and
    the reproducibility page whenever any page is read again (a chapter may be re-executed)."""
    out: set[str] = set()
    now = [str(p) for p in benchmark_files(Path(app.srcdir))]
    if getattr(env, "hdl_bench_files", None) not in (None, now):
        out |= getattr(env, "hdl_bench_docs", set())
    if added or changed or removed:
        out |= getattr(env, "hdl_repro_docs", set())
    return sorted(d for d in out if d in env.found_docs)


def _doctree_resolved(app, doctree, fromdoc) -> None:
    for node in list(doctree.findall(reproducibility_placeholder)):
        node.replace_self(_reproducibility(app, fromdoc, node))


# ---------------------------------------------------------------------------- bibliography labels

def _register_authoryear_style() -> None:
    """pybtex style ``authoryear``: entries labelled "Haeffele and Vidal, 2017", sorted by
    author, year and title, with a/b suffixes where two entries share a label."""
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.unsrt import Style as UnsrtStyle
    from pybtex.style.labels import BaseLabelStyle

    class AuthorYearLabelStyle(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            labels = [self._label(entry) for entry in sorted_entries]
            counts: dict[str, int] = {}
            for label in labels:
                counts[label] = counts.get(label, 0) + 1
            seen: dict[str, int] = {}
            for label in labels:
                if counts[label] == 1:
                    yield label
                else:
                    seen[label] = seen.get(label, 0) + 1
                    name, _, year = label.rpartition(", ")
                    yield f"{name}, {year}{chr(ord('a') + seen[label] - 1)}"

        @staticmethod
        def _label(entry) -> str:
            persons = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [" ".join(p.prelast_names + p.last_names) for p in persons]
            names = [n.replace("{", "").replace("}", "") for n in names]
            if not names:
                who = entry.fields.get("organization", entry.fields.get("title", entry.key))
            elif len(names) == 1:
                who = names[0]
            elif len(names) == 2:
                who = f"{names[0]} and {names[1]}"
            else:
                who = f"{names[0]} et al."
            return f"{who}, {entry.fields.get('year', 'n.d.')}"

    class AuthorYearStyle(UnsrtStyle):
        default_label_style = AuthorYearLabelStyle
        default_sorting_style = "author_year_title"

    register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabelStyle)
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)


def setup(app):
    _register_authoryear_style()
    app.add_node(reproducibility_placeholder)
    app.add_directive("reproducibility", ReproducibilityDirective)
    app.add_directive("benchmarks", BenchmarksDirective)
    app.connect("builder-inited", _builder_inited)
    app.connect("env-get-outdated", _env_get_outdated)
    app.connect("doctree-resolved", _doctree_resolved)
    return {"version": "0.1", "env_version": 1, "parallel_read_safe": False,
            "parallel_write_safe": True}
