"""Chapter 1, Motivation: the small experiments behind the tutorial's opening puzzles.

- The scalar factorization ``(y - u v)^2``: non-convex with no non-linearity at all.
- Fully connected networks of any depth and activation, trained full-batch.
- Matching hidden units of two trained networks up to permutation and rescaling.
- Telgarsky's sawtooth: a deep ReLU network computes it exactly with few parameters, and a
  counting argument bounds the error of any one-hidden-layer network of a given width.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._validation import check_array, check_choice, check_scalar, param_error

__all__ = [
    "scalar_objective",
    "scalar_hessian",
    "mlp",
    "fit",
    "relu_features",
    "hidden_units",
    "matched_distance",
    "tent",
    "sawtooth",
    "sawtooth_network",
    "shallow_sawtooth_bound",
    "preactivations",
]

_ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu")


def scalar_objective(u, v, y: float, lam: float = 0.0):
    r"""The scalar factorization objective, elementwise in ``u`` and ``v``.

    Notes
    -----
    .. math:: f(u, v) = \tfrac12 (y - uv)^2 + \tfrac{\lambda}{2}(u^2 + v^2)

    Its minimum equals that of the convex problem :math:`\min_x \tfrac12(y-x)^2 + \lambda|x|`
    (chapter 3 proves why). Used in chapter 1.

    Examples
    --------
    >>> float(scalar_objective(1.0, 2.0, y=2.0))
    0.0
    """
    u, v = np.asarray(u, dtype=float), np.asarray(v, dtype=float)
    return 0.5 * (y - u * v) ** 2 + 0.5 * lam * (u**2 + v**2)


def scalar_hessian(u: float, v: float, y: float, lam: float = 0.0) -> np.ndarray:
    r"""The 2x2 Hessian of :func:`scalar_objective` at ``(u, v)``, derived by hand.

    Notes
    -----
    .. math:: \nabla^2 f = \begin{pmatrix} v^2 + \lambda & 2uv - y \\ 2uv - y & u^2 + \lambda \end{pmatrix}
    """
    return np.array([[v * v + lam, 2 * u * v - y], [2 * u * v - y, u * u + lam]])


def mlp(
    widths: Sequence[int],
    *,
    activation: str | Callable[[], Any] = "relu",
    bias: bool | str = True,
    gain: float = 1.0,
    generator=None,
):
    """A fully connected network ``widths[0] -> ... -> widths[-1]`` (torch ``nn.Sequential``).

    Parameters
    ----------
    widths : sequence of int
        Layer sizes, input first: ``K = len(widths) - 1`` weight layers.
    activation : {"relu", "sigmoid", "tanh", "gelu"} or callable
        Follows every layer but the last; a callable is called once per layer and must return
        a torch module (a class such as ``torch.nn.LeakyReLU`` or
        :class:`hdlcore.homogeneity.zoo.Square`).
    bias : bool or "first"
        Biases in every layer, in none (the positively homogeneous network of Chapter 2), or
        in the first layer only (still homogeneous of degree ``K`` in all parameters jointly).
    gain : float
        Multiplies the weights' initialization range.
    generator : torch.Generator, optional
        Source of the initial weights.

    Notes
    -----
    Weights use PyTorch's default initialization, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, times
    ``gain`` (``gain = sqrt(6)`` is He's initialization), drawn from ``generator``; float64.
    Used in Chapters 1 and 2.

    Examples
    --------
    >>> net = mlp([1, 8, 1])
    >>> sum(p.numel() for p in net.parameters())
    25
    >>> [m.bias is not None for m in mlp([2, 4, 4, 1], bias="first")[::2]]
    [True, False, False]
    """
    import torch
    from torch import nn

    widths = [check_scalar(w, "widths", "mlp", kind="int", ge=1) for w in widths]
    if len(widths) < 2:
        raise param_error("widths", "mlp", "a sequence of at least two layer sizes", widths)
    act: Callable[[], Any]
    if isinstance(activation, str):
        check_choice(activation, "activation", "mlp", _ACTIVATIONS)
        act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}[activation]
    elif callable(activation):
        act = activation
    else:
        raise param_error("activation", "mlp", f"one of {', '.join(map(repr, _ACTIVATIONS))} or a "
                          "callable returning a torch module", activation, TypeError)
    check_choice(bias, "bias", "mlp", (True, False, "first"))
    gain = check_scalar(gain, "gain", "mlp", gt=0)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        has_bias = bias is True or (bias == "first" and i == 0)
        layer = nn.Linear(a, b, bias=has_bias, dtype=torch.float64)
        bound = 1 / np.sqrt(a)  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        with torch.no_grad():
            layer.weight.uniform_(-gain * bound, gain * bound, generator=generator)
            if has_bias:
                layer.bias.uniform_(-bound, bound, generator=generator)
        layers.append(layer)
        if i < len(widths) - 2:
            module = act()
            if not isinstance(module, nn.Module):
                raise param_error("activation", "mlp", "a callable returning a torch module", module,
                                  TypeError)
            layers.append(module)
    return nn.Sequential(*layers)


def fit(model, A, Y, *, steps: int = 2000, lr: float = 1e-2) -> np.ndarray:
    """Full-batch Adam on the mean squared error; returns the loss at every step.

    ``A`` (N x d inputs) and ``Y`` (N x C targets) are numpy arrays or tensors. Used in chapter 1.
    """
    import torch

    A = torch.as_tensor(check_array(A, "A", "fit"), dtype=torch.float64)
    Y = torch.as_tensor(check_array(Y, "Y", "fit", shape=(A.shape[0], None)), dtype=torch.float64)
    steps = check_scalar(steps, "steps", "fit", kind="int", ge=1)
    lr = check_scalar(lr, "lr", "fit", gt=0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = np.empty(steps)
    for t in range(steps):
        opt.zero_grad()
        loss = torch.mean((model(A) - Y) ** 2)
        loss.backward()
        opt.step()
        losses[t] = loss.item()
    return losses


def relu_features(x, width: int, *, rng=None) -> np.ndarray:
    """Random ReLU features of 1-D inputs: ``[1, x, relu(s_j (x - t_j))]`` for ``j < width``.

    Knots ``t_j`` are uniform on the range of ``x`` and signs ``s_j`` are random. The features
    for ``width`` are the first columns of those for any larger width drawn with the same seed,
    so least squares on them gives an error that can only decrease as the width grows: the
    output layer of a one-hidden-layer ReLU network, fitted exactly. Used in chapter 1.
    """
    from ._validation import check_rng

    x = check_array(x, "x", "relu_features", ndim=1)
    width = check_scalar(width, "width", "relu_features", kind="int", ge=0, le=4096)
    rng = check_rng(rng, "rng", "relu_features")
    knots = rng.uniform(x.min(), x.max(), size=4096)[:width]
    signs = rng.choice([-1.0, 1.0], size=4096)[:width]
    hidden = np.maximum(signs * (x[:, None] - knots), 0.0)  # (N, width)
    return np.hstack([np.ones((len(x), 1)), x[:, None], hidden])


def hidden_units(model) -> np.ndarray:
    """One row per hidden unit of a one-hidden-layer network: ``[w_in, b_in, w_out]``.

    Each unit is rescaled to ``(w_in, b_in) / s`` and ``w_out * s`` with ``s = ||(w_in, b_in)||``,
    which leaves the network's function unchanged (ReLU is positively homogeneous), so two
    networks can be compared up to this symmetry.
    """
    first, last = model[0], model[-1]
    W = first.weight.detach().cpu().numpy()  # (h, d)
    b = first.bias.detach().cpu().numpy()[:, None] if first.bias is not None else np.zeros((len(W), 0))
    incoming = np.hstack([W, b])  # (h, d + 1)
    scale = np.linalg.norm(incoming, axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    outgoing = last.weight.detach().cpu().numpy().T * scale  # (h, C)
    return np.hstack([incoming / scale, outgoing])


def matched_distance(units_a: np.ndarray, units_b: np.ndarray) -> tuple[float, np.ndarray]:
    """Relative distance between two sets of hidden units after the best permutation.

    Returns ``(min_P ||units_a - P units_b||_F / ||units_a||_F, permutation)``, the minimum
    computed exactly by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``).
    """
    from scipy.optimize import linear_sum_assignment

    cost = ((units_a[:, None, :] - units_b[None, :, :]) ** 2).sum(-1)  # (h, h)
    rows, cols = linear_sum_assignment(cost)
    dist = np.sqrt(cost[rows, cols].sum()) / np.linalg.norm(units_a)
    return float(dist), cols


def tent(x):
    """The tent map on [0, 1]: ``2x`` for ``x <= 1/2``, ``2(1 - x)`` after."""
    x = np.asarray(x, dtype=float)
    return np.where(x <= 0.5, 2 * x, 2 * (1 - x))


def sawtooth(x, k: int):
    """The tent map composed ``k`` times: ``2^(k-1)`` teeth on [0, 1] (Telgarsky, 2016)."""
    k = check_scalar(k, "k", "sawtooth", kind="int", ge=1)
    for _ in range(k):
        x = tent(x)
    return x


def sawtooth_network(k: int):
    """A ReLU network with ``k`` hidden layers of width 2 that computes :func:`sawtooth` exactly.

    Each layer computes ``tent(t) = 2 relu(t) - 4 relu(t - 1/2)`` on [0, 1]; the linear
    combination is folded into the next layer's weights. ``6k + 1`` parameters.

    Examples
    --------
    >>> import torch
    >>> x = torch.linspace(0, 1, 101, dtype=torch.float64)[:, None]
    >>> net = sawtooth_network(3)
    >>> bool(np.allclose(net(x).detach().numpy().ravel(), sawtooth(x.numpy().ravel(), 3)))
    True
    """
    import torch
    from torch import nn

    k = check_scalar(k, "k", "sawtooth_network", kind="int", ge=1)
    layers: list[nn.Module] = []
    combine = torch.tensor([[2.0, -4.0]], dtype=torch.float64)  # tent = combine @ hidden
    for i in range(k):
        layer = nn.Linear(1 if i == 0 else 2, 2, dtype=torch.float64)
        with torch.no_grad():
            w = torch.ones(2, 1, dtype=torch.float64)
            layer.weight.copy_(w if i == 0 else w @ combine)  # (2, 1) @ (1, 2) -> (2, 2)
            layer.bias.copy_(torch.tensor([0.0, -0.5], dtype=torch.float64))
        layers += [layer, nn.ReLU()]
    out = nn.Linear(2, 1, dtype=torch.float64)
    with torch.no_grad():
        out.weight.copy_(combine)
        out.bias.zero_()
    return nn.Sequential(*layers, out)


def shallow_sawtooth_bound(k: int, width: int) -> float:
    r"""A lower bound on the mean squared error, on [0, 1], of any one-hidden-layer ReLU network
    of the given width against ``sawtooth(x, k)``.

    Notes
    -----
    A one-hidden-layer ReLU network on a line is piecewise linear with at most ``width``
    breakpoints. The sawtooth has :math:`T = 2^{k-1}` teeth; a tooth that contains no breakpoint
    is fitted by a single line, and the best line through a tent has mean squared error
    :math:`1/12` (its variance). At least :math:`T - w` teeth have no breakpoint, so

    .. math:: \mathrm{MSE} \ge \frac{(T - w)_+}{12\,T}.

    References
    ----------
    M. Telgarsky, Benefits of depth in neural networks, COLT 2016.
    """
    k = check_scalar(k, "k", "shallow_sawtooth_bound", kind="int", ge=1)
    width = check_scalar(width, "width", "shallow_sawtooth_bound", kind="int", ge=0)
    teeth = 2 ** (k - 1)
    return max(teeth - width, 0) / (12 * teeth)


def preactivations(model, A) -> list:
    """The input of every activation layer of ``model`` (an ``nn.Sequential``) on inputs ``A``."""
    import torch
    from torch import nn

    outs = []
    h = torch.as_tensor(A)
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.ReLU | nn.Sigmoid | nn.Tanh):
                outs.append(h.clone())
            h = layer(h)
    return outs
