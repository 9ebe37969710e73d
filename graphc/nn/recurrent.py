"""Recurrent cells with PyTorch's gate equations and gate order, and loops that unroll them.

LSTM, gates [i, f, g, o] cut from one product with the input and one with the hidden state:

    a = x @ w_ih + h @ w_hh + b                      a: [N, 4H]
    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    c' = f * c + i * g;  h' = o * tanh(c')

GRU, gates [r, z, n]:

    a = x @ w_ih + b_ih;  b = h @ w_hh + b_hh        a, b: [N, 3H]
    r = sigmoid(a_r + b_r);  z = sigmoid(a_z + b_z);  n = tanh(a_n + r * b_n)
    h' = (1 - z) * n + z * h

Weights are stored [in, gates * H], PyTorch's `weight_ih_l0` transposed. The LSTM has one bias
(PyTorch's b_ih + b_hh, which only ever appear summed); the GRU keeps both, since r scales b_hn.
Calling a cell again with the same `name` shares its params: that is how a loop is unrolled by
hand. `lstm`/`gru` start from a zero state, which they leave out of the arithmetic.
"""

from __future__ import annotations

from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.shapes import format_shape
from graphc.nn.init import param
from graphc.nn.layers import dtype_of
from graphc.ops import api as ops


def _gate(v: Value, k: int, hidden: int) -> Value:
    """Gate `k` of the gate-stacked last axis of `v` ([..., gates * H] -> [..., H])."""
    lo, hi = k * hidden, (k + 1) * hidden
    return v[lo:hi] if v.ndim == 1 else v[:, lo:hi]


def _check_step(x_t: Value, layer: str) -> int:
    if x_t.ndim != 2 or not isinstance(x_t.shape[1], int):
        raise ShapeError(
            f"{layer}: input v{x_t.id} of shape {format_shape(x_t.shape)} must be [N, D] "
            "with a fixed D"
        )
    return x_t.shape[1]


def _check_state(h: Value, layer: str, what: str = "state") -> int:
    if h.ndim != 2 or not isinstance(h.shape[1], int):
        raise ShapeError(
            f"{layer}: {what} v{h.id} of shape {format_shape(h.shape)} must be [N, H] with a "
            "fixed H"
        )
    return h.shape[1]


def _check_sequence(xs: Value, layer: str) -> tuple[int, int]:
    if xs.ndim != 3 or not all(isinstance(d, int) for d in xs.shape[1:]) or xs.shape[1] < 1:
        raise ShapeError(
            f"{layer}: input v{xs.id} of shape {format_shape(xs.shape)} must be [N, T, D] "
            "with fixed T >= 1 and D"
        )
    return xs.shape[1], xs.shape[2]


def _stack_steps(hs: list[Value]) -> Value:
    """[N, H] per step -> [N, T, H]."""
    n, hidden = hs[0].shape
    return ops.concat([h.reshape(n, 1, hidden) for h in hs], axis=1)


def _cell_params(x: Value, d: int, hidden: int, gates: int, name: str, biases) -> list[Value]:
    """w_ih [D, gates*H] (Glorot, fans of one gate), w_hh [H, gates*H] (orthogonal per gate),
    then one zero bias [gates*H] per name in `biases`; shared by name."""
    g, dt, width = x.graph, dtype_of(x), gates * hidden
    return [
        param(g, f"{name}_w_ih", (d, width), dt, ("glorot_uniform", d, hidden), share=True),
        param(g, f"{name}_w_hh", (hidden, width), dt, ("orthogonal", hidden, hidden), share=True),
        *(param(g, f"{name}_{b}", (width,), dt, ("zeros", d, hidden), share=True) for b in biases),
    ]


# ---- LSTM -------------------------------------------------------------------------------------
def _lstm_step(x_t, h, c, params, hidden) -> tuple[Value, Value]:
    w_ih, w_hh, b = params
    a = x_t @ w_ih + b if h is None else x_t @ w_ih + h @ w_hh + b
    i, f, g, o = (_gate(a, k, hidden) for k in range(4))
    i, f, g, o = ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)
    c = i * g if c is None else f * c + i * g
    return o * ops.tanh(c), c


def lstm_cell(x_t: Value, h: Value, c: Value, name: str) -> tuple[Value, Value]:
    """One LSTM step: x_t [N, D], h [N, H], c [N, H] -> (h', c'), both [N, H]. Params
    `{name}_w_ih` [D, 4H], `{name}_w_hh` [H, 4H], `{name}_b` [4H], shared by name."""
    d = _check_step(x_t, f"lstm_cell {name!r}")
    hidden = _check_state(h, f"lstm_cell {name!r}", "h")
    if _check_state(c, f"lstm_cell {name!r}", "c") != hidden:
        raise ShapeError(f"lstm_cell {name!r}: h is {h.shape}, c is {c.shape}: they must agree")
    return _lstm_step(x_t, h, c, _cell_params(x_t, d, hidden, 4, name, ["b"]), hidden)


def lstm(xs: Value, hidden: int, name: str, return_sequences: bool = False) -> Value:
    """An LSTM unrolled over the T steps of xs [N, T, D] from a zero state: the last h [N, H],
    or every step's h [N, T, H] with `return_sequences`. Params as `lstm_cell`."""
    steps, d = _check_sequence(xs, f"lstm {name!r}")
    params = _cell_params(xs, d, hidden, 4, name, ["b"])
    h = c = None
    hs = []
    for t in range(steps):
        h, c = _lstm_step(xs[:, t], h, c, params, hidden)
        hs.append(h)
    return _stack_steps(hs) if return_sequences else h


# ---- GRU --------------------------------------------------------------------------------------
def _gru_step(x_t, h, params, hidden) -> Value:
    w_ih, w_hh, b_ih, b_hh = params
    a = x_t @ w_ih + b_ih
    b = b_hh if h is None else h @ w_hh + b_hh
    r = ops.sigmoid(_gate(a, 0, hidden) + _gate(b, 0, hidden))
    z = ops.sigmoid(_gate(a, 1, hidden) + _gate(b, 1, hidden))
    n = ops.tanh(_gate(a, 2, hidden) + r * _gate(b, 2, hidden))
    return (1 - z) * n if h is None else (1 - z) * n + z * h


def gru_cell(x_t: Value, h: Value, name: str) -> Value:
    """One GRU step: x_t [N, D], h [N, H] -> h' [N, H]. Params `{name}_w_ih` [D, 3H],
    `{name}_w_hh` [H, 3H], `{name}_b_ih` [3H], `{name}_b_hh` [3H], shared by name."""
    d = _check_step(x_t, f"gru_cell {name!r}")
    hidden = _check_state(h, f"gru_cell {name!r}", "h")
    return _gru_step(x_t, h, _cell_params(x_t, d, hidden, 3, name, ["b_ih", "b_hh"]), hidden)


def gru(xs: Value, hidden: int, name: str, return_sequences: bool = False) -> Value:
    """A GRU unrolled over the T steps of xs [N, T, D] from a zero state: the last h [N, H], or
    every step's h [N, T, H] with `return_sequences`. Params as `gru_cell`."""
    steps, d = _check_sequence(xs, f"gru {name!r}")
    params = _cell_params(xs, d, hidden, 3, name, ["b_ih", "b_hh"])
    h = None
    hs = []
    for t in range(steps):
        h = _gru_step(xs[:, t], h, params, hidden)
        hs.append(h)
    return _stack_steps(hs) if return_sequences else h
