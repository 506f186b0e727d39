"""Chapter 2's zoo: small torch networks whose degree of positive homogeneity is measured.

Fully connected networks of any depth come from :func:`hdlcore.motivation.mlp` (with
``bias=False`` for the homogeneous ones, ``bias="first"`` for a bias in the first layer only,
and any activation); this module adds the other architectures of the zoo: convolutional
networks with max or average pooling, a network with batch normalization, a residual block and
the square activation. Each is built in float64 (the precision the measurements assume) unless
told otherwise.

This module imports torch; ``import hdlcore.homogeneity`` does not (import this module by name:
``from hdlcore.homogeneity import zoo``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._validation import check_choice, check_scalar

__all__ = ["Square", "Residual", "cnn", "batchnorm_mlp"]


class Square(nn.Module):
    r"""The square activation :math:`z \mapsto z^2`, entrywise: homogeneous of degree 2.

    Notes
    -----
    Positively homogeneous, but of degree 2 in its input, so degrees multiply through a network
    built with it: :math:`K` weight layers give degree :math:`2^K - 1` (the degree :math:`p_k`
    after layer :math:`k` obeys :math:`p_k = 2 p_{k-1} + 1`), e.g. 7 for :math:`K = 3`, not
    :math:`K`. Used in Chapter 2.

    Examples
    --------
    >>> Square()(torch.tensor([-2.0, 3.0]))
    tensor([4., 9.])
    """

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z**2


class Residual(nn.Module):
    r"""A bias-free residual block :math:`A \mapsto A + \psi(A W^{1\top}) W^{2\top}`.

    Parameters
    ----------
    d : int
        Width of the input, the hidden layer and the output.
    dtype : torch.dtype
        Of the weights (default float64).

    Notes
    -----
    Homogeneous of degree 1 in its input :math:`A`, but not homogeneous in its weights: the
    skip connection has degree 0 in :math:`(W^1, W^2)` and the branch degree 2. Used in
    Chapter 2.

    Examples
    --------
    >>> block = Residual(3)
    >>> A = torch.randn(4, 3, dtype=torch.float64)
    >>> bool(torch.allclose(block(2 * A), 2 * block(A)))
    True
    """

    def __init__(self, d: int, *, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        d = check_scalar(d, "d", "Residual", kind="int", ge=1)
        self.branch = nn.Sequential(nn.Linear(d, d, bias=False), nn.ReLU(),
                                    nn.Linear(d, d, bias=False)).to(dtype)

    def forward(self, A: torch.Tensor) -> torch.Tensor:
        return A + self.branch(A)  # (N, d) -> (N, d)


def cnn(layers: int = 2, *, bias: bool = False, in_channels: int = 3, image_size: int = 12,
        out_features: int = 10, dtype: Any = torch.float64) -> nn.Sequential:
    r"""A small convolutional network of the zoo, with ``layers`` weight layers.

    Parameters
    ----------
    layers : {2, 3}
        ``2``: ``Conv2d(c, 4, 3) -> ReLU -> MaxPool2d(2) -> Flatten -> Linear``.
        ``3``: ``Conv2d(c, 8, 3, padding=1) -> ReLU -> MaxPool2d(2) -> Conv2d(8, 8, 3,
        padding=1) -> ReLU -> AdaptiveAvgPool2d(2) -> Flatten -> Linear``.
    bias : bool
        Biases in every layer (they break homogeneity in the weights).
    in_channels, image_size : int
        Shape of one input image, ``(in_channels, image_size, image_size)``; the two-layer
        network needs ``image_size >= 4``, the three-layer one ``image_size >= 2``.
    out_features : int
        Outputs of the last (linear) layer.
    dtype : torch.dtype
        Of the weights (default float64; ``torch.float32`` for the float32 measurement).

    Returns
    -------
    torch.nn.Sequential

    Notes
    -----
    Convolutions, ReLU, max and average pooling are each homogeneous of degree 1, so a
    bias-free network of this kind has degree ``layers`` in all its weights, degree 1 in each
    layer alone and degree 1 in its input. Used in Chapter 2.

    Examples
    --------
    >>> net = cnn(2)
    >>> net(torch.zeros(5, 3, 12, 12, dtype=torch.float64)).shape
    torch.Size([5, 10])
    """
    func = "cnn"
    layers = check_choice(layers, "layers", func, (2, 3))
    c = check_scalar(in_channels, "in_channels", func, kind="int", ge=1)
    size = check_scalar(image_size, "image_size", func, kind="int", ge=4 if layers == 2 else 2)
    C = check_scalar(out_features, "out_features", func, kind="int", ge=1)
    if layers == 2:
        s = (size - 2) // 2  # after the 3x3 convolution without padding and 2x2 pooling
        net = nn.Sequential(nn.Conv2d(c, 4, 3, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(4 * s * s, C, bias=bias))
    else:
        net = nn.Sequential(nn.Conv2d(c, 8, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(8, 8, 3, padding=1, bias=bias), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8 * 2 * 2, C, bias=bias))
    return net.to(dtype)


def batchnorm_mlp(d: int = 6, width: int = 16, out_features: int = 3, *, eps: float = 1e-14,
                  dtype: Any = torch.float64) -> nn.Sequential:
    r"""``Linear(bias=False) -> BatchNorm1d -> ReLU -> Linear(bias=False)``, in training mode.

    Parameters
    ----------
    d, width, out_features : int
        Input, hidden and output sizes.
    eps : float
        Batch normalization's :math:`\epsilon` (PyTorch's default is ``1e-5``; the tiny default
        here makes the scale invariance exact to rounding).
    dtype : torch.dtype
        Of the weights (default float64).

    Returns
    -------
    torch.nn.Sequential
        In training mode, so batch normalization divides by the batch's standard deviation.

    Notes
    -----
    .. math:: \mathrm{BN}(\alpha z) = \frac{\alpha z - \alpha\mu}{\sqrt{\alpha^2\sigma^2 + \epsilon}}

    equals :math:`\mathrm{BN}(z)` up to :math:`\epsilon`: the network has degree 0 (scale
    invariance) in the weights before the normalization, and in all its weights jointly only
    what comes after it counts (BN's affine parameters and the last layer: degree 2). The
    deviation from invariance is of order :math:`\epsilon/\sigma^2`. Used in Chapter 2.

    Examples
    --------
    >>> net = batchnorm_mlp()
    >>> net.training, net(torch.randn(8, 6, dtype=torch.float64)).shape
    (True, torch.Size([8, 3]))
    """
    func = "batchnorm_mlp"
    d = check_scalar(d, "d", func, kind="int", ge=1)
    width = check_scalar(width, "width", func, kind="int", ge=1)
    C = check_scalar(out_features, "out_features", func, kind="int", ge=1)
    eps = check_scalar(eps, "eps", func, gt=0)
    net = nn.Sequential(nn.Linear(d, width, bias=False), nn.BatchNorm1d(width, eps=eps), nn.ReLU(),
                        nn.Linear(width, C, bias=False))
    return net.to(dtype).train()
