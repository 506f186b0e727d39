"""How and where the library runs: CPU threads for small problems, the device, matmul precision.

One policy for the whole library. Small CPU problems run on one thread: on tensors this small,
thread synchronization costs more than the arithmetic (on a shared 2-core machine the waits of a
two-thread pool made tiny SVDs 100 times slower, and small training steps 10-30 times slower).
Large problems and GPU tensors run as configured, and the caller's thread count is restored.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch

from ._backend import is_tensor
from ._validation import param_error

__all__ = ["SMALL", "auto_threads", "one_thread_when_small", "precision", "progress_bar", "resolve_device",
           "threads"]

#: Below these sizes a problem runs on one CPU thread. Units differ by kind because each is the
#: size of the kernel that dominates: ``"matrix"`` the number of entries of the matrix (an SVD or
#: a masked product per step), ``"network"`` samples x parameters of a training step,
#: ``"dropout"`` entries x factor width x masks per step.
SMALL = {"matrix": 100_000, "network": 1e9, "dropout": 2_000_000}


def one_thread_when_small(fn):
    """Decorator: run ``fn`` on one CPU thread when its first array argument is a small CPU matrix."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        A = next((a for a in (*args, *kwargs.values()) if hasattr(a, "shape")), None)
        if type(A).__module__.startswith("scipy.sparse") or (is_tensor(A) and A.layout != torch.strided):
            # Sparse data (hdlcore.matrix.sparse): its products run on one thread (scipy) or on the GPU,
            # and the tensors torch works on are the (m + n) x r factors.
            n = auto_threads("matrix", sum(A.shape), A.device.type if is_tensor(A) else "cpu")
        elif is_tensor(A):
            n = auto_threads("matrix", A.numel(), A.device.type)
        else:
            n = auto_threads("matrix", getattr(A, "size", float("inf")))
        with threads(n):
            return fn(*args, **kwargs)

    return wrapper


def resolve_device(device: Any, func: str) -> torch.device | None:
    """Validate a device request; a CUDA device where there is none is a clear error."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise param_error("device", func, "a torch device such as 'cpu' or 'cuda'", device) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{func} was asked for device {str(device)!r} but torch sees no CUDA device; "
                           "use device='cpu' (or None: the model's device).")
    return dev


@contextlib.contextmanager
def precision(kind: str, device_type: str):
    """Matrix-product precision: full (IEEE), TF32 (CUDA only), or bf16 autocast."""
    cuda, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    new_api = hasattr(cuda, "fp32_precision") and hasattr(cudnn, "conv")
    if new_api:
        saved = (cuda.fp32_precision, cudnn.conv.fp32_precision)  # type: ignore[attr-defined]
        mode = "tf32" if kind == "tf32" else "ieee"
        cuda.fp32_precision, cudnn.conv.fp32_precision = mode, mode  # type: ignore[attr-defined]
    else:  # pragma: no cover - older torch
        saved = (cuda.allow_tf32, cudnn.allow_tf32)
        cuda.allow_tf32 = cudnn.allow_tf32 = kind == "tf32"
    try:
        if kind == "bf16":
            with torch.autocast(device_type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        if new_api:
            cuda.fp32_precision, cudnn.conv.fp32_precision = saved  # type: ignore[attr-defined]
        else:  # pragma: no cover
            cuda.allow_tf32, cudnn.allow_tf32 = saved


def auto_threads(kind: str, work: float, device_type: str = "cpu") -> int | None:
    """One CPU thread when a problem of ``kind`` is small (see ``SMALL``), else None (as configured)."""
    return 1 if (device_type == "cpu" and work <= SMALL[kind]) else None


@contextlib.contextmanager
def threads(n: int | None):
    """Run with ``n`` intra-op torch threads (None: as configured); the count is restored."""
    if n is None or n == torch.get_num_threads():
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class _NoBar:
    """Stands in for a tqdm bar when there is none (importing tqdm.auto in a notebook without
    ipywidgets prints a warning even for a disabled bar)."""

    disable = True

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, show: bool):
    """A tqdm progress bar (notebook-aware) when ``show``, else a silent stand-in."""
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="train", leave=False)
