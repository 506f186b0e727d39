"""GPU check for Chapter 5 (dropout): the same code, larger problems, on CUDA when present.

Runs on CUDA if torch sees a GPU, else on the CPU with small sizes (so the code path is tested
here). Each row is a claim of the chapter re-checked at a larger size; the script prints a table,
writes JSON to ``--out`` (default ``benchmarks/results/``) and exits 1 if a check fails.

1. expectation: closed form = exact enumeration over 2^r masks (r = 16 on GPU) = Monte Carlo
   (1e6 masks on GPU) within 4 standard errors, float64;
2. closed-form optimum (SVD on the device) vs deterministic gradient descent on the factors;
3. SGD with real Bernoulli masks on a large matrix (float32 on GPU): expected objective within
   1e-3 of the closed form, column products equalized (spread < 0.1); time per step;
4. the size schedule: the optimum identical for several sizes.

Usage: python benchmarks/gpu_dropout.py [--out DIR] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, default_device, sync, write_json

import hdlcore as hd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--budget", type=float, default=240.0, help="stop adding rows after this")
    args = parser.parse_args()
    dev = default_device(cpu_threads=1)
    cuda = dev.type == "cuda"
    name = torch.cuda.get_device_name(dev) if cuda else f"CPU ({platform.processor() or 'cpu'})"
    big = {True: dict(m=2000, n=1500, rank=10, d=32, bits=16, mc=1_000_000, steps=4000, masks=8),
           False: dict(m=60, n=40, rank=4, d=6, bits=10, mc=20_000, steps=2000, masks=8)}[cuda]
    gen = torch.Generator(device=dev).manual_seed(0)
    t_start = time.perf_counter()
    rows: list[dict] = []

    def now() -> float:
        """Wall time after the device has finished its queued work."""
        sync(dev)
        return time.perf_counter()

    def row(name_: str, ok: bool, **fields) -> None:
        rows.append({"check": name_, "passed": bool(ok), **fields})
        print(f"{'PASS' if ok else 'FAIL'}  {name_}: " + ", ".join(f"{k}={v}" for k, v in fields.items()),
              flush=True)

    # 1. the expectation, three ways (float64)
    f64 = dict(device=dev, dtype=torch.float64)
    Ys = torch.randn(40, 30, generator=gen, **f64)
    Us = torch.randn(40, big["bits"], generator=gen, **f64) * 0.3
    Vs = torch.randn(30, big["bits"], generator=gen, **f64) * 0.3
    keep = 0.6
    t0 = now()
    closed = float(hd.dropout_risk(Ys, Us, Vs, keep))
    exact = float(hd.dropout_risk_exact(Ys, Us, Vs, keep))
    t_exact = now() - t0
    t0 = now()
    est = hd.dropout_risk_mc(Ys, Us, Vs, keep, num_samples=big["mc"], rng=gen)
    t_mc = now() - t0
    row(f"expectation r={big['bits']} ({2 ** big['bits']} masks)",
        abs(closed - exact) / exact < 1e-12 and abs(est.z_score(closed)) < 4,
        rel_diff_exact=f"{abs(closed - exact) / exact:.1e}", mc_z=f"{est.z_score(closed):.2f}",
        exact_s=f"{t_exact:.2f}", mc_s=f"{t_mc:.2f}", mc_samples=big["mc"])

    # 2.-3. a large low-rank problem
    Y_np, _ = hd.low_rank_matrix(big["m"], big["n"], big["rank"], noise=0.1, rng=0)
    d = big["d"]
    beta = 2.0 * big["rank"]
    keep = hd.keep_schedule(d, beta)
    for dtype in (torch.float64, torch.float32):
        Y = torch.from_numpy(Y_np).to(device=dev, dtype=dtype)
        t0 = now()
        opt = hd.dropout_global_minimum(Y, keep, d)
        t_closed = now() - t0
        if dtype == torch.float64 and time.perf_counter() - t_start < args.budget:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", hd.ConvergenceWarning)
                gd = hd.train_dropout(Y, keep, d, stochastic=False, steps=big["steps"], rng=gen)
            gap = (gd.objective - opt.objective) / opt.objective
            row(f"closed form vs gradient descent, {big['m']}x{big['n']}, r={d}, float64",
                abs(gap) < 1e-6, rel_gap=f"{gap:.1e}", rank=opt.rank, closed_form_s=f"{t_closed:.3f}")
        if time.perf_counter() - t_start > args.budget:
            break
        t0 = now()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hd.ConvergenceWarning)
            run = hd.train_dropout(Y, keep, d, steps=big["steps"], masks_per_step=big["masks"], rng=gen)
        t_train = now() - t0
        gap = (run.objective - opt.objective) / opt.objective
        spread = float(np.ptp(run.products[-1]) / run.products[-1].mean())
        row(f"SGD with real masks, {big['m']}x{big['n']}, r={d}, {str(dtype).split('.')[-1]}",
            -1e-4 <= gap < 1e-3 and spread < 0.1, rel_gap=f"{gap:.1e}", spread=f"{spread:.3f}",
            ms_per_step=f"{1e3 * t_train / big['steps']:.2f}", device_of_X=str(run.X.device))

    # 4. the schedule: same optimum for several sizes
    Y = torch.from_numpy(Y_np).to(**f64)
    ref = hd.dropout_optimum(Y, hd.keep_schedule(big["rank"], beta), big["rank"])
    diffs = [float((hd.dropout_optimum(Y, hd.keep_schedule(r, beta), r) - ref).abs().max())
             for r in (big["rank"] * 2, big["d"], 4 * big["d"])]
    row("schedule: optimum independent of the size", max(diffs) < 1e-9 * float(ref.abs().max()),
        max_abs_diff=f"{max(diffs):.1e}")

    result = {"device": name, "torch": torch.__version__, "hdlcore": hd.__version__,
              "seconds": round(time.perf_counter() - t_start, 1), "sizes": big, "rows": rows}
    path = write_json("gpu_dropout.json", result, Path(args.out), dev, quiet=True)
    print(f"{sum(r['passed'] for r in rows)}/{len(rows)} passed on {name} in {result['seconds']} s; "
          f"wrote {path}")
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
