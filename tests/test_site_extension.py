"""The Sphinx extension that writes the performance and reproducibility pages (_ext/hdl_site.py),
tested without building the book: result files of any shape render, commands and devices are
read from the JSON, bibliography labels are author-year."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from docutils import nodes
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser
from docutils.utils import new_document

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
import hdl_site  # noqa: E402  (_ext/hdl_site.py)


def _document():
    return new_document("test", get_default_settings(Parser))


@pytest.fixture
def book(tmp_path) -> Path:
    """A book root with the real benchmark scripts' names and an empty results folder."""
    (tmp_path / "benchmarks" / "results" / "gpu").mkdir(parents=True)
    for script in ("bench_completion.py", "bench_dropout.py", "gpu_completion.py"):
        (tmp_path / "benchmarks" / script).write_text(
            (ROOT / "benchmarks" / script).read_text())
    return tmp_path


def _write(book: Path, rel: str, data) -> Path:
    path = book / rel
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_commands_come_from_the_json_or_the_script_named_like_the_file(book):
    results = "benchmarks/results"
    cases = {
        f"{results}/completion.json": ({"info": {"threads_requested": 1}},
                                       "python benchmarks/bench_completion.py --threads 1"),
        f"{results}/completion_threads2.json": (
            {"info": {"threads_requested": 2}},
            "python benchmarks/bench_completion.py --threads 2 "
            f"--out {results}/completion_threads2.json"),
        f"{results}/dropout.json": ({"rows": []}, "python benchmarks/bench_dropout.py"),
        f"{results}/gpu/gpu_completion.json": (
            {}, f"python3 benchmarks/gpu_completion.py --out {results}/gpu"),
        f"{results}/sparse_scale.json": ({"command": "python benchmarks/x.py --big"},
                                         "python benchmarks/x.py --big"),
        f"{results}/no_such_script.json": ({"rows": []}, None),
    }
    for rel, (data, expected) in cases.items():
        path = _write(book, rel, data)
        assert hdl_site.command_for(book, path, data) == expected, rel


def test_the_gpu_is_named_as_the_json_records_it(book):
    gpu = book / "benchmarks/results/gpu/x.json"
    assert hdl_site.device_for(gpu, {"info": {"device": "cuda", "device_name": "NVIDIA H100"}}) \
        == "NVIDIA H100"
    assert hdl_site.device_for(gpu, {"device": "cuda", "name": "NVIDIA H200"}) == "NVIDIA H200"
    assert hdl_site.device_for(gpu, {"device": "NVIDIA A100"}) == "NVIDIA A100"
    assert "not recorded" in hdl_site.device_for(gpu, {"device": "cuda"})
    cpu = book / "benchmarks/results/x.json"
    assert hdl_site.device_for(cpu, {"machine": "Linux-x86_64", "threads": 2}) == \
        "Linux-x86_64, 2 threads"


@pytest.mark.parametrize("data", [
    {"rows": [{"a": 1, "b": [1.0, 2.0, 3.0, 4.0]}, {"a": 2, "c": {"x": None}}], "note": "text"},
    [{"rank": 5, "time_s": 0.1}, {"rank": 10, "time_s": float("nan")}],
    {"nested": {"p": {"q": 1}, "r": {"q": 2, "s": [1, [2]]}}, "flag": True},
    {"sweep": {"ranks": [1, 2, 4], "paths": [[0, 1], [1, 2]]}},
    {"empty": {}, "list": [], "none": None},
    3.5,
])
def test_a_result_of_any_shape_renders_as_tables(book, data):
    path = _write(book, "benchmarks/results/completion_ranks.json", data)
    section = hdl_site.render_result(_document(), book, path)
    assert isinstance(section, nodes.section)
    text = section.astext()
    assert "completion_ranks.json" in text and "Reproduce it" in text
    if isinstance(data, (list, dict)) and data not in ({"empty": {}, "list": [], "none": None},):
        assert list(section.findall(nodes.table)), "no table"


def test_unreadable_json_is_shown_not_fatal(book):
    path = _write(book, "benchmarks/results/broken.json", "{not json")
    section = hdl_site.render_result(_document(), book, path)
    assert "not readable JSON" in section.astext()


def test_a_size_sweep_is_plotted(book):
    rows = [{"n": n, "method": m, "median_s": n / k} for n in (100, 200, 400)
            for m, k in (("grow", 1e4), ("scs", 1e2))]
    figures = hdl_site.plots(book / "benchmarks/results/completion.json", {"rows": rows})
    assert len(figures) == 1
    (image,) = figures[0].findall(nodes.image)
    assert image["uri"].startswith("data:image/svg+xml;base64,")


def test_numbers_are_short_but_polars_keep_their_digits():
    assert hdl_site.fmt(0.0547096269992835) == "0.05471"
    assert hdl_site.fmt(1.0000003292551312) == "1.00000033"
    assert hdl_site.fmt(705038.29) == "7.050e+05"
    assert hdl_site.fmt(float("nan")) == "NaN"
    assert hdl_site.fmt([0.05, 0.06, 0.04, 0.07]) == "4 values, 0.04 to 0.07"
    assert hdl_site.fmt(True) == "yes"


def test_the_machine_and_software_are_described():
    machine = dict(hdl_site.machine_facts())
    assert {"CPU", "CPU cores", "memory", "GPU"} <= set(machine)
    assert machine["CPU"] and machine["CPU"] != "unknown"
    software = dict(hdl_site.software_facts())
    assert software["Python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert "numpy" in software and "torch" in software


def test_bibliography_labels_are_author_year():
    from pybtex.database import parse_string
    from pybtex.plugin import find_plugin

    bib = parse_string("""
        @article{a, author = {Haeffele, Benjamin D. and Vidal, Ren{\\'e}},
                    title = {T1}, journal = {J}, year = {2017}}
        @article{b, author = {Haeffele, Benjamin D. and Vidal, Ren{\\'e}},
                    title = {T2}, journal = {J}, year = {2017}}
        @article{c, author = {Bach, Francis},
                    title = {T3}, journal = {J}, year = {2013}}
        @article{d, author = {Cavazza, J. and Haeffele, B. and Lane, C.},
                    title = {T4}, journal = {J}, year = {2018}}
        @article{e, author = {van der Vaart, A.},
                    title = {T5}, journal = {J}, year = {1998}}
    """, "bibtex")
    hdl_site._register_authoryear_style()  # what setup() does when Sphinx loads it
    style = find_plugin("pybtex.style.formatting", "authoryear")()
    labels = sorted(e.label for e in style.format_entries(bib.entries.values()))
    assert labels == ["Bach, 2013", "Cavazza et al., 2018", "Haeffele and Vidal, 2017a",
                      "Haeffele and Vidal, 2017b", "van der Vaart, 1998"]
