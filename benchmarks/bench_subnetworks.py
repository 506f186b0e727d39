"""Benchmark for Chapter 4: a training step of ParallelSubnetworks vs a loop over per-subnetwork modules.

One full training step (forward, backward, proximal step of the product regularizer, rebalancing)
of ``hd.ParallelSubnetworks`` (batched matrix products, ``hd.train_step``) is timed against the
same step written the natural way: ``r`` separate ``nn.Sequential`` modules whose outputs are
summed, then a loop applying the same proximal update module by module. The two are interleaved
(A B A B ...) and medians reported, since the machine is shared; both start from the same weights
and end at the same weights (checked, float64). The table also gives the achieved matrix-product
FLOP/s next to the machine's measured single-matmul ceiling (same dtype, same threads).

FLOPs are counted two ways: ``executed`` = the matrix products actually run (forward, weight
gradients, input gradients of layers 2..K: the first layer's input gradient is not needed) and
``6BP`` = 6 x batch x parameters, the usual convention (it counts the first layer's input
gradient too). Sizes: the chapter's (digits: 32 subnetworks of 64-32-32-10, batch 100; two
spirals: 20 neurons, 60 samples) and a larger one.

Usage: python benchmarks/bench_subnetworks.py [--repeats N] [--threads T] [--out DIR]
Writes benchmarks/results/subnetworks.json.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch
from _common import RESULTS, interleave, median_time, timed, write_json

import hdlcore as hd


# ------------------------------------------------------------------------------ shared helpers
def layer_sizes(d: int, hidden: tuple[int, ...], C: int) -> list[tuple[int, int]]:
    dims = [d, *hidden, C]
    return list(zip(dims[:-1], dims[1:], strict=True))


def step_flops(r: int, batch: int, d: int, hidden: tuple[int, ...], C: int) -> dict[str, float]:
    """Matrix-product FLOPs of one training step: executed, and the 6 x batch x params convention."""
    sizes = layer_sizes(d, hidden, C)
    total = sum(a * b for a, b in sizes)
    later = sum(a * b for a, b in sizes[1:])
    return {"executed": 2.0 * batch * r * (2 * total + later), "6BP": 6.0 * batch * r * total}


def loop_step_factory(modules, lam: float, lr: float, rebalance: bool = True, scale: float = 1.0):
    """The natural per-module training step: sum of outputs, backward, prox module by module."""
    weights = [[m_.weight for m_ in m if isinstance(m_, torch.nn.Linear | torch.nn.Conv2d)] for m in modules]
    flat = [w for ws in weights for w in ws]
    K = len(weights[0])

    def step(A: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        X = modules[0](A)
        for m in modules[1:]:
            X = X + m(A)
        loss = 0.5 * ((X - Y) ** 2).sum() * scale
        grads = iter(torch.autograd.grad(loss, flat))
        with torch.no_grad():
            for ws in weights:
                norms = [w.norm() for w in ws]
                for w in ws:
                    w.sub_(lr * next(grads))
                new = []
                for k, w in enumerate(ws):
                    c = torch.ones((), dtype=w.dtype, device=w.device)
                    for j in range(K):
                        if j != k:
                            c = c * norms[j]
                    n = w.norm()
                    f = (1 - lr * lam * c / n.clamp_min(1e-30)).clamp_min(0)
                    w.mul_(f)
                    new.append(n * f)
                dead = torch.stack(new).min() == 0
                g = torch.stack(new).clamp_min(1e-30).log().mean().exp()
                for w, n in zip(ws, new, strict=True):
                    keep = g / n.clamp_min(1e-30) if rebalance else torch.ones_like(n)
                    w.mul_(torch.where(dead, 0.0, keep))
        return loss.detach()

    return step


def batched_step_factory(net, lam: float, lr: float, precision: str = "full", scale: float = 1.0):
    def step(A: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        return hd.train_step(net, A, Y, lam, lr, precision=precision, scale=scale)

    return step


def matmul_ceiling(n: int, dtype: torch.dtype, device: torch.device, repeats: int = 10) -> float:
    """FLOP/s of one n x n x n matrix product (median of ``repeats``)."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    timed(lambda: torch.mm(a, b), device, repeats=2)  # warm-up
    return 2.0 * n**3 / median_time(lambda: torch.mm(a, b), device, repeats)


def make_problem(r, d, hidden, C, batch, dtype, device, seed=0):
    net = hd.ParallelSubnetworks(d, C, r, hidden, rng=seed, dtype=dtype, device=device)
    hd.rebalance(net)
    gen = torch.Generator().manual_seed(seed)
    A = torch.rand(batch, d, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
    Y = torch.randn(batch, C, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
    return net, A, Y


def compare(case: dict, repeats: int, device, dtype, lam=1e-3, lr=1e-2) -> dict:
    """Interleaved medians of the batched and the loop step; FLOP/s; equality of the results.

    The loss is the mean over the batch (scale 1/batch) and the step small, so that no run
    diverges while it is timed (inf and NaN arithmetic would distort the timings).
    """
    r, d, hidden, C, batch = case["r"], case["d"], tuple(case["hidden"]), case["C"], case["batch"]
    net, A, Y = make_problem(r, d, hidden, C, batch, dtype, device)
    modules = net.to_modules()
    batched = batched_step_factory(net, lam, lr, scale=1 / batch)
    loop = loop_step_factory(modules, lam, lr, scale=1 / batch)
    n_steps = case.get("steps_per_timing", 10)
    med = interleave({"batched": lambda: batched(A, Y), "loop": lambda: loop(A, Y)}, repeats, device=device,
                     per=n_steps, warmup=2)
    mb, ml = med["batched"].median, med["loop"].median
    fl = step_flops(r, batch, d, hidden, C)
    final = float(0.5 * ((net(A) - Y) ** 2).mean().detach())
    if not (final == final and final < 1e6 and int(net.active().sum()) == r):
        raise RuntimeError(f"{case['name']}: the timed run diverged or lost subnetworks ({final})")
    return {**case, "batched_ms": 1e3 * mb, "loop_ms": 1e3 * ml, "speedup": ml / mb,
            "batched_gflops_executed": fl["executed"] / mb / 1e9, "batched_gflops_6BP": fl["6BP"] / mb / 1e9,
            "loop_gflops_executed": fl["executed"] / ml / 1e9}


def same_result(case: dict, device, steps: int = 5) -> float:
    """Max relative difference of the weights after ``steps`` batched vs loop steps (float64)."""
    r, d, hidden, C, batch = case["r"], case["d"], tuple(case["hidden"]), case["C"], case["batch"]
    batch = min(batch, 256)
    net, A, Y = make_problem(r, d, hidden, C, batch, torch.float64, device, seed=1)
    start = [w.detach().clone() for w in net.weights]
    modules = net.to_modules()
    batched = batched_step_factory(net, 1e-3, 1e-2, scale=1 / batch)
    loop = loop_step_factory(modules, 1e-3, 1e-2, scale=1 / batch)
    for _ in range(steps):
        batched(A, Y)
        loop(A, Y)
    moved = min(float((w.detach() - s).abs().max()) for w, s in zip(net.weights, start, strict=True))
    if moved == 0 or int(net.active().sum()) != r:
        raise RuntimeError(f"{case['name']}: the comparison run did not move or lost subnetworks")
    worst = 0.0
    for i, m in enumerate(modules):
        ws = [m_.weight for m_ in m if isinstance(m_, torch.nn.Linear)]
        for k, w in enumerate(ws):
            ref = net.weights[k].detach()[i]
            worst = max(worst, float((w.detach().T - ref).abs().max() / ref.abs().max().clamp_min(1e-300)))
    return worst


CASES = [
    {"name": "chapter: two spirals, full batch", "r": 20, "d": 2, "hidden": [1], "C": 1, "batch": 60},
    {"name": "chapter: digits, mini-batch", "r": 32, "d": 64, "hidden": [32, 32], "C": 10, "batch": 100},
    {"name": "larger: 64 x 784-64-64-10", "r": 64, "d": 784, "hidden": [64, 64], "C": 10, "batch": 256,
     "steps_per_timing": 3},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (train uses 1 for these sizes)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device, dtype = torch.device("cpu"), torch.float32
    ceiling = matmul_ceiling(1024, dtype, device)
    load = os.getloadavg()
    rows = []
    print(f"CPU {platform.processor() or platform.machine()}, {args.threads} thread(s), "
          f"torch {torch.__version__}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"fp32 matmul ceiling (1024^3): {ceiling / 1e9:.1f} GFLOP/s")
    print(f"{'case':38s} {'batched ms':>10s} {'loop ms':>9s} {'speedup':>8s} {'GFLOP/s':>8s} {'% ceil':>7s} "
          f"{'6BP GF/s':>8s} {'same':>8s}")
    for case in CASES:
        row = compare(case, args.repeats, device, dtype)
        row["max_rel_diff_vs_loop_float64"] = same_result(case, device)
        row["percent_of_ceiling_executed"] = 100 * row["batched_gflops_executed"] * 1e9 / ceiling
        rows.append(row)
        print(f"{case['name']:38s} {row['batched_ms']:10.3f} {row['loop_ms']:9.3f} {row['speedup']:7.1f}x "
              f"{row['batched_gflops_executed']:8.2f} {row['percent_of_ceiling_executed']:6.1f}% "
              f"{row['batched_gflops_6BP']:8.2f} {row['max_rel_diff_vs_loop_float64']:8.1e}", flush=True)
    out = {"machine": f"CPU {platform.processor() or platform.machine()}", "threads": args.threads,
           "torch": torch.__version__, "load_average": load, "dtype": "float32",
           "ceiling_gflops_fp32_1024": ceiling / 1e9, "repeats": args.repeats, "rows": rows,
           "notes": "interleaved A B A B medians; executed FLOPs exclude the first layer's input "
                    "gradient; 6BP = 6 x batch x params"}
    write_json("subnetworks.json", out, args.out)


if __name__ == "__main__":
    main()
