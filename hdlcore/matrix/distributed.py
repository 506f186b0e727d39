"""torch.distributed: completion on several processes (CPUs with gloo, GPUs with NCCL).

Every process of a group calls the same function with a sparse ``Y`` of the full shape that
holds *its share* of the observed entries (any split: by rows, at random, ...) and the group:

.. code-block:: python

    res = hdlcore.grow(Y_part, lam, group=torch.distributed.group.WORLD)

The entries are redistributed once so that each process holds the entries of a block of rows
and of a block of columns (contiguous blocks with about equal numbers of entries). Each
alternating-least-squares half-sweep then solves the ridge systems of its own rows and
all-gathers the new rows of ``U`` (or ``V``): a sweep moves O((m + n) r) numbers, plus a few
scalars, and ``R @ x`` / ``R.T @ y`` (Lanczos, the polar) move O(m + n). ``U``, ``V``, the
objective and the certificate are the same on every process, and equal to the one-process
result on the union of the entries, to rounding.

Safety:

- Before any work the processes exchange a fingerprint of their arguments (shape, dtype,
  ``lam``, every option, digests of ``U0``/``V0``). Different values are refused on **every**
  process with the library's error naming the parameter; a process whose own arguments fail
  validation tells the others, which stop with an error naming it.
- The random start and Lanczos vectors come from process 0's generator, so ``rng=None`` is safe.
- A process that raises later, or dies, cannot be waited for forever: a dead peer breaks
  gloo's connections at once, and every collective is bounded by the group's ``timeout``
  (``init_process_group(..., timeout=datetime.timedelta(seconds=...))``). The others then stop
  with a ``RuntimeError`` that says so.

Used by :func:`hdlcore.grow`, :func:`hdlcore.solve_factorized` and :func:`hdlcore.certify`.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import numpy as np

from .._backend import is_tensor
from .._validation import check_scalar, param_error
from . import sparse

__all__ = ["Session", "collective"]


class Session:
    """One call of a public function on a process group (created by :func:`collective`)."""

    def __init__(self, group, func: str):
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise param_error("group", func, "a torch.distributed process group (call "
                              "torch.distributed.init_process_group first) or None", group, TypeError)
        try:
            self.rank = dist.get_rank(group)
            self.size = dist.get_world_size(group)
        except (RuntimeError, ValueError):
            raise param_error("group", func, "a torch.distributed process group this process "
                              "belongs to, or None", group, TypeError) from None
        if self.rank < 0:
            raise param_error("group", func, "a process group this process belongs to, or None", group)
        self.group, self.func, self.agreed = group, func, False
        self.backend = str(dist.get_backend(group))

    def where(self) -> str:
        return f"{self.func} (process {self.rank} of {self.size})"

    def exchange(self, payload) -> list:
        """All-gather one picklable object per process."""
        import torch.distributed as dist

        out = [None] * self.size
        self.call(dist.all_gather_object, out, payload, group=self.group)
        return out

    def call(self, op, *args, **kwargs):
        """Run a collective; a failure (a peer raised, died or timed out) becomes a clear error."""
        try:
            return op(*args, **kwargs)
        except Exception as e:  # gloo/NCCL report broken peers and timeouts as RuntimeErrors
            raise RuntimeError(f"{self.where()}: a collective operation on the process group failed, so "
                               f"another process raised an error, exited or timed out (the group's "
                               f"timeout bounds the wait): {type(e).__name__}: {e}") from e

    def report(self, exc: BaseException) -> None:
        """Tell the others, waiting in the agreement, why this process stopped."""
        self.agreed = True
        try:
            self.exchange(("error", type(exc).__name__, str(exc)))
        except RuntimeError:
            pass


def collective(fn):
    """Decorator: ``group=`` runs ``fn`` on every process of the group together (see module doc)."""

    @functools.wraps(fn)
    def wrapper(*args, group=None, **kwargs):
        if group is None:
            return fn(*args, **kwargs)
        session = Session(group, fn.__name__)
        try:
            return fn(*args, group=session, **kwargs)
        except BaseException as e:
            if not session.agreed:  # the others wait in the agreement: tell them
                session.report(e)
            raise

    return wrapper


# -- the agreement ---------------------------------------------------------------------------------
def _digest(value: Any) -> Any:
    """A comparable summary of an option: arrays by shape, dtype and a hash of their bytes."""
    if is_tensor(value) or isinstance(value, np.ndarray):
        a = value.detach().cpu().numpy() if is_tensor(value) else value
        a = np.ascontiguousarray(a)
        return f"array{a.shape} {a.dtype} sha1={hashlib.sha1(a.tobytes()).hexdigest()[:12]}"
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return repr(value)


_ERRORS = {"ValueError": ValueError, "TypeError": TypeError}


def agree(session: Session, func: str, shape, dtype, device, rng, options: dict) -> np.random.Generator:
    """Exchange the fingerprint of every process's arguments; refuse differences on every process."""
    fp = {"Y (shape)": tuple(shape), "Y (dtype)": str(dtype).replace("torch.", ""),
          "Y (device type)": str(getattr(device, "type", device))}
    fp.update({k: _digest(v) for k, v in options.items()})
    got = session.exchange(("ok", fp, rng.bit_generator.state))
    session.agreed = True
    for k, item in enumerate(got):
        if item[0] == "error":
            exc = _ERRORS.get(item[1], RuntimeError)
            raise exc(f"{func} stopped on every process: process {k} of {session.size} raised "
                      f"{item[1]}: {item[2]}")
    first = got[0][1]
    for k, (_, fpk, _) in enumerate(got[1:], 1):
        for key, val in first.items():
            if fpk.get(key) != val:
                name = key.split(" ")[0]
                raise ValueError(f"The '{name}' parameter of {func} must be the same on every process of "
                                 f"the group ({key}). Got {val!r} on process 0 and {fpk.get(key)!r} on "
                                 f"process {k} instead.")
    rng.bit_generator.state = got[0][2]  # every process draws process 0's random numbers
    return rng


# -- the sharded problem ---------------------------------------------------------------------------
class _Meta:
    """Shape, dtype and device of this process's data before the agreement."""

    def __init__(self, shape, dtype, device):
        self.shape, self.dtype, self.device = tuple(shape), dtype, device


class Group:
    """The communicator of :class:`~hdlcore.matrix.sparse.Pattern` on a process group."""

    def __init__(self, session: Session):
        self.session = session
        self.rank, self.size = session.rank, session.size

    def gather(self, block, bounds):
        """Concatenate every process's block of rows (``bounds``: their first rows and the end)."""
        import torch
        import torch.distributed as dist

        sizes = [bounds[p + 1] - bounds[p] for p in range(self.size)]
        width = max(sizes)
        pad = block.new_zeros((width,) + tuple(block.shape[1:]))
        pad[: block.shape[0]] = block
        out = [torch.empty_like(pad) for _ in range(self.size)]
        self.session.call(dist.all_gather, out, pad.contiguous(), group=self.session.group)
        return torch.cat([o[:s] for o, s in zip(out, sizes, strict=True)])

    def sum(self, t):
        import torch.distributed as dist

        t = t.clone()
        self.session.call(dist.all_reduce, t, group=self.session.group)
        return t

    def exchange(self, send: list, dtype):
        """All-to-all of 1-D tensors: ``send[p]`` goes to process ``p``; what arrives, concatenated."""
        import torch
        import torch.distributed as dist

        counts = torch.tensor([int(s.numel()) for s in send], dtype=torch.int64, device=send[0].device)
        recv = torch.empty_like(counts)
        self.session.call(dist.all_to_all_single, recv, counts, group=self.session.group)
        out = torch.empty(int(recv.sum()), dtype=dtype, device=send[0].device)
        self.session.call(dist.all_to_all_single, out, torch.cat(send).to(dtype),
                          output_split_sizes=recv.tolist(), input_split_sizes=counts.tolist(),
                          group=self.session.group)
        return out


def _bounds(counts, parts: int) -> list[int]:
    """Contiguous blocks of about equal numbers of entries (each block's first index, and the end)."""
    import torch

    total = counts.numel()
    cum = torch.cumsum(counts.to(torch.float64) + 1e-9, 0)  # + tiny: empty lines still split evenly
    targets = cum[-1] * torch.arange(1, parts, dtype=torch.float64, device=cum.device) / parts
    inner = torch.searchsorted(cum, targets).tolist()
    return [0] + [min(int(b) + 1, total) for b in inner] + [total]


def _shard(comm: Group, lines, others, vals, bounds, nlines: int, width: int, func, value):
    """Send every entry to the process of its line; return this process's :class:`View` (CSR,
    sorted by line then position) and its values."""
    import torch

    b = torch.tensor(bounds[1:-1], dtype=torch.int64, device=lines.device)
    dest = torch.searchsorted(b, lines, right=True)  # the process that owns each entry's line
    order = torch.argsort(dest, stable=True)
    counts = torch.bincount(dest, minlength=comm.size).tolist()
    split = lambda t: list(torch.split(t[order], counts))  # noqa: E731
    lines = comm.exchange(split(lines), torch.int64)
    others = comm.exchange(split(others), torch.int64)
    vals = comm.exchange(split(vals), vals.dtype)
    start, stop = bounds[comm.rank], bounds[comm.rank + 1]
    lin = (lines - start) * width + others
    key, order = torch.sort(lin, stable=True)
    dup = bool((key[1:] == key[:-1]).any())
    flag = comm.sum(torch.tensor([float(dup)], dtype=torch.float64, device=lines.device))
    if float(flag[0]) > 0:  # on every process, so that all of them stop
        sparse.duplicates(lines, others, (nlines, width), "Y", func, value)  # the one that has it
        raise param_error("Y", func, "a sparse matrix without duplicate coordinates (some entry is "
                          "stored on two processes; each observed entry is stored once)", value)
    lines, others, vals = lines[order], others[order], vals[order]
    crow = torch.zeros(stop - start + 1, dtype=torch.int64, device=lines.device)
    crow[1:] = torch.cumsum(torch.bincount(lines - start, minlength=stop - start), 0)
    return sparse.View(crow, others, bounds, comm.rank, width), vals


class ShardedProblem(sparse.SparseProblem):
    """A sparse problem whose entries are spread over a process group (complete after :meth:`agree`)."""

    def __init__(self, session: Session, rows, cols, vals, shape, back, value):
        self.session, self._local = session, (rows, cols, vals, value)
        self.Y, self.back, self._ones = _Meta(shape, vals.dtype, vals.device), back, None
        self.M = None

    def agree(self, func: str, rng, **options):
        """The agreement (refusing different arguments), then the redistribution of the entries."""
        import torch

        rows, cols, vals, value = self._local
        m, n = self.Y.shape
        rng = agree(self.session, func, (m, n), vals.dtype, vals.device, rng, options)
        comm = Group(self.session)
        dev = vals.device
        row_counts = comm.sum(torch.bincount(rows, minlength=m).to(torch.float64))
        col_counts = comm.sum(torch.bincount(cols, minlength=n).to(torch.float64))
        rb, cb = _bounds(row_counts, comm.size), _bounds(col_counts, comm.size)
        rview, rvals = _shard(comm, rows, cols, vals, rb, m, n, func, value)
        cview, cvals = _shard(comm, cols, rows, vals, cb, n, m, func, value)
        del dev
        pattern = sparse.Pattern(rview, cview, (m, n), comm)
        self.Y = sparse.SparseMatrix(pattern, rvals, cvals)
        self.M, self._local = pattern, None
        return rng

    def astype(self, dtype) -> sparse.SparseProblem:
        return sparse.SparseProblem(self.Y.to(dtype), self.back)

    def transposed(self) -> sparse.SparseProblem:
        return sparse.SparseProblem(self.Y.T, self.back)


def prepare(session: Session, Y: Any, mask: Any, lam: Any, func: str):
    """Validate this process's share (no communication: see :meth:`ShardedProblem.agree`)."""
    if not sparse.is_sparse(Y):
        raise param_error("Y", func, "a sparse matrix (scipy.sparse or a torch sparse tensor) of the full "
                          "shape holding this process's observed entries, when group is given", Y, TypeError)
    if mask is not None:
        raise param_error("mask", func, "None when Y is sparse (its stored entries are the observed ones)",
                          mask)
    lam = check_scalar(lam, "lam", func, gt=0)
    rows, cols, vals, shape, back = sparse.coordinates(Y, "Y", func, check_duplicates=False, allow_empty=True)
    sparse.duplicates(rows, cols, shape, "Y", func, Y)
    return ShardedProblem(session, rows, cols, vals, shape, back, Y), lam
