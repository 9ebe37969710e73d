"""Adaptive average pooling over 1 to 3 spatial axes, as PyTorch's adaptive_avg_pool1d/2d/3d:
output cell o of an axis of n averages PyTorch's window, cells floor(o n / out) to
ceil((o + 1) n / out) (windows may overlap when out does not divide n).

One op and its gradient op, each the other's VJP (both linear), so `grad(grad(g))` works:
  adaptive_avg_pool(x) <-> adaptive_avg_pool_grad(ct)
The pool sums each window's cells in row-major order and divides the sum by its count; the
gradient adds each window's dy over its count to the window's cells. Both are loops of the
kernel IR, the (n, c) planes shared among threads (the helpers of ops/pool_avg.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphc.codegen.emit import Emit
from graphc.codegen.kir import INDEX, Assign, Cast, Expr, Lit, Store, Var
from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import ShapeMismatch
from graphc.ops._build import apply, float_dtype
from graphc.ops._window import _in_float64
from graphc.ops.pool_avg import _flat, _nest, _planes, _spread
from graphc.ops.registry import OpDef, register


# ---- adaptive_avg_pool and its gradient -------------------------------------------------------
def _adaptive_window(o: Any, n: int, m: int) -> tuple:
    """PyTorch's adaptive window o of m along an axis of n: floor(o n / m) to ceil((o+1) n / m)
    (ints or kernel-IR expressions alike; all are >= 0)."""
    return (o * n) // m, ((o + 1) * n + m - 1) // m


def _check_sizes(op: str, spatial: tuple, sizes: Any) -> None:
    if not (isinstance(sizes, tuple) and len(sizes) == len(spatial) and 1 <= len(sizes) <= 3):
        raise ShapeMismatch(f"{op}: needs 1 to 3 spatial axes and one size for each")
    for d in (*spatial, *sizes):
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise ShapeMismatch(f"{op}: the spatial sizes must be ints >= 1, got {spatial}, "
                                f"{sizes}")  # fmt: skip


def _infer_adaptive(shapes, dtypes, params):
    (x,) = shapes
    _check_sizes("adaptive_avg_pool", tuple(x[2:]), params["sizes"])
    return (*x[:2], *params["sizes"]), float_dtype(dtypes, "adaptive_avg_pool")


def _infer_adaptive_grad(shapes, dtypes, params):
    (ct,), size = shapes, params["size"]
    _check_sizes("adaptive_avg_pool_grad", tuple(ct[2:]), size)
    return (*ct[:2], *size), float_dtype(dtypes, "adaptive_avg_pool_grad")


@_in_float64
def _adaptive_ref(x, sizes):
    y = np.zeros((*x.shape[:2], *sizes), x.dtype)
    for pos in np.ndindex(*sizes):
        box = [_adaptive_window(o, n, m) for o, n, m in zip(pos, x.shape[2:], sizes, strict=True)]
        cells = x[(..., *(slice(lo, hi) for lo, hi in box))]
        total = cells.sum(axis=tuple(range(2, x.ndim)), dtype=x.dtype)
        y[(..., *pos)] = total / x.dtype.type(math.prod(hi - lo for lo, hi in box))
    return y


@_in_float64
def _adaptive_grad_ref(ct, size):
    dx = np.zeros((*ct.shape[:2], *size), ct.dtype)
    for pos in np.ndindex(*ct.shape[2:]):
        box = [_adaptive_window(o, n, m) for o, n, m in zip(pos, size, ct.shape[2:], strict=True)]
        share = ct[(..., *pos)] / ct.dtype.type(math.prod(hi - lo for lo, hi in box))
        dx[(..., *(slice(lo, hi) for lo, hi in box))] += share[(...,) + (None,) * len(size)]
    return dx


def _count(counts: list[Expr], dtype: str) -> Expr:
    count = counts[0]
    for c in counts[1:]:
        count = count * c
    return Cast(dtype, count)


def _lower_adaptive(e: Emit, n: int, args: list[int], params: dict) -> None:
    """Per plane and output position, the sum of its window (row-major) over its count."""
    (x,) = args
    kb = e.builder()
    xs, ys = e.values.shape(x), e.values.shape(n)
    spatial, pooled = xs[2:], ys[2:]
    out, acc = kb.ref(n, write=True), kb.var(e.values.dtype(x))
    plane = Var("c", INDEX)
    outs = [Var(f"r{d}", INDEX) for d in range(len(spatial))]
    cells = [Var(f"q{d}", INDEX) for d in range(len(spatial))]
    box = [_adaptive_window(o, n_, m) for o, n_, m in zip(outs, spatial, pooled, strict=True)]
    at = plane * math.prod(spatial) + _flat(cells, spatial)
    per = (
        Assign(acc, Lit(0.0, acc.dtype)),
        *_nest([(q, lo, hi) for q, (lo, hi) in zip(cells, box, strict=True)],
               (Assign(acc, acc + kb.read(x, at)),)),
        Assign(Store(out, plane * math.prod(pooled) + _flat(outs, pooled)),
               acc / _count([hi - lo for lo, hi in box], acc.dtype)),
    )  # fmt: skip
    body = _nest([(o, Lit(0), Lit(m)) for o, m in zip(outs, pooled, strict=True)], per)
    _planes(e, kb, "b0 = adaptive_avg_pool(b1)", body, _taps(spatial, pooled))


def _lower_adaptive_grad(e: Emit, n: int, args: list[int], params: dict) -> None:
    """Per plane, each window's dy over its count added to its cells, windows in row-major
    order."""
    kb, dtype = e.builder(), e.values.dtype(n)
    spatial, pooled = e.values.shape(n)[2:], e.values.shape(args[0])[2:]

    def windows(outs: list) -> list:
        box = [_adaptive_window(o, n_, m) for o, n_, m in zip(outs, spatial, pooled, strict=True)]
        return [(lo, hi, hi - lo) for lo, hi in box]

    _spread(e, kb, args[0], windows, lambda dy, counts: dy / _count(counts, dtype), False,
            "b0 = adaptive_avg_pool_grad(b1)", _taps(spatial, pooled))  # fmt: skip


def _taps(spatial: tuple, pooled: tuple) -> int:
    """About how many cells a window has."""
    return math.prod(-(-s // m) + 1 for s, m in zip(spatial, pooled, strict=True))


register(
    OpDef(
        "adaptive_avg_pool",
        1,
        _infer_adaptive,
        _adaptive_ref,
        (lambda ct, out, x, sizes: adaptive_avg_pool_grad(ct, x.shape[2:]),),
        params={"sizes": (1,)},
        lower=_lower_adaptive,
        formula="dx = adaptive_avg_pool_grad(dy): dy over each window's count, at its cells",
    )
)
register(
    OpDef(
        "adaptive_avg_pool_grad",
        1,
        _infer_adaptive_grad,
        _adaptive_grad_ref,
        (lambda c, out, ct, size: apply("adaptive_avg_pool", c, sizes=tuple(ct.shape[2:])),),
        params={"size": (1,)},
        lower=_lower_adaptive_grad,
        formula="adaptive_avg_pool_grad is adaptive_avg_pool's adjoint: dct = the pool of dy",
    )
)


# ---- builders ---------------------------------------------------------------------------------
def adaptive_avg_pool(x: Value, output_size: Any) -> Value:
    """Average pooling of x [N, C, *spatial] to `output_size` (None keeps an axis), with
    PyTorch's adaptive windows, as adaptive_avg_pool{1,2,3}d."""
    k = x.ndim - 2
    sizes = [output_size] * k if isinstance(output_size, int | None) else list(output_size)
    if not 1 <= k <= 3 or len(sizes) != k:
        raise ShapeError(
            f"adaptive_avg_pool at {user_loc()}: x must be [N, C, 1 to 3 spatial "
            f"axes] and output_size one size per axis"
        )
    sizes = [n if out is None else out for n, out in zip(x.shape[2:], sizes, strict=True)]
    for n, out in zip(x.shape[2:], sizes, strict=True):
        if not isinstance(n, int) or not isinstance(out, int) or out < 1:
            raise ShapeError(f"adaptive_avg_pool at {user_loc()}: sizes must be ints >= 1")
    if tuple(sizes) == tuple(x.shape[2:]):
        return x
    return apply("adaptive_avg_pool", x, sizes=tuple(int(s) for s in sizes))


def adaptive_avg_pool_grad(ct: Value, size: Any) -> Value:
    """The gradient of adaptive_avg_pool(x) in x of spatial `size`, for cotangent `ct`."""
    return apply("adaptive_avg_pool_grad", ct, size=tuple(int(s) for s in size))


def adaptive_avg_pool1d(x: Value, output_size: Any) -> Value:
    """Average pooling of x [N, C, L] to output_size, as PyTorch's adaptive_avg_pool1d."""
    return adaptive_avg_pool(x, output_size)


def adaptive_avg_pool2d(x: Value, output_size: Any) -> Value:
    """Average pooling of x [N, C, H, W] to output_size (None keeps an axis), as PyTorch's
    adaptive_avg_pool2d."""
    return adaptive_avg_pool(x, output_size)


def adaptive_avg_pool3d(x: Value, output_size: Any) -> Value:
    """Average pooling of x [N, C, D, H, W] to output_size (None keeps an axis), as PyTorch's
    adaptive_avg_pool3d."""
    return adaptive_avg_pool(x, output_size)
