"""Average pooling over 1 to 3 spatial axes with PyTorch's options: avg_pool1d/2d/3d
(ceil_mode, count_include_pad, divisor_override); adaptive pooling: ops/pool_adaptive.py.

One op and its gradient op, each the other's VJP (both linear), so `grad(grad(g))` works:
  avg_pool(x) <-> avg_pool_grad(ct)
avg_pool sums each window's cells inside the input (in row-major order) and multiplies the sum
by 1 / its count (with the padding, but not the part of a ceil_mode window beyond it, or the
input's cells only), or divides it by divisor_override; its gradient adds each window's dy
times that factor to the window's cells, the last window first (each cell then adds its
windows in the order the depthwise convolution these ops replace did: the same bits). Both
are loops of the kernel IR, the (n, c) planes shared among threads. 2-D pooling with default
options keeps the runtime's kernels (ops/pool.py); geometry as for max pooling
(ops/pool_nd.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphc.codegen.emit import Emit, KernelBuilder
from graphc.codegen.kir import (
    INDEX,
    Assign,
    Cast,
    Expr,
    Lit,
    Load,
    Loop,
    Parallel,
    SizeExpr,
    Store,
    Var,
    select,
)
from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import ShapeMismatch, format_shape
from graphc.ops import pool as pool2d  # the runtime's 2-D kernels (and their ops registered)
from graphc.ops._build import apply, float_dtype
from graphc.ops._window import _in_float64
from graphc.ops.pool_nd import _geometry, pooled_size
from graphc.ops.registry import OpDef, register

_AVG = {"kernel": (1,), "stride": (1,), "padding": (0,), "ceil_mode": False,
        "count_include_pad": True, "divisor": None}  # fmt: skip


# ---- geometry ------------------------------------------------------------------------------------
def _avg_out(op: str, spatial: tuple, params) -> tuple[int, ...]:
    """The pooled sizes of `spatial` (ints), the params checked."""
    k = len(params["kernel"])
    if not 1 <= k <= 3 or len(spatial) != k:
        raise ShapeMismatch(f"{op}: needs [N, C, {k} spatial axes] and 1 to 3 of them")
    for name in ("stride", "padding"):
        if len(params[name]) != k:
            raise ShapeMismatch(f"{op}: {name} needs {k} entries")
    d = params["divisor"]
    if d is not None and (not isinstance(d, int) or isinstance(d, bool) or d == 0):
        raise ShapeMismatch(f"{op}: divisor must be None or a nonzero int, got {d!r}")
    if any(not isinstance(n, int) for n in spatial):
        raise ShapeMismatch(f"{op}: only the batch may be symbolic")
    if any(2 * p > kk for p, kk in zip(params["padding"], params["kernel"], strict=True)):
        raise ShapeMismatch(f"{op}: padding {params['padding']} is more than half the kernel")
    g = zip(spatial, params["kernel"], params["stride"], params["padding"], strict=True)
    outs = tuple(pooled_size(n, kk, s, p, 1, params["ceil_mode"]) for n, kk, s, p in g)
    if min(outs) < 1:
        raise ShapeMismatch(f"{op}: the windows do not fit the input {spatial}")
    return outs


def _infer_avg_pool(shapes, dtypes, params):
    (x,) = shapes
    outs = _avg_out("avg_pool", tuple(x[2:]), params)
    return (*x[:2], *outs), float_dtype(dtypes, "avg_pool")


def _infer_avg_pool_grad(shapes, dtypes, params):
    (ct,), size = shapes, params["size"]
    outs = _avg_out("avg_pool_grad", tuple(size), params)
    if tuple(ct[2:]) != outs or len(ct) != len(size) + 2:
        raise ShapeMismatch(f"avg_pool_grad: an input of size {size} pools to {outs}, not "
                            f"{format_shape(ct)}")  # fmt: skip
    return (*ct[:2], *size), float_dtype(dtypes, "avg_pool_grad")


def _window(o: Any, n: int, k: int, s: int, p: int, include_pad: bool) -> tuple:
    """(first cell, one past the last, count) of window o along an axis of n: NumPy ints or
    kernel-IR expressions alike. The count: with the padding but not what a ceil_mode window
    reaches beyond it, or the input's cells only."""
    start = o * s - p
    lo = select(start < 0, 0, start) if isinstance(start, Expr) else max(start, 0)
    hi = select(start + k > n, n, start + k) if isinstance(start, Expr) else min(start + k, n)
    if not include_pad:
        return lo, hi, hi - lo
    if isinstance(start, Expr):
        return lo, hi, select(start + k > n + p, n + p, start + k) - start
    return lo, hi, min(start + k, n + p) - start


# ---- avg_pool ---------------------------------------------------------------------------------
def _factors(shape: tuple, pooled: tuple, p: dict):
    """(output position, the slices of its window's cells, its count or the divisor) of every
    window of an input of spatial `shape`."""
    g = list(zip(shape, p["kernel"], p["stride"], p["padding"], strict=True))
    for pos in np.ndindex(*pooled):
        wins = [_window(o, *a, p["count_include_pad"]) for o, a in zip(pos, g, strict=True)]
        count = p["divisor"] or math.prod(c for *_, c in wins)
        yield pos, tuple(slice(lo, hi) for lo, hi, _ in wins), count


@_in_float64
def _avg_pool_ref(x, **p):
    y = np.zeros((*x.shape[:2], *_avg_out("avg_pool", x.shape[2:], p)), x.dtype)
    for pos, cells, count in _factors(x.shape[2:], y.shape[2:], p):
        total = x[(..., *cells)].sum(axis=tuple(range(2, x.ndim)), dtype=x.dtype)
        y[(..., *pos)] = _scale(total, count, p["divisor"])
    return y


@_in_float64
def _avg_pool_grad_ref(ct, size, **p):
    dx = np.zeros((*ct.shape[:2], *size), ct.dtype)
    for pos, cells, count in _factors(size, ct.shape[2:], p):
        share = _scale(ct[(..., *pos)], count, p["divisor"])
        dx[(..., *cells)] += share[(...,) + (None,) * len(size)]
    return dx


def _scale(total: np.ndarray, count: int, divisor: int | None) -> np.ndarray:
    return total / divisor if divisor else total * (1.0 / count)


def _flat(idx: list[Expr], dims: tuple) -> Expr:
    at = idx[0]
    for i, d in zip(idx[1:], dims[1:], strict=True):
        at = at * d + i
    return at


def _scaled(acc: Expr, counts: list[Expr], params: dict, dtype: str) -> Expr:
    """The window's sum `acc` over its divisor, or times 1 / its count (the reciprocal
    computed in double, as the constant the composition multiplied by)."""
    if params.get("divisor") is not None:
        return acc / Lit(float(params["divisor"]), dtype)
    count = counts[0]
    for c in counts[1:]:
        count = count * c
    return acc * Cast(dtype, Lit(1.0) / Cast("float64", count))


def _planes(e: Emit, kb: KernelBuilder, doc: str, body: tuple, taps: int) -> None:
    """A kernel running `body` for every (n, c) plane `c` of the node, shared among threads."""
    ys = e.values.shape(e.n)
    plane = Var("c", INDEX)
    work = kb.extent(ys) * Lit(max(taps, 1))
    loop = Parallel(plane, kb.extent(ys[:2]), Lit(1), work, body)
    e.kernel(kb, doc, [loop], work=SizeExpr.of([*ys, max(taps, 1)]), alone=False)


def _nest(outer: list[tuple[Var, Expr, Expr]], body: tuple) -> tuple:
    for v, lo, hi in reversed(outer):
        body = (Loop(v, lo, hi, body),)
    return body


def _lower_avg_pool(e: Emit, n: int, args: list[int], params: dict) -> None:
    """Per plane and output position: the sum of the window's cells inside the input, in
    row-major order, then scaled (_scaled)."""
    (x,) = args
    kb = e.builder()
    xs, ys = e.values.shape(x), e.values.shape(n)
    spatial, pooled, kernel = xs[2:], ys[2:], params["kernel"]
    out, acc = kb.ref(n, write=True), kb.var(e.values.dtype(x))
    plane = Var("c", INDEX)
    outs = [Var(f"r{a}", INDEX) for a in range(len(spatial))]
    cells = [Var(f"q{a}", INDEX) for a in range(len(spatial))]
    g = zip(outs, spatial, kernel, params["stride"], params["padding"], strict=True)
    wins = [_window(o, m, k, s, p, params["count_include_pad"]) for o, m, k, s, p in g]
    at = plane * math.prod(spatial) + _flat(cells, spatial)
    add = (Assign(acc, acc + kb.read(x, at)),)
    per_out = (
        Assign(acc, Lit(0.0, acc.dtype)),
        *_nest([(q, lo, hi) for q, (lo, hi, _) in zip(cells, wins, strict=True)], add),
        Assign(Store(out, plane * math.prod(pooled) + _flat(outs, pooled)),
               _scaled(acc, [c for *_, c in wins], params, acc.dtype)),
    )  # fmt: skip
    body = _nest([(o, Lit(0), Lit(m)) for o, m in zip(outs, pooled, strict=True)], per_out)
    _planes(e, kb, f"b0 = avg_pool(b1), kernel {kernel}", body, math.prod(kernel))


def _spread(e: Emit, kb: KernelBuilder, ct: int, windows, scale, reverse: bool, doc: str,
            taps: int) -> None:  # fmt: skip
    """The gradient of a pooling: per plane, zeros, then each window's dy, scaled by
    `scale(dy, counts)`, added to its cells; windows `windows(outputs)` (first cell, one past
    the last, count per axis) in row-major order of the outputs, or `reverse`d."""
    n = e.n
    cs, xs = e.values.shape(ct), e.values.shape(n)
    spatial, pooled = xs[2:], cs[2:]
    out, dy = kb.ref(n, write=True), kb.var(e.values.dtype(ct))
    plane, i = Var("c", INDEX), Var("i", INDEX)
    steps = [Var(f"u{a}", INDEX) for a in range(len(spatial))]
    cells = [Var(f"q{a}", INDEX) for a in range(len(spatial))]
    outs = [(m - 1) - u if reverse else u for u, m in zip(steps, pooled, strict=True)]
    wins = windows(outs)
    bounds = [(kb.var(INDEX, "lo"), kb.var(INDEX, "hi")) for _ in wins]
    at = plane * math.prod(spatial) + _flat(cells, spatial)
    add = (Assign(Store(out, at), Load(out, at) + dy),)
    per_window = (
        Assign(dy, scale(kb.read(ct, plane * math.prod(pooled) + _flat(outs, pooled)),
                         [c for *_, c in wins])),
        *(Assign(v, w) for (lo, hi), (wlo, whi, _) in zip(bounds, wins, strict=True)
          for v, w in ((lo, wlo), (hi, whi))),
        *_nest([(q, lo, hi) for q, (lo, hi) in zip(cells, bounds, strict=True)], add),
    )  # fmt: skip
    zeros = Loop(
        i,
        Lit(0),
        Lit(math.prod(spatial)),
        (Assign(Store(out, plane * math.prod(spatial) + i), Lit(0.0, dy.dtype)),),
    )
    body = (zeros, *_nest([(u, Lit(0), Lit(m)) for u, m in zip(steps, pooled, strict=True)],
                          per_window))  # fmt: skip
    _planes(e, kb, doc, body, taps)


def _lower_avg_pool_grad(e: Emit, n: int, args: list[int], params: dict) -> None:
    """Per plane, each window's dy times its factor (_scaled) added to its cells, the last
    window first (so a cell adds its windows in the order the convolution did)."""
    kb, kernel, geo = e.builder(), params["kernel"], (params["stride"], params["padding"])
    spatial, dtype = e.values.shape(n)[2:], e.values.dtype(n)

    def windows(outs: list) -> list:
        g = zip(outs, spatial, kernel, *geo, strict=True)
        return [_window(o, m, k, s, p, params["count_include_pad"]) for o, m, k, s, p in g]

    _spread(e, kb, args[0], windows, lambda dy, counts: _scaled(dy, counts, params, dtype), True,
            f"b0 = avg_pool_grad(b1), kernel {kernel}", math.prod(kernel))  # fmt: skip


def _without(params: dict, key: str) -> dict:
    return {k: v for k, v in params.items() if k != key}


# y = A x with A linear: dx = A^T dy (avg_pool_grad), and the VJP of A^T is A.
register(
    OpDef(
        "avg_pool",
        1,
        _infer_avg_pool,
        _avg_pool_ref,
        (lambda ct, out, x, **p: apply("avg_pool_grad", ct, size=tuple(x.shape[2:]), **p),),
        params=_AVG,
        lower=_lower_avg_pool,
        formula="dx = avg_pool_grad(dy): dy times each window's factor, at its cells",
    )
)
register(
    OpDef(
        "avg_pool_grad",
        1,
        _infer_avg_pool_grad,
        _avg_pool_grad_ref,
        (lambda c, out, ct, **p: apply("avg_pool", c, **_without(p, "size")),),
        params={**_AVG, "size": (1,)},
        lower=_lower_avg_pool_grad,
        formula="avg_pool_grad is avg_pool's adjoint: dct = avg_pool(dy)",
    )
)


# ---- builders ---------------------------------------------------------------------------------
def avg_pool(
    x: Value,
    k: int,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Value:
    """Average pooling over the last k spatial axes of x, as PyTorch's avg_pool{k}d."""
    op = f"avg_pool{k}d"
    geo = _geometry(op, x, k, kernel_size, stride, padding, 1)
    kernel, stride, padding = geo["kernel"], geo["stride"], geo["padding"]
    d = divisor_override
    if d is not None and (isinstance(d, bool) or not isinstance(d, int | np.integer) or d == 0):
        raise ShapeError(f"{op} at {user_loc()}: divisor_override must be a nonzero int")
    if k == 2 and not ceil_mode and count_include_pad and d is None:
        return pool2d.avg_pool2d(x, kernel, stride, padding)
    return apply("avg_pool", x, kernel=kernel, stride=stride, padding=padding,
                 ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
                 divisor=None if d is None else int(d))  # fmt: skip


def avg_pool1d(
    x: Value, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True
) -> Value:
    """Average pooling of x [N, C, L], as PyTorch's avg_pool1d."""
    return avg_pool(x, 1, kernel_size, stride, padding, ceil_mode, count_include_pad)


def avg_pool2d(
    x: Value,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
) -> Value:
    """Average pooling of x [N, C, H, W], as PyTorch's avg_pool2d: each window's sum over its
    count (with the zero padding, unless count_include_pad is False) or divisor_override."""
    return avg_pool(
        x, 2, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


def avg_pool3d(
    x: Value,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
) -> Value:
    """Average pooling of x [N, C, D, H, W], as PyTorch's avg_pool3d."""
    return avg_pool(
        x, 3, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
