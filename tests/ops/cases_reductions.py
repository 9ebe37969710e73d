"""Registry cases for min, prod, argmax, argmin, any, all, var, std, norm and the scans (cumsum,
cumprod, logcumsumexp, linrec, shift, cummax and cummin through cumarg), merged into
tests/ops/test_registry.py's table. The NumPy formulas are NumPy's own functions (ufunc
accumulations for the scans) or plain loops, never the ops' references.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import graphc as gc
from graphc.ops.cumulative import linrec, shift
from tests.domains import distinct, small_ints, uniform

F32 = ("float32",)


def _flip(fn: Callable, axis: int) -> Callable:
    return lambda x: np.flip(fn(np.flip(x, axis)), axis)


def _linrec(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    a, b = np.moveaxis(a, axis, 0), np.moveaxis(b, axis, 0)
    out, prev = np.empty_like(b), np.zeros_like(b[0]) if len(b) else None
    for k in range(len(b)):
        prev = b[k] + a[k] * prev
        out[k] = prev
    return np.moveaxis(out, 0, axis)


def _shift(x: np.ndarray, axis: int, by: int, fill: float) -> np.ndarray:
    out = np.full_like(x, fill)
    n = x.shape[axis]
    for k in range(n):
        if 0 <= k - by < n:
            np.moveaxis(out, axis, 0)[k] = np.moveaxis(x, axis, 0)[k - by]
    return out


def _cumarg(x: np.ndarray, axis: int, largest: bool) -> np.ndarray:
    """PyTorch's cummax indices, element by element: a later equal value takes over."""
    xs = np.moveaxis(x, axis, -1)
    out = np.zeros(xs.shape, np.int64)
    for pos in np.ndindex(xs.shape[:-1]):
        best, at = None, 0
        for k, v in enumerate(xs[pos]):
            if best is None or (v >= best if largest else v <= best):
                best, at = v, k
            out[pos + (k,)] = at
    return np.moveaxis(out, -1, axis)


def _var(x: np.ndarray, axis: Any, ddof: float) -> np.ndarray:
    return np.var(x, axis=axis, ddof=ddof)


AXES = [((3, 4), None, False), ((3, 4), 1, True), ((2, 3, 4), (0, 2), False),
        (("N", 3), 0, False)]  # fmt: skip


def cases(case: Callable[..., Any]) -> list[Any]:
    """The cases, made with test_registry's `case(op, build, numpy, *shapes, **kw)`."""
    out = []
    for s, axis, keep in AXES:
        lab = f"axis={axis}".replace(" ", "") + (",keepdims" if keep else "")
        kw = {"bind": {"N": 2}, "label": lab}
        out += [
            case("min", lambda x, a=axis, k=keep: gc.min(x, a, keepdims=k),
                 lambda x, a=axis, k=keep: np.min(x, a, keepdims=k), s, domain=(distinct,), **kw),
            case("any", lambda x, a=axis, k=keep: gc.any(x > 0.5, a, keepdims=k),
                 lambda x, a=axis, k=keep: np.any(x > 0.5, a, keepdims=k), s, no_grad=(0,),
                 **kw),
            case("all", lambda x, a=axis, k=keep: gc.all(x, a, keepdims=k),
                 lambda x, a=axis, k=keep: np.all(x != 0, a, keepdims=k), s,
                 domain=(small_ints,), no_grad=(0,), **kw),
            case("var", lambda x, a=axis, k=keep: gc.var(x, a, keepdims=k),
                 lambda x, a=axis, k=keep: np.var(x, a, ddof=1, keepdims=k), s, **kw),
            case("std", lambda x, a=axis, k=keep: gc.std(x, a, correction=0, keepdims=k),
                 lambda x, a=axis, k=keep: np.std(x, a, keepdims=k), s, **kw),
            case("norm", lambda x, a=axis, k=keep: gc.norm(x, axis=a, keepdims=k),
                 lambda x, a=axis, k=keep: np.sqrt(np.sum(x * x, a, keepdims=k)), s, **kw),
        ]  # fmt: skip
    out += [
        case("norm", lambda x: gc.norm(x, 3, axis=1), lambda x: np.linalg.norm(x, 3, axis=1),
             (3, 4), label="p=3"),
        case("norm", lambda x: gc.norm(x, 0.5), lambda x: np.sum(np.abs(x) ** 0.5) ** 2,
             (3, 4), domain=(uniform(0.3, 2.0),), label="p=0.5"),
        case("norm", lambda x: gc.norm(x, 1.5, axis=0), lambda x: np.linalg.norm(x, 1.5, axis=0),
             (3, 4), label="p=1.5"),
        case("norm", lambda x: gc.norm(x, axis=1), lambda x: np.linalg.norm(x, axis=1), (3, 4),
             dtypes=F32, label="f32"),
        case("var", lambda x: gc.var(x, 0, correction=2), lambda x: _var(x, 0, 2), (5, 2),
             label="correction=2"),
        case("std", lambda x: gc.std(x, 1), lambda x: np.std(x, 1, ddof=1), (3, 4), dtypes=F32,
             label="f32"),
        case("min", lambda x: gc.min(x, 0), lambda x: np.min(x, 0), (3, 4), dtypes=F32,
             domain=(distinct,), label="f32"),
        # prod: one axis at a time; a zero in the product is no pole of the gradient
        case("prod", lambda x: gc.prod(x, 1), lambda x: np.prod(x, 1), (3, 4), label="axis=1"),
        case("prod", lambda x: gc.prod(x, 0, keepdims=True), lambda x: np.prod(x, 0, keepdims=True),
             ("N", 3), bind={"N": 3}, label="axis=0,keepdims"),
        case("prod", lambda x: gc.prod(x), lambda x: np.prod(x), (2, 3), composite=True,
             label="all"),
        case("prod", lambda x: gc.prod(x * np.array([1.0, 0.0, 1.0]), 1),
             lambda x: np.prod(x * np.array([1.0, 0.0, 1.0]), 1), (3, 3), label="zero"),
        case("prod", lambda x: gc.prod(x, 1), lambda x: np.prod(x, 1), (3, 4), dtypes=F32,
             label="f32"),
        # argmax, argmin: int64 indices, no gradient
        case("argmax", lambda x: gc.argmax(x, 1), lambda x: np.argmax(x, 1), (3, 4),
             domain=(distinct,), label="axis=1"),
        case("argmax", lambda x: gc.argmax(x), lambda x: np.argmax(x), (3, 4),
             domain=(small_ints,), label="all,ties"),
        case("argmin", lambda x: gc.argmin(x, 0, keepdims=True),
             lambda x: np.argmin(x, 0, keepdims=True), ("N", 4), bind={"N": 3},
             domain=(small_ints,), label="axis=0,ties"),
    ]  # fmt: skip
    # scans
    for op, build, ref in [
        ("cumsum", gc.cumsum, np.cumsum), ("cumprod", gc.cumprod, np.cumprod),
        ("logcumsumexp", gc.logcumsumexp, lambda x, axis: np.logaddexp.accumulate(x, axis)),
    ]:  # fmt: skip
        out += [
            case(op, lambda x, b=build: b(x, 1), lambda x, r=ref: r(x, axis=1), (3, 4),
                 label="axis=1"),
            case(op, lambda x, b=build: b(x, 0, reverse=True),
                 lambda x, r=ref: _flip(lambda v: r(v, axis=0), 0)(x), ("N", 3), bind={"N": 3},
                 label="axis=0,reverse"),
            case(op, lambda x, b=build: b(x, 1), lambda x, r=ref: r(x, axis=1), (2, 3, 2),
                 dtypes=F32, label="f32"),
            case(op, lambda x, b=build: b(x, 0), lambda x, r=ref: r(x, axis=0), ("N", 2),
                 bind={"N": 0}, label="empty"),
        ]  # fmt: skip
    out += [
        case("cumprod", lambda x: gc.cumprod(x * np.array([1.0, 1.0, 0.0, 1.0]), 1),
             lambda x: np.cumprod(x * np.array([1.0, 1.0, 0.0, 1.0]), 1), (3, 4), label="zero"),
        case("linrec", lambda a, b: linrec(a, b, 1), lambda a, b: _linrec(a, b, 1), (3, 4),
             (3, 4)),
        case("linrec", lambda a, b: linrec(a, b, 0, reverse=True),
             lambda a, b: _flip(lambda v: _linrec(np.flip(a, 0), v, 0), 0)(b), ("N", 2),
             ("N", 2), bind={"N": 3}, label="reverse"),
        case("shift", lambda x: shift(x, 1, 2, 0.5), lambda x: _shift(x, 1, 2, 0.5), (3, 4),
             label="by=2"),
        case("shift", lambda x: shift(x, 0, -1), lambda x: _shift(x, 0, -1, 0.0), ("N", 2),
             bind={"N": 3}, label="by=-1"),
        case("cumarg", lambda x: gc.cummax(x, 1)[1], lambda x: _cumarg(x, 1, True), (3, 5),
             domain=(small_ints,), label="cummax,ties"),
        case("cumarg", lambda x: gc.cummin(x, 0)[1], lambda x: _cumarg(x, 0, False), ("N", 2),
             bind={"N": 4}, domain=(small_ints,), label="cummin,ties"),
        case("cummax", lambda x: gc.cummax(x, 1)[0], lambda x: np.maximum.accumulate(x, 1),
             (3, 5), domain=(distinct,), composite=True),
        case("cummin", lambda x: gc.cummin(x, 0)[0], lambda x: np.minimum.accumulate(x, 0),
             (4, 2), domain=(distinct,), composite=True),
    ]  # fmt: skip
    return out


# (id, make(graph)) pairs the ops must reject with a ShapeError
ILLEGAL: list[tuple[str, Callable[[Any], Any]]] = [
    ("argmax-empty", lambda g: gc.argmax(g.param("x", shape=(0, 3)), 0)),
    ("prod-axis", lambda g: gc.prod(g.param("x", shape=(3,)), 1)),
    ("cumsum-axis", lambda g: gc.cumsum(g.param("x", shape=(3,)), 2)),
    ("norm-ord", lambda g: gc.norm(g.param("x", shape=(3,)), "fro")),
    ("var-correction", lambda g: gc.var(g.param("x", shape=(3,)), correction="1")),
    ("any-axis", lambda g: gc.any(g.param("x", shape=(3,)), 1)),
]
