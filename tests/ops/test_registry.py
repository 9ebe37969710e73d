"""Tests generated from the op registry: one table of cases, the same checks for every case.

For every case: the shape rule (`infer`, through the builder) against what the op's `ref` returns;
`ref` against an independent NumPy formula; the VJP against central finite differences of
`sum(op(...) * r)` with a fixed random weight `r`, with `simplify` before and after `grad`; the
VJP differentiated once more (a Hessian-vector product); float32 gradients against float64
finite differences; and for inputs with no gradient, that `grad` refuses them (or gives zeros
with `allow_unused`). A completeness test makes sure no registered op is left out of the table.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GraphError, ShapeError
from graphc.gradcheck import check_grad, numerical_grad
from graphc.ir.dag import operands
from graphc.ir.graph import Value
from graphc.ir.shapes import bind_shape
from graphc.ops.registry import REGISTRY
from graphc.passes.derivatives import jvp, tangent_name
from tests.domains import Gen, distinct, fine_grid, grid, nonzero, normal, positive, small_ints

NAMES = ("x", "y", "z")
RTOL = 1e-6  # relative error allowed between analytic and finite-difference gradients
ATOL = 1e-8  # ... judged absolutely below atol / rtol = 1e-2


# ---- input domains: per operand, chosen so that finite differences see a smooth function ------


def onehot(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """One-hot rows along the last axis."""
    return np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]


EPS_F32 = 2.0**-10  # a finite-difference step that float32 inputs on `fine_grid` take exactly


# ---- the case table -------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class Case:
    """One op applied to inputs of given (symbolic) shapes, with its NumPy counterpart."""

    op: str  # registry name of the node `build` returns (or a composite's name)
    build: Callable[..., Value]  # builder calls over the input Values
    numpy: Callable[..., Any]  # the same computation in plain NumPy over the input arrays
    shapes: tuple[tuple, ...]
    bind: Mapping[str, int] = field(default_factory=dict)
    domain: tuple[Gen, ...] = (normal(),)  # one per input, or one for all
    dtypes: tuple[str, ...] = ()  # default float64
    no_grad: tuple[int, ...] | None = None  # inputs without gradient (None: all if op has none)
    eps: float = 1e-6
    exact_f32: bool = False  # float32 inputs on a grid where finite differences are exact
    composite: bool = False
    label: str = ""

    @property
    def id(self) -> str:
        shapes = ",".join("x".join(map(str, s)) or "()" for s in self.shapes)
        bind = "[" + ",".join(f"{k}={v}" for k, v in self.bind.items()) + "]" if self.bind else ""
        types = "-" + ",".join(d.replace("float", "f") for d in self.dtypes) if self.dtypes else ""
        return f"{self.op}-{shapes}{bind}{types}" + (f"-{self.label}" if self.label else "")

    def __repr__(self) -> str:
        return f"<Case {self.id}>"

    @property
    def input_dtypes(self) -> tuple[str, ...]:
        return self.dtypes or ("float64",) * len(self.shapes)

    @property
    def float32(self) -> bool:
        return "float32" in self.input_dtypes

    @property
    def no_grad_inputs(self) -> tuple[int, ...]:
        if self.no_grad is not None:
            return self.no_grad
        opdef = REGISTRY.get(self.op)
        return tuple(range(len(self.shapes))) if opdef and not opdef.differentiable else ()

    @property
    def wrt(self) -> list[str]:
        return [NAMES[i] for i in range(len(self.shapes)) if i not in self.no_grad_inputs]


def case(op: str, build: Callable, numpy: Callable, *shapes: tuple, **kw: Any) -> Case:
    return Case(op, build, numpy, tuple(tuple(s) for s in shapes), **kw)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    z = np.exp(x - x.max(axis=axis, keepdims=True)) if x.size else x
    return z / z.sum(axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    if not x.size:
        return x
    m = x.max(axis=axis, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True)))


def _size(x: np.ndarray, axis: int | tuple[int, ...] | None) -> np.ndarray:
    axes = range(x.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
    return np.array(math.prod(x.shape[a] for a in axes), dtype=x.dtype)


CASES: list[Case] = []

UNARY = [
    ("neg", gc.neg, np.negative, normal()),
    ("exp", gc.exp, np.exp, normal()),
    ("log", gc.log, np.log, positive()),
    ("sqrt", gc.sqrt, np.sqrt, positive()),
    ("tanh", gc.tanh, np.tanh, normal()),
    ("sigmoid", gc.sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x)), normal(3.0)),
    ("relu", gc.relu, lambda x: np.where(x > 0, x, 0.0), nonzero()),
    ("abs", gc.abs, np.abs, nonzero()),
    ("sign", gc.sign, np.sign, nonzero()),
]
UNARY_SHAPES = [((3, 4), {}), ((), {}), (("N", 3), {"N": 2}), (("N", 3), {"N": 1}),
                (("N", 3), {"N": 0}), ((2, 1, 3), {})]  # fmt: skip
for _op, _b, _np, _dom in UNARY:
    for _s, _bind in UNARY_SHAPES:
        CASES.append(case(_op, _b, _np, _s, bind=_bind, domain=(_dom,)))

BINARY = [
    ("add", gc.add, np.add, (normal(),)),
    ("sub", gc.sub, np.subtract, (normal(),)),
    ("mul", gc.mul, np.multiply, (normal(),)),
    ("div", gc.div, np.divide, (normal(), nonzero())),
    ("pow", gc.pow, np.power, (positive(), normal())),
    ("maximum", gc.maximum, np.maximum, (grid(0.05), grid(-0.05))),
    ("minimum", gc.minimum, np.minimum, (grid(0.05), grid(-0.05))),
    ("less", gc.less, np.less, (small_ints,)),
    ("less_equal", gc.less_equal, np.less_equal, (small_ints,)),
    ("greater", gc.greater, np.greater, (small_ints,)),
    ("greater_equal", gc.greater_equal, np.greater_equal, (small_ints,)),
    ("equal", gc.equal, np.equal, (small_ints,)),
    ("not_equal", gc.not_equal, np.not_equal, (small_ints,)),
]
BINARY_SHAPES = [
    ((3, 4), (3, 4), {}),
    ((3, 4), (4,), {}),
    ((2, 1, 4), (3, 1), {}),
    ((), (3,), {}),
    (("N", 3), (3,), {"N": 2}),
    (("N", 1), (1, "M"), {"N": 2, "M": 3}),
    (("N", 3), ("N", 1), {"N": 1}),
    (("N", 3), (1, 3), {"N": 0}),
]
for _op, _b, _np, _dom in BINARY:
    for _s0, _s1, _bind in BINARY_SHAPES:
        CASES.append(case(_op, _b, _np, _s0, _s1, bind=_bind, domain=_dom))

# One operand a Python scalar or a NumPy array: it becomes a constant of the graph.
# fmt: off
CONST_OPERAND = [
    ("add", lambda x: x + 1.5, lambda x: x + 1.5, normal(), "x+1.5"),
    ("add", lambda x: 1.5 + x, lambda x: 1.5 + x, normal(), "1.5+x"),
    ("sub", lambda x: 2.0 - x, lambda x: 2.0 - x, normal(), "2-x"),
    ("sub", lambda x: x - np.arange(4.0), lambda x: x - np.arange(4.0), normal(), "x-arange"),
    ("mul", lambda x: 3.0 * x, lambda x: 3.0 * x, normal(), "3*x"),
    ("div", lambda x: x / 4.0, lambda x: x / 4.0, normal(), "x/4"),
    ("div", lambda x: 1.0 / x, lambda x: 1.0 / x, nonzero(), "1/x"),
    ("pow", lambda x: x**2, lambda x: x**2, normal(), "x**2"),
    ("pow", lambda x: x**3.0, lambda x: x**3.0, normal(), "x**3.0"),
    ("pow", lambda x: x**0.5, lambda x: x**0.5, positive(), "x**0.5"),
    ("pow", lambda x: x**-1.5, lambda x: x**-1.5, positive(), "x**-1.5"),
    ("pow", lambda x: 2.0**x, lambda x: 2.0**x, normal(), "2**x"),
    ("maximum", lambda x: gc.maximum(x, 0.0), lambda x: np.maximum(x, 0.0), grid(0.05), "x,0"),
    ("minimum", lambda x: gc.minimum(0.0, x), lambda x: np.minimum(0.0, x), grid(0.05), "0,x"),
    ("greater", lambda x: x > 0.0, lambda x: x > 0.0, small_ints, "x>0"),
    ("less_equal", lambda x: x <= 1.0, lambda x: x <= 1.0, small_ints, "x<=1"),
    ("greater", lambda x: 1.0 < x, lambda x: 1.0 < x, small_ints, "1<x"),  # reflected: x > 1
]
# fmt: on
for _op, _b, _np, _dom, _label in CONST_OPERAND:
    CASES.append(case(_op, _b, _np, (3, 4), domain=(_dom,), label=_label))
    CASES.append(case(_op, _b, _np, ("N", 4), bind={"N": 2}, domain=(_dom,), label=_label))

# One value used as several operands: the cotangents of the uses must add up.
# fmt: off
FAN_OUT = [
    ("mul", lambda x: x * x, lambda x: x * x, normal(), "x*x"),
    ("sub", lambda x: x - x, lambda x: x - x, normal(), "x-x"),
    ("div", lambda x: x / x, lambda x: x / x, nonzero(), "x/x"),
    ("pow", lambda x: x**x, lambda x: x**x, positive(), "x**x"),
    ("maximum", lambda x: gc.maximum(x, x), lambda x: np.maximum(x, x), normal(), "x,x"),
    ("minimum", lambda x: gc.minimum(x, x), lambda x: np.minimum(x, x), normal(), "x,x"),
    ("matmul", lambda x: x @ x, lambda x: x @ x, normal(), "x@x"),
    ("where", lambda x: gc.where(x > 0, x, x * 2.0), lambda x: np.where(x > 0, x, x * 2.0),
     nonzero(), "x>0,x,2x"),
]
# fmt: on
for _op, _b, _np, _dom, _label in FAN_OUT:
    CASES.append(case(_op, _b, _np, (3, 3), domain=(_dom,), label=_label))
    if _op != "matmul":
        CASES.append(case(_op, _b, _np, ("N", 3), bind={"N": 2}, domain=(_dom,), label=_label))

# where: the condition is a comparison, so the input it is computed from gets no gradient.
_where_c = (lambda c, x, y: gc.where(c > 0, x, y), lambda c, x, y: np.where(c > 0, x, y))
for _shapes, _bind in [
    (((3, 4), (3, 4), (3, 4)), {}),
    (((3, 1), (4,), ()), {}),
    ((("N", 3), ("N", 3), (3,)), {"N": 2}),
    ((("N", 3), (3,), (1,)), {"N": 0}),
    (((), (2, 3), (2, 1)), {}),
]:
    CASES.append(case("where", *_where_c, *_shapes, bind=_bind,
                      domain=(nonzero(), normal(), normal()), no_grad=(0,)))  # fmt: skip
CASES += [
    case("where", lambda x, y: gc.where(x > y, x, y), lambda x, y: np.where(x > y, x, y),
         (3, 4), (4,), domain=(grid(0.05), grid(-0.05)), label="x>y"),
    case("where", lambda x: gc.where(x > 0, x, 0.0), lambda x: np.where(x > 0, x, 0.0),
         ("N", 3), bind={"N": 2}, domain=(nonzero(),), label="x>0,x,0"),
]  # fmt: skip

# cast: float32 steps are exact on `fine_grid`, so finite differences still apply.
CASES += [
    case("cast", lambda x: gc.cast(x, "float64"), lambda x: x.astype(np.float64), (3, 4),
         dtypes=("float32",), domain=(fine_grid,), eps=EPS_F32, exact_f32=True, label="to_f64"),
    case("cast", lambda x: gc.cast(x, "float64"), lambda x: x.astype(np.float64), ("N", 2),
         bind={"N": 3}, dtypes=("float32",), domain=(fine_grid,), eps=EPS_F32, exact_f32=True,
         label="to_f64"),
    case("cast", lambda x: gc.cast(x, "float32"), lambda x: x.astype(np.float32), (3, 4),
         domain=(fine_grid,), eps=EPS_F32, label="to_f32"),
    case("cast", lambda x: gc.cast(x, "float32"), lambda x: x.astype(np.float32), (),
         domain=(fine_grid,), eps=EPS_F32, label="to_f32"),
    case("cast", lambda x: gc.cast(x > 0, "float64"), lambda x: (x > 0).astype(np.float64),
         (3, 4), domain=(nonzero(),), no_grad=(0,), label="bool_to_f64"),
    case("cast", lambda x: gc.cast(x > 0, "float32"), lambda x: (x > 0).astype(np.float32),
         ("N",), bind={"N": 0}, domain=(nonzero(),), no_grad=(0,), label="bool_to_f32"),
]  # fmt: skip

for _s0, _s1, _bind in [
    ((3,), (3,), {}),
    ((3,), (3, 4), {}),
    ((2, 3), (3,), {}),
    ((2, 3), (3, 4), {}),
    ((2, 2, 3), (2, 3, 4), {}),
    ((2, 2, 3), (3, 4), {}),
    ((2, 3), (2, 3, 4), {}),
    ((3,), (2, 3, 4), {}),
    ((2, 2, 3), (3,), {}),
    ((2, 1, 2, 3), (3, 3, 2), {}),
    (("B", 2, 3), (3, 4), {"B": 2}),
    (("B", 2, 3), ("B", 3, 2), {"B": 1}),
    (("N", 3), (3, 2), {"N": 0}),
    ((3,), (3, "M"), {"M": 2}),
    ((2, 0), (0, 3), {}),
    ((3, 1), (1, 2), {}),
]:
    CASES.append(case("matmul", gc.matmul, np.matmul, _s0, _s1, bind=_bind))
CASES.append(case("matmul", lambda x, y: x @ y, lambda x, y: x @ y, (2, 3), (3, 2), label="@"))
# Transposed operands, which simplify turns into layout flags (with a 1-D partner too).
for _label, _f, _s0, _s1 in [
    ("w.T@v", lambda w, v: w.T @ v, (3, 4), (3,)),
    ("v@w.T", lambda v, w: v @ w.T, (3,), (4, 3)),
    ("x@w.T", lambda x, w: x @ w.T, (2, 3), (4, 3)),
    ("x.T@w.T", lambda x, w: x.T @ w.T, (3, 2), (4, 3)),
]:
    CASES.append(case("matmul", _f, _f, _s0, _s1, label=_label))
CASES.append(
    case(
        "matmul",
        lambda a, b: gc.swapaxes(a) @ b,
        lambda a, b: np.swapaxes(a, -1, -2) @ b,
        (2, 3, 2),
        (2, 3, 4),
        label="swap(a)@b",
    )
)

for _s, _perm, _bind in [
    ((3, 4), (1, 0), {}),
    ((2, 3, 4), None, {}),
    ((2, 3, 4), (0, 2, 1), {}),
    ((2, 3, 4), (2, 0, 1), {}),
    ((2, 3, 4), (1, 2, 0), {}),
    ((2, 3, 4), (-1, 0, 1), {}),
    ((2, 3, 4), (0, 1, 2), {}),
    ((), None, {}),
    (("N", 3), (1, 0), {"N": 2}),
    (("N", 3, 1), (2, 0, 1), {"N": 0}),
]:
    CASES.append(case("transpose", lambda x, p=_perm: gc.transpose(x, p),
                      lambda x, p=_perm: np.transpose(x, p), _s, bind=_bind,
                      label=f"perm={_perm}".replace(" ", "")))  # fmt: skip
CASES.append(case("transpose", lambda x: x.T, lambda x: x.T, (2, 3), label=".T"))

# reshape: the NumPy side computes the concrete target from the array it is given.
for _s, _target, _np_target, _bind in [
    ((2, 3, 4), (4, -1), lambda s: (4, -1), {}),
    ((2, 3, 4), (24,), lambda s: (24,), {}),
    ((2, 3, 4), (-1,), lambda s: (-1,), {}),
    ((2, 3, 4), (2, 1, 12), lambda s: (2, 1, 12), {}),
    ((), (1, 1), lambda s: (1, 1), {}),
    ((1,), (), lambda s: (), {}),
    (("N", 3), ("N", 3, 1), lambda s: (s[0], 3, 1), {"N": 2}),
    (("N", 3), ("N", -1), lambda s: (s[0], 3), {"N": 0}),
    (("N", 2, 3), ("N", 6), lambda s: (s[0], 6), {"N": 2}),
    (("N", 2, 3), (-1, 6), lambda s: (s[0], 6), {"N": 3}),
    ((3, "N"), ("N", 3), lambda s: (s[1], 3), {"N": 2}),
    ((0, 3), (-1, 3), lambda s: (0, 3), {}),
    ((0, 3), (3, 0), lambda s: (3, 0), {}),
]:
    CASES.append(case("reshape", lambda x, t=_target: gc.reshape(x, t),
                      lambda x, t=_np_target: np.reshape(x, t(x.shape)), _s, bind=_bind,
                      label="to" + ("x".join(map(str, _target)) or "()")))  # fmt: skip
CASES.append(case("reshape", lambda x: x.reshape(-1, 2), lambda x: x.reshape(-1, 2), (2, 3, 2),
                  label="method"))  # fmt: skip

for _s, _target, _bind in [
    ((3,), (2, 3), {}),
    ((1, 3), (4, 3), {}),
    ((2, 1, 3), (2, 4, 3), {}),
    ((), (2, 3), {}),
    (("N", 1), ("N", 4), {"N": 2}),
    ((1,), ("N",), {"N": 3}),
    ((3,), (0, 3), {}),
    ((1, 1), (1, 1), {}),
    ((3, 1), ("N", 3, "M"), {"N": 2, "M": 1}),
]:
    CASES.append(case("broadcast_to", lambda x, t=_target: gc.broadcast_to(x, t),
                      lambda x, t=_target, b=_bind: np.broadcast_to(x, bind_shape(t, b)),
                      _s, bind=_bind, label="to" + "x".join(map(str, _target))))  # fmt: skip

REDUCE = [("sum", gc.sum, np.sum, normal()), ("mean", gc.mean, np.mean, normal()),
          ("max", gc.max, np.max, distinct)]  # fmt: skip
REDUCE_AXES = [
    ((3, 4), None, False, {}),
    ((3, 4), 0, False, {}),
    ((3, 4), 1, True, {}),
    ((3, 4), -1, False, {}),
    ((2, 3, 4), (0, 2), False, {}),
    ((2, 3, 4), (-1, -3), True, {}),
    ((2, 3, 4), 1, True, {}),
    ((2, 3, 4), None, True, {}),
    ((), None, False, {}),
    ((3, 4), (), False, {}),
    (("N", 3), 0, False, {"N": 2}),
    (("N", 3), None, True, {"N": 1}),
    (("N", 3), 1, False, {"N": 0}),
]
for _op, _b, _np, _dom in REDUCE:
    for _s, _axis, _keep, _bind in REDUCE_AXES:
        _label = f"axis={_axis}{',keepdims' if _keep else ''}".replace(" ", "")
        CASES.append(case(_op, lambda x, b=_b, a=_axis, k=_keep: b(x, a, keepdims=k),
                          lambda x, f=_np, a=_axis, k=_keep: f(x, axis=a, keepdims=k), _s,
                          bind=_bind, domain=(_dom,), label=_label))  # fmt: skip
CASES += [
    case("sum", lambda x: gc.sum(x, 0), lambda x: np.sum(x, 0), (0, 3), label="axis=0"),
    case("sum", lambda x: x.sum(1), lambda x: x.sum(1), (2, 3), label="method"),
    case("mean", lambda x: x.mean(), lambda x: x.mean(), (2, 3), label="method"),
    case("max", lambda x: x.max(0, keepdims=True), lambda x: x.max(0, keepdims=True), (2, 3),
         domain=(distinct,), label="method"),
]  # fmt: skip

for _s, _axis, _bind in [
    ((3, 4), None, {}),
    ((3, 4), 1, {}),
    ((2, 3, 4), (0, -1), {}),
    ((), None, {}),
    ((3, 4), (), {}),
    (("N", 3), None, {"N": 2}),
    (("N", 3), 0, {"N": 0}),
]:
    CASES.append(case("size", lambda x, a=_axis: gc.size(x, a),
                      lambda x, a=_axis: _size(x, a),
                      _s, bind=_bind, label=f"axis={_axis}".replace(" ", "")))  # fmt: skip

for _op, _b, _np in [("softmax", gc.softmax, _softmax),
                     ("log_softmax", gc.log_softmax, _log_softmax)]:  # fmt: skip
    for _s, _axis, _bind, _dom in [
        ((3, 4), -1, {}, normal()),
        ((3, 4), 0, {}, normal()),
        ((2, 3, 4), 1, {}, normal()),
        ((5,), 0, {}, normal()),
        (("N", 4), 1, {"N": 3}, normal()),
        (("N", 4), 0, {"N": 2}, normal()),
        ((4, 1), 1, {}, normal()),
        (("N", 4), -1, {"N": 0}, normal()),
        ((2, 3), -1, {}, normal(300.0)),
        ((3, 0), 1, {}, normal()),
    ]:
        CASES.append(case(_op, lambda x, b=_b, a=_axis: b(x, a),
                          lambda x, f=_np, a=_axis: f(x, a), _s, bind=_bind, domain=(_dom,),
                          label=f"axis={_axis}" + ("-large" if _s == (2, 3) else "")))  # fmt: skip

# float32 variants: dtype rules and references; gradients are checked against float64 twins.
F32 = ("float32",)
CASES += [
    case("tanh", gc.tanh, np.tanh, (3, 4), dtypes=F32),
    case("exp", gc.exp, np.exp, (3, 4), dtypes=F32),
    case("log", gc.log, np.log, (3, 4), dtypes=F32, domain=(positive(),)),
    case("sqrt", gc.sqrt, np.sqrt, (3, 4), dtypes=F32, domain=(positive(),)),
    case("sigmoid", gc.sigmoid, lambda x: 1 / (1 + np.exp(-x)), (3, 4), dtypes=F32),
    case("relu", gc.relu, lambda x: np.where(x > 0, x, np.float32(0)), (3, 4), dtypes=F32,
         domain=(nonzero(),)),
    case("abs", gc.abs, np.abs, (3, 4), dtypes=F32, domain=(nonzero(),)),
    case("add", gc.add, np.add, (3, 4), (4,), dtypes=("float32", "float64")),
    case("mul", lambda x: x * 2.5, lambda x: x * 2.5, (3, 4), dtypes=F32, label="x*2.5"),
    case("div", gc.div, np.divide, (3, 4), (4,), dtypes=F32 * 2, domain=(normal(), nonzero())),
    case("pow", lambda x: x**2, lambda x: x**2, (3, 4), dtypes=F32, label="x**2"),
    case("pow", gc.pow, np.power, (3, 4), (4,), dtypes=F32 * 2, domain=(positive(), normal())),
    case("maximum", gc.maximum, np.maximum, (3, 4), (3, 4), dtypes=F32 * 2,
         domain=(grid(0.05), grid(-0.05))),
    case("matmul", gc.matmul, np.matmul, (2, 3), (3, 4), dtypes=F32 * 2),
    case("matmul", gc.matmul, np.matmul, ("N", 3), (3,), bind={"N": 2},
         dtypes=("float32", "float64")),
    case("sum", lambda x: gc.sum(x, 1), lambda x: np.sum(x, 1), (3, 4), dtypes=F32,
         label="axis=1"),
    case("mean", lambda x: gc.mean(x), lambda x: np.mean(x), (3, 4), dtypes=F32),
    case("max", lambda x: gc.max(x, 0), lambda x: np.max(x, 0), (3, 4), dtypes=F32,
         domain=(distinct,), label="axis=0"),
    case("softmax", lambda x: gc.softmax(x, 1), lambda x: _softmax(x, 1), (3, 4), dtypes=F32),
    case("log_softmax", lambda x: gc.log_softmax(x, 0), lambda x: _log_softmax(x, 0), (3, 4),
         dtypes=F32),
    case("where", *_where_c, (3, 4), (3, 4), (4,), dtypes=F32 * 3,
         domain=(nonzero(), normal(), normal()), no_grad=(0,)),
    case("transpose", lambda x: gc.transpose(x), np.transpose, (3, 4), dtypes=F32),
    case("reshape", lambda x: gc.reshape(x, (-1,)), lambda x: x.reshape(-1), (3, 4), dtypes=F32),
    case("broadcast_to", lambda x: gc.broadcast_to(x, (2, 4)),
         lambda x: np.broadcast_to(x, (2, 4)), (4,), dtypes=F32),
    case("size", lambda x: gc.size(x), lambda x: _size(x, None), (3, 4), dtypes=F32),
    case("greater", gc.greater, np.greater, (3, 4), (4,), dtypes=F32 * 2,
         domain=(small_ints,)),
]  # fmt: skip

# Composite losses built from several ops.
CASES += [
    case("mse_loss", gc.mse_loss, lambda p, t: np.mean((p - t) ** 2), ("N", 3), ("N", 3),
         bind={"N": 4}, composite=True),
    case("mse_loss", gc.mse_loss, lambda p, t: np.mean((p - t) ** 2), (3,), (3,),
         composite=True),
    case("mse_loss", gc.mse_loss, lambda p, t: np.mean((p - t) ** 2), (2, 3), (3,),
         composite=True),
    case("mse_loss", gc.mse_loss, lambda p, t: np.mean((p - t) ** 2), (2, 3), (2, 3),
         dtypes=F32 * 2, composite=True),
    case("softmax_cross_entropy", gc.softmax_cross_entropy,
         lambda z, y: -np.mean(np.sum(y * _log_softmax(z, -1), axis=-1)), (4, 3), (4, 3),
         domain=(normal(2.0), onehot), composite=True),
    case("softmax_cross_entropy", gc.softmax_cross_entropy,
         lambda z, y: -np.mean(np.sum(y * _log_softmax(z, -1), axis=-1)), ("N", 5), ("N", 5),
         bind={"N": 3}, domain=(normal(2.0), onehot), composite=True),
    case("softmax_cross_entropy", gc.softmax_cross_entropy,
         lambda z, y: -np.mean(np.sum(y * _log_softmax(z, -1), axis=-1)), (2, 3, 4), (2, 3, 4),
         domain=(normal(2.0), lambda rng, s: _softmax(rng.standard_normal(s), -1)),
         composite=True, label="soft-labels"),
    case("softmax_cross_entropy", gc.softmax_cross_entropy,
         lambda z, y: -np.mean(np.sum(y * _log_softmax(z, -1), axis=-1)), (2, 3), (2, 3),
         dtypes=F32 * 2, domain=(normal(2.0), onehot), composite=True),
]  # fmt: skip

# The op families with case tables of their own.
from tests.ops import (  # noqa: E402
    cases_conv,
    cases_conv1d,
    cases_conv3d,
    cases_gather,
    cases_indexing,
    cases_int,
    cases_math,
    cases_pool,
    cases_reductions,
    cases_resample,
    cases_scan,
    cases_spatial,
)

FAMILIES = (cases_conv, cases_conv1d, cases_conv3d, cases_indexing, cases_math, cases_int,
            cases_reductions, cases_gather, cases_spatial, cases_pool, cases_resample,
            cases_scan)  # fmt: skip
for _family in FAMILIES:
    CASES += _family.cases(case)

_ids = [c.id for c in CASES]
assert len(set(_ids)) == len(_ids), sorted({i for i in _ids if _ids.count(i) > 1})

GRAD_CASES = [c for c in CASES if c.wrt and (not c.float32 or c.exact_f32)]
GRAD_F32_CASES = [c for c in CASES if c.wrt and c.float32 and not c.exact_f32]
NO_GRAD_CASES = [c for c in CASES if c.no_grad_inputs]


def by_id(cases: list[Case]) -> Any:
    return pytest.mark.parametrize("c", cases, ids=[c.id for c in cases])


# ---- building and evaluating a case ---------------------------------------------------------
@dataclass
class Built:
    g: gc.Graph
    out: Value
    feed: dict[str, np.ndarray]
    arrays: list[np.ndarray]


def build(c: Case, dtypes: tuple[str, ...] | None = None) -> Built:
    """The graph {out: op(inputs), loss: sum(float64(out) * r)} and seeded inputs for it."""
    rng = np.random.default_rng(zlib.crc32(c.id.encode()))
    dtypes = dtypes or c.input_dtypes
    domain = c.domain * len(c.shapes) if len(c.domain) == 1 else c.domain
    g = gc.Graph("case")
    arrays, ins = [], []
    for name, shape, dtype, gen in zip(NAMES, c.shapes, dtypes, domain, strict=False):
        arrays.append(np.asarray(gen(rng, bind_shape(shape, c.bind)), dtype=dtype))
        ins.append(g.param(name, shape=shape, dtype=dtype))
    out = c.build(*ins)
    if not c.composite:
        assert out.op == c.op, f"the case builds {out.op}, not {c.op}"
    r = g.input("r", shape=out.shape)
    g.output("out", out)
    g.output("loss", gc.sum(gc.cast(out, "float64") * r))
    feed = dict(zip(NAMES, arrays, strict=False))
    feed["r"] = rng.standard_normal(bind_shape(out.shape, c.bind))
    return Built(g, out, feed, arrays)


def concrete(shape: tuple, c: Case) -> tuple[int, ...]:
    return bind_shape(shape, c.bind)


# ---- the checks -----------------------------------------------------------------------------
def test_every_op_has_cases() -> None:
    """A new op cannot go untested: every registry entry appears in the case table."""
    # a loop's results are read by scan_out: its cases (composites named "scan") cover both
    loops = {"scan", "scan_out"}
    covered = {c.op for c in CASES if not c.composite} | {
        op for c in CASES if c.op == "scan" for op in loops
    }
    assert set(REGISTRY) - covered == set()
    assert covered - set(REGISTRY) == set()
    with_grad = {c.op for c in GRAD_CASES if not c.composite}
    with_grad |= {op for c in GRAD_CASES if c.op == "scan" for op in loops}
    assert {n for n, op in REGISTRY.items() if op.differentiable} <= with_grad
    without = {c.op for c in NO_GRAD_CASES}
    assert {n for n, op in REGISTRY.items() if not op.differentiable} <= without


def test_importing_graphc_registers_every_op() -> None:
    """A process that only imports graphc (a worker loading a graph's JSON) knows every op,
    also those whose module the builders import only when called."""
    import importlib
    import pkgutil
    import subprocess
    import sys

    import graphc.ops

    for m in pkgutil.iter_modules(graphc.ops.__path__):
        importlib.import_module(f"graphc.ops.{m.name}")
    code = "import graphc; from graphc.ops.registry import REGISTRY; print(*sorted(REGISTRY))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert set(REGISTRY) - set(out.stdout.split()) == set()


@by_id(CASES)
def test_shape_rule(c: Case) -> None:
    """The shape and dtype `infer` gives match what `ref` returns for concrete operands."""
    b = build(c)
    if REGISTRY[b.out.op].infer_graph is not None:  # a loop's result: its type against its value
        got = gc.evaluate(b.g, b.feed, outputs=["out"])["out"]
        assert (got.shape, got.dtype) == (concrete(b.out.shape, c), np.dtype(b.out.dtype))
        return
    args = operands(b.g.nx, b.out.id)
    for i, u in enumerate(args):
        b.g.output(f"arg{i}", Value(b.g, u))
    vals = gc.evaluate(b.g, b.feed, outputs=[f"arg{i}" for i in range(len(args))])
    opdef = REGISTRY[b.out.op]
    params = dict(b.out.attrs["params"])
    for key in opdef.shape_params:
        params[key] = concrete(params[key], c)
    with np.errstate(all="ignore"):
        got = np.asarray(opdef.ref(*(vals[f"arg{i}"] for i in range(len(args))), **params))
    assert got.shape == concrete(b.out.shape, c)
    assert got.dtype == np.dtype(b.out.dtype)


@by_id(CASES)
def test_reference(c: Case) -> None:
    """The interpreter (each op's `ref`) agrees with an independent NumPy formula."""
    b = build(c)
    got = gc.evaluate(b.g, b.feed, outputs=["out"])["out"]
    with np.errstate(all="ignore"):
        want = np.asarray(c.numpy(*b.arrays))
    assert got.shape == want.shape == concrete(b.out.shape, c)
    assert got.dtype == want.dtype
    if got.dtype == bool:
        np.testing.assert_array_equal(got, want)
    else:
        tol = 1e-6 if got.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 1e-3)


@by_id(GRAD_CASES)
def test_vjp(c: Case) -> None:
    """The VJP agrees with central finite differences, before and after `simplify`."""
    b = build(c)
    res = check_grad(b.g, b.feed, "loss", c.wrt, rtol=RTOL, atol=ATOL, eps=c.eps)
    assert res.ok, str(res)
    dg = gc.grad(b.g, "loss", c.wrt)
    for name in c.wrt:  # a gradient has its input's shape (symbols included) and dtype
        node = dg[gc.grad_name("loss", name)]
        assert (node.shape, node.dtype) == (b.g[name].shape, b.g[name].dtype)
    names = ["out", "loss", *(gc.grad_name("loss", n) for n in c.wrt)]
    raw = gc.evaluate(dg, b.feed, outputs=names)
    after = gc.evaluate(gc.simplify(dg), b.feed, outputs=names)
    before = gc.evaluate(gc.grad(gc.simplify(b.g), "loss", c.wrt), b.feed, outputs=names)
    for name in names:
        for other in (after, before):
            assert other[name].dtype == raw[name].dtype
            np.testing.assert_allclose(other[name], raw[name], rtol=1e-12, atol=1e-15)


# Every other float64 case of each op: enough variety, half the time.
SECOND_ORDER_CASES = [
    c for op in dict.fromkeys(c.op for c in GRAD_CASES)
    for c in [c for c in GRAD_CASES if c.op == op and not c.float32][::2]
]  # fmt: skip


@by_id(SECOND_ORDER_CASES)
def test_second_order(c: Case) -> None:
    """The adjoint graph is ordinary IR: differentiating it again matches finite differences."""
    b = build(c)
    dg = gc.grad(b.g, "loss", c.wrt)
    rng = np.random.default_rng(zlib.crc32(c.id.encode()) + 1)
    feed = dict(b.feed)
    total = None
    for name in c.wrt:  # loss2 = sum over inputs w of <dloss/dw, v_w>: a Hessian-vector product
        v = dg.input(f"v_{name}", shape=b.g[name].shape)
        feed[f"v_{name}"] = rng.standard_normal(b.feed[name].shape)
        term = gc.sum(gc.cast(dg[gc.grad_name("loss", name)], "float64") * v)
        total = term if total is None else total + term
    dg.output("loss2", total)
    res = check_grad(dg, feed, "loss2", c.wrt, rtol=RTOL, atol=ATOL, eps=c.eps, allow_unused=True)
    assert res.ok, str(res)


@by_id([c for c in GRAD_CASES if not c.float32])
def test_jvp(c: Case) -> None:
    """Forward mode (passes/derivatives.py): the op's directional derivative along a random
    tangent matches central finite differences of the forward pass."""
    b = build(c)
    rng = np.random.default_rng(zlib.crc32(c.id.encode()) + 2)
    t = {w: rng.standard_normal(b.feed[w].shape) for w in c.wrt}
    jg = jvp(b.g, of="out", wrt=c.wrt)
    feed = b.feed | {tangent_name(w): t[w] for w in c.wrt}
    got = gc.evaluate(jg, feed, outputs=["out_dot"])["out_dot"]

    def at(s: float) -> np.ndarray:
        moved = b.feed | {w: b.feed[w] + s * t[w] for w in c.wrt}
        return gc.evaluate(b.g, moved, outputs=["out"])["out"].astype(np.float64)

    finite = np.isfinite(at(0.0))  # where the value is ±inf (logsumexp of nothing) so is
    with np.errstate(invalid="ignore"):  # every neighbour's, and the derivative is 0
        want = np.where(finite, (at(c.eps) - at(-c.eps)) / (2 * c.eps), 0.0)
    assert got.shape == want.shape
    if b.out.dtype == "float32":  # a float32 result: its differences are float32-coarse
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    else:
        np.testing.assert_allclose(got, want, rtol=RTOL * 10, atol=ATOL * 10)


@by_id(GRAD_F32_CASES)
def test_vjp_float32(c: Case) -> None:
    """In float32, gradients keep the input dtype and match finite differences of the f64 twin."""
    b = build(c)
    twin = build(c, dtypes=("float64",) * len(c.shapes))
    dg = gc.simplify(gc.grad(b.g, "loss", c.wrt))
    names = [gc.grad_name("loss", n) for n in c.wrt]
    got = gc.evaluate(dg, b.feed, outputs=names)
    feed64 = {k: np.asarray(v, dtype=np.float64) for k, v in b.feed.items()}
    want = numerical_grad(twin.g, feed64, "loss", c.wrt)
    for name, out in zip(c.wrt, names, strict=True):
        assert got[out].dtype == np.dtype(b.g[name].dtype)
        np.testing.assert_allclose(got[out], want[name], rtol=1e-4, atol=1e-5)


@by_id(NO_GRAD_CASES)
def test_no_gradient(c: Case) -> None:
    """Inputs reaching the loss only through ops without a gradient get none."""
    b = build(c)
    for i in c.no_grad_inputs:
        name = NAMES[i]
        with pytest.raises(GraphError, match="does not depend on"):
            gc.grad(b.g, "loss", name)
        dg = gc.grad(b.g, "loss", name, allow_unused=True)
        zero = gc.evaluate(gc.simplify(dg), b.feed, outputs=[gc.grad_name("loss", name)])
        zero = zero[gc.grad_name("loss", name)]
        assert zero.shape == b.arrays[i].shape
        assert zero.dtype == b.arrays[i].dtype
        assert not zero.any()


def test_no_gradient_through_bool_input() -> None:
    """A bool input has no gradient, even when cast to float: grad refuses it."""
    g = gc.Graph("m")
    m, w = g.param("m", shape=(3,), dtype="bool"), g.param("w", shape=(3,))
    g.output("loss", gc.sum(gc.cast(m, "float64") * w))
    with pytest.raises(GraphError):
        gc.grad(g, "loss", "m")


# ---- conventions at points where finite differences do not apply -------------------------------
def _grads(g: gc.Graph, feed: dict, wrt: list[str]) -> list[np.ndarray]:
    res = gc.evaluate(gc.simplify(gc.grad(g, "loss", wrt)), feed)
    return [res[gc.grad_name("loss", n)] for n in wrt]


def test_max_ties_share_the_gradient() -> None:
    g = gc.Graph("m")
    x = g.param("x", shape=(2, 3))
    g.output("loss", gc.sum(gc.max(x, axis=1) * np.array([1.0, 2.0])))
    (dx,) = _grads(g, {"x": np.array([[1.0, 3.0, 3.0], [5.0, 5.0, 5.0]])}, ["x"])
    np.testing.assert_allclose(dx, [[0, 0.5, 0.5], [2 / 3, 2 / 3, 2 / 3]])


@pytest.mark.parametrize("fn", ["maximum", "minimum"])
def test_elementwise_ties_halve_the_gradient(fn: str) -> None:
    g = gc.Graph("m")
    x, y = g.param("x", shape=(3,)), g.param("y", shape=(3,))
    g.output("loss", gc.sum(getattr(gc, fn)(x, y)))
    dx, dy = _grads(g, {"x": np.array([1.0, 2.0, 3.0]), "y": np.array([2.0, 2.0, 2.0])},
                    ["x", "y"])  # fmt: skip
    big, small = ([0, 0.5, 1], [1, 0.5, 0]) if fn == "maximum" else ([1, 0.5, 0], [0, 0.5, 1])
    np.testing.assert_allclose(dx, big)
    np.testing.assert_allclose(dy, small)


@pytest.mark.parametrize("fn", ["relu", "abs"])
def test_kink_at_zero_has_zero_gradient(fn: str) -> None:
    g = gc.Graph("m")
    x = g.param("x", shape=(3,))
    g.output("loss", gc.sum(getattr(gc, fn)(x)))
    (dx,) = _grads(g, {"x": np.array([-1.0, 0.0, 2.0])}, ["x"])
    np.testing.assert_allclose(dx, [0 if fn == "relu" else -1, 0, 1])


# ---- shapes the rules must reject, with graphc's own error ----------------------------------
ILLEGAL: list[tuple[str, Callable[[gc.Graph], Any]]] = [
    ("add-3,4", lambda g: gc.add(g.param("x", shape=(3,)), g.param("y", shape=(4,)))),
    ("add-N,M", lambda g: gc.add(g.param("x", shape=("N",)), g.param("y", shape=("M",)))),
    ("matmul-inner", lambda g: gc.matmul(g.param("x", shape=(2, 3)), g.param("y", shape=(4, 2)))),
    ("matmul-0d", lambda g: gc.matmul(g.param("x", shape=()), g.param("y", shape=(3,)))),
    ("matmul-batch", lambda g: gc.matmul(g.param("x", shape=(2, 1, 3)),
                                         g.param("y", shape=(4, 3, 1)))),
    ("max-empty-axis", lambda g: gc.max(g.param("x", shape=(0, 3)), axis=0)),
    ("sum-axis", lambda g: gc.sum(g.param("x", shape=(3,)), axis=1)),
    ("sum-repeat", lambda g: gc.sum(g.param("x", shape=(3, 2)), axis=(0, -2))),
    ("reshape-size", lambda g: gc.reshape(g.param("x", shape=(2, 3)), (4,))),
    ("reshape-symbolic", lambda g: gc.reshape(g.param("x", shape=("N", 3)), ("M", 3))),
    ("reshape-two-holes", lambda g: gc.reshape(g.param("x", shape=(2, 3)), (-1, -1))),
    ("transpose-perm", lambda g: gc.transpose(g.param("x", shape=(2, 3)), (0, 0))),
    ("broadcast_to", lambda g: gc.broadcast_to(g.param("x", shape=(3,)), (4,))),
    ("broadcast_to-rank", lambda g: gc.broadcast_to(g.param("x", shape=(2, 3)), (3,))),
    ("where-float-cond", lambda g: gc.where(g.param("c", shape=(3,)), 1.0, 0.0)),
    ("compare-bool", lambda g: (g.param("x", shape=(3,)) > 0) > 0),
    ("softmax-axis", lambda g: gc.softmax(g.param("x", shape=(2, 3)), axis=2)),
    ("log_softmax-axis", lambda g: gc.log_softmax(g.param("x", shape=(2, 3)), axis=-3)),
    ("size-axis", lambda g: gc.size(g.param("x", shape=(2, 3)), axis=2)),
    ("tanh-bool", lambda g: gc.tanh(g.param("x", shape=(3,)) > 0)),
]  # fmt: skip


for _family in FAMILIES:
    ILLEGAL += getattr(_family, "ILLEGAL", [])  # cases_scan's are in tests/ops/test_scan.py


@pytest.mark.parametrize("make", [m for _, m in ILLEGAL], ids=[i for i, _ in ILLEGAL])
def test_shape_rule_rejects(make: Callable[[gc.Graph], Any]) -> None:
    """Operands an op cannot take raise ShapeError (a graphc error naming the node)."""
    with pytest.raises(ShapeError):
        make(gc.Graph("bad"))


def test_max_over_an_empty_symbolic_axis_is_an_input_error() -> None:
    """Only the bound size shows that a max has nothing to reduce: a graphc error at call time."""
    g = gc.Graph("m")
    g.output("out", gc.max(g.param("x", shape=("N", 3)), axis=0))
    with pytest.raises(gc.GraphcError):
        gc.evaluate(g, {"x": np.zeros((0, 3))})


# ---- the gradient checker itself ------------------------------------------------------------
def _cubic() -> gc.Graph:
    g = gc.Graph("m")
    x, w = g.input("x", shape=("N", 3)), g.param("w", shape=(3,))
    g.output("loss", gc.sum(gc.tanh(x * w) ** 3))
    g.output("vec", x * w)
    return g


def test_numerical_grad_matches_closed_form() -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal(3)
    num = numerical_grad(_cubic(), {"x": x, "w": w}, "loss")
    assert list(num) == ["w"]  # default: the params only
    t = np.tanh(x * w)
    np.testing.assert_allclose(num["w"], (3 * t**2 * (1 - t**2) * x).sum(0), rtol=1e-7)
    both = numerical_grad(_cubic(), {"x": x, "w": w}, "loss", wrt=["x", "w"])
    np.testing.assert_allclose(both["x"], 3 * t**2 * (1 - t**2) * w, rtol=1e-7, atol=1e-9)
    empty = numerical_grad(_cubic(), {"x": np.zeros((0, 3)), "w": w}, "loss", wrt="x")
    assert empty["x"].shape == (0, 3)


def test_numerical_grad_rejects_bad_requests() -> None:
    g = _cubic()
    feed = {"x": np.ones((2, 3)), "w": np.ones(3)}
    with pytest.raises(ShapeError):
        numerical_grad(g, feed, "vec")
    with pytest.raises(GraphError):
        numerical_grad(g, feed, "nope")
    with pytest.raises(GraphError):
        numerical_grad(g, feed, "loss", wrt="q")


def test_check_grad_passes_and_reports() -> None:
    rng = np.random.default_rng(1)
    feed = {"x": rng.standard_normal((5, 3)), "w": rng.standard_normal(3)}
    res = check_grad(_cubic(), feed, "loss", wrt=["x", "w"])
    assert res.ok and res.max_error <= 1
    assert set(res.inputs) == {"x", "w"} and res.inputs["x"].shape == (5, 3)
    assert "ok" in str(res) and "w" in str(res)


def test_check_grad_catches_a_wrong_vjp(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = dataclasses.replace(REGISTRY["tanh"], vjp=(lambda ct, out, x: ct * out,))
    monkeypatch.setitem(REGISTRY, "tanh", wrong)
    rng = np.random.default_rng(2)
    feed = {"x": rng.standard_normal((5, 3)), "w": rng.standard_normal(3)}
    res = check_grad(_cubic(), feed, "loss")
    assert not res.ok and not res.inputs["w"].ok
    assert res.inputs["w"].max_abs_error > 1e-2 * res.inputs["w"].scale
    assert "FAILED" in str(res) and "w: MISMATCH at [" in str(res)


def test_check_grad_error_measure() -> None:
    g = gc.Graph("m")
    x = g.param("x", shape=(2,))
    g.output("loss", gc.sum(x * np.array([1.0, 1e-9])))
    res = check_grad(g, {"x": np.ones(2)}, "loss")
    # the 1e-9 entry is judged against atol: finite-difference noise there is not a failure
    assert res.ok, str(res)
    assert res.inputs["x"].max_abs_error < 1e-8
