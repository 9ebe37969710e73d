"""Ops that move or replicate elements without arithmetic: transpose, reshape, broadcast_to."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.codegen.emit import Emit, flat_index, flat_loop, loop_nest
from graphc.codegen.kir import Assign, Lit, Loop, Parallel, Store
from graphc.ir.graph import Value
from graphc.ir.shapes import (
    ShapeMismatch,
    can_broadcast_to,
    format_shape,
    normalize_shape,
    resolve_reshape,
)
from graphc.ops._build import apply
from graphc.ops.registry import OpDef, register


def _lower_transpose(e: Emit, n: int, args: list[int], params: dict) -> None:
    """out[idx] = x[idx permuted back], one loop per axis of out."""
    (x,) = args
    kb, perm, shape = e.builder(), params["perm"], e.values.shape
    out = kb.ref(n, write=True)

    def body(idx: list) -> list:
        x_idx: list = [None] * len(perm)
        for j, p in enumerate(perm):
            x_idx[p] = idx[j]
        read = kb.read(x, flat_index(kb, shape(x), x_idx))
        return [Assign(Store(out, flat_index(kb, shape(n), idx)), read)]

    loops = loop_nest(kb, shape(n), body)
    if len(loops) == 1 and isinstance(loops[0], Loop) and len(shape(n)) > 1:
        # the threads share the outermost loop (a copy: the same bits on any number of them)
        top = loops[0]
        loops = [Parallel(top.var, top.stop, Lit(1), kb.extent(shape(n)), top.body)]
    e.kernel(kb, f"b0 = transpose(b1, perm={perm})", loops)


def _lower_reshape(e: Emit, n: int, args: list[int], params: dict) -> None:
    """A copy: reached only when the plan could not alias the bytes (an output array)."""
    kb = e.builder()
    out = kb.ref(n, write=True)
    body = flat_loop(kb, e.values.shape(n), lambda i: [Assign(Store(out, i), kb.read(args[0], i))])
    e.kernel(kb, "b0 = b1, element by element", body)


def _infer_transpose(shapes, dtypes, params):
    (shape,) = shapes
    perm = params["perm"]
    if not isinstance(perm, tuple) or sorted(perm) != list(range(len(shape))):
        raise ShapeMismatch(f"perm {perm!r} is not a permutation of the {len(shape)} axes")
    return tuple(shape[p] for p in perm), dtypes[0]


register(
    OpDef(
        "transpose",
        1,
        _infer_transpose,
        lambda x, perm: np.transpose(x, perm),
        (lambda ct, out, x, perm: transpose(ct, tuple(np.argsort(perm).tolist())),),
        params={"perm": ()},
        lower=_lower_transpose,
        formula="d transpose(x, p) = transpose(dx, p^-1)",
    )
)


def transpose(x: Value, perm: Any = None) -> Value:
    """Permute the axes of `x` (reverse them when `perm` is None), as `np.transpose`."""
    perm = tuple(reversed(range(x.ndim))) if perm is None else tuple(int(p) for p in perm)
    perm = tuple(p % x.ndim if x.ndim else p for p in perm)
    return apply("transpose", x, perm=perm)


def swapaxes(x: Value, a: int = -2, b: int = -1) -> Value:
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def _infer_reshape(shapes, dtypes, params):
    target = params["shape"]
    if not isinstance(target, tuple):
        raise ShapeMismatch(f"shape {target!r} is not a tuple")
    if resolve_reshape(shapes[0], target) != target:
        raise ShapeMismatch(f"shape {format_shape(target)} must be fully resolved (no -1)")
    return target, dtypes[0]


register(
    OpDef(
        "reshape",
        1,
        _infer_reshape,
        lambda x, shape: np.reshape(x, shape),
        (lambda ct, out, x, shape: reshape(ct, x.shape),),
        params={"shape": ()},
        shape_params=("shape",),
        lower=_lower_reshape,
        formula="d reshape(x) = reshape(dx) back",
    )
)


def reshape(x: Value, shape: Any) -> Value:
    """`x` with a new shape of the same size; one entry may be -1, symbols are allowed."""
    try:
        target = resolve_reshape(x.shape, tuple(shape) if not isinstance(shape, int) else (shape,))
    except ShapeMismatch as e:
        from graphc.errors import ShapeError

        raise ShapeError(f"reshape of v{x.id} {format_shape(x.shape)}: {e}") from None
    return apply("reshape", x, shape=target)


def _infer_broadcast(shapes, dtypes, params):
    target = params["shape"]
    if not isinstance(target, tuple) or not can_broadcast_to(shapes[0], target):
        raise ShapeMismatch(f"cannot broadcast {format_shape(shapes[0])} to {target!r}")
    return target, dtypes[0]


register(
    OpDef(
        "broadcast_to",
        1,
        _infer_broadcast,
        lambda x, shape: np.broadcast_to(x, shape).copy(),
        (lambda ct, out, x, shape: ct,),  # grad() sums ct back to x's shape
        params={"shape": ()},
        shape_params=("shape",),
        formula="d broadcast(x) = sum of dx over the broadcast axes",
    )
)


def broadcast_to(x: Value, shape: Any) -> Value:
    """`x` broadcast to `shape` by NumPy's rules."""
    return apply("broadcast_to", x, shape=normalize_shape(shape))
