"""What elementwise ops on ints and floats alike share: the dtype of a result, and scalar rules
that differ by type.

Promotion is NumPy's among ints (int8 and uint8 give int16) and among floats, with ints weaker
than floats (int64 and float32 give float32, as PyTorch's; a Python number takes the dtype of
the value it meets). Bools take part in comparisons, `where` and the bitwise and logical ops;
arithmetic refuses them (cast a mask first).

Int arithmetic wraps around, as NumPy's and PyTorch's do: the C of int32 and int64 sums,
differences and products is written in unsigned arithmetic (whose wrap-around C defines), then
cast back; narrower ints compute in C's int, where they cannot overflow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from graphc.codegen import kir
from graphc.ir.shapes import FLOAT_DTYPES, INT_DTYPES, ShapeMismatch

WRAP = {"int64": "uint64", "int32": "uint32"}  # the unsigned type computing each one's wrap


def number_dtype(dtypes: Sequence[str], op: str, ints: bool = True) -> str:
    """The dtype of an arithmetic result over operands of `dtypes` (ints only if `ints`)."""
    return _number_dtype(tuple(dtypes), op, ints)


@functools.lru_cache(maxsize=1024)  # every node of a model asks, with a few dtypes among them
def _number_dtype(dtypes: tuple[str, ...], op: str, ints: bool) -> str:
    for d in dtypes:
        if d == "bool":
            raise ShapeMismatch(
                f"{op} takes numbers, not bool; cast the mask first (gc.cast(mask, 'float64'))"
            )
        if d not in FLOAT_DTYPES and not (ints and d in INT_DTYPES):
            kind = "float or int" if ints else "float"
            raise ShapeMismatch(f"{op} needs {kind} operands, got {d}")
    floats = [d for d in dtypes if d in FLOAT_DTYPES]
    return np.result_type(*(floats or dtypes)).name


def compared_dtypes(dtypes: Sequence[str], op: str, bools: bool = False) -> None:
    """Check that values of `dtypes` can be compared: numbers, or bools with bools."""
    if bools and all(d == "bool" for d in dtypes):
        return
    number_dtype(dtypes, op)


def to(dtype: str, x: kir.Expr, was: str) -> kir.Expr:
    """`x` (of dtype `was`) as a value of `dtype`."""
    return x if was == dtype else kir.Cast(dtype, x)


def numeric(
    float_rule: Callable[..., kir.Expr], int_rule: Callable[..., kir.Expr] | None = None
) -> Callable[..., kir.Expr]:
    """A typed scalar rule: `float_rule(*operands)` for a float result (int operands cast to
    it first: C would divide ints as ints), `int_rule(dtype, *operands)` for an int one
    (operands cast to its dtype)."""

    def rule(*xs: kir.Expr, dtypes: tuple[str, ...], **params) -> kir.Expr:
        out, ins = dtypes[0], dtypes[1:]
        if out in FLOAT_DTYPES or int_rule is None:
            pairs = zip(xs, ins, strict=True)
            xs = tuple(x if d in FLOAT_DTYPES else to(out, x, d) for x, d in pairs)
            return float_rule(*xs, **params)
        xs = tuple(to(out, x, d) for x, d in zip(xs, ins, strict=True))
        return int_rule(out, *xs, **params)

    return rule


def wrapping(fn: Callable[..., kir.Expr]) -> Callable[..., kir.Expr]:
    """An int rule computing `fn` with wrap-around (see the module's doc)."""

    def rule(out: str, *xs: kir.Expr) -> kir.Expr:
        u = WRAP.get(out)
        if u is None:
            return kir.Cast(out, fn(*xs))
        return kir.Cast(out, fn(*(kir.Cast(u, x) for x in xs)))

    return rule


def via_int64(fn: str) -> Callable[..., kir.Expr]:
    """An int rule calling the runtime's int64 function `fn` (floor division, modulo, power),
    its result cast back (wrapping)."""
    return lambda out, *xs: kir.Cast(out, kir.call(fn, *(kir.Cast("int64", x) for x in xs)))


def wrap_int64(a: np.ndarray) -> np.ndarray:
    """Python ints (an object array) or int64 values reduced into int64, wrapping around."""
    return ((np.asarray(a, dtype=object) + 2**63) % 2**64 - 2**63).astype(np.int64)


def int_abs(out: str, x: kir.Expr) -> kir.Expr:
    """|x| of an int, wrapping (the least int8 is its own absolute value, as NumPy's)."""
    u = WRAP.get(out)
    if u is None:
        return kir.Cast(out, kir.select(x < 0, -x, x))
    return kir.Cast(out, kir.select(x < 0, -kir.Cast(u, x), kir.Cast(u, x)))


# ---- references ---------------------------------------------------------------------------------
def arith_ref(
    fn: Callable[..., np.ndarray],
    true_divide: bool = False,
    ints: Callable[..., np.ndarray] | None = None,
) -> Callable[..., np.ndarray]:
    """NumPy's `fn` with graphc's promotion: int operands cast to the float result first (as
    the scalar rules do), ints computed in their common dtype (by `ints`, if given)."""

    def ref(*xs: np.ndarray) -> np.ndarray:
        xs = tuple(np.asarray(x) for x in xs)
        if all(x.dtype.name in FLOAT_DTYPES for x in xs):
            return fn(*xs)
        out = number_dtype([x.dtype.name for x in xs], "arithmetic")
        if true_divide and out in INT_DTYPES:
            out = "float64"
        if out in FLOAT_DTYPES:
            return fn(*(x if x.dtype.name in FLOAT_DTYPES else x.astype(out) for x in xs))
        return (ints or fn)(*(x.astype(out) for x in xs))

    return ref


def int_pow_ref(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x ** y of ints, wrapping, with PyTorch's rule for y < 0 (NumPy refuses those): 1 ** y
    is 1, (-1) ** y is 1 or -1, any other x ** y is 0."""
    neg = y < 0
    out = np.power(x, np.where(neg, 0, y).astype(x.dtype))
    odd = (y % 2) != 0
    minus_one = np.where(odd, -1, 1).astype(x.dtype)
    below = np.where(x == 1, 1, np.where(x == -1, minus_one, 0)).astype(x.dtype)
    return np.where(neg, below, out).astype(x.dtype)


_INT_MIN = {"int64": -(2.0**63), "int32": -(2.0**31)}


def cast_ref(x: np.ndarray, dtype: str) -> np.ndarray:
    """`x` as `dtype`, as the scalar rule computes it: floats to ints truncate toward zero, and
    NaN and values outside int32 (int64 for int64) become its least value before narrower
    ints wrap (x86's rule, which NumPy follows there); anything to bool is `!= 0`."""
    if dtype == "bool":
        return x != 0
    if x.dtype.name in FLOAT_DTYPES and dtype in INT_DTYPES:
        wide = "int64" if dtype == "int64" else "int32"
        lo = _INT_MIN[wide]
        ok = (x >= lo) & (x < -lo)
        v = np.where(ok, np.trunc(np.where(ok, x, 0.0)), lo).astype(wide)
        return v.astype(dtype)
    return x.astype(dtype)


def cast_scalar(x: kir.Expr, dtype: str, dtypes: tuple[str, ...]) -> kir.Expr:
    """The scalar rule of cast (see cast_ref); C's conversion of a float out of an int's range
    is undefined, so those never reach it."""
    if dtype == "bool":
        return x.ne(0)
    if dtypes[1] in FLOAT_DTYPES and dtype in INT_DTYPES:
        wide = "int64" if dtype == "int64" else "int32"
        lo = _INT_MIN[wide]
        ok = kir.Bin("and", x >= lo, x < -lo)
        v = kir.select(ok, kir.Cast(wide, x), kir.Cast(wide, kir.Lit(lo)))
        return to(dtype, v, wide)
    return kir.Cast(dtype, x)
