"""Scans along an axis: cumsum, cumprod, logcumsumexp, the indices of cummax and cummin, and
two ops their gradients are made of: `shift` (along an axis, filling) and `linrec`, the
first-order linear recurrence y_k = b_k + a_k y_(k-1).

Each may run forward or in reverse (from the end of the axis). The gradient of cumsum is a
reverse cumsum; cumprod's is exact with zeros in x: d/dx_j sum_k c_k P_k, with P the products,
is (the product of x before j) times S_j, S_j = c_j + x_(j+1) S_(j+1) (a reverse linrec);
linrec's own gradient is a linrec the other way, so the set is closed under differentiation.
cummax and cummin are a gather of x at their indices (ops/gather.py), which routes the gradient
to the element each running extreme came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.codegen.emit import Emit
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
    Store,
    Var,
    call,
    select,
)
from graphc.ir.graph import Value
from graphc.ir.shapes import ShapeMismatch
from graphc.ops._axis import AxisView, loops
from graphc.ops._build import apply, float_dtype
from graphc.ops.reduce import axes_of
from graphc.ops.registry import OpDef, register


def _axis(op: str, shape: tuple, params) -> int:
    axis = params["axis"]
    if not isinstance(axis, int) or isinstance(axis, bool) or not 0 <= axis < len(shape):
        raise ShapeMismatch(f"{op}: axis {axis!r} is not an axis of a {len(shape)}-d value")
    return axis


def _infer_scan(op: str):
    def infer(shapes, dtypes, params):
        _axis(op, shapes[0], params)
        if any(s != shapes[0] for s in shapes[1:]):
            raise ShapeMismatch(f"{op}: operands of different shapes")
        return shapes[0], float_dtype(dtypes, op)

    return infer


def _along(x: np.ndarray, axis: int, reverse: bool) -> np.ndarray:
    return np.flip(x, axis) if reverse else x


def _scan_ref(fn):
    """A NumPy scan applied from the end of the axis when `reverse`."""

    def ref(x: np.ndarray, axis: int, reverse: bool) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.ascontiguousarray(_along(fn(_along(x, axis, reverse), axis), axis, reverse))

    return ref


def _scan_kernel(e: Emit, n: int, x: int, params: dict, first, step, doc: str,
                 other: int | None = None) -> None:  # fmt: skip
    """A kernel over out = scan(x) along the axis: out[k0] = first(x[k0]), then each later
    element out[k] = step(out[previous], x[k]) (and `other`'s element at k, for linrec), in
    the order of the axis (from its end when reversed)."""
    kb = e.builder()
    v = AxisView(kb, e.values.shape(n), params["axis"])
    out = kb.ref(n, write=True)
    rev = params["reverse"]

    def pos(k: Expr) -> Expr:
        return (v.n - 1) - k if rev else k

    def args(o, k, i):
        at = v.at(o, pos(k), i)
        got = [kb.read(x, at)]
        return (got + [kb.read(other, at)]) if other is not None else got

    def head(o, i):
        return [Assign(Store(out, v.at(o, pos(Lit(0)), i)), first(*args(o, Lit(0), i)))]

    k = Var("k", INDEX)

    def rest(o, i):
        at, prev = v.at(o, pos(k), i), v.at(o, pos(k - 1), i)
        return [
            Loop(k, Lit(1), v.n, (Assign(Store(out, at), step(Load(out, prev), *args(o, k, i))),))
        ]

    body = [If(v.n > 0, tuple(loops([("o", v.outer), ("i", v.inner)], head)))]
    body += loops([("o", v.outer), ("i", v.inner)], rest)
    e.kernel(kb, f"b0 = {doc} along axis {params['axis']}" + (", reversed" if rev else ""), body)


_SCAN = {"axis": 0, "reverse": False}


# ---- cumsum, cumprod ---------------------------------------------------------------------------
register(
    OpDef(
        "cumsum",
        1,
        _infer_scan("cumsum"),
        _scan_ref(np.cumsum),
        (lambda ct, out, x, axis, reverse: cumsum(ct, axis, reverse=not reverse),),
        params=_SCAN,
        lower=lambda e, n, a, p: _scan_kernel(
            e, n, a[0], p, lambda x: x, lambda s, x: s + x, "cumsum(b1)"
        ),
        formula="d cumsum(x) = the cumsum of dy from the other end",
    )
)


def _cumprod_vjp(ct, out, x, axis, reverse):
    # dx_j = (product before j) S_j, S_j = c_j + x_(j+1) S_(j+1) (before/after in scan order)
    step = -1 if reverse else 1
    before = shift(out, axis, step, 1.0)
    s = linrec(shift(x, axis, -step, 0.0), ct, axis, reverse=not reverse)
    return before * s


register(
    OpDef(
        "cumprod",
        1,
        _infer_scan("cumprod"),
        _scan_ref(np.cumprod),
        (_cumprod_vjp,),
        params=_SCAN,
        lower=lambda e, n, a, p: _scan_kernel(
            e, n, a[0], p, lambda x: x, lambda s, x: s * x, "cumprod(b1)"
        ),
        formula="d cumprod(x)_k = sum_j<=k (product of x_i, i <= k, i != j) dx_j",
    )
)


# ---- linrec: y_k = b_k + a_k y_(k-1) ------------------------------------------------------------
def _linrec_ref(a: np.ndarray, b: np.ndarray, axis: int, reverse: bool) -> np.ndarray:
    a, b = _along(a, axis, reverse), _along(b, axis, reverse)
    y = np.empty_like(b)
    prev = np.zeros_like(np.take(b, 0, axis)) if b.shape[axis] else None
    for k in range(b.shape[axis]):
        prev = np.take(b, k, axis) + np.take(a, k, axis) * prev
        idx = [slice(None)] * b.ndim
        idx[axis] = k
        y[tuple(idx)] = prev
    return np.ascontiguousarray(_along(y, axis, reverse))


def _linrec_vjp(port: int):
    def rule(ct, out, a, b, axis, reverse):
        step = -1 if reverse else 1  # z_k = c_k + a_(k+1) z_(k+1): the recurrence reversed
        z = linrec(shift(a, axis, -step, 0.0), ct, axis, reverse=not reverse)
        return z if port == 1 else z * shift(out, axis, step, 0.0)

    return rule


register(
    OpDef(
        "linrec",
        2,
        _infer_scan("linrec"),
        _linrec_ref,
        (_linrec_vjp(0), _linrec_vjp(1)),
        params=_SCAN,
        lower=lambda e, n, a, p: _scan_kernel(
            e, n, a[0], p, lambda a, b: b, lambda y, a, b: b + a * y, "linrec(b1, b2)", other=a[1]
        ),
        formula="y = b + a shift(y): db = the recurrence reversed over dy, da = db shift(y)",
    )
)


# ---- shift: along an axis, filling -------------------------------------------------------------
def _infer_shift(shapes, dtypes, params):
    _axis("shift", shapes[0], params)
    if not isinstance(params["by"], int) or isinstance(params["by"], bool):
        raise ShapeMismatch(f"shift: by must be an int, got {params['by']!r}")
    return shapes[0], float_dtype(dtypes, "shift")


def _shift_ref(x: np.ndarray, axis: int, by: int, fill: float) -> np.ndarray:
    out = np.full_like(x, fill)
    n = x.shape[axis]
    src = [slice(None)] * x.ndim
    dst = [slice(None)] * x.ndim
    src[axis] = slice(max(0, -by), max(0, n - by))
    dst[axis] = slice(max(0, by), max(0, n + by))
    out[tuple(dst)] = x[tuple(src)]
    return out


def _lower_shift(e: Emit, n: int, args: list[int], params: dict) -> None:
    """out[k] = x[k - by] where that is inside the axis, else fill."""
    (x,) = args
    kb = e.builder()
    v = AxisView(kb, e.values.shape(n), params["axis"])
    out = kb.ref(n, write=True)
    by = params["by"]

    def body(o, k, i):
        src = k - by
        inside = Bin("and", src >= 0, src < v.n)
        safe = select(inside, src, Lit(0))  # an index read only where it is inside
        read = kb.read(x, v.at(o, safe, i))
        return [Assign(Store(out, v.at(o, k, i)), select(inside, read, Lit(float(params["fill"]))))]

    doc = f"b0 = b1 shifted by {by} along axis {params['axis']}, filled with {params['fill']}"
    e.kernel(kb, doc, loops([("o", v.outer), ("k", v.n), ("i", v.inner)], body))


register(
    OpDef(
        "shift",
        1,
        _infer_shift,
        _shift_ref,
        (lambda ct, out, x, axis, by, fill: shift(ct, axis, -by, 0.0),),
        params={"axis": 0, "by": 1, "fill": 0.0},
        lower=_lower_shift,
        formula="d shift(x, by) = shift(dy, -by) filled with 0",
    )
)


# ---- logcumsumexp ------------------------------------------------------------------------------
def _log_add_exp(a: Expr, b: Expr) -> Expr:
    """log(exp(a) + exp(b)) as PyTorch's _log_add_exp_helper: NaN in b propagates, two equal
    infinities give themselves."""
    lo = select(b.ne(b), b, select(b < a, b, a))  # std::min(a, b), std::max(a, b)
    hi = select(b.ne(b), b, select(a < b, b, a))
    general = call("log1p", call("exp", lo - hi)) + hi
    special = Bin("and", lo.eq(hi), call("fabs", lo).eq(float("inf")))
    return select(special, a, general)


def _logcumsumexp_np(x: np.ndarray, axis: int) -> np.ndarray:
    out = np.empty_like(x)
    acc = None
    for k in range(x.shape[axis]):
        v = np.take(x, k, axis)
        if acc is None:
            acc = v.copy()
        else:
            lo = np.where(np.isnan(v), v, np.minimum(acc, v))
            hi = np.where(np.isnan(v), v, np.maximum(acc, v))
            special = (lo == hi) & np.isinf(lo)
            acc = np.where(special, acc, np.log1p(np.exp(lo - hi)) + hi)
        idx = [slice(None)] * x.ndim
        idx[axis] = k
        out[tuple(idx)] = acc
    return out


def _logcumsumexp_vjp(ct, out, x, axis, reverse):
    # dx_j = sum_(k >= j) dy_k exp(x_j - y_k) = exp(x_j - y_j) T_j, T_j = dy_j + exp(y_j -
    # y_(j+1)) T_(j+1): each exponent <= 0 (y grows along the scan), so nothing overflows, and
    # linear in dy, as forward mode needs (the exponent of the first element scanned, which
    # linrec never uses, is capped at 0 too). Equal neighbours decay by 1, infinite ones too
    # (inf - inf): past a +inf, exp(x_j - inf) = 0 then stays 0, as PyTorch's.
    from graphc.ops.elementwise import equal, exp, minimum, where

    step = -1 if reverse else 1
    before = shift(out, axis, -step, 0.0)
    decay = exp(minimum(where(equal(out, before), 0.0, out - before), 0.0))
    return exp(x - out) * linrec(decay, ct, axis, reverse=not reverse)


register(
    OpDef(
        "logcumsumexp",
        1,
        _infer_scan("logcumsumexp"),
        _scan_ref(_logcumsumexp_np),
        (_logcumsumexp_vjp,),
        params=_SCAN,
        lower=lambda e, n, a, p: _scan_kernel(
            e, n, a[0], p, lambda x: x, _log_add_exp, "logcumsumexp(b1)"
        ),
        formula="d logcumsumexp(x)_j = sum_(k >= j) exp(x_j - y_k) dy_k",
    )
)


# ---- cumarg: the indices of cummax and cummin --------------------------------------------------
def _infer_cumarg(shapes, dtypes, params):
    _axis("cumarg", shapes[0], params)
    if dtypes[0] == "bool":
        raise ShapeMismatch("cumarg takes numbers, got bool")
    return shapes[0], "int64"


def _takes(v, best, largest: bool, floats: bool):
    """Does a running extreme move to value v (PyTorch's rule: a later equal value takes it,
    and NaN takes it and keeps it)?"""
    if floats:
        beats = np.greater_equal(v, best) if largest else np.less_equal(v, best)
        return np.isnan(v) | (~np.isnan(best) & beats)
    return v >= best if largest else v <= best


def _cumarg_ref(x: np.ndarray, axis: int, largest: bool) -> np.ndarray:
    out = np.zeros(x.shape, np.int64)
    floats = x.dtype.kind == "f"
    best = idx = None
    for k in range(x.shape[axis]):
        v = np.take(x, k, axis)
        if best is None:
            best, idx = v.copy(), np.zeros(v.shape, np.int64)
        else:
            with np.errstate(invalid="ignore"):
                hit = _takes(v, best, largest, floats)
            best, idx = np.where(hit, v, best), np.where(hit, k, idx)
        sel = [slice(None)] * x.ndim
        sel[axis] = k
        out[tuple(sel)] = idx
    return out


def _lower_cumarg(e: Emit, n: int, args: list[int], params: dict) -> None:
    (x,) = args
    kb = e.builder()
    v = AxisView(kb, e.values.shape(n), params["axis"])
    out = kb.ref(n, write=True)
    dtype = e.values.dtype(x)
    best, idx, val = kb.var(dtype), kb.var("int64"), kb.var(dtype)
    k = Var("k", INDEX)
    beats = val >= best if params["largest"] else val <= best
    if dtype in ("float64", "float32"):
        beats = Bin("or", val.ne(val), Bin("and", best.eq(best), beats))

    def line(o, i):
        first = (Assign(best, kb.read(x, v.at(o, Lit(0), i))), Assign(idx, Lit(0)),
                 Assign(Store(out, v.at(o, Lit(0), i)), Lit(0)))  # fmt: skip
        scan = Loop(k, Lit(1), v.n, (
            Assign(val, kb.read(x, v.at(o, k, i))),
            Assign(idx, select(beats, Cast("int64", k), idx)),
            Assign(best, select(beats, val, best)),
            Assign(Store(out, v.at(o, k, i)), idx),
        ))  # fmt: skip
        return [If(v.n > 0, (*first, scan))]

    which = "max" if params["largest"] else "min"
    e.kernel(kb, f"b0 = the indices of cum{which}(b1) along axis {params['axis']}",
             loops([("o", v.outer), ("i", v.inner)], line))  # fmt: skip


register(
    OpDef(
        "cumarg",
        1,
        _infer_cumarg,
        _cumarg_ref,
        (None,),
        params={"axis": 0, "largest": True},
        lower=_lower_cumarg,
        formula="indices: no gradient (cummax's goes through the gather of x at them)",
    )
)


# ---- builders ----------------------------------------------------------------------------------
def _one_axis(op: str, x: Value, axis: Any) -> int:
    (a,) = axes_of(op, x, (axis,))
    return a


def cumsum(x: Value, axis: int = 0, reverse: bool = False) -> Value:
    """Running sums along `axis` (from its end when `reverse`), as `np.cumsum`."""
    return apply("cumsum", x, axis=_one_axis("cumsum", x, axis), reverse=bool(reverse))


def cumprod(x: Value, axis: int = 0, reverse: bool = False) -> Value:
    """Running products along `axis`, as `np.cumprod`; the gradient is exact with zeros."""
    return apply("cumprod", x, axis=_one_axis("cumprod", x, axis), reverse=bool(reverse))


def logcumsumexp(x: Value, axis: int = 0, reverse: bool = False) -> Value:
    """log of the running sums of exp(x) along `axis`, without overflow, as PyTorch's."""
    return apply("logcumsumexp", x, axis=_one_axis("logcumsumexp", x, axis), reverse=bool(reverse))


def linrec(a: Value, b: Value, axis: int = 0, reverse: bool = False) -> Value:
    """y_k = b_k + a_k y_(k-1) along `axis` (y before the first is 0; from the end when
    `reverse`): the first-order linear recurrence."""
    return apply("linrec", a, b, axis=_one_axis("linrec", b, axis), reverse=bool(reverse))


def shift(x: Value, axis: int, by: int, fill: float = 0.0) -> Value:
    """`x` moved `by` places along `axis` (toward its end when positive), the places left
    empty filled with `fill`."""
    return apply("shift", x, axis=_one_axis("shift", x, axis), by=int(by), fill=float(fill))


def _cum_extreme(x: Value, axis: int, largest: bool) -> tuple[Value, Value]:
    from graphc.ops.gather import gather

    a = _one_axis("cummax" if largest else "cummin", x, axis)
    idx = apply("cumarg", x, axis=a, largest=largest)
    return gather(x, a, idx), idx


def cummax(x: Value, axis: int = 0) -> tuple[Value, Value]:
    """(the running maximum along `axis`, the index it came from), as PyTorch's cummax: a
    later equal value takes the index over, and NaN, once met, stays. The gradient goes to
    the element each maximum came from."""
    return _cum_extreme(x, axis, True)


def cummin(x: Value, axis: int = 0) -> tuple[Value, Value]:
    """(the running minimum along `axis`, the index it came from), as PyTorch's cummin."""
    return _cum_extreme(x, axis, False)
