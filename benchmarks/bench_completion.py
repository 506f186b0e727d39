"""Matrix completion: the factorized meta-algorithm against convex solvers (Chapter 3).

Problem: an n x n matrix of rank 5 plus Gaussian noise (0.1), 30 % of the entries observed,
lam = 1.3 sqrt(n) (about 1.4 times the spectral norm of the sampling noise, so that the optimum
has rank about 5), loss 1/2 |M * (Y - X)|_F^2 + lam |X|_*.

Methods, each run to the same optimum:

- ``grow``: ``hdlcore.grow`` (alternating least squares + polar test + one column at a time);
  the time includes its final certificate.
- ``apg``: ``hdlcore.solve_convex``, accelerated proximal gradient with a full SVD per step.
- ``scs``: cvxpy + SCS with eps 1e-9 (looser settings stop up to 1e-5 away from the optimum).
- ``softimpute``: fancyimpute 0.7.0's SoftImpute (a full SVD per step), patched at import for
  scikit-learn >= 1.8; it returns the *filled* matrix, so it is scored after one more singular
  value thresholding of its output, and its stopping threshold is the loosest of a ladder that
  reaches the optimum to 1e-6 (chosen in an untimed run).

The reference is a proven lower bound on the optimum, ``F* >= F(grow) - bound``, from
``hdlcore.certify`` with an exact SVD (untimed); every method's relative gap to it is reported,
and a method "reaches the optimum" when it is at most 1e-6. Timings are interleaved
(A B C D A B C D ...) and the median is quoted (``grow``, the cheapest, runs three times per
round); the machine's load average is recorded before and after. The growth exponent of
``grow`` is fitted over n = 250 ... 4000.

    python benchmarks/bench_completion.py                # full run (about 15 minutes on 2 cores)
    python benchmarks/bench_completion.py --threads 1    # every library on one thread
    python benchmarks/bench_completion.py --quick        # smoke test (small sizes, seconds)

Writes ``benchmarks/results/completion.json`` (``completion_quick.json`` with ``--quick``).
Benchmark-only dependencies: ``benchmarks/requirements.txt``.
"""

from __future__ import annotations

import os

from _common import ROOT, interleave, load, machine_info, pin_threads_from_argv, write_json

# --threads N must reach every thread pool (torch/MKL, OpenBLAS behind numpy and SCS) before
# they start: set the environment first, then import.
pin_threads_from_argv()

import argparse  # noqa: E402
import statistics  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import hdlcore as hd  # noqa: E402

TOL = 1e-6  # "the same optimum": relative gap to the proven lower bound


def problem(n: int, seed: int = 0):
    Y, _ = hd.low_rank_matrix(n, n, 5, noise=0.1, rng=seed)
    mask = hd.random_mask((n, n), 0.3, rng=seed + 1)
    return Y, mask, 1.3 * np.sqrt(n)


def objective(Y, mask, X, lam) -> float:
    R = mask * (Y - X)
    return 0.5 * float(np.sum(R * R)) + lam * float(np.linalg.svd(X, compute_uv=False).sum())


def svt(X, tau):
    W, s, Zt = np.linalg.svd(X, full_matrices=False)
    return (W * np.maximum(s - tau, 0)) @ Zt


# -- the methods: each returns the objective it reached (in float64) -------------------------
def run_grow(Y, mask, lam, **_):
    return hd.grow(Y, lam, mask, rng=0).objective


def run_apg(Y, mask, lam, **_):
    return hd.solve_convex(Y, lam, mask).objective


def run_scs(Y, mask, lam, **_):
    import cvxpy as cp

    X = cp.Variable(Y.shape)
    cost = 0.5 * cp.sum_squares(cp.multiply(mask.astype(float), Y - X)) + lam * cp.normNuc(X)
    cp.Problem(cp.Minimize(cost)).solve(solver=cp.SCS, eps_abs=1e-9, eps_rel=1e-9, max_iters=1_000_000)
    return objective(Y, mask, X.value, lam)


def _fancyimpute():
    """fancyimpute 0.7.0's SoftImpute, patched for scikit-learn >= 1.8 (force_all_finite was renamed)
    and to stop at the zero fixed point (see PatchedSoftImpute._converged)."""
    import sklearn.utils

    original = sklearn.utils.check_array
    if not getattr(original, "_patched_for_fancyimpute", False):
        def check_array(*args, force_all_finite=None, **kwargs):
            if force_all_finite is not None:
                kwargs.setdefault("ensure_all_finite", force_all_finite)
            return original(*args, **kwargs)

        check_array._patched_for_fancyimpute = True
        sklearn.utils.check_array = check_array
    from fancyimpute import SoftImpute

    class PatchedSoftImpute(SoftImpute):
        def _converged(self, X_old, X_new, missing_mask):
            # fancyimpute 0.7.0 never stops at the zero fixed point (an old fill of norm 0 counts as
            # not converged, and a fill of rounding size changes by 100 % from step to step): at
            # lam = sigma_1(M * Y), the first point of a path, it would run max_iters full SVDs.
            tiny = 1e-10 * float(np.linalg.norm(X_old))
            if (np.linalg.norm(X_old[missing_mask]) <= tiny
                    and np.linalg.norm(X_new[missing_mask]) <= tiny):
                return True
            return super()._converged(X_old, X_new, missing_mask)

    return PatchedSoftImpute


def run_softimpute(Y, mask, lam, threshold=1e-7, **_):
    SoftImpute = _fancyimpute()
    Xin = np.where(mask, Y, np.nan)
    filled = SoftImpute(shrinkage_value=lam, convergence_threshold=threshold, max_iters=100_000,
                        init_fill_method="zero", verbose=False).fit_transform(Xin)
    return objective(Y, mask, svt(filled, lam), lam)  # its iterate: one more SVT of the fill


METHODS = {"grow": run_grow, "apg": run_apg, "scs": run_scs, "softimpute": run_softimpute}


def interleaved(Y, mask, lam, methods, repeats, kwargs, inner=None):
    """Time each method in ``repeats`` interleaved rounds (A B C A B C ...); a method listed in
    ``inner`` runs that many times per round (cheap ones: more samples at the same moments).
    Returns {name: (times, objective)}."""
    variants = {m: (lambda m=m: METHODS[m](Y, mask, lam, **kwargs.get(m, {}))) for m in methods}
    return {m: (t.times, t.result) for m, t in interleave(variants, repeats, inner=inner).items()}


def reference(Y, mask, lam):
    """A proven lower bound on F* (exact SVD certificate at grow's point) and grow's rank."""
    res = hd.grow(Y, lam, mask, rng=0)
    cert = hd.certify(Y, res.U, res.V, lam, mask, method="exact")
    return cert.lower, res.size, cert


def softimpute_threshold(Y, mask, lam, f_low):
    """The loosest stopping threshold of SoftImpute that reaches the optimum to TOL (untimed)."""
    for thr in (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9):
        if (run_softimpute(Y, mask, lam, thr) - f_low) / f_low <= TOL:
            return thr
    return 1e-10


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: small sizes, one repeat")
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    parser.add_argument("--skip", nargs="*", default=[], help="methods to skip (scs, softimpute, apg)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every library (torch, OpenBLAS, MKL); default: as configured")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", hd.ConvergenceWarning)
    quick = args.quick
    default = "completion_quick.json" if quick else "completion.json"
    out_path = args.out or ROOT / "benchmarks" / "results" / default
    try:
        _fancyimpute()
        have_fancy = "softimpute" not in args.skip
    except ImportError:
        have_fancy = False
        print("fancyimpute not installed: SoftImpute skipped (pip install -r benchmarks/requirements.txt)")
    if quick:
        plan = {60: (["grow", "apg", "scs", "softimpute"], 1), 120: (["grow", "apg", "softimpute"], 1)}
        scaling = [60, 120, 240]
    else:
        plan = {
            200: (["grow", "scs", "softimpute", "apg"], 3),
            400: (["grow", "scs", "softimpute", "apg"], 2),
            1000: (["grow", "softimpute", "apg"], 2),
            2000: (["grow", "apg"], 2),
        }
        scaling = [250, 500, 1000, 2000, 4000]
    plan = {n: ([m for m in ms if m not in args.skip and (m != "softimpute" or have_fancy)], r)
            for n, (ms, r) in plan.items()}
    info = {
        **machine_info(), "load_before": load(), "threads_requested": args.threads,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }
    print(f"load average before: {info['load_before']}  (torch threads {info['torch_threads']})")
    hd.grow(*problem(50)[:1], 5.0)  # warm up torch/LAPACK
    rows = []
    refs = {}
    for n in sorted(set(plan) | set(scaling)):
        Y, mask, lam = problem(n)
        f_low, rank, cert = reference(Y, mask, lam)
        refs[n] = dict(f_lower=f_low, rank=rank, polar=cert.polar, bound=cert.bound)
        methods, repeats = plan.get(n, (["grow"], 1 if quick else 3))
        kwargs = {}
        if "softimpute" in methods:
            kwargs["softimpute"] = {"threshold": softimpute_threshold(Y, mask, lam, f_low)}
        timed = interleaved(Y, mask, lam, methods, repeats, kwargs, inner={"grow": 1 if quick else 3})
        for m, (times, f) in timed.items():
            gap = (f - f_low) / f_low
            row = dict(n=n, method=m, times_s=[round(t, 4) for t in times],
                       median_s=statistics.median(times), objective=f, rel_gap=gap,
                       reaches_optimum=bool(gap <= TOL), rank=rank, **kwargs.get(m, {}))
            rows.append(row)
            print(f"n={n:5d} {m:11s} median {row['median_s']:9.3f} s  (runs {row['times_s']})  "
                  f"rel. gap {gap:9.2e}  rank* {rank}")
    info["load_after"] = load()

    def med(n, m):
        return next((r["median_s"] for r in rows if r["n"] == n and r["method"] == m), None)

    ratios = {}
    for n in sorted(plan):
        for m in ("scs", "softimpute", "apg"):
            if med(n, m) is not None:
                ratios[f"{m}/grow@{n}"] = med(n, m) / med(n, "grow")
    ns = np.array(scaling, dtype=float)
    ts = np.array([med(n, "grow") for n in scaling])
    slope, intercept = np.polyfit(np.log(ns), np.log(ts), 1)
    targets = []
    if not quick:
        for key, goal in (("scs/grow@200", 50), ("scs/grow@400", 100), ("softimpute/grow@400", 5),
                          ("apg/grow@2000", 10)):
            if key in ratios:
                targets.append(dict(target=f"{key} >= {goal}", value=ratios[key],
                                    met=bool(ratios[key] >= goal)))
        targets.append(dict(target="time exponent of grow over n = 250..4000 <= 2.3", value=slope,
                            met=bool(slope <= 2.3)))
    targets.append(dict(target="every method reaches the optimum to 1e-6 relative",
                        value=max(r["rel_gap"] for r in rows), met=all(r["reaches_optimum"] for r in rows)))

    print(f"\n{'n':>5} {'method':>11} {'median (s)':>11} {'x grow':>8} {'rel. gap':>10}")
    for r in rows:
        ratio = r["median_s"] / med(r["n"], "grow")
        print(f"{r['n']:5d} {r['method']:>11} {r['median_s']:11.3f} {ratio:8.1f} {r['rel_gap']:10.1e}")
    print(f"\ngrow: time ~ n^{slope:.2f} over n = {scaling[0]}..{scaling[-1]}")
    for t in targets:
        print(f"{'MET ' if t['met'] else 'MISSED'}  {t['target']}: {t['value']:.3g}")
    print(f"load average before {info['load_before']}, after {info['load_after']}")
    result = dict(info=info, problem="n x n, rank 5 + N(0, 0.1^2), 30 % observed, lam = 1.3 sqrt(n)",
                  tolerance=TOL, references={str(k): v for k, v in refs.items()}, rows=rows, ratios=ratios,
                  exponent=dict(sizes=scaling, times_s=ts.tolist(), slope=slope), targets=targets)
    write_json(out_path.name, result, out_path.parent)
    return result


if __name__ == "__main__":
    main()
