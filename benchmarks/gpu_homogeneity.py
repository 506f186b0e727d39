"""hd.degree on a GPU: right verdicts at GPU sizes and precisions (TF32 included), and its cost.

    python benchmarks/gpu_homogeneity.py [--out benchmarks/results/] [--max-seconds 120]

Runs on CUDA when present (large models), else on the CPU with small ones (the same code path).
For each case it measures the degree with ``hd.degree`` and compares the verdict with the exact
answer: bias-free ReLU MLPs and CNNs (degree = number of weight layers) in float64, float32 with
TF32 allowed (PyTorch's default for convolutions), float32 with TF32 disabled, float16 and
bfloat16, and the same CNN with biases (not homogeneous). It also times one ``hd.degree`` call
against one forward pass (medians). Prints a table, writes ``gpu_homogeneity.json`` under
``--out``, and exits with status 1 if any verdict is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time
from pathlib import Path

import torch
from _common import median_time, write_json
from torch import nn

import hdlcore as hd


def mlp(K: int, width: int, d: int, C: int) -> nn.Sequential:
    sizes = [d] + [width] * (K - 1) + [C]
    layers: list[nn.Module] = []
    for k in range(K):
        layers.append(nn.Linear(sizes[k], sizes[k + 1], bias=False))
        if k < K - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def cnn(channels: int, size: int, bias: bool) -> nn.Sequential:
    """4 convolutions (max pooling after the 2nd and 4th) and a linear layer: 5 weight layers."""
    c = channels
    return nn.Sequential(
        nn.Conv2d(3, c, 3, padding=1, bias=bias), nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c, 2 * c, 3, padding=1, bias=bias), nn.ReLU(),
        nn.Conv2d(2 * c, 2 * c, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * c * (size // 4) ** 2, 10, bias=bias),
    )


@contextlib.contextmanager
def tf32(allowed: bool):
    """Set TF32 for CUDA convolutions and matmuls (new API, torch >= 2.9), restore afterwards."""
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = (conv.fp32_precision, matmul.fp32_precision)
    conv.fp32_precision = matmul.fp32_precision = "tf32" if allowed else "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/", help="folder for gpu_homogeneity.json")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop adding cases after this")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(0)
    big = dict(K=8, width=2048, d=512, batch=1024, channels=64, size=64, images=128)
    small = dict(K=4, width=32, d=16, batch=16, channels=4, size=16, images=4)
    s = big if cuda else small
    start = time.perf_counter()
    cases = []  # (name, model, input, dtype, tf32 allowed or None, expected degree or None)
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        if dtype in (torch.float16, torch.bfloat16) and not cuda:
            continue  # half-precision matmuls on a CPU are slow and not the point here
        settings = (True, False) if (cuda and dtype == torch.float32) else (None,)
        for allowed in settings:
            A = torch.randn(s["batch"], s["d"], device=device, dtype=dtype)
            cases.append((f"MLP K={s['K']} width={s['width']}", mlp(s["K"], s["width"], s["d"], 10), A, dtype,
                          allowed, s["K"]))
            images = torch.randn(s["images"], 3, s["size"], s["size"], device=device, dtype=dtype)
            name = f"CNN 5 layers, {s['channels']} channels"
            cases.append((name, cnn(s["channels"], s["size"], False), images, dtype, allowed, 5))
            biased = cnn(s["channels"], s["size"], True)
            cases.append(("same CNN with biases", biased, images, dtype, allowed, None))
    rows = []
    for name, model, inputs, dtype, allowed, expected in cases:
        if time.perf_counter() - start > args.max_seconds:
            print(f"time budget of {args.max_seconds:.0f} s reached: skipping the remaining cases")
            break
        model = model.to(device=device, dtype=dtype)
        ctx = tf32(allowed) if allowed is not None else contextlib.nullcontext()
        with ctx:
            result = hd.degree(model, inputs=inputs)
            if expected is None:
                ok = not result.homogeneous
            else:
                ok = result.homogeneous and result.degree == expected
            with torch.no_grad():
                t_fwd = median_time(lambda m=model, x=inputs: m(x), device, 10)
            t_deg = median_time(lambda m=model, x=inputs: hd.degree(m, inputs=x), device, 3)
        precision = str(dtype).replace("torch.", "")
        precision += "" if allowed is None else (" tf32" if allowed else " ieee")
        rows.append(dict(case=name, precision=precision, expected=expected, degree=result.degree,
                         fitted=result.fitted_degree,
                         max_deviation=result.max_deviation, rtol=result.rtol, euler=result.euler_degree,
                         verdict=result.verdict, ok=ok, forward_s=t_fwd, degree_s=t_deg,
                         ratio=t_deg / t_fwd, notes=list(result.notes)))
    header = f"{'case':<34} {'precision':<14} {'exp':>4} {'p':>6} {'deviation':>10} {'rtol':>9} " \
             f"{'fwd ms':>8} {'degree ms':>10} {'ratio':>6}  ok"
    print(f"device: {torch.cuda.get_device_name(device) if cuda else platform.processor() or 'cpu'}, "
          f"torch {torch.__version__}")
    print(header)
    for r in rows:
        print(f"{r['case']:<34} {r['precision']:<14} {str(r['expected']):>4} {r['fitted']:>6.3g} "
              f"{r['max_deviation']:>10.2e} {r['rtol']:>9.1e} {1e3 * r['forward_s']:>8.2f} "
              f"{1e3 * r['degree_s']:>10.2f} {r['ratio']:>6.1f}  {'yes' if r['ok'] else 'NO'}")
    payload = dict(device=str(device), name=torch.cuda.get_device_name(device) if cuda else "cpu",
                   torch=torch.__version__, sizes=s, rows=rows, seconds=time.perf_counter() - start)
    write_json("gpu_homogeneity.json", payload, Path(args.out), device)
    wrong = [r for r in rows if not r["ok"]]
    for r in wrong:
        print(f"WRONG: {r['case']} ({r['precision']}): {r['verdict']}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
