"""`graphc.nn`: layers as builder functions, and seeded initial values for their params.

A layer is a plain function: it takes Values, adds its params and nodes to their graph and
returns the result. No objects hold state; the graph is the model.

- Naming: every layer takes a `name`, the prefix of its params (`{name}_w`, `{name}_b`, ...),
  so names must be identifiers and unique per layer; reusing one is an error, except for the
  recurrent cells, where calling a cell again with the same name shares its params (how a loop
  is unrolled).
- Initialisation: each param node carries `init = (scheme, fan_in, fan_out)`, a plain record
  that survives `Graph.copy`, `grad`, `simplify`, compiling and JSON.
  `init_params(g, seed=0)` turns the records into arrays; each param draws from its own
  generator seeded by (seed, param name), so values do not depend on the other layers. Schemes:
  Glorot/Xavier uniform for linear, tanh and sigmoid layers, attention projections and the input
  weights of recurrent cells; He/Kaiming normal for ReLU and GELU layers; orthogonal (one
  orthogonal block per gate) for recurrent weights; N(0, 1) for embeddings; zeros for biases;
  ones for normalisation gains (see graphc/nn/init.py).
- Layouts: dense weights are [in, out] (y = x @ w + b); conv2d is NCHW with weights
  [C_out, C_in / groups, kH, kW]; sequences are [N, T, D]; recurrent cells follow PyTorch's gate
  equations and gate order with weights stored [in, gates * H], and recurrent layers loop over
  T with gc.scan (any T, a symbol too) unless unrolled; attention splits heads as
  [N, T, H, Dh] -> [N, H, T, Dh].
- Pooling has no params: use the ops `gc.max_pool2d` / `gc.avg_pool2d` directly.
"""

from graphc.nn.attention import causal_mask, multi_head_attention, transformer_encoder_block
from graphc.nn.init import SCHEMES, init_params, init_records
from graphc.nn.layers import (
    conv2d,
    dense,
    embedding,
    flatten,
    layer_norm,
    position_embedding,
    positional_encoding,
    sinusoid,
    unembed,
)
from graphc.nn.recurrent import gru, gru_cell, lstm, lstm_cell, rnn, rnn_cell

__all__ = [
    "SCHEMES",
    "causal_mask",
    "conv2d",
    "dense",
    "embedding",
    "flatten",
    "gru",
    "gru_cell",
    "init_params",
    "init_records",
    "layer_norm",
    "lstm",
    "lstm_cell",
    "multi_head_attention",
    "position_embedding",
    "positional_encoding",
    "rnn",
    "rnn_cell",
    "sinusoid",
    "transformer_encoder_block",
    "unembed",
]
