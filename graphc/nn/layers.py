"""Feed-forward layers: dense, conv2d, flatten, embedding, layer_norm, positional encoding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.errors import GraphError, ShapeError
from graphc.ir.dag import operands
from graphc.ir.graph import Value
from graphc.ir.shapes import FLOAT_DTYPES, format_shape
from graphc.nn.init import check_scheme, param
from graphc.ops import api as ops

ACTIVATIONS: dict[str | None, Callable[[Value], Value]] = {
    None: lambda x: x,
    "relu": ops.relu,
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "gelu": ops.gelu,
}


def check_activation(activation: Any, where: str) -> None:
    """Raise a GraphError unless `activation` is one of None, "relu", "tanh", "sigmoid",
    "gelu"."""
    if activation not in ACTIVATIONS:
        raise GraphError(
            f"{where}: activation {activation!r} is not one of {', '.join(map(repr, ACTIVATIONS))}"
        )


def activate(x: Value, activation: str | None) -> Value:
    """`activation(x)` for one of None, "relu", "tanh", "sigmoid", "gelu"."""
    check_activation(activation, "activate")
    return ACTIVATIONS[activation](x)


def default_init(activation: str | None) -> str:
    """He/Kaiming normal for the rectifiers, Glorot/Xavier uniform for the rest."""
    return "he_normal" if activation in ("relu", "gelu") else "glorot_uniform"


def dtype_of(x: Value) -> str:
    """The dtype of params applied to `x`: its own when it is a float, else float64."""
    return x.dtype if x.dtype in FLOAT_DTYPES else "float64"


def last_dim(x: Value, layer: str) -> int:
    """The size of the last axis of `x`, which a layer's weights are sized by."""
    if x.ndim < 1 or not isinstance(x.shape[-1], int):
        raise ShapeError(
            f"{layer}: input v{x.id} of shape {format_shape(x.shape)} needs a last axis of "
            "fixed size"
        )
    return x.shape[-1]


def dense(
    x: Value,
    units: int,
    name: str,
    activation: str | None = None,
    bias: bool = True,
    init: str | None = None,
) -> Value:
    """activation(x @ w + b): x [..., D] -> [..., units], params `{name}_w` [D, units] and
    `{name}_b` [units]."""
    check_activation(activation, f"dense {name!r}")
    d = last_dim(x, f"dense {name!r}")
    scheme = check_scheme(init or default_init(activation), f"dense {name!r}")
    w = param(x.graph, f"{name}_w", (d, units), dtype_of(x), (scheme, d, units))
    y = x @ w
    if bias:
        y = y + param(x.graph, f"{name}_b", (units,), dtype_of(x), ("zeros", d, units))
    return activate(y, activation)


def _pair(v: Any, what: str) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, int) else tuple(v)
    if len(pair) != 2 or not all(isinstance(p, int) and p > 0 for p in pair):
        raise GraphError(f"conv2d: {what} must be a positive int or a pair of them, got {v!r}")
    return pair  # type: ignore[return-value]


def conv2d(
    x: Value,
    filters: int,
    kernel: int | tuple[int, int],
    name: str,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    activation: str | None = None,
    bias: bool = True,
    init: str | None = None,
) -> Value:
    """activation(conv2d(x, w) + b) over NCHW: x [N, C_in, H, W] -> [N, filters, H', W'],
    params `{name}_w` [filters, C_in / groups, kH, kW] and `{name}_b` [filters]."""
    check_activation(activation, f"conv2d {name!r}")
    if x.ndim != 4 or not isinstance(x.shape[1], int):
        raise ShapeError(
            f"conv2d {name!r}: input v{x.id} of shape {format_shape(x.shape)} must be "
            "[N, C, H, W] with a fixed C"
        )
    c_in = x.shape[1]
    if groups < 1 or c_in % groups or filters % groups:
        raise ShapeError(
            f"conv2d {name!r}: groups={groups} must divide both C_in={c_in} and filters={filters}"
        )
    kh, kw = _pair(kernel, "kernel")
    fan_in = c_in // groups * kh * kw
    fan_out = filters // groups * kh * kw
    scheme = check_scheme(init or default_init(activation), f"conv2d {name!r}")
    w = param(
        x.graph,
        f"{name}_w",
        (filters, c_in // groups, kh, kw),
        dtype_of(x),
        (scheme, fan_in, fan_out),
    )
    y = ops.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    if bias:
        b = param(x.graph, f"{name}_b", (filters,), dtype_of(x), ("zeros", fan_in, fan_out))
        y = y + b.reshape(1, filters, 1, 1)
    return activate(y, activation)


def flatten(x: Value) -> Value:
    """x [N, ...] -> [N, prod(...)]: every axis after the first merged into one."""
    if x.ndim < 1:
        raise ShapeError(f"flatten: v{x.id} is a scalar; it needs a batch axis")
    return x.reshape(x.shape[0], -1)


def embedding(tokens: Value, vocab: int, dim: int, name: str, dtype: str = "float64") -> Value:
    """Rows of the table `{name}_w` [vocab, dim] picked by int `tokens` [...]: -> [..., dim]."""
    table = param(tokens.graph, f"{name}_w", (vocab, dim), dtype, ("normal", vocab, dim))
    return ops.take(table, tokens, axis=0)


def position_embedding(x: Value, name: str) -> Value:
    """x [..., T, D] plus a learned table `{name}_w` [T, D] (GPT's positions; N(0, 1) like
    an embedding, scaled as the caller's init wants by the model)."""
    if x.ndim < 2 or not all(isinstance(d, int) for d in x.shape[-2:]):
        raise ShapeError(
            f"position_embedding {name!r}: v{x.id} of shape {format_shape(x.shape)} needs fixed "
            "sizes for its last two axes [T, D]"
        )
    t, d = x.shape[-2:]
    return x + param(x.graph, f"{name}_w", (t, d), dtype_of(x), ("normal", t, d))


def unembed(h: Value, embedded: Value) -> Value:
    """h [..., D] @ the table of the embedding that gave `embedded`, transposed: logits over
    its vocabulary, the output layer tied to the input one (GPT's weight tying) without
    naming the table. `embedded` is what `embedding` returned."""
    a = embedded.graph.nx.nodes[embedded.id]
    table = None
    if a["op"] == "take" and a["params"].get("axis") == 0:
        table = operands(embedded.graph.nx, embedded.id)[0]
    if table is None or embedded.graph.nx.nodes[table].get("role") != "param":
        raise GraphError(
            f"unembed: v{embedded.id} is not the output of gc.nn.embedding (a take of rows of a "
            "param table)"
        )
    return h @ Value(embedded.graph, table).T


def layer_norm(x: Value, name: str, eps: float = 1e-5) -> Value:
    """(x - mean) / sqrt(var + eps) over the last axis, times the gain `{name}_g` [D] (ones)
    plus the bias `{name}_b` [D] (zeros): x [..., D] -> [..., D]."""
    d = last_dim(x, f"layer_norm {name!r}")
    gain = param(x.graph, f"{name}_g", (d,), dtype_of(x), ("ones", d, d))
    shift = param(x.graph, f"{name}_b", (d,), dtype_of(x), ("zeros", d, d))
    return ops.layer_norm(x, axis=-1, eps=eps) * gain + shift


def sinusoid(length: int, dim: int) -> np.ndarray:
    """The sinusoidal position table [length, dim] of Vaswani et al. (2017):
    P[t, 2i] = sin(t / 10000^(2i/dim)), P[t, 2i+1] = cos(t / 10000^(2i/dim))."""
    pos = np.arange(length, dtype=np.float64)[:, None]
    rate = 10000.0 ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    table = np.zeros((length, dim))
    table[:, 0::2] = np.sin(pos * rate)
    table[:, 1::2] = np.cos(pos * rate[: dim // 2])
    return table


def positional_encoding(x: Value) -> Value:
    """x [..., T, D] plus the constant `sinusoid(T, D)`."""
    if x.ndim < 2 or not all(isinstance(d, int) for d in x.shape[-2:]):
        raise ShapeError(
            f"positional_encoding: v{x.id} of shape {format_shape(x.shape)} needs fixed "
            "sizes for its last two axes [T, D]"
        )
    return x + x.graph.const(sinusoid(*x.shape[-2:]), dtype=dtype_of(x))
