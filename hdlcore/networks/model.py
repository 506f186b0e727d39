"""Parallel positively homogeneous subnetworks: ``X = Phi_r(A; W) = sum_i phi(A; W_i)``.

:class:`ParallelSubnetworks` holds ``r`` bias-free ReLU subnetworks of ``K`` layers (optionally
convolutional layers with max pooling first, then fully connected ones) whose outputs are summed.
The weights of all subnetworks are stored batched, layer by layer, with the subnetwork index
first, so one forward (and autograd's backward) is a few batched matrix products, not a Python
loop over subnetworks:

- the first fully connected layer is one matrix product ``A @ [W_1^1, ..., W_r^1]``;
- each later layer is one batched product (``torch.bmm``) over the ``r`` subnetworks;
- convolutions are one grouped convolution (``groups=r``) per layer.

Each subnetwork is positively homogeneous of degree ``K`` in its weights (ReLU, max pooling,
linear maps and convolutions are all degree 1), which is what Chapter 4's theorem needs.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._runtime import resolve_device
from .._validation import check_scalar, check_size, param_error

__all__ = ["ParallelSubnetworks"]


def _check_conv(conv: Any, input_shape: Any, in_features: int) -> tuple[tuple, tuple]:
    func = "ParallelSubnetworks"
    if input_shape is None or len(input_shape) != 3:
        raise param_error("input_shape", func, "a (channels, height, width) tuple when conv is given",
                          input_shape)
    shape = tuple(check_scalar(s, "input_shape", func, kind="int", ge=1) for s in input_shape)
    if int(np.prod(shape)) != in_features:
        raise param_error("input_shape", func, f"a shape with prod = in_features = {in_features}",
                          input_shape)
    specs = []
    for spec in conv:
        if not (isinstance(spec, Sequence) and len(spec) in (2, 3)):
            raise param_error("conv", func, "a sequence of (channels, kernel_size[, pool]) tuples", conv)
        ch = check_scalar(spec[0], "conv", func, kind="int", ge=1)
        k = check_scalar(spec[1], "conv", func, kind="int", ge=1)
        pool = check_scalar(spec[2] if len(spec) == 3 else 1, "conv", func, kind="int", ge=1)
        if k % 2 == 0:
            raise param_error("conv", func, "odd kernel sizes (padding keeps the image size)", conv)
        specs.append((ch, k, pool))
    return tuple(specs), shape


def check_network_size(shapes: list[tuple[int, ...]], sizes: dict[str, int], func: str) -> None:
    """Refuse a network whose weights (``shapes``, batched) would not fit in memory, before allocating
    them, naming the largest of the ``sizes`` the user gave, then ``num_subnets``."""
    per_subnet = sum(int(np.prod(s[1:], dtype=object)) for s in shapes)
    name = max(sizes, key=lambda k: sizes[k])
    check_size(sizes[name], name, func, entries_per_unit=per_subnet / sizes[name])
    check_size(shapes[0][0], "num_subnets", func, entries_per_unit=per_subnet)


class ParallelSubnetworks(nn.Module):
    r"""``r`` bias-free ReLU subnetworks in parallel, their outputs summed.

    Parameters
    ----------
    in_features : int
        Input dimension ``d`` (rows of ``A`` are samples; images are flattened, see ``conv``).
    out_features : int
        Output dimension ``C`` (columns of ``X``).
    num_subnets : int
        The size ``r``: number of parallel subnetworks.
    hidden : sequence of int
        Widths of the fully connected hidden layers of each subnetwork. ``hidden=(1,)`` is the
        one-hidden-layer network with one neuron per subnetwork (so ``r`` is the number of hidden
        neurons); ``hidden=()`` is a linear model.
    conv : sequence of (channels, kernel_size, pool), optional
        Convolutional layers (bias-free, zero padding keeping the size, ReLU, then max pooling
        with window and stride ``pool``) applied before the fully connected layers; needs
        ``input_shape``.
    input_shape : (channels, height, width), optional
        Shape of one input image; ``in_features`` must equal its product.
    init_scale : float
        Multiplies the default initialization (He-style ``sqrt(2 / fan_in)`` per hidden layer,
        ``1 / sqrt(r * fan_in)`` for the output layer).
    rng : numpy Generator, int, torch.Generator or None
        Source of the initial weights (drawn in float64 with numpy, then cast, so a seed gives
        the same network on every device).
    dtype, device : optional
        Of the parameters (default: torch's default dtype, the CPU).

    Notes
    -----
    The network computes

    .. math::

        X = \Phi_r(A; W) = \sum_{i=1}^r \phi(A; W_i),\qquad
        \phi(A; W_i) = \psi(\cdots\psi(\psi(A W_i^1) W_i^2)\cdots) W_i^K,

    with :math:`\psi` the ReLU. Each :math:`\phi(A;\cdot)` is positively homogeneous of degree
    ``K = len(conv) + len(hidden) + 1`` (the attribute :attr:`degree`). Weights are stored per
    layer with the subnetwork first: fully connected layer ``k`` is a tensor of shape
    ``(r, d_{k-1}, d_k)`` (so ``A @ W[k][i]``), a convolution ``(r, c_out, c_in, k, k)``.
    Used in Chapter 4.

    References
    ----------
    B. D. Haeffele and R. Vidal, Global optimality in neural network training, CVPR 2017
    (parallel positively homogeneous subnetworks).

    Examples
    --------
    >>> import torch
    >>> net = ParallelSubnetworks(3, 2, num_subnets=4, hidden=(5, 5), rng=0)
    >>> net.degree, [tuple(w.shape) for w in net.weights]
    (3, [(4, 3, 5), (4, 5, 5), (4, 5, 2)])
    >>> A = torch.ones(7, 3, dtype=net.weights[0].dtype)
    >>> bool(torch.allclose(net(A), net.forward_each(A).sum(0)))
    True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_subnets: int,
        hidden: Sequence[int] = (),
        *,
        conv: Sequence[Sequence[int]] | None = None,
        input_shape: Sequence[int] | None = None,
        init_scale: float = 1.0,
        rng: Any = None,
        dtype: torch.dtype | None = None,
        device: Any = None,
    ) -> None:
        super().__init__()
        func = "ParallelSubnetworks"
        self.in_features = check_scalar(in_features, "in_features", func, kind="int", ge=1)
        self.out_features = check_scalar(out_features, "out_features", func, kind="int", ge=1)
        self.num_subnets = check_scalar(num_subnets, "num_subnets", func, kind="int", ge=1)
        if isinstance(hidden, numbers.Integral) or not isinstance(hidden, Sequence):
            raise param_error("hidden", func, "a sequence of ints >= 1 (layer widths)", hidden, TypeError)
        self.hidden = tuple(check_scalar(h, "hidden", func, kind="int", ge=1) for h in hidden)
        if conv:
            self.conv, self.input_shape = _check_conv(conv, input_shape, self.in_features)
        elif input_shape is not None and int(np.prod(input_shape)) != self.in_features:
            raise param_error("input_shape", func, f"a shape with prod = in_features = {in_features}",
                              input_shape)
        else:
            self.conv, self.input_shape = (), tuple(input_shape) if input_shape is not None else None
        init_scale = check_scalar(init_scale, "init_scale", func, gt=0)
        dtype = dtype or torch.get_default_dtype()
        if device is not None:
            device = resolve_device(device, func)
        shapes = self._layer_shapes()
        check_network_size(shapes, {"in_features": self.in_features, "out_features": self.out_features,
                                    "hidden": max(self.hidden, default=1)}, func)
        self.weights = nn.ParameterList(
            nn.Parameter(w.to(dtype=dtype, device=device))
            for w in self._initial_weights(shapes, init_scale, rng)
        )

    # ----------------------------------------------------------------------------- structure
    @property
    def degree(self) -> int:
        """``K``: the degree of positive homogeneity of each subnetwork in its weights."""
        return len(self.conv) + len(self.hidden) + 1

    @property
    def num_layers(self) -> int:
        """``K``, the number of weight layers of each subnetwork (equal to :attr:`degree`)."""
        return self.degree

    def _layer_shapes(self) -> list[tuple[int, ...]]:
        r, shapes = self.num_subnets, []
        if self.conv:
            c, h, w = self.input_shape
            for ch, k, pool in self.conv:
                shapes.append((r, ch, c, k, k))
                c, h, w = ch, h // pool, w // pool
            if h < 1 or w < 1:
                raise param_error("conv", "ParallelSubnetworks", "poolings that leave an image of at "
                                  "least 1 x 1 pixels", self.conv)
            fan = c * h * w
        else:
            fan = self.in_features
        for width in (*self.hidden, self.out_features):
            shapes.append((r, fan, width))
            fan = width
        return shapes

    def _initial_weights(self, shapes, init_scale, rng) -> list[torch.Tensor]:
        out = []
        if isinstance(rng, torch.Generator):
            def draw(shape):
                return torch.randn(shape, generator=rng, dtype=torch.float64, device=rng.device)
        else:
            from .._validation import check_rng

            gen = check_rng(rng, "rng", "ParallelSubnetworks")

            def draw(shape):
                return torch.from_numpy(gen.standard_normal(shape))
        for k, shape in enumerate(shapes):
            fan_in = int(np.prod(shape[2:])) if len(shape) == 5 else shape[1]
            last = k == len(shapes) - 1
            std = 1.0 / np.sqrt(fan_in * self.num_subnets) if last else np.sqrt(2.0 / fan_in)
            out.append(draw(shape) * (init_scale * std))
        return out

    def extra_repr(self) -> str:
        conv = f", conv={self.conv}, input_shape={self.input_shape}" if self.conv else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"num_subnets={self.num_subnets}, hidden={self.hidden}{conv} (degree {self.degree})")

    # ------------------------------------------------------------------------------ forward
    def _features(self, A: torch.Tensor) -> torch.Tensor:
        """Outputs of the last hidden layer, per subnetwork: ``(r, N, h)`` (or ``A`` if K = 1)."""
        r = self.num_subnets
        layers = list(self.weights)
        N = A.shape[0]
        if self.conv:
            H = A.reshape(N, *self.input_shape)  # (N, c, h, w)
            for j, (ch, k, pool) in enumerate(self.conv):
                Wc = layers[j]  # (r, ch, c_in, k, k)
                groups = 1 if j == 0 else r
                H = F.conv2d(H, Wc.reshape(r * ch, *Wc.shape[2:]), padding=k // 2, groups=groups)
                H = torch.relu(H)  # (N, r * ch, h, w)
                if pool > 1:
                    H = F.max_pool2d(H, pool)
            H = H.reshape(N, r, -1).transpose(0, 1)  # (r, N, f), a strided view
            dense = layers[len(self.conv):-1]
        else:
            if not self.hidden:
                return A
            W1 = layers[0]  # (r, d, h1)
            d, h1 = W1.shape[1], W1.shape[2]
            # one matrix product for all subnetworks: (N, d) @ (d, r * h1) -> (N, r * h1)
            H = torch.relu(A @ W1.transpose(0, 1).reshape(d, r * h1))
            H = H.reshape(N, r, h1).transpose(0, 1)  # (r, N, h1), a view
            dense = layers[1:-1]
        for Wk in dense:
            H = torch.relu(torch.bmm(H, Wk))  # (r, N, h) @ (r, h, h') -> (r, N, h')
        return H

    def forward(self, A: torch.Tensor) -> torch.Tensor:
        """The network's output ``X = sum_i phi(A; W_i)``: ``(N, d) -> (N, C)``."""
        WK = self.weights[-1]  # (r, h, C)
        H = self._features(A)
        if H is A:  # K = 1: a linear model, X = A @ sum_i W_i
            return A @ WK.sum(0)
        r, N, h = H.shape
        if H.transpose(0, 1).is_contiguous():  # (N, r, h) memory: one product over all subnets
            return H.transpose(0, 1).reshape(N, r * h) @ WK.reshape(r * h, -1)  # (N, C)
        return torch.bmm(H, WK).sum(0)  # (r, N, h) @ (r, h, C) -> (r, N, C) -> (N, C)

    def forward_from_first_hidden(self, H1: torch.Tensor) -> torch.Tensor:
        """The output from the first hidden layer's activations ``(N, r * h1)`` (dense, K >= 2)."""
        r, N = self.num_subnets, H1.shape[0]
        H = H1.reshape(N, r, -1).transpose(0, 1)  # (r, N, h1)
        for Wk in list(self.weights)[1:-1]:
            H = torch.relu(torch.bmm(H, Wk))
        return torch.bmm(H, self.weights[-1]).sum(0)  # (N, C)

    def forward_each(self, A: torch.Tensor) -> torch.Tensor:
        """Each subnetwork's output ``phi(A; W_i)``, stacked: ``(N, d) -> (r, N, C)``."""
        WK = self.weights[-1]
        H = self._features(A)
        if H is A:
            return torch.einsum("nd,rdc->rnc", A, WK)
        return torch.bmm(H, WK)

    # ------------------------------------------------------------------------ subnetworks
    def layer_norms(self) -> torch.Tensor:
        """Frobenius norms ``||W_i^k||``, shape ``(K, r)`` (differentiable)."""
        r = self.num_subnets
        return torch.stack([w.reshape(r, -1).norm(dim=1) for w in self.weights])

    def active(self) -> torch.Tensor:
        """Boolean mask ``(r,)``: subnetworks whose layers are all non-zero."""
        with torch.no_grad():
            return (self.layer_norms() > 0).all(dim=0)

    def subnetwork(self, i: int) -> list[torch.Tensor]:
        """The weights ``[W_i^1, ..., W_i^K]`` of subnetwork ``i`` (copies)."""
        i = check_scalar(i, "i", "ParallelSubnetworks.subnetwork", kind="int", ge=0,
                         lt=self.num_subnets)
        return [w.detach()[i].clone() for w in self.weights]

    @classmethod
    def from_weights(cls, weights: Sequence[Any], *, conv=None, input_shape=None) -> ParallelSubnetworks:
        """Build a network from batched weights (``[(r, d, h1), ..., (r, h, C)]``, conv layers first).

        numpy arrays or tensors; the dtype and device of the first one are used.
        """
        func = "ParallelSubnetworks.from_weights"
        if not isinstance(weights, Sequence) or len(weights) < 1:
            raise param_error("weights", func, "a non-empty list of layers (K >= 1)", weights)
        ts = [w if isinstance(w, torch.Tensor) else torch.as_tensor(np.asarray(w)) for w in weights]
        nconv = len(conv or ())
        if any(t.ndim != (5 if k < nconv else 3) for k, t in enumerate(ts)):
            raise param_error("weights", func, "3-D (r, d_in, d_out) dense and 5-D conv layers", weights)
        r = ts[0].shape[0]
        in_features = int(np.prod(input_shape)) if nconv else ts[0].shape[1]
        hidden = [t.shape[2] for t in ts[nconv:-1]]
        net = cls(in_features, ts[-1].shape[2], r, hidden, conv=conv, input_shape=input_shape,
                  dtype=ts[0].dtype, device=ts[0].device)
        for p, t in zip(net.weights, ts, strict=True):
            if tuple(p.shape) != tuple(t.shape):
                raise param_error("weights", func, f"layers of consistent shapes (expected "
                                  f"{tuple(p.shape)})", t)
            with torch.no_grad():
                p.copy_(t.to(dtype=p.dtype, device=p.device))
        return net

    def to_modules(self) -> list[nn.Sequential]:
        """The ``r`` subnetworks as separate ``nn.Sequential`` modules with the same weights."""
        mods = []
        for i in range(self.num_subnets):
            Ws = self.subnetwork(i)
            layers: list[nn.Module] = []
            if self.conv:
                layers.append(nn.Unflatten(1, self.input_shape))
                for Wc, (ch, k, pool) in zip(Ws, self.conv, strict=False):
                    conv = nn.Conv2d(Wc.shape[1], ch, k, padding=k // 2, bias=False)
                    conv.weight.data = Wc.clone()
                    layers += [conv, nn.ReLU()] + ([nn.MaxPool2d(pool)] if pool > 1 else [])
                layers.append(nn.Flatten())
            dense = Ws[len(self.conv):]
            for k, Wk in enumerate(dense):
                lin = nn.Linear(Wk.shape[0], Wk.shape[1], bias=False)
                lin.weight.data = Wk.T.clone().contiguous()
                layers.append(lin)
                if k < len(dense) - 1:
                    layers.append(nn.ReLU())
            mods.append(nn.Sequential(*layers).to(dtype=Ws[0].dtype, device=Ws[0].device))
        return mods

    def select(self, index: Any) -> ParallelSubnetworks:
        """A new network made of the subnetworks ``index`` (a boolean mask or indices)."""
        idx = torch.as_tensor(index, device=self.weights[0].device)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        if idx.numel() < 1:
            raise param_error("index", "ParallelSubnetworks.select", "at least one subnetwork", index)
        return type(self).from_weights([w.detach()[idx] for w in self.weights], conv=self.conv or None,
                                       input_shape=self.input_shape)

    def append(self, subnet: Sequence[Any]) -> ParallelSubnetworks:
        """A new network with one more subnetwork, ``subnet = [W^1, ..., W^K]`` (unbatched)."""
        if len(subnet) != self.degree:
            raise param_error("subnet", "ParallelSubnetworks.append", f"a list of {self.degree} layers",
                              subnet)
        ws = []
        for w, s in zip(self.weights, subnet, strict=True):
            s = torch.as_tensor(s, dtype=w.dtype, device=w.device)
            if tuple(s.shape) != tuple(w.shape[1:]):
                raise param_error("subnet", "ParallelSubnetworks.append",
                                  f"layers of shapes {[tuple(v.shape[1:]) for v in self.weights]}", subnet)
            ws.append(torch.cat([w.detach(), s[None]]))
        return type(self).from_weights(ws, conv=self.conv or None, input_shape=self.input_shape)
