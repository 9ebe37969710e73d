"""Op cases for the compiled-versus-interpreter tests, grouped into a few models.

A native build costs seconds, and more than proportionally more for a bigger model: the code
grows with every statement and every argument. So the cases are grouped into a handful of
models of modest size, and inside a model the cases share inputs: all cases that ask for an
input of the same shape, domain, role and dtype read the same one. Each case has one output,
named by its label; the scalar `loss` is the sum over cases of `sum(out * r)`, with a fixed
random weight input `r` per output shape, so one `value_and_grad` call checks the gradient of
every case. Cases whose inputs are all data (comparisons, special values) add no loss term.

Symbolic dims: `N` is a batch that may be 0 (so nothing takes a `max` over it: a max over
nothing has no value); `K` is never 0, and `max` reduces over it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import graphc as gc
from graphc.ir.graph import Value
from graphc.ir.shapes import bind_shape
from graphc.passes.dtype import with_dtype
from tests.domains import Gen, distinct, grid, mask, nonzero, normal, small_ints, uniform

NAN, INF = math.nan, math.inf

# Every model runs at these sizes with one build: two ordinary sizes, a symbol bound to 1 (it
# must not be taken for a broadcast dim) and an empty batch.
SIZES: tuple[dict[str, int], ...] = (
    {"N": 3, "K": 2},
    {"N": 5, "K": 4},
    {"N": 1, "K": 1},
    {"N": 0, "K": 3},
)


# ---- input domains (one object each: inputs are shared by domain identity) --------------------


def fixed(values: Any) -> Gen:
    """Always the same array (of the input's shape)."""
    arr = np.asarray(values, dtype=np.float64)
    return lambda rng, shape: arr.reshape(shape).copy()


NORMAL = normal()
WIDE = normal(3.0)  # sigmoid far into both tails
HUGE = normal(300.0)  # softmax that would overflow without the shift by the max
WEIGHT = normal()  # the loss weights r (a domain of their own: never shared with operands)
POSITIVE = uniform(0.5, 2.0)
NONZERO = nonzero()
HIGH, LOW = grid(0.05), grid(-0.05)
# Special values: the pairs (A[i], B[i]) put NaN against numbers and against NaN, infinities
# against numbers and each other, and signed zeros against each other.
SPECIAL_A = fixed([NAN, 1.0, -INF, INF, 0.0, -0.0, 2.0, NAN, -1.5, INF, -INF, 0.5])
SPECIAL_B = fixed([1.0, NAN, 3.0, -INF, NAN, 0.0, 2.0, NAN, 0.0, INF, -2.0, -0.5])
SPECIAL_ROWS = fixed([[NAN, 1, 2, 3], [INF, 1, 2, 3], [-INF, 0, 1, -INF], [-INF, -INF, -INF, -INF]])
TO_BOOL = fixed([0.0, -0.0, 0.5, -0.25, 1.0, 256.0, 1e-30, -3.0, NAN, -INF])


@dataclass(frozen=True)
class In:
    """An input a case asks for: (symbolic) shape, domain, whether it is a param, dtype."""

    shape: tuple = ()
    gen: Gen = NORMAL
    grad: bool = True
    dtype: str = "float64"


@dataclass(frozen=True)
class Case:
    label: str  # the output's name
    op: str  # the registry op the case is about
    inputs: tuple[str, ...]
    numpy: Callable[..., Any] | None = None  # the same computation in NumPy, if checked so


@dataclass
class Model:
    """Many cases in one graph; `finish` adds the loss."""

    name: str
    g: gc.Graph = field(init=False)
    specs: dict[str, In] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)
    terms: list[Value] = field(default_factory=list)
    _shared: dict[tuple, Value] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.g = gc.Graph(self.name)

    def input(self, spec: In, name: str | None = None) -> Value:
        """A new input called `name`, or without a name the input shared by equal specs."""
        key = (spec.shape, id(spec.gen), spec.grad, spec.dtype)
        if name is None and key in self._shared:
            return self._shared[key]
        shared = name is None
        name = name or f"{'p' if spec.grad else 'd'}{len(self.specs)}"
        self.specs[name] = spec
        make = self.g.param if spec.grad else self.g.input
        v = make(name, shape=spec.shape, dtype=spec.dtype)
        if shared:
            self._shared[key] = v
        return v

    def case(
        self,
        label: str,
        op: str,
        fn: Callable[..., Value],
        *ins: In,
        numpy: Callable[..., Any] | None = None,
    ) -> Value:
        """Output `label` = fn(the inputs for `ins`)."""
        args = [self.input(s) for s in ins]
        names = tuple(self.g.nx.nodes[a.id]["name"] for a in args)
        self.cases.append(Case(label, op, names, numpy))
        return self.output(label, fn(*args), weighted=any(s.grad for s in ins))

    def output(self, label: str, out: Value, weighted: bool = True) -> Value:
        """Mark `out` as output `label`; if `weighted`, add sum(out * r) to the loss."""
        assert label not in self.g.outputs, f"two outputs named {label!r}"
        self.g.output(label, out)
        if weighted:
            r = self.input(In(out.shape, WEIGHT, grad=False))
            self.terms.append(gc.sum(gc.cast(out, "float64") * r))
        return out

    def finish(self) -> Model:
        if self.terms:
            loss = self.terms[0]
            for t in self.terms[1:]:
                loss = loss + t
            self.g.output("loss", loss)
        return self

    def users(self, name: str) -> list[str]:
        """The cases that read input `name`."""
        return [c.label for c in self.cases if name in c.inputs]

    def feed(self, sizes: Mapping[str, int], dtype: str = "float64") -> dict[str, np.ndarray]:
        """Seeded inputs at `sizes`, float ones in `dtype` (the dtype the model is built in)."""
        rng = np.random.default_rng(zlib.crc32(f"{self.name}{sorted(sizes.items())}".encode()))
        out = {}
        for name, spec in self.specs.items():
            arr = spec.gen(rng, bind_shape(spec.shape, sizes))
            out[name] = np.asarray(arr, dtype="bool" if spec.dtype == "bool" else dtype)
        return out

    def graph_in(self, dtype: str) -> gc.Graph:
        """The model as compiled in `dtype`: every float input, constant and cast in it."""
        return with_dtype(self.g, dtype)


def shapes_label(*shapes: tuple) -> str:
    return "|".join(",".join(map(str, s)) or "()" for s in shapes)


# ---- the op tables ---------------------------------------------------------------------------
UNARY: dict[str, tuple[Callable[[Value], Value], Gen, Callable[..., Any]]] = {
    "neg": (gc.neg, NORMAL, np.negative),
    "exp": (gc.exp, NORMAL, np.exp),
    "log": (gc.log, POSITIVE, np.log),
    "sqrt": (gc.sqrt, POSITIVE, np.sqrt),
    "tanh": (gc.tanh, NORMAL, np.tanh),
    "sigmoid": (gc.sigmoid, WIDE, lambda x: 1.0 / (1.0 + np.exp(-x))),
    "relu": (gc.relu, NONZERO, lambda x: np.maximum(x, 0.0)),
    "abs": (gc.abs, NONZERO, np.abs),
    "sign": (gc.sign, NONZERO, lambda x: np.where(np.isnan(x), 0.0, np.sign(x))),  # PyTorch's
}
BINARY: dict[str, tuple[Callable[[Value, Value], Value], Gen, Gen, Callable[..., Any]]] = {
    "add": (gc.add, NORMAL, NORMAL, np.add),
    "sub": (gc.sub, NORMAL, NORMAL, np.subtract),
    "mul": (gc.mul, NORMAL, NORMAL, np.multiply),
    "div": (gc.div, NORMAL, NONZERO, np.divide),
    "pow": (gc.pow, POSITIVE, NORMAL, np.power),
    "maximum": (gc.maximum, HIGH, LOW, np.maximum),
    "minimum": (gc.minimum, HIGH, LOW, np.minimum),
}
COMPARE: dict[str, tuple[Callable[[Value, Value], Value], Callable[..., Any]]] = {
    "less": (gc.less, np.less),
    "less_equal": (gc.less_equal, np.less_equal),
    "greater": (gc.greater, np.greater),
    "greater_equal": (gc.greater_equal, np.greater_equal),
    "equal": (gc.equal, np.equal),
    "not_equal": (gc.not_equal, np.not_equal),
}
# Broadcasting patterns for two operands; the binary ops take them in turn.
BROADCAST: list[tuple[tuple, tuple]] = [
    (("N", 3), ("N", 3)),
    (("N", 3), (3,)),
    ((2, 1, 3), (4, 1)),
    ((), ("N", 3)),
    (("N", 1), (1, 3)),
    ((1, 3), ("N", 1)),
    ((2, "N", 3), (1, 3)),
]
UNARY_SHAPES: list[tuple] = [("N", 3), (2, 1, 3), ()]


def add_unary(m: Model, ops: list[str], per_op: int) -> None:
    for k, op in enumerate(ops):
        fn, gen, _ = UNARY[op]
        for s in [UNARY_SHAPES[(k + j) % len(UNARY_SHAPES)] for j in range(per_op)]:
            m.case(f"{op}[{shapes_label(s)}]", op, fn, In(s, gen, grad=op != "sign"))


def add_binary(m: Model, ops: list[str], per_op: int) -> None:
    for k, op in enumerate(ops):
        fn, gx, gy, _ = BINARY[op]
        for j in range(per_op):
            sx, sy = BROADCAST[(k * per_op + j) % len(BROADCAST)]
            m.case(f"{op}[{shapes_label(sx, sy)}]", op, fn, In(sx, gx), In(sy, gy))


def add_compare(m: Model, ops: list[str]) -> None:
    for k, op in enumerate(ops):
        fn, _ = COMPARE[op]
        sx, sy = [(("N", 3), (3,)), ((2, 1, 3), (4, 1)), ((), ("N", 3))][k % 3]
        m.case(f"{op}[{shapes_label(sx, sy)}]", op, fn, In(sx, small_ints, grad=False),
               In(sy, small_ints, grad=False))  # fmt: skip


ELEMENTWISE_OPS = {*UNARY, *BINARY, *COMPARE, "where"}


def add_special(m: Model, ops: set[str], with_grad: set[str]) -> None:
    """NaN and infinities through the elementwise `ops`, also checked against NumPy; those in
    `with_grad` take them as params, so their gradients at special values are compared too."""

    def ins(op: str, n: int) -> tuple[In, ...]:
        return tuple(In((12,), gen, grad=op in with_grad) for gen in (SPECIAL_A, SPECIAL_B)[:n])

    table = [(op, fn, 1, ref) for op, (fn, _, ref) in UNARY.items()]
    table += [(op, fn, 2, ref) for op, (fn, _, _, ref) in BINARY.items()]
    table += [(op, fn, 2, ref) for op, (fn, ref) in COMPARE.items()]
    table.append(("where", lambda x, y: gc.where(x > y, x, y), 2,
                  lambda x, y: np.where(x > y, x, y)))  # fmt: skip
    for op, fn, arity, ref in table:
        if op in ops:
            m.case(f"{op}[special]", op, fn, *ins(op, arity), numpy=ref)


def _k(shape: tuple) -> tuple:
    """`shape` with the batch N replaced by K, which is never 0 (for max)."""
    return tuple("K" if d == "N" else d for d in shape)


REDUCE_AXES: list[tuple[tuple, Any, bool]] = [
    (("N", 3), 0, False),
    (("N", 3), 1, True),
    (("N", 3), None, False),
    ((2, 3, 4), (0, 2), False),
    ((2, 3, 4), (-1, -3), True),
    ((2, "N", 4), 1, True),
    ((), None, False),
    ((1, 3), 0, False),
]


def add_reduce(m: Model, op: str, axes: list[tuple[tuple, Any, bool]]) -> None:
    fn = {"sum": gc.sum, "mean": gc.mean, "max": gc.max}[op]
    for s, axis, keep in axes:
        s = _k(s) if op == "max" else s
        tag = f"axis={axis}".replace(" ", "") + (",keepdims" if keep else "")
        m.case(f"{op}[{shapes_label(s)};{tag}]", op,
               lambda x, a=axis, k=keep: fn(x, a, keepdims=k),
               In(s, distinct if op == "max" else NORMAL))  # fmt: skip


SOFTMAX_AXES: list[tuple[tuple, int, Gen]] = [
    (("N", 4), -1, NORMAL),
    (("N", 4), 0, NORMAL),
    ((2, 3, 4), 1, NORMAL),
    ((4, 1), 1, NORMAL),
    ((2, 3), -1, HUGE),
]


def add_softmax(m: Model, op: str, axes: list[tuple[tuple, int, Gen]]) -> None:
    fn = {"softmax": gc.softmax, "log_softmax": gc.log_softmax}[op]
    for s, axis, gen in axes:
        m.case(f"{op}[{shapes_label(s)};axis={axis}]", op, lambda x, a=axis: fn(x, a), In(s, gen))


T = gc.swapaxes
# (label, builder, shape of x, shape of y); `simplify` turns the transposes into layout flags.
MATMUL: list[tuple[str, Callable[[Value, Value], Value], tuple, tuple]] = [
    ("1d@1d", gc.matmul, (3,), (3,)),
    ("1d@2d", gc.matmul, (3,), (3, 4)),
    ("2d@1d", gc.matmul, ("N", 3), (3,)),
    ("2d@2d", gc.matmul, ("N", 3), (3, 4)),
    ("x@w.T", lambda x, w: x @ w.T, ("N", 3), (4, 3)),
    ("x.T@y", lambda x, y: x.T @ y, ("N", 3), ("N", 4)),
    ("x.T@w.T", lambda x, w: x.T @ w.T, ("N", 3), (4, "N")),
    ("v@w.T", lambda v, w: v @ w.T, (3,), (4, 3)),
    ("w.T@v", lambda w, v: w.T @ v, (3, 4), (3,)),
    ("batched", gc.matmul, (2, "N", 3), (2, 3, 4)),
    ("batch-broadcast", gc.matmul, (2, 1, "N", 3), (3, 3, 4)),
    ("batch@2d", gc.matmul, (2, "N", 3), (3, 4)),
    ("2d@batch", gc.matmul, (4, 3), (2, 3, "N")),
    ("swap(a)@b", lambda a, b: T(a) @ b, (2, 3, "N"), (2, 3, 4)),
    ("a@swap(b)", lambda a, b: a @ T(b), (2, "N", 3), (1, 4, 3)),
    ("swap(a)@swap(b)", lambda a, b: T(a) @ T(b), (2, 3, "N"), (2, 4, 3)),
    ("1d@batch", gc.matmul, (3,), (2, 3, 4)),
    ("batch@1d", gc.matmul, (2, 4, 3), (3,)),
]

TRANSPOSE: list[tuple[str, Callable[[Value], Value], tuple]] = [
    (".T", lambda x: x.T, ("N", 3)),
    ("(1,0,2)", lambda x: gc.transpose(x, (1, 0, 2)), ("N", 3, 4)),
    ("(2,0,1)", lambda x: gc.transpose(x, (2, 0, 1)), ("N", 3, 4)),
    ("(0,2,1)", lambda x: gc.transpose(x, (0, 2, 1)), (2, 3, "N")),
    ("(3,1,0,2)", lambda x: gc.transpose(x, (3, 1, 0, 2)), (2, "N", 1, 3)),
    ("tanh(x.T)", lambda x: gc.tanh(x.T), (3, "N")),
]
RESHAPE: list[tuple[str, Callable[[Value], Value], tuple]] = [
    ("N,3->N,3,1", lambda x: gc.reshape(x, ("N", 3, 1)), ("N", 3)),
    ("2,6->3,4", lambda x: gc.reshape(x, (3, 4)), (2, 6)),
    ("2,3,N->6,N", lambda x: gc.reshape(x, (6, "N")), (2, 3, "N")),
    ("tanh->reshape", lambda x: gc.reshape(gc.tanh(x), (3, 2)), (2, 3)),
    ("reshape->tanh", lambda x: gc.tanh(gc.reshape(x, ("N", 2, 2))), ("N", 4)),
]
BROADCAST_TO: list[tuple[str, Callable[[Value], Value], tuple]] = [
    ("3->N,3", lambda x: gc.broadcast_to(x, ("N", 3)), (3,)),
    ("2,1,4->2,3,4", lambda x: gc.broadcast_to(x, (2, 3, 4)), (2, 1, 4)),
    ("()->2,3", lambda x: gc.broadcast_to(x, (2, 3)), ()),
    ("exp(b(x))", lambda x: gc.exp(gc.broadcast_to(x, ("N", 2))), (2,)),
]


def _alias_then_in_place(x: Value) -> Value:
    """A reshape shares t's bytes; exp(t) may only overwrite t once the reshape is read."""
    t = x * 2.0
    a = gc.reshape(t, (3, "N"))
    b = gc.exp(t)
    return a * 3.0 + gc.reshape(b, (3, "N"))


def _in_place_chain(x: Value) -> Value:
    """Elementwise steps that may each write over the last, with a value read twice."""
    t = gc.tanh(x)
    u = gc.exp(t) * t
    return gc.sqrt(u * u + 1.0) - t


# ---- the models ------------------------------------------------------------------------------
def elementwise_model(name: str) -> Model:
    """Unary ops on several shapes, constant operands, one value used twice, in-place chains."""
    m = Model(name)
    add_unary(m, list(UNARY), per_op=2)
    for label, op, fn, gen in [
        ("x+1.5", "add", lambda x: x + 1.5, NORMAL),
        ("2-x", "sub", lambda x: 2.0 - x, NORMAL),
        ("x*row", "mul", lambda x: x * np.array([0.5, -2.0, 0.1]), NORMAL),
        ("x*-2.5", "mul", lambda x: x * -2.5, NORMAL),
        ("exp(x>0?x:-inf)", "where", lambda x: gc.exp(gc.where(x > 0, x, -INF)), NONZERO),
        ("1/x", "div", lambda x: 1.0 / x, NONZERO),
        ("x**2", "pow", lambda x: x**2, NORMAL),
        ("x**0.5", "pow", lambda x: x**0.5, POSITIVE),
        ("2**x", "pow", lambda x: 2.0**x, NORMAL),
        ("max(x,0)", "maximum", lambda x: gc.maximum(x, 0.0), HIGH),
        ("min(0,x)", "minimum", lambda x: gc.minimum(0.0, x), HIGH),
        ("x*x", "mul", lambda x: x * x, NORMAL),
        ("x/x", "div", lambda x: x / x, NONZERO),
        ("x**x", "pow", lambda x: x**x, POSITIVE),
        ("max(x,x)", "maximum", lambda x: gc.maximum(x, x), NORMAL),
        ("x>0?x:2x", "where", lambda x: gc.where(x > 0, x, x * 2.0), NONZERO),
        ("alias-then-in-place", "reshape", _alias_then_in_place, NORMAL),
        ("in-place-chain", "mul", _in_place_chain, NORMAL),
    ]:
        m.case(label, op, fn, In(("N", 3), gen))
    return m.finish()


def broadcast_model(name: str) -> Model:
    """Binary ops under broadcasting, comparisons, where, cast."""
    m = Model(name)
    add_binary(m, list(BINARY), per_op=2)
    m.case("pow[2,3|()]", "pow", gc.pow, In((2, 3), POSITIVE), In(()))
    add_compare(m, list(COMPARE))
    m.case("1<x", "greater", lambda x: 1.0 < x, In(("N", 3), small_ints, grad=False))
    where = lambda c, x, y: gc.where(c > 0, x, y)
    for sc, sx, sy in [(("N", 3), ("N", 3), (3,)), ((3, 1), (4,), ()),
                       (("N", 1, 3), (2, 1), ("N", 1, 1))]:  # fmt: skip
        m.case(f"where[{shapes_label(sc, sx, sy)}]", "where", where,
               In(sc, NONZERO, grad=False), In(sx), In(sy))  # fmt: skip
    m.case("where[x>y]", "where", lambda x, y: gc.where(x > y, x, y),
           In(("N", 3), HIGH), In((3,), LOW))  # fmt: skip
    m.case("where[bool input]", "where", gc.where, In(("N", 3), mask, False, "bool"),
           In(("N", 3)), In((3,)))  # fmt: skip
    # cast: from and to bool; a float-to-float cast becomes the build dtype and vanishes
    m.case("cast[x>0]*y", "cast", lambda x, y: gc.cast(x > 0, "float64") * y,
           In(("N", 3), NONZERO, grad=False), In(("N", 3)))  # fmt: skip
    m.case("cast[bool input]", "cast", lambda b: gc.cast(b, "float64"),
           In((2, 3), mask, False, "bool"))  # fmt: skip
    m.case("cast[x,bool]", "cast", lambda x: gc.cast(x, "bool"), In((10,), TO_BOOL, grad=False),
           numpy=lambda x: x.astype(bool))  # fmt: skip
    m.case("cast[x,float32]*x", "cast", lambda x: gc.cast(x, "float32") * x, In(("N", 3)))
    return m.finish()


def reduce_model(name: str) -> Model:
    """sum, mean and max over various axes, size, and special values through every
    elementwise op, max and sum."""
    m = Model(name)
    for op in ("sum", "mean"):
        add_reduce(m, op, REDUCE_AXES)
    add_reduce(m, "max", [a for a in REDUCE_AXES if a[0] not in ((), ("N", 3))])
    m.case("max[K,3;axis=1;ties]", "max", lambda x: gc.max(x, 1), In(("K", 3), small_ints))
    m.case("max[2,3,4;axis=None;ties]", "max", lambda x: gc.max(x), In((2, 3, 4), small_ints))
    m.case("max[N,3;axis=1]", "max", lambda x: gc.max(x, 1, keepdims=True), In(("N", 3), distinct))
    m.case("size[2,N,K;axis=(1,2)]", "size", lambda x: gc.size(x, (1, 2)),
           In((2, "N", "K"), grad=False))  # fmt: skip
    m.case("x/size(x,0)", "size", lambda x: x / gc.size(x, 0), In(("N", 3)))
    add_special(m, ELEMENTWISE_OPS, with_grad={"maximum", "minimum", "relu", "where"})
    for op, fn, ref in (("max", gc.max, np.max), ("sum", gc.sum, np.sum)):
        m.case(f"{op}[special;axis=1]", op, lambda x, f=fn: f(x, 1), In((4, 4), SPECIAL_ROWS),
               numpy=lambda x, f=ref: f(x, axis=1))  # fmt: skip
    return m.finish()


WEIRD_NAME = 'it\'s a "name" {x} \\ é'  # an output name with quotes, braces, a backslash


def structured_model(name: str) -> Model:
    """softmax and log_softmax, transpose, reshape, broadcast_to; outputs that are inputs or
    one value under two names."""
    m = Model(name)
    for op in ("softmax", "log_softmax"):
        add_softmax(m, op, SOFTMAX_AXES)
        m.case(f"{op}[special]", op, lambda x, o=op: getattr(gc, o)(x, -1),
               In((4, 4), SPECIAL_ROWS, grad=False))  # fmt: skip
    for table, op in ((TRANSPOSE, "transpose"), (RESHAPE, "reshape"),
                      (BROADCAST_TO, "broadcast_to")):  # fmt: skip
        for label, fn, s in table:
            m.case(f"{op}[{label}]", op, fn, In(s))
    x = m.input(In(("N", 3)), name="x")
    m.output("out=input", x)
    m.output("out=input(again)", x)
    t = gc.tanh(x)
    m.output("out=tanh", t)
    m.output("out=tanh(again)", t)
    m.output("out=reshape(tanh)", gc.reshape(t, (3, "N")))
    m.output(WEIRD_NAME, t, weighted=False)
    return m.finish()


def matmul_model(name: str) -> Model:
    m = Model(name)
    for label, fn, sx, sy in MATMUL:
        m.case(f"matmul[{label}]", "matmul", fn, In(sx), In(sy))
    m.case("matmul[x@x]", "matmul", lambda x: x @ x, In((3, 3)))
    m.case("matmul[x@x.T]", "matmul", lambda x: x @ x.T, In(("N", 3)))
    return m.finish()


def f32_model(name: str) -> Model:
    """Every op once or twice, matmul in each layout, for the float32 build."""
    m = Model(name)
    add_unary(m, list(UNARY), per_op=1)
    add_binary(m, list(BINARY), per_op=1)
    add_compare(m, list(COMPARE))
    m.case("x**2", "pow", lambda x: x**2, In(("N", 3)))
    m.case("where[x>0]", "where", lambda c, x, y: gc.where(c > 0, x, y),
           In(("N", 3), NONZERO, grad=False), In(("N", 3)), In((3,)))  # fmt: skip
    m.case("cast[x>0]*y", "cast", lambda x, y: gc.cast(x > 0, "float64") * y,
           In(("N", 3), NONZERO, grad=False), In(("N", 3)))  # fmt: skip
    add_special(m, {"maximum", "relu", "not_equal"}, {"maximum", "relu"})
    add_reduce(m, "sum", [REDUCE_AXES[0]])
    add_reduce(m, "mean", [REDUCE_AXES[4]])
    add_reduce(m, "max", [REDUCE_AXES[1]])
    m.case("x/size(x)", "size", lambda x: x / gc.size(x), In(("N", 3)))
    add_softmax(m, "softmax", [SOFTMAX_AXES[0]])
    add_softmax(m, "log_softmax", [SOFTMAX_AXES[2]])
    for label, fn, sx, sy in [MATMUL[i] for i in (4, 5, 15, 17)]:
        m.case(f"matmul[{label}]", "matmul", fn, In(sx), In(sy))
    for table, op in ((TRANSPOSE[2], "transpose"), (RESHAPE[0], "reshape"),
                      (BROADCAST_TO[0], "broadcast_to")):  # fmt: skip
        label, fn, s = table
        m.case(f"{op}[{label}]", op, fn, In(s))
    return m.finish()


def const_outputs_model(name: str) -> Model:
    """Outputs that are constants: an array, a scalar, one with NaN and Inf, one that a step
    also reads, and a size that `simplify` folds to a constant."""
    m = Model(name)
    x = m.input(In(("N", 3)), name="x")
    c = m.g.const(np.array([0.5, -2.0, 4.0]))
    m.output("y", gc.tanh(x) * c)
    m.output("c_read", c, weighted=False)
    m.output("c_array", m.g.const(np.arange(6.0).reshape(2, 3)), weighted=False)
    m.output("c_scalar", m.g.const(2.5), weighted=False)
    m.output("c_special", m.g.const(np.array([[1.0, -2.0], [NAN, INF]])), weighted=False)
    z = m.input(In((2, "N", 4), grad=False), name="z")
    m.output("size_folded", gc.size(z, (0, 2)), weighted=False)
    return m.finish()


def forward_only_model(name: str) -> Model:
    """Data inputs only: nothing to differentiate, so the module has `forward` alone."""
    m = Model(name)
    x = m.input(In(("N", 3), grad=False), name="x")
    y = m.input(In((3,), grad=False), name="y")
    h = gc.tanh(x * y)
    outputs = {
        "x": x,
        "x_again": x,
        "h": h,
        "h_again": h,
        "h_reshaped": gc.reshape(h, (3, "N")),
        "x_reshaped": gc.reshape(x, ("N", 3, 1)),
        "sum": gc.sum(x, 0),
        "mean": gc.mean(x, 0),
        "loss": gc.sum(h),
    }
    for label, v in outputs.items():
        m.g.output(label, v)
    return m


# Model name -> (builder, the dtypes it is built in). The float64 models together cover every
# op, and so do the float32 ones.
MODELS: dict[str, tuple[Callable[[str], Model], tuple[str, ...]]] = {
    "elementwise": (elementwise_model, ("float64",)),
    "broadcast": (broadcast_model, ("float64",)),
    "reduce": (reduce_model, ("float64",)),
    "structured": (structured_model, ("float64",)),
    "matmul": (matmul_model, ("float64",)),
    "f32": (f32_model, ("float32",)),
    "const_outputs": (const_outputs_model, ("float64",)),
}


def _family_models() -> dict[str, tuple[Callable[[str], Model], tuple[str, ...]]]:
    """The models of the op families with case modules of their own (they import this one)."""
    from tests.codegen import (
        cases_conv,
        cases_conv1d,
        cases_conv3d,
        cases_indexing,
        cases_int,
        cases_math,
        cases_pool,
        cases_reductions,
        cases_scan,
        cases_spatial,
    )

    families = (cases_conv, cases_conv1d, cases_conv3d, cases_indexing, cases_math, cases_int,
                cases_reductions, cases_spatial, cases_pool, cases_scan)  # fmt: skip
    return {name: model for family in families for name, model in family.MODELS.items()}


MODELS.update(_family_models())
