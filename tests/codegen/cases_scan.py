"""Compiled-versus-interpreter models for loops: `scan` and `scan_out` (merged into
cases.MODELS).

The trip counts are symbols, so one build runs every loop at several lengths: `N` (0 at one of
cases.SIZES: a loop of no trip, whose carries are its initial ones and whose stacked results are
empty), `K` (at least 1), and static ones. The cases cover a loop's parts: carries that are
tuples, pass through unchanged or are also a per-step result; several per-step operands and
results; captured values (whose gradients are summed over the trips); reverse loops; a loop with
no per-step operand (`length=`); slices of a gate-stacked value, as an LSTM's; a loop in a
loop's body; a loop whose result is read only by the backward pass; and loops with their steps
on an inner axis (`axis=`: batch-first sequences, each slice gathered and scattered in blocks),
forward and reverse, whose backward loops read residuals on axis 0 beside them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import graphc as gc
from tests.codegen.cases import In, Model, normal

SMALL = normal(0.5)  # recurrent weights that keep the state of moderate size


def _rnn(x, h0, w):
    def cell(h, xt):
        h = gc.tanh(xt + h @ w)
        return h, h * 2.0

    return gc.scan(cell, h0, x)


def _numpy_rnn(x, h0, w):
    h, ys = h0, []
    for xt in x:
        h = np.tanh(xt + h @ w)
        ys.append(h * 2.0)
    return h, (np.stack(ys) if ys else np.zeros((0, *h0.shape)))


def _gates(x, s, u, b):
    """An LSTM-like cell over gate-stacked columns [4H], H = 3."""

    def cell(c, xt):
        h, cc = c
        a = xt + h @ u + b
        i, f, g, o = (a[:, 3 * k : 3 * k + 3] for k in range(4))
        cc = gc.sigmoid(f) * cc + gc.sigmoid(i) * gc.tanh(g)
        h = gc.sigmoid(o) * gc.tanh(cc)
        return (h, cc), h

    (h, cc), hs = gc.scan(cell, (s, s * 0.5), x)
    return hs + gc.sum(cc)


def _two_results_reverse(x, z, a):
    def cell(c, xs):
        x1, x2 = xs
        k, acc = c
        acc = acc * a + x1 * x2
        return (k, acc), (acc, gc.sum(acc * acc))

    (k, acc), (ys, sq) = gc.scan(cell, (a * 0.0 + 1.0, a), (x, z), reverse=True)
    return gc.sum(ys, axis=0) + gc.sum(sq) + acc + k


def _counted(a):
    def cell(c, _):
        return c * a + 0.25, None

    c, _ = gc.scan(cell, a, length=3)
    return c


def _nested(x, w):
    def outer(h, xt):
        def inner(k, xi):
            return gc.tanh(k * w + xi), None

        k, _ = gc.scan(inner, h, xt)
        return k * 0.5 + h, k

    h, ks = gc.scan(outer, w, x)
    return ks * h


def _stacked_only(x, w):
    """A result only the backward pass reads (a residual) and a per-step result of a carry."""

    def cell(h, xt):
        return gc.sigmoid(h * w + xt), h

    h, hs = gc.scan(cell, w, x)
    return hs


def _batch_first(x, h0, w):
    """The RNN over x [2, T, 3], steps on axis 1: h [2, 3], ys [2, T, 3]."""

    def cell(h, xt):
        h = gc.tanh(xt + h @ w)
        return h, h * 2.0

    return gc.scan(cell, h0, x, axis=1)


def _numpy_batch_first(x, h0, w):
    h, ys = _numpy_rnn(np.moveaxis(x, 1, 0), h0, w)
    return h, np.moveaxis(ys, 0, 1)


def _inner_axis_reverse(x, z, a):
    """x [2, 3, K, 2] and z [2, 1, K] on axis 2 (six blocks of two and two of one a slice);
    ys [2, 3, K, 2] and [2, 3, K] stacked on axis 2."""

    def cell(c, xs):
        xt, zt = xs
        acc = c * a + xt * gc.reshape(zt, (2, 1, 1))
        return acc, (gc.tanh(acc), gc.sum(acc, axis=2))

    zs = gc.reshape(z, (2, 1, z.shape[1]))  # [2, 1, K]
    init = gc.broadcast_to(a * 0.5, (2, 3, 2))
    c, (ys, sums) = gc.scan(cell, init, (x, zs), reverse=True, axis=2)
    return gc.sum(ys, axis=2) * c + gc.sum(sums)


def _nested_inner_axis(x, w):
    """x [K, 2, 3]: a loop in the body over axis 1 of each slice [2, 3], stacking on it."""

    def outer(h, xt):
        def inner(k, xi):
            k = gc.tanh(k * w + xi)
            return k, k * 0.5

        k, ks = gc.scan(inner, h, xt, axis=1)
        return k * 0.5 + h, ks

    h, ks = gc.scan(outer, w, x)
    return ks * gc.reshape(h, (2, 1))


def scan_model(name: str) -> Model:
    m = Model(name)
    m.case("scan[rnn,T=N]", "scan_out", lambda x, h, w: _rnn(x, h, w)[1],
           In(("N", 2, 3)), In((2, 3)), In((3, 3), SMALL),
           numpy=lambda x, h, w: _numpy_rnn(x, h, w)[1])  # fmt: skip
    m.case("scan[rnn,final]", "scan", lambda x, h, w: _rnn(x, h, w)[0],
           In(("N", 2, 3)), In((2, 3)), In((3, 3), SMALL),
           numpy=lambda x, h, w: _numpy_rnn(x, h, w)[0])  # fmt: skip
    m.case("scan[gates,T=K]", "scan", _gates,
           In(("K", "N", 12)), In(("N", 3)), In((3, 12), SMALL), In((12,)))  # fmt: skip
    m.case("scan[reverse,tuples]", "scan", _two_results_reverse,
           In(("K", 4)), In(("K", 4)), In((4,), SMALL))  # fmt: skip
    m.case("scan[length=3]", "scan", _counted, In((3,), SMALL))
    m.case("scan[nested]", "scan", _nested, In(("K", 2, 3)), In((3,), SMALL))
    m.case("scan[residual]", "scan", _stacked_only, In(("N", 4)), In((4,)))
    m.case("scan[axis=1,T=N]", "scan_out", lambda x, h, w: _batch_first(x, h, w)[1],
           In((2, "N", 3)), In((2, 3)), In((3, 3), SMALL),
           numpy=lambda x, h, w: _numpy_batch_first(x, h, w)[1])  # fmt: skip
    m.case("scan[axis=1,final]", "scan", lambda x, h, w: _batch_first(x, h, w)[0],
           In((2, "N", 3)), In((2, 3)), In((3, 3), SMALL),
           numpy=lambda x, h, w: _numpy_batch_first(x, h, w)[0])  # fmt: skip
    m.case("scan[axis=2,reverse]", "scan", _inner_axis_reverse,
           In((2, 3, "K", 2)), In((2, "K")), In((3, 2), SMALL))  # fmt: skip
    m.case("scan[nested,axis=1]", "scan", _nested_inner_axis, In(("K", 2, 3)), In((2,), SMALL))
    return m.finish()


def scan_f32_model(name: str) -> Model:
    m = Model(name)
    m.case("scan[rnn,T=N]", "scan_out", lambda x, h, w: _rnn(x, h, w)[1],
           In(("N", 2, 3)), In((2, 3)), In((3, 3), SMALL))  # fmt: skip
    m.case("scan[gates,T=K]", "scan", _gates,
           In(("K", "N", 12)), In(("N", 3)), In((3, 12), SMALL), In((12,)))  # fmt: skip
    m.case("scan[reverse,tuples]", "scan", _two_results_reverse,
           In(("K", 4)), In(("K", 4)), In((4,), SMALL))  # fmt: skip
    m.case("scan[axis=1,T=N]", "scan_out", lambda x, h, w: _batch_first(x, h, w)[1],
           In((2, "N", 3)), In((2, 3)), In((3, 3), SMALL))  # fmt: skip
    return m.finish()


MODELS: dict[str, tuple[Callable[[str], Model], tuple[str, ...]]] = {
    "scan": (scan_model, ("float64",)),
    "scan_f32": (scan_f32_model, ("float32",)),
}
