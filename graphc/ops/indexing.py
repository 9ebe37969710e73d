"""Indexing: gathers (`take`, its gradient `take_grad`), `one_hot`, static slices (`slice`, its
gradient `slice_grad`), `concat`, and NumPy's basic indexing on Values (`x[:, 1:3]`).

Int values (indices, labels) come only from int inputs and constants, through ops that move
elements (reshape, transpose, broadcast_to, slice, concat); no op computes them. So every index a
model reads is known when a call begins: the interpreter checks it where it is read, `verify`
those from constants alone, a generated module all others where it checks its arguments
(codegen/indexing.index_checks), and its kernels never read outside an array whatever an index
holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np

from graphc.errors import GraphError, ShapeError
from graphc.ir.graph import Value, ancestors, operands
from graphc.ir.loc import user_loc
from graphc.ir.shapes import (
    FLOAT_DTYPES,
    INT_DTYPES,
    Dim,
    ShapeMismatch,
    bind_shape,
    format_shape,
    format_type,
    normalize_shape,
)
from graphc.ops._build import apply, float_dtype
from graphc.ops.elementwise import cast
from graphc.ops.registry import REGISTRY, VARIADIC, OpDef, register
from graphc.ops.shape import reshape


def index_problem(idx: np.ndarray, lo: int, hi: int, bound: str) -> str | None:
    """Why an element of `idx` is outside [lo, hi), or None when none is; `bound` says what
    the range is ("for axis 0 with size 5")."""
    idx = np.asarray(idx)
    bad = (idx < lo) | (idx >= hi)
    if not bad.any():
        return None
    at = tuple(int(i) for i in np.argwhere(bad)[0])
    where = f" (at {at} of the indices)" if at else ""
    return f"index {int(idx[at])}{where} is out of bounds {bound}"


def _check_range(idx: np.ndarray, lo: int, hi: int, bound: str) -> None:
    problem = index_problem(idx, lo, hi, bound)
    if problem:
        raise ValueError(problem)  # the interpreter names the node and its line


def take_bound(axis: int, n: int | str) -> str:
    return f"for axis {axis} with size {n}"


def one_hot_bound(depth: int) -> str:
    return f"for one_hot with depth {depth} (labels 0 to {depth - 1})"


def _int_operand(dtype: str, op: str) -> None:
    if dtype not in INT_DTYPES:
        raise ShapeMismatch(f"{op} needs int indices (an int input or constant), got {dtype}")


def _axis_of(axis: object, ndim: int) -> int:
    if not isinstance(axis, int) or isinstance(axis, bool) or not 0 <= axis < ndim:
        raise ShapeMismatch(f"axis {axis!r} is not an axis of a {ndim}-d value")
    return axis


# ---- take: gather along one axis -------------------------------------------------------------
def _gathered(shape: tuple, idx: tuple, axis: int) -> tuple:
    return (*shape[:axis], *idx, *shape[axis + 1 :])


def _infer_take(shapes, dtypes, params):
    (xs, idx), axis = shapes, params["axis"]
    _axis_of(axis, len(xs))
    _int_operand(dtypes[1], "take")
    return _gathered(xs, idx, axis), float_dtype(dtypes[:1], "take")


def _take_ref(x, idx, axis):
    n = x.shape[axis]
    _check_range(idx, -n, n, take_bound(axis, n))
    return np.take(x, idx, axis=axis)


def _infer_take_grad(shapes, dtypes, params):
    (cts, idx), shape, axis = shapes, params["shape"], params["axis"]
    _axis_of(axis, len(shape))
    _int_operand(dtypes[1], "take_grad")
    want = _gathered(shape, idx, axis)
    if cts != want:
        raise ShapeMismatch(f"the cotangent must be {format_shape(want)}")
    return shape, float_dtype(dtypes[:1], "take_grad")


def _take_grad_ref(ct, idx, shape, axis):
    n = shape[axis]
    _check_range(idx, -n, n, take_bound(axis, n))
    out = np.zeros(shape, dtype=ct.dtype)
    outer, inner = math.prod(shape[:axis]), math.prod(shape[axis + 1 :])
    j = np.asarray(idx, dtype=np.int64).ravel()
    j = np.where(j < 0, j + n, j)
    np.add.at(out.reshape(outer, n, inner), (slice(None), j), ct.reshape(outer, j.size, inner))
    return out


register(
    OpDef(
        "take",
        2,
        _infer_take,
        _take_ref,
        (lambda ct, out, x, idx, axis: take_grad(ct, idx, x.shape, axis), None),
        params={"axis": 0},
        formula="dx = take_grad(dy): dy added at the rows taken (indices get no gradient)",
    )
)
register(
    OpDef(
        "take_grad",
        2,
        _infer_take_grad,
        _take_grad_ref,
        (lambda ct, out, c, idx, shape, axis: take(ct, idx, axis), None),
        params={"shape": (), "axis": 0},
        shape_params=("shape",),
        formula="take_grad is linear in its cotangent: its own VJP is take",
    )
)


def _index_value(g_of: Value, idx: Any, op: str) -> Value:
    """`idx` as an int Value of `g_of`'s graph (arrays and Python ints become constants)."""
    if isinstance(idx, Value):
        return idx
    arr = np.asarray(idx)
    if arr.dtype.kind not in "iu":
        raise ShapeError(f"{op} at {user_loc()}: indices must be integers, got {arr.dtype}")
    if arr.size and (arr.min() < np.iinfo(np.int64).min or arr.max() > np.iinfo(np.int64).max):
        raise ShapeError(f"{op} at {user_loc()}: indices do not fit int64")
    return g_of.graph.const(arr, dtype="int64")


def _check_const(idx: Value, lo: int, hi: int, bound: str, op: str) -> None:
    """A constant's indices are known now: refuse bad ones when the model is built."""
    if idx.op == "const":
        problem = index_problem(idx.attrs["value"], lo, hi, bound)
        if problem:
            raise ShapeError(f"{op} at {user_loc()}: {problem}")


def take(x: Value, indices: Any, axis: int = 0) -> Value:
    """Elements of `x` at `indices` along `axis`, as `np.take`: the result has x's shape with
    that axis replaced by the indices' shape (an embedding lookup: take(table[V, D],
    tokens[N, T]) is [N, T, D]). Negative indices count from the end; others out of range
    are an error."""
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"take at {user_loc()}: axis {axis} is out of range for {x.ndim} dims")
    axis %= x.ndim
    idx = _index_value(x, indices, "take")
    n = x.shape[axis]
    if isinstance(n, int):
        _check_const(idx, -n, n, take_bound(axis, n), "take")
    return apply("take", x, idx, axis=axis)


def take_grad(ct: Value, indices: Any, shape: Any, axis: int = 0) -> Value:
    """Zeros of `shape` with `ct` added at `indices` along `axis` (the gradient of take)."""
    idx = _index_value(ct, indices, "take_grad")
    return apply("take_grad", ct, idx, shape=normalize_shape(shape), axis=axis)


# ---- one_hot ----------------------------------------------------------------------------------
def _infer_one_hot(shapes, dtypes, params):
    depth = params["depth"]
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
        raise ShapeMismatch(f"depth {depth!r} must be an int >= 0")
    _int_operand(dtypes[0], "one_hot")
    return (*shapes[0], depth), "bool"


def _one_hot_ref(idx, depth):
    _check_range(idx, 0, depth, one_hot_bound(depth))
    return np.asarray(idx)[..., None] == np.arange(depth)


register(
    OpDef(
        "one_hot",
        1,
        _infer_one_hot,
        _one_hot_ref,
        (None,),
        params={"depth": 0},
        formula="labels are discrete: no gradient",
    )
)


def one_hot(indices: Value, depth: int, dtype: str = "float64") -> Value:
    """A new last axis of `depth` holding 1 at each index and 0 elsewhere; every index must be
    in 0..depth-1. `dtype`: a float dtype, or "bool" for a mask."""
    if not isinstance(indices, Value):
        raise GraphError(f"one_hot at {user_loc()}: indices must be a Value (an int input)")
    if dtype not in (*FLOAT_DTYPES, "bool"):
        raise ShapeError(f"one_hot at {user_loc()}: dtype must be a float dtype or bool")
    if not isinstance(depth, int) or isinstance(depth, bool):
        raise ShapeError(f"one_hot at {user_loc()}: depth must be an int, got {depth!r}")
    _check_const(indices, 0, depth, one_hot_bound(depth), "one_hot")
    mask = apply("one_hot", indices, depth=int(depth))
    return mask if dtype == "bool" else cast(mask, dtype)


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
            if (a, b, c) != (0, d, 1):
                raise ShapeMismatch(f"axis of symbolic size {d} can only be sliced whole")
            out.append(d)
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
        shape_params=("stops",),
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
        shape_params=("stops", "shape"),
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
    """x[key] with NumPy's basic indexing: ints, slices, `...` and None. An axis of symbolic
    size can be kept whole (`:`) only."""
    loc = user_loc()
    key = key if isinstance(key, tuple) else (key,)
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


# ---- where indices are read: for the checks of verify and of generated modules ----------------
def index_use(G: nx.MultiDiGraph, n: int) -> tuple[int, bool, Dim, str] | None:
    """Where node n reads indices: (the index operand, whether negative indices count from the
    end, the size they index, the range in words with "{}" for that size), or None."""
    a = G.nodes[n]
    op, p = a["op"], a["params"]
    if op in ("take", "take_grad"):
        src, idx = operands(G, n)
        size = (G.nodes[src]["shape"] if op == "take" else p["shape"])[p["axis"]]
        return idx, True, size, take_bound(p["axis"], "{}")
    if op == "one_hot":
        return operands(G, n)[0], False, p["depth"], one_hot_bound(p["depth"])
    return None


def index_source(G: nx.MultiDiGraph, n: int) -> tuple:
    """How int value n is computed, as a nested tuple: ("input", name), ("const", values,
    dtype, shape) or (op, params, *operands). Int values come only from moves (see above),
    so this is short."""
    a = G.nodes[n]
    if a["op"] == "input":
        return ("input", a["name"])
    if a["op"] == "const":
        return ("const", a["value"].ravel().tolist(), a["dtype"], a["shape"])
    return (a["op"], dict(a["params"]), *(index_source(G, u) for u in operands(G, n)))


def evaluate_source(source: tuple, arrays: dict, symbols: dict) -> np.ndarray:
    """The indices `source` (see index_source) describes, for these arrays and symbol sizes."""
    kind = source[0]
    if kind == "input":
        return np.asarray(arrays[source[1]])
    if kind == "const":
        return np.array(source[1], dtype=source[2]).reshape(source[3])
    op, params = REGISTRY[kind], dict(source[1])
    for key in op.shape_params:
        params[key] = bind_shape(params[key], symbols)
    return op.ref(*(evaluate_source(s, arrays, symbols) for s in source[2:]), **params)


def constant_index_problem(G: nx.MultiDiGraph, n: int) -> str | None:
    """What is wrong with the indices node n reads, when they come from constants alone and
    index a size known now (None when nothing is, or they are not such)."""
    use = index_use(G, n)
    if use is None:
        return None
    idx, wraps, size, bound = use
    if not isinstance(size, int) or any(G.nodes[u]["op"] == "input" for u in ancestors(G, [idx])):
        return None
    values = evaluate_source(index_source(G, idx), {}, {})
    return index_problem(values, -size if wraps else 0, size, bound.format(size))


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
    if len(sizes) > 1 and not all(isinstance(d, int) for d in sizes):
        raise ShapeMismatch(f"cannot concatenate along axis {axis} of symbolic size")
    if all(d in FLOAT_DTYPES for d in dtypes):
        dtype = float_dtype(dtypes, "concat")
    elif all(d in INT_DTYPES for d in dtypes):
        dtype = np.result_type(*dtypes).name
    elif all(d == "bool" for d in dtypes):
        dtype = "bool"
    else:
        raise ShapeMismatch(f"concat needs operands of one kind, got {', '.join(dtypes)}")
    total = sum(sizes) if len(sizes) > 1 else sizes[0]
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
