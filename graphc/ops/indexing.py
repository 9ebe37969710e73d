"""Gathers: `take`, its gradient `take_grad`, and `one_hot`; where a model reads indices, and
the checks of them (static slices and `concat`: ops/slicing.py).

Indices that come from int inputs and constants through ops that only move elements (reshape,
transpose, broadcast_to, slice, concat) are known when a call begins: the interpreter checks
each where it is read, `verify` those from constants alone, a generated module the others where
it checks its arguments (codegen/indexing.index_checks). Indices the model computes (int
arithmetic, argmax, a cast) are checked by the kernels that read them (kir.Fail), and a call
that meets a bad one raises after that step. Kernels never read outside an array whatever an
index holds.
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import numpy as np

from graphc.codegen.emit import Emit, flat_loop
from graphc.codegen.kir import INDEX, Assign, Bin, Cast, Expr, Fail, If, Lit, Store
from graphc.errors import GraphError, ShapeError
from graphc.ir.dag import ancestors, operands
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import (
    FLOAT_DTYPES,
    INT_DTYPES,
    Dim,
    ShapeMismatch,
    bind_shape,
    format_shape,
    normalize_shape,
)
from graphc.ops._build import apply, float_dtype
from graphc.ops.elementwise import cast
from graphc.ops.registry import REGISTRY, OpDef, register


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


def unpool_bound(volume: int | str) -> str:
    return f"for an unpooled plane of {volume} cells (max_unpool)"


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
INDEX_SUFFIX = {"int64": "l", "int32": "i"}  # the runtime kernels' index type: long long, int


MOVES = frozenset(("reshape", "transpose", "broadcast_to", "slice", "concat"))


def computed(G: nx.MultiDiGraph, idx: int) -> bool:
    """Does the model compute int value `idx`, rather than only move the elements of int
    inputs and constants?"""
    return any(G.nodes[u]["op"] not in ("input", "const", *MOVES) for u in ancestors(G, [idx]))


def check_indices(e: Emit, idx: int, size: Dim, wraps: bool) -> None:
    """A step checking every index of value `idx` for an axis of `size` (from -size when
    `wraps`), failing the call at the first that is outside."""
    kb = e.builder()
    n = kb.dim(size)

    def body(k: Expr) -> list:
        j = kb.read(idx, k)
        bad = Bin("or", j < (-n if wraps else Lit(0)), j >= n)
        return [If(bad, (Fail(Cast(INDEX, j), n),))]

    e.kernel(
        kb,
        f"the indices b0 checked for an axis of {size}",
        flat_loop(kb, e.values.shape(idx), body),
    )


def _lower_gather(e: Emit, n: int, args: list[int], params: dict) -> None:
    """take: out[o, k, i] = x[o, idx[k], i]; take_grad: out[o, idx[k], i] += ct[o, k, i], x
    seen as [outer, n, inner] around the axis (templates/runtime/take.pyx.j2). Both skip an
    index out of range, as one_hot does (the argument checks refuse those before a call
    runs, and a step before these checks indices the model computes), so no index ever makes a
    kernel read or write outside an array."""
    src, idx = args
    op = e.values.G.nodes[n]["op"]
    shape = e.values.shape(n) if op == "take_grad" else e.values.shape(src)  # gathered from
    axis = params["axis"]
    if computed(e.values.G, idx):
        check_indices(e, idx, shape[axis], wraps=True)
    name = f"{op}_{e.suffix}_{INDEX_SUFFIX[e.values.dtype(idx)]}"
    ints = [shape[:axis], shape[axis], e.values.shape(idx), shape[axis + 1 :]]
    e.runtime(name, [src, idx, n], ints)


def _lower_one_hot(e: Emit, n: int, args: list[int], params: dict) -> None:
    """out[k, c] = (idx[k] == c); an index out of range sets nothing."""
    (idx,) = args
    kb, shape, depth = e.builder(), e.values.shape, params["depth"]
    out = kb.ref(n, write=True)
    zeros = flat_loop(kb, shape(n), lambda i: [Assign(Store(out, i), Lit(0))])

    def body(k: Expr) -> list:
        j = kb.read(idx, k)
        ok = Bin("and", j >= 0, j < depth)
        checked = [If(ok.eq(0), (Fail(Cast(INDEX, j), Lit(depth)),))] if check else []
        return [If(ok, (Assign(Store(out, k * depth + j), Lit(1)),)), *checked]

    check = computed(e.values.G, idx)
    e.kernel(kb, f"b0 = one_hot(b1, depth={depth})", [*zeros, *flat_loop(kb, shape(idx), body)])


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
        lower=_lower_gather,
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
        lower=_lower_gather,
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
        lower=_lower_one_hot,
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


# ---- where indices are read: for the checks of verify and of generated modules ----------------
def index_use(G: nx.MultiDiGraph, n: int) -> tuple[int, bool, Dim, str] | None:
    """Where node n reads indices: (the index operand, whether negative indices count from the
    end, the size they index, the range in words with "{}" for that size), or None."""
    a = G._node[n]  # asked of every node: networkx's view costs more than the answer
    op, p = a["op"], a["params"]
    if op in ("take", "take_grad"):
        src, idx = operands(G, n)
        size = (G.nodes[src]["shape"] if op == "take" else p["shape"])[p["axis"]]
        return idx, True, size, take_bound(p["axis"], "{}")
    if op == "one_hot":
        return operands(G, n)[0], False, p["depth"], one_hot_bound(p["depth"])
    if op in ("gather", "scatter", "scatter_add"):  # ops/gather.py (their kernels check too)
        x, idx = operands(G, n)[:2]
        return idx, True, G.nodes[x]["shape"][p["axis"]], take_bound(p["axis"], "{}")
    if op == "max_unpool":  # ops/pool_nd.py (its kernel checks too)
        return operands(G, n)[1], False, math.prod(p["size"]), unpool_bound("{}")
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
