"""Certificates of global optimality for matrix factorization: the polar test, as a function of a point.

For :math:`F(U, V) = \\tfrac12\\lVert M\\odot(Y - UV^\\top)\\rVert_F^2 + \\lambda\\sum_i\\theta(u_i, v_i)`
and its convex neighbour
:math:`\\min_X \\tfrac12\\lVert M\\odot(Y - X)\\rVert_F^2 + \\lambda\\Omega_\\theta(X)`
with optimal value :math:`F^\\star`, write :math:`R = M\\odot(Y - UV^\\top)`
and :math:`Z = -\\nabla\\ell(UV^\\top)/\\lambda = R/\\lambda`. For *any* point :math:`(U, V)`,

.. math::

    F(U, V) - F^\\star \\;\\le\\; \\lambda\\,\\Omega_\\theta(X^\\star)\\,(\\Omega_\\theta^\\circ(Z) - 1)_+
    \\;+\\; \\lambda\\Big(\\sum_i \\theta(u_i, v_i) - \\langle Z, UV^\\top\\rangle\\Big),

and :math:`\\lambda\\Omega_\\theta(X^\\star) \\le F^\\star \\le F(U, V)`. The second term (the *Euler gap*)
vanishes at every first-order stationary point, since both the model and the regularizer are
positively homogeneous of degree 2. So a stationary point with polar at most 1 is a global
minimizer of the factorized problem, and :math:`UV^\\top` solves the convex one.

Proof (convexity of the loss, then :math:`\\langle Z, X^\\star\\rangle\\le\\Omega^\\circ(Z)\\Omega(X^\\star)`
and :math:`\\Omega(UV^\\top)\\le\\sum_i\\theta(u_i,v_i)`):
:math:`F(U,V) - F^\\star \\le \\lambda\\langle Z, X^\\star - X\\rangle
+ \\lambda\\Theta - \\lambda\\Omega(X^\\star)`.

:func:`certify` evaluates this at a point, with the polar computed exactly when it can be, and
says what it proves: :attr:`Certificate.is_global` is True only when the **proven** bound (with a
proven upper bound on the polar) is at most ``tol * F``. Above the size where a full SVD is cheap,
"proven" means proven with a stated probability over a random start (``polar_kind="probabilistic"``,
``failure_probability``); Lanczos evidence without that bound (``"krylov"``) never sets ``is_global``.
For l2/l2 with dense data the probabilistic bound first splits R on the spans of U and V
(``hdlcore.matrix.spectral.split_top``: the small blocks exactly, the rest by Lanczos), which
decides in fewer steps near an optimum, and otherwise runs Lanczos on R itself.

Used by Chapter 3 (matrix factorization).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import Array, is_tensor
from .._runtime import one_thread_when_small
from .._validation import check_array, check_choice, check_rng, check_scalar
from . import sparse
from .distributed import collective
from .norms import PolarResult, norm_pair
from .problem import factors, prepare, tolerance
from .spectral import _GRAM_DETAIL, METHODS, resolve_method, split_top

__all__ = ["Certificate", "polar", "certify"]


@dataclass(frozen=True)
class Certificate:
    """What the polar test proves at one point :math:`(U, V)`.

    Attributes
    ----------
    polar : float
        :math:`\\Omega_\\theta^\\circ(Z)` as computed (see ``polar_kind``).
    polar_kind : str
        ``"exact"`` (closed form or full SVD), ``"probabilistic"`` (Lanczos from a uniformly random
        start: ``polar`` is the top Ritz value, a lower bound, and ``polar_upper`` holds with
        probability at least ``1 - failure_probability``), ``"krylov"`` (converged Lanczos: a
        lower bound on :math:`\\sigma_1`, evidence rather than proof) or ``"lower_bound"`` (a
        heuristic for a pair whose polar is NP-hard).
    polar_upper : float
        An upper bound on the polar: proven (the polar itself when exact;
        :math:`\\lVert R\\rVert_F/\\lambda` after krylov; a relaxation's singular value for the hard
        pairs), or with probability at least ``1 - failure_probability`` when probabilistic.
    objective : float
        :math:`F(U, V)`.
    bound : float
        Proven (with probability at least ``1 - failure_probability``):
        :math:`F(U, V) - F^\\star \\le` ``bound``, computed with ``polar_upper``: the
        smaller of the polar bound above and the duality gap :math:`F(U, V) - D(R/\\max(1, \\Omega^\\circ))`,
        :math:`D(W) = \\langle W, M\\odot Y\\rangle - \\tfrac12\\lVert W\\rVert_F^2`. For l2/l2
        on dense data with an exact polar, when these are within ``CLIP_TRY`` (30) times
        ``tol * objective``, also the gap at a second dual point, ``R`` with its singular values
        above ``lam`` clipped on the observed entries and scaled by its own exact
        :math:`\\sigma_1` (``hdlcore.matrix.certificates.clipped_dual``; ``basis`` says so when
        it is the smaller): near grow's optima 10-30 times smaller.
    bound_estimate : float
        The same bound computed with ``polar`` (proven only when ``polar_kind == "exact"``).
    euler_gap : float
        :math:`\\lambda(\\sum_i\\theta_i - \\langle Z, UV^\\top\\rangle)`, zero at stationary points.
    euler_residual : float
        :math:`\\max_i |u_i^\\top Z v_i - \\theta(u_i, v_i)|`, the first-order residual along
        each column's scale.
    is_global : bool or None
        True when proven: ``bound <= tol * objective``, a global minimizer to relative accuracy
        ``tol`` (with probability at least ``1 - failure_probability`` over the random start).
        False when disproven: the polar's maximizer, appended as one more column at its best
        scale, changes the objective by ``descent < -tol * objective``. None when neither is
        proven (``proves`` says what is known).
    is_global_estimate : bool
        ``bound_estimate <= tol * objective`` (equals ``is_global`` when the polar is exact).
    descent : float
        A proven change of the objective available from this point (as in
        :class:`~hdlcore.NetworkCertificate`): appending the maximizer :math:`(u, v)`
        (:math:`\\theta(u, v) = 1`, attaining ``polar``) at its best scale changes the objective by at
        most ``descent`` :math:`= -` :math:`\\tfrac12\\lambda^2(\\omega - 1)_+^2`, since
        :math:`\\lVert M\\odot uv^\\top\\rVert_F \\le \\lVert u\\rVert_2\\lVert v\\rVert_2 \\le 1`.
    tol : float
    size : int
        Number of columns ``r``.
    norms : str
        The norm pair, e.g. ``"l2/l2"``.
    basis : str
        How the polar was obtained, in words.
    failure_probability : float
        The probability, over the random Lanczos start, that ``polar_upper`` (hence ``bound`` and
        a True ``is_global``) is wrong: 0 unless ``polar_kind == "probabilistic"``.
    """

    polar: float
    polar_kind: str
    polar_upper: float
    objective: float
    bound: float
    bound_estimate: float
    euler_gap: float
    euler_residual: float
    is_global: bool | None
    is_global_estimate: bool
    descent: float
    tol: float
    size: int
    norms: str
    basis: str
    failure_probability: float = 0.0

    @property
    def polar_accuracy(self) -> float:
        """Relative width ``polar_upper / polar - 1`` of the bracket on the polar (inf at polar 0)."""
        return self.polar_upper / self.polar - 1 if self.polar > 0 else float("inf")

    @property
    def lower(self) -> float:
        """A proven lower bound on :math:`F^\\star`: ``objective - bound``."""
        return self.objective - self.bound

    @property
    def proves(self) -> str:
        """One sentence: what this certificate proves, and what it does not."""
        scale = max(abs(self.objective), 1e-300)
        rel = self.bound / scale
        chance = (f" with probability >= 1 - {self.failure_probability:.3g} over the random start"
                  if self.failure_probability > 0 else "")
        if self.is_global:
            within = (f" (polar <= {self.polar_upper:.8g}, Lanczos accuracy {self.polar_accuracy:.1e})"
                      if chance else "")
            return (f"proven{chance}: F(U, V) - F* <= {self.bound:.3g} ({rel:.1e} relative){within}, "
                    f"so (U, V) is a global minimizer to relative accuracy {self.tol:g} and UV^T solves "
                    f"the convex problem to the same accuracy")
        if self.is_global_estimate:
            return (f"evidence, not proof: with the {self.polar_kind} polar {self.polar:.8g} the bound is "
                    f"{self.bound_estimate:.3g}; proven{chance} only F(U, V) - F* <= {self.bound:.3g}")
        if self.is_global is False:
            return (f"proven not optimal: polar {self.polar:.8g} ({self.polar_kind}) > 1, and one more "
                    f"column lowers the objective by at least {-self.descent:.3g} "
                    f"({-self.descent / scale:.1e} relative); proven F(U, V) - F* <= {self.bound:.3g}")
        return (f"not certified: polar {self.polar:.8g} ({self.polar_kind}) is near 1 + {self.tol:g} "
                f"or the point is not stationary; proven{chance} F(U, V) - F* <= {self.bound:.3g}")

    def __str__(self) -> str:
        how = (f"with probability >= 1 - {self.failure_probability:.3g}" if self.failure_probability > 0
               else "proven")
        return (f"Certificate ({self.norms}, size {self.size}): polar {self.polar:.10g} "
                f"[{self.polar_kind}], {how} polar <= {self.polar_upper:.10g}\n"
                f"  objective {self.objective:.12g}, Euler residual {self.euler_residual:.2e}\n"
                f"  is_global={self.is_global} (tol {self.tol:g}): {self.proves}\n"
                f"  polar computed by: {self.basis}")


@one_thread_when_small
def polar(Z: Array, norms: Any = ("l2", "l2"), *, method: str = "auto", tol: float = 1e-10,
          starts: int = 8, rng: np.random.Generator | int | None = None,
          failure_probability: float = 1e-9) -> PolarResult:
    """The polar :math:`\\Omega_\\theta^\\circ(Z) = \\sup_{\\theta(u, v) \\le 1} u^\\top Z v` and a maximizer.

    Parameters
    ----------
    Z : (m, n) array or tensor, or a sparse matrix (zeros off its stored entries)
        Usually :math:`-\\nabla\\ell(UV^\\top)/\\lambda`.
    norms : pair of str
        The column norms of :math:`\\theta(u, v) = \\lVert u\\rVert_a\\lVert v\\rVert_b`, each of
        ``"l1"``, ``"l2"``, ``"l1+"``, ``"l2+"`` (see :mod:`hdlcore.matrix.norms`).
    method : {"auto", "exact", "probabilistic", "krylov"}
        How :math:`\\sigma_1` is computed for l2/l2 (see :func:`hdlcore.sigma_max`; "auto": a
        full SVD up to 1000 x 1000, the probabilistic bound above).
    tol : float
        Lanczos tolerance, relative to the value: on the Ritz residual (krylov), on the width of
        the bracket (probabilistic).
    starts : int
        Starting points of the alternating heuristic for pairs without a closed form.
    rng : numpy Generator, int or None
        Lanczos start vector and heuristic starts.
    failure_probability : float
        ``delta`` of the probabilistic bound.

    Returns
    -------
    PolarResult
        ``value``, maximizer ``u``, ``v`` (``Z``'s array type, ``theta(u, v) = 1``), ``kind``
        (``"exact"``, ``"probabilistic"``, ``"krylov"``, ``"lower_bound"``), ``upper`` (proven, or
        with probability ``1 - failure_probability``), ``detail`` and ``failure_probability``.

    Notes
    -----
    .. math:: \\Omega_\\theta^\\circ(Z)
       = \\sup_{\\lVert u\\rVert_a\\le1,\\ \\lVert v\\rVert_b\\le 1} u^\\top Z v
       = \\max_{\\lVert v\\rVert_b\\le 1}\\lVert Zv\\rVert_{a^*}.

    l2/l2: :math:`\\sigma_1(Z)`; l1/l2: the largest row norm; l2/l1: the largest column norm;
    l1/l1: :math:`\\max_{ij}|Z_{ij}|`; non-negative sides use positive parts. Used in Chapter 3.

    References
    ----------
    B. D. Haeffele and R. Vidal, Structured low-rank matrix factorization: global optimality,
    algorithms, and applications, IEEE TPAMI 42(6), 2020 (arXiv:1708.07850).

    Examples
    --------
    >>> import numpy as np
    >>> Z = np.array([[2.0, 0.0], [0.0, -3.0]])
    >>> round(polar(Z).value, 12), polar(Z, ("l1", "l1")).value
    (3.0, 3.0)
    """
    func = "polar"
    pair = norm_pair(norms, func)
    if sparse.is_sparse(Z):  # zeros off the stored entries; never made dense unless small
        Zs, back = sparse.matrix(Z, "Z", func)
    else:
        Z = check_array(Z, "Z", func, ndim=2)
    method = check_choice(method, "method", func, METHODS)
    tol = check_scalar(tol, "tol", func, gt=0, lt=1)
    starts = check_scalar(starts, "starts", func, kind="int", ge=1)
    rng = check_rng(rng, "rng", func)
    failure_probability = check_scalar(failure_probability, "failure_probability", func, gt=0, lt=1)
    if sparse.is_sparse(Z):
        res = pair._polar(Zs, method=method, tol=tol, starts=starts, rng=rng,
                          failure_probability=failure_probability)
        return PolarResult(res.value, back(res.u), back(res.v), res.kind, res.upper, res.detail,
                           res.failure_probability)
    return pair.polar(Z, method=method, tol=tol, starts=starts, rng=rng,
                      failure_probability=failure_probability)


@collective
@one_thread_when_small
def certify(
    Y: Array,
    U: Array,
    V: Array,
    lam: float,
    mask: Array | None = None,
    norms: Any = ("l2", "l2"),
    *,
    tol: float | None = None,
    method: str = "auto",
    lanczos_tol: float = 1e-10,
    rng: np.random.Generator | int | None = None,
    failure_probability: float = 1e-9,
    group: Any = None,
) -> Certificate:
    """Certify a point :math:`(U, V)` of any method: polar test, Euler gap, suboptimality bound.

    Parameters
    ----------
    Y : (m, n) array or tensor, or a sparse matrix
        Data (entries where ``mask`` is False are ignored, but must be finite). A sparse matrix
        lists the observed entries (``mask`` must be None; see :mod:`hdlcore.matrix.sparse`); with
        ``group``, this process's share of them.
    U, V : (m, r) and (n, r) arrays or tensors
        The factors, :math:`X = UV^\\top` (``r = 0`` is allowed: the point ``X = 0``).
    lam : float
        :math:`\\lambda > 0`.
    mask : (m, n) bool array, optional
        True where ``Y`` is observed.
    norms : pair of str
        Column norms of :math:`\\theta` (default l2/l2, whose :math:`\\Omega` is the nuclear norm).
    tol : float, optional
        Relative accuracy for ``is_global`` (default 1e-6 for float64 data, 1e-4 for float32).
    method : {"auto", "exact", "probabilistic", "krylov"}
        How :math:`\\sigma_1(R)` is computed for l2/l2: "auto" is a full SVD up to 1000 x 1000
        (:data:`hdlcore.matrix.spectral.EXACT_SIZE_LIMIT`) and "probabilistic" above, which runs
        Lanczos from a uniformly random start until its upper bound decides ``is_global`` (or
        refutes it); "krylov" is evidence only.
    lanczos_tol : float
        Lanczos tolerance (relative): Ritz residual (krylov), bracket width (probabilistic, when the
        test is not decided first).
    rng : numpy Generator, int or None
        Lanczos start vector.
    failure_probability : float
        ``delta``: a probabilistic certificate's claims fail with probability at most this, over
        the random start (default 1e-9).
    group : torch.distributed process group, optional
        Certify together with the other processes of the group (see
        :mod:`hdlcore.matrix.distributed`); every process gets the same certificate.

    Returns
    -------
    Certificate
        Everything is evaluated in float64, whatever the input dtype.

    Notes
    -----
    Used in Chapter 3 (and by Chapter 5 on the dropout optimum). With
    :math:`R = M\\odot(Y - UV^\\top)`, :math:`Z = R/\\lambda`,
    :math:`\\Theta = \\sum_i\\theta(u_i, v_i)`:

    .. math::

        F(U, V) - F^\\star \\le F(U, V)\\,(\\Omega^\\circ_\\theta(Z) - 1)_+
        + \\lambda\\Theta - \\langle R, UV^\\top\\rangle .

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in tensor factorization, deep learning, and
    beyond, arXiv:1506.07540, 2015; Structured low-rank matrix factorization, IEEE TPAMI 2020.

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.diag([5.0, 3.0, 1.0])
    >>> U = V = np.array([[2.0], [0.0], [0.0]])  # sqrt(5 - 2) would be optimal; this is not
    >>> certify(Y, U, V, lam=2.0).is_global
    False
    >>> s = np.sqrt([3.0, 1.0])  # X* = diag(5 - 2, 3 - 2, 0): singular value thresholding
    >>> U = V = np.array([[s[0], 0.0], [0.0, s[1]], [0.0, 0.0]])
    >>> cert = certify(Y, U, V, lam=2.0)
    >>> cert.is_global, round(cert.polar, 12)
    (True, 1.0)
    """
    func = "certify"
    prob, lam = prepare(Y, mask, lam, func, group)
    pair = norm_pair(norms, func)
    U, V = factors(prob, U, V, func, pair)
    tol = tolerance(tol, prob, func, 1e-6, 1e-4)
    method = check_choice(method, "method", func, METHODS)
    lanczos_tol = check_scalar(lanczos_tol, "lanczos_tol", func, gt=0, lt=1)
    rng = check_rng(rng, "rng", func)
    failure_probability = check_scalar(failure_probability, "failure_probability", func, gt=0, lt=1)
    rng = prob.agree(func, rng, lam=lam, norms=pair.name, U=U, V=V, tol=tol, method=method,
                     lanczos_tol=lanczos_tol, failure_probability=failure_probability)
    return certificate(prob, U, V, lam, pair, tol=tol, method=method, lanczos_tol=lanczos_tol, rng=rng,
                       failure_probability=failure_probability)


def certificate(prob, U, V, lam, pair, *, tol, method="auto", lanczos_tol=1e-10, rng=None,
                R=None, failure_probability=1e-9, dual=None, top=None) -> Certificate:
    """Internal (trusted tensors): the certificate in float64. ``dual``: ``(W, k, (sigma_1(W),
    upper bound))`` from :func:`clipped_dual` and ``hdlcore.matrix.spectral.GramEigh.top``,
    already computed by the caller (:func:`hdlcore.grow`'s estimate, on the observed entries), used
    instead of computing them again: the bound holds for any such W, whatever point it came from.
    ``top``: ``(sigma_1(R), upper bound)`` of this very residual from
    ``hdlcore.matrix.spectral.GramEigh.top`` (the caller's test on the same factors), used
    where the method is exact."""
    import torch

    f64 = torch.float64
    prob = prob.astype(f64)  # dense, sparse or distributed: the same interface
    U64, V64 = U.to(f64), V.to(f64)
    R = prob.residual(U64, V64)  # M * (Y - U V^T)
    loss = prob.loss(R)
    theta = pair._theta(U64, V64)  # (r,)
    Theta = float(theta.sum())
    objective = loss + lam * Theta
    c = (U64 * (R @ V64)).sum(0) if U64.shape[1] else torch.zeros(0, dtype=f64)  # u_i^T R v_i
    euler_gap = lam * Theta - float(c.sum())
    euler_residual = float((c / lam - theta).abs().max()) if c.numel() else 0.0
    rng = rng if rng is not None else np.random.default_rng()
    # Weak duality: W = R / max(1, polar) is dual feasible (Omega°(W) <= lam), so
    # F* >= D(W) = <W, M*Y> - |W|^2 / 2. Both bounds below are valid; the smaller is kept.
    RY = prob.inner(R)
    R2 = 2 * loss
    scale = max(abs(objective), np.finfo(np.float64).tiny)
    # The largest polar at which the bound would prove: a probabilistic Lanczos run stops as
    # soon as its upper bound is below it (proven) or its Ritz value above it (refuted).
    p_max = _polar_threshold(objective, euler_gap, RY, R2, tol * scale)
    threshold = lam * max(p_max, 0.0)
    pol = None
    if (pair.name == "l2/l2" and is_tensor(R) and 0 < U64.shape[1] <= min(R.shape) // 4
            and resolve_method(method, R.shape) == "probabilistic"):
        # Near a stationary point the top of R's spectrum is a cluster at lam on the spans of U and
        # V: split R there (small blocks exactly, the rest by the probabilistic run), which needs
        # fewer Lanczos steps; used when it decides, else the run on R itself.
        s = split_top(R, U64, V64, threshold=threshold, delta=failure_probability, tol=lanczos_tol,
                      rng=rng)
        if s is not None and (s.upper <= threshold or s.value > threshold):
            pol = PolarResult(s.value, None, None, s.kind, s.upper, "sigma_1(Z), " + s.basis,
                              s.failure_probability)
    exact = resolve_method(method, R.shape) == "exact"
    if pol is None and top is not None and pair.name == "l2/l2" and exact:
        pol = PolarResult(top[0], None, None, "exact", top[1], "sigma_1(Z), " + _GRAM_DETAIL)
    if pol is None:
        pol = pair._polar(R, method=method, tol=lanczos_tol, rng=rng, maximizer=False,
                          failure_probability=failure_probability, threshold=threshold)
    value, upper = pol.value / lam, pol.upper / lam

    def _bound(p):
        s = max(1.0, p)
        dual_gap = objective - dual_value(RY, R2, s)
        polar_bound = objective * max(p - 1.0, 0.0) + euler_gap
        return max(min(dual_gap, polar_bound), 0.0)

    bound, bound_est = _bound(upper), _bound(value)
    basis = pol.detail
    if (bound > tol * scale and pair.name == "l2/l2" and is_tensor(R) and value > 1.0
            and exact and bound <= CLIP_TRY * tol * scale):
        # A second dual point: the residual with its values above lam clipped on the observed
        # entries (clipped_dual). Feasible once scaled by its own exact sigma_1, so its gap is a
        # bound too; near an optimum it is 10-30 times smaller than the scaled residual's.
        # Restricted to the observed entries here whatever its origin: feasibility needs only that
        # and the exact sigma_1 below.
        if dual is None:
            W, k = clipped_dual(prob, R, lam)
            wtop = None  # W's (sigma_1, upper bound)
        else:
            W, k, wtop = prob.masked(dual[0].to(f64)), dual[1], dual[2]
        if k:
            if wtop is None:
                wp = pair._polar(W, method="exact", maximizer=False)
                wtop, how = (wp.value, wp.upper), wp.detail.removeprefix("sigma_1(Z), ")
            else:
                how = _GRAM_DETAIL
            WY, W2 = prob.inner(W), 2 * prob.loss(W)
            gaps = [objective - dual_value(WY, W2, max(1.0, p / lam)) for p in (wtop[1], wtop[0])]
            if gaps[0] < bound:
                bound, bound_est = max(gaps[0], 0.0), min(bound_est, max(gaps[1], 0.0))
                basis += (f"; dual point: R with its {k} values above lam clipped on the observed "
                          f"entries (its sigma_1 / lam = {wtop[0] / lam:.10g}, {how})")
    # The maximizer attains `value` (theta = 1), so appending it at its best scale is a verified descent.
    descent = -0.5 * lam**2 * max(value - 1.0, 0.0) ** 2
    if bound <= tol * scale:
        is_global = True
    elif -descent > tol * scale:
        is_global = False
    else:
        is_global = None
    return Certificate(
        polar=value, polar_kind=pol.kind, polar_upper=upper, objective=objective, bound=bound,
        bound_estimate=bound_est, euler_gap=euler_gap, euler_residual=euler_residual,
        is_global=is_global, is_global_estimate=bool(bound_est <= tol * scale), descent=descent,
        tol=tol, size=int(U.shape[1]), norms=pair.name, basis=basis,
        failure_probability=pol.failure_probability,
    )


#: certificate tries the clipped dual point (clipped_dual) when the scaled residual's bounds are
#: within this factor of proving: near grow's optima at n = 400 (ranks 51-129) the clipped point's
#: gap was 10-30 times smaller than the scaled residual's.
CLIP_TRY = 30.0


def dual_value(inner: float, sq: float, s: float) -> float:
    """``D(W / s) = <W, M * Y> / s - |W|_F^2 / (2 s^2)`` from ``inner = <W, M * Y>`` and
    ``sq = |W|_F^2``: a lower bound on F* when ``sigma_1(W) / s <= lam`` (weak duality)."""
    return inner / s - sq / (2 * s * s)


def clipped_dual(prob, R, lam: float, eig=None):
    """A dual point for l2/l2 near an optimum: ``W = R - M * sum_i c_i p_i q_i^T`` over the singular
    triplets ``(s_i, p_i, q_i)`` of ``R`` above ``lam``, with ``c_i = (s_i - lam) / |M * p_i q_i^T|_F^2``
    (the step that brings ``p_i^T W q_i`` to ``lam``). Returns ``(W, k)``, ``k`` the triplets used.

    ``W`` lies on the observed entries, so ``W / max(1, sigma_1(W) / lam)`` is dual feasible
    whatever the triplets' accuracy; the caller measures ``sigma_1(W)``. (Weak duality: for such a
    ``W`` with ``sigma_1(W) <= lam`` and every ``X``, ``lam |X|_* >= <W, X> = <W, M * X>`` and
    ``1/2 |M * (Y - X)|^2 >= <W, M * (Y - X)> - 1/2 |W|^2``, so
    ``F(X) >= <W, M * Y> - 1/2 |W|^2``.) Scaling the whole residual (the usual dual point)
    costs about ``(omega - 1) <R, X>`` of the bound; near an optimum the excess of ``R`` sits on
    a few directions, and clipping only those costs much less. Without a
    mask ``W`` is ``R``'s projection onto the spectral ball of radius ``lam`` (``c_i = s_i - lam``).
    ``eig``: ``hdlcore.matrix.spectral.gram_eigh`` of ``R`` (with vectors), when the caller
    has it.
    """
    import torch

    from .spectral import top_triplets

    got = None if eig is None else eig.triplets(lam, min(R.shape), R.dtype)
    S, P, Q = got if got is not None else top_triplets(R, above=lam, k_max=min(R.shape),
                                                         rng=np.random.default_rng(0), exact=True)
    if S.numel() == 0:
        return R, 0
    if prob.Mf is None:
        mpq = torch.ones_like(S)
    else:  # |M * p_i q_i^T|_F^2 = sum_j (M^T (p_i^2))_j q_ji^2
        mpq = ((prob.Mf.T @ (P * P)) * (Q * Q)).sum(0)
    keep = mpq > 0
    c = (S[keep] - lam) / mpq[keep]
    W = R - prob.masked((P[:, keep] * c) @ Q[:, keep].T, inplace=True)
    return W, int(keep.sum())


def _polar_threshold(objective: float, euler_gap: float, RY: float, R2: float, allowed: float) -> float:
    """The largest polar ``p`` at which either bound of :func:`certificate` is at most ``allowed``.

    Polar bound: ``objective * (p - 1)_+ + euler_gap <= allowed``. Dual gap with ``s = max(1, p)``:
    ``objective - RY / s + R2 / (2 s^2) <= allowed``, a quadratic in ``s`` that holds between its
    roots. Returns 1 when neither can prove (then only a refutation can stop Lanczos early).
    """
    best = 1.0 + (allowed - euler_gap) / objective if euler_gap <= allowed and objective > 0 else 1.0
    c = objective - allowed
    if c > 0:
        disc = RY * RY - 2 * c * R2
        if disc >= 0:
            lo, hi = (RY - disc**0.5) / (2 * c), (RY + disc**0.5) / (2 * c)
            if lo <= 1.0 <= hi:
                best = max(best, hi)
    return best

