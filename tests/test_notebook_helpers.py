"""hdlcore.notebook: setup, and checks that raise when a claim is false."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import hdlcore as hd
from hdlcore import notebook


def test_setup_returns_seeded_generator_and_device(capsys):
    rng, device = notebook.setup(seed=3, device="cpu")
    out = capsys.readouterr().out
    assert "device cpu" in out and "seed 3" in out
    assert isinstance(rng, np.random.Generator)
    assert device == torch.device("cpu")
    first = rng.standard_normal(3)
    again, _ = notebook.setup(seed=3, device="cpu", quiet=True)
    np.testing.assert_array_equal(first, again.standard_normal(3))
    # global generators are seeded too (the only place that touches them)
    a = torch.rand(2)
    notebook.setup(seed=3, device="cpu", quiet=True)
    assert torch.equal(a, torch.rand(2))


def test_setup_device_from_environment(monkeypatch):
    monkeypatch.setenv("HDLCORE_DEVICE", "cpu")
    _, device = notebook.setup(seed=0, quiet=True)
    assert device.type == "cpu"
    assert notebook.by_device(cpu=10, cuda=1000) == 10


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the error raised without CUDA")
def test_setup_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HDLCORE_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        notebook.setup(seed=0, quiet=True)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_setup_rejects_bad_seed(seed):
    with pytest.raises(TypeError, match="'seed' parameter of setup"):
        notebook.setup(seed=seed, quiet=True)


def test_check_passes_and_prints_one_line(capsys):
    res = hd.check("a bound holds", 0.5, id="test-bound", le=1.0)
    assert res.passed
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["PASS [test-bound] a bound holds: 0.5 <= 1"]


@pytest.mark.parametrize(
    "value, kwargs",
    [
        (2.0, {"le": 1.0}),
        (0.0, {"gt": 0.0}),
        ([0.5, 1.5], {"lt": 1.0}),
        (1.1, {"close_to": 1.0, "rtol": 1e-3}),
        (float("nan"), {"le": 1.0}),
        (np.array([1.0, np.nan]), {"close_to": 1.0}),
        (False, {}),
        (np.array([True, False]), {}),
    ],
)
def test_check_raises_when_claim_is_false(value, kwargs, capsys):
    with pytest.raises(AssertionError, match=r"FAIL \[test-false\]"):
        hd.check("a false claim", value, id="test-false", **kwargs)
    assert capsys.readouterr().out.startswith("FAIL [test-false]")


def test_check_accepts_tensors_and_arrays():
    assert hd.check("tensor entries are positive", torch.tensor([1.0, 2.0]), id="test-t", gt=0).passed
    assert hd.check("close arrays", np.ones(3), id="test-a", close_to=np.ones(3) + 1e-12).passed
    assert hd.check("all true", np.ones(3) > 0, id="test-b").passed


@pytest.mark.parametrize("bad_id", ["Has-Upper", "with space", "", "trailing-", 3])
def test_check_rejects_bad_identifier(bad_id):
    with pytest.raises(ValueError, match="'id' parameter of check"):
        hd.check("claim", True, id=bad_id)


def test_check_needs_a_comparison_for_numbers():
    with pytest.raises(TypeError, match="'value' parameter of check"):
        hd.check("a number alone proves nothing", 3.0, id="test-number")


def test_check_records_to_the_build_log(tmp_path, monkeypatch):
    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv("HDLCORE_CHECKS_LOG", str(log))
    monkeypatch.setenv("HDLCORE_CHECKS_DOC", "chapters/xx")
    monkeypatch.setenv("HDLCORE_CHECKS_RUN", "run1")
    notebook.setup(seed=0, device="cpu", quiet=True)
    hd.check("recorded", 1.0, id="test-log", ge=0)
    with pytest.raises(AssertionError):
        hd.check("recorded failure", 1.0, id="test-log-fail", ge=2)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["kind"] for e in entries] == ["setup", "check", "check"]
    assert entries[1]["id"] == "test-log" and entries[1]["passed"] is True
    assert entries[2]["passed"] is False
    assert all(e["doc"] == "chapters/xx" and e["run"] == "run1" for e in entries)
    ids = [r.id for r in notebook.records()]
    assert "test-log" in ids and "test-log-fail" in ids
