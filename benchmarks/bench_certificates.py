"""When is a full SVD cheap enough to certify with? The threshold behind ``method="auto"`` (Chapter 3).

A certificate needs an upper bound on sigma_1 of the residual. ``"exact"`` computes every
singular value (``torch.linalg.svdvals``, what :func:`hdlcore.certify` calls); ``"probabilistic"``
runs Lanczos from a uniformly random start until its bound (failure probability 1e-9) proves
``sigma_1 <= (1 + tol) sigma_1``, the hardest test a certificate at an optimum asks for (the
threshold sits just above the true value, so Lanczos cannot stop early by refuting it).

Matrices: n x n with a flat top spectrum, as a residual has near an optimum: sigma_1 = 1, 19
more singular values in [1 - 1e-3, 1), and a bulk uniform on [0, b) with b = 0.9 ("gap") or
b = 0.99 ("flat", harder for Lanczos), in a dense basis (three Householder reflections on each
side: every LAPACK step is the same as for any dense matrix, and Lanczos from a uniform start
depends on the singular values only). Timings are interleaved (exact, probabilistic, exact,
...) and medians of ``--repeats`` are quoted; the load average is recorded.

    python benchmarks/bench_certificates.py               # full run (about 10 minutes, 1 thread)
    python benchmarks/bench_certificates.py --threads 2
    python benchmarks/bench_certificates.py --quick       # smoke test (seconds)

With ``--residuals``, the same comparison on real residuals: the completion problems of
``bench_completion.py`` (n x n, rank 5 + noise 0.1, 30 % observed, lam = 1.3 sqrt(n)) solved by
``hdlcore.grow`` (its time, with a krylov certificate, is the "solve"), then ``hdlcore.certify``
at the returned point with ``method="exact"`` and ``"probabilistic"`` (default tol 1e-6).

Writes ``benchmarks/results/certificates.json`` (``_threads2`` with ``--threads 2``,
``certificates_quick.json`` with ``--quick``); the crossing size is quoted next to
:data:`hdlcore.matrix.spectral.EXACT_SIZE_LIMIT`.
"""

from __future__ import annotations

import os
import sys

if "--threads" in sys.argv:  # before any thread pool starts
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import hdlcore as hd  # noqa: E402
from hdlcore.matrix.spectral import EXACT_SIZE_LIMIT  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def flat_top(n: int, bulk: float, seed: int = 0):
    """n x n, sigma_1 = 1, 19 more within 1e-3 below it, a bulk on [0, bulk); a dense basis."""
    rng = np.random.default_rng(seed)
    s = np.concatenate([[1.0], 1 - 1e-3 * rng.random(19), bulk * rng.random(n - 20)])
    A = torch.diag(torch.as_tensor(s))

    def reflect(A, left: bool):
        w = torch.as_tensor(rng.standard_normal(n))
        w /= torch.linalg.vector_norm(w)
        if left:
            return A - 2 * torch.outer(w, w @ A)  # (I - 2 w w^T) A
        return A - 2 * torch.outer(A @ w, w)  # A (I - 2 w w^T)

    for _ in range(3):
        A = reflect(reflect(A, True), False)
    return A


def residuals(args):
    sizes = args.sizes or ([100, 200] if args.quick else [200, 400, 700, 1000, 1500, 2000])
    repeats = 1 if args.quick else args.repeats
    info = {"machine": platform.platform(), "torch_threads": torch.get_num_threads(), "load_before": load(),
            "problem": "n x n, rank 5 + N(0, 0.1^2), 30 % observed, lam = 1.3 sqrt(n)"}
    print(f"load average before: {info['load_before']}  (torch threads {info['torch_threads']})")
    print(f"{'n':>5} {'solve s':>8} {'exact s':>8} {'prob s':>8} {'steps':>5} {'exact/prob':>10} "
          f"{'prob/solve':>10}  is_global (exact, prob)")
    rows = []
    for n in sizes:
        Y, _ = hd.low_rank_matrix(n, n, 5, noise=0.1, rng=0)
        mask = hd.random_mask((n, n), 0.3, rng=1)
        lam = 1.3 * np.sqrt(n)
        t0 = time.perf_counter()
        res = hd.grow(Y, lam, mask, rng=0, polar_method="krylov")
        solve = time.perf_counter() - t0
        t_ex, t_pr, steps = [], [], []
        for i in range(repeats):
            t0 = time.perf_counter()
            ex = hd.certify(Y, res.U, res.V, lam, mask, method="exact")
            t_ex.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            pr = hd.certify(Y, res.U, res.V, lam, mask, method="probabilistic", rng=i)
            t_pr.append(time.perf_counter() - t0)
            steps.append(int(pr.basis.split(" steps")[0].rsplit(" ", 1)[1]))
        e, p = statistics.median(t_ex), statistics.median(t_pr)
        rows.append({"n": n, "size": res.size, "solve_s": solve, "exact_s": e, "prob_s": p,
                     "exact_runs": t_ex, "prob_runs": t_pr, "steps": steps, "exact_is_global": ex.is_global,
                     "prob_is_global": pr.is_global, "polar": ex.polar, "prob_polar_upper": pr.polar_upper})
        print(f"{n:5d} {solve:8.3f} {e:8.3f} {p:8.3f} {int(statistics.median(steps)):5d} {e / p:10.2f} "
              f"{p / solve:10.2f}  {ex.is_global}, {pr.is_global}", flush=True)
    info["load_after"] = load()
    print(f"load average after: {info['load_after']}")
    suffix = "_quick" if args.quick else ("" if args.threads == 1 else f"_threads{args.threads}")
    out = args.out or ROOT / "benchmarks" / "results" / f"certificates_residuals{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(info=info, rows=rows), indent=2))
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return rows


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: small sizes, one repeat")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    parser.add_argument("--residuals", action="store_true", help="real completion residuals instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    hd.sigma_max(np.eye(3), method="probabilistic", rng=0)  # warm up (imports scipy.linalg)
    if args.residuals:
        return residuals(args)
    sizes = args.sizes or ([100, 200] if args.quick else [200, 400, 700, 1000, 1500, 2000, 3000])
    repeats = 1 if args.quick else args.repeats
    tols = (1e-4, 1e-6)
    info = {"machine": platform.platform(), "python": sys.version.split()[0], "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "hdlcore": hd.__version__, "torch_threads": torch.get_num_threads(),
            "load_before": load(), "failure_probability": 1e-9,
            "exact_size_limit": EXACT_SIZE_LIMIT}
    print(f"load average before: {info['load_before']}  (torch threads {info['torch_threads']})")
    heads = " ".join(f"{'prob s':>8} {'steps':>5} {'svd/prob':>8}" for _ in tols)
    print(f"{'n':>5} {'spectrum':>8} {'svd s':>8} {heads}   (tol = {', '.join(map(str, tols))})")
    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        for name, bulk in (("gap", 0.9), ("flat", 0.99)):
            A = flat_top(n, bulk, seed=n)
            s1 = float(torch.linalg.svdvals(A)[0])  # 1 up to rounding (untimed)
            t_svd: list[float] = []
            t_prob: dict[float, list[float]] = {tol: [] for tol in tols}
            steps: dict[float, list[int]] = {tol: [] for tol in tols}
            for _ in range(repeats):
                t0 = time.perf_counter()
                torch.linalg.svdvals(A)
                t_svd.append(time.perf_counter() - t0)
                for tol in tols:
                    t0 = time.perf_counter()
                    s = hd.sigma_max(A, method="probabilistic", threshold=s1 * (1 + tol), rng=rng,
                                     max_steps=3000)
                    t_prob[tol].append(time.perf_counter() - t0)
                    steps[tol].append(s.steps)
                    assert s.upper >= s1 and "proven" in s.basis, s.basis
            svd = statistics.median(t_svd)
            row = {"n": n, "spectrum": name, "bulk": bulk, "svd_s": svd, "svd_runs": t_svd}
            cells = []
            for tol in tols:
                prob = statistics.median(t_prob[tol])
                row[f"prob_s_tol{tol:g}"] = prob
                row[f"prob_runs_tol{tol:g}"] = t_prob[tol]
                row[f"steps_tol{tol:g}"] = steps[tol]
                row[f"ratio_tol{tol:g}"] = svd / prob
                cells.append(f"{prob:8.3f} {int(statistics.median(steps[tol])):5d} {svd / prob:8.2f}")
            rows.append(row)
            print(f"{n:5d} {name:>8} {svd:8.3f} " + " ".join(cells), flush=True)
    # The crossing: the smallest n at which the probabilistic run beats the SVD on both spectra
    # (at the certificate's default tol for float64, 1e-6).
    faster = [n for n in sizes if all(r["ratio_tol1e-06"] > 1 for r in rows if r["n"] == n)]
    info["load_after"] = load()
    print(f"load average after: {info['load_after']}")
    crossing = faster[0] if faster else None
    print(f"probabilistic faster than the full SVD on both spectra from n = {crossing} "
          f"(EXACT_SIZE_LIMIT = {round(EXACT_SIZE_LIMIT ** (1 / 3))}^3)")
    suffix = "_quick" if args.quick else ("" if args.threads == 1 else f"_threads{args.threads}")
    out = args.out or ROOT / "benchmarks" / "results" / f"certificates{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(info=info, rows=rows, crossing_n=crossing), indent=2))
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return rows


if __name__ == "__main__":
    main()
