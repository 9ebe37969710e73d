"""Elementwise ops: NumPy broadcasting, a scalar rule each, derivatives via the builder.

A scalar rule builds a kernel-IR expression (graphc/codegen/kir.py) of its operands'; rules keep
NumPy's semantics, NaN propagation included (np.maximum propagates NaN; C's fmax would not).
Literals written as Python floats (`1.0`) are computed in double whatever the dtype, as NumPy's
float32 ufuncs compute in float only their operands' own arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.codegen import kir
from graphc.ir.graph import Value
from graphc.ir.shapes import DTYPES, INT_DTYPES, broadcast_shapes, dtype_name
from graphc.ops._build import apply, float_dtype
from graphc.ops._dtypes import (
    arith_ref,
    cast_ref,
    cast_scalar,
    compared_dtypes,
    int_abs,
    int_pow_ref,
    number_dtype,
    numeric,
    via_int64,
    wrapping,
)
from graphc.ops.registry import OpDef, VjpRule, register


def _infer_float(shapes, dtypes, params):
    return broadcast_shapes(*shapes), float_dtype(dtypes, "arithmetic")


def _infer_number(shapes, dtypes, params):
    """Floats and ints (ops/_dtypes.py): the sum of two int8 is an int8."""
    return broadcast_shapes(*shapes), number_dtype(dtypes, "arithmetic")


def _infer_divide(shapes, dtypes, params):
    """True division: ints give float64, as NumPy's."""
    dtype = number_dtype(dtypes, "division")
    return broadcast_shapes(*shapes), "float64" if dtype in INT_DTYPES else dtype


def _infer_compare(shapes, dtypes, params):
    compared_dtypes(dtypes, "comparison")
    return broadcast_shapes(*shapes), "bool"


def _infer_equal(shapes, dtypes, params):
    compared_dtypes(dtypes, "comparison", bools=True)
    return broadcast_shapes(*shapes), "bool"


def _elementwise(
    name: str,
    ref: Callable[..., Any],
    vjp: tuple[VjpRule, ...],
    scalar: Callable[..., kir.Expr],
    formula: str,
    infer=_infer_float,
    typed: bool = False,
) -> Callable[..., Value]:
    register(
        OpDef(name, len(vjp), infer, ref, vjp, elementwise=True, scalar=scalar, formula=formula,
              typed=typed)
    )  # fmt: skip

    def build(*args: Any) -> Value:
        return apply(name, *args)

    build.__name__ = name
    build.__doc__ = f"Elementwise {name}, with NumPy broadcasting. {formula}"
    return build


# On ints these wrap around (ops/_dtypes.py); ints have no gradient.
add = _elementwise(
    "add",
    arith_ref(np.add),
    (lambda ct, out, x, y: ct, lambda ct, out, x, y: ct),
    numeric(lambda x, y: x + y, wrapping(lambda x, y: x + y)),
    "d(x+y) = dx + dy",
    _infer_number,
    typed=True,
)
sub = _elementwise(
    "sub",
    arith_ref(np.subtract),
    (lambda ct, out, x, y: ct, lambda ct, out, x, y: -ct),
    numeric(lambda x, y: x - y, wrapping(lambda x, y: x - y)),
    "d(x-y) = dx - dy",
    _infer_number,
    typed=True,
)
mul = _elementwise(
    "mul",
    arith_ref(np.multiply),
    (lambda ct, out, x, y: ct * y, lambda ct, out, x, y: ct * x),
    numeric(lambda x, y: x * y, wrapping(lambda x, y: x * y)),
    "d(x*y) = y dx + x dy",
    _infer_number,
    typed=True,
)
# d(x/y)/dy = -x/y^2 = -out/y; ints are divided as floats
div = _elementwise(
    "div",
    arith_ref(np.divide, true_divide=True),
    (lambda ct, out, x, y: ct / y, lambda ct, out, x, y: -(ct * out) / y),
    numeric(lambda x, y: x / y),
    "d(x/y) = dx/y - (x/y) dy/y",
    _infer_divide,
    typed=True,
)
neg = _elementwise(
    "neg", arith_ref(np.negative), (lambda ct, out, x: -ct,),
    numeric(lambda x: -x, wrapping(lambda x: -x)), "d(-x) = -dx", _infer_number, typed=True,
)  # fmt: skip


# d(x^y) = y x^(y-1) dx + log(x) x^y dy, with PyTorch's conventions at x = 0: no dx where
# y = 0 (x^0 is 1 for every x), and no dy where x = 0 and y >= 0 (0^y is 0 or 1 near there;
# for y < 0 it is log(0) x^y = -inf).
def _pow_dx(ct, out, x, y):
    return where(equal(y, 0.0), 0.0, ct * (y * x ** (y - 1)))


def _pow_dy(ct, out, x, y):
    d = out * log(x)
    return ct * where(equal(x, 0.0), where(greater_equal(y, 0.0), 0.0, d), d)


# x ** 3 is (x * x) * x, as PyTorch's: with a constant exponent the C compiler keeps that side
# alone, a loop it vectorises (the C library's pow, called per element, was 100x slower).
def _pow_ref(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x.astype(np.result_type(x, y))
    return np.where(y == 3, x * x * x, np.power(x, y))


power = _elementwise(
    "pow",
    arith_ref(_pow_ref, ints=int_pow_ref),
    (_pow_dx, _pow_dy),
    numeric(
        lambda x, y: kir.select(y.eq(3.0), x * x * x, kir.call("pow", x, y)), via_int64("ipow")
    ),
    "d(x^y) = y x^(y-1) dx + log(x) x^y dy (no dx where y = 0, no dy where x = 0 <= y)",
    _infer_number,
    typed=True,
)
exp = _elementwise("exp", np.exp, (lambda ct, out, x: ct * out,), kir.exp, "d exp(x) = exp(x) dx")
log = _elementwise("log", np.log, (lambda ct, out, x: ct / x,), kir.log, "d log(x) = dx / x")
sqrt = _elementwise(
    "sqrt",
    np.sqrt,
    (lambda ct, out, x: ct * 0.5 / out,),
    kir.sqrt,
    "d sqrt(x) = dx / (2 sqrt(x))",
)
tanh = _elementwise(
    "tanh",
    np.tanh,
    (lambda ct, out, x: ct * (1 - out * out),),
    kir.tanh,
    "d tanh(x) = (1 - tanh(x)^2) dx",
)


_SQRT_HALF = 0.7071067811865476  # 1/sqrt(2)
_SQRT_2_OVER_PI = 0.7978845608028654  # sqrt(2/pi)
_TWO_OVER_SQRT_PI = 1.1283791670955126  # 2/sqrt(pi)
_INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2 pi)


def _erf(x: np.ndarray) -> np.ndarray:
    import scipy.special

    return scipy.special.erf(x)


# d erf(x) = 2/sqrt(pi) exp(-x^2) dx
erf = _elementwise(
    "erf",
    _erf,
    (lambda ct, out, x: ct * (_TWO_OVER_SQRT_PI * exp(-(x * x))),),
    lambda x: kir.call("erf", x),
    "d erf(x) = 2/sqrt(pi) exp(-x^2) dx",
)


def _erfc(x: np.ndarray) -> np.ndarray:
    import scipy.special

    return scipy.special.erfc(x)


# erfc(x) = 1 - erf(x), without the cancellation for large x (erfc(10) is 2e-45)
erfc = _elementwise(
    "erfc",
    _erfc,
    (lambda ct, out, x: ct * (-_TWO_OVER_SQRT_PI * exp(-(x * x))),),
    lambda x: kir.call("erfc", x),
    "d erfc(x) = -2/sqrt(pi) exp(-x^2) dx",
)


def _expit(x: np.ndarray) -> np.ndarray:
    """scipy.special.expit, imported when first used (importing scipy.special costs ~0.3 s)."""
    import scipy.special

    return scipy.special.expit(x)


sigmoid = _elementwise(
    "sigmoid",
    _expit,
    (lambda ct, out, x: ct * (out * (1 - out)),),
    lambda x: 1.0 / (1.0 + kir.exp(-x)),
    "d s(x) = s(x) (1 - s(x)) dx",
)
relu = _elementwise(
    "relu",
    lambda x: np.where(x < 0, 0, x).astype(x.dtype, copy=False),  # -0 and NaN stay
    (lambda ct, out, x: where(x <= 0, 0, ct),),  # NaN passes dy on, as PyTorch's
    lambda x: kir.select(x < 0, 0, x),
    "d relu(x) = [not x <= 0] dx",
)


def _sign_ref(x: np.ndarray) -> np.ndarray:
    """PyTorch's sign: NumPy's, but 0 at NaN (as (x > 0) - (x < 0) is)."""
    return np.sign(np.where(x != x, 0, x))


sign = _elementwise(
    "sign",
    _sign_ref,
    (None,),
    numeric(
        lambda x: kir.Cast("float64", (x > 0) - (x < 0)),  # 0 at NaN, as PyTorch's
        lambda out, x: kir.Cast(out, (x > 0) - (x < 0)),
    ),
    "sign is piecewise constant: no gradient",
    _infer_number,
    typed=True,
)
absolute = _elementwise(
    "abs",
    np.abs,
    (lambda ct, out, x: where(x > 0, ct, where(x < 0, -ct, 0)),),  # 0 at 0 and NaN
    numeric(lambda x: kir.call("fabs", x), int_abs),
    "d |x| = sign(x) dx (0 at NaN, as PyTorch's)",
    _infer_number,
    typed=True,
)
# Ties split the cotangent evenly between the operands, as a subgradient; where either is NaN
# both take all of it (they compare neither less nor equal), as PyTorch's.
maximum = _elementwise(
    "maximum",
    arith_ref(np.maximum),
    (
        lambda ct, out, x, y: where(equal(x, y), ct * 0.5, where(x < y, 0, ct)),
        lambda ct, out, x, y: where(equal(x, y), ct * 0.5, where(y < x, 0, ct)),
    ),
    numeric(
        lambda x, y: kir.select(kir.Bin("or", x >= y, x.ne(x)), x, y),
        lambda out, x, y: kir.select(x >= y, x, y),
    ),
    "d max(x,y) = [x>y] dx + [y>x] dy, ties halve, NaN: both",
    _infer_number,
    typed=True,
)
minimum = _elementwise(
    "minimum",
    arith_ref(np.minimum),
    (
        lambda ct, out, x, y: where(equal(x, y), ct * 0.5, where(x > y, 0, ct)),
        lambda ct, out, x, y: where(equal(x, y), ct * 0.5, where(y > x, 0, ct)),
    ),
    numeric(
        lambda x, y: kir.select(kir.Bin("or", x <= y, x.ne(x)), x, y),
        lambda out, x, y: kir.select(x <= y, x, y),
    ),
    "d min(x,y) = [x<y] dx + [y<x] dy, ties halve, NaN: both",
    _infer_number,
    typed=True,
)

# GELU as PyTorch has it: x Phi(x) with Phi the standard normal CDF ("none", through erfc,
# which keeps its precision in the left tail), or the tanh approximation ("tanh").
_GELU_C = 0.044715


def _gelu_ref(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * (x * x * x))))
    import scipy.special

    return 0.5 * x * scipy.special.erfc(-_SQRT_HALF * x)


def _gelu_vjp(ct, out, x, approximate):
    if approximate == "tanh":
        # u = c (x + a x^3), t = tanh(u): d = (1 + t)/2 + x (1 - t^2) c (1 + 3 a x^2) / 2
        x2 = x * x
        t = tanh(_SQRT_2_OVER_PI * (x + _GELU_C * (x2 * x)))
        slope = (1.0 - t * t) * (_SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * x2))
        return ct * (0.5 * (1.0 + t) + 0.5 * x * slope)
    # d x Phi(x) = Phi(x) + x phi(x), Phi(x) = erfc(-x/sqrt2)/2, phi(x) = exp(-x^2/2)/sqrt(2pi).
    # Phi through erfc as in the forward (_gelu_scalar): it keeps its precision in the left tail
    # (1 + erf(x/sqrt2) is 0 from x = -5.5 in float, -8.3 in double), and a loop computing
    # both the value and the gradient computes that erfc once.
    cdf = 0.5 * erfc(x * -_SQRT_HALF)
    return ct * (cdf + x * (_INV_SQRT_2PI * exp(-0.5 * (x * x))))


def _gelu_scalar(x: kir.Expr, approximate: str) -> kir.Expr:
    if approximate == "tanh":
        return 0.5 * x * (1.0 + kir.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * (x * x * x))))
    return 0.5 * x * kir.call("erfc", -kir.Lit(_SQRT_HALF) * x)


def _infer_gelu(shapes, dtypes, params):
    from graphc.ir.shapes import ShapeMismatch

    if params["approximate"] not in ("none", "tanh"):
        raise ShapeMismatch(f"approximate must be 'none' or 'tanh', got {params['approximate']!r}")
    return shapes[0], float_dtype(dtypes, "gelu")


register(
    OpDef(
        "gelu",
        1,
        _infer_gelu,
        _gelu_ref,
        (_gelu_vjp,),
        params={"approximate": "none"},
        elementwise=True,
        scalar=_gelu_scalar,
        formula="d gelu(x) = Phi(x) + x phi(x) (or the tanh form's derivative)",
    )
)


def gelu(x: Value, approximate: str = "none") -> Value:
    """GELU, x Phi(x), as PyTorch's: exact ("none") or its tanh approximation ("tanh")."""
    return apply("gelu", x, approximate=approximate)


_NO_GRAD = (None, None)
less = _elementwise("less", np.less, _NO_GRAD, lambda x, y: x < y, "no gradient", _infer_compare)
less_equal = _elementwise(
    "less_equal", np.less_equal, _NO_GRAD, lambda x, y: x <= y, "no gradient", _infer_compare
)
greater = _elementwise(
    "greater", np.greater, _NO_GRAD, lambda x, y: x > y, "no gradient", _infer_compare
)
greater_equal = _elementwise(
    "greater_equal", np.greater_equal, _NO_GRAD, lambda x, y: x >= y, "no gradient",
    _infer_compare,
)  # fmt: skip
equal = _elementwise("equal", np.equal, _NO_GRAD, lambda x, y: x.eq(y), "no gradient", _infer_equal)
not_equal = _elementwise(
    "not_equal", np.not_equal, _NO_GRAD, lambda x, y: x.ne(y), "no gradient", _infer_equal
)


def _infer_where(shapes, dtypes, params):
    from graphc.ir.shapes import ShapeMismatch

    if dtypes[0] != "bool":
        raise ShapeMismatch(f"where needs a bool condition (a comparison), got {dtypes[0]}")
    if dtypes[1] == dtypes[2] == "bool":
        return broadcast_shapes(*shapes), "bool"
    return broadcast_shapes(*shapes), number_dtype(dtypes[1:], "where")


where = _elementwise(
    "where",
    np.where,
    (None, lambda ct, out, c, x, y: where(c, ct, 0), lambda ct, out, c, x, y: where(c, 0, ct)),
    kir.select,
    "d where(c,x,y) = [c] dx + [not c] dy",
    _infer_where,
)


def _infer_cast(shapes, dtypes, params):
    from graphc.ir.shapes import ShapeMismatch

    if params["dtype"] not in DTYPES:
        raise ShapeMismatch(f"cast to unknown dtype {params['dtype']!r}")
    return shapes[0], params["dtype"]


register(
    OpDef(
        "cast",
        1,
        _infer_cast,
        cast_ref,
        (lambda ct, out, x, dtype: cast(ct, x.dtype),),
        params={"dtype": "float64"},
        elementwise=True,
        scalar=cast_scalar,
        typed=True,
        formula="d cast(x) = cast(dx) back to x's dtype (floats to ints: none)",
    )
)


def cast(x: Value, dtype: str) -> Value:
    """`x` converted to `dtype` (a bool mask to 0.0/1.0, float32 to float64, ...)."""
    dtype = dtype_name(dtype)
    return x if x.dtype == dtype else apply("cast", x, dtype=dtype)
