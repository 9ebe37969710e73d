"""Multi-head scaled dot-product attention and the Transformer encoder block built on it."""

from __future__ import annotations

import math

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.shapes import format_shape
from graphc.nn.layers import check_activation, dense, dtype_of, layer_norm
from graphc.ops import api as ops

# Added to the scores a query must not see. Finite, so that float32 stays finite and no
# 0 * inf can appear; exp(-1e30 - max) is exactly 0 in both float dtypes.
MASKED = -1e30


def causal_mask(queries: int, keys: int) -> np.ndarray:
    """[queries, keys]: 0 where key j <= query i, MASKED above the diagonal."""
    return np.where(np.triu(np.ones((queries, keys), dtype=bool), k=1), MASKED, 0.0)


def _check_seq(x: Value, what: str) -> None:
    if x.ndim != 3 or not isinstance(x.shape[2], int):
        raise ShapeError(f"{what} v{x.id} of shape {format_shape(x.shape)} must be [N, T, D]")


def _split_heads(x: Value, heads: int) -> Value:
    """[N, T, D] -> [N, heads, T, D / heads]."""
    n, t, d = x.shape
    return x.reshape(n, t, heads, d // heads).transpose(0, 2, 1, 3)


def multi_head_attention(
    x: Value, heads: int, name: str, causal: bool = False, kv: Value | None = None
) -> Value:
    """softmax(q k^T / sqrt(Dh) [+ causal mask]) v per head, heads merged and projected:
    x [N, T, D] -> [N, T, D], with q from x and k, v from `kv` [N, S, D_kv] (default x).
    Params: dense layers `{name}_q`, `{name}_k`, `{name}_v`, `{name}_o` (each `_w`, `_b`).
    With `causal`, query i sees keys 0..i only (T and S must be fixed sizes)."""
    where = f"multi_head_attention {name!r}"
    _check_seq(x, f"{where}: input")
    src = x if kv is None else kv
    _check_seq(src, f"{where}: kv")
    n, t, d = x.shape
    if not isinstance(heads, int) or heads < 1 or d % heads:
        raise ShapeError(f"{where}: heads={heads!r} must be a positive divisor of D={d}")
    q = _split_heads(dense(x, d, f"{name}_q"), heads)  # [N, H, T, Dh]
    k = _split_heads(dense(src, d, f"{name}_k"), heads)  # [N, H, S, Dh]
    v = _split_heads(dense(src, d, f"{name}_v"), heads)
    scores = (q @ ops.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(d // heads))  # [N, H, T, S]
    if causal:
        s = src.shape[1]
        if not isinstance(t, int) or not isinstance(s, int):
            raise ShapeError(f"{where}: a causal mask needs fixed sequence lengths, got {t}, {s}")
        scores = scores + x.graph.const(causal_mask(t, s), dtype=dtype_of(x))
    out = ops.softmax(scores, axis=-1) @ v  # [N, H, T, Dh]
    merged = out.transpose(0, 2, 1, 3).reshape(n, t, d)
    return dense(merged, d, f"{name}_o")


def transformer_encoder_block(
    x: Value,
    heads: int,
    ff: int,
    name: str,
    causal: bool = False,
    activation: str | None = "relu",
    pre_norm: bool = True,
) -> Value:
    """One encoder block, x [N, T, D] -> [N, T, D]. Pre-norm (default):
    h = x + MHA(LN1(x)); out = h + FFN(LN2(h)); post-norm (Vaswani et al.):
    h = LN1(x + MHA(x)); out = LN2(h + FFN(h)); FFN(x) = dense(act(dense(x, ff)), D).
    Params: `{name}_attn_*`, `{name}_ln1_*`, `{name}_ln2_*`, `{name}_ff1_*`, `{name}_ff2_*`."""
    _check_seq(x, f"transformer_encoder_block {name!r}: input")
    check_activation(activation, f"transformer_encoder_block {name!r}")
    d = x.shape[2]

    def attn(v: Value) -> Value:
        return multi_head_attention(v, heads, f"{name}_attn", causal=causal)

    def ffn(v: Value) -> Value:
        return dense(dense(v, ff, f"{name}_ff1", activation=activation), d, f"{name}_ff2")

    if pre_norm:
        h = x + attn(layer_norm(x, f"{name}_ln1"))
        return h + ffn(layer_norm(h, f"{name}_ln2"))
    h = layer_norm(x + attn(x), f"{name}_ln1")
    return layer_norm(h + ffn(h), f"{name}_ln2")
