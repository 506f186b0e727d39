"""Notebook helpers: one setup call, and checks that fail the run when a claim is false.

Every chapter starts with ``rng, device = hd.notebook.setup(seed=0)`` and states each claim as
a :func:`check`: a labelled statement, the computation, then

>>> check("one plus one is two", 1 + 1, id="demo-arith", close_to=2)  # doctest: +ELLIPSIS
PASS [demo-arith] one plus one is two: 2 = 2 (rtol 1e-09)
CheckResult(...)

A failing check prints a FAIL line and raises :class:`AssertionError`, so the notebook run
(the site build, nbval, or a reader's own "Run all") stops there.

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
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._validation import check_scalar, param_error

__all__ = ["CheckResult", "setup", "check", "by_device", "report", "records", "device"]

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


def _fmt(x: Any) -> str:
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x.item()
    if isinstance(x, bool | np.bool_):
        return str(bool(x))
    if isinstance(x, int | np.integer):
        return str(int(x))
    if isinstance(x, float | np.floating):
        return f"{float(x):.7g}"
    return str(x)


def _as_array(value: Any) -> np.ndarray:
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


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
    """
    if not isinstance(id, str) or not _ID.match(id):
        raise param_error("id", "check", "a string of [a-z0-9] words joined by '-'", id)
    if not isinstance(claim, str) or not claim.strip():
        raise param_error("claim", "check", "a non-empty string", claim, TypeError)
    rtol = check_scalar(rtol, "rtol", "check", ge=0)
    atol = check_scalar(atol, "atol", "check", ge=0)
    arr = _as_array(value)
    comparisons = {k: v for k, v in (("<=", le), (">=", ge), ("<", lt), (">", gt)) if v is not None}
    if close_to is None and not comparisons:
        if arr.dtype != bool:
            raise param_error("value", "check", "a bool (or give le/ge/lt/gt/close_to)", value,
                              TypeError)
        passed = bool(arr.all())
        shown, bound = (_fmt(bool(arr)) if arr.ndim == 0 else f"{int(arr.sum())}/{arr.size} true"), ""
    elif arr.dtype.kind not in "biuf" or arr.size == 0:
        raise param_error("value", "check", "a real number or a non-empty real array", value,
                          TypeError)
    else:
        arr = arr.astype(np.float64)
        passed = not bool(np.isnan(arr).any())
        parts, shown = [], None
        for op, b in comparisons.items():
            ok = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater}[op]
            passed &= bool(ok(arr, b).all())
            parts.append(f"{op} {_fmt(b)}")
            if shown is None:
                worst = arr.max() if op in ("<=", "<") else arr.min()
                shown = _fmt(worst) if arr.ndim == 0 else f"{'max' if op[0] == '<' else 'min'} {_fmt(worst)}"
        if close_to is not None:
            target = _as_array(close_to).astype(np.float64)
            dev = np.abs(arr - target)
            passed &= bool(np.all(dev <= atol + rtol * np.abs(target)))
            tol = f"rtol {rtol:g}" + (f", atol {atol:g}" if atol else "")
            if arr.ndim == 0 and target.ndim == 0:
                parts.append(f"= {_fmt(target)} ({tol})")
            else:
                parts.append(f"= target ({tol}; max |diff| {_fmt(dev.max())})")
            if shown is None:
                shown = _fmt(arr) if arr.ndim == 0 else f"array {arr.shape}"
        bound = ", ".join(parts)
    line = f"{'PASS' if passed else 'FAIL'} [{id}] {claim}: {shown}" + (f" {bound}" if bound else "")
    result = CheckResult(id=id, claim=claim, passed=passed, value=shown or "", bound=bound,
                         doc=os.environ.get("HDLCORE_CHECKS_DOC"))
    _RECORDS[id] = result
    _log(asdict(result) | {"kind": "check"})
    print(line)
    if not passed:
        raise AssertionError(line)
    return result


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
