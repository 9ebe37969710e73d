"""Reductions over axes: sum, mean, max; and `size`, the element count the mean divides by."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphc.codegen.emit import Emit, flat_index, flat_loop, loop_nest
from graphc.codegen.kir import (
    INDEX,
    Assign,
    Bin,
    Cast,
    Expr,
    If,
    Lit,
    Load,
    Loop,
    Scratch,
    Store,
    Var,
    select,
)
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


# A contiguous row's extreme is kept in ACCUMULATORS arrays of lanes, each VECTOR_BYTES: an
# array's loop is one vector of AVX2, which the C compiler keeps in a register, the arrays
# independent chains the processor overlaps.
VECTOR_BYTES, ACCUMULATORS = 32, 4


def lower_extreme(e: Emit, n: int, args: list[int], params: dict, op: str) -> None:
    """max (op "max") or min over axes, NaN winning. Each output element is the one the
    in-order rule gives: out = x if x > out or x is NaN else out, over the elements in
    row-major order from -inf (min: <, +inf): the row's last NaN, the first of tied zeros
    (sum and mean are loops: loops.fused)."""
    (x,) = args
    kb, axes, shape = e.builder(), params["axis"], e.values.shape
    out = kb.ref(n, write=True)
    rank = len(shape(x))
    if axes and axes == tuple(range(rank - len(axes), rank)):  # contiguous rows
        body = _extreme_rows(kb, x, out, shape(x), len(axes), e.values.dtype(x), op)
        e.kernel(kb, f"b0 = {op}(b1, axis={axes}), NaN winning, in lanes", body)
        return
    init = Lit(float("-inf") if op == "max" else float("inf"))
    fill = flat_loop(kb, shape(n), lambda i: [Assign(Store(out, i), init)])
    kept = tuple(1 if k in axes else d for k, d in enumerate(shape(x)))  # keepdims layout

    def step(idx: list) -> list:
        at = flat_index(kb, kept, [None if k in axes else j for k, j in enumerate(idx)])
        r, o = kb.read(x, flat_index(kb, shape(x), idx)), Load(out, at)
        return [Assign(Store(out, at), _in_order(op, r, o))]

    body = [*fill, *loop_nest(kb, shape(x), step)]
    e.kernel(kb, f"b0 = {op}(b1, axis={axes}), NaN winning", body)


def _in_order(op: str, v: Expr, best: Expr) -> Expr:
    """`best` after `v` by the in-order rule: v if it beats best or is NaN, else best."""
    return select(Bin("or", v > best if op == "max" else v < best, v.ne(v)), v, best)


def _extreme_rows(kb, x, out, shape: tuple, reduced: int, dtype: str, op: str) -> list:
    """The extreme of each contiguous row (the last `reduced` axes of `shape`) as the in-order
    rule gives it, in loops a compiler vectorises. The row's whole groups of W elements go
    to W independent lanes, lane j keeping the plain extreme of elements j, j + W, j + 2W,
    ... (l if l > v else v: one max instruction) and whether one was NaN; then the lanes are
    taken in turn by the in-order rule, then the rest of the row. That is the row's in-order
    result up to which of several equal elements it is. Equal numbers have equal bits but
    for zeros (+0 == -0) and NaNs (their payloads): two passes over the row, in the rare rows
    they concern, make those what the in-order rule makes them, a NaN result the row's last
    NaN, a zero result its first zero."""
    split = len(shape) - reduced
    rows, length = kb.extent(shape[:split]), kb.extent(shape[split:])
    width = VECTOR_BYTES // np.dtype(dtype).itemsize
    flag = "int32" if dtype == "float32" else "int64"  # a lane's NaN flag: of the lane's width
    init = Lit(float("-inf") if op == "max" else float("inf"))
    lanes = [Scratch(f"lane{u}", dtype, width) for u in range(ACCUMULATORS)]
    nans = [Scratch(f"nan{u}", flag, width) for u in range(ACCUMULATORS)]
    o, b, j, k = (Var(name, INDEX) for name in ("o", "b", "j", "k"))
    best, v, nan = kb.var(dtype, "m"), kb.var(dtype, "v"), kb.var(flag, "n")
    whole, base = kb.var(INDEX, "w"), kb.var(INDEX, "r")
    step = width * ACCUMULATORS

    def at(i: Expr) -> Expr:
        return kb.read(x, base + i)

    def lane_loops(body) -> tuple[Loop, ...]:  # body(u, lane, nan): one loop per lane array
        return tuple(Loop(j, Lit(0), Lit(width), body(u, lanes[u], nans[u]))
                     for u in range(ACCUMULATORS))  # fmt: skip

    def plain(lane: Scratch) -> Expr:  # the lane's extreme so far and v: NaN may get lost
        kept = Load(lane, j) > v if op == "max" else Load(lane, j) < v
        return select(kept, Load(lane, j), v)

    in_lanes = If(whole > 0, (
        *lane_loops(lambda u, lane, isnan: (
            Assign(Store(lane, j), init), Assign(Store(isnan, j), Lit(0)))),
        Loop(b, Lit(0), whole, lane_loops(lambda u, lane, isnan: (
            Assign(v, at((b + u * width if u else b) + j)),
            Assign(Store(lane, j), plain(lane)),
            Assign(Store(isnan, j), Load(isnan, j) | Cast(flag, v.ne(v))),
        )), Lit(step)),
        *lane_loops(lambda u, lane, isnan: (
            Assign(best, _in_order(op, Load(lane, j), best)),
            Assign(nan, nan | Load(isnan, j)))),
    ))  # fmt: skip
    first = length - 1 - k  # the row backwards: the last zero taken is its first
    row = (
        Assign(base, o * length),
        Assign(whole, (length // step) * step),
        Assign(best, init),
        Assign(nan, Lit(0)),
        in_lanes,
        Loop(k, whole, length, (Assign(best, _in_order(op, at(k), best)),)),
        If(Bin("or", nan.ne(0), best.ne(best)), (Loop(k, Lit(0), length, (
            Assign(best, select(at(k).ne(at(k)), at(k), best)),)),)),
        If(best.eq(0), (Loop(k, Lit(0), length, (
            Assign(best, select(at(first).eq(0), at(first), best)),)),)),
        Assign(Store(out, o), best),
    )  # fmt: skip
    return [Loop(o, Lit(0), rows, row)]


def _lower_size(e: Emit, n: int, args: list[int], params: dict) -> None:
    kb = e.builder()
    count = kb.extent([e.values.shape(args[0])[k] for k in params["axis"]])
    out = kb.ref(n, write=True)
    e.kernel(
        kb, "b0 = an element count", [Assign(Store(out, Lit(0)), Cast(e.values.dtype(n), count))]
    )


def extreme_ref(np_fn: Any) -> Any:
    """`np_fn` (np.max or np.min) over `axis`, but a zero result is the first zero of its
    reduced elements in row-major order, +0 or -0, as the compiled loops compare (NumPy's own,
    vectorised, returns whichever zero its lanes meet last; PyTorch's amax over a row the
    first, its full max of a vector another)."""

    def ref(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
        out = np_fn(x, axis, keepdims=True)
        if x.dtype.kind == "f" and axis and (out == 0).any():
            kept = [d for k, d in enumerate(x.shape) if k not in axis]
            rows = np.moveaxis(x, axis, range(x.ndim - len(axis), x.ndim)).reshape(*kept, -1)
            first = np.argmax(rows == 0, axis=-1)[..., None]
            neg = np.take_along_axis(np.signbit(rows), first, -1).reshape(out.shape)
            out = np.where(out == 0, np.where(neg, -0.0, 0.0).astype(x.dtype), out)
        return out if keepdims else np.squeeze(out, axis)

    return ref


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
        extreme_ref(np.max),
        (_max_vjp,),
        params=_AXIS,
        lower=lambda e, n, a, p: lower_extreme(e, n, a, p, "max"),
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
