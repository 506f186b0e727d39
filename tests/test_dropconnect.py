"""Dropout vs DropConnect (hdlcore.dropout: masks, risk, dropconnect), Chapter 5: the table of regularizers.

Oracles: a plain-loop enumeration over every mask written here from the definitions (no shared
code with the library), the library's vectorized enumeration, Monte Carlo, and the algebra of
each table entry.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hdlcore.dropout import (
    SCHEMES,
    dropconnect_penalty,
    dropconnect_risk,
    dropconnect_risk_exact,
    dropconnect_risk_mc,
    dropout_global_minimum,
    dropout_penalty,
    dropout_risk,
    train_dropout,
)

MF_SCHEMES = [s for s in SCHEMES if s != "A"]


def masked_output(U, V, keep, scheme, bits, a=None):
    """One masked output from a flat tuple of bits, written from the definitions."""
    m, r = U.shape
    n = V.shape[0]
    b = np.array(bits, dtype=float)
    if a is None:
        if scheme == "units":
            return U @ np.diag(b) @ V.T / keep
        if scheme == "U":
            return (b.reshape(m, r) * U) @ V.T / keep
        if scheme == "V":
            return U @ (b.reshape(n, r) * V).T / keep
        if scheme == "UV":
            return (b[: m * r].reshape(m, r) * U) @ (b[m * r:].reshape(n, r) * V).T / keep**2
        return b.reshape(m, n) * (U @ V.T) / keep
    # one sample a (length n = input dim) of the network y = U V^T a
    if scheme == "units":
        return U @ (b * (V.T @ a)) / keep
    if scheme == "U":
        return (b.reshape(m, r) * U) @ (V.T @ a) / keep
    if scheme == "V":
        return U @ ((b.reshape(n, r) * V).T @ a) / keep
    if scheme == "UV":
        return (b[: m * r].reshape(m, r) * U) @ ((b[m * r:].reshape(n, r) * V).T @ a) / keep**2
    if scheme == "X":
        return b * (U @ V.T @ a) / keep
    return U @ V.T @ (b * a) / keep  # "A"


def n_bits(scheme, m, n, r, network):
    sizes = {"units": r, "U": m * r, "V": n * r, "UV": (m + n) * r, "X": m if network else m * n, "A": n}
    return sizes[scheme]


def loop_expectation(Y, U, V, keep, scheme, A=None):
    m, r = U.shape
    n = V.shape[0]
    bits = n_bits(scheme, m, n, r, A is not None)
    total = 0.0
    rows = [None] if A is None else range(A.shape[0])
    for s in rows:
        for mask in itertools.product((0, 1), repeat=bits):
            prob = np.prod([keep if x else 1 - keep for x in mask])
            if s is None:
                total += prob * np.sum((Y - masked_output(U, V, keep, scheme, mask)) ** 2)
            else:
                total += prob * np.sum((Y[s] - masked_output(U, V, keep, scheme, mask, A[s])) ** 2)
    return total


@given(seed=st.integers(0, 2**31 - 1), keep=st.floats(0.1, 1.0), scheme=st.sampled_from(MF_SCHEMES))
def test_matrix_factorization_closed_form_equals_enumerations(seed, keep, scheme):
    rng = np.random.default_rng(seed)
    m, n, r = 2, int(rng.integers(1, 3)), int(rng.integers(1, 3))
    Y, U, V = rng.normal(size=(m, n)), rng.normal(size=(m, r)), rng.normal(size=(n, r))
    closed = dropconnect_risk(Y, U, V, keep, scheme)
    assert closed == pytest.approx(dropconnect_risk_exact(Y, U, V, keep, scheme), rel=1e-10)
    assert closed == pytest.approx(loop_expectation(Y, U, V, keep, scheme), rel=1e-10)


@given(seed=st.integers(0, 2**31 - 1), keep=st.floats(0.1, 1.0), scheme=st.sampled_from(SCHEMES))
def test_network_closed_form_equals_enumerations(seed, keep, scheme):
    rng = np.random.default_rng(seed)
    N, c, dim, r = 2, 2, 2, int(rng.integers(1, 3))
    A, Y = rng.normal(size=(N, dim)), rng.normal(size=(N, c))
    U, V = rng.normal(size=(c, r)), rng.normal(size=(dim, r))
    closed = dropconnect_risk(Y, U, V, keep, scheme, A=A)
    assert closed == pytest.approx(dropconnect_risk_exact(Y, U, V, keep, scheme, A=A), rel=1e-10)
    assert closed == pytest.approx(loop_expectation(Y, U, V, keep, scheme, A), rel=1e-10)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("network", [False, True])
def test_monte_carlo_within_standard_errors(scheme, network):
    if scheme == "A" and not network:
        pytest.skip("input dropout needs a network")
    rng = np.random.default_rng(2 * SCHEMES.index(scheme) + network)
    A = rng.normal(size=(5, 4)) if network else None
    U, V = rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    Y = rng.normal(size=(5, 3) if network else (3, 4))
    est = dropconnect_risk_mc(Y, U, V, 0.6, scheme, A=A, num_samples=6000, rng=0)
    assert abs(est.z_score(dropconnect_risk(Y, U, V, 0.6, scheme, A=A))) < 5


# ------------------------------------------------------------------ the table's entries
def test_table_matrix_factorization():
    rng = np.random.default_rng(0)
    U, V = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    keep = 0.7
    lam = (1 - keep) / keep
    dropout = lam * dropout_penalty(U, V)
    for scheme in ("units", "U", "V"):  # one factor's entries: the same regularizer as dropout
        assert dropconnect_penalty(U, V, keep, scheme) == pytest.approx(dropout, rel=1e-12)
    both = dropconnect_penalty(U, V, keep, "UV")  # same form, weight (1 - keep^2) / keep^2
    assert both == pytest.approx((1 - keep**2) / keep**2 * dropout_penalty(U, V), rel=1e-12)
    assert both == pytest.approx(dropconnect_penalty(U, V, keep**2, "units"), rel=1e-12)
    X = U @ V.T  # product's entries: ridge on X
    assert dropconnect_penalty(U, V, keep, "X") == pytest.approx(lam * np.sum(X**2), rel=1e-12)


def test_table_network():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(7, 4))
    U, V = rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    keep = 0.6
    lam = (1 - keep) / keep
    H = A @ V
    units = lam * np.sum((U**2).sum(0) * (H**2).sum(0))
    assert dropconnect_penalty(U, V, keep, "units", A=A) == pytest.approx(units)
    assert dropconnect_penalty(U, V, keep, "U", A=A) == pytest.approx(units)  # output layer = dropout
    D = np.diag(np.diag(A.T @ A))
    input_layer = lam * sum(U[:, k] @ U[:, k] * V[:, k] @ D @ V[:, k] for k in range(2))
    assert dropconnect_penalty(U, V, keep, "V", A=A) == pytest.approx(input_layer)
    assert input_layer != pytest.approx(units)  # C = A^T A replaced by its diagonal
    W = V @ U.T
    assert dropconnect_penalty(U, V, keep, "A", A=A) == pytest.approx(lam * np.sum(D @ W**2))
    # matrix factorization is the network with A = I (up to a transpose)
    I = np.eye(4)
    for scheme in ("units", "U", "V", "UV"):
        assert dropconnect_penalty(U, V, keep, scheme, A=I) == pytest.approx(
            dropconnect_penalty(U, V, keep, scheme), rel=1e-12)


def test_units_scheme_is_dropout_risk_and_torch_works():
    rng = np.random.default_rng(2)
    Y, U, V = rng.normal(size=(3, 4)), rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    assert dropconnect_risk(Y, U, V, 0.3) == pytest.approx(dropout_risk(Y, U, V, 0.3), rel=1e-12)
    Yt, Ut, Vt = (torch.from_numpy(a).float() for a in (Y, U, V))
    r = dropconnect_risk(Yt, Ut, Vt, 0.3, "UV")
    assert torch.is_tensor(r) and r.dtype == torch.float32
    assert float(r) == pytest.approx(dropconnect_risk(Y, U, V, 0.3, "UV"), rel=1e-5)
    est = dropconnect_risk_mc(Yt, Ut, Vt, 0.3, "UV", num_samples=100, rng=torch.Generator().manual_seed(0))
    assert np.isfinite(est.mean)


def test_product_mask_is_ridge_not_low_rank():
    """E-loss as a function of X is (1 + lam)|X - Y/(1 + lam)|^2 + const: its optimum is Y/(1 + lam)."""
    rng = np.random.default_rng(3)
    Y = rng.normal(size=(4, 5))
    keep = 0.5
    lam = (1 - keep) / keep
    const = lam / (1 + lam) * np.sum(Y**2)
    for _ in range(5):
        U, V = rng.normal(size=(4, 4)), rng.normal(size=(5, 4))
        X = U @ V.T
        assert dropconnect_risk(Y, U, V, keep, "X") == pytest.approx(
            (1 + lam) * np.sum((X - Y / (1 + lam)) ** 2) + const, rel=1e-12)


@pytest.mark.parametrize("scheme,target", [("U", "units"), ("UV", "keep2"), ("X", "ridge")])
def test_training_each_scheme_reaches_its_closed_form(scheme, target):
    rng = np.random.default_rng(4)
    Y = rng.normal(size=(6, 5))
    keep, d = 0.6, 5
    if target == "units":
        X_star = dropout_global_minimum(Y, keep, d).X
    elif target == "keep2":
        X_star = dropout_global_minimum(Y, keep**2, d).X
    else:
        X_star = Y / (1 + (1 - keep) / keep)
    run = train_dropout(Y, keep, d, scheme=scheme, stochastic=False, steps=4000, rng=0)
    np.testing.assert_allclose(run.X, X_star, atol=1e-4 * np.abs(X_star).max())


# ------------------------------------------------------------------ bad input
def test_bad_input():
    rng = np.random.default_rng(0)
    Y, U, V = rng.normal(size=(3, 4)), rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    with pytest.raises(ValueError, match="'scheme' parameter of dropconnect_risk must be one of"):
        dropconnect_risk(Y, U, V, 0.5, "weights")
    with pytest.raises(ValueError, match="'A' parameter of dropconnect_penalty must be an input matrix"):
        dropconnect_penalty(U, V, 0.5, "A")
    with pytest.raises(ValueError, match="'keep' parameter of dropconnect_risk_mc must be a float > 0"):
        dropconnect_risk_mc(Y, U, V, 0.0)
    with pytest.raises(ValueError, match=r"'Y' parameter of dropconnect_risk must be .* shape \(3, 4\)"):
        dropconnect_risk(Y.T, U, V, 0.5)
    with pytest.raises(ValueError, match="'A' parameter of dropconnect_risk must be an array with 4 columns"):
        dropconnect_risk(Y, U, V, 0.5, A=rng.normal(size=(3, 5)))
    with pytest.raises(ValueError, match="'scheme' parameter of dropconnect_risk_exact .* at most 20"):
        dropconnect_risk_exact(np.zeros((5, 5)), np.zeros((5, 3)), np.zeros((5, 3)), 0.5, "X")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_complex_and_absurd_input_is_refused_naming_the_parameter(scheme):
    rng = np.random.default_rng(1)
    A, Y = rng.normal(size=(3, 4)), rng.normal(size=(3, 2))
    U, V = rng.normal(size=(2, 2)), rng.normal(size=(4, 2))
    with pytest.raises(TypeError, match="^The 'A' parameter of dropconnect_risk must be a real array"):
        dropconnect_risk(Y, U, V, 0.5, scheme, A=A + 1j)
    with pytest.raises(TypeError, match="^The 'V' parameter of dropconnect_penalty must be a real array"):
        dropconnect_penalty(U, torch.from_numpy(V) + 1j, 0.5, scheme, A=torch.from_numpy(A))
    with pytest.raises(ValueError, match="'chunk' parameter of dropconnect_risk_mc must be an int >= 1 w"):
        dropconnect_risk_mc(Y, U, V, 0.5, scheme, A=A, num_samples=10**12, chunk=10**12)
