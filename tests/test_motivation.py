"""hdlcore.motivation: the chapter-1 experiments' building blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hdlcore import motivation as mo

floats = st.floats(-3, 3, allow_nan=False)


@given(u=floats, v=floats, y=floats, lam=st.floats(0, 2))
def test_scalar_hessian_matches_autograd(u, v, y, lam):
    w = torch.tensor([u, v], dtype=torch.float64)

    def f(w):
        return 0.5 * (y - w[0] * w[1]) ** 2 + 0.5 * lam * (w**2).sum()

    H = torch.autograd.functional.hessian(f, w).numpy()
    np.testing.assert_allclose(mo.scalar_hessian(u, v, y, lam), H, atol=1e-10)
    assert mo.scalar_objective(u, v, y, lam) == pytest.approx(f(w).item(), abs=1e-12)


@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_sawtooth_network_is_exact_and_has_6k_plus_1_parameters(k):
    x = np.linspace(0, 1, 1025)
    net = mo.sawtooth_network(k)
    out = net(torch.from_numpy(x[:, None])).detach().numpy().ravel()
    np.testing.assert_allclose(out, mo.sawtooth(x, k), atol=1e-12)
    assert sum(p.numel() for p in net.parameters()) == 6 * k + 1
    # the sawtooth has 2^(k-1) teeth: count the maxima equal to 1
    assert np.sum(np.isclose(mo.sawtooth(np.arange(2**k + 1) / 2**k, k), 1.0)) == 2 ** (k - 1)


def test_shallow_bound_holds_for_the_best_piecewise_linear_fit_with_given_knots():
    # Least squares over ALL functions with w fixed knots (a superset of width-w ReLU nets
    # with those knots) must still respect the bound, whatever the knots are.
    k, w = 5, 6
    x = np.linspace(0, 1, 4001)
    saw = mo.sawtooth(x, k)
    rng = np.random.default_rng(0)
    for _ in range(20):
        knots = np.sort(rng.uniform(0, 1, w))
        F = np.hstack([np.ones((len(x), 1)), x[:, None], np.maximum(x[:, None] - knots, 0)])
        coef, *_ = np.linalg.lstsq(F, saw, rcond=None)
        assert np.mean((F @ coef - saw) ** 2) >= mo.shallow_sawtooth_bound(k, w) - 1e-4
    assert mo.shallow_sawtooth_bound(3, 10) == 0.0


def test_relu_features_are_nested_so_least_squares_error_decreases():
    x = np.linspace(-1, 1, 300)
    g = np.abs(np.sin(4 * x))
    errs = []
    for w in (1, 3, 10, 30):
        F = mo.relu_features(x, w, rng=5)
        assert F.shape == (300, w + 2)
        coef, *_ = np.linalg.lstsq(F, g, rcond=None)
        errs.append(np.mean((F @ coef - g) ** 2))
    np.testing.assert_array_equal(mo.relu_features(x, 3, rng=5), mo.relu_features(x, 10, rng=5)[:, :5])
    assert np.all(np.diff(errs) <= 1e-12)


def test_hidden_units_and_matching_remove_the_symmetries():
    net = mo.mlp([3, 6, 2], generator=torch.Generator().manual_seed(0))
    other = mo.mlp([3, 6, 2], generator=torch.Generator().manual_seed(0))
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    scale = torch.tensor([0.5, 2.0, 3.0, 1.0, 0.1, 7.0], dtype=torch.float64)
    with torch.no_grad():  # permute and rescale the hidden units: same function
        other[0].weight.copy_(net[0].weight[perm] * scale[:, None])
        other[0].bias.copy_(net[0].bias[perm] * scale)
        other[2].weight.copy_(net[2].weight[:, perm] / scale)
    A = torch.randn(10, 3, dtype=torch.float64)
    torch.testing.assert_close(net(A), other(A))
    dist, match = mo.matched_distance(mo.hidden_units(net), mo.hidden_units(other))
    assert dist == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_array_equal(perm.numpy()[match], np.arange(6))


def test_fit_decreases_the_loss_and_validates():
    x = np.linspace(-1, 1, 50)[:, None]
    net = mo.mlp([1, 8, 1], generator=torch.Generator().manual_seed(1))
    losses = mo.fit(net, x, x**2, steps=200, lr=1e-2)
    assert losses[-1] < 0.2 * losses[0]
    with pytest.raises(ValueError, match="'Y' parameter of fit"):
        mo.fit(net, x, np.ones((49, 1)))
    with pytest.raises(ValueError, match="'A' parameter of fit must be finite"):
        mo.fit(net, np.full((5, 1), np.nan), np.ones((5, 1)))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"widths": [3]}, "at least two layer sizes"), ({"widths": [3, 0]}, "an int >= 1"),
     ({"widths": [2, 2], "activation": "swish"}, "'activation' parameter of mlp"),
     ({"widths": [2, 2], "gain": -1.0}, "'gain' parameter of mlp")],
)
def test_mlp_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        mo.mlp(**kwargs)


def test_preactivations_are_the_inputs_of_each_activation():
    net = mo.mlp([2, 4, 4, 1], activation="sigmoid", generator=torch.Generator().manual_seed(0))
    A = torch.randn(5, 2, dtype=torch.float64)
    z = mo.preactivations(net, A)
    assert len(z) == 2
    torch.testing.assert_close(z[0], net[0](A))
    torch.testing.assert_close(z[1], net[2](torch.sigmoid(z[0])))
