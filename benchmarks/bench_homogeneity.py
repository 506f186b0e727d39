"""What one hd.degree call costs, in forward passes of the model (CPU).

    python benchmarks/bench_homogeneity.py [--repeats 7]

``hd.degree`` evaluates the model at the point and at six scales (seven forward passes), then
checks Euler's identity with one forward pass and a double backward. This script times, side by
side and interleaved (forward, degree, degree without Euler, forward, ...), one forward pass, one
``hd.degree`` call and one ``hd.degree(..., euler=False)`` call, and reports medians and the
ratios to the forward pass. Prints a table and writes ``benchmarks/results/homogeneity.json``.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch
from _common import RESULTS, interleave, write_json
from torch import nn

import hdlcore as hd


def models():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 256, bias=False), nn.ReLU(), nn.Linear(256, 256, bias=False), nn.ReLU(),
                        nn.Linear(256, 256, bias=False), nn.ReLU(), nn.Linear(256, 10, bias=False))
    cnn = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(32 * 8 * 8, 10, bias=False))
    yield "MLP 64-256-256-256-10, batch 256", mlp, torch.randn(256, 64)
    yield "CNN 2 conv + linear, 32x32, batch 32", cnn, torch.randn(32, 3, 32, 32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    rows = []
    for name, model, A in models():
        hd.degree(model, inputs=A)  # warm-up

        def forward(m=model, x=A):
            with torch.no_grad():
                return m(x)

        med = interleave({  # interleaved A B C A B C
            "forward": forward,
            "degree": lambda m=model, x=A: hd.degree(m, inputs=x),
            "no Euler": lambda m=model, x=A: hd.degree(m, inputs=x, euler=False),
        }, args.repeats)
        f, d, e = (med[k].median for k in ("forward", "degree", "no Euler"))
        rows.append(dict(model=name, forward_ms=1e3 * f, degree_ms=1e3 * d, degree_no_euler_ms=1e3 * e,
                         degree_over_forward=d / f, no_euler_over_forward=e / f))
    print(f"{'model':<38} {'forward ms':>10} {'degree ms':>10} {'no Euler ms':>12} "
          f"{'deg/fwd':>7} {'noE/fwd':>7}")
    for r in rows:
        print(f"{r['model']:<38} {r['forward_ms']:>10.2f} {r['degree_ms']:>10.2f} "
              f"{r['degree_no_euler_ms']:>12.2f} {r['degree_over_forward']:>7.1f} "
              f"{r['no_euler_over_forward']:>7.1f}")
    payload = dict(machine=platform.platform(), threads=torch.get_num_threads(), torch=torch.__version__,
                   repeats=args.repeats, rows=rows)
    write_json("homogeneity.json", payload, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
