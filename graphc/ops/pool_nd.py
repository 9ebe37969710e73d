"""Max pooling over 1 to 3 spatial axes with PyTorch's options, and what comes with it:
max_pool1d/2d/3d (dilation, ceil_mode, return_indices) and max_unpool1d/2d/3d (average
pooling: ops/pool_avg.py and ops/pool_adaptive.py).

One op, `pool_argmax`, finds each window's maximum (PyTorch's rule: the first of equal values,
and NaN wins, the last NaN of a window); the values are a gather of x at it, so the gradient
goes there (gather's, adding up where windows share a maximum). `max_unpool` is an op of its
own: zeros with each value of x at its flat index in its (n, c) plane (the last of repeated
indices wins; an index outside the plane stops the call, kir.Fail, and the argument checks
refuse int inputs holding one); its VJP gathers dy at the indices. 2-D max pooling with default
options keeps the runtime's kernels (ops/pool.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphc.codegen.emit import Emit
from graphc.codegen.kir import (
    INDEX,
    Assign,
    Bin,
    Cast,
    Expr,
    Fail,
    If,
    Lit,
    Loop,
    Store,
    Var,
    select,
)
from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import INT_DTYPES, ShapeMismatch
from graphc.ops import pool as pool2d  # the runtime's 2-D kernels (and their ops registered)
from graphc.ops._build import apply, float_dtype
from graphc.ops.indexing import _check_const, index_problem, unpool_bound
from graphc.ops.registry import OpDef, register


# ---- geometry ----------------------------------------------------------------------------------
def pooled_size(n: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """PyTorch's pooling_output_shape: a window starting in the right padding is dropped."""
    span = d * (k - 1) + 1
    out = (n + 2 * p - span + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def _tuple(op: str, name: str, v: Any, k: int, least: int) -> tuple[int, ...]:
    vals = (v,) * k if isinstance(v, int | np.integer) else tuple(v)
    if len(vals) != k or not all(
        isinstance(a, int | np.integer) and not isinstance(a, bool) and a >= least for a in vals
    ):
        raise ShapeError(
            f"{op} at {user_loc()}: {name} must be an int >= {least} or {k} of them, got {v!r}"
        )
    return tuple(int(a) for a in vals)


def _geometry(op: str, x: Value, k: int, kernel, stride, padding, dilation) -> dict:
    if not isinstance(x, Value) or x.ndim != k + 2:
        raise ShapeError(f"{op} at {user_loc()}: x must be [N, C, {k} spatial axes]")
    if any(not isinstance(d, int) for d in x.shape[1:]):
        raise ShapeError(f"{op} at {user_loc()}: only the batch of {x.shape} may be symbolic")
    kernel = _tuple(op, "kernel_size", kernel, k, 1)
    stride = kernel if stride is None else _tuple(op, "stride", stride, k, 1)
    padding = _tuple(op, "padding", padding, k, 0)
    dilation = _tuple(op, "dilation", dilation, k, 1)
    if any(2 * p > kk for p, kk in zip(padding, kernel, strict=True)):
        raise ShapeError(
            f"{op} at {user_loc()}: padding {padding} is more than half the kernel {kernel}"
        )
    return {"kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation}


# ---- pool_argmax ------------------------------------------------------------------------------
def _out_shape(shape: tuple, params) -> tuple:
    g = [params[k] for k in ("kernel", "stride", "padding", "dilation")]
    spatial = tuple(
        pooled_size(n, *p, params["ceil_mode"]) for n, *p in zip(shape[2:], *g, strict=True)
    )
    if min(spatial, default=1) < 1:
        raise ShapeMismatch(f"pool_argmax: the windows do not fit the input {shape[2:]}")
    return (*shape[:2], *spatial)


def _infer_pool_argmax(shapes, dtypes, params):
    (x,) = shapes
    k = len(params["kernel"])
    if len(x) != k + 2 or not 1 <= k <= 3:
        raise ShapeMismatch(f"pool_argmax: x must be [N, C, {k} spatial axes], got {x}")
    for name in ("stride", "padding", "dilation"):
        if len(params[name]) != k:
            raise ShapeMismatch(f"pool_argmax: {name} needs {k} entries")
    if dtypes[0] not in ("float64", "float32"):
        raise ShapeMismatch(f"pool_argmax takes floats, got {dtypes[0]}")
    return _out_shape(x, params), "int64"


def _pool_argmax_ref(x: np.ndarray, kernel, stride, padding, dilation, ceil_mode) -> np.ndarray:
    geometry = {
        "kernel": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "ceil_mode": ceil_mode,
    }
    out_shape = _out_shape(x.shape, geometry)
    spatial = x.shape[2:]
    out = np.zeros(out_shape, np.int64)
    planes = x.reshape(-1, *spatial)
    flat_out = out.reshape(-1, *out_shape[2:])
    for pos in np.ndindex(*out_shape[2:]):
        starts = [o * s - p for o, s, p in zip(pos, stride, padding, strict=True)]
        taps = [
            [st + t * d for t in range(k) if 0 <= st + t * d < n]
            for st, k, d, n in zip(starts, kernel, dilation, spatial, strict=True)
        ]
        best = np.full(planes.shape[0], -np.inf, x.dtype)
        idx = np.zeros(planes.shape[0], np.int64)
        found = False
        for cell in np.ndindex(*(len(t) for t in taps)):
            at = tuple(t[c] for t, c in zip(taps, cell, strict=True))
            v = planes[(slice(None), *at)]
            take = (v > best) | np.isnan(v) | (not found)
            best, idx = (
                np.where(take, v, best),
                np.where(take, np.ravel_multi_index(at, spatial), idx),
            )
            found = True
        flat_out[(slice(None), *pos)] = idx
    return out


def _lower_pool_argmax(e: Emit, n: int, args: list[int], params: dict) -> None:
    """Per (n, c) plane and output position, each tap of its window inside the input in
    row-major order: the flat index of the first greatest (NaN: the last NaN)."""
    (x,) = args
    kb = e.builder()
    xs, ys = e.values.shape(x), e.values.shape(n)
    out = kb.ref(n, write=True)
    spatial, pooled = xs[2:], ys[2:]
    volume, vout = math.prod(spatial), math.prod(pooled)
    best, idx, found, v = (
        kb.var(e.values.dtype(x)),
        kb.var("int64"),
        kb.var("bool"),
        kb.var(e.values.dtype(x)),
    )
    plane = Var("c", INDEX)
    outs = [Var(f"r{a}", INDEX) for a in range(len(spatial))]  # (t1, t2, ...: the locals)
    taps = [Var(f"q{a}", INDEX) for a in range(len(spatial))]
    pos = [
        o * s - p + t * d
        for o, t, s, p, d in zip(
            outs, taps, params["stride"], params["padding"], params["dilation"], strict=True
        )
    ]
    inside: Expr | None = None
    flat: Expr | None = None
    for q, size in zip(pos, spatial, strict=True):
        ok = Bin("and", q >= 0, q < size)
        inside = ok if inside is None else Bin("and", inside, ok)
        flat = q if flat is None else flat * size + q
    val = kb.read(x, plane * volume + flat)
    better = Bin("or", Bin("or", v > best, v.ne(v)), found.eq(0))
    step: tuple = (
        If(
            inside,
            (
                Assign(v, val),
                Assign(idx, select(better, Cast("int64", flat), idx)),
                Assign(best, select(better, v, best)),
                Assign(found, Lit(True, "bool")),
            ),
        ),
    )
    for t, k in reversed(list(zip(taps, params["kernel"], strict=True))):
        step = (Loop(t, Lit(0), Lit(k), step),)
    at_out: Expr | None = None
    for o, size in zip(outs, pooled, strict=True):
        at_out = o if at_out is None else at_out * size + o
    body: tuple = (
        Assign(best, Lit(float("-inf"))),
        Assign(idx, Lit(0)),
        Assign(found, Lit(False, "bool")),
        *step,
        Assign(Store(out, plane * vout + at_out), idx),
    )
    for o, size in reversed(list(zip(outs, pooled, strict=True))):
        body = (Loop(o, Lit(0), Lit(size), body),)
    body = (Loop(plane, Lit(0), kb.extent(xs[:2]), body),)
    e.kernel(kb, f"b0 = the argmax of each window of b1 (kernel {params['kernel']})", list(body))


register(
    OpDef(
        "pool_argmax",
        1,
        _infer_pool_argmax,
        _pool_argmax_ref,
        (None,),
        params={
            "kernel": (1,),
            "stride": (1,),
            "padding": (0,),
            "dilation": (1,),
            "ceil_mode": False,
        },
        lower=_lower_pool_argmax,
        formula="indices: no gradient (max pooling's goes through the gather of x at them)",
    )
)


# ---- max pooling --------------------------------------------------------------------------------
def _flat(x: Value, k: int) -> Value:
    from graphc.ops.shape import reshape

    return reshape(x, (*x.shape[:2], math.prod(x.shape[2:])))


def max_pool(
    x: Value,
    k: int,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """Max pooling over the last k spatial axes of x [N, C, ...], as PyTorch's max_pool{k}d;
    with return_indices, also each window's flat index into its plane (for max_unpool)."""
    from graphc.ops.gather import gather
    from graphc.ops.shape import reshape

    op = f"max_pool{k}d"
    geo = _geometry(op, x, k, kernel_size, stride, padding, dilation)
    if k == 2 and geo["dilation"] == (1, 1) and not ceil_mode and not return_indices:
        return pool2d.max_pool2d(x, geo["kernel"], geo["stride"], geo["padding"])
    idx = apply("pool_argmax", x, ceil_mode=bool(ceil_mode), **geo)
    values = reshape(gather(_flat(x, k), 2, _flat(idx, k)), idx.shape)
    return (values, idx) if return_indices else values


def max_pool1d(
    x: Value, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """Max pooling of x [N, C, L], as PyTorch's max_pool1d."""
    return max_pool(x, 1, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(
    x: Value, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """Max pooling of x [N, C, D, H, W], as PyTorch's max_pool3d."""
    return max_pool(x, 3, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _infer_max_unpool(shapes, dtypes, params):
    (x, idx), size = shapes, params["size"]
    if not 1 <= len(size) <= 3 or len(x) != len(size) + 2:
        raise ShapeMismatch(f"max_unpool: x must be [N, C, {len(size)} spatial axes], got {x}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in size):
        raise ShapeMismatch(f"max_unpool: size must be ints >= 1, got {size!r}")
    if tuple(idx) != tuple(x):
        raise ShapeMismatch(f"max_unpool: the indices {idx} must have x's shape {x}")
    if dtypes[1] not in INT_DTYPES:
        raise ShapeMismatch(f"max_unpool needs int indices, got {dtypes[1]}")
    return (*x[:2], *size), float_dtype(dtypes[:1], "max_unpool")


def _max_unpool_ref(x: np.ndarray, idx: np.ndarray, size) -> np.ndarray:
    volume = math.prod(size)
    problem = index_problem(idx, 0, volume, unpool_bound(volume))
    if problem:
        raise ValueError(problem)  # the interpreter names the node and its line
    out = np.zeros((*x.shape[:2], volume), x.dtype)
    planes, count = out.reshape(-1, volume), math.prod(x.shape[2:])
    rows, places = x.reshape(-1, count), idx.reshape(-1, count)
    for k, (row, j) in enumerate(zip(rows, places, strict=True)):
        _, first = np.unique(j[::-1], return_index=True)
        last = count - 1 - first  # each place's last write
        planes[k, j[last]] = row[last]
    return out.reshape(*x.shape[:2], *size)


def _lower_max_unpool(e: Emit, n: int, args: list[int], params: dict) -> None:
    """out = 0, then per (n, c) plane each x at its index in the plane, in order (the last of
    repeated indices wins); an index outside the plane fails the call and writes nothing."""
    x, idx = args
    kb = e.builder()
    xs = e.values.shape(x)
    out = kb.ref(n, write=True)
    volume, count = math.prod(params["size"]), math.prod(xs[2:])
    i, plane, k = Var("i", INDEX), Var("c", INDEX), Var("k", INDEX)
    j = kb.var(INDEX, "j")
    zeros = Loop(i, Lit(0), kb.extent(e.values.shape(n)), (Assign(Store(out, i), Lit(0.0)),))
    place = (
        Assign(j, Cast(INDEX, kb.read(idx, plane * count + k))),
        If(Bin("and", j >= 0, j < volume),
           (Assign(Store(out, plane * volume + j), kb.read(x, plane * count + k)),)),
        If(Bin("or", j < 0, j >= volume), (Fail(j, Lit(volume)),)),
    )  # fmt: skip
    body = Loop(plane, Lit(0), kb.extent(xs[:2]), (Loop(k, Lit(0), Lit(count), place),))
    e.kernel(kb, f"b0 = zeros, then b0[each plane's b2] = b1 ({volume} cells a plane)",
             [zeros, body])  # fmt: skip


def _unpool_vjp(ct: Value, out: Value, x: Value, idx: Value, size) -> Value:
    """dx = dy of each plane gathered at the indices."""
    from graphc.ops.gather import gather
    from graphc.ops.shape import reshape

    k = x.ndim - 2
    return reshape(gather(_flat(ct, k), 2, _flat(idx, k)), x.shape)


register(
    OpDef(
        "max_unpool",
        2,
        _infer_max_unpool,
        _max_unpool_ref,
        (_unpool_vjp, None),
        params={"size": (1,)},
        lower=_lower_max_unpool,
        formula="dx = dy gathered at the indices (each of repeated ones gets it); indices: none",
    )
)


def max_unpool(
    x: Value, k: int, indices: Value, kernel_size, stride=None, padding=0, output_size=None
) -> Value:
    """The inverse of max pooling with return_indices: zeros of the unpooled size with each
    value of x at its index in the plane, as PyTorch's max_unpool{k}d (the last of repeated
    indices wins; one outside the plane is an error)."""
    op = f"max_unpool{k}d"
    geo = _geometry(op, x, k, kernel_size, stride, padding, 1)
    if output_size is None:
        size = tuple(
            (n - 1) * s - 2 * p + kk
            for n, s, p, kk in zip(
                x.shape[2:], geo["stride"], geo["padding"], geo["kernel"], strict=True
            )
        )
    else:
        size = tuple(int(d) for d in tuple(output_size)[-k:])
    if not isinstance(indices, Value) or indices.shape != x.shape:
        raise ShapeError(f"{op} at {user_loc()}: indices must be a Value of x's shape {x.shape}")
    if len(size) != k or min(size) < 1:
        raise ShapeError(f"{op} at {user_loc()}: output_size {output_size!r} must give {k} "
                         f"sizes >= 1")  # fmt: skip
    volume = math.prod(size)
    _check_const(indices, 0, volume, unpool_bound(volume), op)
    return apply("max_unpool", x, indices, size=size)


# ---- the public 1-d, 2-d and 3-d functions -------------------------------------------------
def max_pool2d(
    x: Value, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """Max pooling of x [N, C, H, W], as PyTorch's max_pool2d (stride: the kernel's by
    default; padding counts as -inf and is at most half the kernel). NaN propagates; the
    gradient goes to each window's first maximum, or its last NaN, as PyTorch's (with default
    options through the runtime's kernels)."""
    return max_pool(x, 2, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_unpool1d(
    x: Value, indices: Value, kernel_size, stride=None, padding=0, output_size=None
) -> Value:
    return max_unpool(x, 1, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(
    x: Value, indices: Value, kernel_size, stride=None, padding=0, output_size=None
) -> Value:
    return max_unpool(x, 2, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(
    x: Value, indices: Value, kernel_size, stride=None, padding=0, output_size=None
) -> Value:
    return max_unpool(x, 3, indices, kernel_size, stride, padding, output_size)
