"""Chapter 2's zoo (hdlcore.homogeneity.zoo, and hdlcore.motivation.mlp's bias and activation
options): each network has the degree of positive homogeneity the chapter states, measured with
hd.degree and checked against the definition f(aW) = a^p f(W) directly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hdlcore as hd
from hdlcore import motivation as mo
from hdlcore.homogeneity import zoo

F64 = torch.float64


@pytest.fixture
def images():
    return torch.randn(4, 3, 12, 12, dtype=F64, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def A():
    return torch.randn(16, 6, dtype=F64, generator=torch.Generator().manual_seed(1))


def scaled_output(net, x, a, params=None):
    """net(x) with the given parameters (default: all) multiplied by a, computed by hand."""
    params = list(net.parameters()) if params is None else params
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p in params:
            p.mul_(a)
        out = net(x)
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    return out


@pytest.mark.parametrize("layers", [2, 3])
def test_cnn_has_degree_layers_in_its_weights_and_1_in_each_layer(layers, images):
    torch.manual_seed(0)
    net = zoo.cnn(layers)
    assert sum(isinstance(m, nn.Conv2d | nn.Linear) for m in net) == layers
    with torch.no_grad():
        out = net(images)
    assert torch.allclose(scaled_output(net, images, 2.5), 2.5**layers * out, rtol=1e-12, atol=0)
    r = hd.degree(net, inputs=images)
    assert r.homogeneous and r.degree == pytest.approx(layers, abs=1e-9)
    first = [m for m in net if isinstance(m, nn.Conv2d)][0]
    assert hd.degree(net, params=[first], inputs=images).degree == pytest.approx(1, abs=1e-9)
    assert hd.degree(net, inputs=images, wrt="inputs").degree == pytest.approx(1, abs=1e-9)


def test_cnn_with_biases_is_not_homogeneous(images):
    torch.manual_seed(0)
    assert not hd.degree(zoo.cnn(2, bias=True), inputs=images).homogeneous


def test_cnn_float32_and_other_sizes():
    net = zoo.cnn(2, dtype=torch.float32, in_channels=1, image_size=8, out_features=4)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    assert next(net.parameters()).dtype == torch.float32


def test_residual_block_is_degree_1_in_its_input_not_homogeneous_in_its_weights(A):
    torch.manual_seed(0)
    block = zoo.Residual(6)
    with torch.no_grad():
        assert torch.allclose(block(3 * A), 3 * block(A), rtol=1e-12, atol=1e-14)
    assert hd.degree(block, inputs=A, wrt="inputs").degree == pytest.approx(1, abs=1e-9)
    assert hd.degree(block, inputs=A).max_deviation > 1e-2


def test_square_activation_network_has_degree_2_to_the_K_minus_1(A):
    net = mo.mlp([6, 16, 16, 3], bias=False, activation=zoo.Square,
                 generator=torch.Generator().manual_seed(0))
    assert sum(isinstance(m, zoo.Square) for m in net) == 2
    with torch.no_grad():
        out = net(A)
    assert torch.allclose(scaled_output(net, A, 1.7), 1.7**7 * out, rtol=1e-12, atol=0)
    assert hd.degree(net, inputs=A).degree == pytest.approx(7, abs=1e-8)


def test_batchnorm_network_is_scale_invariant_before_the_normalization(A):
    torch.manual_seed(0)
    net = zoo.batchnorm_mlp()
    before = net[1].running_var.clone()
    r = hd.degree(net, params=[net[0]], inputs=A)
    assert net.training and r.degree == pytest.approx(0, abs=1e-6)
    assert hd.degree(net, inputs=A).degree == pytest.approx(2, abs=1e-6)
    assert torch.equal(before, net[1].running_var)


@pytest.mark.parametrize("K", [2, 3, 4])
def test_mlp_with_a_bias_in_the_first_layer_only_has_degree_K_jointly(K, A):
    net = mo.mlp([6, *[8] * (K - 1), 3], bias="first", generator=torch.Generator().manual_seed(K))
    linear = [m for m in net if isinstance(m, nn.Linear)]
    assert linear[0].bias is not None and all(m.bias is None for m in linear[1:])
    with torch.no_grad():
        out = net(A)
    assert torch.allclose(scaled_output(net, A, 0.6), 0.6**K * out, rtol=1e-12, atol=1e-15)
    assert hd.degree(net, inputs=A, wrt="inputs").max_deviation > 1e-2


def test_mlp_activation_by_name_or_module_class(A):
    assert isinstance(mo.mlp([6, 4, 1], activation="gelu")[1], nn.GELU)
    assert isinstance(mo.mlp([6, 4, 1], activation=nn.LeakyReLU)[1], nn.LeakyReLU)
    assert not hd.degree(mo.mlp([6, 4, 4, 1], bias=False, activation="gelu"), inputs=A).homogeneous


@pytest.mark.parametrize("call, param", [
    (lambda: zoo.cnn(4), "layers"),
    (lambda: zoo.cnn(2, image_size=3), "image_size"),
    (lambda: zoo.Residual(0), "d"),
    (lambda: zoo.batchnorm_mlp(eps=0.0), "eps"),
    (lambda: mo.mlp([2, 3, 1], bias="last"), "bias"),
    (lambda: mo.mlp([2, 3, 1], activation="swish"), "activation"),
    (lambda: mo.mlp([2, 3, 1], activation=3), "activation"),
    (lambda: mo.mlp([2, 3, 1], activation=lambda: "relu"), "activation"),
])
def test_bad_input_gets_the_library_error(call, param):
    with pytest.raises((ValueError, TypeError), match=f"The '{param}' parameter of "):
        call()
