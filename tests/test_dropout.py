"""Dropout for matrix factorization (hdlcore.dropout: risk, regularizer, training), Chapter 5.

Oracles: exact enumeration of the masks (vectorized in the library, and a plain loop here),
Monte Carlo within a few standard errors, L-BFGS-B over the singular values, L-BFGS on the
factorized objective, cvxpy on the convex problem, PyTorch's own dropout layer.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import scipy.optimize as so
import torch
from hypothesis import given
from hypothesis import strategies as st

import hdlcore as hd
from hdlcore.dropout import (
    column_products,
    dropout_global_minimum,
    dropout_lambda,
    dropout_objective,
    dropout_omega,
    dropout_optimum,
    dropout_penalty,
    dropout_risk,
    dropout_risk_exact,
    dropout_risk_mc,
    duplicate_columns,
    equalized_factorization,
    keep_schedule,
    squared_nuclear_shrinkage,
    train_dropout,
)

keeps = st.floats(0.05, 1.0)
seeds = st.integers(0, 2**31 - 1)


def instance(seed, m=None, n=None, r=None):
    rng = np.random.default_rng(seed)
    m = m or int(rng.integers(1, 5))
    n = n or int(rng.integers(1, 5))
    r = r or int(rng.integers(1, 6))
    scale = rng.uniform(0.1, 3)
    return rng.normal(size=(m, n)) * scale, rng.normal(size=(m, r)), rng.normal(size=(n, r))


def loop_expectation(Y, U, V, keep):
    """Exact expectation by a plain loop over {0,1}^r (independent of the library's code)."""
    total = 0.0
    for mask in itertools.product((0, 1), repeat=U.shape[1]):
        mask = np.array(mask, dtype=float)
        prob = np.prod(np.where(mask == 1, keep, 1 - keep))
        total += prob * np.sum((Y - U @ np.diag(mask) @ V.T / keep) ** 2)
    return total


# ------------------------------------------------------------------ the expectation identity
@given(seed=seeds, keep=keeps)
def test_closed_form_equals_exact_enumeration(seed, keep):
    Y, U, V = instance(seed)
    closed = dropout_risk(Y, U, V, keep)
    assert closed == pytest.approx(dropout_risk_exact(Y, U, V, keep), rel=1e-10, abs=1e-12)
    assert closed == pytest.approx(loop_expectation(Y, U, V, keep), rel=1e-10, abs=1e-12)


@given(seed=seeds, keep=st.floats(0.1, 0.95))
def test_monte_carlo_within_standard_errors(seed, keep):
    Y, U, V = instance(seed)
    est = dropout_risk_mc(Y, U, V, keep, num_samples=4000, rng=seed)
    assert est.num_samples == 4000 and est.stderr > 0
    assert abs(est.z_score(dropout_risk(Y, U, V, keep))) < 5


def test_monte_carlo_standard_error_shrinks_like_one_over_sqrt_n():
    Y, U, V = instance(3, 4, 3, 3)
    small = dropout_risk_mc(Y, U, V, 0.5, num_samples=1000, rng=0)
    large = dropout_risk_mc(Y, U, V, 0.5, num_samples=16000, rng=0)
    assert large.stderr / small.stderr == pytest.approx(0.25, rel=0.15)


def test_keep_one_is_the_plain_loss():
    Y, U, V = instance(0, 3, 4, 2)
    assert dropout_risk(Y, U, V, 1.0) == pytest.approx(np.sum((Y - U @ V.T) ** 2), rel=1e-12)
    assert dropout_risk_mc(Y, U, V, 1.0, num_samples=10, rng=0).stderr == 0.0


def test_pytorch_dropout_convention():
    """nn.functional.dropout(p) keeps with probability 1 - p and scales by 1/(1 - p): lam = p/(1-p)."""
    p = 0.3
    Y, U, V = (torch.from_numpy(a) for a in instance(1, 4, 3, 3))
    g = torch.Generator().manual_seed(0)
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    losses = []
    for _ in range(4000):
        H = torch.nn.functional.dropout(torch.ones(1, 3, dtype=torch.float64), p=p, training=True)
        losses.append(float(((Y - (U * H) @ V.T) ** 2).sum()))
    torch.random.set_rng_state(state)
    del g
    losses = np.array(losses)
    closed = float(np.sum((Y - U @ V.T).numpy() ** 2)) + p / (1 - p) * float(dropout_penalty(U, V))
    assert dropout_lambda(1 - p) == pytest.approx(p / (1 - p))
    assert abs(losses.mean() - closed) < 5 * losses.std() / np.sqrt(len(losses))
    assert float(dropout_risk(Y, U, V, 1 - p)) == pytest.approx(closed, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_array_type_and_dtype_preserved(dtype):
    Y, U, V = (a.astype(dtype) for a in instance(2, 5, 4, 3))
    assert isinstance(dropout_risk(Y, U, V, 0.5), float)
    X = dropout_optimum(Y, 0.5, 3)
    assert isinstance(X, np.ndarray) and X.dtype == dtype
    Yt, Ut, Vt = (torch.from_numpy(a) for a in (Y, U, V))
    r = dropout_risk(Yt, Ut, Vt, 0.5)
    assert torch.is_tensor(r) and r.dtype == Yt.dtype and r.ndim == 0
    Xt = dropout_optimum(Yt, 0.5, 3)
    assert torch.is_tensor(Xt) and Xt.dtype == Yt.dtype
    tol = 1e-4 if dtype == np.float32 else 1e-12
    assert np.allclose(Xt.numpy(), X, rtol=tol, atol=tol)
    Ue, Ve = equalized_factorization(Xt, 4)
    assert torch.is_tensor(Ue) and Ue.dtype == Yt.dtype


def test_autograd_gradient_of_closed_form_matches_hand_derivation():
    Y, U, V = (torch.from_numpy(a).requires_grad_(i > 0) for i, a in enumerate(instance(4, 4, 3, 2)))
    keep = 0.6
    lam = (1 - keep) / keep
    gU, gV = torch.autograd.grad(dropout_risk(Y, U, V, keep), (U, V))
    R = Y - U @ V.T
    u2, v2 = (U**2).sum(0), (V**2).sum(0)
    assert torch.allclose(gU, -2 * R @ V + 2 * lam * U * v2)
    assert torch.allclose(gV, -2 * R.T @ U + 2 * lam * V * u2)


# ------------------------------------------------------------------ induced regularizer
@given(seed=seeds, extra=st.integers(0, 6))
def test_equalized_factorization_attains_omega(seed, extra):
    rng = np.random.default_rng(seed)
    m, n, k = int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(0, 4))
    k = min(k, m, n)
    X = rng.normal(size=(m, k)) @ rng.normal(size=(k, n))
    d = max(k, 1) + extra
    U, V = equalized_factorization(X, d)
    assert U.shape == (m, d) and V.shape == (n, d)
    np.testing.assert_allclose(U @ V.T, X, atol=1e-10 * max(1, np.abs(X).max()))
    nuc = np.linalg.svd(X, compute_uv=False).sum()
    np.testing.assert_allclose(column_products(U, V), nuc / d, atol=1e-10 * max(nuc, 1))
    assert dropout_penalty(U, V) == pytest.approx(nuc**2 / d, rel=1e-9, abs=1e-12)
    assert dropout_omega(X, d) == pytest.approx(nuc**2 / d, rel=1e-9, abs=1e-12)


@given(seed=seeds)
def test_omega_is_a_lower_bound_over_factorizations(seed):
    rng = np.random.default_rng(seed)
    m, n, d = 4, 5, int(rng.integers(2, 6))
    k = int(rng.integers(1, d + 1))
    X = rng.normal(size=(m, k)) @ rng.normal(size=(k, n))
    U0, V0 = equalized_factorization(X, d)
    for _ in range(20):
        R = rng.normal(size=(d, d)) + 2 * np.eye(d)
        U, V = U0 @ R, V0 @ np.linalg.inv(R).T
        np.testing.assert_allclose(U @ V.T, X, atol=1e-8 * np.abs(X).max())
        assert dropout_penalty(U, V) >= dropout_omega(X, d) * (1 - 1e-10)


def test_balanced_svd_factorization_is_not_optimal():
    X = np.diag([3.0, 1.0])
    W, s, Zt = np.linalg.svd(X)
    U, V = W * np.sqrt(s), Zt.T * np.sqrt(s)
    assert dropout_penalty(U, V) == pytest.approx(10.0)  # sum sigma_i^2 = |X|_F^2
    assert dropout_omega(X, 2) == pytest.approx(8.0)  # (3 + 1)^2 / 2


def test_omega_infinite_below_rank_and_doubling_halves_penalty():
    X = np.diag([2.0, 1.0, 0.5])
    assert dropout_omega(X, 2) == np.inf
    U, V = equalized_factorization(X, 3)
    for copies in (2, 3):
        U2, V2 = duplicate_columns(U, V, copies)
        np.testing.assert_allclose(U2 @ V2.T, X, atol=1e-12)
        assert dropout_penalty(U2, V2) == pytest.approx(dropout_penalty(U, V) / copies, rel=1e-12)
        assert dropout_penalty(U2, V2) == pytest.approx(dropout_omega(X, 3 * copies), rel=1e-10)


# ------------------------------------------------------------------ the global optimum
@given(sigma=st.lists(st.floats(0, 10), min_size=1, max_size=7), tau=st.floats(0, 5),
       size=st.one_of(st.none(), st.integers(0, 8)))
def test_shrinkage_matches_lbfgsb(sigma, tau, size):
    sig = np.array(sigma)
    s, mu, k = squared_nuclear_shrinkage(sig, tau, size)
    assert np.all(s >= 0) and np.count_nonzero(s) == k and k <= (len(sig) if size is None else size)
    f = lambda x: np.sum((sig - x) ** 2) + tau * x.sum() ** 2  # noqa: E731
    g = lambda x: -2 * (sig - x) + 2 * tau * x.sum()  # noqa: E731
    order = np.argsort(-sig, kind="stable")
    allowed = order[: len(sig) if size is None else size]
    bounds = [(0, None) if i in allowed else (0, 0) for i in range(len(sig))]
    res = so.minimize(f, np.ones(len(sig)) * (sig.mean() + 1e-3), jac=g, bounds=bounds,
                      method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000})
    assert f(s) <= res.fun + 1e-9 * max(1.0, res.fun)
    # KKT: s_i = (sigma_i - mu)_+ on the support, mu = tau * sum(s)
    assert mu == pytest.approx(tau * s.sum(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed,keep,d", [(0, 0.5, 3), (1, 0.2, 6), (2, 0.9, 2), (3, 0.35, 1)])
def test_global_minimum_matches_factorized_lbfgs(seed, keep, d):
    """A generic local method on the factorized objective from random starts reaches the closed form."""
    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(6, 5)) * 2
    opt = dropout_global_minimum(Y, keep, d)
    assert dropout_risk(Y, opt.U, opt.V, keep) == pytest.approx(opt.objective, rel=1e-10)
    Yt = torch.from_numpy(Y)
    best = np.inf
    for _ in range(3):
        U = torch.tensor(rng.normal(size=(6, d)), requires_grad=True)
        V = torch.tensor(rng.normal(size=(5, d)), requires_grad=True)
        lbfgs = torch.optim.LBFGS([U, V], max_iter=3000, tolerance_grad=1e-12, tolerance_change=1e-16,
                                  history_size=50, line_search_fn="strong_wolfe")

        def closure(U=U, V=V, lbfgs=lbfgs):
            lbfgs.zero_grad()
            loss = dropout_risk(Yt, U, V, keep)
            loss.backward()
            return loss

        lbfgs.step(closure)
        best = min(best, float(dropout_risk(Yt, U.detach(), V.detach(), keep)))
    assert best == pytest.approx(opt.objective, rel=1e-7)
    assert best >= opt.objective * (1 - 1e-10)


def test_global_minimum_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(5)
    Y = rng.normal(size=(5, 4))
    keep, d = 0.4, 4
    tau = dropout_lambda(keep) / d
    X = cp.Variable(Y.shape)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(Y - X) + tau * cp.square(cp.normNuc(X))))
    prob.solve()
    opt = dropout_global_minimum(Y, keep, d)
    assert opt.rank <= d
    assert opt.objective == pytest.approx(prob.value, rel=1e-5)
    np.testing.assert_allclose(opt.X, X.value, atol=1e-3)


def test_keep_one_gives_truncated_svd_and_schedule_is_size_independent():
    rng = np.random.default_rng(7)
    Y = rng.normal(size=(7, 6))
    W, s, Zt = np.linalg.svd(Y)
    np.testing.assert_allclose(dropout_optimum(Y, 1.0, 2), (W[:, :2] * s[:2]) @ Zt[:2], atol=1e-12)
    beta = 3.0
    ref = dropout_global_minimum(Y, keep_schedule(6, beta), 6)
    for d in range(ref.rank, 40, 7):
        opt = dropout_global_minimum(Y, keep_schedule(d, beta), d)
        np.testing.assert_allclose(opt.X, ref.X, atol=1e-12)
        assert opt.threshold == pytest.approx(s[: opt.rank].sum() / (beta + opt.rank), rel=1e-12)
    # with a fixed keep, the optimum moves towards Y as d grows
    errs = [np.linalg.norm(Y - dropout_optimum(Y, 0.5, d)) for d in (6, 12, 24, 48)]
    assert all(a > b for a, b in zip(errs, errs[1:], strict=False))


def test_documented_threshold_example():
    s, mu, k = squared_nuclear_shrinkage([5, 4, 3, 1, 0.5], 1 / 2)
    np.testing.assert_allclose(s, [2.6, 1.6, 0.6, 0, 0], atol=1e-12)
    Y = np.zeros((4, 3))
    opt = dropout_global_minimum(Y, 0.5, 2)
    assert opt.rank == 0 and np.all(opt.X == 0) and opt.objective == 0


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("keep", [0.0, -0.1, 1.5, float("nan")])
def test_bad_keep(keep):
    Y, U, V = instance(0, 3, 3, 2)
    with pytest.raises(ValueError, match="'keep' parameter of dropout_risk must be a float > 0"):
        dropout_risk(Y, U, V, keep)
    with pytest.raises(ValueError, match="'keep' parameter of dropout_optimum"):
        dropout_optimum(Y, keep, 2)


def test_bad_sizes_and_shapes():
    Y, U, V = instance(0, 3, 4, 2)
    with pytest.raises(ValueError, match="'d' parameter of dropout_optimum must be an int >= 1"):
        dropout_optimum(Y, 0.5, 0)
    with pytest.raises(TypeError, match="'d' parameter of dropout_optimum"):
        dropout_optimum(Y, 0.5, 2.5)
    with pytest.raises(ValueError, match=r"'d' parameter of equalized_factorization .* rank\(X\) = 3"):
        equalized_factorization(np.diag([1.0, 2.0, 3.0]), 2)
    with pytest.raises(ValueError, match="'U' parameter of dropout_risk must be an array with 3 rows"):
        dropout_risk(Y, U[:2], V, 0.5)
    with pytest.raises(ValueError, match="'V' parameter of dropout_risk must be an array with 2 columns"):
        dropout_risk(Y, U, V[:, :1], 0.5)
    with pytest.raises(ValueError, match="'V' parameter of dropout_risk must be an array with 4 rows"):
        dropout_risk(Y, U, V[:3], 0.5)
    with pytest.raises(ValueError, match="'Y' parameter of dropout_risk must be a 2-D array"):
        dropout_risk(Y[0], U, V, 0.5)
    with pytest.raises(TypeError, match="'U' parameter of dropout_risk must be a numpy array"):
        dropout_risk(Y, torch.from_numpy(U), V, 0.5)
    with pytest.raises(ValueError, match="'Y' parameter of dropout_risk must be finite"):
        dropout_risk(np.full((3, 4), np.nan), U, V, 0.5)
    with pytest.raises(ValueError, match="'U' parameter of dropout_risk_exact must be .* at most 20"):
        dropout_risk_exact(Y, np.zeros((3, 21)), np.zeros((4, 21)), 0.5)
    with pytest.raises(ValueError, match="'num_samples' parameter of dropout_risk_mc"):
        dropout_risk_mc(Y, U, V, 0.5, num_samples=1)
    with pytest.raises(TypeError, match="'rng' parameter of dropout_risk_mc"):
        dropout_risk_mc(Y, U, V, 0.5, rng="seed")
    with pytest.raises(ValueError, match="'beta' parameter of keep_schedule must be a float > 0"):
        keep_schedule(3, 0.0)
    with pytest.raises(ValueError, match="'scheme' parameter of train_dropout must be one of"):
        train_dropout(Y, 0.5, 2, scheme="A")
    with pytest.raises(ValueError, match="'U0' parameter of train_dropout must be an array of shape"):
        train_dropout(Y, 0.5, 2, U0=np.zeros((3, 3)))


# ------------------------------------------------------------------ training
def test_deterministic_gradient_descent_reaches_closed_form():
    Y, _ = hd.low_rank_matrix(12, 9, 3, noise=0.2, rng=0)
    opt = dropout_global_minimum(Y, 0.5, 4)
    run = train_dropout(Y, 0.5, 4, stochastic=False, steps=3000, rng=0)
    assert run.converged
    assert run.objective == pytest.approx(opt.objective, rel=1e-9)
    np.testing.assert_allclose(run.X, opt.X, atol=1e-5 * np.abs(opt.X).max())
    p = run.products[-1]
    assert (p.max() - p.min()) / p.mean() < 1e-5


def test_stochastic_dropout_training_converges_on_a_fixed_seed():
    """Real Bernoulli masks, SGD: objective within 1e-3 relative of the closed form, equalized."""
    Y, _ = hd.low_rank_matrix(12, 9, 3, noise=0.2, rng=0)
    keep, d = 0.5, 4
    opt = dropout_global_minimum(Y, keep, d)
    run = train_dropout(Y, keep, d, steps=2500, masks_per_step=8, rng=1)
    assert run.converged and run.recorded_steps[-1] == 2500
    assert 0 <= (run.objective - opt.objective) / opt.objective < 1e-3
    assert np.linalg.norm(run.X - opt.X) / np.linalg.norm(opt.X) < 0.03
    first, last = run.products[0], run.products[-1]
    assert (last.max() - last.min()) / last.mean() < 0.1 < (first.max() - first.min()) / first.mean()
    # deterministic given the seed
    again = train_dropout(Y, keep, d, steps=2500, masks_per_step=8, rng=1)
    np.testing.assert_array_equal(again.U, run.U)


def test_training_on_torch_float32_returns_tensors_and_warns_when_too_short():
    Y = torch.from_numpy(hd.low_rank_matrix(8, 6, 2, rng=0)[0]).float()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = train_dropout(Y, 0.5, 3, steps=5, rng=torch.Generator().manual_seed(0))
    assert not run.converged
    assert any(issubclass(w.category, hd.ConvergenceWarning) for w in caught)
    assert torch.is_tensor(run.X) and run.X.dtype == torch.float32 and run.U.shape == (8, 3)


def test_talks_update_rule_is_not_a_regularizer():
    """Freezing a random half of the weights at each step minimizes the plain loss."""
    Y, _ = hd.low_rank_matrix(10, 8, 3, noise=0.1, rng=0)
    d = 3
    run = train_dropout(Y, 0.5, d, scheme="update", steps=3000, lr=0.1 / np.linalg.norm(Y, 2), rng=0)
    W, s, Zt = np.linalg.svd(Y)
    tsvd = (W[:, :d] * s[:d]) @ Zt[:d]
    assert run.objective == pytest.approx(np.sum(s[d:] ** 2), rel=1e-4)
    assert np.linalg.norm(run.X - tsvd) / np.linalg.norm(tsvd) < 1e-3
    assert dropout_objective(Y, run.U, run.V, 0.5, "update") == pytest.approx(run.objective)


@pytest.mark.cuda
def test_training_on_cuda_matches_closed_form():
    Y = torch.from_numpy(hd.low_rank_matrix(40, 30, 4, noise=0.2, rng=0)[0]).cuda()
    opt = dropout_global_minimum(Y, 0.5, 6)
    run = train_dropout(Y, 0.5, 6, steps=3000, masks_per_step=8, rng=0)
    assert run.X.device.type == "cuda"
    assert (run.objective - opt.objective) / opt.objective < 1e-3


def test_divergence_is_reported_not_raised():
    Y, _ = hd.low_rank_matrix(6, 5, 2, rng=0)
    with pytest.warns(hd.ConvergenceWarning, match="diverged"):
        run = train_dropout(Y, 0.5, 2, lr=50.0, steps=200, rng=0)
    assert not run.converged and np.isfinite(run.objective) and np.all(np.isfinite(run.U))


@given(seed=seeds, keep=st.floats(0.02, 1.0), d=st.integers(1, 7))
def test_global_minimum_matches_lbfgsb_over_singular_values(seed, keep, d):
    """The optimum's value against a generic solver over the singular values (top d free)."""
    Y, _, _ = instance(seed, m=5, n=4, r=1)
    opt = dropout_global_minimum(Y, keep, d)
    sig = np.linalg.svd(Y, compute_uv=False)
    tau = dropout_lambda(keep) / d
    top, rest = sig[:d], sig[d:]
    f = lambda s: np.sum((top - s) ** 2) + np.sum(rest**2) + tau * s.sum() ** 2  # noqa: E731
    g = lambda s: -2 * (top - s) + 2 * tau * s.sum()  # noqa: E731
    res = so.minimize(f, top / 2, jac=g, bounds=[(0, None)] * len(top), method="L-BFGS-B",
                      options={"ftol": 1e-15, "gtol": 1e-12})
    assert opt.objective <= res.fun * (1 + 1e-12) + 1e-12
    assert opt.objective == pytest.approx(res.fun, rel=1e-8, abs=1e-10)
    assert np.sum((Y - opt.X) ** 2) + tau * np.linalg.svd(opt.X, compute_uv=False).sum() ** 2 \
        == pytest.approx(opt.objective, rel=1e-10, abs=1e-12)


# ------------------------------------------------------------------ hostile input (issue 9)
def _complex_cases(Y, U, V):
    Yc, Uc = Y + 1j, U + 1j
    return [
        ("Y", "dropout_risk", lambda: dropout_risk(Yc, U, V, 0.5)),
        ("U", "dropout_risk_exact", lambda: dropout_risk_exact(Y, Uc, V, 0.5)),
        ("Y", "dropout_risk_mc", lambda: dropout_risk_mc(Yc, U, V, 0.5, num_samples=10)),
        ("U", "dropout_penalty", lambda: dropout_penalty(Uc, V)),
        ("U", "column_products", lambda: column_products(Uc, V)),
        ("U", "duplicate_columns", lambda: duplicate_columns(Uc, V)),
        ("Y", "dropout_optimum", lambda: dropout_optimum(Yc, 0.5, 2)),
        ("Y", "dropout_global_minimum", lambda: dropout_global_minimum(Yc, 0.5, 2)),
        ("X", "equalized_factorization", lambda: equalized_factorization(Yc, 4)),
        ("X", "dropout_omega", lambda: dropout_omega(Yc, 4)),
        ("Y", "train_dropout", lambda: train_dropout(Yc, 0.5, 2, steps=2)),
        ("U0", "train_dropout", lambda: train_dropout(Y, 0.5, 2, steps=2, U0=Uc[:, :2])),
        ("U", "dropout_objective", lambda: dropout_objective(Y, Uc, V, 0.5)),
        ("sigma", "squared_nuclear_shrinkage", lambda: squared_nuclear_shrinkage(np.array([2.0 + 1j]), 0.5)),
    ]


@pytest.mark.parametrize("as_torch", [False, True])
def test_complex_input_is_refused_naming_the_parameter_and_function(as_torch):
    """The imaginary part is never silently dropped."""
    Y, U, V = instance(0, 3, 4, 2)
    if as_torch:
        Y, U, V = (torch.from_numpy(a) for a in (Y, U, V))
    for name, func, call in _complex_cases(Y, U, V):
        if as_torch and name == "sigma":
            continue
        with pytest.raises(TypeError, match=rf"^The '{name}' parameter of {func} must be a real array"):
            call()


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32_and_returned_in_its_dtype(half):
    Y32, U32, V32 = (torch.from_numpy(a).float() for a in instance(3, 6, 5, 3))
    Y, U, V = Y32.to(half), U32.to(half), V32.to(half)
    up = [t.float() for t in (Y, U, V)]  # the same values, in float32
    X = dropout_optimum(Y, 0.5, 3)
    assert X.dtype == half and torch.equal(X, dropout_optimum(up[0], 0.5, 3).to(half))
    opt = dropout_global_minimum(Y, 0.5, 4)
    assert opt.U.dtype == half and opt.objective == dropout_global_minimum(up[0], 0.5, 4).objective
    risk = dropout_risk(Y, U, V, 0.5)
    assert risk.dtype == half and torch.equal(risk, dropout_risk(*up, 0.5).to(half))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hd.ConvergenceWarning)
        run = train_dropout(Y, 0.5, 2, steps=200, rng=0)
        ref = train_dropout(up[0], 0.5, 2, steps=200, rng=0)
    assert run.X.dtype == half and torch.equal(run.X, ref.X.to(half))
    assert run.objective == ref.objective and np.isfinite(run.objective)


def test_numpy_float16_is_computed_in_float32_and_returned_as_float16():
    Y = instance(4, 6, 5, 1)[0].astype(np.float16)
    X = dropout_optimum(Y, 0.5, 3)
    assert X.dtype == np.float16
    np.testing.assert_array_equal(X, dropout_optimum(Y.astype(np.float32), 0.5, 3).astype(np.float16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hd.ConvergenceWarning)
        run = train_dropout(Y, 0.5, 2, steps=100, rng=0)
    assert run.U.dtype == np.float16 and run.X.shape == Y.shape


def test_absurd_sizes_are_refused_before_anything_is_allocated():
    Y, U, V = instance(0, 3, 4, 2)
    huge = 10**12
    fits = "must be an int >= 1 whose arrays fit in memory"
    for func, call in [("dropout_global_minimum", lambda: dropout_global_minimum(Y, 0.5, huge)),
                       ("dropout_optimum", lambda: dropout_optimum(Y, 0.5, huge)),
                       ("dropout_omega", lambda: dropout_omega(Y, huge)),
                       ("equalized_factorization", lambda: equalized_factorization(Y, huge)),
                       ("train_dropout", lambda: train_dropout(Y, 0.5, huge))]:
        with pytest.raises(ValueError, match=f"'d' parameter of {func} {fits}"):
            call()
    with pytest.raises(ValueError, match=f"'masks_per_step' parameter of train_dropout {fits}"):
        train_dropout(Y, 0.5, 2, masks_per_step=huge)
    with pytest.raises(ValueError, match=f"'copies' parameter of duplicate_columns {fits}"):
        duplicate_columns(U, V, huge)
    with pytest.raises(ValueError, match=f"'chunk' parameter of dropout_risk_mc {fits}"):
        dropout_risk_mc(Y, U, V, 0.5, num_samples=huge, chunk=huge)
    with pytest.raises(ValueError, match="'chunk' parameter of dropout_risk_exact must be an int >= 1"):
        dropout_risk_exact(Y, U, V, 0.5, chunk=0)


def test_a_large_size_that_fits_gives_the_optimum():
    """A size far above the rank (lam / d small) is computed: X -> Y as d grows."""
    Y = instance(5, 4, 3, 1)[0]
    d = 10**6
    X = dropout_optimum(Y, 0.5, d)
    W, sig, Zt = np.linalg.svd(Y, full_matrices=False)
    s, _, k = squared_nuclear_shrinkage(sig, dropout_lambda(0.5) / d)
    np.testing.assert_allclose(X, (W * s) @ Zt, atol=1e-12)
    assert k == 3 and np.abs(X - Y).max() < 1e-5 * np.abs(Y).max()
    assert dropout_omega(Y, d) == pytest.approx(sig.sum() ** 2 / d, rel=1e-12)


def test_dropout_is_the_units_scheme_of_the_one_estimator():
    """Same masks, same numbers: dropout's functions and DropConnect's scheme 'units' agree exactly."""
    Y, U, V = instance(6, 4, 3, 3)
    assert dropout_risk(Y, U, V, 0.4) == hd.dropconnect_risk(Y, U, V, 0.4, "units")
    assert dropout_risk_exact(Y, U, V, 0.4) == hd.dropconnect_risk_exact(Y, U, V, 0.4, "units")
    a = dropout_risk_mc(Y, U, V, 0.4, num_samples=300, rng=7, chunk=64)
    b = hd.dropconnect_risk_mc(Y, U, V, 0.4, "units", num_samples=300, rng=7, chunk=64)
    assert a == b


@pytest.mark.cuda
def test_tensors_on_two_devices_are_refused_naming_both():
    Y, U, V = (torch.from_numpy(a) for a in instance(0, 3, 4, 2))
    with pytest.raises(ValueError, match=r"'U' parameter of dropout_risk must be on the same device as 'Y' "
                                         r"\(cpu\)"):
        dropout_risk(Y, U.cuda(), V, 0.5)
