"""Registry cases for loops, `scan` and its results `scan_out` (merged into
tests/ops/test_registry.py's table). Each builds a loop with gc.scan, so each is a composite
case named "scan" that covers both ops; its NumPy twin is the same loop in Python."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import graphc as gc
from tests.domains import normal

F32 = ("float32",)


def _rnn(x, h0, w):  # x [T, B, 3], h0 [B, 3], w [3, 3]: the stacked states
    return gc.scan(lambda h, xt: (gc.tanh(xt + h @ w),) * 2, h0, x)[1]


def _np_rnn(x, h0, w):
    h, ys = h0, []
    for xt in x:
        h = np.tanh(xt + h @ w)
        ys.append(h)
    return np.stack(ys) if ys else np.zeros((0, *h0.shape), h0.dtype)


def _reverse(x, a):  # x [T, 3], a [3]: final carry of a reverse loop with a pass-through part
    def cell(c, xt):
        k, acc = c
        return (k, gc.tanh(acc * a + xt) * k), None

    (k, acc), _ = gc.scan(cell, (a * 0.5, a), x, reverse=True)
    return acc


def _np_reverse(x, a):
    acc = a
    for xt in x[::-1]:
        acc = np.tanh(acc * a + xt) * (a * 0.5)
    return acc


def _counted(a):  # a [3]: x <- x * a + sin-free polynomial, three times, no xs
    return gc.scan(lambda c, _: (c * a + c * c * 0.25, None), a, length=3)[0]


def _np_counted(a):
    c = a
    for _ in range(3):
        c = c * a + c * c * 0.25
    return c


def cases(case: Callable[..., Any]) -> list[Any]:
    """The cases, made with test_registry's `case(op, build, numpy, *shapes, **kw)`."""
    small = normal(0.5)
    return [
        case("scan", _rnn, _np_rnn, (4, 2, 3), (2, 3), (3, 3), domain=(normal(), normal(), small),
             composite=True, label="rnn"),
        case("scan", _rnn, _np_rnn, ("N", 2, 3), (2, 3), (3, 3), bind={"N": 3},
             domain=(normal(), normal(), small), composite=True, label="T=N"),
        case("scan", _rnn, _np_rnn, ("N", 2, 3), (2, 3), (3, 3), bind={"N": 0},
             domain=(normal(), normal(), small), composite=True, label="T=0"),
        case("scan", _reverse, _np_reverse, (3, 3), (3,), composite=True, label="reverse"),
        case("scan", _counted, _np_counted, (3,), domain=(small,), composite=True,
             label="length"),
        case("scan", _rnn, _np_rnn, (3, 2, 3), (2, 3), (3, 3), dtypes=F32 * 3,
             domain=(normal(), normal(), small), composite=True, label="f32"),
    ]  # fmt: skip
