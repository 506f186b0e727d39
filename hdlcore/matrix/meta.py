"""The meta-algorithm: grow the factorization until the polar certifies it.

.. code-block:: text

    repeat
        local descent on (U, V) at the current size r          (hdlcore.solve_factorized's methods)
        Z = R / lam with R = M * (Y - U V^T);  (u, v), omega = polar maximizer and value
        if omega <= 1 + tol and the point is stationary (or the duality gap is small): stop, certified
        else append the column (s^1/2 u, s^1/2 v), s = lam (omega - 1) / |M * (u v^T)|_F^2
             (the exact line search), r <- r + 1

With :math:`\\theta(u, v) = 1` the appended column changes the objective by
:math:`-\\tfrac12 \\lambda^2(\\omega - 1)^2 / \\lVert M\\odot uv^\\top\\rVert_F^2 < 0`, so the objective never
increases across a growth step; for l2/l2 with full data the column is
:math:`\\sqrt{\\sigma_1(R) - \\lambda}` times the top singular pair of the residual.

For l2/l2 a growth step is a **block**: every singular direction of the residual above
:math:`\\lambda` (at most tripling the size) is appended at once, with one exact line search for the
block (``_append_block``); with full data and exact singular pairs this is the singular value
thresholding of the residual. Directions that a block added beyond the optimum's rank are removed
by an exact line search on their own scale (``_prune``), and with a mask the ALS rows are solved
by a few conjugate-gradient steps once the size exceeds 16. With a mask, once the polar is near 1
the local descent is preconditioned L-BFGS (:mod:`hdlcore.matrix.quasi_newton`), where ALS slows
down, and before each polar test the convex problem restricted to the spans of U and V is
solved (:mod:`hdlcore.matrix.subspace`), which removes the part of the polar's excess that lies
inside them. Above
the exact certificate's size, the polar tests split the residual on the same spans
(``_split_polar``). Every step keeps the objective monotone, and the final certificate is the same
:func:`hdlcore.certify` as for any point: the loop computes it only when one of its bounds, at the
growth step's own polar, would prove.

Used by Chapter 3 (matrix factorization) and ``benchmarks/bench_completion.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._runtime import one_thread_when_small
from .._validation import check_scalar, warn_not_converged
from .certificates import CLIP_TRY, certificate, clipped_dual, dual_value
from .columns import append_column
from .distributed import collective
from .factorized import _objective, descend, rebalance, start_point
from .norms import norm_pair
from .problem import MatrixResult, Problem, descent_method, prepare, solver_options
from .quasi_newton import Memory
from .sparse import SparseProblem
from .spectral import EXACT_SIZE_LIMIT, block_norm, gram_eigh, span_blocks, top_triplets
from .subspace import restricted_solve

__all__ = ["grow"]

#: Below this size (min(m, n)) the growth steps use a full SVD; above it, Lanczos.
_SMALL = 64
#: A polar excess above this is taken as a clear sign that the size is too small.
_CLEAR = 0.1
#: A block growth step adds up to max(_BLOCK_MIN, _BLOCK_GROWTH r) directions (2: at most tripling
#: the size; 3 and 4 measured no better overall at n = 400 and 2000, ranks 5-151).
_BLOCK_MIN = 4
_BLOCK_GROWTH = 2
#: A block keeps the directions whose excess over lam is at least this share of the top one's.
_BLOCK_SHARE = 0.2
#: Above this size the near-1 polar tests use a full SVD when the matrix is small enough for
#: the certificate's exact method (the residual's top spectrum is flat there: Lanczos is slow).
_EXACT_NEAR_SIZE = 16
#: Where the tests are exact and the last excess was above this, the test takes the Gram matrix's
#: eigenvectors too, and a growth step that follows takes its directions from them (one
#: eigendecomposition instead of a test and a second one).
_GROWTH_LIKELY = 0.3
#: Growth steps asking for more directions than this take them from a full eigendecomposition of
#: the residual's Gram matrix where the certificate is exact (block Krylov for 12 directions at
#: 400 x 400: 28 ms, the Gram route 13 ms; for 8, 9-11 ms against 13).
_EXACT_ROOM = 8
#: Without a mask, growth steps take a full SVD up to this m n min(m, n) (2000 x 2000: about 3 s
#: on 2 cores, the cost of the closed form itself), and Ritz triplets to this relative residual above.
_FULL_SVD_LIMIT = 16 * EXACT_SIZE_LIMIT
_FULL_TRIPLET_TOL = 1e-7
#: A polar excess below this many times tol, at a converged point, grows by the polar's maximizer.
_TINY = 100
#: Ritz residual of the Lanczos polar tests near 1.
_NEAR_TOL = 1e-7
#: Descent sweeps between two polar tests.
_CHUNK = 20
#: L-BFGS steps between two polar tests, each chunk followed by a restricted solve (a step costs
#: about a fifth of an ALS sweep; 12, 20 and 40 measured no better than 30 at n = 400 and 2000).
_QN_CHUNK = 30
#: Below this polar excess the restricted solves take _FINAL_ITERATIONS FISTA iterations instead
#: of 8: at n = 400, rank 129 the excess left at the end lay inside the spans (sigma_1(Qu^T R Qv)),
#: and 16 iterations certified after 87 sweeps instead of 118 (0.97 s instead of 1.14-1.40 s,
#: interleaved). From 1e-3 rather than 1e-4 once the clipped dual point is estimated: its gap
#: falls with the excess inside the spans (at rank 98, 16 iterations took it from 1.3e-6 to
#: 2e-7 of F at a fixed point), so ranks 98 and 129 prove after 39 and 42 sweeps instead of 55
#: and 72 (0.36-0.51 s against 0.64-0.76 s, 0.50 against 0.65, interleaved); rank 51 the same
#: sweeps (1e-2 changes nothing more).
_FINAL_EXCESS = 1e-3
_FINAL_ITERATIONS = 16
#: Below this polar excess, where the tests are exact and the clipped dual point is estimated
#: (hdlcore.matrix.certificates.clipped_dual), L-BFGS takes _SHORT_CHUNK steps between tests
#: instead of _QN_CHUNK: the point may prove at a polar of 1 + 1e-5 (n = 400, rank 98: 54 sweeps
#: instead of 82, 0.55 s instead of 0.65 s).
_SHORT_EXCESS = 1e-3
_SHORT_CHUNK = 15
#: Polar excess below which a block growth step is followed by the tight descent level at once
#: (n = 400, rank 51: 50 sweeps and 9 tests instead of 52 and 11, 15 % faster; n = 2000: one test
#: fewer at ranks 63-151).
_GROWN_NEAR = 1e-2


@collective
@one_thread_when_small
def grow(
    Y: Any,
    lam: float,
    mask: Any = None,
    norms: Any = ("l2", "l2"),
    *,
    U0: Any = None,
    V0: Any = None,
    tol: float | None = None,
    max_size: int | None = None,
    method: str = "auto",
    max_iter: int = 100000,
    polar_method: str = "auto",
    rng: np.random.Generator | int | None = None,
    failure_probability: float = 1e-9,
    group: Any = None,
) -> MatrixResult:
    """Local descent + polar test + one more column, until the polar certifies a global optimum.

    Parameters
    ----------
    Y : (m, n) array or tensor, or a sparse matrix
        Data; entries where ``mask`` is False are ignored (they must still be finite). A
        ``scipy.sparse`` matrix or torch sparse tensor lists the observed entries (``mask`` must
        be None; see :mod:`hdlcore.matrix.sparse`); with ``group``, this process's share of them.
    lam : float
        :math:`\\lambda > 0`.
    mask : (m, n) bool array, optional
        True where observed.
    norms : pair of str
        Column norms of :math:`\\theta(u, v) = \\lVert u\\rVert_a\\lVert v\\rVert_b` (see
        :mod:`hdlcore.matrix.norms`). For the pairs whose polar has no closed form the growth
        uses the heuristic maximizer and the final certificate cannot prove optimality.
    U0, V0 : arrays, optional
        Starting factors (any size, e.g. one random column). By default the start is
        :math:`X = 0` and the first step appends the polar maximizer of ``Y``: a one-column start.
    tol : float, optional
        Stop when the certificate proves ``F - F* <= tol * F`` (:func:`hdlcore.certify`: the polar
        at most about ``1 + tol`` at a stationary point, or for l2/l2 a duality gap that small,
        which can hold with the polar slightly above ``1 + tol``). Default 1e-6 for float64,
        1e-4 for float32.
    max_size : int, optional
        Largest size allowed (default ``min(m, n) + 1`` for l2/l2, ``m * n + 1`` otherwise).
    method : {"auto", "als", "prox"}
        Local descent ("als" for l2/l2, "prox" otherwise), as in :func:`hdlcore.solve_factorized`.
    max_iter : int
        Total budget of descent sweeps (an L-BFGS step counts as one).
    polar_method : {"auto", "exact", "probabilistic", "krylov"}
        How the final certificate computes :math:`\\sigma_1` (see :func:`hdlcore.certify`: "auto"
        is a full SVD up to 1000 x 1000 and the probabilistic bound above; growth steps use a
        full SVD below 64 x 64 and Lanczos above).
    rng : numpy Generator, int or None
        Lanczos start vectors.
    failure_probability : float
        ``delta`` of a probabilistic final certificate (default 1e-9).
    group : torch.distributed process group, optional
        Grow together with the other processes of the group, each passing a sparse ``Y`` of the
        full shape with its share of the observed entries (see :mod:`hdlcore.matrix.distributed`).

    Returns
    -------
    MatrixResult
        The factors and certificate; ``history`` has one entry per polar evaluation:
        ``"size"``, ``"objective"``, ``"polar"``, ``"iterations"`` (cumulative sweeps),
        ``"time"`` (seconds), and ``"sweep_objective"``, ``"sweep_time"`` for every descent sweep.

    Notes
    -----
    .. math:: \\min_{r}\\ \\min_{U, V}\\ \\tfrac12\\lVert M\\odot(Y - UV^\\top)\\rVert_F^2
       + \\lambda\\sum_{i=1}^r\\theta(u_i, v_i)

    Descent tolerances start loose (relative decrease 1e-2 per sweep, about one sweep after each
    new column) and are tightened only when the polar is close to 1 (excess below 0.1); a column
    is then added only if tightening leaves the excess about unchanged, so that an unconverged
    descent is not mistaken for a size that is too small. The polar is tested at least every
    20 sweeps. For l2/l2 a growth step appends every singular direction of the residual above
    ``lam`` at once (at most tripling the size) with one exact line search, surplus directions
    are later removed by their own exact line search, and with a mask the ALS rows are solved
    by a few conjugate-gradient steps above 16 columns, and, once the polar is within 10 % of 1,
    by preconditioned L-BFGS steps (30 between polar tests; ALS again if its line search stalls at
    rounding), followed by a solve of the convex problem restricted to the spans of U and V
    (:mod:`hdlcore.matrix.subspace`); each of these steps keeps the objective monotone. Up to the
    size where the certificate is exact (1000 x 1000), float64 data with a mask are worked on in
    float32 while the polar is far above 1 (the growth steps), and the polar tests take sigma_1 from the
    residual's Gram matrix (with the rounding allowance that lets the certificate reuse the last
    one) and, near the end, estimate the certificate's second dual point (the residual's values
    above ``lam`` clipped on the observed entries, :func:`hdlcore.certify`), which can prove at a
    polar of 1 + 1e-5; the last descents then test every 15 L-BFGS steps, and the restricted
    solves take 16 iterations instead of 8 from an excess of 1e-3. Above that
    size, the polar tests split the residual on the spans
    of U and V (a small exact block and a Lanczos run on the rest); the final certificate bounds
    the whole residual (:func:`hdlcore.certify`, which splits it the same way where that proves,
    with rounding allowances and a probabilistic bound on the rest). Without a mask a growth step
    appends every direction above ``lam`` (exact or tight triplets: from X = 0 the thresholding of
    Y, the optimum). Sparse data on one process takes the same steps (on the observed entries);
    distributed data and other pairs add one column
    per step, as the polar's maximizer.
    Used in Chapter 3 and by :func:`hdlcore.grow_path`.

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in tensor factorization, deep learning, and
    beyond, arXiv:1506.07540, 2015; Structured low-rank matrix factorization, IEEE TPAMI 2020.

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.diag([5.0, 3.0, 1.0])
    >>> res = grow(Y, lam=2.0)
    >>> res.size, round(res.objective, 8), res.certificate.is_global
    (2, 12.5, True)
    """
    func = "grow"
    prob, lam = prepare(Y, mask, lam, func, group)
    pair = norm_pair(norms, func)
    m, n = prob.shape
    opts, rng = grow_options(prob, pair, tol, method, max_iter, polar_method, max_size, rng, func)
    failure_probability = check_scalar(failure_probability, "failure_probability", func, gt=0, lt=1)
    rng = prob.agree(func, rng, lam=lam, norms=pair.name, U0=U0, V0=V0, **opts,
                     failure_probability=failure_probability)
    import torch

    if U0 is None and V0 is None:
        U = torch.zeros(m, 0, dtype=prob.Y.dtype, device=prob.Y.device)
        V = torch.zeros(n, 0, dtype=prob.Y.dtype, device=prob.Y.device)
    else:
        U, V = start_point(prob, pair, None, U0, V0, rng, func)
    res, _, _ = _grow(prob, pair, lam, U, V, **opts, rng=rng, func=func,
                      failure_probability=failure_probability)
    return res


def grow_options(prob, pair, tol, method, max_iter, polar_method, max_size, rng,
                 func) -> tuple[dict, np.random.Generator]:
    """Validated options of :func:`grow` (and of every grow along :func:`hdlcore.grow_path`)."""
    m, n = prob.shape
    method = descent_method(method, pair, func)
    tol, max_iter, polar_method, rng = solver_options(prob, func, tol, (1e-6, 1e-4), max_iter,
                                                      polar_method, rng)
    default_max = min(m, n) + 1 if pair.name == "l2/l2" else m * n + 1
    max_size = default_max if max_size is None else check_scalar(max_size, "max_size", func, kind="int", ge=1)
    return dict(tol=tol, method=method, max_iter=max_iter, polar_method=polar_method,
                max_size=max_size), rng


def _grow(prob, pair, lam, U, V, *, tol, max_size, method, max_iter, polar_method, rng,
          func="grow", start=None, failure_probability=1e-9):
    """The loop of :func:`grow` on validated tensors; returns ``(result, U, V)`` (tensors too,
    for a warm start of the next problem of a path)."""
    import torch

    m, n = prob.shape
    growth_method = "exact" if min(m, n) <= _SMALL else "krylov"
    dense = isinstance(prob, Problem)
    # Sparse data on one process grows by blocks too (directions by block Krylov on the sparse
    # residual, line searches on the observed entries); distributed data keeps the one-column steps.
    one_sparse = type(prob) is SparseProblem
    exact_fits = dense and m * n * min(m, n) <= EXACT_SIZE_LIMIT
    block = (dense or one_sparse) and pair.name == "l2/l2"  # every direction above lam at once
    masked = block and prob.Mf is not None  # L-BFGS and restricted solves near the end
    inexact = masked and dense  # conjugate-gradient ALS rows at large sizes
    full = block and prob.Mf is None  # no mask: growth steps are uncapped thresholdings
    dense_block = block and dense  # full SVDs (values only where possible) and split tests
    clip_tests = dense_block and masked and exact_fits  # exact tests: the clipped dual point is estimated
    eps = float(torch.finfo(prob.Y.dtype).eps)
    # Descent tolerances (relative decrease per sweep): loose while the polar is far above 1,
    # then tight, then down to rounding before concluding that one more column is needed.
    # The last level asks for a relative gradient of 2e-8 (float64) or 1e-5 (float32: the objective
    # itself is only resolved to ~1e-7 there, so the gradient decides).
    final = min(4 * eps, 1e-10)
    schedule = sorted({1e-2, 1e-6, max(1e-12, final), final}, reverse=True)
    loose = schedule[0]
    sweep_obj: list[float] = []
    sweep_time: list[float] = []
    rows: dict[str, list] = {k: [] for k in ("size", "objective", "polar", "iterations", "time")}
    start = time.perf_counter() if start is None else start
    cur, sweeps, converged, cert = loose, 0, False, None
    prev_excess = None  # polar excess at the previous, looser descent of the same size
    pol = None
    ok = True
    memory = Memory()  # L-BFGS pairs, kept while the point is only moved by L-BFGS itself
    out_v = None  # the last _outside run's top right vector (a warm start)
    split_v = None  # the last split test's top right vector off the span of V (a warm start)
    pruning = False  # the last step removed columns (_prune)
    restricted: dict = {}  # restricted_solve's power-iteration vector, between calls
    last_excess = float("inf")  # the polar's excess at the last test
    inside = True  # the last test's excess lies inside the spans of U and V (split tests tell)
    # While the polar is far above 1 (excess above _CLEAR, loose descents: growth steps and the
    # sweeps between them) float64 data are worked on in float32: the steps only need directions
    # (block Krylov asks for 1e-3), and matrix products and eigendecompositions take about half the
    # time. The descents near 1, the tests that decide, and the certificate are float64.
    # (n = 400, ranks 51-129: the same sweeps and sizes on five data seeds, 4-10 % faster.)
    # (Not for data whose scale float32 cannot hold with room for squares and sums.)
    full_prob = prob
    amax = float(prob.Y.abs().max()) if clip_tests and prob.Y.numel() else 0.0
    low = (prob.astype(torch.float32) if clip_tests and prob.Y.dtype == torch.float64
           and min(m, n) > _SMALL and 1e-15 < amax < 1e15 else None)
    while True:
        solved = False  # the point is the restricted solve's (no direction left to prune)
        far = low is not None and cur == loose and last_excess > _CLEAR and not pruning
        prob = low if far else full_prob
        if U.dtype != prob.Y.dtype:
            U, V = U.to(prob.Y.dtype), V.to(prob.Y.dtype)
        if U.shape[1] > 0:
            # In chunks of _CHUNK sweeps: between chunks the polar test and the duality gap may
            # already certify the point, long before the descent's own stopping rule holds.
            # Once the polar is near 1 (the tolerance tightened), preconditioned L-BFGS takes over
            # from ALS with a mask (dense or sparse): it converges in fewer products where ALS
            # slows down.
            polish = masked and method == "als" and cur < loose and not memory.stalled
            chunk = _QN_CHUNK if polish else _CHUNK
            if polish and clip_tests and last_excess < _SHORT_EXCESS:
                chunk = _SHORT_CHUNK  # a clipped dual point may prove before 30 steps
            U, V, _, ok, k = descend(prob, pair, U, V, lam, method="lbfgs" if polish else method, tol=cur,
                                     max_iter=max(min(chunk, max_iter - sweeps), 1), start=start,
                                     objectives=sweep_obj, times=sweep_time, inexact=inexact,
                                     memory=memory)
            sweeps += k
            if polish:
                # The convex problem on the spans of U and V before the next test: near the end
                # the polar's excess lies mostly inside them (the scales of columns with small
                # singular values, which the factorized descents fix slowly; see
                # hdlcore.matrix.subspace). Counted as one sweep.
                # Near the end, more iterations: the excess left inside the spans is then
                # what the certificate waits for.
                # (With split tests only where the last one put the excess inside the spans: at
                # n = 2000, ranks 109 and 151, it lies in the couplings and 8 iterations leave the same
                # sweeps as 16.)
                its = _FINAL_ITERATIONS if last_excess < _FINAL_EXCESS and inside else None
                U, V, solved = restricted_solve(prob, U, V, lam, iterations=its, cache=restricted)
                sweeps += 1
            elif full and U.shape[1] > 1:
                # Without a mask the restricted problem's operator is the identity: one iteration
                # is its exact solution, the thresholded SVD of Qu^T Y Qv (the scales of columns
                # with tiny singular values, which ALS fixes slowly, exact at once).
                U, V, _ = restricted_solve(prob, U, V, lam, iterations=1, cache=restricted)
        R = prob.residual(U, V)
        loss = prob.loss(R)
        f = loss + lam * float(pair._theta(U, V).sum())
        if pruning and U.shape[1] > 1 and sweeps < max_iter:
            # Still pruning: the directions a block added beyond the optimum's rank shrink under
            # the descent and are removed as they reach zero; no polar test until none is left.
            U, V, pruning = _prune(prob, U, V, R, f, lam)
            if pruning:
                continue
        # A loose Lanczos run first: its value is a lower bound, so a clear excess over 1 is
        # reliable; near 1 the value is refined before any decision.
        # Near 1 (a second test at the same size) Lanczos starts from the last top vector: the
        # residual has barely changed. The final certificate always starts at random.
        near = prev_excess is not None
        near_method = "exact" if exact_fits and U.shape[1] > _EXACT_NEAR_SIZE else growth_method
        warm = pol.v if near and pol is not None and pol.kind == "krylov" else None
        # Near 1 the top of the residual's spectrum is a cluster at lam (R V = lam U at a
        # stationary point) and Lanczos on R needs hundreds of steps; for l2/l2 above the exact
        # certificate's size, every test once r > 0 splits R on the spans of U and V instead
        # (_split_polar: small exact blocks and a Lanczos run on the rest, whose top is not
        # clustered).
        # A full SVD costs about four times its values alone: with block growth (which finds its
        # own directions) the exact tests take the values, and the maximizer only if needed.
        # Where the exact test is the near one it is also the first (the Gram matrix's top
        # eigenvalue costs less than a loose Lanczos run on the residual at these sizes).
        method_now = near_method if near or near_method == "exact" else growth_method
        sp = eig = None
        coarse = False
        R_test = R  # the residual the test saw (single precision where coarse)
        if dense_block and U.shape[1] > 0 and not exact_fits:  # where a full SVD is dear
            sp = _split_polar(R, U, V, lam, tol, rng, split_v)
            pol, split_v = sp.polar, sp.v
            inside = sp.a - lam >= 0.5 * (pol.value - lam)
        else:
            # Where the clipped dual point is likely to be estimated after this test (the last
            # excess small), one eigendecomposition of R's Gram matrix serves both.
            # And where the last excess was large (a growth step likely follows), one serves the
            # test and the growth step's directions.
            if clip_tests and method_now == "exact" and (last_excess < _SHORT_EXCESS
                                                         or last_excess > _GROWTH_LIKELY):
                eig = gram_eigh(R, native=True)
            # A float64 residual whose last excess was above 1e-3: the test in single precision
            # (its value decides growth and tightening there, to 1e-5 at worst; no certificate
            # is within reach, nor takes it).
            coarse = (clip_tests and eig is None and method_now == "exact"
                      and R.dtype == torch.float64 and last_excess > _SHORT_EXCESS)
            if coarse:
                R_test = R.float()
            pol = _test(pair, R_test, method_now, _NEAR_TOL if near else 1e-3, rng, warm, dense_block, eig)
        omega = pol.value / lam
        last_excess = omega - 1
        if pol.kind == "krylov" and not near and omega <= 1 + _CLEAR:
            pol = _test(pair, R, near_method, _NEAR_TOL, rng, pol.v, dense_block)
            omega = pol.value / lam
        for key, val in zip(rows, (U.shape[1], f, omega, sweeps, time.perf_counter() - start), strict=True):
            rows[key].append(val)
        c = (U * (R @ V)).sum() if U.shape[1] else torch.zeros(())
        euler_gap = lam * float(pair._theta(U, V).sum()) - float(c)
        # The certificate's other bound, the duality gap at W = R / max(1, omega) (cheap here):
        # once the polar passes, it is often below tol * F before the Euler gap is.
        scale = max(1.0, omega)
        dual_gap = f - dual_value(prob.inner(R), 2 * loss, scale) if dense else float("inf")
        small = tol * max(abs(f), 1e-300)
        # The certificate's two bounds (hdlcore.certify): the polar's, f (omega - 1)_+ + Euler gap,
        # and the duality gap; the certificate is computed only when one of them would prove.
        # For l2/l2 the duality gap can prove with the polar slightly above 1 + tol (an optimum
        # whose last singular value is tiny is then not chased); other pairs ask for the polar.
        polar_bound = f * max(omega - 1, 0.0) + euler_gap
        passed = omega <= 1 + tol
        # A split test with no excess outside the spans at a descent at rounding: certify (the
        # excess inside them, if any, is the split's overestimate or beyond the descent's reach).
        inside_only = sp is not None and sp.d <= lam * (1 + tol)
        near_proof = small < min(polar_bound, dual_gap) <= CLIP_TRY * small
        dual = None
        if clip_tests and pol.kind == "exact" and near_proof and omega > 1:
            # Within reach of the certificate's second dual point (the residual's values above lam
            # clipped on the observed entries: hdlcore.matrix.certificates.clipped_dual): estimated
            # here from the Gram matrices, proven by the certificate below.
            # Its sigma_1 with the rounding allowance of the Gram route: a proof the certificate
            # takes as it is (the bound holds for this W whatever point it came from).
            W, k = clipped_dual(prob, R, lam, eig)
            weig = gram_eigh(W, vectors=False) if k else None
            if weig is not None:
                wtop = weig.top()
                clip_gap = f - dual_value(prob.inner(W), 2 * prob.loss(W), max(1.0, wtop[1] / lam))
                if clip_gap < dual_gap:
                    dual_gap, dual = clip_gap, (W, k, wtop)
        if ((block or passed) and min(polar_bound, dual_gap) <= small
                or (passed or inside_only) and cur <= final):
            top = None
            if solved and pol.kind == "exact" and pol.u is None and not coarse:
                # The restricted solve's factors (zero directions already dropped: nothing to
                # compress) and the test's sigma_1 of this same residual, with its proven bound.
                top = (pol.value, pol.upper)
            elif block and U.shape[1] > 0:
                U, V = _compress(U, V)
            cert = certificate(prob, U, V, lam, pair, tol=tol, method=polar_method, rng=rng,
                               failure_probability=failure_probability, dual=dual, top=top)
            if cert.is_global is True or cert.polar_kind == "lower_bound":
                converged = cert.is_global is True or cert.polar <= 1 + tol
                break
            if cur <= final:  # the growth polar passed, the certificate's did not: stop honestly
                converged = cert.polar <= 1 + tol and cert.is_global is not False
                break
            cert = None
        if sweeps >= max_iter:
            break
        # Grow when the excess is clear, or when a tighter descent left it about unchanged (it
        # is not an artefact of stopping the descent early), or when the descent is at rounding.
        # At a stationary point the residual maps span(V) to span(U) (R V = lam U), so the polar's
        # maximizer of an under-sized point lies outside them; a maximizer inside them means the
        # descent has not converged yet.
        excess = omega - 1
        # (After a restricted solve every direction kept has p^T R q = lam, so _prune, which drops
        # those with p^T R q + sigma |M * p q^T|^2 <= lam, would find none.)
        if block and U.shape[1] > 1 and excess > tol and not solved:
            U, V, pruned = _prune(prob, U, V, R, f, lam)
            if pruned:  # fewer columns, same or lower objective: descend again before deciding
                if masked and excess < _CLEAR and cur == loose:
                    # Near 1 with a mask: the tight descent (L-BFGS and the restricted solve) at
                    # once, instead of loose ALS sweeps and prunes until none is left; the tests
                    # that follow prune what it shrinks (n = 400, rank 98: 108 -> 105 -> 99
                    # columns in one chunk instead of four sweeps, 0.46-0.51 s against 0.58-0.68 s,
                    # interleaved processes; ranks 51 and 129 the same or faster).
                    cur, prev_excess = schedule[1], None
                else:
                    cur, prev_excess, pruning = loose, None, True
                continue
        stable = prev_excess is not None and excess > 0.5 * prev_excess and cur <= schedule[-2]
        if sp is not None:  # a split test says where the excess is; only the outside one grows
            new_direction = sp.d >= lam + 0.5 * (pol.value - lam)
        elif excess <= tol or excess > _CLEAR or stable or cur <= final:
            new_direction = False  # not needed for the decision below
        elif pol.u is None:  # values only: most of the excess lies outside the spans of U and V
            new_direction, out_v = _outside(R_test, U.to(R_test.dtype), V.to(R_test.dtype),
                                            lam + 0.5 * (pol.value - lam), rng, out_v)
        else:
            new_direction = _overlap(U, V, pol) < 0.5
        growable = sp.d > lam * (1 + tol) if sp is not None else excess > tol
        if growable and (excess > _CLEAR or new_direction or stable or cur <= final):
            if U.shape[1] >= max_size:
                break
            tiny = sp.d <= lam * (1 + _TINY * tol) if sp is not None else block and excess <= _TINY * tol
            if tiny:
                # A tiny excess at a converged point: one more direction of the optimum with a small
                # singular value. Its pair must be accurate (a rough one is pruned right away): the
                # split's top pair of the rest (Ritz residual 1e-7 near 1), or the polar's maximizer.
                if sp is not None:
                    p, q = sp.u, sp.v
                else:
                    if pol.u is None:  # values only: the exact maximizer (near tests are exact or tight)
                        pol = pair._polar(R, method=near_method, tol=1e-9, rng=rng)
                    p, q = pol.u.to(U), pol.v.to(U)
                U, V = _append_block(prob, U, V, R, p[:, None], q[:, None], lam)
                cur, prev_excess = schedule[1], None  # the rest is already converged
                continue
            if block:
                # Every direction above lam (at most tripling the size, and within max_size); with a
                # split test, of the rest D (new directions only).
                # With full data every direction above lam at once (from X = 0 with exact pairs this
                # is the singular value thresholding of Y, the optimum itself).
                room = max_size - U.shape[1]
                if not full:
                    room = min(max(_BLOCK_MIN, _BLOCK_GROWTH * U.shape[1]), room)
                top = pol.value if sp is None else sp.d
                above = lam if full else lam + _BLOCK_SHARE * (top - lam)
                # Of the rest D in single precision: directions, not certificates, and half the
                # memory traffic of Lanczos's matrix-vector products. Without a mask the directions
                # are the step itself (a thresholding: no descent refines them fast, since the
                # subspace iteration that ALS is converges at the rate of the residual's gap at
                # lam), so they are exact or tight, in the data's precision. With a mask, dense R in
                # single precision too (the Gram route then takes half the time).
                if sp is None:
                    G = R_test.float() if dense and not full else R
                else:
                    G = sp.D if full else sp.D.float()
                # A full SVD where it is cheap and many directions are asked for (Lanczos's cost
                # grows with their number: at 400 x 400 the SVD wins above about 16).
                exact = dense and (growth_method == "exact" or exact_fits and room > _EXACT_ROOM
                                   or full and m * n * min(m, n) <= _FULL_SVD_LIMIT)
                got = None if eig is None else eig.triplets(max(above, lam * (1 + tol)), room, R.dtype)
                _, P, Q = got if got is not None else top_triplets(
                    G, above=max(above, lam * (1 + tol)), k_max=room, rng=rng, exact=exact,
                    tol=_FULL_TRIPLET_TOL if full else 1e-3)
                P, Q = P.to(R.dtype), Q.to(R.dtype)
                if P.shape[1] == 0:  # Lanczos missed what the polar saw: its top pair
                    if sp is not None:
                        P, Q = sp.u[:, None], sp.v[:, None]
                    else:
                        if pol.u is None:
                            pol = pair._polar(R, method="exact", rng=rng)
                        P, Q = pol.u.to(U)[:, None], pol.v.to(U)[:, None]
                U, V = _append_block(prob, U, V, R, P, Q, lam)
            else:
                U, V = _append(prob, pair, U, V, R, pol, lam)
            # A block added near the end (the polar within 1 % of 1) is refined at the tight level at
            # once: a loose sweep and a test in between only repeat the test just made.
            cur, prev_excess = schedule[1] if block and excess < _GROWN_NEAR else loose, None
        elif ok:  # the descent met its tolerance: tighten it
            cur, prev_excess = next(c for c in schedule if c < cur), excess
    prob = full_prob
    U, V = U.to(prob.Y.dtype), V.to(prob.Y.dtype)
    if cert is None:
        cert = certificate(prob, U, V, lam, pair, tol=tol, method=polar_method, rng=rng,
                           failure_probability=failure_probability)
    if not converged:
        warn_not_converged(func, f"polar {cert.polar:.8g} > 1 + tol ({tol:g}) at size {U.shape[1]} "
                           f"after {sweeps} sweeps (max_size={max_size}, max_iter={max_iter})")
    U, V = _signs(*rebalance(pair, U, V))
    hist = {k: np.asarray(v) for k, v in rows.items()}
    hist["sweep_objective"] = np.asarray(sweep_obj)
    hist["sweep_time"] = np.asarray(sweep_time)
    res = MatrixResult(U=prob.back(U), V=prob.back(V), objective=_objective(prob, pair, U, V, lam),
                       history=hist, converged=converged, certificate=cert, n_iter=sweeps, lam=lam,
                       norms=pair.name, method=f"grow ({method})", x_max_entries=prob.x_max_entries)
    return res, U, V


def _signs(U, V):
    """Each column pair ``(u_i, v_i)`` with the sign that makes u_i's largest entry (in absolute
    value) positive: ``U V^T`` unchanged, and the factors do not depend on the arbitrary signs of
    the singular vectors that the growth steps and restricted solves take."""
    import torch

    if U.shape[1] == 0:
        return U, V
    idx = U.abs().argmax(0)  # (r,)
    sign = torch.sign(U.gather(0, idx[None, :]))  # (1, r)
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return U * sign, V * sign


def _svd_factors(U, V):
    """The thin SVD of ``X = U V^T`` from the factors: ``(P, S, Q)``, O((m + n) r^2)."""
    import torch

    Qu, Ru = torch.linalg.qr(U)  # (m, ku), (ku, r)
    Qv, Rv = torch.linalg.qr(V)  # (n, kv), (kv, r)
    W, S, Zh = torch.linalg.svd(Ru @ Rv.T, full_matrices=False)  # (ku, kv) = W diag(S) Zh
    return Qu @ W, S, Qv @ Zh.T  # (m, k), (k,), (n, k)


def _compress(U, V):
    """Balanced SVD factors of ``X = U V^T`` without its zero directions (X unchanged, the
    objective not increased): a block step may add a direction already in the span."""
    import torch

    P, S, Q = _svd_factors(U, V)
    if S.numel() == 0:
        return U, V
    keep = S > float(S.max()) * float(torch.finfo(S.dtype).eps) * max(P.shape[0], Q.shape[0])
    root = S[keep].sqrt()
    return P[:, keep] * root, Q[:, keep] * root


def _prune(prob, U, V, R, f, lam):
    """Rotate ``(U, V)`` to the balanced SVD factors of ``X = U V^T`` and drop the directions whose
    exact line search over their own scale is zero; kept only if the objective does not increase.

    The rotation never increases the objective (:math:`\\lVert X\\rVert_* \\le \\sum_i \\lVert u_i\\rVert
    \\lVert v_i\\rVert`). A direction ``(p, q)`` of value :math:`\\sigma` is best removed when
    :math:`\\langle R, pq^\\top\\rangle + \\sigma\\lVert M\\odot pq^\\top\\rVert_F^2 \\le \\lambda`. A block
    growth step can add more columns than the optimum needs; ALS shrinks such columns only
    slowly, so they are removed here. Returns ``(U, V, pruned)``.
    """

    import torch

    P, S, Q = _svd_factors(U, V)
    a = ((R @ Q) * P).sum(0)  # (r,): p_i^T R q_i
    if prob.Mf is None:
        mpq = torch.ones_like(S)
    else:  # (r,): |M * p_i q_i^T|_F^2 = sum_j (M^T (p_i^2))_j q_ji^2, dense or sparse M
        mpq = ((prob.Mf.T @ (P * P)) * (Q * Q)).sum(0)  # (n, m) @ (m, r) -> (n, r) -> (r,)
    drop = a + S * mpq <= lam
    if not bool(drop.any()) or bool(drop.all()):
        return U, V, False
    keep = ~drop
    root = S[keep].sqrt()
    Un, Vn = P[:, keep] * root, Q[:, keep] * root
    if prob.loss(prob.residual(Un, Vn)) + lam * float(S[keep].sum()) > f:
        return U, V, False
    return Un, Vn, True


def _append_block(prob, U, V, R, P, Q, lam):
    """Append the directions ``(p_i, q_i)`` (unit columns of P, Q) at the exact line-search scale.

    With :math:`s_i = p_i^\\top R q_i`, weights :math:`w_i = (s_i - \\lambda)_+` and
    :math:`D = \\sum_i w_i p_i q_i^\\top`, the new columns :math:`\\sqrt{t w_i}\\,(p_i, q_i)` change
    the objective by :math:`-t\\sum_i w_i^2 + \\tfrac{t^2}{2}\\lVert M\\odot D\\rVert_F^2` (each column
    adds :math:`\\theta = t w_i`), minimized at :math:`t = \\sum_i w_i^2/\\lVert M\\odot D\\rVert_F^2`:
    a decrease of :math:`(\\sum_i w_i^2)^2 / (2\\lVert M\\odot D\\rVert_F^2) > 0`. With full data and
    exact singular pairs, :math:`t = 1`: the columns of the residual's singular value thresholding.
    """

    import torch

    s = ((R @ Q) * P).sum(0)  # (m, n) @ (n, k) -> (m, k) -> (k,): p_i^T R q_i
    w = (s - lam).clamp_min(0)
    keep = w > 0
    P, Q, w = P[:, keep], Q[:, keep], w[keep]
    if w.numel() == 0:
        return U, V
    t = float((w * w).sum()) / max(prob.sampled_sq(P * w, Q), 1e-300)  # |M * D|_F^2
    root = (t * w).sqrt()
    return torch.cat([U, P * root], 1), torch.cat([V, Q * root], 1)


@dataclass(frozen=True)
class _Split:
    """A split polar test (:func:`_split_polar`)."""

    polar: Any  # PolarResult: the bound from the blocks' norms
    a: float  # sigma_1(A), A = Qu^T R Qv: the spans' own block
    d: float  # sigma_1(D), D = (I - P_U) R (I - P_V): what a new direction would add
    u: Any  # D's top left and right vectors (Ritz)
    v: Any
    D: Any  # D itself, (m, n): the growth steps take its top triplets


def _split_polar(R, U, V, lam, tol, rng, v0) -> _Split:
    """sigma_1(R) near a stationary point, from the blocks of R on the spans of U and V.

    With orthonormal bases ``Qu``, ``Qv`` of the spans, ``R`` has the blocks
    ``A = Qu^T R Qv`` (r x r), ``B = Qu^T R (I - P_V)``, ``C = (I - P_U) R Qv`` and
    ``D = (I - P_U) R (I - P_V)``, and ``sigma_1(R) <= |[[|A|, |B|], [|C|, |D|]]|_2``
    (the 2 x 2 matrix of the blocks' norms). At a stationary
    point ``B = C = 0`` and ``A``'s values are ``lam`` (``R V = lam U``): the cluster at the top of
    R's spectrum, on which Lanczos spends hundreds of steps, sits in the small block ``A`` (exact
    here, as are ``B`` and ``C``), and ``D``'s top, which Lanczos finds in a few dozen steps, is
    what a new column would add. ``sigma_1(D)`` is a Ritz value (a lower bound; Ritz residual
    1e-7 where it decides): the value is evidence for the loop's decisions, never a certificate
    (the certificate's own split, ``hdlcore.matrix.spectral.split_top``, bounds ``|D|`` by a
    probabilistic run from a random start). ``tol``: grow's; ``v0``: a warm start for D's
    Lanczos run.
    """
    import torch

    from .norms import PolarResult
    from .spectral import top_singular

    Qu, Qv, A, B, C, D = span_blocks(R, U, V)
    a, b, c = (float(torch.linalg.svdvals(X)[0]) for X in (A, B, C))
    warm = None if v0 is None else v0 - Qv @ (Qv.T @ v0)
    # The loose run in single precision (half the memory traffic); the refinement in D's own.
    d = top_singular(D.float(), method="krylov", tol=1e-3, rng=rng, v0=warm)
    # A Ritz value lies within its residual of a singular value: refine where D's top could be
    # near lam, the threshold of every decision it enters (well above, the loose value decides),
    # and only as far as the decisions need: to a residual of a quarter of the value's distance
    # to lam (1 + tol), which separates "no new column" from "a new column" (D's top well below
    # lam, the usual case near the end, needs only a few float64 steps), and to _NEAR_TOL where the
    # value lies between that and lam (1 + _TINY tol): a tiny excess appends D's top pair itself.
    thr = lam * (1 + tol)
    if lam - 2 * d.residual <= d.value <= lam * (1 + _TINY * tol) + 2 * d.residual:
        for _ in range(3):
            near = thr < d.value <= lam * (1 + _TINY * tol)
            want = _NEAR_TOL if near else max(_NEAR_TOL, 0.25 * abs(d.value - thr) / d.value)
            if d.residual <= want * d.value and d.u.dtype == D.dtype:
                break
            d = top_singular(D, method="krylov", tol=want, rng=rng, v0=d.v.to(D.dtype))
    value = block_norm(a, b, c, d.value)
    du, dv = d.u.to(D.dtype), d.v.to(D.dtype)  # (float32 when not refined)
    u, v = (du, dv) if d.value >= a else (None, None)
    detail = (f"split on span(U), span(V): |A| = {a:.10g}, |B| = {b:.3g}, |C| = {c:.3g}, "
              f"|D| >= {d.value:.10g} (Lanczos, {d.steps} steps)")
    return _Split(PolarResult(value, u, v, "split", value, detail), a, d.value, du, dv, D)


def _test(pair, R, method, tol, rng, v0, values_only, eig=None):
    """The polar of ``R`` between descents: with ``values_only`` (block growth finds its own
    directions) an exact test takes sigma_1 alone, from the Gram matrix where that applies
    (``hdlcore.matrix.spectral.gram_eigh``, or ``eig``, its result for R: evidence, as every
    test here; the final certificate computes its own)."""
    from .norms import PolarResult

    if values_only and method == "exact":
        eig = gram_eigh(R, vectors=False, native=True) if eig is None else eig
        if eig is not None:
            value, upper = eig.top()  # with its rounding allowance: the certificate may take it
            detail = "sigma_1(R) by the Gram matrix's top eigenvalue"
            return PolarResult(value, None, None, "exact", upper, detail)
    return pair._polar(R, method=method, tol=tol, rng=rng, v0=v0,
                       maximizer=not (values_only and method == "exact"))


def _overlap(U, V, pol) -> float:
    """Mean squared cosine between the polar maximizer and the spans of U and V (0 when r = 0)."""
    import torch

    if U.shape[1] == 0:
        return 0.0
    out = 0.0
    for A, x in ((U, pol.u), (V, pol.v)):
        Q = torch.linalg.qr(A)[0]  # (m, r) orthonormal basis of span(A)
        x = x.to(A)
        out += float(torch.linalg.vector_norm(Q.T @ x) ** 2) / max(float(x @ x), 1e-300)
    return out / 2


def _outside(R, U, V, threshold, rng, v0=None):
    """Whether the largest singular value of ``R`` restricted to the orthogonal complements of the
    spans of ``U`` and ``V``, ``sigma_1((I - P_U) R (I - P_V))``, reaches ``threshold``; returns
    ``(decision, top right vector)``.

    By Lanczos on that block (its top is not clustered, unlike R's at a stationary point), from the
    last call's vector, refined until the Ritz value lies clearly on one side of ``threshold``
    (evidence for the loop's decision, as every test here)."""
    from .spectral import top_singular

    D = span_blocks(R, U, V)[-1]
    if not min(D.shape):
        return False, None
    warm = None if v0 is None or v0.shape[0] != D.shape[1] else v0
    d = top_singular(D, method="krylov", tol=1e-2, rng=rng, v0=warm)
    for _ in range(3):
        if d.value >= threshold or d.value + d.residual < threshold:
            break
        d = top_singular(D, method="krylov", tol=max(_NEAR_TOL, 0.25 * abs(threshold - d.value) / d.value),
                         rng=rng, v0=d.v)
    return d.value >= threshold, d.v


def _append(prob, pair, U, V, R, pol, lam):
    """Append the polar maximizer's column at the exact line-search scale (:func:`hdlcore.add_column`)."""
    U, V, *_ = append_column(prob, U, V, R, pol.u, pol.v, lam)
    return U, V
