"""Statistics over axes: `var` and `std` (with a correction: 1 gives the sample variance, as
PyTorch's default; 0 NumPy's), and `norm`, the p-norm of vectors, as torch.linalg.vector_norm.

Each is one op with its own derivative, so that the points a composition would leave as 0/0
take PyTorch's values: std's gradient is 0 where std is 0; the 2-norm's is 0 at 0, and p-norms
follow PyTorch's norm_backward. The divisor of var is max(n - correction, 0), so fewer elements
than the correction give inf (or NaN), as both libraries'. norm with ord 1, inf, -inf and 0 are
sum(|x|), max(|x|), min(|x|) and the count of nonzeros (which has no gradient).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphc.codegen.emit import Emit
from graphc.codegen.kir import Assign, Cast, Lit, Store, call, select, sqrt
from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import ShapeMismatch
from graphc.ops._axis import reduce_loops
from graphc.ops._build import apply, float_dtype
from graphc.ops.reduce import _check_axes, _kept_shape, _spread, axes_of, mean, size
from graphc.ops.registry import OpDef, register


def _reduced_shape(shape: tuple, axis: tuple, keepdims: bool) -> tuple:
    if keepdims:
        return _kept_shape(shape, axis)
    return tuple(d for i, d in enumerate(shape) if i not in axis)


def _number(op: str, params, name: str) -> float:
    v = params[name]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ShapeMismatch(f"{op}: {name} must be a finite number, got {v!r}")
    return v


# ---- var, std ------------------------------------------------------------------------------------
def _infer_var(shapes, dtypes, params):
    axis = _check_axes(shapes[0], params)
    _number("var", params, "correction")
    return _reduced_shape(shapes[0], axis, params["keepdims"]), float_dtype(dtypes, "var")


def _var_ref(x: np.ndarray, axis: tuple, correction: float, keepdims: bool, std: bool = False):
    n = math.prod(x.shape[a] for a in axis)
    with np.errstate(all="ignore"):
        d = x - np.mean(x, axis, keepdims=True)
        v = np.sum(d * d, axis, keepdims=keepdims) / max(n - correction, 0)
        return np.asarray(np.sqrt(v) if std else v, dtype=x.dtype)


def _lower_var(e: Emit, n: int, args: list[int], params: dict) -> None:
    """Per output: the mean, then the sum of squared deviations from it, over the max of
    (elements - correction) and 0 (std: its square root)."""
    (x,) = args
    kb, shape, axes = e.builder(), e.values.shape(x), params["axis"]
    std = e.values.G.nodes[n]["op"] == "std"
    dtype = e.values.dtype(n)
    out = kb.ref(n, write=True)
    count = Cast(dtype, kb.extent([shape[a] for a in axes]))
    s, m, t, d = (kb.var(dtype) for _ in range(4))
    div = count - params["correction"]
    div = select(div > 0, div, Lit(0.0))

    def body(at_out, inner):
        first = inner(lambda at: [Assign(s, s + kb.read(x, at))])
        second = inner(lambda at: [Assign(d, kb.read(x, at) - m), Assign(t, t + d * d)])
        v = t / div
        return [Assign(s, Lit(0)), *first, Assign(m, s / count), Assign(t, Lit(0)), *second,
                Assign(Store(out, at_out), sqrt(v) if std else v)]  # fmt: skip

    what = "std" if std else "var"
    e.kernel(kb, f"b0 = {what}(b1, axis={axes}, correction={params['correction']})",
             reduce_loops(kb, shape, axes, body))  # fmt: skip


def _var_vjp(ct, out, x, axis, correction, keepdims):
    # d var = 2 (x - mean) / max(n - correction, 0) dx
    from graphc.ops.elementwise import maximum

    count = maximum(size(x, axis) - float(correction), 0.0)
    return _spread(ct, x, axis, keepdims) * (2.0 * (x - mean(x, axis, keepdims=True)) / count)


def _std_vjp(ct, out, x, axis, correction, keepdims):
    # d std = d var / (2 std), 0 where std is 0 (PyTorch's std_backward)
    from graphc.ops.elementwise import equal, where

    return _var_vjp(where(equal(out, 0.0), 0.0, ct / (2.0 * out)), out, x, axis, correction,
                    keepdims)  # fmt: skip


_VAR = {"axis": (), "correction": 1.0, "keepdims": False}
register(
    OpDef(
        "var",
        1,
        _infer_var,
        _var_ref,
        (_var_vjp,),
        params=_VAR,
        lower=_lower_var,
        formula="d var(x) = 2 (x - mean) / (n - correction) dx",
    )
)
register(
    OpDef(
        "std",
        1,
        _infer_var,
        lambda x, **p: _var_ref(x, std=True, **p),
        (_std_vjp,),
        params=_VAR,
        lower=_lower_var,
        formula="d std(x) = d var / (2 std), 0 where std is 0",
    )
)


# ---- norm: the p-norm, p finite and not 0 --------------------------------------------------------
def _infer_norm(shapes, dtypes, params):
    axis = _check_axes(shapes[0], params)
    p = _number("norm", params, "p")
    if p == 0:
        raise ShapeMismatch("norm: p must not be 0 (the count of nonzeros: gc.norm(x, 0))")
    return _reduced_shape(shapes[0], axis, params["keepdims"]), float_dtype(dtypes, "norm")


def _norm_ref(x: np.ndarray, p: float, axis: tuple, keepdims: bool) -> np.ndarray:
    with np.errstate(all="ignore"):
        if p == 2:
            s = np.sqrt(np.sum(x * x, axis, keepdims=keepdims))
        else:
            s = np.sum(np.abs(x) ** p, axis, keepdims=keepdims) ** (1.0 / p)
        return np.asarray(s, dtype=x.dtype)


def _lower_norm(e: Emit, n: int, args: list[int], params: dict) -> None:
    (x,) = args
    kb, shape, axes, p = e.builder(), e.values.shape(x), params["axis"], params["p"]
    out = kb.ref(n, write=True)
    s = kb.var(e.values.dtype(n))

    def term(v):
        return v * v if p == 2 else call("pow", call("fabs", v), float(p))

    def body(at_out, inner):
        total = [Assign(s, Lit(0)), *inner(lambda at: [Assign(s, s + term(kb.read(x, at)))])]
        root = sqrt(s) if p == 2 else call("pow", s, 1.0 / p)
        return [*total, Assign(Store(out, at_out), root)]

    e.kernel(kb, f"b0 = norm(b1, p={p}, axis={axes})", reduce_loops(kb, shape, axes, body))


def _norm_vjp(ct, out, x, p, axis, keepdims):
    # PyTorch's norm_backward, with the norm and dy spread back over the reduced axes
    from graphc.ops.elementwise import absolute, equal, sign, where

    g, nrm = _spread(ct, x, axis, keepdims), _spread(out, x, axis, keepdims)
    if p == 2:
        return x * where(equal(nrm, 0.0), 0.0, g / nrm)
    if p < 1:
        scaled = where(equal(x, 0.0), 0.0, sign(x) * absolute(x) ** (p - 1.0))
        return scaled * g * nrm ** (1.0 - p)
    scale = where(equal(nrm, 0.0), 0.0, g / nrm ** (p - 1.0))
    if p < 2:
        return sign(x) * absolute(x) ** (p - 1.0) * scale
    return x * absolute(x) ** (p - 2.0) * scale


register(
    OpDef(
        "norm",
        1,
        _infer_norm,
        _norm_ref,
        (_norm_vjp,),
        params={"p": 2.0, "axis": (), "keepdims": False},
        lower=_lower_norm,
        formula="d ||x||_p = sign(x) |x|^(p-1) / ||x||^(p-1) dx, 0 where the norm is 0",
    )
)


# ---- builders ----------------------------------------------------------------------------------
def _stat(op: str, x: Value, axis: Any, correction: Any, keepdims: bool) -> Value:
    if isinstance(correction, bool) or not isinstance(correction, int | float | np.number):
        raise ShapeError(f"{op} at {user_loc()}: correction must be a number, got {correction!r}")
    axes = axes_of(op, x, axis)
    return apply(op, x, axis=axes, correction=float(correction), keepdims=bool(keepdims))


def var(x: Value, axis: Any = None, correction: float = 1, keepdims: bool = False) -> Value:
    """Variance over `axis`: sum((x - mean)^2) / (n - correction), as torch.var (correction 1,
    the default) and np.var (ddof = correction)."""
    return _stat("var", x, axis, correction, keepdims)


def std(x: Value, axis: Any = None, correction: float = 1, keepdims: bool = False) -> Value:
    """The square root of var; its gradient is 0 where it is 0, as PyTorch's."""
    return _stat("std", x, axis, correction, keepdims)


def norm(x: Value, ord: float = 2, axis: Any = None, keepdims: bool = False) -> Value:  # noqa: A002
    """The vector `ord`-norm over `axis` (None: all elements), as torch.linalg.vector_norm:
    (sum |x|^ord)^(1/ord); ord inf and -inf are max and min of |x|, 0 the count of nonzero
    elements."""
    from graphc.ops.elementwise import absolute, cast, not_equal
    from graphc.ops.reduce import max as reduce_max
    from graphc.ops.reduce import sum as reduce_sum
    from graphc.ops.reductions import min as reduce_min

    if isinstance(ord, bool) or not isinstance(ord, int | float | np.number) or math.isnan(ord):
        raise ShapeError(f"norm at {user_loc()}: ord must be a number, got {ord!r}")
    ord = float(ord)
    if ord == math.inf:
        return reduce_max(absolute(x), axis, keepdims)
    if ord == -math.inf:
        return reduce_min(absolute(x), axis, keepdims)
    if ord == 0:
        return reduce_sum(cast(not_equal(x, 0.0), x.dtype), axis, keepdims)
    if ord == 1:
        return reduce_sum(absolute(x), axis, keepdims)
    return apply("norm", x, p=ord, axis=axes_of("norm", x, axis), keepdims=bool(keepdims))
