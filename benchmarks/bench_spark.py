"""Alternating least squares per sweep: hdlcore on sparse entries vs Spark MLlib's ALS (issue 12).

Spark MLlib's ALS is the distributed engine a user would otherwise reach for. Both run on the
same observed entries of ``bench_sparse.py``'s 20000 x 15000 matrix at 1 % (rank 10 + noise 0.1),
90 % for training and 10 % held out, at rank 10, on this machine (Spark in local mode with as many
worker threads as torch uses).

The two objectives differ: hdlcore minimizes :math:`\\tfrac12\\lVert M\\odot(Y - UV^\\top)\\rVert_F^2
+ \\tfrac\\lambda2(\\lVert U\\rVert_F^2 + \\lVert V\\rVert_F^2)`, Spark weights its ridge term by the
number of entries of each row and column (ALS-WR). ``regParam = lam / (mean entries per row)``
gives both about the same ridge on a row, but their optima differ, so the comparison is the time
per sweep and the held-out root-mean-square error after the same number of sweeps, never the
objective.

- hdlcore: ``solve_factorized(Y_train, lam, 10, max_iter=k, certify=False)`` on a
  ``scipy.sparse`` matrix; time per sweep = median over its sweeps.
- Spark: ``ALS(rank=10, maxIter=k, regParam=...)`` fitted on a cached DataFrame of the same
  entries; time per sweep = (fit time at ``maxIter=k2`` - fit time at ``maxIter=k1``) / (k2 - k1),
  which removes the fixed cost of a fit (job start, partitioning); medians over repeats.

Needs Java 17 or newer (``java -version``; Debian: ``apt-get install openjdk-17-jre-headless``)
and ``pip install -r benchmarks/requirements.txt`` (pyspark).

    python benchmarks/bench_spark.py            # a few minutes on 2 cores
    python benchmarks/bench_spark.py --quick    # 1/10 of the sizes, 10 times the density

Writes ``benchmarks/results/spark.json`` (``spark_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sparse import LAM, RANK, make  # noqa: E402  (the same entries as the sparse benchmark)

ROOT = Path(__file__).resolve().parents[1]
print = functools.partial(print, flush=True)  # noqa: A001


def split(path: Path, holdout: float = 0.1, seed: int = 1):
    with np.load(path) as f:
        i, j, v, shape = f["i"], f["j"], f["vals"], tuple(int(s) for s in f["shape"])
    test = np.random.default_rng(seed).random(i.size) < holdout
    return (i[~test], j[~test], v[~test]), (i[test], j[test], v[test]), shape


def rmse(U, V, test) -> float:
    i, j, v = test
    pred = np.einsum("kr,kr->k", U[i], V[j])
    return float(np.sqrt(np.mean((pred - v) ** 2)))


def run_hdlcore(train, test, shape, sweeps: int, threads: int) -> dict:
    import scipy.sparse as sp
    import torch

    import hdlcore as hd

    torch.set_num_threads(threads)
    i, j, v = train
    Y = sp.csr_matrix((v, (i, j)), shape=shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hd.ConvergenceWarning)  # a fixed number of sweeps
        t = time.perf_counter()
        res = hd.solve_factorized(Y, LAM, RANK, rng=0, max_iter=sweeps, tol=1e-15, certify=False)
        total = time.perf_counter() - t
    per = np.diff(np.concatenate([[0.0], res.history["time"]]))
    return {"per_sweep": float(np.median(per[1:])), "total": total, "sweeps": sweeps,
            "heldout_rmse": rmse(np.asarray(res.U), np.asarray(res.V), test)}


def run_spark(train, test, shape, sweeps: tuple[int, int], threads: int, repeats: int) -> dict:
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(f"local[{threads}]").appName("hdl-bench")
             .config("spark.driver.memory", "6g").config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", str(2 * threads)).getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    i, j, v = train
    reg = LAM / (i.size / shape[0])  # ridge lam / (entries per row): about hdlcore's on an average row

    def als(k):
        return ALS(rank=RANK, maxIter=k, regParam=reg, userCol="user", itemCol="item", ratingCol="rating",
                   seed=0, numUserBlocks=2 * threads, numItemBlocks=2 * threads)

    times: dict[int, list[float]] = {k: [] for k in sweeps}
    with tempfile.TemporaryDirectory() as tmp:
        spark.sparkContext.setCheckpointDir(str(Path(tmp) / "checkpoints"))  # long lineages (ALS docs)
        csv = Path(tmp) / "train.csv"
        np.savetxt(csv, np.column_stack([i, j, v]), fmt=["%d", "%d", "%.17g"], delimiter=",")
        df = spark.read.csv(str(csv), schema="user INT, item INT, rating DOUBLE").repartition(2 * threads)
        df = df.cache()
        df.count()  # materialized before any timing
        als(2).fit(df).userFactors.count()  # warm-up: the JVM compiles the ALS code paths
        models = {}
        for _ in range(repeats):
            for k in sweeps:  # interleaved
                t = time.perf_counter()
                model = als(k).fit(df)
                model.userFactors.count()  # the fit is lazy in parts: force the factors
                times[k].append(time.perf_counter() - t)
                models[k] = model
        k1, k2 = sweeps
        U = np.zeros((shape[0], RANK))
        V = np.zeros((shape[1], RANK))
        for row in models[k2].userFactors.collect():
            U[row.id] = row.features
        for row in models[k2].itemFactors.collect():
            V[row.id] = row.features
    spark.stop()
    med = {k: statistics.median(ts) for k, ts in times.items()}
    return {"per_sweep": (med[k2] - med[k1]) / (k2 - k1), "fit_seconds": {str(k): times[k] for k in sweeps},
            "regParam": reg, "sweeps": k2, "heldout_rmse": rmse(U, V, test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    s = 10 if args.quick else 1
    m, n, frac = 20000 // s, 15000 // s, 0.01 * s
    sweeps = (5, 15)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Y.npz"
        make(m, n, frac, path)
        train, test, shape = split(path)
    print(f"{m} x {n} at {frac:.1%}: {train[0].size} training entries, {test[0].size} held out; rank {RANK}")
    hd_runs = [run_hdlcore(train, test, shape, sweeps[1], args.threads) for _ in range(args.repeats)]
    ours = {"per_sweep": statistics.median(r["per_sweep"] for r in hd_runs), "runs": hd_runs,
            "heldout_rmse": hd_runs[0]["heldout_rmse"], "sweeps": sweeps[1]}
    print(f"hdlcore ALS:   {ours['per_sweep']:.3f} s per sweep, held-out RMSE {ours['heldout_rmse']:.4f} "
          f"after {sweeps[1]} sweeps")
    spark = run_spark(train, test, shape, sweeps, args.threads, args.repeats)
    print(f"Spark MLlib:   {spark['per_sweep']:.3f} s per sweep, held-out RMSE {spark['heldout_rmse']:.4f} "
          f"after {sweeps[1]} sweeps (regParam {spark['regParam']:.4g})")
    ratio = spark["per_sweep"] / ours["per_sweep"]
    print(f"Spark / hdlcore time per sweep: {ratio:.1f}x  (noise level of the data: RMSE 0.1)")
    load1 = os.getloadavg()
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} ({os.cpu_count()} cores)")
    import pyspark

    result = {"command": " ".join(["python", "benchmarks/bench_spark.py", *sys.argv[1:]]),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                          "python": platform.python_version(), "pyspark": pyspark.__version__,
                          "load_before": load0, "load_after": load1},
              "problem": {"m": m, "n": n, "observed": frac, "rank": RANK, "lam": LAM, "holdout": 0.1},
              "hdlcore": ours, "spark": spark,
              "targets": [{"target": "per sweep faster than Spark's ALS", "value": ratio,
                           "met": bool(ratio > 1)}]}
    out = ROOT / "benchmarks" / "results" / ("spark_quick.json" if args.quick else "spark.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
