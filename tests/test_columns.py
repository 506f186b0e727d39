"""add_column: the growth step of the meta-algorithm, checked against the objective and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hdlcore as hd

seeds = st.integers(0, 2**32 - 1)


def test_from_zero_with_full_data_it_is_the_scaled_top_singular_pair():
    # From X = 0 the column is sqrt(sigma_1 - lam) (w_1, z_1), lowering F by (sigma_1 - lam)^2 / 2.
    Y, _ = hd.low_rank_matrix(10, 8, 3, rng=1)
    W, s, Zt = np.linalg.svd(Y)
    lam = 0.5
    step = hd.add_column(Y, np.zeros((10, 0)), np.zeros((8, 0)), lam)
    np.testing.assert_allclose(step.U @ step.V.T, (s[0] - lam) * np.outer(W[:, 0], Zt[0]), atol=1e-10)
    assert step.scale == pytest.approx(s[0] - lam, rel=1e-12)
    assert step.change == pytest.approx(-0.5 * (s[0] - lam) ** 2, rel=1e-12)
    assert step.polar == pytest.approx(s[0] / lam, rel=1e-12)
    assert step.polar_kind == "exact" and step.column == 0


@settings(max_examples=20, deadline=None)
@given(seed=seeds, norms=st.sampled_from([("l2", "l2"), ("l1", "l2"), ("l2", "l1"), ("l1", "l1")]))
def test_the_change_is_the_objective_difference_and_no_other_scale_does_better(seed, norms):
    rng = np.random.default_rng(seed)
    Y, _ = hd.low_rank_matrix(9, 7, 3, noise=0.3, rng=rng)
    mask = hd.random_mask(Y.shape, 0.6, rng=rng)
    U, V = 0.3 * rng.standard_normal((9, 2)), 0.3 * rng.standard_normal((7, 2))
    lam = 0.2
    f0 = hd.factorized_objective(Y, U, V, lam, mask, norms)
    step = hd.add_column(Y, U, V, lam, mask, norms)
    f1 = hd.factorized_objective(Y, step.U, step.V, lam, mask, norms)
    assert step.U.shape == (9, 3) and step.V.shape == (7, 3)
    assert f1 - f0 == pytest.approx(step.change, rel=1e-9, abs=1e-12 * f0)
    assert step.change <= 0
    assert (step.change < 0) == (step.polar > 1)
    # the exact line search: any other scale of the same column changes F by at least as much
    u = step.U[:, -1] / max(np.sqrt(step.scale), 1e-300)
    v = step.V[:, -1] / max(np.sqrt(step.scale), 1e-300)
    for t in (0.5, 0.9, 1.1, 2.0):
        s = t * step.scale
        Ut, Vt = np.column_stack([U, np.sqrt(s) * u]), np.column_stack([V, np.sqrt(s) * v])
        assert hd.factorized_objective(Y, Ut, Vt, lam, mask, norms) >= f1 - 1e-12 * f0


def test_at_fills_a_zero_column_with_the_same_point_as_appending():
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((8, 5))
    U = np.column_stack([rng.standard_normal(8), np.zeros(8)])
    V = np.column_stack([rng.standard_normal(5), np.zeros(5)])
    appended = hd.add_column(Y, U, V, 0.5)
    filled = hd.add_column(Y, U, V, 0.5, at=1)
    assert filled.U.shape == (8, 2) and filled.column == 1
    np.testing.assert_allclose(filled.U @ filled.V.T, appended.U @ appended.V.T, atol=1e-12)
    assert filled.change == appended.change


def test_at_must_name_a_zero_column():
    rng = np.random.default_rng(3)
    Y, U, V = rng.standard_normal((6, 4)), rng.standard_normal((6, 2)), rng.standard_normal((4, 2))
    with pytest.raises(ValueError, match="The 'at' parameter of add_column must be the index of a zero"):
        hd.add_column(Y, U, V, 0.5, at=0)
    with pytest.raises(ValueError, match="The 'at' parameter of add_column"):
        hd.add_column(Y, U, V, 0.5, at=2)


def test_at_an_optimum_the_step_is_zero():
    Y = np.diag([5.0, 3.0, 1.0])
    res = hd.grow(Y, 2.0)
    step = hd.add_column(Y, res.U, res.V, 2.0)
    assert step.polar <= 1 + 1e-9 and step.scale <= 1e-12 and -1e-20 <= step.change <= 0


def test_torch_in_torch_out():
    import torch

    Y = torch.randn(6, 4, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    step = hd.add_column(Y, torch.zeros(6, 0), torch.zeros(4, 0), 0.1)
    assert isinstance(step.U, torch.Tensor) and step.U.dtype == torch.float32


def test_sparse_observations_give_the_dense_masked_step():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    Y, mask = rng.standard_normal((8, 6)), rng.random((8, 6)) < 0.6
    i, j = np.nonzero(mask)
    Ys = sp.coo_matrix((Y[i, j], (i, j)), shape=Y.shape)  # the stored entries are the observed ones
    U, V = rng.standard_normal((8, 2)), rng.standard_normal((6, 2))
    dense, sparse = hd.add_column(Y, U, V, 0.5, mask), hd.add_column(Ys, U, V, 0.5)
    np.testing.assert_allclose(sparse.U @ sparse.V.T, dense.U @ dense.V.T, atol=1e-12)
    assert sparse.change == pytest.approx(dense.change, rel=1e-12)
