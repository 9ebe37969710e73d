"""Activation functions, each one elementwise OpDef with PyTorch's formula and PyTorch's
derivative at its kinks (the README's table): softplus, silu, mish, elu (and selu and celu,
which are elu with other constants), leaky_relu, hardtanh (and relu6), hardsigmoid,
hardswish, logsigmoid, softsign.

Parameters (slopes, bounds, thresholds) are op parameters, written into the scalar rule as
literals; the derivative at a kink is the one PyTorch's backward takes there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.codegen import kir
from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import ShapeMismatch
from graphc.ops._build import float_dtype
from graphc.ops.elementwise import (
    absolute,
    exp,
    greater,
    greater_equal,
    less,
    less_equal,
    sigmoid,
    tanh,
    where,
)
from graphc.ops.math import elementwise, log1p


def _np(fn):
    """A reference computed without warnings, in the operand's dtype."""

    def ref(x: np.ndarray, **params: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(fn(x, **params), dtype=x.dtype)

    return ref


def _floats(*names: str):
    """A shape rule checking that the parameters `names` are finite floats."""

    def infer(shapes, dtypes, params):
        for name in names:
            v = params[name]
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ShapeMismatch(f"{name} must be a number, got {v!r}")
        return shapes[0], float_dtype(dtypes, "an activation")

    return infer


def _num(v: Any) -> Any:
    """An int parameter as a float (the op's shape rule refuses what is not a number)."""
    number = isinstance(v, int | np.integer | np.floating) and not isinstance(v, bool)
    return float(v) if number else v


def _expit(x: np.ndarray) -> np.ndarray:
    import scipy.special

    return scipy.special.expit(x)


# ---- softplus ---------------------------------------------------------------------------------
# log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's)
_softplus = elementwise(
    "softplus",
    _np(lambda x, beta, threshold: np.where(x * beta > threshold, x,
                                            np.log1p(np.exp(x * beta)) / beta)),
    (lambda ct, out, x, beta, threshold: where(greater(x * beta, threshold), ct,
                                               ct * sigmoid(x * beta)),),
    lambda x, beta, threshold: kir.select(
        x * beta > threshold, x, kir.call("log1p", kir.exp(x * beta)) / beta
    ),
    "d softplus(x) = sigmoid(beta x) dx (dx where beta x > threshold)",
    params={"beta": 1.0, "threshold": 20.0},
    infer=_floats("beta", "threshold"),
)  # fmt: skip


def softplus(x: Value, beta: float = 1.0, threshold: float = 20.0) -> Value:
    """log(1 + exp(beta x)) / beta, or x where beta x > threshold, as PyTorch's."""
    return _softplus(x, beta=_num(beta), threshold=_num(threshold))


# ---- silu, mish ---------------------------------------------------------------------------------
def _silu_vjp(ct, out, x):
    s = sigmoid(x)  # d x s(x) = s (1 + x (1 - s))
    return ct * (s * (1.0 + x * (1.0 - s)))


silu = elementwise(
    "silu", _np(lambda x: x * _expit(x)), (_silu_vjp,), lambda x: x / (1.0 + kir.exp(-x)),
    "d silu(x) = s(x) (1 + x (1 - s(x))) dx, s = sigmoid",
)  # fmt: skip


def _mish_vjp(ct, out, x):
    t = tanh(log1p(exp(x)))  # d x t(x) = t + x s (1 - t^2), t = tanh(softplus(x))
    return ct * (t + x * sigmoid(x) * (1.0 - t * t))


mish = elementwise(
    "mish", _np(lambda x: x * np.tanh(np.log1p(np.exp(x)))), (_mish_vjp,),
    lambda x: x * kir.tanh(kir.call("log1p", kir.exp(x))),
    "d mish(x) = t + x sigmoid(x) (1 - t^2) dx, t = tanh(softplus(x))",
)  # fmt: skip


# ---- elu, selu, celu ----------------------------------------------------------------------------
# scale x where x > 0, else scale alpha (exp(input_scale x) - 1); at 0 the left derivative
_elu = elementwise(
    "elu",
    _np(lambda x, alpha, scale, input_scale: np.where(
        x > 0, x * scale, np.expm1(x * input_scale) * (alpha * scale))),
    (lambda ct, out, x, alpha, scale, input_scale: where(  # NaN: scale dy, as PyTorch's
        less_equal(x, 0.0), ct * (input_scale * alpha * scale) * exp(x * input_scale),
        ct * scale),),
    lambda x, alpha, scale, input_scale: kir.select(
        x > 0, x * scale, kir.call("expm1", x * input_scale) * (alpha * scale)),
    "d elu(x) = scale alpha input_scale exp(input_scale x) dx where x <= 0, else scale dx",
    params={"alpha": 1.0, "scale": 1.0, "input_scale": 1.0},
    infer=_floats("alpha", "scale", "input_scale"),
)  # fmt: skip
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def elu(x: Value, alpha: float = 1.0) -> Value:
    """x where x > 0, else alpha (exp(x) - 1), as PyTorch's; its derivative at 0 is alpha."""
    return _elu(x, alpha=_num(alpha), scale=1.0, input_scale=1.0)


def selu(x: Value) -> Value:
    """scale * elu(x, alpha) with PyTorch's (self-normalising) constants."""
    return _elu(x, alpha=SELU_ALPHA, scale=SELU_SCALE, input_scale=1.0)


def celu(x: Value, alpha: float = 1.0) -> Value:
    """max(0, x) + min(0, alpha (exp(x / alpha) - 1)), as PyTorch's."""
    alpha = _num(alpha)
    if not isinstance(alpha, float) or alpha == 0.0:
        raise ShapeError(f"celu at {user_loc()}: alpha must be a number other than 0, "
                         f"got {alpha!r}")  # fmt: skip
    return _elu(x, alpha=alpha, scale=1.0, input_scale=1.0 / alpha)


# ---- leaky_relu, hardtanh, relu6, hardsigmoid, hardswish ----------------------------------------
_leaky_relu = elementwise(
    "leaky_relu",
    _np(lambda x, negative_slope: np.where(x > 0, x, x * negative_slope)),
    (lambda ct, out, x, negative_slope: where(greater(x, 0.0), ct, ct * negative_slope),),
    lambda x, negative_slope: kir.select(x > 0, x, x * negative_slope),
    "d leaky_relu(x) = dx where x > 0, else negative_slope dx (at 0 too)",
    params={"negative_slope": 0.01},
    infer=_floats("negative_slope"),
)  # fmt: skip


def leaky_relu(x: Value, negative_slope: float = 0.01) -> Value:
    """x where x > 0, else negative_slope x, as PyTorch's."""
    return _leaky_relu(x, negative_slope=_num(negative_slope))


def _clamp_np(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """`_clamp_scalar` in NumPy: a bound replaces x only where x is beyond it (so -0 stays
    -0 at a bound of 0, as PyTorch's; np.maximum would give 0)."""
    up = np.where((x >= lo) | np.isnan(x), x, lo)
    return np.where((up <= hi) | np.isnan(up), up, hi)


def _clamp_scalar(x: kir.Expr, lo: float, hi: float) -> kir.Expr:
    """min(max(x, lo), hi) with NaN passing, as PyTorch's hardtanh."""
    up = kir.select(kir.Bin("or", x >= lo, x.ne(x)), x, lo)
    return kir.select(kir.Bin("or", up <= hi, up.ne(up)), up, hi)


# clamped to [min_val, max_val]; no gradient at the bounds (PyTorch's hardtanh_backward)
_hardtanh = elementwise(
    "hardtanh",
    _np(lambda x, min_val, max_val: _clamp_np(x, min_val, max_val)),
    (lambda ct, out, x, min_val, max_val: where(
        less_equal(x, min_val), 0.0, where(greater_equal(x, max_val), 0.0, ct)),),
    lambda x, min_val, max_val: _clamp_scalar(x, min_val, max_val),
    "d hardtanh(x) = dx where min_val < x < max_val, else 0 (at the bounds too)",
    params={"min_val": -1.0, "max_val": 1.0},
    infer=_floats("min_val", "max_val"),
)  # fmt: skip


def hardtanh(x: Value, min_val: float = -1.0, max_val: float = 1.0) -> Value:
    """x clamped to [min_val, max_val], as PyTorch's; no gradient at the bounds."""
    return _hardtanh(x, min_val=_num(min_val), max_val=_num(max_val))


def relu6(x: Value) -> Value:
    """min(max(x, 0), 6): hardtanh(x, 0, 6), as PyTorch's."""
    return hardtanh(x, 0.0, 6.0)


hardsigmoid = elementwise(
    "hardsigmoid",
    _np(lambda x: np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0),
    (lambda ct, out, x: where(greater(x, -3.0), where(less(x, 3.0), ct / 6.0, 0.0), 0.0),),
    lambda x: _clamp_scalar(x + 3.0, 0.0, 6.0) / 6.0,
    "d hardsigmoid(x) = dx / 6 where -3 < x < 3, else 0",
)  # fmt: skip
hardswish = elementwise(
    "hardswish",
    _np(lambda x: x * np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0),
    (lambda ct, out, x: where(less_equal(x, -3.0), 0.0,
                              where(less(x, 3.0), ct * (x / 3.0 + 0.5), ct)),),
    lambda x: x * _clamp_scalar(x + 3.0, 0.0, 6.0) / 6.0,
    "d hardswish(x) = (x / 3 + 1/2) dx where -3 < x < 3, dx from 3 on, 0 to -3",
)  # fmt: skip


# ---- logsigmoid, softsign -----------------------------------------------------------------------
def _logsigmoid_vjp(ct, out, x):
    z = exp(-absolute(x))  # d log s(x) = 1 - s(x): 1/(1+z) below 0, z/(1+z) above
    q = z / (1.0 + z)
    return where(less(x, 0.0), ct * (1.0 - q), ct * q)


logsigmoid = elementwise(
    "logsigmoid",
    _np(lambda x: np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))),
    (_logsigmoid_vjp,),
    lambda x: kir.select(kir.Bin("or", x <= 0, x.ne(x)), x, kir.Lit(0.0))
    - kir.call("log1p", kir.exp(-kir.call("fabs", x))),
    "d log(sigmoid(x)) = (1 - sigmoid(x)) dx",
)  # fmt: skip


def _softsign_vjp(ct, out, x):
    # times (x - x) + 1: 1 where x is finite (the same bits), NaN at +-inf, where the value
    # inf / inf is NaN too: PyTorch's derivative of its composite x / (1 + |x|)
    return ct / ((1.0 + absolute(x)) * (1.0 + absolute(x))) * ((x - x) + 1.0)


softsign = elementwise(
    "softsign",
    _np(lambda x: x / (1.0 + np.abs(x))),
    (_softsign_vjp,),
    lambda x: x / (1.0 + kir.call("fabs", x)),
    "d (x / (1 + |x|)) = dx / (1 + |x|)^2 (NaN at +-inf, as the value is)",
)  # fmt: skip
