"""Sparse completion on CPUs: time to a certified optimum, peak memory, and several processes.

Problems: an m x n matrix of rank 10 (Gaussian factors) plus Gaussian noise (0.1), observed at
uniformly random entries (``scipy.sparse``), ``lam = 10`` (well above the sampled noise, so that
the optimum has rank 10). Cases:

- ``20000 x 15000`` at 1 % (3e6 entries) and ``200000 x 20000`` at 0.2 % (8e6 entries):
  ``hd.grow(Y, lam, tol=1e-4)`` from X = 0 to its certificate (``polar_method="auto"``: exact
  when small, else probabilistic with failure probability 1e-9, Lanczos on the sparse residual).
  Reported: the time, what the certificate proves, and the peak memory beyond the data (resident
  memory sampled every 5 ms during the solve, minus the resident memory just before it).
- The dense path where it fits here: at 20000 x 15000 it would hold Y, the mask, its float copy
  and the residual (4 x 2.4 GB, and the machine is shared), so it runs at 5000 x 3750 at 4 %
  (the same numbers of entries per row and column as 20000 x 15000 at 1 %) against the sparse
  path on the same entries.
- Time per sweep of ``solve_factorized`` (ALS, rank 10, 8 sweeps) on 1, 2 and 4 processes
  (torch.distributed, gloo, one thread each) on the 20000 x 15000 entries split at random.

Every case runs in its own process (so peak memories are separate); the load average is
recorded before and after. ``--quick`` runs everything at 1/10 of the sizes and 10 times the
densities (a minute).

    python benchmarks/bench_sparse.py            # about 10 minutes on 2 cores
    python benchmarks/bench_sparse.py --quick
    python benchmarks/bench_sparse.py --moderate   # an optimum of rank about 125 (a minute)

Writes ``benchmarks/results/sparse.json`` (``sparse_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
print = functools.partial(print, flush=True)  # noqa: A001 (progress lines as they come)
RANK, NOISE, LAM = 10, 0.1, 10.0
#: ``--moderate``: lam inside the sampled noise's spectrum, an optimum of rank about 125.
LAM_MODERATE = 2.0


def make(m: int, n: int, frac: float, path: Path, seed: int = 0) -> int:
    """Write the observed entries of a rank-10 + noise matrix to ``path`` (npz); return their number."""
    rng = np.random.default_rng(seed)
    k = int(m * n * frac)
    lin = np.unique(rng.integers(0, m * n, int(k * 1.05)))
    while lin.size < k:
        lin = np.union1d(lin, rng.integers(0, m * n, k - lin.size + 100))
    lin = rng.permutation(lin)[:k]  # uniformly random distinct entries, no m x n array
    i, j = lin // n, lin % n
    U, V = rng.standard_normal((m, RANK)), rng.standard_normal((n, RANK))
    vals = np.einsum("kr,kr->k", U[i], V[j]) + NOISE * rng.standard_normal(k)
    np.savez(path, i=i, j=j, vals=vals, shape=np.array([m, n]))
    return k


def load(path):
    import scipy.sparse as sp

    with np.load(path) as f:
        return sp.coo_matrix((f["vals"], (f["i"], f["j"])), shape=tuple(f["shape"])).tocsr()


def rss_mb() -> float:
    """This process's resident memory now (Linux: /proc/self/statm), in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakMemory:
    """The peak resident memory while the block runs, above the memory at its start (sampled every
    5 ms in a thread: torch's allocations are invisible to tracemalloc, and ``ru_maxrss`` keeps the
    peak of loading the data; a spike shorter than 5 ms can be missed)."""

    def __enter__(self):
        self.base = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())
        self.beyond = self.peak - self.base


# -- the cases, each in its own process ----------------------------------------------------------------
def case_grow(path: str, dense: bool, lam: float = LAM) -> dict:
    import torch

    import hdlcore as hd

    torch.set_num_threads(2)
    Y = load(path)
    if dense:
        M = Y.toarray() != 0  # the stored entries (none is an exact zero: Gaussian values)
        Y = Y.toarray()
    gc.collect()
    with PeakMemory() as mem:
        t = time.perf_counter()
        res = hd.grow(Y, lam, None if not dense else M, rng=0, tol=1e-4)
        seconds = time.perf_counter() - t
    cert = res.certificate
    return {"seconds": seconds, "peak_beyond_data_mb": mem.beyond, "data_mb": mem.base,
            "size": res.size, "objective": res.objective, "sweeps": res.n_iter, "polar": cert.polar,
            "polar_kind": cert.polar_kind, "is_global": cert.is_global,
            "is_global_estimate": cert.is_global_estimate, "bound": cert.bound,
            "failure_probability": cert.failure_probability,
            "bound_estimate": cert.bound_estimate, "proves": cert.proves,
            "time_per_sweep": float(np.median(np.diff(res.history["sweep_time"])))}


def case_sweeps(path: str, rank: int, world: int, port: int, out: str) -> None:
    """One process of the sweep timing: its random share of the entries, rank 10, 8 sweeps."""
    import datetime

    import scipy.sparse as sp
    import torch
    import torch.distributed as dist

    import hdlcore as hd

    torch.set_num_threads(1)
    Y = load(path).tocoo()
    group = None
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(minutes=5))
        group = dist.group.WORLD
        mine = np.random.default_rng(7).integers(0, world, Y.nnz) == rank
        Y = sp.coo_matrix((Y.data[mine], (Y.row[mine], Y.col[mine])), shape=Y.shape)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 8 sweeps do not converge: that is the point
        t = time.perf_counter()
        res = hd.solve_factorized(Y, LAM, RANK, rng=0, max_iter=8, tol=1e-15, certify=False, group=group)
        total = time.perf_counter() - t
    sweeps = np.diff(res.history["time"])
    json.dump({"per_sweep": float(np.median(sweeps)), "total": total, "objective": res.objective},
              open(os.path.join(out, f"rank{rank}.json"), "w"))
    if group is not None:
        dist.destroy_process_group()


def run_child(args: list[str], timeout: float = 1800) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def sweeps(path: Path, world: int) -> dict:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        procs = [subprocess.Popen([sys.executable, __file__, "--sweeps", str(path), str(r), str(world),
                                   str(port), out], env={**os.environ, "PYTHONPATH": str(ROOT)})
                 for r in range(world)]
        for p in procs:
            if p.wait(timeout=1800) != 0:
                raise RuntimeError(f"a sweep process failed ({world} processes)")
        got = [json.load(open(os.path.join(out, f"rank{r}.json"))) for r in range(world)]
    assert len({g["objective"] for g in got}) == 1, "processes disagree"
    return {"processes": world, "per_sweep": max(g["per_sweep"] for g in got),
            "objective": got[0]["objective"]}


def _machine(load0, load1) -> dict:
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_before": load0, "load_after": load1}


def moderate() -> None:
    """grow where the optimum has moderate rank: block growth and L-BFGS on the observed entries."""
    m, n, frac = 2000, 1500, 0.1
    load0 = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Y.npz"
        make(m, n, frac, path)
        for dense in (False, True):
            r = run_child(["--grow", str(path), "dense" if dense else "sparse", str(LAM_MODERATE)])
            r.update(m=m, n=n, observed=frac, lam=LAM_MODERATE, path="dense + mask" if dense else "sparse")
            rows.append(r)
            print(f"{m} x {n} at {frac:.0%}, lam = {LAM_MODERATE}, {r['path']:12s} {r['seconds']:7.1f} s, "
                  f"{r['peak_beyond_data_mb']:6.0f} MB beyond the data, size {r['size']}, "
                  f"{r['sweeps']} sweeps, "
                  f"polar {r['polar']:.7f} ({r['polar_kind']}), is_global={r['is_global']}")
    load1 = os.getloadavg()
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} ({os.cpu_count()} cores)")
    result = {"machine": _machine(load0, load1),
              "rank": RANK, "noise": NOISE, "lam": LAM_MODERATE, "tol": 1e-4, "grow": rows}
    out = ROOT / "benchmarks" / "results" / "sparse_moderate.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--moderate", action="store_true",
                        help=f"only the moderate-rank case: 2000 x 1500 at 10 %%, lam = {LAM_MODERATE} "
                             "(optimum of rank about 125), sparse and dense + mask")
    args = parser.parse_args()
    if args.moderate:
        return moderate()
    s = 10 if args.quick else 1  # --quick: sizes / 10, densities x 10 (the same entries per row)
    cases = [("grow", 20000 // s, 15000 // s, 0.01 * s, False),
             ("grow", 200000 // s, 20000 // s, 0.002 * s, False),
             ("grow", 5000 // s, 3750 // s, 0.04 * s, False), ("grow", 5000 // s, 3750 // s, 0.04 * s, True)]
    load0 = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for _, m, n, frac, _ in cases:
            if (m, n, frac) not in files:
                files[(m, n, frac)] = Path(tmp) / f"Y_{m}_{n}.npz"
                make(m, n, frac, files[(m, n, frac)])
        print(f"{'case':34s} {'seconds':>8s} {'peak MB':>8s} {'size':>5s} {'sweeps':>6s} {'s/sweep':>8s} "
              f"polar (kind), what it proves")
        for _, m, n, frac, dense in cases:
            r = run_child(["--grow", str(files[(m, n, frac)]), "dense" if dense else "sparse"])
            r.update(m=m, n=n, observed=frac, path="dense + mask" if dense else "sparse")
            rows.append(r)
            name = f"{m} x {n} at {frac:.1%} {r['path']}"
            print(f"{name:34s} {r['seconds']:8.1f} {r['peak_beyond_data_mb']:8.0f} {r['size']:5d} "
                  f"{r['sweeps']:6d} {r['time_per_sweep']:8.3f} {r['polar']:.7f} ({r['polar_kind']}), "
                  f"is_global={r['is_global']}, estimate {r['is_global_estimate']}")
        big = files[(cases[0][1], cases[0][2], cases[0][3])]
        procs = [sweeps(big, w) for w in (1, 2, 4)]
        for p in procs:
            p["speedup"] = procs[0]["per_sweep"] / p["per_sweep"]
            print(f"ALS sweep, rank {RANK}, {cases[0][1]} x {cases[0][2]}, {p['processes']} process(es): "
                  f"{p['per_sweep']:.3f} s per sweep ({p['speedup']:.2f}x one process)")
    load1 = os.getloadavg()
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} ({os.cpu_count()} cores)")
    result = {"machine": _machine(load0, load1),
              "rank": RANK, "noise": NOISE, "lam": LAM, "tol": 1e-4, "grow": rows, "sweeps": procs}
    out = ROOT / "benchmarks" / "results" / ("sparse_quick.json" if args.quick else "sparse.json")
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--grow":
        lam = float(sys.argv[4]) if len(sys.argv) > 4 else LAM
        print(json.dumps(case_grow(sys.argv[2], sys.argv[3] == "dense", lam), default=str))
    elif len(sys.argv) > 1 and sys.argv[1] == "--sweeps":
        case_sweeps(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        main()
