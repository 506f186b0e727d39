"""Notebook helpers: one setup call, and checks that fail the run when a claim is false.

Every chapter starts with ``rng, device = hd.notebook.setup(seed=0)`` and states each claim as
a :func:`check`: a labelled statement, the computation, then

>>> check("one plus one is two", 1 + 1, id="demo-arith", close_to=2)  # doctest: +ELLIPSIS
PASS [demo-arith] one plus one is two: 2 = 2
CheckResult(...)

A failing check prints a FAIL line and raises :class:`AssertionError`, so the notebook run
(the site build, nbval, or a reader's own "Run all") stops there. A claim with several
conditions is one :func:`check_all`, which reports each condition by name with its own value
and bound (``"polar at most 1: 0.9999 ≤ 1.000001"``) and says which one failed.

Each check has a short stable identifier (``[a-z0-9-]``, prefixed by its chapter). When the
environment variable ``HDLCORE_CHECKS_LOG`` names a file, every outcome is appended to it as one
JSON line; the book's Sphinx extension (``_ext/hdl_checks.py``) sets it during the build and
turns the records into each chapter's "What we checked" table and the book's list of claims.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._validation import check_scalar, param_error

__all__ = ["CheckResult", "PartResult", "setup", "check", "check_all", "by_device", "report",
           "records", "device"]

_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_RECORDS: dict[str, CheckResult] = {}
_STATE: dict[str, Any] = {"device": None}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one :func:`check`."""

    id: str
    claim: str
    passed: bool
    value: str
    bound: str
    doc: str | None = None
    text: str = ""
    parts: tuple[PartResult, ...] = ()

    def _ipython_display_(self) -> None:
        """In a notebook the check has already printed its line: display nothing more."""


def setup(seed: int = 0, *, device: str | None = None, quiet: bool = False):
    """Seed every generator, pick the device, apply the figure style; return ``(rng, device)``.

    Parameters
    ----------
    seed : int
        Seeds Python's ``random``, numpy's global generator and torch (CPU and CUDA). The only
        place in :mod:`hdlcore` that touches global seeds.
    device : str, optional
        ``"cpu"``, ``"cuda"`` or ``"cuda:1"``... Defaults to the environment variable
        ``HDLCORE_DEVICE`` if set, else CUDA when available, else the CPU.
    quiet : bool
        Do not print the one-line summary.

    Returns
    -------
    rng : numpy.random.Generator
        A fresh generator seeded with ``seed``; pass it to every function that draws.
    device : torch.device

    Notes
    -----
    Used in the second cell of every chapter.
    """
    import torch

    from . import __version__
    from .plotting import apply_style

    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise param_error("seed", "setup", "an int >= 0", seed, TypeError)
    requested = device if device is not None else os.environ.get("HDLCORE_DEVICE") or None
    if requested is None:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(requested)
        except RuntimeError:
            raise param_error("device", "setup", "a torch device such as 'cpu' or 'cuda'",
                              requested) from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"setup was asked for device {requested!r} (argument or HDLCORE_DEVICE) but "
                "torch sees no CUDA device; unset HDLCORE_DEVICE or use 'cpu'."
            )
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (the one place that seeds global generators)
    torch.manual_seed(seed)  # also seeds every CUDA device
    apply_style()
    _STATE["device"] = dev
    _log({"kind": "setup", "device": str(dev), "seed": seed,
          "doc": os.environ.get("HDLCORE_CHECKS_DOC")})
    if not quiet:
        if dev.type == "cuda":
            where = f"GPU {torch.cuda.get_device_name(dev)}"
        else:
            where = f"CPU, {torch.get_num_threads()} threads"
        print(f"hdlcore {__version__} | torch {torch.__version__} | numpy {np.__version__} | "
              f"device {dev} ({where}) | seed {seed}")
    return np.random.default_rng(seed), dev


def device():
    """The device chosen by the last :func:`setup` (the CPU if it was never called)."""
    import torch

    return _STATE["device"] or torch.device("cpu")


def by_device(cpu: Any, cuda: Any) -> Any:
    """Pick a problem size by device: ``cpu`` on the CPU, ``cuda`` on a GPU.

    A GPU makes a chapter's runs larger; it never changes what is checked.
    """
    return cuda if device().type == "cuda" else cpu


def _fmt(x: Any, digits: int = 4) -> str:
    """A number as a reader writes it: ``0.2131``, ``3.1e-12``, ``37``, ``true``."""
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x.item()
    if isinstance(x, bool | np.bool_):
        return "true" if x else "false"
    if isinstance(x, int | np.integer):
        return str(int(x))
    if isinstance(x, float | np.floating):
        x = float(x)
        if x.is_integer() and abs(x) < 1e15:
            return str(int(x))
        text = f"{x:.{digits}g}" if 1e-3 <= abs(x) < 1e6 else f"{x:.{digits - 2}g}"
        return re.sub(r"e([+-])0*(\d)", lambda m: "e" + m[1].replace("+", "") + m[2], text)
    return str(x)


def _digits(x: float, bounds: list[float]) -> int:
    """The fewest significant digits (at least 4) at which ``x`` and each bound, as written,
    still compare as they do (so a value just above 1 never reads "1 ≤ 1")."""
    for digits in range(4, 19):
        if all(np.sign(float(_fmt(x, digits)) - float(_fmt(b, digits))) == np.sign(x - b)
               for b in bounds):
            return digits
    return 18


def _as_array(value: Any) -> np.ndarray:
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _values(arr: np.ndarray) -> str:
    """A short array written out, ``(2, 1)``; the caller keeps it to a few entries."""
    return "(" + ", ".join(_fmt(v) for v in arr.ravel()) + ")"


def _where(bad: np.ndarray, shape: tuple[int, ...]) -> str:
    """Which entries of an array fail: ``2 of 12 fail, first at index 4``."""
    first = np.unravel_index(int(np.flatnonzero(bad)[0]), shape)
    at = first[0] if len(first) == 1 else tuple(int(i) for i in first)
    return f"{int(bad.sum())} of {bad.size} fail, first at index {at}"


_OPS = {  # keyword: (symbol, test, interval bracket)
    "ge": ("≥", np.greater_equal, "["),
    "gt": (">", np.greater, "("),
    "le": ("≤", np.less_equal, "]"),
    "lt": ("<", np.less, ")"),
}
_CONDITIONS = ("le", "ge", "lt", "gt", "close_to", "rtol", "atol")


@dataclass(frozen=True)
class PartResult:
    """One named condition of a claim: its value and bound in words, and whether it holds.

    ``text`` reads as a sentence: ``"0.0213 ≤ 0.05"``, ``"max 0.31 over 12 values ≤ 1"``,
    ``"max |diff| 3.1e-12 ≤ 1e-09"``, ``"12 of 12 true"``.
    """

    name: str
    passed: bool
    value: str
    bound: str
    text: str


def _evaluate(name: str, value: Any, conditions: dict[str, Any], func: str,
              param: str) -> PartResult:
    """Test one condition; the single place where values are compared and put into words."""
    le, ge, lt, gt = (conditions.get(k) for k in ("le", "ge", "lt", "gt"))
    close_to = conditions.get("close_to")
    rtol, atol = conditions.get("rtol", 1e-9), conditions.get("atol", 0.0)
    arr = _as_array(value)
    bounds = {k: b for k, b in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if b is not None}
    if close_to is None and not bounds:
        if arr.dtype != bool or arr.size == 0:
            raise param_error(param, func, "a bool (or give le/ge/lt/gt/close_to)", value,
                              TypeError)
        passed = bool(arr.all())
        if arr.ndim == 0:
            shown = _fmt(bool(arr))
            return PartResult(name, passed, shown, "", shown)
        shown = f"{int(arr.sum())} of {arr.size} true"
        first = np.unravel_index(int(np.argmin(arr)), arr.shape)
        at = first[0] if len(first) == 1 else tuple(int(i) for i in first)
        text = shown if passed else f"{shown} (first false at index {at})"
        return PartResult(name, passed, shown, "", text)
    if arr.dtype.kind not in "biuf" or arr.size == 0:
        raise param_error(param, func, "a real number or a non-empty real array", value,
                          TypeError)
    arr = arr.astype(np.float64)
    bad = np.isnan(arr)
    texts, value_words, bound_words = [], [], []
    if bounds:
        bounds = {k: _as_array(b).astype(np.float64) for k, b in bounds.items()}
        for key, b in bounds.items():
            bad = bad | ~_OPS[key][1](arr, b)
        lows = [k for k in bounds if k in ("ge", "gt")]
        highs = [k for k in bounds if k in ("le", "lt")]
        floats = {k: float(b) for k, b in bounds.items() if b.size == 1}
        if len(floats) < len(bounds):  # a bound per entry: say how close the closest entry is
            margins = [(b - arr if k in ("le", "lt") else arr - b) for k, b in bounds.items()]
            margin = float(np.nanmin(np.minimum.reduce(np.broadcast_arrays(*margins))))
            n = np.broadcast_shapes(arr.shape, *(b.shape for b in bounds.values()))
            shown = f"{int(np.prod(n))} values, each " + " and ".join(
                f"{_OPS[k][0]} its bound" for k in bounds)
            b = {k: _fmt(v) for k, v in floats.items()}
            value_words.append(f"smallest margin {_fmt(margin)}")
            texts.append(f"{shown} (smallest margin {_fmt(margin)})")
        elif arr.size == 1:
            d = _digits(arr.item(), list(floats.values()))
            x, b = _fmt(arr.item(), d), {k: _fmt(v, d) for k, v in floats.items()}
            value_words.append(x)
            if lows and highs:
                lo, hi = lows[-1], highs[-1]
                lo_sym = "≤" if lo == "ge" else "<"
                texts.append(f"{b[lo]} {lo_sym} {x} {_OPS[hi][0]} {b[hi]}")
            else:
                texts.append(f"{x} " + " and ".join(f"{_OPS[k][0]} {b[k]}" for k in bounds))
        elif lows and highs:
            lo, hi = lows[-1], highs[-1]
            low, high = float(np.nanmin(arr)), float(np.nanmax(arr))
            d = max(_digits(low, [floats[lo]]), _digits(high, [floats[hi]]))
            b = {k: _fmt(v, d) for k, v in floats.items()}
            shown = f"{arr.size} values from {_fmt(low, d)} to {_fmt(high, d)}"
            value_words.append(shown)
            texts.append(f"{shown}, all in {_OPS[lo][2]}{b[lo]}, {b[hi]}{_OPS[hi][2]}")
        else:
            key = (lows or highs)[-1]
            worst = float(np.nanmin(arr) if key in ("ge", "gt") else np.nanmax(arr))
            d = _digits(worst, list(floats.values()))
            b = {k: _fmt(v, d) for k, v in floats.items()}
            shown = (f"{'min' if key in ('ge', 'gt') else 'max'} {_fmt(worst, d)} "
                     f"over {arr.size} values")
            value_words.append(shown)
            texts.append(f"{shown} " + " and ".join(f"{_OPS[k][0]} {b[k]}" for k in bounds))
        bound_words = [f"{_OPS[k][0]} " + (b[k] if k in floats else "bound per entry")
                       for k in bounds]
    if close_to is not None:
        target = _as_array(close_to).astype(np.float64)
        diff = np.abs(arr - target)
        allowed = atol + rtol * np.abs(target)
        bad = bad | ~(diff <= allowed)
        full = np.broadcast_to(target, np.broadcast_shapes(arr.shape, target.shape))
        uniform = bool(np.all(allowed == np.ravel(allowed)[0]))
        tol = _fmt(np.ravel(allowed)[0]) if uniform else (
            (f"{_fmt(atol)} + " if atol else "") + f"{_fmt(rtol)}·|target|")
        if full.size == 1:
            x, t = _fmt(arr.item()), _fmt(full.item())
            value_words.append(x)
            if not diff.max():
                texts.append(f"{x} = {t}" + ("" if np.ravel(allowed)[0] else " exactly"))
            else:
                texts.append(f"{x} ≈ {t} (|diff| {_fmt(diff.max())} ≤ {tol})")
            bound_words.append(f"= {t} (|diff| ≤ {tol})")
        else:
            m = _fmt(np.nanmax(diff)) if not np.isnan(diff).all() else "nan"
            if full.size <= 4:
                x = _values(np.broadcast_to(arr, full.shape))
                value_words.append(x)
                texts.append(f"{x} = {_values(full)}" if not np.nanmax(diff) else
                             f"{x} ≈ {_values(full)} (max |diff| {m} ≤ {tol})")
            elif not np.nanmax(diff):
                target_words = (f"equal to {_fmt(full.ravel()[0])}"
                                if np.all(full == full.ravel()[0]) else "equal to their targets")
                value_words.append(f"{full.size} values {target_words}")
                texts.append(f"all {full.size} values {target_words}")
            else:
                value_words.append(f"max |diff| {m} over {full.size} values")
                texts.append(f"max |diff| {m} over {full.size} values ≤ {tol}")
            bound_words.append(f"≈ target (|diff| ≤ {tol})")
    passed = not bool(bad.any())
    text = "; ".join(texts)
    if not passed and bad.size > 1:
        text += f" ({_where(np.broadcast_to(bad, bad.shape), bad.shape)})"
    if np.isnan(arr).any():
        text += " (NaN)"
    return PartResult(name, passed, "; ".join(value_words), ", ".join(bound_words), text)


def _check_claim_and_id(claim: Any, id: Any, func: str) -> None:
    if not isinstance(id, str) or not _ID.match(id):
        raise param_error("id", func, "a string of [a-z0-9] words joined by '-'", id)
    if not isinstance(claim, str) or not claim.strip():
        raise param_error("claim", func, "a non-empty string", claim, TypeError)


def _finish(claim: str, id: str, parts: tuple[PartResult, ...], named: bool) -> CheckResult:
    """Record, log and print an evaluated claim; raise when a part failed."""
    passed = all(p.passed for p in parts)
    head = f"{'PASS' if passed else 'FAIL'} [{id}] {claim}"
    if named:
        lines = [head] + [f"  {'pass' if p.passed else 'FAIL'}  {p.name}: {p.text}" for p in parts]
        value = f"{sum(p.passed for p in parts)} of {len(parts)} parts hold"
        bound, text = "", "; ".join(f"{p.name}: {p.text}" for p in parts)
    else:
        (part,) = parts
        lines = [f"{head}: {part.text}"]
        value, bound, text = part.value, part.bound, part.text
    result = CheckResult(id=id, claim=claim, passed=passed, value=value, bound=bound,
                         doc=os.environ.get("HDLCORE_CHECKS_DOC"), text=text,
                         parts=parts if named else ())
    _RECORDS[id] = result
    _log(asdict(result) | {"kind": "check"})
    print("\n".join(lines))
    if not passed:
        failed = [p for p in parts if not p.passed]
        if named:
            raise AssertionError(f"{head}: " + "; ".join(
                f"part '{p.name}' failed: {p.text}" for p in failed))
        raise AssertionError(lines[0])
    return result


def check(
    claim: str,
    value: Any,
    *,
    id: str,
    le: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    gt: float | None = None,
    close_to: Any = None,
    rtol: float = 1e-9,
    atol: float = 0.0,
) -> CheckResult:
    """State a claim, test it, print one line, and raise when it is false.

    Parameters
    ----------
    claim : str
        The statement, in words (and the book's notation).
    value : bool, float or array
        What was computed. With no comparison given it must be true (every entry, for an array).
    id : str
        Short stable identifier, ``[a-z0-9-]``, prefixed by the chapter (``"mf-polar-le-one"``).
        In the book it is also the label of the statement the check proves.
    le, ge, lt, gt : float, optional
        Bounds: every entry of ``value`` must satisfy them (several may be combined).
    close_to : float or array, optional
        Target: ``|value - close_to| <= atol + rtol * |close_to|`` entrywise.
    rtol, atol : float
        Tolerances of ``close_to``.

    Returns
    -------
    CheckResult
        Also recorded for :func:`report` and, during the book build, for the list of claims.

    Raises
    ------
    AssertionError
        When the claim is false, or the value is NaN.

    See Also
    --------
    check_all : a claim made of several named conditions, each reported with its own value.
    """
    _check_claim_and_id(claim, id, "check")
    rtol = check_scalar(rtol, "rtol", "check", ge=0)
    atol = check_scalar(atol, "atol", "check", ge=0)
    conditions = {"le": le, "ge": ge, "lt": lt, "gt": gt, "close_to": close_to,
                  "rtol": rtol, "atol": atol}
    part = _evaluate("", value, {k: v for k, v in conditions.items() if v is not None},
                     "check", "value")
    return _finish(claim, id, (part,), named=False)


def check_all(claim: str, parts: Mapping[str, Any], *, id: str) -> CheckResult:
    """State a claim made of several conditions; test and report each by name.

    Each part is reported with its own value and bound, and a failure names the part that
    failed, so a claim never has to pack booleans into numbers or rescale several quantities
    onto one bound.

    >>> check_all("the polar certifies", {
    ...     "polar at most 1": (0.9999, {"le": 1 + 1e-6}),
    ...     "exact polar": True,
    ...     "Euler residuals": ([1e-13, 3e-12], {"le": 1e-9}),
    ... }, id="demo-parts")  # doctest: +ELLIPSIS
    PASS [demo-parts] the polar certifies
      pass  polar at most 1: 0.9999 ≤ 1
      pass  exact polar: true
      pass  Euler residuals: max 3e-12 over 2 values ≤ 1e-9
    CheckResult(...)

    Parameters
    ----------
    claim : str
        The statement, in words.
    parts : mapping of str to condition
        Each name (a few words) maps to either a bool, or an array of bools that must all be
        true, or a pair ``(value, {"le": ..., "ge": ..., "lt": ..., "gt": ..., "close_to": ...,
        "rtol": ..., "atol": ...})`` with the keyword arguments of :func:`check`.
    id : str
        As in :func:`check`.

    Returns
    -------
    CheckResult
        With one :class:`PartResult` per part in ``parts``.

    Raises
    ------
    AssertionError
        When any part is false (every part is evaluated first; the message names each one
        that failed).
    """
    _check_claim_and_id(claim, id, "check_all")
    if not isinstance(parts, Mapping) or not parts:
        raise param_error("parts", "check_all", "a non-empty dict of part name to condition",
                          parts, TypeError)
    results = []
    for name, spec in parts.items():
        if not isinstance(name, str) or not name.strip():
            raise param_error("parts", "check_all", "a dict whose keys are non-empty strings",
                              name, TypeError)
        if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
            value, conditions = spec
            unknown = sorted(set(conditions) - set(_CONDITIONS))
            if unknown:
                raise param_error("parts", "check_all",
                                  f"conditions among {', '.join(_CONDITIONS)}", unknown[0])
            conditions = dict(conditions)
            for tol in ("rtol", "atol"):
                if tol in conditions:
                    conditions[tol] = check_scalar(conditions[tol], f"parts[{name!r}][{tol!r}]",
                                                   "check_all", ge=0)
        else:
            value, conditions = spec, {}
        results.append(_evaluate(name, value, conditions, "check_all",
                                 f"parts[{name!r}]"))
    return _finish(claim, id, tuple(results), named=True)


def _log(entry: dict) -> None:
    path = os.environ.get("HDLCORE_CHECKS_LOG")
    if not path:
        return
    entry = entry | {"run": os.environ.get("HDLCORE_CHECKS_RUN"), "time": time.time()}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")


def records() -> list[CheckResult]:
    """Every check run in this session, in order (a re-run check replaces its earlier entry)."""
    return list(_RECORDS.values())


def report() -> list[CheckResult]:
    """Print the checks run in this session, one line each, and return them."""
    rows = records()
    width = max((len(r.id) for r in rows), default=0)
    for r in rows:
        print(f"{'PASS' if r.passed else 'FAIL'}  {r.id:<{width}}  {r.claim}")
    print(f"{sum(r.passed for r in rows)} of {len(rows)} checks passed")
    return rows
