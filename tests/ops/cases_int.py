"""Registry cases for int and bool computation (merged into tests/ops/test_registry.py's
table): arithmetic, comparisons and `where` on ints, casts among every dtype, and the bitwise
and logical ops of graphc/ops/integer.py.

The table's inputs are float params; a case casts them to ints (small values on a grid) and
checks the int op's value against NumPy's on the same ints (Python's own arithmetic where
NumPy's differs: int powers with negative exponents); no gradient reaches the params.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import graphc as gc
from tests.domains import normal, small_ints


def ints(lo: int, hi: int) -> Callable[..., np.ndarray]:
    return lambda rng, shape: rng.integers(lo, hi, shape).astype(np.float64)


MIXED = ints(-9, 10)
POSITIVE = ints(1, 10)
SHIFTS = ints(-2, 12)


def _py_pow(a: int, b: int) -> int:
    if b < 0:
        return 1 if a == 1 else (-1 if b % 2 else 1) if a == -1 else 0
    return a**b


def _elementwise(fn: Callable[..., Any], dtype: str) -> Callable[..., np.ndarray]:
    def run(*xs: np.ndarray) -> np.ndarray:
        bs = np.broadcast_arrays(*(np.asarray(x).astype(np.int64) for x in xs))
        out = [fn(*(int(b.flat[i]) for b in bs)) for i in range(bs[0].size)]
        return np.asarray(out).astype(dtype).reshape(bs[0].shape)

    return run


# (op, builder over ints, NumPy over ints, domains, dtypes of the ints)
BINARY: list[tuple[str, Callable, Callable, tuple, tuple[str, str]]] = [
    ("add", gc.add, np.add, (MIXED, MIXED), ("int64", "int8")),
    ("sub", gc.sub, np.subtract, (MIXED, MIXED), ("int32", "int32")),
    ("mul", gc.mul, np.multiply, (MIXED, MIXED), ("int16", "uint8")),
    ("div", gc.div, np.true_divide, (MIXED, POSITIVE), ("int64", "int64")),
    ("floor_divide", gc.floor_divide, np.floor_divide, (MIXED, POSITIVE), ("int64", "int32")),
    ("remainder", gc.remainder, np.remainder, (MIXED, POSITIVE), ("int8", "int8")),
    ("maximum", gc.maximum, np.maximum, (MIXED, MIXED), ("int32", "int64")),
    ("minimum", gc.minimum, np.minimum, (MIXED, MIXED), ("uint8", "uint8")),
    ("less", gc.less, np.less, (MIXED, MIXED), ("int64", "int8")),
    ("equal", gc.equal, np.equal, (MIXED, MIXED), ("int32", "int32")),
    ("bitwise_and", gc.bitwise_and, np.bitwise_and, (MIXED, MIXED), ("int64", "int16")),
    ("bitwise_or", gc.bitwise_or, np.bitwise_or, (MIXED, MIXED), ("int8", "int8")),
    ("bitwise_xor", gc.bitwise_xor, np.bitwise_xor, (MIXED, MIXED), ("uint8", "int64")),
    ("logical_and", gc.logical_and, np.logical_and, (small_ints, small_ints), ("int64", "int8")),
    ("logical_or", gc.logical_or, np.logical_or, (small_ints, small_ints), ("int32", "int32")),
    ("logical_xor", gc.logical_xor, np.logical_xor, (small_ints, small_ints), ("int8", "int8")),
]  # fmt: skip


def cases(case: Callable[..., Any]) -> list[Any]:
    """The cases, made with test_registry's `case(op, build, numpy, *shapes, **kw)`."""
    out = []
    for op, build, ref, doms, (da, db) in BINARY:
        for sa, sb, label in [((3, 4), (4,), "ints"), (("N", 3), ("N", 1), "ints")]:
            out.append(case(
                op, lambda x, y, b=build, da=da, db=db: b(gc.cast(x, da), gc.cast(y, db)),
                lambda x, y, r=ref, da=da, db=db: r(_np_cast(x, da), _np_cast(y, db)),
                sa, sb, bind={"N": 2}, domain=doms, no_grad=(0, 1), label=f"{label}-{da},{db}",
            ))  # fmt: skip
    out += [
        case("pow", lambda x, y: gc.pow(gc.cast(x, "int64"), gc.cast(y, "int64")),
             _elementwise(_py_pow, "int64"), (3, 4), (3, 4), domain=(ints(-3, 4), ints(-2, 5)),
             no_grad=(0, 1), label="ints"),
        case("neg", lambda x: -gc.cast(x, "int16"), lambda x: -x.astype(np.int16), (3, 4),
             domain=(MIXED,), no_grad=(0,), label="int16"),
        case("abs", lambda x: gc.abs(gc.cast(x, "int8")), lambda x: np.abs(x.astype(np.int8)),
             (3, 4), domain=(MIXED,), no_grad=(0,), label="int8"),
        case("sign", lambda x: gc.sign(gc.cast(x, "int32")), lambda x: np.sign(x.astype(np.int32)),
             (3, 4), domain=(MIXED,), no_grad=(0,), label="int32"),
        case("where", lambda c, x, y: gc.where(c > 0, gc.cast(x, "int64"), gc.cast(y, "int8")),
             lambda c, x, y: np.where(c > 0, x.astype(np.int64), y.astype(np.int8)),
             (3, 4), (3, 4), (4,), domain=(normal(), MIXED, MIXED), no_grad=(0, 1, 2),
             label="ints"),
        case("bitwise_not", lambda x: ~gc.cast(x, "int32"), lambda x: ~x.astype(np.int32),
             (3, 4), domain=(MIXED,), no_grad=(0,), label="int32"),
        case("bitwise_not", lambda x: ~(x > 0), lambda x: ~(x > 0), (3, 4), no_grad=(0,),
             label="bool"),
        case("bitwise_and", lambda x, y: (x > 0) & (y > 0), lambda x, y: (x > 0) & (y > 0),
             (3, 4), (4,), no_grad=(0, 1), label="bools"),
        case("logical_not", lambda x: gc.logical_not(x), np.logical_not, (3, 4),
             domain=(small_ints,), label="floats"),
        case("left_shift", lambda x, s: gc.cast(x, "int8") << gc.cast(s, "int8"),
             lambda x, s: _shift(x, s, "int8", left=True), (3, 4), (3, 4),
             domain=(MIXED, SHIFTS), no_grad=(0, 1), label="int8"),
        case("left_shift", lambda x, s: gc.cast(x, "int64") << gc.cast(s, "int64"),
             lambda x, s: _shift(x, s, "int64", left=True), (3, 4), (4,),
             domain=(MIXED, ints(-2, 70)), no_grad=(0, 1), label="int64"),
        case("right_shift", lambda x, s: gc.cast(x, "int32") >> gc.cast(s, "uint8"),
             lambda x, s: _shift(x, s, "int32", left=False), (3, 4), (4,),
             domain=(MIXED, ints(0, 40)), no_grad=(0, 1), label="int32"),
    ]  # fmt: skip
    # casts among every dtype: float to int truncates, wraps into narrow ints
    for src, dst in [("float64", "int64"), ("float64", "int8"), ("float64", "uint8"),
                     ("int64", "int16"), ("int8", "float32"), ("int32", "bool"),
                     ("bool", "int64"), ("uint8", "int8"), ("float64", "int32")]:  # fmt: skip
        out.append(case(
            "cast", lambda x, s=src, d=dst: gc.cast(_cast_in(x, s), d),
            lambda x, s=src, d=dst: _np_cast(_np_in(x, s), d), (3, 4),
            domain=(lambda rng, shape: rng.uniform(-300, 300, shape),), no_grad=(0,),
            label=f"{src}->{dst}",
        ))  # fmt: skip
    return out


def _cast_in(x: gc.Value, dtype: str) -> gc.Value:
    return (
        x
        if dtype == "float64"
        else gc.cast(x > 0, "bool")
        if dtype == "bool"
        else gc.cast(x, dtype)
    )


def _np_in(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bool":
        return x > 0
    return x if dtype == "float64" else _np_cast(x, dtype)


def _np_cast(x: np.ndarray, dtype: str) -> np.ndarray:
    """NumPy's cast on x86 (floats truncate; beyond int32 they become its least value before
    narrower ints wrap), written out so that it holds on any platform."""
    if dtype == "bool":
        return x != 0
    if x.dtype.kind == "f" and np.dtype(dtype).kind in "iu":
        wide = np.int64 if dtype == "int64" else np.int32
        t = np.trunc(x)
        info = np.iinfo(wide)
        inside = (t >= info.min) & (t <= info.max)
        return np.where(inside, np.where(inside, t, 0).astype(wide), info.min).astype(dtype)
    return x.astype(dtype)


def _shift(x: np.ndarray, s: np.ndarray, dtype: str, left: bool) -> np.ndarray:
    """NumPy's shifts in `dtype`, element by element: shifts by a negative amount or the width
    or more give 0 (-1 for negative values shifted right)."""
    bits = np.dtype(dtype).itemsize * 8
    xs, ss = np.broadcast_arrays(x.astype(np.int64), s.astype(np.int64))
    out = []
    for a, b in zip(xs.ravel().tolist(), ss.ravel().tolist(), strict=True):
        if not 0 <= b < bits:
            out.append(0 if left or a >= 0 else -1)
        else:
            out.append(a << b if left else a >> b)
    wrapped = (np.array(out, dtype=object) + 2**63) % 2**64 - 2**63
    return wrapped.astype(np.int64).astype(dtype).reshape(xs.shape)


# (id, make(graph)) pairs the ops must reject with a ShapeError
ILLEGAL: list[tuple[str, Callable[[Any], Any]]] = [
    ("add-bools", lambda g: (g.param("x", shape=(3,)) > 0) + (g.param("y", shape=(3,)) > 0)),
    ("shift-float", lambda g: gc.left_shift(g.param("x", shape=(3,)), 1)),
    ("bitwise-float", lambda g: gc.bitwise_and(g.param("x", shape=(3,)), 1)),
    ("exp-int", lambda g: gc.exp(g.input("i", shape=(3,), dtype="int32"))),
]
