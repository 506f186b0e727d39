"""numpy in, numpy out; a torch tensor in, a tensor out on the same device and dtype.

Solvers are written once, in torch, and run on the CPU or a GPU. At the public boundary
:func:`as_tensor` turns numpy input into a CPU tensor (sharing memory where it can) and
returns a function that turns results back into the caller's array type. There is no
global backend switch: the type of the data decides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["Array", "is_tensor", "as_tensor", "as_compute_tensor", "to_numpy"]

#: A numpy array or a torch tensor: what every public function of :mod:`hdlcore` takes and
#: returns (numpy in, numpy out; a tensor in, a tensor out on the same device and dtype).
Array = Union[np.ndarray, "torch.Tensor"]  # noqa: UP007 (a runtime alias, read by type checkers)


def is_tensor(x: Any) -> bool:
    """True for a torch tensor (without importing torch for numpy input)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def as_tensor(
    x: Any, *, dtype: Any = None, device: Any = None
) -> tuple[Any, Callable[[Any], Any]]:
    """Return ``x`` as a torch tensor and a function mapping tensors back to ``x``'s kind.

    numpy input gives a CPU tensor of the same dtype and a restore function returning numpy;
    tensor input is returned as it is (moved to ``dtype``/``device`` if given) and the restore
    function is the identity on tensors.

    Examples
    --------
    >>> import numpy as np
    >>> t, back = as_tensor(np.eye(2))
    >>> type(back(2 * t)).__name__
    'ndarray'
    """
    import torch

    if is_tensor(x):
        t = x
        if dtype is not None or device is not None:
            t = t.to(dtype=dtype or t.dtype, device=device or t.device)
        return t, _identity
    arr = np.asarray(x)
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if dtype is not None or device is not None:
        t = t.to(dtype=dtype or t.dtype, device=device or t.device)
    return t, to_numpy


def as_compute_tensor(x: Any) -> tuple[Any, Callable[[Any], Any]]:
    """:func:`as_tensor`, upcast to float32 when ``x`` is float16 or bfloat16.

    Half-precision kernels are missing or inaccurate for the linear algebra of this library
    (torch's CPU SVD has none: "linalg_svd_cpu not implemented for 'Half'"), so such input is
    computed in float32 and the restore function casts floating results back to the input dtype:
    float16 in, float16 out, computed in float32.
    """
    import torch

    t, back = as_tensor(x)
    if t.dtype not in (torch.float16, torch.bfloat16):
        return t, back
    return t.to(torch.float32), _cast_back(back, t.dtype)


def _cast_back(back: Callable[[Any], Any], dtype: Any) -> Callable[[Any], Any]:
    def restore(t: Any) -> Any:
        if isinstance(t, tuple | list):
            return type(t)(restore(s) for s in t)
        if is_tensor(t) and t.is_floating_point() and t.ndim > 0:
            t = t.to(dtype)
        return back(t)

    return restore


def _identity(t: Any) -> Any:
    return t


def to_numpy(t: Any) -> Any:
    """Turn a tensor (or a tuple/list of them, or a scalar tensor) into numpy / Python floats."""
    if is_tensor(t):
        t = t.detach()
        if t.ndim == 0:
            return t.item()
        return t.cpu().numpy()
    if isinstance(t, tuple | list):
        return type(t)(to_numpy(s) for s in t)
    return t
