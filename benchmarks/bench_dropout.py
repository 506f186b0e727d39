"""Benchmark for Chapter 5 (dropout): what each way of computing the expectation costs, and
why ``train_dropout`` runs small CPU problems on one thread.

Interleaves the compared variants (A B A B ...) and reports medians, since the machine is shared.
Prints a table and writes ``benchmarks/results/dropout.json``.

Usage: python benchmarks/bench_dropout.py [--repeats N]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from _common import interleave, print_table, write_json

import hdlcore as hd
from hdlcore.dropout import training as dt


def medians(variants: dict, repeats: int) -> dict:
    return {k: t.median for k, t in interleave(variants, repeats).items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    Y, _ = hd.low_rank_matrix(30, 20, 4, noise=0.3, rng=0)
    rows = []

    # 1. the expectation: closed form vs exact enumeration vs Monte Carlo (r = 12: 4096 masks)
    U, V = rng.normal(size=(30, 12)), rng.normal(size=(20, 12))
    med = medians({
        "closed form": lambda: hd.dropout_risk(Y, U, V, 0.5),
        "exact enumeration (4096 masks)": lambda: hd.dropout_risk_exact(Y, U, V, 0.5),
        "Monte Carlo (10000 masks)": lambda: hd.dropout_risk_mc(Y, U, V, 0.5, num_samples=10_000, rng=0),
    }, args.repeats)
    base = med["closed form"]
    for k, v in med.items():
        rows.append({"what": f"E-loss, 30x20, r=12: {k}", "median_s": v, "ratio": v / base})

    # 2. train_dropout, 500 SGD steps: one thread (the library's choice) vs two threads
    def train(threads: int):
        def go():
            torch.set_num_threads(threads)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # the library pins small CPU problems to 1 thread; measure the raw loop with 2
                # by calling the internal loop directly
                Yt = torch.from_numpy(Y)
                gen = torch.Generator().manual_seed(0)
                U0 = torch.randn(30, 5, generator=gen, dtype=torch.float64)
                V0 = torch.randn(20, 5, generator=gen, dtype=torch.float64)
                dt._train(Yt, lambda t: t, gen, U0, V0, 0.5, "units", True, 500, 1e-3, 8, 0.5, 50, 1.0)
        return go

    threads_before = torch.get_num_threads()
    med = medians({"1 thread": train(1), "2 threads": train(2)}, args.repeats)
    torch.set_num_threads(threads_before)
    for k, v in med.items():
        rows.append({"what": f"500 SGD steps, 30x20, r=5, 8 masks/step: {k}", "median_s": v,
                     "ratio": v / med["1 thread"]})

    print_table(rows, {"what": "{}", "median_s": "{:.4f}", "ratio": "{:.1f}"})
    write_json("dropout.json", {"torch": torch.__version__, "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
