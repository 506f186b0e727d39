"""What every benchmark shares: synchronized timing, interleaved medians, the machine, JSON results.

The book's benchmarks run on a shared 2-core machine (and on a GPU): a second process on one core
can make a run 10-20 times slower, so compared methods are timed **interleaved** (A B C A B C ...)
and **medians** are quoted, and every result records the machine, its load and its thread counts.
CUDA work is asynchronous, so every timing synchronizes the device before and after.

Use from a script in ``benchmarks/`` (run as ``python benchmarks/bench_x.py``, whose folder is then
on ``sys.path``)::

    from _common import interleave, pin_threads_from_argv, write_json

    med = interleave({"closed form": f, "enumeration": g}, repeats=5)   # name -> Timing
    print(med["closed form"].median)
    write_json("x.json", {"rows": rows})   # -> benchmarks/results/x.json, with a "meta" entry

A script that takes ``--threads N`` calls :func:`pin_threads_from_argv` *before* importing numpy or
torch, so that every thread pool (torch, OpenBLAS, MKL) starts with N threads. This module imports
torch only inside its functions, for that reason.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

__all__ = ["ROOT", "RESULTS", "Timing", "default_device", "interleave", "load", "machine_info", "median_time",
           "pin_threads_from_argv", "print_table", "sync", "timed", "write_json"]

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads_from_argv(argv: list[str] | None = None) -> int | None:
    """If ``--threads N`` is on the command line, set every thread pool's variable to ``N``.

    Call before numpy and torch are imported (their pools read the variables once, at start).
    Returns ``N`` or None.
    """
    argv = sys.argv if argv is None else argv
    if "--threads" not in argv:
        return None
    n = argv[argv.index("--threads") + 1]
    for var in _THREAD_VARIABLES:
        os.environ[var] = n
    return int(n)


def _device(device: Any) -> Any:
    if device is None or not isinstance(device, str):
        return device
    import torch

    return torch.device(device)


def default_device(cpu_threads: int | None = None) -> Any:
    """CUDA when torch sees a GPU, else the CPU (then with ``cpu_threads`` torch threads, if given)."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    if cpu_threads is not None:
        torch.set_num_threads(cpu_threads)
    return torch.device("cpu")


def sync(device: Any = None) -> None:
    """Wait for ``device``'s queued work (a CUDA device; nothing to wait for on a CPU)."""
    device = _device(device)
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: Any = None, repeats: int = 1,
          per: int = 1) -> tuple[Any, list[float]]:
    """Run ``fn`` ``repeats`` times, ``per`` calls each, synchronized; (last result, seconds per call)."""
    out, times = None, []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(per):
            out = fn()
        sync(device)
        times.append((time.perf_counter() - t0) / per)
    return out, times


def median_time(fn: Callable[[], Any], device: Any = None, repeats: int = 5, per: int = 1) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` synchronized timings."""
    return statistics.median(timed(fn, device, repeats, per)[1])


@dataclass
class Timing:
    """The timings of one variant of an interleaved comparison, and the last value it returned."""

    times: list[float] = field(default_factory=list)
    result: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def interleave(variants: Mapping[str, Callable[[], Any]], repeats: int, *, device: Any = None,
               inner: Mapping[str, int] | None = None, per: int | Mapping[str, int] = 1,
               warmup: int = 0, pause: float = 0.0) -> dict[str, Timing]:
    """Time the variants side by side, interleaved: ``repeats`` rounds of A B C (A B C ...).

    ``inner[name]``: that variant runs this many times per round (cheap ones get more samples at
    the same moments); ``per``: calls between two synchronizations, seconds reported per call (a
    number for all, or per name); ``warmup``: untimed calls of each variant first. Returns
    ``{name: Timing}`` (``.times``, ``.median``, ``.result``).
    """
    inner = inner or {}
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    out = {name: Timing() for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            calls = per if isinstance(per, int) else per.get(name, 1)
            for _ in range(inner.get(name, 1)):
                if pause:
                    time.sleep(pause)
                result, times = timed(fn, device, 1, calls)
                out[name].times.extend(times)
                out[name].result = result
    return out


def load() -> list[float]:
    """The load average over 1, 5 and 15 minutes (rounded); [] where the system has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - not a POSIX system
        return []


def machine_info(device: Any = None) -> dict[str, Any]:
    """The machine, its load, thread counts and library versions (and the GPU, for a CUDA device)."""
    import numpy as np
    import torch

    import hdlcore as hd

    device = _device(device)
    info = {
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "thread_variables": {v: os.environ.get(v) for v in _THREAD_VARIABLES},
        "load": load(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "hdlcore": hd.__version__,
        "utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if device is not None and device.type == "cuda":
        info["device"] = str(device)
        info["device_name"] = torch.cuda.get_device_name(device)
    return info


def write_json(name: str | Path, payload: dict[str, Any], out: str | Path | None = None,
               device: Any = None, quiet: bool = False) -> Path:
    """Write ``payload`` as JSON to ``out/name`` (default ``benchmarks/results/``) and return the path.

    A ``"meta"`` entry (:func:`machine_info` at the end of the run) is added unless the payload has
    one; the payload's own keys are written as they are, so readers of older results keep working.
    ``name`` may also be a full path (then ``out`` is ignored).
    """
    path = Path(name)
    if not path.is_absolute() and path.parent == Path("."):
        path = Path(out if out is not None else RESULTS) / path
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dict(payload)
    data.setdefault("meta", machine_info(device))
    path.write_text(json.dumps(data, indent=2))
    if not quiet:
        full = path.resolve()
        shown = full.relative_to(ROOT) if full.is_relative_to(ROOT) else path
        print(f"wrote {shown}")
    return path


def print_table(rows: list[Mapping[str, Any]], columns: Mapping[str, str]) -> None:
    """Print ``rows`` as an aligned table: ``columns`` maps a row key to a format (``"{:.3f}"``).

    The keys are the headers; the first column is left-aligned, the others right-aligned.
    """
    table = [list(columns)] + [[fmt.format(r[k]) for k, fmt in columns.items()] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        pairs = enumerate(zip(line, widths, strict=True))
        print("  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in pairs))
