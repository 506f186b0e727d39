"""GPU measurements for Chapter 4: ParallelSubnetworks training steps against the card's own ceiling.

Runs on CUDA if torch sees a GPU (the issue's size: 128 subnetworks of 784-256-256-10, batch
4096), else on the CPU with tiny sizes so that the same code path is tested. In about three
minutes on an H100 it measures, interleaved and by medians (CUDA-synchronized wall time):

1. the matrix-product ceiling of the card, one 8192^3 product in fp32 (IEEE), TF32 and bf16;
2. a full training step of ``ParallelSubnetworks`` (``hd.train_step``: forward, backward,
   proximal step of the product regularizer, rebalancing) in fp32, TF32 and bf16 autocast,
   and the forward + backward alone in fp32 (the reference figure of the issue);
3. the same full step written as a loop over 128 ``nn.Sequential`` modules (fp32);
4. correctness: a small case trained 5 steps on the device in float32 and on the CPU in float64
   from the same weights (max relative weight difference), and the batched step against the
   loop on the device (float64);
5. the accuracy impact of TF32 and bf16: relative error of the loss gradient against float64 at
   the full size, and the final objective of 200 proximal steps on a small teacher task in each
   precision against float64.

Achieved FLOP/s are printed next to the measured ceiling: ``executed`` counts the products
actually run (the first layer's input gradient is not computed), ``6BP`` the usual convention
6 x batch x parameters (used by the issue's reference figure). Targets (issue 5): full fp32
step >= 70% of the fp32 ceiling and >= 3x the loop. Prints a table, writes JSON to ``--out``
(default benchmarks/results/gpu_subnetworks.json) and exits 1 if a correctness check fails.

Usage: python benchmarks/gpu_subnetworks.py [--out DIR] [--repeats N]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from _common import RESULTS, default_device, interleave, write_json
from bench_subnetworks import (  # the loop baseline and FLOP count, shared with the CPU benchmark
    batched_step_factory,
    loop_step_factory,
    make_problem,
    matmul_ceiling,
    step_flops,
)

import hdlcore as hd
from hdlcore.networks.problem import NetworkProblem
from hdlcore.networks.proximal import first_step


def ceiling(n: int, mode: str, device, repeats: int) -> float:
    """FLOP/s of an n^3 product in 'fp32' (IEEE), 'tf32' or 'bf16'."""
    from hdlcore._runtime import precision as _precision

    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    with _precision("tf32" if mode == "tf32" else "full", device.type):
        return matmul_ceiling(n, dtype, device, repeats)


def measure_speed(size, ceil, lam, lr, repeats, device):
    """Interleaved medians of the batched steps (three precisions), fwd+bwd, and the loop."""
    r, d, hidden, C, B = size["r"], size["d"], size["hidden"], size["C"], size["batch"]
    net, A, Y = make_problem(r, d, hidden, C, B, torch.float32, device)
    modules = net.to_modules()
    # the mean loss (scale 1/B) and a small step: nothing diverges while timing
    steps = {p: batched_step_factory(net, lam, lr, p, scale=1 / B) for p in ("full", "tf32", "bf16")}
    loop = loop_step_factory(modules, lam, lr, scale=1 / B)
    params = list(net.weights)

    def fwd_bwd():
        loss = 0.5 * ((net(A) - Y) ** 2).sum()
        torch.autograd.grad(loss, params)

    variants = {"batched step fp32": lambda: steps["full"](A, Y),
                "batched step tf32": lambda: steps["tf32"](A, Y),
                "batched step bf16": lambda: steps["bf16"](A, Y),
                "batched fwd+bwd fp32": fwd_bwd,
                "loop of modules, step fp32": lambda: loop(A, Y)}
    # warm-up (cuBLAS heuristics, allocator), then interleaved rounds
    timing = interleave(variants, repeats, device=device, per=size["per"], warmup=2)
    med = {k: t.median for k, t in timing.items()}
    fl = step_flops(r, B, d, hidden, C)
    rows = []
    print(f"{'variant':30s} {'ms':>8s} {'TFLOP/s exec':>12s} {'% fp32 ceil':>11s} {'TFLOP/s 6BP':>11s}")
    for k, t in med.items():
        ex, conv = fl["executed"] / t / 1e12, fl["6BP"] / t / 1e12
        rows.append({"variant": k, "ms": 1e3 * t, "tflops_executed": ex, "tflops_6BP": conv,
                     "percent_fp32_ceiling_executed": 100 * ex * 1e12 / ceil["fp32"]})
        print(f"{k:30s} {1e3 * t:8.2f} {ex:12.2f} {100 * ex * 1e12 / ceil['fp32']:10.1f}% {conv:11.2f}",
              flush=True)
    speedup = med["loop of modules, step fp32"] / med["batched step fp32"]
    pct = 100 * fl["executed"] / med["batched step fp32"] / ceil["fp32"]
    with torch.no_grad():
        final = float(0.5 * ((net(A) - Y) ** 2).mean())
    healthy = final == final and final < 1e6 and int(net.active().sum()) == r
    print(f"timed runs {'stayed finite with every subnetwork active' if healthy else 'DIVERGED'} "
          f"(mean loss {final:.3g})", flush=True)
    rows.append({"variant": "health of the timed runs", "finite_and_all_active": healthy, "mean_loss": final})
    return rows, speedup, pct


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    device = default_device(cpu_threads=1)
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else f"CPU ({platform.machine()}, 1 thread)"
    size = (dict(r=128, d=784, hidden=(256, 256), C=10, batch=4096, n_ceiling=8192, per=5) if cuda else
            dict(r=8, d=64, hidden=(32, 32), C=10, batch=256, n_ceiling=512, per=3))
    r, d, hidden, C, B = size["r"], size["d"], size["hidden"], size["C"], size["batch"]
    lam, lr = 1e-3, 1e-3
    t_start = time.perf_counter()
    out: dict = {"device": name, "torch": torch.__version__, "size": {k: v for k, v in size.items()}}
    failed = False
    print(f"device: {name} | torch {torch.__version__} | {r} subnetworks of {d}-"
          f"{'-'.join(map(str, hidden))}-{C}, batch {B}", flush=True)

    # 1. ceilings
    ceil = {m: ceiling(size["n_ceiling"], m, device, args.repeats) for m in ("fp32", "tf32", "bf16")}
    out["ceiling_tflops"] = {m: v / 1e12 for m, v in ceil.items()}
    print("matmul ceiling (" + f"{size['n_ceiling']}^3): " +
          ", ".join(f"{m} {v / 1e12:.2f} TFLOP/s" for m, v in ceil.items()), flush=True)

    # 2-3. batched steps in three precisions, fwd+bwd alone, and the loop, interleaved
    rows, speedup, pct = measure_speed(size, ceil, lam, lr, args.repeats, device)
    out["rows"] = rows
    out["speedup_vs_loop_fp32"] = speedup
    out["percent_fp32_ceiling_executed"] = pct
    out["targets"] = {"fp32 step >= 70% of fp32 ceiling (executed FLOPs)": pct >= 70,
                      "fp32 step >= 3x the loop": speedup >= 3}
    print(f"fp32 step: {pct:.1f}% of the fp32 ceiling (executed FLOPs), {speedup:.1f}x the loop", flush=True)
    if cuda:
        torch.cuda.empty_cache()

    # 4. correctness: device float32 vs CPU float64, and batched vs loop on the device (float64)
    small = dict(r=8, d=20, hidden=(16, 16), C=3, batch=64)
    net_d, A_d, Y_d = make_problem(**small, dtype=torch.float32, device=device, seed=3)
    net_c = hd.ParallelSubnetworks.from_weights([w.detach().double().cpu() for w in net_d.weights])
    A_c, Y_c = A_d.double().cpu(), Y_d.double().cpu()
    for _ in range(5):  # mean loss, a modest step: the weights move and stay finite
        hd.train_step(net_d, A_d, Y_d, lam, 0.1, scale=1 / small["batch"])
        hd.train_step(net_c, A_c, Y_c, lam, 0.1, scale=1 / small["batch"])
    dev_vs_cpu = max(float((a.detach().double().cpu() - b.detach()).abs().max() / b.detach().abs().max())
                     for a, b in zip(net_d.weights, net_c.weights, strict=True))
    net64, A64, Y64 = make_problem(**small, dtype=torch.float64, device=device, seed=4)
    mods64 = net64.to_modules()
    s_b = batched_step_factory(net64, lam, 0.1, scale=1 / small["batch"])
    s_l = loop_step_factory(mods64, lam, 0.1, scale=1 / small["batch"])
    for _ in range(5):
        s_b(A64, Y64)
        s_l(A64, Y64)
    batched_vs_loop = max(
        float((m[2 * k].weight.detach().T - net64.weights[k].detach()[i]).abs().max())
        for i, m in enumerate(mods64) for k in range(len(small["hidden"]) + 1))
    finite = all(bool(torch.isfinite(w).all()) for w in net_c.weights) and int(net_c.active().sum()) > 0
    ok = dev_vs_cpu <= 1e-4 and batched_vs_loop <= 1e-12 and finite
    failed |= not ok
    out["correctness"] = {"device_fp32_vs_cpu_fp64_max_rel": dev_vs_cpu,
                          "batched_vs_loop_fp64_max_abs": batched_vs_loop, "passed": ok}
    print(f"{'PASS' if ok else 'FAIL'}  correctness: device fp32 vs CPU fp64 after 5 steps {dev_vs_cpu:.1e} "
          f"(<= 1e-4); batched vs loop fp64 {batched_vs_loop:.1e} (<= 1e-12)", flush=True)

    # 5. accuracy of TF32 / bf16: gradient error at the full size, and a short training run
    net, A, Y = make_problem(r, d, hidden, C, B, torch.float64, device, seed=5)
    ref_loss = hd.network_loss(net(A), Y)
    ref = torch.autograd.grad(ref_loss, list(net.weights))
    net32 = hd.ParallelSubnetworks.from_weights([w.detach().float() for w in net.weights])
    A32, Y32 = A.float(), Y.float()
    grad_err = {}
    from hdlcore._runtime import precision as _precision

    for p in ("full", "tf32", "bf16"):
        with _precision(p, device.type):
            X = net32(A32)
        g = torch.autograd.grad(hd.network_loss(X.float(), Y32), list(net32.weights))
        num = sum(float(((a.double() - b) ** 2).sum()) for a, b in zip(g, ref, strict=True)) ** 0.5
        den = sum(float((b**2).sum()) for b in ref) ** 0.5
        grad_err[p] = num / den
    del net, net32, A, Y, A32, Y32, ref
    teach = dict(r=16, d=d, hidden=hidden, C=C, batch=min(B, 1024))
    teacher, At, _ = make_problem(**teach, dtype=torch.float64, device=device, seed=6)
    with torch.no_grad():
        Yt = teacher(At)
    final = {}
    probe, _, _ = make_problem(**teach, dtype=torch.float64, device=device, seed=7)
    nb = At.shape[0]
    lr_t = first_step(NetworkProblem(probe, At, Yt, 1e-4), 1 / nb) / 4  # a safe step
    out["teacher_lr"] = lr_t
    for p in ("float64", "full", "tf32", "bf16"):
        dt = torch.float64 if p == "float64" else torch.float32
        student, _, _ = make_problem(**teach, dtype=dt, device=device, seed=7)
        Ad, Yd = At.to(dt), Yt.to(dt)
        for _ in range(200):  # the mean loss, a step a quarter of the backtracking one
            hd.train_step(student, Ad, Yd, 1e-4, lr_t, precision="full" if p == "float64" else p,
                          scale=1 / nb)
        with torch.no_grad():
            final[p] = float(hd.network_loss(student(At.to(dt)).double(), Yt) / nb
                             + 1e-4 * hd.network_regularizer(student).double())
    acc = {p: {"grad_rel_error_vs_fp64": grad_err[p],
               "final_objective_rel_diff_vs_fp64": abs(final[p] - final["float64"]) / abs(final["float64"])}
           for p in ("full", "tf32", "bf16")}
    out["accuracy"] = acc
    out["final_objective_200_steps"] = final
    for p, v in acc.items():
        print(f"accuracy {p:5s}: gradient rel. error vs fp64 {v['grad_rel_error_vs_fp64']:.1e}; objective "
              f"after 200 steps rel. diff vs fp64 {v['final_objective_rel_diff_vs_fp64']:.1e}", flush=True)
    out["seconds"] = time.perf_counter() - t_start
    print(f"total {out['seconds']:.1f} s")
    write_json("gpu_subnetworks.json" if cuda else "gpu_subnetworks_cpu.json", out, args.out, device)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
