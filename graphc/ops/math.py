"""Elementwise functions beyond arithmetic: trigonometric and hyperbolic functions and their
inverses, exponentials and logarithms of other bases, rounding, copysign, fmod, remainder,
floor division, reciprocal, rsqrt, square and clip.

Each is one OpDef with NumPy broadcasting and a scalar rule over graphc's own branch-free
functions (templates/runtime/graphc_math.h), and a derivative following PyTorch's conventions
where a function has a kink, a pole or a tie (the README's table of them): rounding and floor
division have no gradient (grad refuses them, or gives zeros with allow_unused), copysign's
is 0 where x is 0, clip's passes at its bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.codegen import kir
from graphc.errors import GraphError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import FLOAT_DTYPES, broadcast_shapes
from graphc.ops._build import apply, float_dtype
from graphc.ops._dtypes import arith_ref, number_dtype, numeric, via_int64
from graphc.ops.elementwise import equal, greater, less, less_equal, where
from graphc.ops.registry import OpDef, VjpRule, register

LN2 = math.log(2.0)


def _infer_float(shapes, dtypes, params):
    return broadcast_shapes(*shapes), float_dtype(dtypes, "this function")


def elementwise(
    name: str,
    ref: Callable[..., Any],
    vjp: tuple[VjpRule, ...],
    scalar: Callable[..., kir.Expr],
    formula: str,
    params: dict | None = None,
    infer: Callable = _infer_float,
    typed: bool = False,
) -> Callable[..., Value]:
    """Register elementwise op `name` and return its builder (operands, then params)."""
    register(
        OpDef(name, len(vjp), infer, ref, vjp, params=params or {}, elementwise=True,
              scalar=scalar, formula=formula, typed=typed)
    )  # fmt: skip

    def build(*args: Any, **kw: Any) -> Value:
        return apply(name, *args, **kw)

    build.__name__ = name
    build.__doc__ = f"Elementwise {name}, with NumPy broadcasting. {formula}"
    return build


def _unary(name, ref, rule, scalar, formula):
    return elementwise(name, ref, (rule,), scalar, formula)


def _call(fn: str) -> Callable[..., kir.Expr]:
    return lambda *xs: kir.call(fn, *xs)


def _typed(ref: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """`ref` with its result in its operands' float dtype (NumPy would keep it)."""
    return lambda *xs: np.asarray(ref(*xs), dtype=np.result_type(*xs))


# ---- trigonometric ----------------------------------------------------------------------------
sin = _unary("sin", np.sin, lambda ct, out, x: ct * cos(x), _call("sin"), "d sin(x) = cos(x) dx")
cos = _unary("cos", np.cos, lambda ct, out, x: ct * -sin(x), _call("cos"), "d cos(x) = -sin(x) dx")
tan = _unary(
    "tan", np.tan, lambda ct, out, x: ct * (1.0 + out * out), _call("tan"),
    "d tan(x) = (1 + tan(x)^2) dx",
)  # fmt: skip
asin = _unary(
    "asin", np.arcsin, lambda ct, out, x: ct * rsqrt(1.0 - x * x), _call("asin"),
    "d asin(x) = dx / sqrt(1 - x^2)",
)  # fmt: skip
acos = _unary(
    "acos", np.arccos, lambda ct, out, x: -ct * rsqrt(1.0 - x * x), _call("acos"),
    "d acos(x) = -dx / sqrt(1 - x^2)",
)  # fmt: skip
atan = _unary(
    "atan", np.arctan, lambda ct, out, x: ct / (x * x + 1.0), _call("atan"),
    "d atan(x) = dx / (1 + x^2)",
)  # fmt: skip


# d atan2(y, x) = (x dy - y dx) / (x^2 + y^2); at (0, 0) none, as PyTorch's
def _atan2_vjp(which: int) -> VjpRule:
    def rule(ct, out, y, x):
        r2 = y * y + x * x
        origin = equal(r2, 0.0)  # (a where on both sides: no 0 * inf in a second derivative)
        recip = where(origin, 0.0, reciprocal(where(origin, 1.0, r2)))
        return ct * x * recip if which == 0 else ct * -y * recip

    return rule


atan2 = elementwise(
    "atan2", np.arctan2, (_atan2_vjp(0), _atan2_vjp(1)), _call("atan2"),
    "d atan2(y, x) = (x dy - y dx) / (x^2 + y^2)",
)  # fmt: skip

# ---- hyperbolic -------------------------------------------------------------------------------
sinh = _unary("sinh", np.sinh, lambda ct, out, x: ct * cosh(x), _call("sinh"),
              "d sinh(x) = cosh(x) dx")  # fmt: skip
cosh = _unary("cosh", np.cosh, lambda ct, out, x: ct * sinh(x), _call("cosh"),
              "d cosh(x) = sinh(x) dx")  # fmt: skip
asinh = _unary(
    "asinh", np.arcsinh, lambda ct, out, x: ct * rsqrt(x * x + 1.0), _call("asinh"),
    "d asinh(x) = dx / sqrt(x^2 + 1)",
)  # fmt: skip
acosh = _unary(
    "acosh", np.arccosh, lambda ct, out, x: ct * rsqrt(x * x - 1.0), _call("acosh"),
    "d acosh(x) = dx / sqrt(x^2 - 1)",
)  # fmt: skip
atanh = _unary(
    "atanh", np.arctanh, lambda ct, out, x: ct * reciprocal(1.0 - x * x), _call("atanh"),
    "d atanh(x) = dx / (1 - x^2)",
)  # fmt: skip

# ---- exponentials and logarithms ---------------------------------------------------------------
expm1 = _unary("expm1", np.expm1, lambda ct, out, x: ct * (out + 1.0), _call("expm1"),
               "d expm1(x) = exp(x) dx")  # fmt: skip
log1p = _unary("log1p", np.log1p, lambda ct, out, x: ct / (x + 1.0), _call("log1p"),
               "d log1p(x) = dx / (1 + x)")  # fmt: skip
log2 = _unary("log2", np.log2, lambda ct, out, x: ct / (x * LN2), _call("log2"),
              "d log2(x) = dx / (x ln 2)")  # fmt: skip
exp2 = _unary("exp2", np.exp2, lambda ct, out, x: ct * out * LN2, _call("exp2"),
              "d exp2(x) = 2^x ln 2 dx")  # fmt: skip
reciprocal = _unary(
    "reciprocal", _typed(lambda x: 1.0 / x), lambda ct, out, x: -ct * (out * out),
    lambda x: 1.0 / x, "d (1/x) = -dx / x^2",
)  # fmt: skip
rsqrt = _unary(
    "rsqrt", _typed(lambda x: 1.0 / np.sqrt(x)), lambda ct, out, x: -0.5 * ct * (out * out * out),
    lambda x: 1.0 / kir.sqrt(x), "d x^(-1/2) = -x^(-3/2) dx / 2",
)  # fmt: skip
square = _unary("square", np.square, lambda ct, out, x: ct * (2.0 * x), lambda x: x * x,
                "d x^2 = 2 x dx")  # fmt: skip

# ---- rounding: piecewise constant, no gradient -------------------------------------------------
floor = _unary("floor", np.floor, None, _call("floor"), "floor is piecewise constant: no gradient")
ceil = _unary("ceil", np.ceil, None, _call("ceil"), "ceil is piecewise constant: no gradient")
trunc = _unary("trunc", np.trunc, None, _call("trunc"), "trunc is piecewise constant: no gradient")
round = _unary(  # noqa: A001
    "round", np.rint, None, _call("rint"),
    "round (half to even) is piecewise constant: no gradient",
)  # fmt: skip


# ---- copysign, fmod, remainder, floor division --------------------------------------------------
# d copysign(x, y) = sign(x) sign(y) dx, 0 where x = 0 (PyTorch's); y: none
copysign = elementwise(
    "copysign", np.copysign,
    (lambda ct, out, x, y: where(equal(x, 0.0), 0.0, ct * (out / x)), None),
    _call("copysign"), "d copysign(x, y) = copysign(1, x y) dx (0 where x = 0); y: none",
)  # fmt: skip


def _remainder_ref(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """PyTorch's remainder: fmod, moved into the divisor's sign (a zero keeps fmod's sign)."""
    mod = np.fmod(x, y)
    return np.where((mod != 0) & ((y < 0) != (mod < 0)), mod + y, mod)


def _remainder_scalar(x: kir.Expr, y: kir.Expr) -> kir.Expr:
    mod = kir.call("fmod", x, y)
    moves = kir.Bin("and", mod.ne(0), (y < 0).ne(mod < 0))
    return kir.select(moves, mod + y, mod)


def _floor_divide_ref(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NumPy's (and PyTorch's) floor division of floats: (x - fmod(x, y)) / y, rounded."""
    mod = np.fmod(x, y)
    div = (x - mod) / y
    div = np.where((mod != 0) & ((y < 0) != (mod < 0)), div - 1, div)
    fl = np.floor(div)
    fl = np.where(div - fl > 0.5, fl + 1, fl)
    out = np.where(div != 0, fl, np.copysign(np.zeros_like(div), x / y))
    return np.where(y == 0, x / y, out).astype(np.result_type(x, y), copy=False)


def _floor_divide_scalar(x: kir.Expr, y: kir.Expr) -> kir.Expr:
    mod = kir.call("fmod", x, y)
    div = (x - mod) / y
    div = kir.select(kir.Bin("and", mod.ne(0), (y < 0).ne(mod < 0)), div - 1.0, div)
    fl = kir.call("floor", div)
    fl = kir.select(div - fl > 0.5, fl + 1.0, fl)
    out = kir.select(div.ne(0), fl, kir.call("copysign", 0.0, x / y))
    return kir.select(y.eq(0), x / y, out)


def _infer_number(shapes, dtypes, params):
    return broadcast_shapes(*shapes), number_dtype(dtypes, "this function")


fmod = elementwise(
    "fmod", np.fmod,
    (lambda ct, out, x, y: ct, lambda ct, out, x, y: -ct * trunc(x / y)),
    _call("fmod"), "d fmod(x, y) = dx - trunc(x / y) dy",
)  # fmt: skip
# on ints: Python's // and % (the divisor's sign), 0 when dividing by 0 (NumPy's)
remainder = elementwise(
    "remainder", arith_ref(_remainder_ref, ints=np.remainder),
    (lambda ct, out, x, y: ct, lambda ct, out, x, y: -ct * floor_divide(x, y)),
    numeric(_remainder_scalar, via_int64("imod")), "d remainder(x, y) = dx - floor(x / y) dy",
    infer=_infer_number, typed=True,
)  # fmt: skip
floor_divide = elementwise(
    "floor_divide", arith_ref(_floor_divide_ref, ints=np.floor_divide), (None, None),
    numeric(_floor_divide_scalar, via_int64("ifloordiv")),
    "floor division is piecewise constant: no gradient", infer=_infer_number, typed=True,
)  # fmt: skip


# ---- clip: one op, so that its gradient at the bounds is PyTorch's ------------------------------
def _clip_ref(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """min(max(x, lo), hi) as PyTorch's clamp: NaN in x stays, lo > hi gives hi."""
    dtype = np.result_type(x, lo, hi)
    return np.minimum(np.maximum(x, lo), hi).astype(dtype, copy=False)


def _clip_scalar(x: kir.Expr, lo: kir.Expr, hi: kir.Expr) -> kir.Expr:
    # np.maximum and np.minimum propagate NaN from either side
    up = kir.select(kir.Bin("or", x >= lo, x.ne(x)), x, lo)
    return kir.select(kir.Bin("or", up <= hi, up.ne(up)), up, hi)


# PyTorch's clamp_backward: x gets dy where lo <= x <= hi (at a bound too, never where x is
# NaN); lo where x < lo and lo < hi; hi where x > hi or hi < lo.
def _clip_x(ct, out, x, lo, hi):
    return where(less_equal(lo, x), where(less_equal(x, hi), ct, 0.0), 0.0)


_clip = elementwise(
    "clip", _clip_ref,
    (
        _clip_x,
        lambda ct, out, x, lo, hi: where(less(x, lo), where(less(lo, hi), ct, 0.0), 0.0),
        lambda ct, out, x, lo, hi: where(greater(x, hi), ct, where(less(hi, lo), ct, 0.0)),
    ),
    _clip_scalar,
    "d clip(x, lo, hi) = [lo <= x <= hi] dx + [x < lo < hi] dlo + [x > hi or hi < lo] dhi",
)  # fmt: skip


def clip(x: Value, lo: Any = None, hi: Any = None) -> Value:
    """`x` limited to [lo, hi] elementwise (bounds broadcast; None: unbounded), as one op:
    its gradient reaches x at the bounds too, and lo and hi where they bind (PyTorch's
    clamp). NaN in x stays NaN; where lo > hi the result is hi."""
    if lo is None and hi is None:
        raise GraphError(f"clip at {user_loc()}: give at least one of lo and hi")
    like = next((v for v in (x, lo, hi) if isinstance(v, Value)), None)
    if like is None:
        raise GraphError(f"clip at {user_loc()}: needs a graphc Value to clip")
    dtype = like.dtype if like.dtype in FLOAT_DTYPES else "float64"
    lo = like.graph.const(-np.inf, dtype) if lo is None else lo
    hi = like.graph.const(np.inf, dtype) if hi is None else hi
    return _clip(x, lo, hi)


def clamp(x: Value, min: Any = None, max: Any = None) -> Value:  # noqa: A002
    """`x` limited to [min, max], as PyTorch's clamp (None: no bound); see `clip`."""
    return clip(x, min, max)
