"""Reductions over axes: sum, mean, max; and `size`, the element count the mean divides by."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphc.codegen.emit import Emit, flat_index, flat_loop, loop_nest
from graphc.codegen.kir import Assign, Bin, Cast, Lit, Load, Store, select
from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import ShapeMismatch, normalize_axes
from graphc.ops._build import apply, float_dtype
from graphc.ops.elementwise import equal, where
from graphc.ops.registry import OpDef, register
from graphc.ops.shape import broadcast_to, reshape


def _check_axes(shape, params) -> tuple[int, ...]:
    axis = params["axis"]
    if not isinstance(axis, tuple) or normalize_axes(axis, len(shape)) != axis:
        raise ShapeMismatch(
            f"axis {axis!r} must be a sorted tuple of axes of a {len(shape)}-d value"
        )
    return axis


def _kept_shape(shape, axis) -> tuple:
    """`shape` with the reduced axes set to 1 (keepdims)."""
    return tuple(1 if i in axis else d for i, d in enumerate(shape))


def _infer_reduce(shapes, dtypes, params):
    axis = _check_axes(shapes[0], params)
    dtype = float_dtype(dtypes, "reduction")
    if params["keepdims"]:
        return _kept_shape(shapes[0], axis), dtype
    return tuple(d for i, d in enumerate(shapes[0]) if i not in axis), dtype


def _infer_max(shapes, dtypes, params):
    if any(shapes[0][a] == 0 for a in _check_axes(shapes[0], params)):
        raise ShapeMismatch("max over an axis of size 0 has no value")
    return _infer_reduce(shapes, dtypes, params)


def _spread(ct: Value, x: Value, axis, keepdims) -> Value:
    """The cotangent of a reduction broadcast back over the reduced axes of `x`."""
    if not keepdims:
        ct = reshape(ct, _kept_shape(x.shape, axis))
    return broadcast_to(ct, x.shape)


def _max_vjp(ct, out, x, axis, keepdims):
    # Ties share the cotangent evenly: d max = sum over argmax positions / their count.
    one, zero = x.graph.const(1.0, x.dtype), x.graph.const(0.0, x.dtype)
    hit = where(equal(x, _spread(out, x, axis, keepdims)), one, zero)
    return _spread(ct, x, axis, keepdims) * hit / sum(hit, axis, keepdims=True)


def _lower_max(e: Emit, n: int, args: list[int], params: dict) -> None:
    """max over axes; NaN wins and stays, as in np.max (sum and mean are loops: loops.fused)."""
    (x,) = args
    kb, axes, shape = e.builder(), params["axis"], e.values.shape
    out = kb.ref(n, write=True)
    init = flat_loop(kb, shape(n), lambda i: [Assign(Store(out, i), Lit(float("-inf")))])
    kept = tuple(1 if k in axes else d for k, d in enumerate(shape(x)))  # keepdims layout

    def body(idx: list) -> list:
        at = flat_index(kb, kept, [None if k in axes else j for k, j in enumerate(idx)])
        r, o = kb.read(x, flat_index(kb, shape(x), idx)), Load(out, at)
        return [Assign(Store(out, at), select(Bin("or", r > o, r.ne(r)), r, o))]

    e.kernel(kb, f"b0 = max(b1, axis={axes}), NaN winning", [*init, *loop_nest(kb, shape(x), body)])


def _lower_size(e: Emit, n: int, args: list[int], params: dict) -> None:
    kb = e.builder()
    count = kb.extent([e.values.shape(args[0])[k] for k in params["axis"]])
    out = kb.ref(n, write=True)
    e.kernel(
        kb, "b0 = an element count", [Assign(Store(out, Lit(0)), Cast(e.values.dtype(n), count))]
    )


_AXIS = {"axis": (), "keepdims": False}
register(
    OpDef(
        "sum",
        1,
        _infer_reduce,
        lambda x, axis, keepdims: np.sum(x, axis, keepdims=keepdims),
        (lambda ct, out, x, axis, keepdims: _spread(ct, x, axis, keepdims),),
        params=_AXIS,
        formula="d sum(x) = dx summed",
    )
)
register(
    OpDef(
        "mean",
        1,
        _infer_reduce,
        lambda x, axis, keepdims: np.mean(x, axis, keepdims=keepdims),
        (lambda ct, out, x, axis, keepdims: _spread(ct, x, axis, keepdims) / size(x, axis),),
        params=_AXIS,
        formula="d mean(x) = mean of dx",
    )
)
register(
    OpDef(
        "max",
        1,
        _infer_max,
        lambda x, axis, keepdims: np.max(x, axis, keepdims=keepdims),
        (_max_vjp,),
        params=_AXIS,
        lower=_lower_max,
        formula="d max(x) = dx at the maximum (ties share evenly)",
    )
)


def _infer_size(shapes, dtypes, params):
    _check_axes(shapes[0], params)
    return (), float_dtype(dtypes, "size")


register(
    OpDef(
        "size",
        1,
        _infer_size,
        lambda x, axis: np.asarray(math.prod(x.shape[a] for a in axis), dtype=x.dtype),
        (None,),
        params={"axis": ()},
        lower=_lower_size,
        formula="the element count of x over `axis`: depends on shape only",
    )
)


def axes_of(op: str, x: Value, axis: Any) -> tuple[int, ...]:
    """`axis` normalised for `x`, or a ShapeError naming the op and the value."""
    try:
        return normalize_axes(axis, x.ndim)
    except ShapeMismatch as e:
        raise ShapeError(f"{op} of v{x.id} with {x.ndim} dimensions at {user_loc()}: {e}") from None


def _reduce(op: str, x: Value, axis: Any, keepdims: bool) -> Value:
    return apply(op, x, axis=axes_of(op, x, axis), keepdims=bool(keepdims))


def sum(x: Value, axis: Any = None, keepdims: bool = False) -> Value:  # noqa: A001
    """Sum over `axis` (None: all axes; an int or a tuple), as `np.sum`."""
    return _reduce("sum", x, axis, keepdims)


def mean(x: Value, axis: Any = None, keepdims: bool = False) -> Value:
    """Mean over `axis`, as `np.mean`."""
    return _reduce("mean", x, axis, keepdims)


def max(x: Value, axis: Any = None, keepdims: bool = False) -> Value:  # noqa: A001
    """Maximum over `axis`, as `np.max`; its gradient is shared evenly among ties."""
    return _reduce("max", x, axis, keepdims)


def size(x: Value, axis: Any = None) -> Value:
    """The number of elements of `x` over `axis`, as a scalar of x's dtype."""
    return apply("size", x, axis=axes_of("size", x, axis))
