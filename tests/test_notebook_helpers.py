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
    assert out == ["PASS [test-bound] a bound holds: 0.5 ≤ 1"]


@pytest.mark.parametrize(
    "value, kwargs",
    [
        (2.0, {"le": 1.0}),
        (0.0, {"gt": 0.0}),
        ([0.5, 1.5], {"lt": 1.0}),
        (1.1, {"close_to": 1.0, "rtol": 1e-3}),
        (float("nan"), {"le": 1.0}),
        (np.array([1.0, np.nan]), {"close_to": 1.0}),
        ([1.0, 2.0], {"le": np.array([1.5, 1.9])}),
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


# --- values and bounds in words ------------------------------------------------------------


@pytest.mark.parametrize(
    "value, kwargs, text",
    [
        (0.0213, {"le": 0.05}, "0.0213 ≤ 0.05"),
        (np.float64(0.2131), {"gt": 0}, "0.2131 > 0"),
        (9.4, {"ge": 9, "le": 11}, "9 ≤ 9.4 ≤ 11"),
        (np.array([0.1, 0.31, 0.2]), {"le": 1}, "max 0.31 over 3 values ≤ 1"),
        (np.array([0.96, 0.99]), {"ge": 0.95}, "min 0.96 over 2 values ≥ 0.95"),
        (np.array([0.2, 0.4, 0.3]), {"ge": 0, "lt": 1}, "3 values from 0.2 to 0.4, all in [0, 1)"),
        (2 + 1e-10, {"close_to": 2}, "2 ≈ 2 (|diff| 1e-10 ≤ 2e-9)"),
        (0.0, {"close_to": 0.0, "atol": 0}, "0 = 0 exactly"),
        (np.ones(12) + 3.1e-12, {"close_to": 1.0}, "max |diff| 3.1e-12 over 12 values ≤ 1e-9"),
        ([2.0, 1.0], {"close_to": [2, 1]}, "(2, 1) = (2, 1)"),
        ([2.0, 1.5 + 1e-12], {"close_to": [2, 1.5]},
         "(2, 1.5) ≈ (2, 1.5) (max |diff| 1e-12 ≤ 1e-9·|target|)"),
        (37, {"close_to": 37}, "37 = 37"),
        (np.arange(6.0), {"close_to": np.arange(6)}, "all 6 values equal to their targets"),
        (np.full(6, 3.0), {"close_to": 3}, "all 6 values equal to 3"),
        (1.0000005, {"le": 1 + 1e-6}, "1.0000005 ≤ 1.000001"),
        (0.08625222, {"ge": 20 / 384}, "0.08625 ≥ 0.05208"),
        (torch.tensor([1.0, 2.0]), {"gt": 0}, "min 1 over 2 values > 0"),
        (np.ones(4) > 0, {}, "4 of 4 true"),
        (True, {}, "true"),
        ([1.0, 2.0], {"le": np.array([1.5, 2.1])}, "2 values, each ≤ its bound (smallest margin 0.1)"),
        (torch.tensor(0.5), {"lt": torch.tensor(1.0)}, "0.5 < 1"),
    ],
)
def test_check_states_value_and_bound_in_words(value, kwargs, text, capsys):
    res = hd.check("a claim", value, id="test-words", **kwargs)
    assert res.passed and res.text == text
    assert capsys.readouterr().out.strip() == f"PASS [test-words] a claim: {text}"
    assert "np.float64" not in res.text and "array" not in res.text


def test_a_value_near_its_bound_is_written_with_enough_digits():
    with pytest.raises(AssertionError, match=r"at most one: 1\.000001 ≤ 1$"):
        hd.check("at most one", 1.0000005, id="test-digits", le=1.0)


def test_failing_array_says_which_entries_fail():
    with pytest.raises(AssertionError, match=r"max 1\.5 over 3 values < 1 \(2 of 3 fail, "
                                             r"first at index 1\)"):
        hd.check("entries below one", [0.5, 1.5, 1.2], id="test-where", lt=1.0)
    with pytest.raises(AssertionError, match=r"2 of 3 true \(first false at index 1\)"):
        hd.check("all true", np.array([True, False, True]), id="test-where-bool")


# --- check_all: one claim, several named parts -----------------------------------------------


def test_check_all_reports_each_part_by_name(capsys):
    res = notebook.check_all(
        "certified",
        {
            "polar at most 1": (0.9999, {"le": 1 + 1e-6}),
            "exact polar": True,
            "Euler residuals": ([1e-13, 3e-12], {"le": 1e-9}),
            "objective matches": (np.float64(1.5), {"close_to": 1.5, "rtol": 1e-12}),
        },
        id="test-parts",
    )
    assert res.passed
    assert [p.name for p in res.parts] == ["polar at most 1", "exact polar", "Euler residuals",
                                           "objective matches"]
    assert [p.text for p in res.parts] == ["0.9999 ≤ 1", "true",
                                           "max 3e-12 over 2 values ≤ 1e-9", "1.5 = 1.5"]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "PASS [test-parts] certified"
    assert out[1:] == [f"  pass  {p.name}: {p.text}" for p in res.parts]


def test_check_all_names_the_part_that_failed(capsys):
    with pytest.raises(AssertionError) as info:
        notebook.check_all(
            "certified",
            {"polar at most 1": (1.2, {"le": 1.0}), "exact polar": True,
             "zero column": np.array([False, False])},
            id="test-parts-fail",
        )
    message = str(info.value)
    assert "part 'polar at most 1' failed: 1.2 ≤ 1" in message
    assert "part 'zero column' failed: 0 of 2 true" in message
    assert "exact polar" not in message
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "FAIL [test-parts-fail] certified"
    assert out[1] == "  FAIL  polar at most 1: 1.2 ≤ 1"
    assert out[2] == "  pass  exact polar: true"
    record = notebook.records()[-1]
    assert record.id == "test-parts-fail" and not record.passed
    assert [p.passed for p in record.parts] == [False, True, False]


@pytest.mark.parametrize(
    "parts, match",
    [
        ({}, "'parts' parameter of check_all"),
        ([("a", True)], "'parts' parameter of check_all"),
        ({"": True}, "'parts' parameter of check_all"),
        ({"a": (1.0, {"below": 2})}, "'parts' parameter of check_all"),
        ({"a": 3.0}, r"'parts\['a'\]' parameter of check_all"),
        ({"a": ("x", {"le": 1})}, r"'parts\['a'\]' parameter of check_all"),
        ({"a": (1.0, {"close_to": 1, "rtol": -1})}, r"'parts\['a'\]\['rtol'\]' parameter"),
    ],
)
def test_check_all_rejects_malformed_parts(parts, match):
    with pytest.raises((TypeError, ValueError), match=match):
        notebook.check_all("claim", parts, id="test-bad-parts")


def test_check_all_records_parts_to_the_build_log(tmp_path, monkeypatch):
    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv("HDLCORE_CHECKS_LOG", str(log))
    notebook.check_all("two parts", {"small": (np.float64(0.02), {"le": 0.05}),
                                     "true": np.bool_(True)}, id="test-log-parts")
    hd.check("one part", np.float32(0.5), id="test-log-one", le=1)
    parts_entry, one_entry = (json.loads(line) for line in log.read_text().splitlines())
    assert parts_entry["parts"] == [
        {"name": "small", "passed": True, "value": "0.02", "bound": "≤ 0.05",
         "text": "0.02 ≤ 0.05"},
        {"name": "true", "passed": True, "value": "true", "bound": "", "text": "true"},
    ]
    assert one_entry["parts"] == [] and one_entry["text"] == "0.5 ≤ 1"
    assert one_entry["value"] == "0.5" and one_entry["bound"] == "≤ 1"
