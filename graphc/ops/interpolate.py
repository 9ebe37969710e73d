"""Resampling ops over values [N, C, *spatial] with 1 to 3 spatial axes, as PyTorch's upsample
kernels (the public `interpolate` is in ops/resample.py):

  interpolate_nearest(x)        each output the input at its nearest source (nearest, or with
                                `exact` nearest-exact);
  interpolate_linear(x)         each output the 2^k neighbours of its source, weighted (linear,
                                bilinear, trilinear; `align_corners` either way);
  interpolate_*_grad(ct)        their adjoints: each output's cotangent sent back to its sources
                                with its weights.

All four are linear in their operand, so the set is closed under differentiation: the VJP of
an op is its twin, `grad(grad(g))` works. The batch N (and C) may be symbols; the spatial sizes
are ints. Params: `size` (the output's spatial sizes), `scales` (PyTorch's scale factor per
axis, or None: n_in / n_out is used), and the gradient ops' `input_size`.

Index and weight arithmetic is PyTorch's, per axis: an axis whose size does not change is
copied; otherwise the source coordinate of output o is, for nearest, (o or o + 0.5) * ratio in
float32, for linear o * ratio (align_corners) or max(ratio (o + 0.5) - 0.5, 0) in the data's
precision, from which come the index (truncated, at most n_in - 1) and the weights. Values
are added as PyTorch's sums group: the last axis's pair first. The gradients add, per plane
and output in row-major order, the cotangent times the product of its corner's weights
(multiplied from the first axis on) to each corner in turn, on one thread per plane: the same
bits for any number of threads.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from graphc.codegen.emit import Emit
from graphc.codegen.kir import (
    INDEX,
    Assign,
    Cast,
    Expr,
    Lit,
    Load,
    Loop,
    Parallel,
    Scratch,
    SizeExpr,
    Store,
    Var,
    call,
    select,
)
from graphc.ir.graph import Value
from graphc.ir.shapes import ShapeMismatch, format_shape
from graphc.ops._build import apply, float_dtype
from graphc.ops.registry import OpDef, register


# ---- per-axis arithmetic ------------------------------------------------------------------------
def nearest_ratio(n_in: int, n_out: int, scale: float | None) -> np.float32:
    """PyTorch's float32 step of the source coordinate per output position (nearest modes)."""
    return np.float32(1.0 / scale if scale is not None and scale > 0 else n_in / n_out)


def linear_ratio(n_in: int, n_out: int, scale: float | None, align: bool, dtype: str):
    """PyTorch's step of the source coordinate per output position (linear modes), in dtype."""
    t = np.dtype(dtype).type
    if align:
        return t((n_in - 1) / (n_out - 1)) if n_out > 1 else t(0)
    return t(1.0 / scale) if scale is not None and scale > 0 else t(n_in / n_out)


def nearest_index(n_in: int, n_out: int, scale: float | None, exact: bool) -> np.ndarray:
    """The source index of each output position (nearest, or nearest-exact)."""
    if n_in == n_out:
        return np.arange(n_out)
    s, dst = nearest_ratio(n_in, n_out, scale), np.arange(n_out, dtype=np.float32)
    src = (dst + np.float32(0.5)) * s if exact else dst * s
    return np.minimum(src.astype(np.int64), n_in - 1)


def linear_weights(n_in: int, n_out: int, scale: float | None, align: bool, dtype: str):
    """The two source indices of each output position and their weights, or None for an axis
    that is copied."""
    if n_in == n_out:
        return None
    t = np.dtype(dtype).type
    s, dst = linear_ratio(n_in, n_out, scale, align, dtype), np.arange(n_out).astype(dtype)
    src = dst * s if align else np.maximum(s * (dst + t(0.5)) - t(0.5), t(0))
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = (src - i0.astype(dtype)).astype(dtype)
    return i0, i1, (t(1) - w1).astype(dtype), w1


def _taps(op: str, n_in: int, n_out: int, scale, flag: bool, dtype: str) -> list[tuple]:
    """Along one axis, the (index array, weight array or None) of each source an output reads."""
    if op.startswith("interpolate_nearest"):
        return [(nearest_index(n_in, n_out, scale, flag), None)]
    w = linear_weights(n_in, n_out, scale, flag, dtype)
    return [(np.arange(n_out), None)] if w is None else [(w[0], w[2]), (w[1], w[3])]


# ---- shape rules -------------------------------------------------------------------------------
def _sizes(op: str, params, key: str, k: int) -> tuple[int, ...]:
    v = params[key]
    if not (isinstance(v, tuple) and len(v) == k and all(type(d) is int and d >= 1 for d in v)):
        raise ShapeMismatch(f"{op}: {key} must be {k} int(s) >= 1, got {v!r}")
    return v


def _infer(op: str, grad: bool):
    def infer(shapes, dtypes, params):
        (x,) = shapes
        k = len(x) - 2
        if not 1 <= k <= 3:
            raise ShapeMismatch(f"{op}: the operand must be [N, C, 1 to 3 spatial axes], got "
                                f"{format_shape(x)}")  # fmt: skip
        size = _sizes(op, params, "size", k)
        scales = params["scales"]
        if not (isinstance(scales, tuple) and len(scales) == k and all(
            s is None or (isinstance(s, float | int) and s > 0) for s in scales
        )):  # fmt: skip
            raise ShapeMismatch(f"{op}: scales must be {k} positive number(s) or None")
        if grad:
            if tuple(x[2:]) != size:
                raise ShapeMismatch(f"{op}: the cotangent's spatial sizes {x[2:]} are not {size}")
            return (*x[:2], *_sizes(op, params, "input_size", k)), float_dtype(dtypes, op)
        if not all(type(d) is int and d >= 1 for d in x[2:]):
            raise ShapeMismatch(f"{op}: the spatial sizes of {format_shape(x)} must be ints >= 1")
        return (*x[:2], *size), float_dtype(dtypes, op)

    return infer


# ---- references --------------------------------------------------------------------------------
def _flag(params: dict) -> bool:
    return params.get("exact", params.get("align_corners"))


def _forward_ref(op: str):
    def ref(x: np.ndarray, size, scales, **p) -> np.ndarray:
        for a in reversed(range(len(size))):  # the last axis first, as PyTorch's sums group
            axis, taps = 2 + a, _taps(op, x.shape[2 + a], size[a], scales[a], _flag(p), x.dtype)
            shape = (size[a],) + (1,) * (x.ndim - 1 - axis)
            terms = [np.take(x, i, axis) if w is None else np.take(x, i, axis) * w.reshape(shape)
                     for i, w in taps]  # fmt: skip
            x = terms[0] if len(terms) == 1 else terms[0] + terms[1]
        return np.ascontiguousarray(x)

    return ref


def _grad_ref(op: str):
    def ref(ct: np.ndarray, size, scales, input_size, **p) -> np.ndarray:
        """Per plane, each output's cotangent times its corner's weights (multiplied from the
        first axis on) added to each corner in turn, outputs in row-major order."""
        k, planes = len(size), math.prod(ct.shape[:2])
        axes = [_taps(op, n, m, s, _flag(p), ct.dtype)
                for n, m, s in zip(input_size, size, scales, strict=True)]  # fmt: skip
        at, weights = [], []
        for corner in itertools.product(*axes):
            flat, w = np.zeros(size, np.int64), None
            for a, (i, wa) in enumerate(corner):
                along = (-1,) + (1,) * (k - 1 - a)
                flat = flat * input_size[a] + i.reshape(along)
                if wa is not None:
                    w = wa.reshape(along) if w is None else w * wa.reshape(along)
            at.append(flat)
            weights.append(np.ones(size, ct.dtype) if w is None else np.broadcast_to(w, size))
        at_ = np.stack(at, -1).reshape(-1)
        g = np.repeat(ct.reshape(planes, math.prod(size)), len(at), 1)
        terms = np.stack(weights, -1).reshape(1, -1) * g
        dx = np.zeros((planes, math.prod(input_size)), ct.dtype)
        np.add.at(dx.T, at_, terms.T)  # in the order of at_
        return dx.reshape(*ct.shape[:2], *input_size)

    return ref


# ---- lowering: one kernel of loops, its planes shared among threads ----------------------------
# With 2 or 3 axes, each plane first tabulates the last axis's sources and weights (arrays local
# to the thread, of up to TABLE positions), which the innermost loop then reads instead of
# computing them again for every row. Measured (float32, one thread, 8 x 16 planes of 64 x 64
# to 128 x 128, bilinear; best of 15 interleaved on a loaded machine; milliseconds, forward /
# value_and_grad): computed in the innermost loop 11.0 / 21.3, tabulated 6.14 / 11.7.
TABLE = 4096


def _lit(v: float, dtype: str) -> Lit:
    return Lit(float(v), "float32") if dtype == "float32" else Lit(float(v))


def _axis(kb, op: str, o: Var, n_in: int, n_out: int, scale, flag: bool, dtype: str):
    """(statements computing an axis's sources for output position o, [(index, weight or
    None) of each source]) in kernel IR: `nearest_index` and `linear_weights` per position."""
    if n_in == n_out:
        return [], [(o, None)]
    if op.startswith("interpolate_nearest"):
        f = Cast("float32", o) + Lit(0.5, "float32") if flag else Cast("float32", o)
        i = kb.var(INDEX, "i")
        s = Lit(float(nearest_ratio(n_in, n_out, scale)), "float32")
        return [Assign(i, call("min", Cast(INDEX, f * s), Lit(n_in - 1)))], [(i, None)]
    src, i0, i1, w0, w1 = (kb.var(dtype), kb.var(INDEX, "i"), kb.var(INDEX, "i"), kb.var(dtype),
                           kb.var(dtype))  # fmt: skip
    s, dst = _lit(linear_ratio(n_in, n_out, scale, flag, dtype), dtype), Cast(dtype, o)
    at = [Assign(src, dst * s)] if flag else [
        Assign(src, s * (dst + _lit(0.5, dtype)) - _lit(0.5, dtype)),
        Assign(src, select(src < _lit(0, dtype), _lit(0, dtype), src)),
    ]  # fmt: skip
    at += [
        Assign(i0, call("min", Cast(INDEX, src), Lit(n_in - 1))),
        Assign(i1, call("min", i0 + 1, Lit(n_in - 1))),
        Assign(w1, src - Cast(dtype, i0)),
        Assign(w0, _lit(1, dtype) - w1),
    ]
    return at, [(i0, w0), (i1, w1)]


def _flat(idx: list, sizes: tuple) -> Expr:
    out = idx[0]
    for i, n in zip(idx[1:], sizes[1:], strict=True):
        out = out * n + i
    return out


def _lower(e: Emit, n: int, args: list[int], params: dict) -> None:
    """Per plane (shared among threads), loops over the output's positions; the forward ops
    read their sources, the gradient ops add to them (the plane zeroed first)."""
    op, dtype = e.values.G.nodes[n]["op"], e.values.dtype(n)
    grad = op.endswith("_grad")
    (a,) = args
    kb = e.builder()
    size = params["size"]
    k, src = len(size), params["input_size"] if grad else e.values.shape(a)[2:]
    vin, vout = math.prod(src), math.prod(size)
    x, y = (kb.ref(n, write=True), kb.ref(a)) if grad else (kb.ref(a), kb.ref(n, write=True))
    p = Var("p", INDEX)
    outs = [Var(f"o{j}", INDEX) for j in range(k)]
    setup, taps = [], []
    for j in range(k):
        at, t = _axis(kb, op, outs[j], src[j], size[j], params["scales"][j], _flag(params), dtype)
        setup.append(at)
        taps.append(t)
    tables: list = []
    if k > 1 and setup[-1] and size[-1] <= TABLE:  # the last axis's sources: a table per plane
        o, cols = outs[-1], []
        for j, (i, w) in enumerate(taps[-1]):
            cols.append((Scratch(f"at{j}", INDEX, size[-1]), i))
            if w is not None:
                cols.append((Scratch(f"w{j}", dtype, size[-1]), w))
        fill = [Assign(Store(col, o), v) for col, v in cols]
        tables = [Loop(o, Lit(0), Lit(size[-1]), (*setup[-1], *fill))]
        read = {v: Load(col, o) for col, v in cols}
        setup[-1], taps[-1] = [], [(read[i], w if w is None else read[w]) for i, w in taps[-1]]
    out_at = p * vout + _flat(outs, size)
    if not grad:  # the sources' weighted sum, the last axis's pair innermost

        def value(j: int, idx: list) -> Expr:
            if j == k:
                return Load(x, p * vin + _flat(idx, src))
            terms = [value(j + 1, [*idx, i]) if w is None else value(j + 1, [*idx, i]) * w
                     for i, w in taps[j]]  # fmt: skip
            return terms[0] if len(terms) == 1 else terms[0] + terms[1]

        body: list = [Assign(Store(y, out_at), value(0, []))]
    else:  # the cotangent times each corner's weights added to that corner, corners in order
        g = kb.var(dtype)
        body = [Assign(g, Load(y, out_at))]
        for corner in itertools.product(*taps):
            weights = [w for _, w in corner if w is not None]
            term: Expr = g
            if weights:
                w = weights[0]
                for v in weights[1:]:
                    w = w * v
                term = w * g
            at = p * vin + _flat([i for i, _ in corner], src)
            body.append(Assign(Store(x, at), Load(x, at) + term))
    for j in reversed(range(k)):
        body = [Loop(outs[j], Lit(0), Lit(size[j]), (*setup[j], *body))]
    body = [*tables, *body]
    if grad:
        z = Var("z", INDEX)
        body = [Loop(z, Lit(0), Lit(vin), (Assign(Store(x, p * vin + z), _lit(0, dtype)),)),
                *body]  # fmt: skip
    planes, work = kb.extent(e.values.shape(n)[:2]), [*e.values.shape(n)[:2], vout * 2**k]
    doc = f"b0 = {op}(b1) of spatial size {src if grad else size}, one plane at a time"
    par = Parallel(p, planes, Lit(1), kb.extent(work), tuple(body))
    e.kernel(kb, doc, [par], work=SizeExpr.of(work), alone=False)


# ---- the ops ------------------------------------------------------------------------------------
_NEAREST = {"size": (1,), "scales": (None,), "exact": False}
_LINEAR = {"size": (1,), "scales": (None,), "align_corners": False}


def _register(op: str, params: dict, formula: str) -> None:
    grad = f"{op}_grad"
    # d op(x) = op_grad(dy) (the adjoint); d op_grad(ct) = op(dy)
    register(
        OpDef(
            op,
            1,
            _infer(op, False),
            _forward_ref(op),
            (lambda ct, out, x, **p: apply(grad, ct, input_size=tuple(x.shape[2:]), **p),),
            params=params,
            lower=_lower,
            formula=f"dx = {grad}(dy): {formula}",
        )
    )
    register(
        OpDef(
            grad,
            1,
            _infer(grad, True),
            _grad_ref(grad),
            (lambda c, out, ct, input_size, **p: apply(op, c, **p),),
            params={**params, "input_size": (1,)},
            lower=_lower,
            formula=f"dct = {op}(dy)",
        )
    )


_register("interpolate_nearest", _NEAREST, "dy added at each output's source")
_register("interpolate_linear", _LINEAR, "dy times each source's weight added there")


def interpolate_nearest(x: Value, size: tuple, scales: tuple, exact: bool = False) -> Value:
    """x [N, C, *spatial] at `size` by nearest (or nearest-exact) neighbours; `scales`: PyTorch's
    scale factor (or None) per axis."""
    return apply("interpolate_nearest", x, size=tuple(size), scales=tuple(scales), exact=exact)


def interpolate_linear(x: Value, size: tuple, scales: tuple, align_corners: bool = False) -> Value:
    """x [N, C, *spatial] at `size` by linear interpolation along each axis; `scales`: PyTorch's
    scale factor (or None) per axis."""
    return apply("interpolate_linear", x, size=tuple(size), scales=tuple(scales),
                 align_corners=align_corners)  # fmt: skip
