"""The dropout functions' public boundary: their arrays, sizes and random sources, checked once.

Every public function of :mod:`hdlcore.dropout` turns its arrays into torch tensors here, with the
library's one error shape (:func:`hdlcore._validation.param_error`) naming the parameter and the
function the user called:

- real arrays only: a complex array is refused (its imaginary part would be dropped);
- numpy arrays or torch tensors, not a mix, and tensors on one device;
- float16 and bfloat16 are computed in float32 (the CPU has no half-precision SVD, and half
  precision would lose the expectation's digits) and the results come back in the input's dtype;
- a size whose arrays could never fit in this machine's memory (``d=10**12``) is refused before
  anything is allocated (:func:`hdlcore._validation.check_size`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._backend import as_tensor, is_tensor, to_numpy
from .._validation import check_array, check_devices, check_rng, check_scalar, check_size, param_error

__all__ = ["check_keep", "as_tensors", "check_shapes", "check_fits", "torch_generator"]


def check_keep(keep: Any, func: str) -> float:
    """The retain probability: a float in (0, 1]."""
    return check_scalar(keep, "keep", func, gt=0, le=1)


def as_tensors(func: str, **arrays: Any) -> tuple[list[Any], Callable[[Any], Any]]:
    """Validate 2-D real arrays and convert them to torch tensors of one dtype on one device.

    Returns the tensors (in the order given) and ``back``, which turns a result tensor into the
    caller's array type and dtype (numpy in, numpy out; a 0-dim result becomes a Python float for
    numpy callers). float16/bfloat16 input is computed in float32 and returned in its own dtype.
    """
    import torch

    checked = {name: check_array(a, name, func, ndim=2) for name, a in arrays.items()}  # real, finite
    names = list(checked)
    first = names[0]
    kinds = {name: is_tensor(a) for name, a in checked.items()}
    odd = next((n for n in names if kinds[n] != kinds[first]), None)
    if odd is not None:
        want = "a torch tensor" if kinds[first] else "a numpy array"
        raise param_error(odd, func, f"{want} (like '{first}')", checked[odd], TypeError)
    if kinds[first]:
        check_devices(func, checked)
        device = checked[first].device
        dtype = checked[first].dtype
        for a in checked.values():
            dtype = torch.promote_types(dtype, a.dtype)
    else:
        device = None
        dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16}.get(
            np.result_type(*[a.dtype for a in checked.values()]), torch.float64)
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    tensors = [as_tensor(a, dtype=compute, device=device)[0] for a in checked.values()]
    if kinds[first]:
        back = _identity if compute == dtype else _cast(dtype)
    else:
        back = to_numpy if compute == dtype else _cast(dtype, numpy=True)
    return tensors, back


def _identity(t: Any) -> Any:
    return t


def _cast(dtype: Any, numpy: bool = False) -> Callable[[Any], Any]:
    def back(t: Any) -> Any:
        if numpy and t.ndim == 0:
            return float(t)  # numpy callers get a Python float for a scalar, whatever the dtype
        t = t.to(dtype)
        return to_numpy(t) if numpy else t

    return back


def check_shapes(func: str, U: Any, V: Any, Y: Any = None, A: Any = None,
                 originals: dict[str, Any] | None = None) -> None:
    """Check that ``U`` (m, r), ``V`` (n, r), ``Y`` and ``A`` (tensors) fit together.

    Matrix factorization: ``Y`` is (m, n); a factor that disagrees with ``Y`` alone is named,
    and ``Y`` when it disagrees with both. Network (``A`` given): ``A`` is (N, n), ``Y`` (N, m).
    ``originals`` are the user's arrays (for the message).
    """
    orig = originals or {}
    if U.shape[1] != V.shape[1]:
        raise param_error("V", func, f"an array with {U.shape[1]} columns, as many as 'U'", orig.get("V", V))
    if A is not None and A.shape[1] != V.shape[0]:
        raise param_error("A", func, f"an array with {V.shape[0]} columns, as many as 'V' has rows",
                          orig.get("A", A))
    if Y is None:
        return
    if A is None:
        m, n = Y.shape
        bad_U, bad_V = U.shape[0] != m, V.shape[0] != n
        if bad_U and bad_V:
            raise param_error("Y", func, f"an array of shape ({U.shape[0]}, {V.shape[0]}), the shape of "
                                         "U V^T", orig.get("Y", Y))
        if bad_U:
            raise param_error("U", func, f"an array with {m} rows, as many as 'Y'", orig.get("U", U))
        if bad_V:
            raise param_error("V", func, f"an array with {n} rows, as many columns as 'Y' has",
                              orig.get("V", V))
    elif tuple(Y.shape) != (A.shape[0], U.shape[0]):
        raise param_error("Y", func, f"an array of shape ({A.shape[0]}, {U.shape[0]}), the shape of "
                                     "A V U^T", orig.get("Y", Y))


def check_fits(func: str, name: str, value: int, nbytes: float) -> None:
    """Refuse the size ``value`` of parameter ``name`` when its arrays (``nbytes``) exceed this
    machine's memory: :func:`hdlcore._validation.check_size`'s error, before any allocation."""
    check_size(value, name, func, entries_per_unit=nbytes / max(value, 1), itemsize=1)


def torch_generator(rng: Any, func: str, device: Any) -> Any:
    """A torch.Generator on ``device`` from a numpy Generator, an int seed, None or a torch.Generator."""
    import torch

    if isinstance(rng, torch.Generator):
        if torch.device(rng.device).type != torch.device(device).type:
            raise param_error("rng", func, f"a torch.Generator on the data's device ({device})", rng)
        return rng
    seed = int(check_rng(rng, "rng", func).integers(2**62))
    return torch.Generator(device=device).manual_seed(seed)
