"""hdlcore.homogeneity: degrees of networks and regularizers, Euler's identity, the hypothesis check.

Evidence of four kinds: properties over random models (hypothesis), exact degrees as oracles
(closed forms, including non-integer and weighted degrees and the batch-norm epsilon effect),
the caller's module left untouched, and one error message per bad input.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

import hdlcore as hd
from hdlcore.homogeneity import DEFAULT_SCALES, balanced_rescaling, default_rtol, euler_degree

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread avoids thread contention on a shared, loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mlp(widths, *, bias=False, act=nn.ReLU, dtype=F64, seed=0):
    torch.manual_seed(seed)
    layers = []
    for k, (i, o) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(i, o, bias=bias))
        if k < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers).to(dtype)


def linear_layers(net):
    return [m for m in net.modules() if isinstance(m, nn.Linear | nn.Conv2d)]


# ---------------------------------------------------------------------------------------------
# properties


@given(
    depth=st.integers(1, 5),
    width=st.integers(1, 8),
    seed=st.integers(0, 10_000),
    dtype=st.sampled_from([torch.float32, F64]),
    leaky=st.booleans(),
)
def test_bias_free_relu_mlp_has_degree_depth_and_one_per_layer(depth, width, seed, dtype, leaky):
    net = mlp(
        [3] + [width] * (depth - 1) + [2], act=nn.LeakyReLU if leaky else nn.ReLU, dtype=dtype, seed=seed
    )
    A = torch.randn(7, 3, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        assume(bool(net(A).abs().max() > 1e-3))
    result = hd.degree(net, inputs=A)
    assert result.homogeneous, result.verdict
    assert result.degree == depth
    assert result.verdict == f"homogeneous of degree {depth}"
    assert abs(result.euler_degree - depth) < 1e-3 * depth
    layer = linear_layers(net)[seed % depth]
    one = hd.degree(net, inputs=A, params=[layer])
    assert one.homogeneous and one.degree == 1, one.verdict
    assert hd.degree(net, inputs=A, wrt="inputs").degree == 1
    assert hd.degree(net, inputs=A, wrt="both").degree == depth + 1


@given(
    channels=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    pool=st.sampled_from(["max", "avg"]),
    seed=st.integers(0, 10_000),
)
def test_bias_free_cnn_has_degree_number_of_weight_layers(channels, pool, seed):
    torch.manual_seed(seed)
    layers, c = [], 2
    for co in channels:
        layers += [
            nn.Conv2d(c, co, 3, padding=1, bias=False),
            nn.ReLU(),
            nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2),
        ]
        c = co
    size = 16 // 2 ** len(channels)
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * size * size, 3, bias=False)).double()
    A = torch.randn(4, 2, 16, 16, dtype=F64)
    with torch.no_grad():
        assume(bool(net(A).abs().max() > 1e-6))
    result = hd.degree(net, inputs=A)
    assert result.homogeneous and result.degree == len(channels) + 1, result.verdict


NORMS = {
    "l1": lambda W: W.abs().sum(),
    "l2": lambda W: W.norm(),
    "max": lambda W: W.abs().max(),
    "nuclear": lambda W: torch.linalg.matrix_norm(W, "nuc"),
}


@st.composite
def regularizers(draw):
    """A product of norm powers of random tensors: (function, its degree)."""
    n = draw(st.integers(1, 3))
    terms = draw(
        st.lists(
            st.tuples(
                st.integers(0, n - 1), st.sampled_from(sorted(NORMS)), st.sampled_from([0.5, 1.0, 2.0, 3.0])
            ),
            min_size=1,
            max_size=4,
        )
    )

    def theta(*Ws):
        return math.prod(NORMS[k](Ws[i]) ** e for i, k, e in terms)

    return n, theta, sum(e for _, _, e in terms)


@given(reg=regularizers(), seed=st.integers(0, 10_000), coef=st.floats(0.1, 10))
def test_regularizers_of_known_degree(reg, seed, coef):
    n, theta, p = reg
    g = torch.Generator().manual_seed(seed)
    Ws = tuple(torch.randn(3, 4, dtype=F64, generator=g) for _ in range(n))
    result = hd.degree(theta, Ws)
    assert result.homogeneous and abs(result.degree - p) < 1e-9, result.verdict
    assert abs(result.euler_degree - p) < 1e-9
    # a sum of two terms of the same degree keeps it; of different degrees breaks it
    same = hd.degree(lambda *W: theta(*W) + coef * W[0].norm() ** p, Ws)
    assert same.homogeneous and abs(same.degree - p) < 1e-9
    mixed = hd.degree(lambda *W: theta(*W) + coef * W[0].norm() ** (p + 1), Ws)
    assert not mixed.homogeneous and mixed.verdict.startswith("not homogeneous")


@given(
    depth=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["bias", "sigmoid", "tanh", "gelu", "softplus"]),
)
def test_non_homogeneous_modules(depth, seed, kind):
    act = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU, "softplus": nn.Softplus}.get(
        kind, nn.ReLU
    )
    depth = max(depth, 2) if kind == "bias" else depth  # one affine layer is degree 1 in (W, b)
    net = mlp([3] + [6] * (depth - 1) + [2], bias=kind == "bias", act=act, seed=seed)
    if kind != "bias" and depth == 1:
        net = nn.Sequential(net, act())  # one layer and an activation
    A = torch.randn(9, 3, dtype=F64, generator=torch.Generator().manual_seed(seed))
    result = hd.degree(net, inputs=A)
    assert not result.homogeneous and result.verdict.startswith("not homogeneous"), result.verdict
    assert result.max_deviation > 1e-3


# ---------------------------------------------------------------------------------------------
# oracles: exact degrees


@given(p=st.floats(0.05, 6.0), seed=st.integers(0, 1000))
def test_non_integer_degree_of_a_norm_power(p, seed):
    W = torch.randn(4, 3, dtype=F64, generator=torch.Generator().manual_seed(seed))
    result = hd.degree(lambda W: -(W.norm() ** p), (W,))  # negative values: signs are kept
    assert result.homogeneous and abs(result.degree - p) < 1e-9
    assert abs(euler_degree(lambda W: W.norm() ** p, (W,)) - p) < 1e-9


def test_matrix_product_and_argnums():
    U, V = torch.randn(5, 2, dtype=F64), torch.randn(4, 2, dtype=F64)
    assert hd.degree(lambda U, V: U @ V.T, (U, V)).degree == 2
    assert hd.degree(lambda U, V: U @ V.T, (U, V), argnums=1).degree == 1
    assert hd.degree(lambda U, V: U @ V.T, [U, V], argnums=[-1, 0]).degree == 2
    assert hd.degree(lambda U: torch.ones(3, dtype=F64) * 5, (U,)).degree == 0  # constants: degree 0


def test_quadratic_activation_network_has_degree_two_to_the_k_minus_one():
    torch.manual_seed(0)
    Ws = [torch.randn(4, 3, dtype=F64), torch.randn(4, 4, dtype=F64), torch.randn(2, 4, dtype=F64)]
    A = torch.randn(6, 3, dtype=F64)

    def net(W1, W2, W3):
        return ((A @ W1.T) ** 2 @ W2.T) ** 2 @ W3.T  # degrees 1 -> 2 -> 3 -> 6 -> 7

    assert hd.degree(net, Ws).degree == 7


def test_bias_scaled_by_a_to_the_k_restores_degree_k():
    net = mlp([3, 5, 5, 2], bias=True)
    A = torch.randn(8, 3, dtype=F64)
    assert not hd.degree(net, inputs=A).homogeneous
    powers = {f"{2 * k}.bias": k + 1 for k in range(3)}  # layer k (1-based) bias scaled by a^k
    result = hd.degree(net, inputs=A, powers=powers)
    assert result.homogeneous and result.degree == 3, result.verdict
    assert "weighted" in result.scaled
    assert abs(result.euler_degree - 3) < 1e-9


def test_issue_example_conv_relu_maxpool_linear():
    torch.manual_seed(1)
    A = torch.randn(5, 3, 10, 10)

    def model(conv_bias, lin_bias):
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, bias=conv_bias),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * 4 * 4, 6, bias=lin_bias),
        )

    result = hd.degree(model(False, False), inputs=A)
    assert result.homogeneous and result.degree == 2 and result.verdict == "homogeneous of degree 2"
    assert result.rtol == default_rtol(torch.finfo(torch.float32).eps)
    weights = lambda name: not name.endswith("bias")  # noqa: E731
    for biases in [(True, False), (False, True), (True, True)]:
        # in its weights (biases held fixed), a bias anywhere breaks homogeneity
        assert not hd.degree(model(*biases), inputs=A, params=weights).homogeneous
    # in all parameters jointly, a bias in the first layer does not: relu(a W1 A + a b1) = a relu(...)
    assert hd.degree(model(True, False), inputs=A).degree == 2
    assert not hd.degree(model(False, True), inputs=A).homogeneous
    assert not hd.degree(model(True, True), inputs=A).homogeneous


def test_batchnorm_deviation_matches_its_epsilon_exactly():
    """Linear -> BatchNorm (train mode): degree 0 in the weight, up to BN's eps, by formula."""
    torch.manual_seed(2)
    lin, bn = nn.Linear(4, 3, bias=False).double(), nn.BatchNorm1d(3, affine=False).double()
    net = nn.Sequential(lin, bn)
    A = torch.randn(32, 4, dtype=F64)
    result = hd.degree(net, inputs=A, params=[lin])
    Z = A @ lin.weight.detach().T  # (N, 3) pre-activations
    var = Z.var(0, unbiased=False)
    xhat = (Z - Z.mean(0)) / torch.sqrt(var + bn.eps)
    p = result.fitted_degree  # not homogeneous: the deviations are at the best fit
    expected = []
    for a in DEFAULT_SCALES:
        ratio = torch.sqrt(var + bn.eps) / torch.sqrt(var + bn.eps / a**2)  # BN(aZ) = ratio * xhat
        expected.append(float((xhat * (ratio - a**p)).abs().max() / (a**p * xhat.abs().max())))
    np.testing.assert_allclose(result.deviations, expected, rtol=1e-6)
    assert not result.homogeneous  # eps = 1e-5 is visible in float64
    bn.eps = 1e-14
    tiny = hd.degree(net, inputs=A, params=[lin])
    assert tiny.homogeneous and tiny.degree == 0
    assert any("batch norm" in n for n in tiny.notes)
    bn.eval()  # running statistics: an affine map, and at initialization a plain scaling
    assert hd.degree(net, inputs=A, params=[lin]).degree == 1


def test_sign_changes_are_caught():
    x = torch.tensor([0.7, -1.3, 2.0], dtype=F64)

    def f(x):  # |f(a x)| = a^2 |f(x)|, but the sign flips every octave of |x|
        return x**2 * torch.sign(torch.sin(math.pi * torch.log2(x.abs())) + 1e-12)

    result = hd.degree(f, (x,))
    assert not result.homogeneous and result.sign_changes > 0
    assert "change sign" in result.verdict


def test_euler_catches_a_function_homogeneous_only_at_the_scales_tried():
    W = torch.randn(3, 3, dtype=F64)

    def f(W):  # f(2^k W) = 4^k f(W) exactly, yet f is not homogeneous
        r = W.norm()
        return r**2 * (2 + torch.sin(2 * math.pi * torch.log2(r)))

    result = hd.degree(f, (W,), scales=(0.5, 2.0, 4.0))
    assert result.max_deviation < 1e-12 and not result.homogeneous
    assert "Euler" in result.verdict
    assert not hd.degree(f, (W,)).homogeneous  # the irregular default scales catch it too


def test_numpy_function_is_measured_without_euler():
    W = np.arange(1.0, 7.0).reshape(2, 3)
    result = hd.degree(lambda W: np.linalg.norm(W) ** 3, (W,))
    assert result.homogeneous and result.degree == 3
    assert math.isnan(result.euler_degree) and "Euler" in result.notes[0]
    assert math.isnan(euler_degree(lambda W: np.linalg.norm(W) ** 3, (W,)))


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_non_differentiable_output_is_reported_not_wrong():
    W = torch.randn(3, dtype=F64)
    result = hd.degree(lambda W: float(W.norm()) ** 2, (W,))  # a float: no gradient path
    assert result.homogeneous and result.degree == 2 and math.isnan(result.euler_degree)


def test_float32_and_float64_tolerances():
    assert default_rtol(np.finfo(np.float64).eps) < 1e-10 < default_rtol(np.finfo(np.float32).eps) < 1e-4
    net = mlp([10, 64, 64, 64, 3], dtype=torch.float32)
    result = hd.degree(net, inputs=torch.randn(32, 10))
    assert result.homogeneous and result.degree == 4
    assert result.rtol == default_rtol(torch.finfo(torch.float32).eps)
    # a bias of relative size 1e-3 is far above the float32 tolerance
    net_b = mlp([10, 64, 3], bias=True, dtype=torch.float32)
    with torch.no_grad():
        for m in linear_layers(net_b):
            m.bias.mul_(1e-3)
    assert not hd.degree(net_b, inputs=torch.randn(32, 10)).homogeneous


def test_dropout_in_training_mode_uses_the_same_masks():
    torch.manual_seed(3)
    net = (
        nn.Sequential(nn.Linear(5, 20, bias=False), nn.ReLU(), nn.Dropout(0.5), nn.Linear(20, 2, bias=False))
        .double()
        .train()
    )
    A = torch.randn(10, 5, dtype=F64)
    state = torch.get_rng_state()
    result = hd.degree(net, inputs=A)
    assert result.homogeneous and result.degree == 2
    assert any("dropout" in n for n in result.notes)
    assert torch.equal(state, torch.get_rng_state())  # the caller's generator is not advanced


# ---------------------------------------------------------------------------------------------
# the caller's module is never modified


class Fails(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3, bias=False)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, A):
        out = self.bn(self.lin(A))
        if self.lin.weight.abs().max() > 10:
            raise RuntimeError("boom")
        return out


def test_module_parameters_buffers_and_grads_are_left_untouched():
    net = Fails().train()
    net.lin.weight.data.fill_(4.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    A = torch.randn(8, 3)
    hd.degree(net, inputs=A, scales=(0.5, 2.0))  # BN in train mode would update its buffers
    with pytest.raises(RuntimeError, match="boom"):  # a = 3.7 makes the forward raise
        hd.degree(net, inputs=A)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net.lin.weight.requires_grad and net.lin.weight.grad is None and net.training
    assert isinstance(net.lin.weight, nn.Parameter)


# ---------------------------------------------------------------------------------------------
# the hypothesis check


def test_check_degrees_functions_and_messages():
    torch.manual_seed(4)
    Ws = tuple(torch.randn(4, 4, dtype=F64) for _ in range(3))
    A = torch.randn(6, 4, dtype=F64)

    def net(W1, W2, W3):
        return torch.relu(torch.relu(A @ W1.T) @ W2.T) @ W3.T

    prod = hd.check_degrees(net, lambda *W: math.prod(w.norm() for w in W), Ws)
    assert prod.matched and prod.network_degree == prod.regularizer_degree == 3
    assert prod.message == "hypothesis holds: network and regularizer are both homogeneous of degree 3"
    decay = hd.check_degrees(net, lambda *W: sum(w.pow(2).sum() for w in W), Ws)
    assert (
        not decay.matched
        and decay.message == "hypothesis fails: network of degree 3, regularizer of degree 2"
    )
    with pytest.warns(hd.HypothesisWarning, match="network of degree 3, regularizer of degree 2"):
        hd.check_degrees(net, lambda *W: sum(w.pow(2).sum() for w in W), Ws, warn=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hd.check_degrees(net, lambda *W: math.prod(w.norm() for w in W), Ws, warn=True)
    bad = hd.check_degrees(lambda *W: net(*W) + 1.0, lambda *W: math.prod(w.norm() for w in W), Ws)
    assert not bad.matched and bad.message.startswith("hypothesis fails: the network is not homogeneous")


def test_check_degrees_module_and_regularizer_of_module():
    net = mlp([3, 6, 6, 2])
    A = torch.randn(5, 3, dtype=F64)
    product = hd.check_degrees(net, lambda m: math.prod(p.norm() for p in m.parameters()), inputs=A)
    assert product.matched and product.network_degree == 3
    decay = hd.check_degrees(net, lambda m: sum(p.pow(2).sum() for p in m.parameters()), inputs=A)
    assert decay.message == "hypothesis fails: network of degree 3, regularizer of degree 2"
    first = linear_layers(net)[0]
    layer = hd.check_degrees(net, lambda m: first.weight.norm(), params=[first], inputs=A)
    assert layer.network_degree == 1 and layer.regularizer_degree == 1 and layer.matched


# ---------------------------------------------------------------------------------------------
# rescaling symmetry and AM-GM


@given(seed=st.integers(0, 10_000), depth=st.integers(2, 5))
def test_balanced_rescaling_keeps_the_network_and_the_product(seed, depth):
    net = mlp([3] + [5] * (depth - 1) + [2], seed=seed)
    layers = linear_layers(net)
    Ws = [m.weight.detach() * (k + 0.5) for k, m in enumerate(layers)]
    balanced = balanced_rescaling(Ws)
    norms = torch.stack([W.norm() for W in balanced])
    assert torch.allclose(norms, norms[0].expand_as(norms), rtol=1e-12)
    prod = math.prod(float(W.norm()) for W in Ws)
    assert math.isclose(math.prod(float(W.norm()) for W in balanced), prod, rel_tol=1e-12)
    bal_sum = sum(float(W.norm()) ** depth for W in balanced) / depth
    assert math.isclose(bal_sum, prod, rel_tol=1e-12)  # AM-GM equality
    assert sum(float(W.norm()) ** depth for W in Ws) / depth >= prod * (1 - 1e-12)
    A = torch.randn(4, 3, dtype=F64)

    def run(Ws):
        h = A
        for W in Ws[:-1]:
            h = torch.relu(h @ W.T)
        return h @ Ws[-1].T

    assert torch.allclose(run(Ws), run(balanced), rtol=1e-11, atol=1e-13)


def test_balanced_rescaling_types_and_errors():
    out = balanced_rescaling([np.eye(2), 4 * np.eye(2)])
    assert all(isinstance(W, np.ndarray) for W in out)
    assert isinstance(balanced_rescaling([torch.eye(2)])[0], torch.Tensor)
    with pytest.raises(ValueError, match="'weights' parameter of balanced_rescaling must have no zero layer"):
        balanced_rescaling([np.eye(2), np.zeros((2, 2))])
    with pytest.raises(TypeError, match="'weights' parameter"):
        balanced_rescaling([])


# ---------------------------------------------------------------------------------------------
# errors: one message per bad input, naming the parameter


def _square(W):
    return W**2


W0 = torch.randn(3, dtype=F64)


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (
            lambda: hd.degree(_square, (W0,), scales=(-1.0, 2.0)),
            ValueError,
            "The 'scales' parameter of degree must be a float > 0. Got -1.0 instead.",
        ),
        (
            lambda: hd.degree(_square, (W0,), scales=[0.0]),
            ValueError,
            "'scales' parameter of degree must be a float > 0",
        ),
        (lambda: hd.degree(_square, (W0,), scales=[1.0]), ValueError, "a scale a > 0 other than 1"),
        (lambda: hd.degree(_square, (W0,), scales=[float("nan")]), ValueError, "'scales'"),
        (
            lambda: hd.degree(_square, (W0,), rtol=0),
            ValueError,
            "'rtol' parameter of degree must be a float > 0",
        ),
        (
            lambda: hd.degree(nn.ReLU(), inputs=W0),
            ValueError,
            "The 'f' parameter of degree must be a module with parameters to scale (or pass wrt='inputs'",
        ),
        (
            lambda: hd.degree(lambda W: W / 0.0, (W0,)),
            ValueError,
            "The 'f' parameter of degree must be a callable returning finite values",
        ),
        (lambda: hd.degree(lambda W: W.log(), (-W0.abs(),)), ValueError, "Got NaN or inf at a = 1"),
        (
            lambda: hd.degree(lambda W: torch.relu(W), (-W0.abs(),)),
            ValueError,
            "The 'params' parameter of degree must be a point where f is not identically zero",
        ),
        (
            lambda: hd.degree(nn.ReLU(), inputs=-W0.abs(), wrt="inputs"),
            ValueError,
            "The 'inputs' parameter of degree must be a point where f is not identically zero",
        ),
        (
            lambda: hd.degree(_square, ([1.0, 2.0],)),
            TypeError,
            "The 'params' parameter of degree must be floating-point tensors (or numpy float arrays)",
        ),
        (lambda: hd.degree(_square, (torch.arange(3),)), TypeError, "at position 0"),
        (
            lambda: hd.degree(_square, "abc"),
            TypeError,
            "'params' parameter of degree must be a non-empty tuple",
        ),
        (lambda: hd.degree(_square), TypeError, "'params' parameter of degree must be a tuple of tensors"),
        (lambda: hd.degree(3.0, (W0,)), TypeError, "'f' parameter of degree must be a callable"),
        (
            lambda: hd.degree(_square, (W0,), inputs=W0),
            TypeError,
            "'inputs' parameter of degree must be None",
        ),
        (
            lambda: hd.degree(_square, (W0,), wrt="inputs"),
            ValueError,
            "'wrt' parameter of degree must be 'params'",
        ),
        (lambda: hd.degree(_square, (W0,), argnums=3), ValueError, "'argnums' parameter of degree"),
        (
            lambda: hd.degree(_square, (W0,), powers=[1, 2]),
            TypeError,
            "'powers' parameter of degree must be a sequence of 1",
        ),
        (
            lambda: hd.degree(lambda W: "x", (W0,)),
            TypeError,
            "'f' parameter of degree must be a callable returning a tensor",
        ),
        (
            lambda: hd.degree(lambda W: W[: int(W.abs().sum() > 3) + 1], (torch.ones(3, dtype=F64),)),
            ValueError,
            "whose output shape does not depend on the scale",
        ),
        (
            lambda: hd.degree(nn.Linear(3, 2), None),
            TypeError,
            "'inputs' parameter of degree must be a tensor",
        ),
        (
            lambda: hd.degree(nn.Linear(3, 2), inputs="A"),
            TypeError,
            "'inputs' parameter of degree must be a tensor",
        ),
        (
            lambda: hd.degree(nn.Linear(3, 2), params=[nn.Linear(3, 2).weight], inputs=torch.randn(2, 3)),
            ValueError,
            "'params' parameter of degree must be parameters, submodules or parameter names of the Linear",
        ),
        (
            lambda: hd.degree(nn.Linear(3, 2), params=["nope"], inputs=torch.randn(2, 3)),
            ValueError,
            "'params'",
        ),
        (
            lambda: hd.degree(nn.Linear(3, 2), params=lambda n: n == "nope", inputs=torch.randn(2, 3)),
            ValueError,
            "'params' parameter of degree must be a filter selecting at least one parameter name",
        ),
        (
            lambda: hd.degree(nn.Linear(3, 2), params=["weight"], inputs=torch.randn(2, 3), wrt="inputs"),
            ValueError,
            "'params' parameter of degree must be None when wrt='inputs'",
        ),
        (
            lambda: hd.degree(nn.Linear(3, 2), inputs=torch.randn(2, 3), wrt="weights"),
            ValueError,
            "'wrt' parameter of degree must be one of 'params', 'inputs', 'both'",
        ),
        (
            lambda: hd.degree(nn.Linear(3, 2), inputs=torch.randn(2, 3), powers={"w": 2}),
            ValueError,
            "'powers'",
        ),
        (
            lambda: hd.check_degrees(_square, _square, (W0,)),
            ValueError,
            "The 'regularizer' parameter of check_degrees must be a callable returning a scalar. "
            "Got output an array of shape (3,)",
        ),
        (
            lambda: hd.check_degrees(nn.Linear(3, 2), lambda m: m.weight, inputs=torch.randn(2, 3)),
            ValueError,
            "'regularizer' parameter of check_degrees must be a callable returning a scalar",
        ),
        (
            lambda: hd.check_degrees(_square, "l2", (W0,)),
            TypeError,
            "'regularizer' parameter of check_degrees",
        ),
        (
            lambda: hd.check_degrees(nn.ReLU(), lambda m: 1.0, inputs=W0),
            ValueError,
            "The 'network' parameter of check_degrees must be a module with parameters",
        ),
        (lambda: hd.euler_degree(lambda W: 0 * W, (W0,)), ValueError, "'params' parameter of euler_degree"),
    ],
)
def test_errors_name_the_parameter(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert message in str(info.value)


def test_function_not_homogeneous_from_zero():
    result = hd.degree(lambda W: torch.relu(W - 1.0), (torch.full((3,), 0.9, dtype=F64),))
    assert not result.homogeneous and math.isnan(result.degree) and result.max_deviation == math.inf
    assert result.verdict.startswith("not homogeneous: f(x) = 0 but f(a x) != 0")


@pytest.mark.cuda
def test_degree_on_cuda():
    net = mlp([3, 16, 16, 2], dtype=torch.float32).cuda()
    A = torch.randn(8, 3, device="cuda")
    result = hd.degree(net, inputs=A)
    assert result.homogeneous and result.degree == 3
    assert hd.degree(mlp([3, 16, 2], bias=True, dtype=torch.float32).cuda(), inputs=A).homogeneous is False


def test_tf32_on_cuda_gets_the_tf32_tolerance(monkeypatch):
    """float32 on CUDA may run in TF32: the default tolerance then follows TF32's 10-bit mantissa."""
    import hdlcore.homogeneity.scaling as scaling

    assert scaling._tf32_possible([]) is False  # no CUDA tensor: never
    monkeypatch.setattr(scaling, "_tf32_possible", lambda devices: True)
    net = mlp([4, 8, 2], dtype=torch.float32)
    result = hd.degree(net, inputs=torch.randn(5, 4))
    assert result.rtol == pytest.approx(default_rtol(2.0**-10)) and result.degree == 2
    assert any("TF32" in n for n in result.notes)
    assert hd.degree(mlp([4, 8, 2]), inputs=torch.randn(5, 4, dtype=F64)).rtol == default_rtol(2.0**-52)


def test_not_homogeneous_has_nan_degree_and_a_best_fit():
    result = hd.degree(lambda W: W.norm() ** 2 + W.norm() ** 3, (torch.randn(4, dtype=F64),))
    assert not result.homogeneous and math.isnan(result.degree)
    assert 2 < result.fitted_degree < 3


def test_integer_inputs_tied_weights_tuple_inputs_and_half_precision():
    torch.manual_seed(5)
    emb = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3, bias=False), nn.ReLU(),
                        nn.Linear(3, 2, bias=False))
    assert hd.degree(emb, inputs=np.array([[1, 2, 3], [4, 5, 6]])).degree == 3  # indices stay integers
    lin = nn.Linear(4, 4, bias=False)
    assert hd.degree(nn.Sequential(lin, nn.ReLU(), lin), inputs=torch.randn(5, 4)).degree == 2  # scaled once

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2, bias=False)

        def forward(self, a, b):
            return self.lin(a) * self.lin(b)

    pair = (torch.randn(4, 3), torch.randn(4, 3))
    assert hd.degree(Two(), inputs=pair).degree == 2
    assert hd.degree(Two(), inputs=pair, wrt="inputs").degree == 2
    half = mlp([4, 8, 2], dtype=torch.bfloat16)
    result = hd.degree(half, inputs=torch.randn(16, 4, dtype=torch.bfloat16))
    assert result.homogeneous and result.degree == 2 and result.rtol > 0.05


def test_half_precision_uses_narrow_scales():
    # a^p f over the default scales leaves float16's range for a deep network (seen on an H100)
    torch.manual_seed(0)
    layers = [m for _ in range(8) for m in (nn.Linear(64, 64, bias=False), nn.ReLU())][:-1]
    net = nn.Sequential(*layers).to(torch.bfloat16)
    result = hd.degree(net, inputs=torch.randn(16, 64, dtype=torch.bfloat16))
    assert result.degree == 8 and result.scales == hd.homogeneity.HALF_SCALES
    assert any("narrow range" in n for n in result.notes)
