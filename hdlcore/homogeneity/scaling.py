"""Evaluate a function or a module at scaled tensors, without touching the caller's state.

Internal to :mod:`hdlcore.homogeneity`. :func:`build_problem` validates the public arguments once
and returns a :class:`Problem` whose ``call(a)`` evaluates ``f`` with the chosen tensors scaled by
``a ** power``; :func:`evaluate_scales` runs it over the scales, and :func:`directional_derivative`
gives ``d/da f(a x)`` at ``a = 1`` by autograd (Euler's identity). Modules are evaluated through
:func:`torch.func.functional_call` with copies of their buffers, so parameters and running
statistics are never modified, even when the call raises; every evaluation sees the same random
numbers and the caller's generator state is restored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._backend import is_tensor
from .._validation import _describe, check_choice, check_scalar

__all__ = ["Problem", "build_problem", "evaluate_scales", "directional_derivative"]


@dataclass
class Problem:
    """``call(a)``: ``f`` with the chosen tensors scaled by ``a ** power`` (``a`` a float or tensor)."""

    call: Callable[[Any], Any]
    func: str
    f_name: str
    point_name: str
    describe: str
    dtype: Any  # dtype of the scaled tensors (torch), or None for numpy
    devices: list[int]
    scalar: bool = False  # the output must be a scalar (a regularizer)
    notes: list[str] = field(default_factory=list)
    eps: float = 2.220446049250313e-16


def _err(name: str, func: str, expected: str, got: str, exc: type = ValueError) -> Exception:
    return exc(f"The '{name}' parameter of {func} must be {expected}. Got {got} instead.")


def _is_float_tensor(x: Any) -> bool:
    return is_tensor(x) and x.is_floating_point()


def _powers(powers: Any, names: list[str], func: str) -> list[float]:
    if powers is None:
        return [1.0] * len(names)
    if isinstance(powers, Mapping):
        unknown = [k for k in powers if k not in names]
        if unknown:
            raise _err("powers", func, f"keyed by names of the scaled tensors ({', '.join(names)})",
                       repr(unknown))
        return [check_scalar(powers.get(n, 1.0), "powers", func) for n in names]
    seq = list(powers) if not isinstance(powers, str) else None
    if seq is None or len(seq) != len(names):
        raise _err("powers", func, f"a sequence of {len(names)} floats (one per scaled tensor) or a "
                   "mapping name -> float", _describe(powers), TypeError)
    return [check_scalar(k, "powers", func) for k in seq]


def _as_inputs(inputs: Any, dtype: Any, device: Any, func: str) -> tuple[Any, ...]:
    import torch

    items = list(inputs) if isinstance(inputs, tuple | list) else [inputs]
    out = []
    for x in items:
        if isinstance(x, np.ndarray):
            x = torch.as_tensor(x, dtype=dtype if x.dtype.kind == "f" else None, device=device)
        if not is_tensor(x):
            raise _err("inputs", func, "a tensor or a tuple of tensors (the module's input A)",
                       _describe(inputs), TypeError)
        out.append(x)
    return tuple(out)


def _select(module: Any, params: Any, func: str) -> list[str]:
    """Names of the module's parameters selected by ``params``: parameters, submodules or names
    (a list, or one of them), or a filter ``name -> bool``."""
    import torch

    named = dict(module.named_parameters())
    if params is None:
        return list(named)
    if callable(params) and not isinstance(params, torch.nn.Module):  # a filter on names
        selected = [n for n in named if params(n)]
        if not selected:
            raise _err("params", func, "a filter selecting at least one parameter name",
                       f"{_describe(params)} (selects none of {', '.join(named)})")
        return selected
    items = [params] if isinstance(params, str | torch.Tensor | torch.nn.Module) else list(params)
    by_id = {id(p): n for n, p in named.items()}
    modules = {id(m): prefix for prefix, m in module.named_modules()}
    names: list[str] = []
    for item in items:
        if isinstance(item, str) and item in named:
            found = [item]
        elif is_tensor(item) and id(item) in by_id:
            found = [by_id[id(item)]]
        elif isinstance(item, torch.nn.Module) and id(item) in modules:
            prefix = modules[id(item)]
            found = [n for n in named if prefix == "" or n.startswith(prefix + ".")]
        else:
            kind = type(module).__name__
            raise _err("params", func, f"parameters, submodules or parameter names of the {kind}",
                       _describe(item) + " (not one of them)")
        names += [n for n in found if n not in names]
    if not names:
        raise _err("params", func, "a selection holding at least one parameter", _describe(params))
    return names


class _Bound:
    """A wrapper module calling ``fn(inner, *args)``: functional_call then swaps ``inner``'s tensors."""

    def __new__(cls, module: Any, fn: Callable[..., Any]) -> Any:
        import torch

        class Bound(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = module

            def forward(self, *args: Any) -> Any:
                return fn(self.inner, *args)

        return Bound()


def _module_problem(module, params, inputs, wrt, argnums, powers, func, f_name, regularizer):
    import torch
    from torch.func import functional_call

    wrt = check_choice(wrt, "wrt", func, ("params", "inputs", "both"))
    if argnums is not None:
        raise _err("argnums", func, "None for a module (select parameters with params=...)",
                   _describe(argnums), TypeError)
    named = dict(module.named_parameters())
    if wrt == "inputs":
        if params is not None:
            raise _err("params", func, "None when wrt='inputs' (only the input is scaled)", _describe(params))
        names: list[str] = []
    else:
        if not named:
            raise _err(f_name, func, "a module with parameters to scale (or pass wrt='inputs' to scale "
                       "its input A)", _describe(module))
        names = _select(module, params, func)
    scaled_inputs = wrt != "params" and regularizer is None
    if regularizer is not None and wrt == "inputs":
        raise _err("wrt", func, "'params' or 'both' for a regularizer", repr(wrt))
    first = next(iter(named.values()), None)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.get_default_dtype()
    device = first.device if first is not None else torch.device("cpu")
    if inputs is None and regularizer is None:
        raise _err("inputs", func, "a tensor or a tuple of tensors to evaluate the module at",
                   "None", TypeError)
    args = () if regularizer is not None else _as_inputs(inputs, dtype, device, func)
    if scaled_inputs and not all(x.is_floating_point() for x in args):
        raise _err("inputs", func, "floating-point tensors (they are scaled)", _describe(inputs), TypeError)
    k = _powers(powers, names, func)
    base = {f"inner.{n}": named[n].detach() for n in names}
    powers_of = dict(zip(base, k, strict=True))
    buffers = {f"inner.{n}": b for n, b in module.named_buffers()}
    fn = (lambda m, *x: m(*x)) if regularizer is None else (lambda m: regularizer(m))
    bound = _Bound(module, fn)

    def call(a: Any) -> Any:
        tensors = {n: (a ** powers_of[n]) * t for n, t in base.items()}
        tensors.update({n: b.clone() for n, b in buffers.items()})  # train-mode BN updates copies
        x = tuple(a * t.detach() for t in args) if scaled_inputs else args
        return functional_call(bound, tensors, x)

    kind = type(module).__name__
    what = ("the input A" if wrt == "inputs" else
            f"all {len(names)} parameter tensors" if len(names) == len(named) else
            f"parameters {', '.join(names)}")
    what += f" of {kind}" + (" and its input A" if wrt == "both" else "")
    if powers is not None:
        what += " (weighted: " + ", ".join(f"{n} by a^{p:g}" for n, p in zip(names, k, strict=True)) + ")"
    devices = sorted({t.device.index or 0 for t in [*named.values(), *args] if t.device.type == "cuda"})
    notes = []
    if module.training:
        kinds = {type(m) for m in module.modules()}
        if any(issubclass(c, torch.nn.modules.batchnorm._BatchNorm) for c in kinds):
            notes.append("batch norm in training mode: batch statistics are used (degree 0 in the "
                         "weights before it); its running statistics are left untouched")
        if any(issubclass(c, torch.nn.modules.dropout._DropoutNd) for c in kinds):
            notes.append("dropout in training mode: the same masks are drawn at every scale")
    dtypes = [base[n].dtype for n in base] + [x.dtype for x in args if scaled_inputs]
    return Problem(call, func, f_name, "inputs" if wrt == "inputs" else "params", what,
                   dtypes[0] if dtypes else dtype, devices, regularizer is not None, notes)


def _function_problem(f, params, inputs, wrt, argnums, powers, func, f_name, regularizer):
    if inputs is not None:
        raise _err("inputs", func, "None for a function (pass its arguments as params)",
                   _describe(inputs), TypeError)
    if wrt != "params":
        raise _err("wrt", func, "'params' for a function (use argnums to pick its arguments)", repr(wrt))
    if params is None:
        raise _err("params", func, "a tuple of tensors, the arguments of f", "None", TypeError)
    items = [params] if is_tensor(params) or isinstance(params, np.ndarray) else params
    if not isinstance(items, list | tuple) or not items:
        raise _err("params", func, "a non-empty tuple or list of tensors, the arguments of f",
                   _describe(params), TypeError)
    items = list(items)
    if argnums is None:
        idx = list(range(len(items)))
    else:
        raw = [argnums] if np.ndim(argnums) == 0 else list(argnums)
        idx = [check_scalar(i, "argnums", func, kind="int", ge=-len(items), lt=len(items)) for i in raw]
        idx = [i % len(items) for i in idx]
        if not idx or len(set(idx)) != len(idx):
            raise _err("argnums", func, "distinct positions in params", repr(argnums))
    numpy_mode = False
    for i in idx:
        x = items[i]
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            numpy_mode = True
        elif not _is_float_tensor(x):
            raise _err("params", func, "floating-point tensors (or numpy float arrays) to scale",
                       f"{_describe(x)} at position {i}", TypeError)
    _check_points(items, idx, func)
    k = _powers(powers, [f"params[{i}]" for i in idx], func)
    powers_of = dict(zip(idx, k, strict=True))
    base = [x.detach() if is_tensor(x) else x for x in items]
    target = f if regularizer is None else regularizer

    def call(a: Any) -> Any:
        args = list(items)
        for i in idx:
            args[i] = (a ** powers_of[i]) * base[i]
        return target(*args)

    name = getattr(target, "__name__", type(target).__name__)
    what = (f"all {len(items)} arguments" if len(idx) == len(items) else
            "arguments " + ", ".join(map(str, idx))) + f" of {name}"
    if powers is not None:
        what += " (weighted: " + ", ".join(f"params[{i}] by a^{powers_of[i]:g}" for i in idx) + ")"
    devices = sorted({x.device.index or 0 for x in items if is_tensor(x) and x.device.type == "cuda"})
    notes = ["params are numpy arrays: Euler's identity needs torch tensors"] if numpy_mode else []
    dtype = None if numpy_mode else base[idx[0]].dtype
    return Problem(call, func, f_name, "params", what, dtype, devices, regularizer is not None, notes)


def _check_points(items: list[Any], idx: list[int], func: str) -> None:
    """The scaled arguments of a function: non-empty, finite, and (tensors) on one device."""
    import torch

    devices = {str(x.device) for x in items if is_tensor(x)}
    if len(devices) > 1:
        where = ", ".join(f"params[{i}] on {x.device}" for i, x in enumerate(items) if is_tensor(x))
        raise _err("params", func, "tensors on one device", where)
    for i in idx:
        x = items[i]
        if (x.numel() if is_tensor(x) else x.size) == 0:
            raise _err("params", func, "non-empty arrays (an empty point has no degree)",
                       f"{_describe(x)} at position {i}")
        if is_tensor(x) and x.device.type == "meta":
            continue
        finite = bool(torch.isfinite(x).all()) if is_tensor(x) else bool(np.isfinite(x).all())
        if not finite:
            raise _err("params", func, "finite (no NaN or inf)", f"{_describe(x)} at position {i}")


def _guard(problem: Problem, blame: str, got: str) -> None:
    """Report an error raised by the user's callable at the given point itself (torch's shape or
    dtype errors, say) in the library's shape, naming the argument that holds the point. Errors at
    other scales are the callable's own and pass through."""
    raw = problem.call

    def call(a: Any) -> Any:
        if not (isinstance(a, float) and a == 1.0):
            return raw(a)
        try:
            return raw(a)
        except (RuntimeError, TypeError, ValueError, IndexError, NotImplementedError) as exc:
            if str(exc).startswith("The '"):
                raise
            first = (str(exc).splitlines() or [""])[0][:200]
            raise _err(blame, problem.func, f"arguments that {problem.f_name} accepts (calling it "
                       f"raised {type(exc).__name__}: {first})", got, type(exc) if isinstance(
                           exc, TypeError) else ValueError) from exc

    problem.call = call


def _describe_all(x: Any) -> str:
    if isinstance(x, list | tuple):
        text = ", ".join(_describe(i) for i in x)
        return text if len(text) <= 300 else text[:297] + "..."
    return _describe(x)


def build_problem(f, params=None, *, inputs=None, wrt="params", argnums=None, powers=None,
                  func="degree", f_name="f", regularizer=None) -> Problem:
    """Validate the public arguments (once) and return the :class:`Problem` they define."""
    import torch

    if isinstance(f, torch.nn.Module):
        problem = _module_problem(f, params, inputs, wrt, argnums, powers, func, f_name, regularizer)
        blame, got = ("inputs", _describe_all(inputs)) if inputs is not None else ("params", _describe(f))
    elif not callable(f):
        raise _err(f_name, func, "a callable of tensors or a torch.nn.Module", _describe(f), TypeError)
    else:
        problem = _function_problem(f, params, inputs, wrt, argnums, powers, func, f_name, regularizer)
        blame, got = "params", _describe_all(params)
    _guard(problem, blame, got)
    return problem


def _tf32_possible(devices: list[int]) -> bool:
    """Whether float32 convolutions or matmuls on CUDA may run in TF32 (read-only: flags untouched)."""
    import torch

    if not devices:
        return False
    try:
        conv = torch.backends.cudnn.conv.fp32_precision  # type: ignore[attr-defined]  # torch >= 2.9
        matmul = torch.backends.cuda.matmul.fp32_precision
        legacy_matmul = matmul == "none" and torch.get_float32_matmul_precision() != "highest"
        return "tf32" in (conv, matmul) or legacy_matmul
    except AttributeError:  # older torch: the legacy flags
        return bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)
    except RuntimeError:  # legacy and new flags mixed: assume TF32 may be used
        return True


@contextlib.contextmanager
def _same_randomness(devices: list[int]) -> Iterator[Callable[[], None]]:
    """Yield ``reset()``, which rewinds torch's generators; their state is restored on exit."""
    import torch

    with torch.random.fork_rng(devices=devices):
        cpu = torch.get_rng_state()
        cuda = [torch.cuda.get_rng_state(d) for d in devices]

        def reset() -> None:
            torch.set_rng_state(cpu)
            for d, s in zip(devices, cuda, strict=True):
                torch.cuda.set_rng_state(s, d)

        yield reset


def _output(problem: Problem, out: Any, a: float) -> Any:
    import torch

    name = "regularizer" if problem.scalar else problem.f_name
    if not is_tensor(out):
        try:
            out = torch.as_tensor(np.asarray(out, dtype=np.float64))
        except (TypeError, ValueError):
            raise _err(name, problem.func, "a callable returning a tensor", f"output {_describe(out)}",
                       TypeError) from None
    if not out.is_floating_point():
        raise _err(name, problem.func, "a callable returning a real floating-point tensor",
                   f"output {_describe(out)}", TypeError)
    if problem.scalar and out.numel() != 1:
        raise _err(name, problem.func, "a callable returning a scalar", f"output {_describe(out)}")
    if out.numel() == 0:
        raise _err(name, problem.func, "a callable returning a non-empty tensor", f"output {_describe(out)}")
    if not bool(torch.isfinite(out).all()):
        raise _err(name, problem.func, "a callable returning finite values at the point and at the "
                   "scales tried", f"NaN or inf at a = {a:g}")
    return out


def evaluate_scales(problem: Problem, scales: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``f(x)`` and ``f(a x)`` for each scale, as float64 arrays of shapes (n,) and (len(scales), n)."""
    import torch

    rows = []
    with _same_randomness(problem.devices) as reset, torch.no_grad():
        for a in (1.0, *scales):
            reset()
            out = _output(problem, problem.call(a), a)
            rows.append(out.detach().reshape(-1).to("cpu", torch.float64).numpy())
            if len(rows) == 1:
                problem.eps = float(torch.finfo(out.dtype).eps)
                if out.dtype == torch.float32 and _tf32_possible(problem.devices):
                    problem.eps = 2.0**-10  # TF32 keeps 10 mantissa bits
                    problem.notes.append("float32 on CUDA with TF32 allowed: tolerance set for TF32's "
                                         "10-bit mantissa (disable TF32 for a sharper test)")
            elif rows[-1].shape != rows[0].shape:
                raise _err(problem.f_name, problem.func, "a callable whose output shape does not "
                           "depend on the scale", f"{rows[0].shape} at a = 1, {rows[-1].shape} at a = {a:g}")
    F = np.stack(rows)
    return F[0], F[1:]


def directional_derivative(problem: Problem) -> tuple[np.ndarray | None, str]:
    """``D = d/da f(a x)|_{a=1} = <grad f(x), x>`` by autograd, or ``(None, reason)``."""
    import torch

    if problem.dtype is None:
        return None, "the scaled tensors are numpy arrays (autograd needs torch tensors)"
    with _same_randomness(problem.devices) as reset, torch.enable_grad():
        reset()
        a = torch.ones((), dtype=problem.dtype, requires_grad=True)
        out = problem.call(a)
        if not is_tensor(out) or not out.requires_grad:
            return None, "f's output is not differentiable by autograd (numpy, .item() or no_grad inside f)"
        try:
            if out.numel() == 1:
                (D,) = torch.autograd.grad(out.sum(), a, allow_unused=True)
            else:  # D = d out / da, a vector: differentiate <v, d out/da> with respect to v
                v = torch.zeros_like(out, requires_grad=True)
                (g,) = torch.autograd.grad(out, a, grad_outputs=v, create_graph=True, allow_unused=True)
                D = None if g is None else torch.autograd.grad(g, v, allow_unused=True)[0]
        except (RuntimeError, NotImplementedError) as exc:
            return None, f"autograd failed ({str(exc).splitlines()[0][:120]})"
    if D is None:
        D = torch.zeros_like(out)
    derivative = D.detach().reshape(-1).to("cpu", torch.float64).numpy()
    if not np.isfinite(derivative).all():
        return None, "autograd returned NaN or inf (f is not differentiable at the point)"
    return derivative, ""
