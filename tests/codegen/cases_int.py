"""Compiled-versus-interpreter models for int and bool computation (merged into cases.MODELS):
every int op on inputs of each int dtype, fed as ints, over ordinary values and over the
extremes of each type (wrap-around, division by 0 and by -1, shifts by negative amounts and by
the width or more), and casts of NaN, infinities and out-of-range floats; all also against
NumPy, or against Python's arithmetic where NumPy has no such op.

The float inputs carry a gradient (mixed int-float arithmetic): the ints get none.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import graphc as gc
from tests.codegen.cases import In, Model, fixed
from tests.codegen.cases_indexing import IntModel, ints
from tests.ops.cases_int import _np_cast, _py_pow, _shift

I64 = np.iinfo(np.int64)
SPECIAL_I64 = [0, 1, -1, I64.max, I64.min, 7, -7, 2**32, -(2**40), 100, 3, -3]
SPECIAL_D64 = [1, -1, 0, -1, -1, 0, 2, 3, -3, -7, I64.min, 2]  # divisors, 0 and -1 included
SPECIAL_I8 = [0, 1, -1, 127, -128, 7, -7, 64, -64, 100, 3, -3]
SHIFT = [0, 1, 7, 8, 9, 63, 64, 65, -1, -64, 3, 100]
FLOATS = [0.5, -2.5, np.nan, np.inf, -np.inf, 1e20, -1e20, 3.7e9, -3.7e9, 300.7, -129.9, -0.0]


def _exact(dtype: str, values: list) -> In:
    """An int input holding exactly `values` (fixed() goes through float64, which rounds the
    extremes of int64)."""
    arr = np.array(values, dtype=dtype)
    return In((len(values),), lambda rng, shape, a=arr: a.reshape(shape).copy(), False, dtype)


def _elementwise(fn: Callable, dtype: str) -> Callable:
    def run(*xs: np.ndarray) -> np.ndarray:
        bs = np.broadcast_arrays(*xs)
        out = [fn(*(int(b.flat[i]) for b in bs)) for i in range(bs[0].size)]
        wrapped = (np.array(out, dtype=object) + 2**63) % 2**64 - 2**63
        return wrapped.astype(np.int64).astype(dtype).reshape(bs[0].shape)

    return run


def _floor_div(a: int, b: int) -> int:
    return 0 if b == 0 else a // b


def _mod(a: int, b: int) -> int:
    return 0 if b == 0 else a % b


def add_ops(m: Model) -> None:
    a, b = In(("N", 3), ints(-50, 50), False, "int64"), In((3,), ints(1, 9), False, "int8")
    u, s = In(("N", 3), ints(0, 255), False, "uint8"), In(("N", 1), ints(-3, 4), False, "int32")
    x = In(("N", 3))  # a float param
    for label, op, fn, ins in [
        ("a+b", "add", gc.add, (a, b)), ("a-u", "sub", gc.sub, (a, u)),
        ("u*u", "mul", gc.mul, (u, u)), ("-b", "neg", gc.neg, (b,)),
        ("a/b", "div", gc.div, (a, b)), ("a//b", "floor_divide", gc.floor_divide, (a, b)),
        ("a%s", "remainder", gc.remainder, (a, s)), ("b**s", "pow", gc.pow, (b, s)),
        ("|s|", "abs", gc.abs, (s,)), ("sign(a)", "sign", gc.sign, (a,)),
        ("max(a,u)", "maximum", gc.maximum, (a, u)), ("min(b,s)", "minimum", gc.minimum, (b, s)),
        ("a&u", "bitwise_and", gc.bitwise_and, (a, u)),
        ("b|s", "bitwise_or", gc.bitwise_or, (b, s)),
        ("a^b", "bitwise_xor", gc.bitwise_xor, (a, b)), ("~u", "bitwise_not", gc.bitwise_not, (u,)),
        ("u<<s", "left_shift", gc.left_shift, (u, s)),
        ("a>>s", "right_shift", gc.right_shift, (a, s)),
        ("a<x", "less", gc.less, (a, x)), ("b==s", "equal", gc.equal, (b, s)),
        ("and(a,x)", "logical_and", gc.logical_and, (a, x)),
        ("or(u,b)", "logical_or", gc.logical_or, (u, b)),
        ("xor(s,a)", "logical_xor", gc.logical_xor, (s, a)),
        ("not(s)", "logical_not", gc.logical_not, (s,)),
        ("where(x>0,a,b)", "where", lambda x, a, b: gc.where(x > 0, a, b), (x, a, b)),
        ("x*a+b", "mul", lambda x, a, b: x * a + b, (x, a, b)),
        ("x/s", "div", gc.div, (x, s)),
        ("cast(x*100,int8)", "cast", lambda x: gc.cast(x * 100.0, "int8"), (x,)),
        ("cast(a,float)*x", "cast", lambda a, x: gc.cast(a, "float64") * x, (a, x)),
    ]:  # fmt: skip
        m.case(label, op, fn, *ins)


def add_extremes(m: Model) -> None:
    """Wrap-around, division by 0 and -1, shifts by every kind of amount, casts of special
    floats: each against NumPy or Python."""
    a, d = _exact("int64", SPECIAL_I64), _exact("int64", SPECIAL_D64)
    b8 = _exact("int8", SPECIAL_I8)
    sh = _exact("int64", SHIFT)
    f = In((len(FLOATS),), fixed(FLOATS), False)
    table = [
        ("a+a", "add", gc.add, (a, a), np.add),
        ("a*a", "mul", gc.mul, (a, a), np.multiply),
        ("-a", "neg", gc.neg, (a,), np.negative),
        ("|a|", "abs", gc.abs, (a,), np.abs),
        ("b8*b8", "mul", gc.mul, (b8, b8), np.multiply),
        ("|b8|", "abs", gc.abs, (b8,), np.abs),
        ("a//d", "floor_divide", gc.floor_divide, (a, d), _elementwise(_floor_div, "int64")),
        ("a%d", "remainder", gc.remainder, (a, d), _elementwise(_mod, "int64")),
        ("a**sh", "pow", gc.pow, (a, sh), _elementwise(_py_pow, "int64")),
        ("b8**b8", "pow", gc.pow, (b8, b8), _elementwise(_py_pow, "int8")),
        ("a<<sh", "left_shift", gc.left_shift, (a, sh), lambda x, s: _shift(x, s, "int64", True)),
        ("a>>sh", "right_shift", gc.right_shift, (a, sh),
         lambda x, s: _shift(x, s, "int64", False)),
        ("b8<<sh8", "left_shift", lambda x, s: x << gc.cast(s, "int8"), (b8, sh),
         lambda x, s: _shift(x, s.astype(np.int8), "int8", True)),
        ("~b8", "bitwise_not", gc.bitwise_not, (b8,), np.invert),
        ("a==d", "equal", gc.equal, (a, d), np.equal),
    ]  # fmt: skip
    for dtype in ("int64", "int32", "int16", "int8", "uint8", "bool"):
        table.append((f"cast(f,{dtype})", "cast", lambda x, t=dtype: gc.cast(x, t), (f,),
                      lambda x, t=dtype: _np_cast(x, t)))  # fmt: skip
    table.append(("cast(a,int8)", "cast", lambda x: gc.cast(x, "int8"), (a,),
                  lambda x: x.astype(np.int8)))  # fmt: skip
    for label, op, fn, ins, ref in table:
        m.case(f"{label}[extremes]", op, fn, *ins, numpy=ref)


def int_model(name: str) -> Model:
    m = IntModel(name)
    add_ops(m)
    add_extremes(m)
    return m.finish()


MODELS: dict[str, tuple[Callable[[str], Model], tuple[str, ...]]] = {
    "int": (int_model, ("float64", "float32")),
}
