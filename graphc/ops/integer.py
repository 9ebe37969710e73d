"""Bitwise and logical ops: `& | ^ ~` on ints and bools, shifts of ints, and logical and, or,
xor and not of any values (nonzero is true). None has a gradient.

Ints are NumPy's: a shift by a negative amount or by the width of the type or more gives 0
(right shifts of negative values -1), never C's undefined behaviour; the arithmetic of ints
(`+ - * // % **`, wrapping around) is the elementwise ops' own (ops/_dtypes.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.codegen import kir
from graphc.ir.graph import Value
from graphc.ir.shapes import INT_DTYPES, ShapeMismatch, broadcast_shapes
from graphc.ops._build import apply
from graphc.ops._dtypes import to
from graphc.ops.registry import OpDef, register

BITS = {"int64": 64, "int32": 32, "int16": 16, "int8": 8, "uint8": 8}
ONES = {"int64": -1, "int32": -1, "int16": -1, "int8": -1, "uint8": 255, "bool": True}


def _infer_bits(op: str, bools: bool = True):
    """ints (and bools, if `bools`) of any widths: NumPy's common dtype."""

    def infer(shapes, dtypes, params):
        for d in dtypes:
            if d not in INT_DTYPES and not (bools and d == "bool"):
                kinds = "ints or bools" if bools else "ints"
                raise ShapeMismatch(f"{op} takes {kinds}, got {d}")
        dtype = "bool" if all(d == "bool" for d in dtypes) else np.result_type(*dtypes).name
        return broadcast_shapes(*shapes), dtype

    return infer


def _infer_logical(shapes, dtypes, params):
    return broadcast_shapes(*shapes), "bool"


def _register(name: str, arity: int, infer, ref, scalar, formula: str, typed: bool = True):
    register(OpDef(name, arity, infer, ref, (None,) * arity, elementwise=True, scalar=scalar,
                   typed=typed, formula=formula))  # fmt: skip

    def build(*args: Any) -> Value:
        return apply(name, *args)

    build.__name__ = name
    build.__doc__ = f"Elementwise {name}, with NumPy broadcasting: {formula}."
    return build


def _same(fn: Callable[..., kir.Expr]) -> Callable[..., kir.Expr]:
    """A typed rule applying `fn` to operands cast to the result's dtype."""

    def rule(*xs: kir.Expr, dtypes: tuple[str, ...]) -> kir.Expr:
        out = dtypes[0]
        return kir.Cast(out, fn(*(to(out, x, d) for x, d in zip(xs, dtypes[1:], strict=True))))

    return rule


def _ref(fn):
    def ref(*xs: np.ndarray) -> np.ndarray:
        kinds = {x.dtype.name for x in xs}
        dtype = "bool" if kinds == {"bool"} else np.result_type(*xs).name
        return fn(*(x.astype(dtype) for x in xs))

    return ref


bitwise_and = _register("bitwise_and", 2, _infer_bits("bitwise_and"), _ref(np.bitwise_and),
                        _same(lambda x, y: x & y), "x & y, bit by bit (and for bools)")  # fmt: skip
bitwise_or = _register("bitwise_or", 2, _infer_bits("bitwise_or"), _ref(np.bitwise_or),
                       _same(lambda x, y: x | y), "x | y, bit by bit (or for bools)")  # fmt: skip
bitwise_xor = _register(
    "bitwise_xor", 2, _infer_bits("bitwise_xor"), _ref(np.bitwise_xor),
    _same(lambda x, y: kir.Bin("^", x, y)), "x ^ y, bit by bit (xor for bools)",
)  # fmt: skip
bitwise_not = _register(
    "bitwise_not", 1, _infer_bits("bitwise_not"), np.invert,
    lambda x, dtypes: kir.Cast(dtypes[0], kir.Bin("^", x, kir.Lit(ONES[dtypes[0]]))),
    "~x, every bit flipped (not for bools)",
)  # fmt: skip


def _left_shift_ref(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    dtype = np.result_type(x, s)
    ok = (s >= 0) & (s < BITS[dtype.name])
    shifted = np.left_shift(x.astype(np.uint64), np.where(ok, s, 0).astype(np.uint64))
    return np.where(ok, shifted, 0).astype(dtype)


def _right_shift_ref(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    dtype = np.result_type(x, s)
    ok = (s >= 0) & (s < BITS[dtype.name])
    shifted = np.right_shift(x.astype(np.int64), np.where(ok, s, 0).astype(np.int64))
    return np.where(ok, shifted, np.where(x < 0, -1, 0)).astype(dtype)


def _shift_ok(s: kir.Expr, out: str) -> kir.Expr:
    return kir.Bin("and", s >= 0, s < BITS[out])


def _left_shift_scalar(x: kir.Expr, s: kir.Expr, dtypes: tuple[str, ...]) -> kir.Expr:
    out = dtypes[0]  # shifted as unsigned (C's << of a negative int is undefined)
    ok = _shift_ok(s, out)
    amount = kir.Cast("uint64", kir.select(ok, s, 0))
    shifted = kir.Bin("<<", kir.Cast("uint64", x), amount)
    return kir.Cast(out, kir.select(ok, shifted, kir.Cast("uint64", kir.Lit(0))))


def _right_shift_scalar(x: kir.Expr, s: kir.Expr, dtypes: tuple[str, ...]) -> kir.Expr:
    out = dtypes[0]  # arithmetic: a negative value keeps its sign
    ok = _shift_ok(s, out)
    amount = kir.Cast("int64", kir.select(ok, s, 0))
    shifted = kir.Bin(">>", kir.Cast("int64", x), amount)
    outside = kir.select(x < 0, kir.Cast("int64", kir.Lit(-1)), kir.Cast("int64", kir.Lit(0)))
    return kir.Cast(out, kir.select(ok, shifted, outside))


left_shift = _register(
    "left_shift", 2, _infer_bits("left_shift", bools=False), _left_shift_ref,
    _left_shift_scalar, "x << s (0 for s < 0 or s >= the width of the type)",
)  # fmt: skip
right_shift = _register(
    "right_shift", 2, _infer_bits("right_shift", bools=False), _right_shift_ref,
    _right_shift_scalar, "x >> s, arithmetic (0 or -1 for s < 0 or s >= the width)",
)  # fmt: skip

# logical: any values, nonzero (NaN too) is true
logical_and = _register(
    "logical_and", 2, _infer_logical, np.logical_and,
    lambda x, y: kir.Bin("&", x.ne(0), y.ne(0)), "x and y, each true where nonzero", typed=False,
)  # fmt: skip
logical_or = _register(
    "logical_or", 2, _infer_logical, np.logical_or,
    lambda x, y: kir.Bin("|", x.ne(0), y.ne(0)), "x or y, each true where nonzero", typed=False,
)  # fmt: skip
logical_xor = _register(
    "logical_xor", 2, _infer_logical, np.logical_xor,
    lambda x, y: x.ne(0).ne(y.ne(0)), "x xor y, each true where nonzero", typed=False,
)  # fmt: skip
logical_not = _register(
    "logical_not", 1, _infer_logical, np.logical_not, lambda x: x.eq(0),
    "not x: true where x is 0", typed=False,
)  # fmt: skip
