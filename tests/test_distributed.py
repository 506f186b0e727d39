"""torch.distributed on CPUs (gloo): 2 and 3 processes give one process's result on the union of their
entries, identical on every process; bad or different arguments and failing processes stop every
process with a clear error, never a hang. Each test launches the processes of
``tests/fixtures/distributed_worker.py`` (a few seconds each)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import hdlcore as hd

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "fixtures" / "distributed_worker.py"
_spec = importlib.util.spec_from_file_location("distributed_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="gloo over TCP on POSIX only")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(scenario: str, world: int, out, timeout: float = 120.0):
    """Run ``world`` worker processes; return each one's saved results (absent if it died) and the time."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, str(WORKER), scenario, "RANK", str(world), str(port), str(out)]
    procs = [subprocess.Popen([str(r) if a == "RANK" else a for a in args], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for r in range(world)]
    start = time.perf_counter()
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=max(1.0, timeout - (time.perf_counter() - start)))[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"the {scenario!r} run hung for {timeout} s")
    elapsed = time.perf_counter() - start
    results = {}
    for r in range(world):
        path = out / f"rank{r}.npz"
        if path.exists():
            with np.load(path) as f:
                results[r] = {k: f[k][()] if f[k].ndim == 0 else f[k] for k in f.files}
    return results, elapsed, [p.returncode for p in procs], [log.decode(errors="replace") for log in logs]


@pytest.fixture(scope="module")
def one_process():
    """The same calls on one process, on the union of the entries."""
    vals, i, j, shape = worker.data()
    Y = sp.coo_matrix((vals, (i, j)), shape=shape)
    g = hd.grow(Y, 1.0, rng=0)
    a = hd.solve_factorized(Y, 1.0, 3, rng=1)
    with pytest.warns(hd.ConvergenceWarning):
        p = hd.solve_factorized(Y, 1.0, 3, method="prox", rng=1, max_iter=100)
    c = hd.certify(Y, a.U, a.V, 1.0, method="krylov", rng=2)
    c1 = hd.certify(Y, a.U.clip(0), a.V, 1.0, norms=("l1+", "l2"))
    cp = hd.certify(Y, a.U, a.V, 1.0, method="probabilistic", rng=3)
    return {"grow": g, "als": a, "prox": p, "cert": c, "l1": c1, "probabilistic": cp}


@pytest.mark.parametrize("world", [2, 3])
def test_processes_match_one_process(world, tmp_path, one_process):
    results, _, codes, logs = launch("match", world, tmp_path)
    assert len(results) == world and all("error" not in r for r in results.values()), logs
    first = results[0]
    for r in range(1, world):  # identical on every process, bit for bit
        for key, value in first.items():
            if key != "seconds":
                np.testing.assert_array_equal(results[r][key], value, err_msg=key)
    for name in ("grow", "als", "prox"):
        ref = one_process[name]
        assert first[f"{name}_objective"] == pytest.approx(ref.objective, rel=1e-10), name
        assert str(first[f"{name}_global"]) == str(ref.certificate.is_global), name
        X = first[f"{name}_U"] @ first[f"{name}_V"].T
        np.testing.assert_allclose(X, ref.X, atol=1e-5 * np.abs(ref.X).max(), err_msg=name)
    assert one_process["grow"].certificate.is_global and str(first["grow_global"]) == "True"
    # a fixed size from the same start: the same iterates, to rounding
    np.testing.assert_allclose(first["als_U"], one_process["als"].U, rtol=1e-8, atol=1e-10)
    cert = one_process["cert"]
    assert first["cert_polar"] == pytest.approx(cert.polar, rel=1e-10)
    assert first["cert_bound"] == pytest.approx(cert.bound, rel=1e-8, abs=1e-10)
    assert first["l1_polar"] == pytest.approx(one_process["l1"].polar, rel=1e-10)
    cp = one_process["probabilistic"]  # Lanczos on the sharded residual, from process 0's random start
    assert cp.polar_kind == "probabilistic"
    assert first["prob_polar"] == pytest.approx(cp.polar, rel=1e-10)
    assert first["prob_upper"] == pytest.approx(cp.polar_upper, rel=1e-10)


def _errors(results):
    return {r: (res.get("error_type"), str(res.get("error"))) for r, res in results.items()}


@pytest.fixture(scope="module")
def refusals(tmp_path_factory):
    """One run of 2 processes: three refused calls (process 1 passes another lam, then a NaN, then an
    entry that process 0 also holds), then a call that works: the group survives a refusal."""
    results, _, _, logs = launch("refusals", 2, tmp_path_factory.mktemp("refusals"))
    assert len(results) == 2, logs
    return results


def test_different_lam_is_refused_on_every_process(refusals):
    for res in refusals.values():
        assert res["lam_error_type"] == "ValueError"
        assert "The 'lam' parameter of grow must be the same on every process" in res["lam_error"]
        assert "1.0 on process 0 and 2.0 on process 1" in res["lam_error"]


def test_bad_input_on_one_process_stops_every_process(refusals):
    own, other = str(refusals[1]["nan_error"]), str(refusals[0]["nan_error"])
    assert refusals[1]["nan_error_type"] == refusals[0]["nan_error_type"] == "ValueError"
    assert "The 'Y' parameter of grow must be finite" in own
    assert "process 1 of 2 raised ValueError: The 'Y' parameter of grow must be finite" in other


def test_entry_stored_on_two_processes_is_a_duplicate(refusals):
    for res in refusals.values():
        msg = str(res["duplicate_error"])
        assert res["duplicate_error_type"] == "ValueError"
        assert "The 'Y' parameter of grow" in msg and "duplicate" in msg


def test_the_group_still_works_after_a_refusal(refusals):
    vals, i, j, shape = worker.data()
    ref = hd.solve_factorized(sp.coo_matrix((vals, (i, j)), shape=shape), 1.0, 2, rng=0)
    for res in refusals.values():
        assert float(res["after"]) == pytest.approx(ref.objective, rel=1e-12)


def test_a_process_that_dies_stops_the_others(tmp_path):
    results, elapsed, codes, logs = launch("dies", 2, tmp_path)
    assert codes[1] == 3 and 1 not in results  # it died without writing anything
    kind, msg = _errors(results)[0]
    assert kind == "RuntimeError" and "another process raised an error, exited or timed out" in msg, logs
    assert results[0]["seconds"] < 25  # a dead peer is noticed at once, before the group's timeout (30 s)


def test_a_process_that_raises_and_stays_alive_does_not_hang_the_others(tmp_path):
    results, elapsed, codes, logs = launch("hangs", 2, tmp_path)
    assert _errors(results)[1] == ("RuntimeError", "a failure on process 1 only")
    kind, msg = _errors(results)[0]
    assert kind == "RuntimeError" and "timed out" in msg, logs
    assert results[0]["seconds"] < 9  # bounded by the group's timeout (4 s), not by process 1's sleep (10 s)
