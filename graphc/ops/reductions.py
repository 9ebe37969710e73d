"""Reductions beyond sum, mean and max (ops/reduce.py): min, prod, argmax, argmin, any, all.

min shares the gradient of max among ties evenly (PyTorch's amin); prod's gradient is exact
with zeros in the product (each element gets the product of the others, from cumulative
products: ops/cumulative.py); argmax and argmin give int64 indices of the first extreme
element, NaN counting as the extreme (NumPy's and PyTorch's), and no gradient; any and all
take values of any dtype (nonzero is true).
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from graphc.codegen.emit import Emit
from graphc.codegen.kir import INDEX, Assign, Bin, Cast, If, Lit, Load, Loop, Store, Var, select
from graphc.ir.dag import operands
from graphc.ir.graph import Value
from graphc.ir.shapes import ShapeMismatch
from graphc.ops._axis import AxisView, loops, reduce_loops
from graphc.ops._build import apply
from graphc.ops.reduce import (
    _AXIS,
    _check_axes,
    _infer_max,
    _kept_shape,
    _max_vjp,
    axes_of,
    extreme_ref,
    lower_extreme,
)
from graphc.ops.registry import OpDef, register

# ---- min: max's mirror ---------------------------------------------------------------------------
register(
    OpDef(
        "min",
        1,
        _infer_max,
        extreme_ref(np.min),
        (_max_vjp,),
        params=_AXIS,
        lower=lambda e, n, a, p: lower_extreme(e, n, a, p, "min"),
        formula="d min(x) = dx at the minimum (ties share evenly)",
    )
)


# ---- prod: along one axis (the builder reduces several in turn) ----------------------------------
def _infer_axis(op: str, shape: tuple, axis: Any, none: bool = False) -> None:
    if axis is None and none:
        return
    if not isinstance(axis, int) or isinstance(axis, bool) or not 0 <= axis < len(shape):
        raise ShapeMismatch(f"{op}: axis {axis!r} is not an axis of a {len(shape)}-d value")


def _reduced(shape: tuple, axis: int | None, keepdims: bool) -> tuple:
    if axis is None:
        return (1,) * len(shape) if keepdims else ()
    if keepdims:
        return (*shape[:axis], 1, *shape[axis + 1 :])
    return (*shape[:axis], *shape[axis + 1 :])


def _infer_prod(shapes, dtypes, params):
    from graphc.ops._build import float_dtype

    _infer_axis("prod", shapes[0], params["axis"])
    return _reduced(shapes[0], params["axis"], params["keepdims"]), float_dtype(dtypes, "prod")


def _lower_prod(e: Emit, n: int, args: list[int], params: dict) -> None:
    """out[o, i] = prod over k of x[o, k, i], multiplied in order along the axis."""
    (x,) = args
    kb = e.builder()
    v = AxisView(kb, e.values.shape(x), params["axis"])
    out = kb.ref(n, write=True)
    ones = loops([("o", v.outer), ("i", v.inner)],
                 lambda o, i: [Assign(Store(out, v.kept(o, i)), Lit(1.0))])  # fmt: skip

    def step(o, k, i):
        at = v.kept(o, i)
        return [Assign(Store(out, at), Load(out, at) * kb.read(x, v.at(o, k, i)))]

    body = loops([("o", v.outer), ("k", v.n), ("i", v.inner)], step)
    e.kernel(kb, f"b0 = prod(b1, axis={params['axis']})", [*ones, *body])


def _prod_vjp(ct, out, x, axis, keepdims):
    # d prod(x) / d x_k = the product of the others: (product before k) (product after k),
    # exact where x holds zeros (no division by x)
    from graphc.ops.cumulative import cumprod, shift
    from graphc.ops.shape import broadcast_to, reshape

    before = shift(cumprod(x, axis), axis, 1, 1.0)
    after = shift(cumprod(x, axis, reverse=True), axis, -1, 1.0)
    if not keepdims:
        ct = reshape(ct, _reduced(x.shape, axis, True))
    return broadcast_to(ct, x.shape) * (before * after)


register(
    OpDef(
        "prod",
        1,
        _infer_prod,
        lambda x, axis, keepdims: np.prod(x, axis, keepdims=keepdims),
        (_prod_vjp,),
        params={"axis": 0, "keepdims": False},
        lower=_lower_prod,
        formula="d prod(x) = sum_k (the product of the others) dx_k",
    )
)


# ---- argmax, argmin ----------------------------------------------------------------------------
def _infer_arg(op: str):
    def infer(shapes, dtypes, params):
        axis = params["axis"]
        _infer_axis(op, shapes[0], axis, none=True)
        reduced = shapes[0] if axis is None else (shapes[0][axis],)
        if builtins.any(d == 0 for d in reduced):  # (this module's any is the op's)
            raise ShapeMismatch(f"{op} over an axis of size 0 has no value")
        if dtypes[0] not in ("float64", "float32", "int64", "int32", "int16", "int8", "uint8"):
            raise ShapeMismatch(f"{op} takes numbers, got {dtypes[0]}")
        return _reduced(shapes[0], axis, params["keepdims"]), "int64"

    return infer


def _lower_arg(e: Emit, n: int, args: list[int], params: dict) -> None:
    """The index along the axis of the first extreme element of each line (NaN first)."""
    (x,) = args
    op = e.values.G.nodes[n]["op"]
    kb = e.builder()
    v = AxisView(kb, e.values.shape(x), params["axis"])
    out = kb.ref(n, write=True)
    dtype = e.values.dtype(x)
    best, idx, val = kb.var(dtype), kb.var("int64"), kb.var(dtype)

    def line(o, i):
        k = Var("k", INDEX)
        better = val > best if op == "argmax" else val < best
        if dtype in ("float64", "float32"):
            better = Bin("or", better, Bin("and", val.ne(val), best.eq(best)))
        scan = Loop(k, Lit(1), v.n, (
            Assign(val, kb.read(x, v.at(o, k, i))),
            Assign(idx, select(better, Cast("int64", k), idx)),
            Assign(best, select(better, val, best)),
        ))  # fmt: skip
        first = [Assign(best, kb.read(x, v.at(o, Lit(0), i))), Assign(idx, Lit(0)), scan]
        return [If(v.n > 0, tuple(first)), Assign(Store(out, v.kept(o, i)), idx)]

    body = loops([("o", v.outer), ("i", v.inner)], line)
    e.kernel(kb, f"b0 = {op}(b1, axis={params['axis']})", body)


for _op, _ref in (("argmax", np.argmax), ("argmin", np.argmin)):
    register(
        OpDef(
            _op,
            1,
            _infer_arg(_op),
            lambda x, axis, keepdims, f=_ref: np.asarray(f(x, axis, keepdims=keepdims), np.int64),
            (None,),
            params={"axis": None, "keepdims": False},
            lower=_lower_arg,
            formula="indices: no gradient",
        )
    )


# ---- any, all ----------------------------------------------------------------------------------
def _infer_logical_reduce(shapes, dtypes, params):
    axis = _check_axes(shapes[0], params)
    if params["keepdims"]:
        return _kept_shape(shapes[0], axis), "bool"
    return tuple(d for i, d in enumerate(shapes[0]) if i not in axis), "bool"


def _lower_any_all(e: Emit, n: int, args: list[int], params: dict) -> None:
    (x,) = args
    op = e.values.G.nodes[n]["op"]
    kb = e.builder()
    out = kb.ref(n, write=True)
    acc = kb.var("bool")
    start = Lit(op == "all", "bool")

    def body(at_out, inner):
        def step(at):
            hit = kb.read(x, at).ne(0)
            return [Assign(acc, Bin("&" if op == "all" else "|", acc, hit))]

        return [Assign(acc, start), *inner(step), Assign(Store(out, at_out), acc)]

    stmts = reduce_loops(kb, e.values.shape(x), params["axis"], body)
    e.kernel(kb, f"b0 = {op}(b1 != 0, axis={params['axis']})", stmts)


for _op, _ref in (("any", np.any), ("all", np.all)):
    register(
        OpDef(
            _op,
            1,
            _infer_logical_reduce,
            lambda x, axis, keepdims, f=_ref: np.asarray(f(x != 0, axis, keepdims=keepdims)),
            (None,),
            params=_AXIS,
            lower=_lower_any_all,
            formula="logical: no gradient",
        )
    )


# ---- what may not reduce nothing ----------------------------------------------------------------
def nonempty_dims(G: Any, n: int) -> list | None:
    """The dims node n reduces when it has no value for none of them (max, min, argmax,
    argmin), else None: a call checks them when they are symbolic."""
    a = G._node[n]
    if a["op"] not in ("max", "min", "argmax", "argmin"):
        return None
    shape = G.nodes[operands(G, n)[0]]["shape"]
    axis = a["params"]["axis"]
    axes = range(len(shape)) if axis is None else (axis,) if isinstance(axis, int) else axis
    return [shape[k] for k in axes]


# ---- builders ----------------------------------------------------------------------------------
def min(x: Value, axis: Any = None, keepdims: bool = False) -> Value:  # noqa: A001
    """Minimum over `axis`, as `np.min`; its gradient is shared evenly among ties."""
    return apply("min", x, axis=axes_of("min", x, axis), keepdims=bool(keepdims))


def prod(x: Value, axis: Any = None, keepdims: bool = False) -> Value:
    """Product over `axis` (None: all; an int or a tuple), as `np.prod`, one axis at a time;
    its gradient is exact where x holds zeros."""
    axes = axes_of("prod", x, axis)
    for a in sorted(axes, reverse=True):  # the last first: the others keep their numbers
        x = apply("prod", x, axis=a, keepdims=bool(keepdims))
    return x


def _arg(op: str, x: Value, axis: Any, keepdims: bool) -> Value:
    if axis is not None:
        (axis,) = axes_of(op, x, (axis,))
    return apply(op, x, axis=axis, keepdims=bool(keepdims))


def argmax(x: Value, axis: int | None = None, keepdims: bool = False) -> Value:
    """int64 index of the first maximum along `axis` (None: of the flattened value), as
    `np.argmax`; NaN counts as the maximum."""
    return _arg("argmax", x, axis, keepdims)


def argmin(x: Value, axis: int | None = None, keepdims: bool = False) -> Value:
    """int64 index of the first minimum along `axis` (None: of the flattened value)."""
    return _arg("argmin", x, axis, keepdims)


def any(x: Value, axis: Any = None, keepdims: bool = False) -> Value:  # noqa: A001
    """Whether any element over `axis` is nonzero (true), as `np.any`."""
    return apply("any", x, axis=axes_of("any", x, axis), keepdims=bool(keepdims))


def all(x: Value, axis: Any = None, keepdims: bool = False) -> Value:  # noqa: A001
    """Whether every element over `axis` is nonzero (true), as `np.all`."""
    return apply("all", x, axis=axes_of("all", x, axis), keepdims=bool(keepdims))
