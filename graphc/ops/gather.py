"""Gathers and scatters along an axis, as PyTorch's and NumPy's: `gather` (take_along_axis),
`scatter` and `scatter_add`; `index_select` and `masked_fill` are built from take and where.

An index may be negative (counting from the end, as NumPy's); one outside the axis is an error
in the interpreter and stops a compiled call after the step (kir.Fail), which reads and writes
nothing for it. Where a scatter writes one place several times, the last in row-major order of
the index wins (scatter) or all are added in that order (scatter_add).

Gradients: gather's is scatter_add of dy into zeros; scatter_add passes dy to x and gathers it
for src; scatter passes dy to x except where it wrote, and gathers dy for src (PyTorch's: with
repeated indices every src element that wrote a place gets its gradient). Indices have none.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.codegen.emit import Emit, KernelBuilder, flat_index, flat_loop, loop_nest
from graphc.codegen.kir import (
    INDEX,
    Assign,
    Bin,
    Cast,
    Expr,
    Fail,
    If,
    Lit,
    Load,
    Stmt,
    Store,
    select,
)
from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import FLOAT_DTYPES, INT_DTYPES, ShapeMismatch, format_shape
from graphc.ops._build import apply
from graphc.ops.indexing import _check_const, _index_value, index_problem
from graphc.ops.registry import OpDef, register


def checked_index(kb: KernelBuilder, idx: int, at: Expr, size: Expr) -> tuple[Expr, Expr, Expr]:
    """(the index read at `at`, as given; the same counted from the start; whether it is
    inside an axis of `size`)."""
    j = Cast(INDEX, kb.read(idx, at))
    jj = select(j < 0, j + size, j)
    return j, jj, Bin("and", jj >= 0, jj < size)


def guarded(ok: Expr, j: Expr, size: Expr, then: list[Stmt], otherwise: list[Stmt] = ()) -> list:
    """`then` where the index is inside, else `otherwise` and a Fail of the call."""
    return [If(ok, tuple(then)), If(ok.eq(0), (*otherwise, Fail(j, size)))]


def _ref_index(idx: np.ndarray, n: int, what: str) -> np.ndarray:
    problem = index_problem(idx, -n, n, what)
    if problem:
        raise ValueError(problem)
    return np.where(idx < 0, idx + n, idx)


# ---- gather -------------------------------------------------------------------------------------
def _axis(op: str, shape: tuple, axis: Any) -> int:
    if not isinstance(axis, int) or isinstance(axis, bool) or not 0 <= axis < len(shape):
        raise ShapeMismatch(f"{op}: axis {axis!r} is not an axis of a {len(shape)}-d value")
    return axis


def _fits(op: str, idx: tuple, x: tuple, axis: int, what: str) -> None:
    """The index has x's rank and, off the axis, sizes no larger than x's (PyTorch's rule)."""
    if len(idx) != len(x):
        raise ShapeMismatch(f"{op}: the index {format_shape(idx)} must have {what}'s rank "
                            f"{len(x)}")  # fmt: skip
    for k, (a, b) in enumerate(zip(idx, x, strict=True)):
        if k == axis or a == b:
            continue
        if not (isinstance(a, int) and isinstance(b, int) and a <= b):
            raise ShapeMismatch(f"{op}: the index's axis {k} ({a}) exceeds {what}'s ({b})")


def _int_index(op: str, dtype: str) -> None:
    if dtype not in INT_DTYPES:
        raise ShapeMismatch(f"{op} needs int indices, got {dtype}")


def _infer_gather(shapes, dtypes, params):
    (x, idx), axis = shapes, _axis("gather", shapes[0], params["axis"])
    _fits("gather", idx, x, axis, "x")
    _int_index("gather", dtypes[1])
    return idx, dtypes[0]


def _gather_ref(x: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    j = _ref_index(idx, x.shape[axis], f"for axis {axis} with size {x.shape[axis]}")
    sub = x[tuple(slice(0, d) if k != axis else slice(None) for k, d in enumerate(idx.shape))]
    return np.take_along_axis(sub, j, axis)


def _lower_gather(e: Emit, n: int, args: list[int], params: dict) -> None:
    """out[p] = x[p with its axis coordinate replaced by idx[p]]."""
    x, idx = args
    kb, shape, axis = e.builder(), e.values.shape, params["axis"]
    out = kb.ref(n, write=True)
    size = kb.dim(shape(x)[axis])

    def body(coords: list) -> list:
        at = flat_index(kb, shape(n), coords)
        j, jj, ok = checked_index(kb, idx, at, size)
        src = list(coords)
        src[axis] = jj
        read = [Assign(Store(out, at), kb.read(x, flat_index(kb, shape(x), src)))]
        return guarded(ok, j, size, read, [Assign(Store(out, at), Lit(0))])

    e.kernel(kb, f"b0 = gather(b1, axis={axis}, b2)", loop_nest(kb, shape(n), body))


def _zeros(like: Value, shape: tuple) -> Value:
    from graphc.ops.shape import broadcast_to

    return broadcast_to(like.graph.const(0.0, like.dtype), shape)


register(
    OpDef(
        "gather",
        2,
        _infer_gather,
        _gather_ref,
        (lambda ct, out, x, idx, axis: scatter_add(_zeros(ct, x.shape), axis, idx, ct), None),
        params={"axis": 0},
        lower=_lower_gather,
        formula="dx = scatter_add(0, dy) at the indices (repeats add up); indices: none",
    )
)


# ---- scatter, scatter_add ----------------------------------------------------------------------
def _infer_scatter(op: str):
    def infer(shapes, dtypes, params):
        (x, idx, src), axis = shapes, _axis(op, shapes[0], params["axis"])
        _int_index(op, dtypes[1])
        _fits(op, idx, x, axis, "x")
        if tuple(src) != tuple(idx):
            raise ShapeMismatch(f"{op}: src {format_shape(src)} must have the index's shape "
                                f"{format_shape(idx)}")  # fmt: skip
        if dtypes[0] != dtypes[2]:
            raise ShapeMismatch(f"{op}: x is {dtypes[0]} but src is {dtypes[2]}")
        if op == "scatter_add" and dtypes[0] not in (*FLOAT_DTYPES, *INT_DTYPES):
            raise ShapeMismatch(f"scatter_add adds numbers, got {dtypes[0]}")
        return x, dtypes[0]

    return infer


def _scatter_ref(add: bool):
    def ref(x: np.ndarray, idx: np.ndarray, src: np.ndarray, axis: int) -> np.ndarray:
        j = _ref_index(idx, x.shape[axis], f"for axis {axis} with size {x.shape[axis]}")
        out = np.array(x, copy=True)
        coords = list(np.indices(idx.shape))
        coords[axis] = j
        if add:  # unbuffered, in row-major order of the index
            np.add.at(out, tuple(coords), src)
            return out
        flat = np.ravel_multi_index(tuple(coords), out.shape).ravel()
        _, first = np.unique(flat[::-1], return_index=True)  # each place's last write
        last = flat.size - 1 - first
        out.reshape(-1)[flat[last]] = src.reshape(-1)[last]
        return out

    return ref


def _lower_scatter(e: Emit, n: int, args: list[int], params: dict) -> None:
    """out = x, then out[p with its axis coordinate replaced by idx[p]] = (or +=) src[p], in
    row-major order of p."""
    x, idx, src = args
    add = e.values.G.nodes[n]["op"] == "scatter_add"
    kb, shape, axis = e.builder(), e.values.shape, params["axis"]
    out = kb.ref(n, write=True)
    size = kb.dim(shape(x)[axis])
    copy = flat_loop(kb, shape(n), lambda i: [Assign(Store(out, i), kb.read(x, i))])

    def body(coords: list) -> list:
        at = flat_index(kb, shape(idx), coords)
        j, jj, ok = checked_index(kb, idx, at, size)
        dst = list(coords)
        dst[axis] = jj
        to = flat_index(kb, shape(n), dst)
        value = kb.read(src, at)
        return guarded(
            ok, j, size, [Assign(Store(out, to), Load(out, to) + value if add else value)]
        )

    what = "+=" if add else "="
    e.kernel(
        kb,
        f"b0 = b1, then b0[b2 along axis {axis}] {what} b3",
        [*copy, *loop_nest(kb, shape(idx), body)],
    )


register(
    OpDef(
        "scatter",
        3,
        _infer_scatter("scatter"),
        _scatter_ref(add=False),
        (
            lambda ct, out, x, idx, src, axis: scatter(ct, axis, idx, _zeros(ct, idx.shape)),
            None,
            lambda ct, out, x, idx, src, axis: gather(ct, axis, idx),
        ),
        params={"axis": 0},
        lower=_lower_scatter,
        formula="dx = dy where nothing was written, dsrc = dy gathered at the indices",
    )
)
register(
    OpDef(
        "scatter_add",
        3,
        _infer_scatter("scatter_add"),
        _scatter_ref(add=True),
        (
            lambda ct, out, x, idx, src, axis: ct,
            None,
            lambda ct, out, x, idx, src, axis: gather(ct, axis, idx),
        ),
        params={"axis": 0},
        lower=_lower_scatter,
        formula="dx = dy, dsrc = dy gathered at the indices",
    )
)


# ---- builders -----------------------------------------------------------------------------------
def _prepare(op: str, x: Value, axis: int, index: Any) -> tuple[int, Value]:
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"{op} at {user_loc()}: axis {axis} is out of range for {x.ndim} dims")
    axis %= x.ndim
    idx = _index_value(x, index, op)
    n = x.shape[axis]
    if isinstance(n, int):
        _check_const(idx, -n, n, f"for axis {axis} with size {n}", op)
    return axis, idx


def gather(x: Value, axis: int, index: Any) -> Value:
    """x's elements along `axis` at `index` (an int array of x's rank), as PyTorch's gather
    and NumPy's take_along_axis: out[i, j] = x[index[i, j], j] for axis 0."""
    axis, idx = _prepare("gather", x, axis, index)
    return apply("gather", x, idx, axis=axis)


take_along_axis = gather


def scatter(x: Value, axis: int, index: Any, src: Any) -> Value:
    """x with src written at `index` along `axis`, as PyTorch's scatter: out[index[i, j], j]
    = src[i, j] for axis 0 (the last of repeated indices wins); src may be a number."""
    axis, idx = _prepare("scatter", x, axis, index)
    return apply("scatter", x, idx, _source(x, idx, src), axis=axis)


def scatter_add(x: Value, axis: int, index: Any, src: Any) -> Value:
    """x with src added at `index` along `axis`, as PyTorch's scatter_add (repeats add up)."""
    axis, idx = _prepare("scatter_add", x, axis, index)
    return apply("scatter_add", x, idx, _source(x, idx, src), axis=axis)


def _source(x: Value, idx: Value, src: Any) -> Value:
    from graphc.ops.shape import broadcast_to

    if isinstance(src, Value):
        return src
    return broadcast_to(x.graph.const(np.asarray(src, dtype=x.dtype), x.dtype), idx.shape)


def index_select(x: Value, axis: int, index: Any) -> Value:
    """x's slices along `axis` at the 1-d `index`, as PyTorch's index_select (gc.take)."""
    from graphc.ops.indexing import take

    idx = _index_value(x, index, "index_select")
    if idx.ndim != 1:
        raise ShapeError(f"index_select at {user_loc()}: the index must be 1-d, got "
                         f"{format_shape(idx.shape)}")  # fmt: skip
    return take(x, idx, axis)


def masked_fill(x: Value, mask: Value, value: Any) -> Value:
    """x with `value` where the bool `mask` (broadcast) is true, as PyTorch's masked_fill."""
    from graphc.ops.elementwise import where

    return where(mask, value, x)
