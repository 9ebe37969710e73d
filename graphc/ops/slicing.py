"""Static slices (`slice`, its gradient `slice_grad`), NumPy's basic indexing on Values
(`x[:, 1:3]`, `getitem`), and `concat`: ops that move elements, each a loop of its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.codegen.emit import Emit, KernelBuilder, flat_index, flat_loop, loop_nest
from graphc.codegen.kir import Assign, Expr, Lit, Store
from graphc.errors import GraphError, ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import (
    FLOAT_DTYPES,
    INT_DTYPES,
    ShapeMismatch,
    format_shape,
    format_type,
    steps_sum,
    tail_after,
)
from graphc.ops._build import apply, float_dtype
from graphc.ops.indexing import _axis_of, take_bound
from graphc.ops.registry import VARIADIC, OpDef, register
from graphc.ops.shape import reshape


def _box_index(
    kb: KernelBuilder, starts: Sequence[int], steps: Sequence[int], idx: Sequence[Expr | None]
) -> list:
    """The index along each axis of a sliced value of the element at `idx` of the slice; the
    starts are operands, so that the boxes of one shape at other places share a kernel."""
    out: list[Expr | None] = []
    for a, c, i in zip(starts, steps, idx, strict=True):
        start = kb.dim(a) if isinstance(a, str) else kb.offset(a) if a else None
        if i is None:
            out.append(start)
        elif start is None and c == 1:
            out.append(i)
        else:
            term = i if abs(c) == 1 else Lit(abs(c)) * i
            base = start if start is not None else Lit(0)
            out.append(base - term if c < 0 else base + term)
    return out


def _lower_slice(e: Emit, n: int, args: list[int], params: dict) -> None:
    (x,) = args
    kb, shape = e.builder(), e.values.shape
    out = kb.ref(n, write=True)

    def body(idx: list) -> list:
        at = _box_index(kb, params["starts"], params["steps"], idx)
        read = kb.read(x, flat_index(kb, shape(x), at))
        return [Assign(Store(out, flat_index(kb, shape(n), idx)), read)]

    e.kernel(kb, "b0 = a box of b1", loop_nest(kb, shape(n), body))


def _lower_slice_grad(e: Emit, n: int, args: list[int], params: dict) -> None:
    (ct,) = args
    kb, shape = e.builder(), e.values.shape
    out = kb.ref(n, write=True)
    zeros = flat_loop(kb, shape(n), lambda i: [Assign(Store(out, i), Lit(0))])

    def body(idx: list) -> list:
        at = flat_index(kb, shape(n), _box_index(kb, params["starts"], params["steps"], idx))
        return [Assign(Store(out, at), kb.read(ct, flat_index(kb, shape(ct), idx)))]

    e.kernel(kb, "b0 = 0, then b1 put in a box of it", [*zeros, *loop_nest(kb, shape(ct), body)])


def _lower_concat(e: Emit, n: int, args: list[int], params: dict) -> None:
    """One copy per operand, each into its part of the output along the axis."""
    kb, shape, axis = e.builder(), e.values.shape, params["axis"]
    out = kb.ref(n, write=True)
    stmts, before = [], []  # the sizes of the operands before this one along the axis
    for u in args:
        offset = _offset(kb, before)

        def body(idx: list, u: int = u, offset: Expr | None = offset) -> list:
            at = list(idx)
            if offset is not None:
                at[axis] = offset + idx[axis] if idx[axis] is not None else offset
            read = kb.read(u, flat_index(kb, shape(u), idx))
            return [Assign(Store(out, flat_index(kb, shape(n), at)), read)]

        stmts += loop_nest(kb, shape(u), body)
        before.append(shape(u)[axis])
    e.kernel(kb, f"b0 = the concatenation of {len(args)} values along axis {axis}", stmts)


def _offset(kb: KernelBuilder, dims: list) -> Expr | None:
    """The sum of `dims` (ints folded), or None when it is 0."""
    fixed = sum(d for d in dims if isinstance(d, int))
    terms = [kb.dim(d) for d in dims if isinstance(d, str)] + ([Lit(fixed)] if fixed else [])
    out = terms[0] if terms else None
    for t in terms[1:]:
        out = out + t
    return out


# ---- slice: a strided box of a value ----------------------------------------------------------
# Per axis (start, stop, step) as `slice.indices` gives them for the axis's size: a range of
# positions, with stop -1 meaning "down to 0 included" for a negative step. An axis of symbolic
# size can only be taken whole: (0, its symbol, 1).
def _sliced_shape(shape: tuple, starts, stops, steps) -> tuple:
    if not all(isinstance(p, tuple) and len(p) == len(shape) for p in (starts, stops, steps)):
        raise ShapeMismatch(f"starts, stops and steps need one entry per axis of {len(shape)}")
    out = []
    for d, a, b, c in zip(shape, starts, stops, steps, strict=True):
        if isinstance(d, str):
            tail = tail_after(a, d) if (b, c) == (d, 1) else None
            if (a, b, c) != (0, d, 1) and tail is None:
                raise ShapeMismatch(f"axis of symbolic size {d} can only be sliced whole")
            out.append(d if tail is None else tail)  # a checkpointed loop's last steps
            continue
        ok = all(isinstance(p, int) and not isinstance(p, bool) for p in (a, b, c)) and c != 0
        if ok and c > 0:
            ok = 0 <= a <= d and 0 <= b <= d
        elif ok:
            ok = -1 <= a <= d - 1 and -1 <= b <= d - 1
        if not ok:
            raise ShapeMismatch(f"({a}, {b}, {c}) is not a normalised slice of an axis of {d}")
        out.append(len(range(a, b, c)))
    return tuple(out)


def _infer_slice(shapes, dtypes, params):
    return _sliced_shape(shapes[0], params["starts"], params["stops"], params["steps"]), dtypes[0]


def _slices(starts, stops, steps) -> tuple[slice, ...]:
    return tuple(
        slice(a, None if b < 0 else b, c) for a, b, c in zip(starts, stops, steps, strict=True)
    )


def _infer_slice_grad(shapes, dtypes, params):
    shape = params["shape"]
    want = _sliced_shape(shape, params["starts"], params["stops"], params["steps"])
    if shapes[0] != want:
        raise ShapeMismatch(f"the cotangent must be {format_shape(want)}")
    return shape, float_dtype(dtypes, "slice_grad")


def _slice_grad_ref(ct, starts, stops, steps, shape):
    out = np.zeros(shape, dtype=ct.dtype)
    out[_slices(starts, stops, steps)] = ct
    return out


_BOX = {"starts": (), "stops": (), "steps": ()}
register(
    OpDef(
        "slice",
        1,
        _infer_slice,
        lambda x, starts, stops, steps: x[_slices(starts, stops, steps)].copy(),
        (lambda ct, out, x, **box: apply("slice_grad", ct, shape=x.shape, **box),),
        params=_BOX,
        shape_params=("starts", "stops"),
        lower=_lower_slice,
        formula="dx = slice_grad(dy): dy in its place, zeros elsewhere",
    )
)
register(
    OpDef(
        "slice_grad",
        1,
        _infer_slice_grad,
        _slice_grad_ref,
        (lambda ct, out, c, shape, **box: apply("slice", ct, **box),),
        params={**_BOX, "shape": ()},
        shape_params=("starts", "stops", "shape"),
        lower=_lower_slice_grad,
        formula="slice_grad is linear: its own VJP is slice",
    )
)


def _slice_axis(x: Value, axis: int, start: int, stop: int) -> Value:
    """x[..., start:stop, ...] on `axis` (a step of 1)."""
    box = [(0, d, 1) for d in x.shape]
    box[axis] = (start, stop, 1)
    starts, stops, steps = (tuple(p) for p in zip(*box, strict=True))
    return apply("slice", x, starts=starts, stops=stops, steps=steps)


def getitem(x: Value, key: Any) -> Value:
    """x[key] with NumPy's basic indexing: ints, slices, `...` and None (an axis of symbolic
    size can be kept whole (`:`) only); with arrays of indices, its advanced indexing
    (ops/advanced.py)."""
    loc = user_loc()
    key = key if isinstance(key, tuple) else (key,)
    from graphc.ops.advanced import advanced_getitem, is_advanced

    if any(is_advanced(k) for k in key):  # int arrays: NumPy's advanced indexing
        return advanced_getitem(x, key)
    for k in key:
        if not (k is None or k is Ellipsis or isinstance(k, slice) or _is_int(k)):
            hint = "; use gc.take for an array of indices" if not isinstance(k, bool) else ""
            raise ShapeError(f"indexing v{x.id} at {loc}: {k!r} is not an int, slice, ... or "
                             f"None{hint}")  # fmt: skip
    if sum(k is Ellipsis for k in key) > 1:
        raise ShapeError(f"indexing v{x.id} at {loc}: more than one '...'")
    used = sum(1 for k in key if k is not None and k is not Ellipsis)
    if used > x.ndim:
        raise ShapeError(f"indexing v{x.id} {format_type(x.shape, x.dtype)} at {loc}: "
                         f"{used} indices for {x.ndim} dimensions")  # fmt: skip
    if Ellipsis not in key:
        key = (*key, Ellipsis)
    at = key.index(Ellipsis)
    key = (*key[:at], *([slice(None)] * (x.ndim - used)), *key[at + 1 :])
    starts, stops, steps, shape = [], [], [], []  # shape: the result's, None marking new axes
    axis = 0
    for k in key:
        if k is None:
            shape.append(None)
            continue
        d = x.shape[axis]
        if _is_int(k):
            i = int(k)
            if isinstance(d, str):
                raise ShapeError(f"indexing v{x.id} at {loc}: axis {axis} has symbolic size {d}; "
                                 "only ':' can take it")  # fmt: skip
            if not -d <= i < d:
                raise ShapeError(f"indexing v{x.id} at {loc}: index {i} is out of bounds "
                                 f"{take_bound(axis, d)}")  # fmt: skip
            box = (i % d, i % d + 1, 1)
        elif isinstance(d, str):
            if k.step not in (None, 1) or k.start not in (None, 0) or k.stop is not None:
                raise ShapeError(f"indexing v{x.id} at {loc}: axis {axis} has symbolic size {d}; "
                                 "only ':' can take it")  # fmt: skip
            box = (0, d, 1)
            shape.append(d)
        else:
            if k.step == 0:
                raise ShapeError(f"indexing v{x.id} at {loc}: slice step cannot be zero")
            box = k.indices(d)
            shape.append(len(range(*box)))
        for p, v in zip((starts, stops, steps), box, strict=True):
            p.append(v)
        axis += 1
    out = x
    box = (tuple(starts), tuple(stops), tuple(steps))
    if any((a, b, c) != (0, d, 1) for a, b, c, d in zip(*box, x.shape, strict=True)):
        out = apply("slice", x, starts=box[0], stops=box[1], steps=box[2])
    target = tuple(1 if d is None else d for d in shape)
    return out if target == out.shape else reshape(out, target)


def _is_int(k: object) -> bool:
    return isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))


# ---- concat -----------------------------------------------------------------------------------
def _infer_concat(shapes, dtypes, params):
    first, axis = shapes[0], params["axis"]
    _axis_of(axis, len(first))
    for s in shapes[1:]:
        if len(s) != len(first) or any(
            d != e for k, (d, e) in enumerate(zip(s, first, strict=True)) if k != axis
        ):
            raise ShapeMismatch(f"operands differ in shape off axis {axis}")
    sizes = [s[axis] for s in shapes]
    total = steps_sum(sizes)  # symbolic: a checkpointed loop's segments' and tail's steps
    if total is None:
        raise ShapeMismatch(f"cannot concatenate along axis {axis} of symbolic size")
    if all(d in FLOAT_DTYPES for d in dtypes):
        dtype = float_dtype(dtypes, "concat")
    elif all(d in INT_DTYPES for d in dtypes):
        dtype = np.result_type(*dtypes).name
    elif all(d == "bool" for d in dtypes):
        dtype = "bool"
    else:
        raise ShapeMismatch(f"concat needs operands of one kind, got {', '.join(dtypes)}")
    return (*first[:axis], total, *first[axis + 1 :]), dtype


def _concat_vjp(ct, out, *xs, axis, port):
    # d concat(x0, x1, ...) = (dy[x0's part], dy[x1's part], ...) along the axis
    if len(xs) == 1:
        return ct
    start = sum(x.shape[axis] for x in xs[:port])
    return _slice_axis(ct, axis, start, start + xs[port].shape[axis])


register(
    OpDef(
        "concat",
        VARIADIC,
        _infer_concat,
        lambda *xs, axis: np.concatenate(xs, axis=axis),
        (_concat_vjp,),
        params={"axis": 0},
        lower=_lower_concat,
        formula="each operand's gradient is its part of dy",
    )
)


def concat(values: Sequence[Value], axis: int = 0) -> Value:
    """The values joined along `axis`, as `np.concatenate` (one copy of each)."""
    values = list(values)
    first = next((v for v in values if isinstance(v, Value)), None)
    if first is None:
        raise GraphError(f"concat at {user_loc()} needs at least one graphc Value")
    if not -first.ndim <= axis < first.ndim:
        raise ShapeError(f"concat at {user_loc()}: axis {axis} is out of range for "
                         f"{first.ndim} dims")  # fmt: skip
    if len(values) == 1:
        return first
    return apply("concat", *values, axis=axis % first.ndim)
