"""Recurrent layers with PyTorch's gate equations and gate order: loops over time with `gc.scan`
(one body, compiled once, for any sequence length), or unrolled step by step (`unroll=True`).

Elman RNN (tanh), PyTorch's nn.RNN:

    h' = tanh(x @ w_ih + h @ w_hh + b)

LSTM, gates [i, f, g, o] cut from one product with the input and one with the hidden state:

    a = x @ w_ih + h @ w_hh + b                      a: [N, 4H]
    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    c' = f * c + i * g;  h' = o * tanh(c')

GRU, gates [r, z, n]:

    a = x @ w_ih + b_ih;  b = h @ w_hh + b_hh        a, b: [N, 3H]
    r = sigmoid(a_r + b_r);  z = sigmoid(a_z + b_z);  n = tanh(a_n + r * b_n)
    h' = (1 - z) * n + z * h

Weights are stored [in, gates * H], PyTorch's `weight_ih_l0` transposed. The RNN and the LSTM
have one bias (PyTorch's b_ih + b_hh, which only ever appear summed); the GRU keeps both, since r
scales b_hn. Calling a cell again with the same `name` shares its params: that is how a loop is
unrolled by hand. The layers start from a zero state.

A layer reads xs [N, T, D]. In a loop (the default) T may be a symbol, bound at call time like
N, or 0: the loop's body is one step, compiled once. `lengths` [N] (int) gives each sequence's
length in a padded batch: past it a sequence's state stays as it was and its outputs are zeros,
as PyTorch's packed sequences give them (the last h is then the one at each sequence's end).
Unrolled (`unroll=True`, a fixed T >= 1), a layer is what it always was: T copies of the step,
starting from no state at all.
"""

from __future__ import annotations

from collections.abc import Callable

from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.shapes import INT_DTYPES, format_shape
from graphc.nn.init import param
from graphc.nn.layers import dtype_of
from graphc.ops import api as ops

Step = Callable[..., tuple]  # one step: (x part, state, params) -> (new state, h)


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


def _check_sequence(xs: Value, layer: str, unroll: bool) -> tuple[int | str, int]:
    shape = xs.shape
    if unroll and (xs.ndim != 3 or not all(isinstance(d, int) for d in shape[1:]) or shape[1] < 1):
        raise ShapeError(
            f"{layer}: input v{xs.id} of shape {format_shape(shape)} must be [N, T, D] "
            "with fixed T >= 1 and D to unroll"
        )
    if xs.ndim != 3 or not isinstance(shape[2], int):
        raise ShapeError(
            f"{layer}: input v{xs.id} of shape {format_shape(shape)} must be [N, T, D] "
            "with a fixed D"
        )
    return shape[1], shape[2]


def _check_lengths(lengths: Value | None, xs: Value, layer: str) -> None:
    if lengths is None:
        return
    if (
        not isinstance(lengths, Value)
        or lengths.shape != (xs.shape[0],)
        or (lengths.dtype not in INT_DTYPES)
    ):
        got = format_shape(lengths.shape) + f" {lengths.dtype}" if isinstance(
            lengths, Value) else type(lengths).__name__  # fmt: skip
        raise ShapeError(
            f"{layer}: lengths must be an int Value of shape [{xs.shape[0]}] (one length per "
            f"sequence of xs {format_shape(xs.shape)}), got {got}"
        )


def _cell_params(x: Value, d: int, hidden: int, gates: int, name: str, biases) -> list[Value]:
    """w_ih [D, gates*H] (Glorot, fans of one gate), w_hh [H, gates*H] (orthogonal per gate),
    then one zero bias [gates*H] per name in `biases`; shared by name."""
    g, dt, width = x.graph, dtype_of(x), gates * hidden
    return [
        param(g, f"{name}_w_ih", (d, width), dt, ("glorot_uniform", d, hidden), share=True),
        param(g, f"{name}_w_hh", (hidden, width), dt, ("orthogonal", hidden, hidden), share=True),
        *(param(g, f"{name}_{b}", (width,), dt, ("zeros", d, hidden), share=True) for b in biases),
    ]


# ---- the steps: (the input's product for this step, state, params) -> (new state, h) --------
def _rnn_step(xw, state, params, hidden):
    (h,) = state
    _, w_hh, b = params
    h = ops.tanh(xw + b if h is None else xw + h @ w_hh + b)
    return (h,), h


def _lstm_step(xw, state, params, hidden):
    h, c = state
    _, w_hh, b = params
    a = xw + b if h is None else xw + h @ w_hh + b
    i, f, g, o = (_gate(a, k, hidden) for k in range(4))
    i, f, g, o = ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)
    c = i * g if c is None else f * c + i * g
    h = o * ops.tanh(c)
    return (h, c), h


def _gru_step(xw, state, params, hidden):
    (h,) = state
    _, w_hh, b_ih, b_hh = params
    a = xw + b_ih
    b = b_hh if h is None else h @ w_hh + b_hh
    r = ops.sigmoid(_gate(a, 0, hidden) + _gate(b, 0, hidden))
    z = ops.sigmoid(_gate(a, 1, hidden) + _gate(b, 1, hidden))
    n = ops.tanh(_gate(a, 2, hidden) + r * _gate(b, 2, hidden))
    h = (1 - z) * n if h is None else (1 - z) * n + z * h
    return (h,), h


_KINDS: dict[str, tuple[Step, int, tuple[str, ...], int]] = {
    # step, gates, biases, state parts
    "rnn": (_rnn_step, 1, ("b",), 1),
    "lstm": (_lstm_step, 4, ("b",), 2),
    "gru": (_gru_step, 3, ("b_ih", "b_hh"), 1),
}


# ---- cells ------------------------------------------------------------------------------------
def rnn_cell(x_t: Value, h: Value, name: str) -> Value:
    """One Elman RNN step: x_t [N, D], h [N, H] -> h' [N, H]. Params `{name}_w_ih` [D, H],
    `{name}_w_hh` [H, H], `{name}_b` [H], shared by name."""
    d = _check_step(x_t, f"rnn_cell {name!r}")
    hidden = _check_state(h, f"rnn_cell {name!r}", "h")
    params = _cell_params(x_t, d, hidden, 1, name, ["b"])
    return _rnn_step(x_t @ params[0], (h,), params, hidden)[1]


def lstm_cell(x_t: Value, h: Value, c: Value, name: str) -> tuple[Value, Value]:
    """One LSTM step: x_t [N, D], h [N, H], c [N, H] -> (h', c'), both [N, H]. Params
    `{name}_w_ih` [D, 4H], `{name}_w_hh` [H, 4H], `{name}_b` [4H], shared by name."""
    d = _check_step(x_t, f"lstm_cell {name!r}")
    hidden = _check_state(h, f"lstm_cell {name!r}", "h")
    if _check_state(c, f"lstm_cell {name!r}", "c") != hidden:
        raise ShapeError(f"lstm_cell {name!r}: h is {h.shape}, c is {c.shape}: they must agree")
    params = _cell_params(x_t, d, hidden, 4, name, ["b"])
    (h, c), _ = _lstm_step(x_t @ params[0], (h, c), params, hidden)
    return h, c


def gru_cell(x_t: Value, h: Value, name: str) -> Value:
    """One GRU step: x_t [N, D], h [N, H] -> h' [N, H]. Params `{name}_w_ih` [D, 3H],
    `{name}_w_hh` [H, 3H], `{name}_b_ih` [3H], `{name}_b_hh` [3H], shared by name."""
    d = _check_step(x_t, f"gru_cell {name!r}")
    hidden = _check_state(h, f"gru_cell {name!r}", "h")
    params = _cell_params(x_t, d, hidden, 3, name, ["b_ih", "b_hh"])
    return _gru_step(x_t @ params[0], (h,), params, hidden)[1]


# ---- layers over sequences ---------------------------------------------------------------------
def rnn(xs: Value, hidden: int, name: str, return_sequences: bool = False, unroll: bool = False,
        lengths: Value | None = None) -> Value:  # fmt: skip
    """An Elman (tanh) RNN over xs [N, T, D] from a zero state: the last h [N, H], or every
    step's h [N, T, H] with `return_sequences`. Params as `rnn_cell`. A loop over T (a
    symbol, or 0, too) unless `unroll`; `lengths` [N]: each sequence's length (see above)."""
    return _layer("rnn", xs, hidden, name, return_sequences, unroll, lengths)


def lstm(xs: Value, hidden: int, name: str, return_sequences: bool = False, unroll: bool = False,
         lengths: Value | None = None) -> Value:  # fmt: skip
    """An LSTM over xs [N, T, D] from a zero state: the last h [N, H], or every step's h
    [N, T, H] with `return_sequences`. Params as `lstm_cell`. A loop over T (a symbol, or 0,
    too) unless `unroll`; `lengths` [N]: each sequence's length (see above)."""
    return _layer("lstm", xs, hidden, name, return_sequences, unroll, lengths)


def gru(xs: Value, hidden: int, name: str, return_sequences: bool = False, unroll: bool = False,
        lengths: Value | None = None) -> Value:  # fmt: skip
    """A GRU over xs [N, T, D] from a zero state: the last h [N, H], or every step's h
    [N, T, H] with `return_sequences`. Params as `gru_cell`. A loop over T (a symbol, or 0,
    too) unless `unroll`; `lengths` [N]: each sequence's length (see above)."""
    return _layer("gru", xs, hidden, name, return_sequences, unroll, lengths)


def _layer(kind: str, xs: Value, hidden: int, name: str, return_sequences: bool, unroll: bool,
           lengths: Value | None) -> Value:  # fmt: skip
    step, gates, biases, parts = _KINDS[kind]
    layer = f"{kind} {name!r}"
    steps, d = _check_sequence(xs, layer, unroll)
    _check_lengths(lengths, xs, layer)
    params = _cell_params(xs, d, hidden, gates, name, list(biases))
    if unroll:
        return _unrolled(step, xs, steps, params, hidden, parts, return_sequences, lengths)
    return _looped(step, xs, params, hidden, parts, return_sequences, lengths)


def _masked(keep: Value, new: Value, old: Value | None) -> Value:
    """`new` where the sequence has not ended, else `old` (zeros when None)."""
    return ops.where(keep, new, 0.0 if old is None else old)


def _unrolled(step, xs, steps, params, hidden, parts, return_sequences, lengths) -> Value:
    """T copies of the step, the first without the state (a zero state, left out)."""
    state: tuple = (None,) * parts
    left = None if lengths is None else ops.cast(lengths, xs.dtype).reshape(xs.shape[0], 1)
    hs = []
    for t in range(steps):
        new, h = step(xs[:, t] @ params[0], state, params, hidden)
        if left is not None:  # past its end a sequence keeps its state and outputs zeros
            keep = left > float(t)
            new = tuple(_masked(keep, v, old) for v, old in zip(new, state, strict=True))
            h = _masked(keep, h, None)
        state = new
        hs.append(h)
    if not return_sequences:
        return state[0]
    n = hs[0].shape[0]
    return ops.concat([h.reshape(n, 1, hidden) for h in hs], axis=1)


def _looped(step, xs, params, hidden, parts, return_sequences, lengths) -> Value:
    """A loop over the steps (gc.scan) on axis 1 of xs [N, T, D], every step's h stacked on
    axis 1 [N, T, H]: batch-first arrays read and written where they are (no time-major
    copies of xs, of the outputs or of their gradient)."""
    n = xs.shape[0]
    zero = ops.broadcast_to(xs.graph.const(0.0, dtype=xs.dtype), (n, hidden))
    state = (zero,) * parts
    if lengths is None:

        def cell(s, x):
            return step(x @ params[0], s, params, hidden)

        final, hs = ops.scan(cell, state, xs, axis=1)
    else:
        left = ops.cast(lengths, xs.dtype).reshape(n, 1)  # steps each sequence has left

        def cell(c, x):
            s, k = c
            keep = k > 0.0
            new, h = step(x @ params[0], s, params, hidden)
            new = tuple(_masked(keep, v, old) for v, old in zip(new, s, strict=True))
            return (new, k - 1.0), _masked(keep, h, None)

        (final, _), hs = ops.scan(cell, (state, left), xs, axis=1)
    return hs if return_sequences else final[0]
