"""Validation at the public boundary, with one shape of error message.

Every public function of :mod:`hdlcore` validates its arguments once, through the helpers
below, and reports a bad argument as

    The 'lam' parameter of solve_convex must be a float > 0. Got -1.0 instead.

Internal helpers trust their callers. The helpers accept numpy arrays and torch tensors
alike and return the argument unchanged (or converted as documented), so a caller keeps
its array type.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable
from typing import Any, Literal, overload

import numpy as np

__all__ = [
    "ConvergenceWarning",
    "HypothesisWarning",
    "param_error",
    "check_scalar",
    "check_choice",
    "check_array",
    "check_mask",
    "check_devices",
    "check_size",
    "check_rng",
    "warn_not_converged",
]


class ConvergenceWarning(UserWarning):
    """A solver stopped before its tolerance was met; its result has ``converged=False``."""


class HypothesisWarning(UserWarning):
    """A theorem's hypothesis fails (e.g. network and regularizer of different degrees)."""


def _describe(value: Any) -> str:
    if _is_tensor(value) and value.device.type != "cpu":
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype} on {value.device}"
    if _is_tensor(value) or isinstance(value, np.ndarray):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_tensor(value: Any) -> bool:
    # Avoid importing torch just to validate numpy input.
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def param_error(name: str, func: str, expected: str, value: Any, exc=ValueError) -> Exception:
    """Build the standard error: ``The 'name' parameter of func must be expected. Got v instead.``"""
    return exc(f"The '{name}' parameter of {func} must be {expected}. Got {_describe(value)} instead.")


@overload
def check_scalar(value: Any, name: str, func: str, *, kind: Literal["int"], gt: float | None = None,
                 ge: float | None = None, lt: float | None = None, le: float | None = None,
                 allow_inf: bool = False) -> int: ...


@overload
def check_scalar(value: Any, name: str, func: str, *, kind: Literal["float"] = "float",
                 gt: float | None = None, ge: float | None = None, lt: float | None = None,
                 le: float | None = None, allow_inf: bool = False) -> float: ...


def check_scalar(
    value: Any,
    name: str,
    func: str,
    *,
    kind: str = "float",
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    allow_inf: bool = False,
) -> float | int:
    """Validate a real (``kind="float"``) or integer (``kind="int"``) scalar and its bounds.

    Returns the value as a Python ``float`` or ``int``. NaN is always rejected, infinities
    unless ``allow_inf``.
    """
    bounds = [f"> {gt}" if gt is not None else None, f">= {ge}" if ge is not None else None,
              f"< {lt}" if lt is not None else None, f"<= {le}" if le is not None else None]
    expected = f"{'an int' if kind == 'int' else 'a float'}" + "".join(
        f" {b}" if i == 0 else f" and {b}" for i, b in enumerate(b for b in bounds if b)
    )
    if isinstance(value, bool) or (_is_tensor(value) and value.numel() != 1):
        raise param_error(name, func, expected, value, TypeError)
    if _is_tensor(value) or isinstance(value, np.ndarray | np.generic):
        if np.ndim(value) != 0 and getattr(value, "numel", lambda: value.size)() != 1:
            raise param_error(name, func, expected, value, TypeError)
        value = value.item()
    if kind == "int":
        if not isinstance(value, numbers.Integral):
            raise param_error(name, func, expected, value, TypeError)
        value = int(value)
    else:
        if not isinstance(value, numbers.Real):
            raise param_error(name, func, expected, value, TypeError)
        value = float(value)
        if math.isnan(value):
            raise param_error(name, func, expected, value)
    if ((gt is not None and not value > gt) or (ge is not None and not value >= ge)
            or (lt is not None and not value < lt) or (le is not None and not value <= le)):
        raise param_error(name, func, expected, value)
    if kind == "float" and math.isinf(value) and not allow_inf:
        raise param_error(name, func, expected.replace("a float", "a finite float", 1), value)
    return value


def check_choice(value: Any, name: str, func: str, choices: Iterable[Any]) -> Any:
    """Validate that ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise param_error(name, func, f"one of {listed}", value)
    return value


def check_array(
    A: Any,
    name: str,
    func: str,
    *,
    ndim: int | tuple[int, ...] | None = 2,
    shape: tuple[int | None, ...] | None = None,
    finite: bool = True,
    min_size: int = 1,
    real: bool = True,
) -> Any:
    """Validate a numpy array or torch tensor: dimension, shape, size and finiteness.

    Lists are converted to float numpy arrays; numpy arrays and tensors are returned as
    they are (integer and boolean arrays are converted to float64 numpy / the default torch
    float). Complex arrays are refused unless ``real=False`` (their imaginary part would be
    dropped silently by real arithmetic). ``shape`` entries equal to ``None`` are free.
    Finiteness is not checked on the ``meta`` device, which holds no values.
    """
    if _is_tensor(A):
        import torch

        if A.is_complex() and real:
            raise param_error(name, func, "a real array (not complex)", A, TypeError)
        if not (A.is_floating_point() or A.is_complex()):
            A = A.to(torch.get_default_dtype())
    elif isinstance(A, np.ndarray):
        if A.dtype.kind in "biu":
            A = A.astype(np.float64)
        elif A.dtype.kind == "c" and real:
            raise param_error(name, func, "a real array (not complex)", A, TypeError)
        elif A.dtype.kind not in "fc":
            raise param_error(name, func, "a real array", A, TypeError)
    elif isinstance(A, list | tuple) or isinstance(A, numbers.Real):
        try:
            A = np.asarray(A, dtype=np.float64)
        except (TypeError, ValueError):
            raise param_error(name, func, "a real array", A, TypeError) from None
    else:
        raise param_error(name, func, "a numpy array or a torch tensor", A, TypeError)
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if dims is not None and A.ndim not in dims:
        want = " or ".join(f"{d}-D" for d in dims)
        raise param_error(name, func, f"a {want} array", A)
    if shape is not None:
        if len(shape) != A.ndim or any(s is not None and s != a for s, a in zip(shape, A.shape, strict=True)):
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise param_error(name, func, f"an array of shape {want}", A)
    size = A.numel() if _is_tensor(A) else A.size
    if size < min_size:
        raise param_error(name, func, f"an array with at least {min_size} entries", A)
    if finite and not (_is_tensor(A) and A.device.type == "meta"):
        ok = bool(A.isfinite().all()) if _is_tensor(A) else bool(np.isfinite(A).all())
        if not ok:
            raise param_error(name, func, "finite (no NaN or inf)", A)
    return A


def check_mask(mask: Any, shape: tuple[int, ...], name: str, func: str) -> Any:
    """Validate a boolean observation mask (True where observed) of a given shape.

    Accepts boolean arrays, or 0/1 arrays which are converted to boolean. At least one
    entry must be observed.
    """
    if _is_tensor(mask):
        import torch

        if mask.dtype != torch.bool:
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise param_error(name, func, "a boolean mask (or 0/1 entries)", mask)
            mask = mask != 0
    else:
        mask = np.asarray(mask)
        if mask.dtype != bool:
            if mask.dtype.kind not in "biuf" or not np.isin(mask, (0, 1)).all():
                raise param_error(name, func, "a boolean mask (or 0/1 entries)", mask)
            mask = mask != 0
    if tuple(mask.shape) != tuple(shape):
        raise param_error(name, func, f"a mask of shape {tuple(shape)}", mask)
    if not bool(mask.any()):
        raise param_error(name, func, "a mask with at least one observed (True) entry", mask)
    return mask


def _device(value: Any) -> str:
    return str(value.device) if _is_tensor(value) else "cpu"


def check_devices(func: str, arrays: dict[str, Any]) -> None:
    """Refuse arrays on different devices, naming both parameters (numpy arrays are on the CPU).

    ``arrays`` maps parameter names to arrays, tensors, sequences of them, or None (skipped).
    Called before any arithmetic, so that a mismatch is reported instead of torch's error.
    """
    first: tuple[str, str] | None = None
    for name, value in arrays.items():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if item is None or not (_is_tensor(item) or isinstance(item, np.ndarray)):
                continue
            device = _device(item)
            if first is None:
                first = (name, device)
            elif device != first[1]:
                raise param_error(name, func, f"on the same device as '{first[0]}' ({first[1]})", item)


def _memory_bytes() -> float:
    """Physical memory of this machine (bytes); infinite where the platform does not say."""
    import os

    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return math.inf


def check_size(value: Any, name: str, func: str, *, ge: int = 1, entries_per_unit: float = 1,
               itemsize: int = 8) -> int:
    """Validate a size (an int ``>= ge``) whose arrays, ``value * entries_per_unit`` entries of
    ``itemsize`` bytes, fit in this machine's memory; refused before anything is allocated."""
    value = check_scalar(value, name, func, kind="int", ge=ge)
    need = float(value) * entries_per_unit * itemsize
    have = _memory_bytes()
    if need > have:
        raise param_error(name, func, f"an int >= {ge} whose arrays fit in memory ({need:.3g} bytes "
                          f"needed, {have:.3g} bytes on this machine)", value)
    return value


def check_rng(rng: Any, name: str, func: str) -> np.random.Generator:
    """Accept a ``np.random.Generator``, an int seed or None (a fresh generator)."""
    if rng is None or isinstance(rng, numbers.Integral):
        return np.random.default_rng(None if rng is None else int(rng))
    if isinstance(rng, np.random.Generator):
        return rng
    raise param_error(name, func, "a numpy Generator, an int seed or None", rng, TypeError)


def warn_not_converged(func: str, detail: str, stacklevel: int = 3) -> None:
    """Emit the standard :class:`ConvergenceWarning`."""
    warnings.warn(f"{func} did not converge: {detail}", ConvergenceWarning, stacklevel=stacklevel)
