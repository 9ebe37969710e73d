"""Hypothesis strategies for random valid graphc models.

A model is drawn as a `ModelSpec`: a list of items (leaves, constants and builder calls, each
call's operands referring to earlier items) that `build` replays into any graph, under a name
prefix, so that several models can share one graph (one native build checks them all), and that
`code` prints as the builder code that makes it (what a failing example shows, ready to paste
into a regression test).

While a model is drawn it is built in a scratch graph, whose shape rules say what each value is,
and evaluated with the ops' NumPy references on the model's own inputs at N = 3, so that the
strategy knows every value's magnitude: a value that grew large is scaled down by a constant
power of two before it is used further, `exp` only sees values of moderate size, and the
operands of `log`, `sqrt`, a divisor or the base of a power are first made positive by an
expression that is positive whatever the inputs (`exp(x)`, `x * x + 0.5`, ...). So finite
differences of the loss are meaningful and float32 stays far from overflow.

Every op of the registry with a gradient is drawn somewhere (`OPS_DRAWN` lists them, and a test
checks the list against the registry), including the gradient ops used as forward ops; `sign`,
the comparisons, `one_hot` and `size` enter as conditions, masks and divisors. The symbol "N"
may appear in input shapes; "N" may be bound to 0, so nothing takes a max over an axis of size
N, and indices never index such an axis.
"""

from __future__ import annotations

import math
import operator
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import graphc as gc
from graphc.ir.dag import operands
from graphc.ir.graph import Value
from graphc.ir.shapes import ShapeMismatch, bind_shape, broadcast_shapes
from graphc.ops._build import apply
from graphc.ops.conv import conv2d_grad_input, conv2d_grad_weight
from graphc.ops.conv1d import conv1d_grad_input, conv1d_grad_weight
from graphc.ops.conv3d import conv3d_grad_input, conv3d_grad_weight
from graphc.ops.indexing import take_grad
from graphc.ops.pool import avg_pool2d_grad, max_pool2d_gather, max_pool2d_grad
from graphc.ops.registry import REGISTRY

BUILD_SIZES = {"N": 3}  # the size of N the strategy evaluates models at while drawing them
MAX_ELEMENTS = 400  # no value is larger than this at N = 3
MAX_PARAM_ELEMENTS = 96  # past this many param elements, new leaves are data inputs
TAME = 8.0  # values larger than this are scaled down before further use
EXP_LIMIT = 4.0  # exp(x) and 2 ** x only for |x| up to this


# ---- the model description ---------------------------------------------------------------------
@dataclass(frozen=True)
class Ref:
    """Operand: the value of item `i` of the model."""

    i: int


@dataclass(frozen=True)
class Leaf:
    """An input. `domain`: ("normal", scale), ("positive",) (uniform in [0.5, 2]), ("index",
    n) (ints in [-n, n)), ("labels", n) (ints in [0, n)) or ("bool",)."""

    name: str
    role: str  # "param" or "data"
    shape: tuple
    dtype: str = "float64"
    domain: tuple = ("normal", 1.0)


@dataclass(frozen=True)
class Const:
    """A float64 constant array (or scalar) node of the graph."""

    value: Any  # nested lists of floats, or a float


@dataclass(frozen=True)
class Call:
    """`FUNCS[fn](*args, **kwargs)`, with Refs (also inside lists) replaced by values."""

    fn: str
    args: tuple
    kwargs: tuple = ()  # sorted (name, value) pairs


Item = Leaf | Const | Call


def recurrence(x: Value, w: Value, reverse: bool = False) -> Value:
    """A loop along axis 0 of x: c <- tanh(c * w + x[t]) from c = 0.5 * w (broadcast to a
    slice), each step's result c * x[t] stacked (gc.scan: the scan and scan_out ops)."""

    def cell(c: Value, xt: Value) -> tuple[Value, Value]:
        c = gc.tanh(c * w + xt)
        return c, c * xt

    init = gc.broadcast_to(w * 0.5, x.shape[1:])
    return gc.scan(cell, init, x, reverse=reverse)[1]


def _attr(name: str) -> Callable[[Value], Value]:
    return lambda x: getattr(x, name)


# fn -> (callable, code template): "{0} + {1}" for operators, else the function's name in code
FUNCS: dict[str, tuple[Callable[..., Any], str]] = {
    "add": (operator.add, "{0} + {1}"),
    "sub": (operator.sub, "{0} - {1}"),
    "mul": (operator.mul, "{0} * {1}"),
    "div": (operator.truediv, "{0} / {1}"),
    "pow": (operator.pow, "{0} ** {1}"),
    "neg": (operator.neg, "-{0}"),
    "matmul": (operator.matmul, "{0} @ {1}"),
    "gt": (operator.gt, "{0} > {1}"),
    "lt": (operator.lt, "{0} < {1}"),
    "ge": (operator.ge, "{0} >= {1}"),
    "le": (operator.le, "{0} <= {1}"),
    "getitem": (operator.getitem, "{0}[{1}]"),
    "T": (_attr("T"), "{0}.T"),
    "apply": (apply, "apply"),
    "take_grad": (take_grad, "take_grad"),
    "conv2d_grad_input": (conv2d_grad_input, "conv2d_grad_input"),
    "conv2d_grad_weight": (conv2d_grad_weight, "conv2d_grad_weight"),
    "conv1d_grad_input": (conv1d_grad_input, "conv1d_grad_input"),
    "conv1d_grad_weight": (conv1d_grad_weight, "conv1d_grad_weight"),
    "conv3d_grad_input": (conv3d_grad_input, "conv3d_grad_input"),
    "conv3d_grad_weight": (conv3d_grad_weight, "conv3d_grad_weight"),
    "max_pool2d_grad": (max_pool2d_grad, "max_pool2d_grad"),
    "max_pool2d_gather": (max_pool2d_gather, "max_pool2d_gather"),
    "avg_pool2d_grad": (avg_pool2d_grad, "avg_pool2d_grad"),
    "recurrence": (recurrence, "recurrence"),
}
for _name in (
    "tanh sigmoid exp log sqrt erf erfc gelu relu abs sign maximum minimum where cast equal "
    "not_equal sum mean max logsumexp softmax log_softmax layer_norm transpose swapaxes reshape "
    "broadcast_to take concat one_hot size conv1d conv2d conv3d max_pool2d avg_pool2d interpolate "
    "max_pool1d max_pool3d avg_pool1d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d "
    "adaptive_avg_pool3d max_unpool1d max_unpool2d max_unpool3d "
    "softmax_cross_entropy mse_loss sin cos tan asin acos atan sinh cosh asinh acosh atanh "
    "expm1 exp2 log1p log2 "
    "reciprocal rsqrt square softplus silu mish elu leaky_relu hardtanh hardsigmoid hardswish "
    "logsigmoid softsign atan2 copysign fmod remainder clip min prod var std norm cumsum "
    "cumprod logcumsumexp linrec shift gather scatter scatter_add pad"
).split():
    FUNCS[_name] = (getattr(gc, _name), f"gc.{_name}")


def _resolve(a: Any, values: Sequence[Value]) -> Any:
    if isinstance(a, Ref):
        return values[a.i]
    if isinstance(a, list):
        return [_resolve(b, values) for b in a]
    return a


def _key_text(k: Any) -> str:
    if k is None:
        return "None"
    if k is Ellipsis:
        return "..."
    if isinstance(k, slice):
        parts = ["" if v is None else str(v) for v in (k.start, k.stop)]
        text = ":".join(parts)
        return text + (f":{k.step}" if k.step is not None else "")
    return repr(k)


def _lit(a: Any, names: Sequence[str]) -> str:
    if isinstance(a, Ref):
        return names[a.i]
    if isinstance(a, list):
        return "[" + ", ".join(_lit(b, names) for b in a) + "]"
    if isinstance(a, np.ndarray):
        return f"np.array({a.tolist()!r})"
    return repr(a)


@dataclass(frozen=True)
class ModelSpec:
    """A model: items in build order, its outputs (name -> item; "loss" is the scalar to
    differentiate) and the seed of its input data."""

    items: tuple[Item, ...]
    outputs: tuple[tuple[str, int], ...]
    seed: int

    # ---- building and feeding ------------------------------------------------------------
    def build(self, g: gc.Graph, prefix: str = "") -> dict[str, Value]:
        """Add the model to `g`, its inputs named with `prefix`; returns its outputs."""
        values: list[Value] = []
        for item in self.items:
            if isinstance(item, Leaf):
                make = g.param if item.role == "param" else g.input
                values.append(make(prefix + item.name, shape=item.shape, dtype=item.dtype))
            elif isinstance(item, Const):
                values.append(g.const(np.array(item.value, dtype=np.float64)))
            else:
                fn = FUNCS[item.fn][0]
                args = [_resolve(a, values) for a in item.args]
                values.append(fn(*args, **dict(item.kwargs)))
        return {name: values[i] for name, i in self.outputs}

    def graph(self, name: str = "fuzz") -> gc.Graph:
        """The model alone, its outputs under their own names."""
        g = gc.Graph(name)
        for k, v in self.build(g).items():
            g.output(k, v)
        return g

    def leaves(self) -> list[Leaf]:
        return [it for it in self.items if isinstance(it, Leaf)]

    def params(self) -> list[str]:
        return [leaf.name for leaf in self.leaves() if leaf.role == "param"]

    def feed(self, sizes: Mapping[str, int], prefix: str = "") -> dict[str, np.ndarray]:
        """The model's inputs at `sizes` (float64; the same arrays whatever the prefix)."""
        return {prefix + leaf.name: leaf_array(leaf, self.seed, sizes) for leaf in self.leaves()}

    # ---- reading --------------------------------------------------------------------------
    def code(self) -> str:
        """Builder code that makes this model in a graph `g` (and its feed)."""
        names: list[str] = []
        lines = []
        for i, item in enumerate(self.items):
            if isinstance(item, Leaf):
                names.append(item.name)
                make = "param" if item.role == "param" else "input"
                dtype = "" if item.dtype == "float64" else f", dtype={item.dtype!r}"
                lines.append(f"{item.name} = g.{make}({item.name!r}, shape={item.shape!r}"
                             f"{dtype})  # {item.domain}")  # fmt: skip
                continue
            names.append(f"v{i}")
            if isinstance(item, Const):
                lines.append(f"v{i} = g.const(np.array({item.value!r}))")
                continue
            fn, text = FUNCS[item.fn]
            if item.fn == "getitem":
                x, key = item.args
                key = key if isinstance(key, tuple) else (key,)
                keys = ", ".join(_key_text(k) for k in key) if key else "()"
                expr = f"{names[x.i]}[{keys}]"
            elif "{0}" in text:
                expr = text.format(*(_lit(a, names) for a in item.args))
            else:
                args = [_lit(a, names) for a in item.args]
                args += [f"{k}={_lit(v, names)}" for k, v in item.kwargs]
                expr = f"{text}({', '.join(args)})"
            lines.append(f"v{i} = {expr}")
        for name, i in self.outputs:
            lines.append(f"g.output({name!r}, {names[i]})")
        lines.append(f"# inputs: spec.feed(sizes), seed {self.seed}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ModelSpec(  # {len(self.items)} items\n{self.code()}\n)"


def leaf_array(leaf: Leaf, seed: int, sizes: Mapping[str, int]) -> np.ndarray:
    """The data of input `leaf` at `sizes`: a function of the seed, its name and the sizes."""
    shape = bind_shape(leaf.shape, sizes)
    key = [seed, zlib.crc32(leaf.name.encode()), *(sizes[k] for k in sorted(sizes))]
    rng = np.random.default_rng(key)
    kind = leaf.domain[0]
    if kind == "normal":
        return leaf.domain[1] * rng.standard_normal(shape)
    if kind == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if kind == "index":
        n = leaf.domain[1]
        return rng.integers(-n, n, shape).astype(leaf.dtype)
    if kind == "labels":
        return rng.integers(0, leaf.domain[1], shape).astype(leaf.dtype)
    if kind == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    raise ValueError(f"unknown domain {leaf.domain!r}")


def batch_graph(specs: Sequence[ModelSpec], name: str = "fuzz") -> gc.Graph:
    """The models side by side in one graph: model i's inputs and outputs prefixed "m{i}_",
    and "loss" the sum of their losses."""
    g = gc.Graph(name)
    total = None
    for i, spec in enumerate(specs):
        for k, v in spec.build(g, prefix(i)).items():
            g.output(prefix(i) + k, v)
            if k == "loss":
                total = v if total is None else total + v
    assert total is not None
    g.output("loss", total)
    return g


def batch_feed(specs: Sequence[ModelSpec], sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    feed: dict[str, np.ndarray] = {}
    for i, spec in enumerate(specs):
        feed.update(spec.feed(sizes, prefix(i)))
    return feed


def prefix(i: int) -> str:
    return f"m{i}_"


SCALAR_FORMS = ("x+c", "c+x", "x-c", "c-x", "x*c", "c*x", "x/c", "c/x", "x**2", "x**3.0",
                "x**0.5", "x**-1.5", "2**x", "max(x,c)", "min(c,x)")  # fmt: skip


# ---- drawing a model ---------------------------------------------------------------------------
@dataclass
class _Info:
    pos: bool = False  # positive for any inputs (not merely for these)
    aux: bool = False  # not an operand for later steps (the loss weights)


class _Reject(Exception):
    """The step drawn cannot be made here; its items are dropped."""


def _is_int(d: Any) -> bool:
    return isinstance(d, int)


def _concrete(shape: tuple) -> tuple[int, ...]:
    return bind_shape(shape, BUILD_SIZES)


@dataclass
class _Maker:
    """The state of one model being drawn: its items so far, each item's value in the scratch
    graph `g` and what is known of it (`info`), and the NumPy values of the scratch graph's
    nodes at BUILD_SIZES (`vals`). Each `step_*` method adds one step and returns its value;
    it raises _Reject when it cannot be made, and `step` then drops what it added."""

    draw: Callable[[st.SearchStrategy], Any]
    seed: int
    salt: int = 0
    items: list[Item] = field(default_factory=list)
    values: list[Value] = field(default_factory=list)
    info: list[_Info] = field(default_factory=list)
    g: gc.Graph = field(default_factory=lambda: gc.Graph("scratch"))
    vals: dict[int, np.ndarray] = field(default_factory=dict)
    leaf_count: int = 0
    param_elements: int = 0

    # ---- hypothesis draws ---------------------------------------------------------------
    def between(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def choice(self, seq: Sequence[Any]) -> Any:
        """An element of `seq`. Hypothesis draws small indices more often than others (and
        shrinks towards 0), so the index is rotated by an offset that depends on the model's
        `salt` and on the list: each model has other favourites."""
        seq = list(seq)
        offset = self.salt + zlib.crc32(repr(seq).encode())
        return seq[(self.draw(st.integers(0, len(seq) - 1)) + offset) % len(seq)]

    def flag(self) -> bool:
        return self.draw(st.booleans())

    # ---- items ----------------------------------------------------------------------------
    def _push(self, item: Item, value: Value, start: int, pos: bool, aux: bool = False) -> Ref:
        self._evaluate(start)
        arr = self.vals[value.id]
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)):
                raise _Reject("not finite")
        if arr.size > MAX_ELEMENTS:
            raise _Reject("too large")
        self.items.append(item)
        self.values.append(value)
        self.info.append(_Info(pos, aux))
        return Ref(len(self.items) - 1)

    def _evaluate(self, start: int) -> None:
        """Values of the scratch graph's nodes from id `start` on, with the ops' references."""
        G = self.g.nx
        for n in range(start, self.g._next_id):
            if n not in G or n in self.vals:
                continue
            a = G.nodes[n]
            if a["op"] == "const":
                self.vals[n] = a["value"]
                continue
            op = REGISTRY[a["op"]]
            params = dict(a["params"])
            for key in op.shape_params:
                params[key] = bind_shape(params[key], BUILD_SIZES)
            with np.errstate(all="ignore"):
                out = op.ref(*(self.vals[u] for u in operands(G, n)), **params)
            self.vals[n] = out if isinstance(out, tuple) else np.asarray(out, dtype=a["dtype"])

    def leaf(
        self, shape: tuple, role: str = "param", domain: tuple = ("normal", 1.0),
        dtype: str = "float64", aux: bool = False, force: bool = False,
    ) -> Ref:  # fmt: skip
        size = math.prod(_concrete(shape))
        if role == "param" and self.param_elements + size > MAX_PARAM_ELEMENTS and not force:
            role = "data"
        if role == "param":
            self.param_elements += size
        head = {"param": "p", "data": "x"}[role] if dtype == "float64" else "i"
        name = f"{'r' if aux else head}{self.leaf_count}"
        self.leaf_count += 1
        leaf = Leaf(name, role, tuple(shape), dtype, domain)
        start = self.g._next_id
        make = self.g.param if role == "param" else self.g.input
        v = make(name, shape=shape, dtype=dtype)
        self.vals[v.id] = leaf_array(leaf, self.seed, BUILD_SIZES)
        pos = domain[0] == "positive"
        return self._push(leaf, v, start, pos, aux)

    def const(self, value: Any) -> Ref:
        value = np.asarray(value, dtype=np.float64).tolist()
        start = self.g._next_id
        v = self.g.const(np.array(value, dtype=np.float64))
        pos = bool(np.all(np.asarray(value) > 0))
        return self._push(Const(value), v, start, pos)

    def call(self, fn: str, *args: Any, pos: bool = False, **kwargs: Any) -> Ref:
        start = self.g._next_id
        v = FUNCS[fn][0](*(_resolve(a, self.values) for a in args), **kwargs)
        if not isinstance(v, Value):
            raise TypeError(f"{fn} made {v!r}")
        return self._push(Call(fn, tuple(args), tuple(sorted(kwargs.items()))), v, start, pos)

    # ---- what a value is -------------------------------------------------------------------
    def shape(self, r: Ref) -> tuple:
        return self.values[r.i].shape

    def arr(self, r: Ref) -> np.ndarray:
        return self.vals[self.values[r.i].id]

    def mag(self, r: Ref) -> float:
        a = self.arr(r)
        return float(np.max(np.abs(a))) if a.size else 0.0

    def is_float(self, r: Ref) -> bool:
        return self.values[r.i].dtype == "float64"

    def pool(self, pred: Callable[[Ref], bool] | None = None) -> list[Ref]:
        """Float values usable as operands that satisfy `pred`, the latest first."""
        refs = [Ref(i) for i in range(len(self.items) - 1, -1, -1)]
        return [
            r for r in refs
            if not self.info[r.i].aux and self.is_float(r) and (pred is None or pred(r))
        ]  # fmt: skip

    def pick(self, pred: Callable[[Ref], bool] | None = None) -> Ref | None:
        refs = self.pool(pred)
        return refs[self.between(0, len(refs) - 1)] if refs else None

    # ---- keeping values in a safe range -------------------------------------------------------
    def tame(self, r: Ref, limit: float = TAME) -> Ref:
        """`r`, scaled by a power of two if it is larger than `limit`."""
        m = self.mag(r)
        if m <= limit:
            return r
        k = math.ceil(math.log2(m / limit))
        return self.call("mul", r, 2.0**-k, pos=self.info[r.i].pos)

    def positive(self, r: Ref) -> Ref:
        """A value positive for any inputs and at least about 0.05 here, computed from `r`."""
        if self.info[r.i].pos and self.arr(r).size and self.arr(r).min() >= 0.05:
            return r
        how = self.choice(["square", "exp", "sigmoid", "softplus", "abs"])
        if how == "square":
            sq = self.call("mul", r, r)
            return self.call("add", sq, 0.5, pos=True)
        if how == "exp":
            return self.call("exp", self.tame(r, 3.0), pos=True)
        if how == "sigmoid":
            return self.call("add", self.call("sigmoid", r), 0.1, pos=True)
        if how == "softplus":
            e = self.call("exp", self.tame(r, 3.0), pos=True)
            return self.call("log", self.call("add", 1.0, e, pos=True), pos=True)
        return self.call("add", self.call("abs", r), 0.2, pos=True)

    # ---- shapes ------------------------------------------------------------------------------
    def dims(self, n: int, lo: int = 1, hi: int = 4) -> tuple[int, ...]:
        return tuple(self.between(lo, hi) for _ in range(n))

    def new_shape(self, lo_rank: int = 0, hi_rank: int = 3) -> tuple:
        shape: tuple = self.dims(self.between(lo_rank, hi_rank))
        if shape and self.flag():  # a symbolic batch, usually first
            at = 0 if self.flag() or len(shape) == 1 else self.between(0, len(shape) - 1)
            shape = (*shape[:at], "N", *shape[at + 1 :])
        return shape

    def partner_shape(self, shape: tuple) -> tuple:
        """A shape that broadcasts with `shape`: a suffix, with some dims 1."""
        keep = self.between(0, len(shape))
        out = tuple(1 if self.flag() else d for d in shape[len(shape) - keep :])
        if self.flag() and len(out) < 4:
            out = (self.between(1, 3), *out) if not shape else (1, *out)
        return out

    def partner(self, x: Ref) -> Ref:
        """A value that broadcasts with x: from the pool, x itself, a new input or a constant."""
        sx = self.shape(x)

        def fits(r: Ref) -> bool:
            try:
                broadcast_shapes(sx, self.shape(r))
            except ShapeMismatch:
                return False
            return True

        how = self.choice(["pool", "self", "leaf", "const"])
        if how == "pool":
            y = self.pick(lambda r: r != x and fits(r))
            if y is not None:
                return y
        if how == "self":
            return x
        shape = self.partner_shape(sx)
        if how == "const" and all(_is_int(d) for d in shape):
            data = np.random.default_rng(self.between(0, 99)).uniform(-1.5, 1.5, shape)
            return self.const(np.round(data, 3))
        role = self.choice(["param", "data"])
        y = self.leaf(shape, role, self.choice([("normal", 1.0), ("positive",)]))
        if self.flag():  # broadcast explicitly
            y = self.call("broadcast_to", y, broadcast_shapes(sx, shape), pos=self.info[y.i].pos)
        return y

    # ---- the steps -------------------------------------------------------------------------
    def step_unary(self, x: Ref) -> Ref:
        op = self.choice(["tanh", "sigmoid", "neg", "exp", "erf", "erfc", "gelu", "gelu_tanh",
                          "relu", "abs", "log", "sqrt", "sign"])  # fmt: skip
        if op == "exp":
            return self.call("exp", self.tame(x, EXP_LIMIT), pos=True)
        if op in ("log", "sqrt"):
            p = self.positive(x)
            return self.call(op, p, pos=op == "sqrt")
        if op == "gelu_tanh":
            return self.call("gelu", x, approximate="tanh")
        if op == "neg":
            return self.call("neg", x)
        if op == "sign":  # no gradient through sign: it scales another value
            return self.call("mul", self.call("sign", x), self.partner(x))
        return self.call(op, x, pos=op == "sigmoid")

    def step_binary(self, x: Ref) -> Ref:
        op = self.choice(["add", "sub", "mul", "div", "maximum", "minimum", "pow"])
        y = self.partner(x)
        if self.flag():
            x, y = y, x
        px, py = self.info[x.i].pos, self.info[y.i].pos
        if op == "div":
            y = self.positive(y)
            return self.call("div", x, y, pos=px)
        if op == "pow":
            base = self.positive(x)
            return self.call("pow", base, self.tame(y, 2.0), pos=True)
        if op in ("maximum", "minimum"):
            pos = (px or py) if op == "maximum" else (px and py)
            return self.call(op, x, y, pos=pos)
        return self.call(op, x, y, pos=px and py and op in ("add", "mul"))

    def step_scalar(self, x: Ref) -> Ref:
        c = self.choice([0.5, 2.0, -1.5, 0.3, 3.0])
        form = self.choice(SCALAR_FORMS)
        pos = self.info[x.i].pos
        if form == "x+c":
            return self.call("add", x, c, pos=pos and c > 0)
        if form == "c+x":
            return self.call("add", c, x, pos=pos and c > 0)
        if form == "x-c":
            return self.call("sub", x, c)
        if form == "c-x":
            return self.call("sub", c, x)
        if form == "x*c":
            return self.call("mul", x, c, pos=pos and c > 0)
        if form == "c*x":
            return self.call("mul", c, x, pos=pos and c > 0)
        if form == "x/c":
            return self.call("div", x, c, pos=pos and c > 0)
        if form == "c/x":
            return self.call("div", c, self.positive(x), pos=c > 0)
        if form == "x**2":
            return self.call("pow", x, 2)
        if form == "x**3.0":
            return self.call("pow", x, 3.0, pos=pos)
        if form in ("x**0.5", "x**-1.5"):
            return self.call("pow", self.positive(x), 0.5 if form == "x**0.5" else -1.5, pos=True)
        if form == "2**x":
            return self.call("pow", 2.0, self.tame(x, EXP_LIMIT), pos=True)
        if form == "max(x,c)":
            return self.call("maximum", x, c, pos=c > 0 or pos)
        return self.call("minimum", c, x, pos=c > 0 and pos)

    def condition(self, x: Ref) -> Ref:
        """A bool value from a comparison involving x (or x itself a mask input)."""
        cmp = self.choice(["gt", "lt", "ge", "le", "equal", "not_equal", "mask"])
        if cmp == "mask":
            return self.leaf(self.partner_shape(self.shape(x)), "data", ("bool",), "bool")
        other: Any = self.choice([0.0, 0.3, -0.5]) if self.flag() else self.partner(x)
        if cmp in ("equal", "not_equal"):
            # equality of floats: against a value x really takes, so both outcomes occur
            other = x if self.flag() else other
            return self.call(cmp, x, other)
        return self.call(cmp, x, other)

    def step_where(self, x: Ref) -> Ref:
        c = self.condition(self.pick() or x)
        form = self.choice(["where", "where_scalar", "cast"])
        sc = self.shape(c)

        def fits(r: Ref) -> bool:
            try:
                broadcast_shapes(sc, self.shape(r))
            except ShapeMismatch:
                return False
            return True

        if not fits(x):
            x = self.pick(fits) or self.leaf(self.partner_shape(sc))
        if form == "cast":
            return self.call("mul", self.call("cast", c, dtype="float64"), x)
        if form == "where_scalar":
            args = [x, self.choice([0.0, 1.5])]
            if self.flag():
                args.reverse()
            return self.call("where", c, *args)
        sc = broadcast_shapes(sc, self.shape(x))
        y = self.pick(lambda r: fits(r) and r != x) or x
        return self.call("where", c, x, y)

    def axes(self, shape: tuple, only_ints: bool) -> Any:
        """An axis argument: None, an int or a tuple (maybe negative, maybe unsorted)."""
        ok = (
            [i for i, d in enumerate(shape) if _is_int(d) and d >= 1]
            if only_ints
            else list(range(len(shape)))
        )
        if only_ints and len(ok) < len(shape):
            if not ok:
                raise _Reject("no axis to reduce")
            form = self.choice(["int", "tuple"])
        else:
            form = self.choice(["none", "int", "tuple"]) if shape else "none"
        if form == "none":
            return None
        neg = self.flag()
        if form == "int":
            a = self.choice(ok)
            return a - len(shape) if neg else a
        chosen = [a for a in ok if self.flag()] or [self.choice(ok)]
        if self.flag():
            chosen.reverse()
        return tuple(a - len(shape) if neg else a for a in chosen)

    def step_reduce(self, x: Ref) -> Ref:
        op = self.choice(["sum", "mean", "max", "logsumexp"])
        only_ints = op in ("max", "logsumexp")  # N may be 0: no max of nothing
        axis = self.axes(self.shape(x), only_ints)
        pos = self.info[x.i].pos and op != "logsumexp"
        return self.call(op, x, axis=axis, keepdims=self.flag(), pos=pos)

    def step_normalize(self, x: Ref) -> Ref:
        if not self.shape(x):
            raise _Reject("a scalar")
        op = self.choice(["softmax", "log_softmax", "layer_norm"])
        nd = len(self.shape(x))
        axis = self.between(-nd, nd - 1)
        if op == "layer_norm" and self.flag():
            return self.call(op, x, axis=axis, eps=1e-3)
        return self.call(op, x, axis=axis, pos=op == "softmax")

    def step_matmul(self, x: Ref) -> Ref:
        sx = self.shape(x)
        if not sx:
            raise _Reject("a scalar")
        form = self.choice(["new", "pool", "xT@y", "x@yT", "x@xT", "vec"])
        pos = self.info[x.i].pos
        if form == "x@xT" and len(sx) >= 2:
            return self.tame(self.call("matmul", x, self.call("swapaxes", x, -1, -2)))
        if form in ("pool", "xT@y", "x@yT"):
            if form == "xT@y" and len(sx) >= 2:
                x = self.call("swapaxes", x, -1, -2, pos=pos)
            xs = self.shape(x)

            def fits(r: Ref) -> bool:
                sy = self.shape(r)
                if not sy or form == "x@yT" and len(sy) < 2:
                    return False
                flags = {"transpose_a": False, "transpose_b": form == "x@yT"}
                try:
                    REGISTRY["matmul"].infer([xs, sy], ["float64"] * 2, flags)
                except ShapeMismatch:
                    return False
                return True

            y = self.pick(fits)
            if y is not None:
                if form == "x@yT":
                    y = self.call("swapaxes", y, -1, -2, pos=self.info[y.i].pos)
                return self.tame(self.call("matmul", x, y, pos=pos and self.info[y.i].pos))
        sx = self.shape(x)
        role = self.choice(["param", "param", "data"])
        if form == "vec":
            if len(sx) >= 2 and self.flag():  # v @ x contracts x's second-last axis
                return self.tame(self.call("matmul", self.leaf((sx[-2],), role), x))
            return self.tame(self.call("matmul", x, self.leaf((sx[-1],), role)))
        batch: tuple = ()
        if len(sx) >= 3 and self.flag():
            batch = (self.choice([1, sx[-3]]),)
        w = self.leaf((*batch, sx[-1], self.between(1, 4)), role)
        return self.tame(self.call("matmul", x, w))

    def step_shape(self, x: Ref) -> Ref:
        sx = self.shape(x)
        pos = self.info[x.i].pos
        op = self.choice(["transpose", "T", "swapaxes", "reshape", "broadcast_to"])
        if op in ("transpose", "T", "swapaxes") and len(sx) >= 2:
            if op == "T":
                return self.call("T", x, pos=pos)
            if op == "swapaxes":
                a, b = self.between(-len(sx), len(sx) - 1), self.between(-len(sx), len(sx) - 1)
                return self.call("swapaxes", x, a, b, pos=pos)
            perm = self.draw(st.permutations(range(len(sx))))
            perm = tuple(p - len(sx) if self.flag() else p for p in perm)
            return self.call("transpose", x, perm, pos=pos)
        if op == "broadcast_to":
            lead = self.dims(self.between(0, 2), 1, 3) if len(sx) < 4 else ()
            bound = any(isinstance(it, Leaf) and "N" in it.shape for it in self.items)
            sizes = [1, 2, 3, "N"] if bound else [1, 2, 3]  # N only where an input binds it
            body = tuple(self.choice(sizes) if d == 1 else d for d in sx)
            target = (*lead, *body)
            if target == sx:
                raise _Reject("nothing to broadcast")
            return self.call("broadcast_to", x, target, pos=pos)
        return self.reshape(x, pos)

    def reshape(self, x: Ref, pos: bool) -> Ref:
        sx = self.shape(x)
        syms = [d for d in sx if not _is_int(d)]
        total = math.prod(d for d in sx if _is_int(d))
        factors: list[Any] = []
        rest = total
        for _ in range(self.between(0, 3)):
            divisors = [d for d in range(1, rest + 1) if rest % d == 0]
            f = self.choice(divisors)
            factors.append(f)
            rest //= f
        if rest > 1 or not factors:
            factors.append(rest)
        for s in syms:
            factors.insert(self.between(0, len(factors)), s)
        if self.flag():  # one -1
            at = self.between(0, len(factors) - 1)
            if _is_int(factors[at]) or syms.count(factors[at]) == 1:
                factors[at] = -1
        if len(factors) > 4:
            raise _Reject("too many dims")
        return self.call("reshape", x, tuple(factors), pos=pos)

    def step_index(self, x: Ref) -> Ref:
        sx = self.shape(x)
        if not sx:
            return self.call("getitem", x, (None,), pos=self.info[x.i].pos)
        key: list[Any] = []
        for d in sx:
            form = "full" if not _is_int(d) else self.choice(["full", "int", "slice", "step"])
            if form == "full":
                key.append(slice(None))
            elif form == "int":
                key.append(self.between(-d, d - 1))
            else:
                step = self.choice([1, 2, -1, -2]) if form == "step" else None
                start, stop = self.between(-d - 1, d), self.between(-d - 1, d + 1)
                k = slice(start, stop, step)
                if not len(range(*k.indices(d))):
                    k = slice(None, None, step)
                key.append(k)
            if self.flag() and len(key) < 5:
                key.append(None)
        if key[0] == slice(None) and self.flag():
            key[0] = Ellipsis
        else:
            while key and key[-1] == slice(None) and self.flag():
                key.pop()
        if len(sx) + sum(k is None for k in key) > 4:
            raise _Reject("too many dims")
        return self.call("getitem", x, tuple(key), pos=self.info[x.i].pos)

    def step_slice_grad(self, x: Ref) -> Ref:
        """slice and its adjoint slice_grad on a box of x, as the raw ops."""
        sx = self.shape(x)
        if not any(_is_int(d) for d in sx):
            raise _Reject("nothing to slice")
        starts, stops, steps = [], [], []
        for d in sx:
            if not _is_int(d):
                box = (0, d, 1)
            else:
                k = slice(self.between(-d, d), self.between(-d - 1, d), self.choice([1, 2, -1]))
                box = k.indices(d)
                if not len(range(*box)):
                    box = (0, d, 1)
            for p, v in zip((starts, stops, steps), box, strict=True):
                p.append(v)
        box = {"starts": tuple(starts), "stops": tuple(stops), "steps": tuple(steps)}
        s = self.call("apply", "slice", x, pos=self.info[x.i].pos, **box)
        ct = self.call("tanh", s) if self.flag() else s
        return self.call("apply", "slice_grad", ct, shape=sx, **box)

    def step_take(self, x: Ref) -> Ref:
        sx = self.shape(x)
        axes = [i for i, d in enumerate(sx) if _is_int(d) and d >= 1]
        if not axes:
            raise _Reject("no axis to take along")
        axis = self.choice(axes)
        n = sx[axis]
        if self.flag():
            idx: Any = self.leaf(self.choice([(2,), ("N",), (2, 2)]), "data", ("index", n),
                                 "int64")  # fmt: skip
        else:
            shape = self.choice([(1,), (3,), (2, 2)])
            k = math.prod(shape)
            idx = np.array(self.draw(st.lists(st.integers(-n, n - 1), min_size=k, max_size=k)))
            idx = idx.reshape(shape)
        ax = axis - len(sx) if self.flag() else axis
        t = self.call("take", x, idx, axis=ax, pos=self.info[x.i].pos)
        if not self.flag():
            return t
        ct = self.call("mul", t, self.partner(t))
        if self.shape(ct) != self.shape(t):
            ct = t
        return self.call("take_grad", ct, idx, sx, axis)

    def step_concat(self, x: Ref) -> Ref:
        sx = self.shape(x)
        axes = [i for i, d in enumerate(sx) if _is_int(d)]
        if not axes:
            raise _Reject("no axis to concatenate along")
        axis = self.choice(axes)

        def fits(r: Ref) -> bool:
            sy = self.shape(r)
            return len(sy) == len(sx) and all(
                a == b for i, (a, b) in enumerate(zip(sx, sy, strict=True)) if i != axis
            ) and _is_int(sy[axis])  # fmt: skip

        parts = [x]
        for _ in range(self.between(1, 2)):
            how = self.choice(["self", "pool", "new"])
            y = self.pick(fits) if how == "pool" else x if how == "self" else None
            if y is None:
                shape = (*sx[:axis], self.between(1, 3), *sx[axis + 1 :])
                y = self.leaf(shape, self.choice(["param", "data"]))
            parts.append(y)
        if self.flag():
            parts.reverse()
        pos = all(self.info[p.i].pos for p in parts)
        return self.call("concat", parts, axis=axis - len(sx) if self.flag() else axis, pos=pos)

    def image(self, x: Ref) -> Ref:
        """A 4-d value [N, C, H, W] with int C, H, W: x if it is one, x reshaped, or new."""
        sx = self.shape(x)
        if len(sx) == 4 and all(_is_int(d) and d >= 1 for d in sx[1:]):
            return x
        total = math.prod(d for d in sx if _is_int(d))
        syms = [d for d in sx if not _is_int(d)]
        if len(syms) <= 1 and total >= 4 and self.flag():
            hw = [(h, w) for h in range(2, 7) for w in range(2, 7) if total % (h * w) == 0]
            if hw:
                h, w = self.choice(hw)
                c = total // (h * w)
                if c <= 4:
                    batch = syms[0] if syms else 1
                    return self.call("reshape", x, (batch, c, h, w), pos=self.info[x.i].pos)
        shape = (
            self.choice(["N", 1, 2]),
            self.between(1, 3),
            self.between(2, 6),
            self.between(2, 6),
        )
        return self.leaf(shape, self.choice(["param", "data"]))

    def step_conv(self, x: Ref) -> Ref:
        """conv2d or one of its gradient ops on an image; or, half the time, the same of conv3d
        on a volume or of conv1d on a sequence."""
        if self.flag():
            return self.step_conv3d(x) if self.flag() else self.step_conv1d(x)
        x = self.image(x)
        n, c, h, w = self.shape(x)
        groups = self.choice([g for g in (1, 2, 3) if c % g == 0])
        c_out = groups * self.between(1, 2)
        kh, kw = self.between(1, 3), self.between(1, 3)
        stride = (self.between(1, 2), self.between(1, 2))
        padding = (self.between(0, 1), self.between(0, 1))
        kh = min(kh, h + 2 * padding[0])
        kw = min(kw, w + 2 * padding[1])
        dilation = tuple(
            dl if sz + 2 * p >= dl * (k - 1) + 1 else 1
            for dl, sz, p, k in zip(
                (self.between(1, 2), self.between(1, 2)), (h, w), padding, (kh, kw), strict=True
            )
        )
        wt = self.leaf((c_out, c // groups, kh, kw), self.choice(["param", "param", "data"]))
        kw_ = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        y = self.tame(self.call("conv2d", x, wt, **kw_))
        form = self.choice(["conv", "grad_input", "grad_weight"])
        if form == "conv":
            return y
        ct = self.call("tanh", y) if self.flag() else y
        if form == "grad_input":
            return self.tame(self.call("conv2d_grad_input", ct, wt, (h, w), **kw_))
        return self.tame(self.call("conv2d_grad_weight", x, ct, (kh, kw), **kw_))

    def step_conv3d(self, x: Ref) -> Ref:
        """conv3d, or one of its gradient ops, on x if it is a volume [N, C, D, H, W], else on
        a new one."""
        sx = self.shape(x)
        if not (len(sx) == 5 and all(_is_int(d) and d >= 1 for d in sx[1:]) and sx[1] <= 4):
            shape = (
                self.choice(["N", 1, 2]),
                self.between(1, 3),
                *(self.between(2, 4) for _ in range(3)),
            )
            x = self.leaf(shape, self.choice(["param", "data"]))
        _, c, *size = self.shape(x)
        groups = self.choice([g for g in (1, 2) if c % g == 0])
        c_out = groups * self.between(1, 2)
        stride = tuple(self.between(1, 2) for _ in range(3))
        padding = tuple(self.between(0, 1) for _ in range(3))
        kernel = tuple(
            min(self.between(1, 2), s + 2 * p) for s, p in zip(size, padding, strict=True)
        )
        dilation = tuple(dl if s + 2 * p >= dl * (k - 1) + 1 else 1 for dl, s, p, k in
                         zip((self.between(1, 2) for _ in range(3)), size, padding, kernel,
                             strict=True))  # fmt: skip
        wt = self.leaf((c_out, c // groups, *kernel), self.choice(["param", "param", "data"]))
        kw_ = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        y = self.tame(self.call("conv3d", x, wt, **kw_))
        form = self.choice(["conv", "grad_input", "grad_weight"])
        if form == "conv":
            return y
        ct = self.call("tanh", y) if self.flag() else y
        if form == "grad_input":
            return self.tame(self.call("conv3d_grad_input", ct, wt, tuple(size), **kw_))
        return self.tame(self.call("conv3d_grad_weight", x, ct, kernel, **kw_))

    def step_conv1d(self, x: Ref) -> Ref:
        """conv1d, or one of its gradient ops, on x if it is a sequence [N, C, L], else on a
        new one."""
        sx = self.shape(x)
        if not (len(sx) == 3 and all(_is_int(d) and d >= 1 for d in sx[1:]) and sx[1] <= 4):
            x = self.leaf((self.choice(["N", 1, 2]), self.between(1, 4), self.between(2, 9)),
                          self.choice(["param", "data"]))  # fmt: skip
        _, c, length = self.shape(x)
        groups = self.choice([g for g in (1, 2, 3) if c % g == 0])
        c_out = groups * self.between(1, 2)
        stride, padding, dl = self.between(1, 3), self.between(0, 2), self.between(1, 2)
        k = min(self.between(1, 4), length + 2 * padding)
        dilation = dl if length + 2 * padding >= dl * (k - 1) + 1 else 1
        wt = self.leaf((c_out, c // groups, k), self.choice(["param", "param", "data"]))
        kw_ = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        y = self.tame(self.call("conv1d", x, wt, **kw_))
        form = self.choice(["conv", "grad_input", "grad_weight"])
        if form == "conv":
            return y
        ct = self.call("tanh", y) if self.flag() else y
        if form == "grad_input":
            return self.tame(self.call("conv1d_grad_input", ct, wt, (length,), **kw_))
        return self.tame(self.call("conv1d_grad_weight", x, ct, (k,), **kw_))

    def step_resample(self, x: Ref) -> Ref:
        """interpolate (nearest, nearest-exact or linear, 1 to 3 spatial axes) of x if it is
        [N, C, *spatial] with small int spatial sizes, else of a new value; or one of the
        gradient ops on a cotangent of the output's shape."""
        sx = self.shape(x)
        if not (3 <= len(sx) <= 5 and all(_is_int(d) and 1 <= d <= 8 for d in sx[2:])):
            k = self.between(1, 3)
            shape = (self.choice(["N", 1, 2]), self.between(1, 3),
                     *(self.between(1, 5) for _ in range(k)))  # fmt: skip
            x = self.leaf(shape, self.choice(["param", "data"]))
            sx = self.shape(x)
        k = len(sx) - 2
        mode = self.choice(["nearest", "nearest-exact", ("linear", "bilinear", "trilinear")[k - 1]])
        kw: dict[str, Any] = {"mode": mode}
        if self.flag():
            kw["size"] = tuple(self.between(1, 7) for _ in range(k))
        else:  # non-integer factors; recompute_scale_factor either way
            kw["scale_factor"] = tuple(self.choice([0.5, 0.7, 1.3, 1.5, 2.0, 2.6]) for _ in sx[2:])
            if any(int(d * f) < 1 for d, f in zip(sx[2:], kw["scale_factor"], strict=True)):
                raise _Reject
            kw["recompute_scale_factor"] = self.flag()
        if mode not in ("nearest", "nearest-exact"):
            kw["align_corners"] = self.flag()
        y = self.call("interpolate", x, pos=self.info[x.i].pos, **kw)
        node = self.values[y.i]
        if node.op not in ("interpolate_nearest", "interpolate_linear") or self.flag():
            return y
        p = dict(node.attrs["params"])
        ct = self.call("tanh", y) if self.flag() else y
        return self.call("apply", f"{node.op}_grad", ct, input_size=tuple(sx[2:]), **p)

    def step_pool(self, x: Ref) -> Ref:
        """2-D pooling through the runtime's kernels; or, half the time, the pooling ops of 1
        to 3 axes (step_pool_nd)."""
        if self.flag():
            return self.step_pool_nd()
        x = self.image(x)
        n, c, h, w = self.shape(x)
        kernel = (self.between(1, min(3, h)), self.between(1, min(3, w)))
        stride: Any = None if self.flag() else (self.between(1, 2), self.between(1, 2))
        padding = tuple(self.between(0, k // 2) for k in kernel)
        kw_ = {"kernel": kernel, "stride": stride, "padding": padding}
        public = {"kernel_size": kernel, "stride": stride, "padding": padding}  # PyTorch's name
        pos = self.info[x.i].pos
        form = self.choice(["max", "avg", "max_grad", "max_gather", "avg_grad"])
        if form in ("max", "avg"):
            return self.call(f"{form}_pool2d", x, pos=pos, **public)
        pooled = self.call("avg_pool2d", x, **public)
        if form == "max_gather":
            v = self.call("tanh", x) if self.flag() else x
            return self.call("max_pool2d_gather", v, x, **kw_)
        ct = self.call("tanh", pooled) if self.flag() else pooled
        if form == "max_grad":
            return self.call("max_pool2d_grad", ct, x, **kw_)
        return self.call("avg_pool2d_grad", ct, (h, w), **kw_)

    def step_pool_nd(self) -> Ref:
        """On a new [N, C, 1 to 3 spatial axes]: avg_pool with PyTorch's options or its
        gradient op, adaptive_avg_pool or its gradient op, or max_unpool of max pooling's
        indices."""
        k = self.between(1, 3)
        shape = (self.choice(["N", 1, 2]), self.between(1, 3), *(self.between(2, 5)
                                                                 for _ in range(k)))  # fmt: skip
        x = self.leaf(shape, self.choice(["param", "param", "data"]))
        size = shape[2:]
        form = self.choice(["avg", "avg_grad", "adaptive", "adaptive_grad", "unpool"])
        if form == "unpool":
            idx = self.call("apply", "pool_argmax", x, kernel=(2,) * k, stride=(2,) * k,
                            padding=(0,) * k, dilation=(1,) * k, ceil_mode=False)  # fmt: skip
            v = self.call(f"max_pool{k}d", x, 2)
            v = self.call("tanh", v) if self.flag() else v
            return self.call(f"max_unpool{k}d", v, idx, 2, output_size=size)
        if form.startswith("adaptive"):
            out = [self.between(1, 6) for _ in range(k)]
            out[0] += 1 if tuple(out) == size else 0  # (the same sizes are x itself)
            y = self.call(f"adaptive_avg_pool{k}d", x, tuple(out))
            if form == "adaptive":
                return y
            ct = self.call("tanh", y) if self.flag() else y
            return self.call("apply", "adaptive_avg_pool_grad", ct, size=size)
        kernel = tuple(self.between(1, min(3, n)) for n in size)
        kw_ = {"kernel": kernel, "stride": tuple(self.between(1, 2) for _ in range(k)),
               "padding": tuple(self.between(0, kk // 2) for kk in kernel),
               "ceil_mode": self.flag(), "count_include_pad": self.flag(),
               "divisor": self.choice([None, None, 3]) if k > 1 else None}  # fmt: skip
        public = {
            "kernel_size": kernel,
            "stride": kw_["stride"],
            "padding": kw_["padding"],
            "ceil_mode": kw_["ceil_mode"],
            "count_include_pad": kw_["count_include_pad"],
        }
        if k > 1:
            public["divisor_override"] = kw_["divisor"]
        y = self.call(f"avg_pool{k}d", x, **public)
        if form == "avg":
            return y
        ct = self.call("tanh", y) if self.flag() else y
        return self.call("apply", "avg_pool_grad", ct, size=size, **kw_)

    def step_labels(self, x: Ref) -> Ref:
        sx = self.shape(x)
        if not sx or not _is_int(sx[-1]) or sx[-1] < 2:
            x = self.leaf((self.choice(["N", 2, 3]), self.between(2, 4)))
            sx = self.shape(x)
        depth = sx[-1]
        labels = self.leaf(sx[:-1], "data", ("labels", depth), "int64")
        form = self.choice(["sce", "sce_soft", "one_hot", "mask"])
        if form == "sce":
            return self.call("softmax_cross_entropy", x, labels)
        if form == "sce_soft":
            other = self.partner(x)
            if self.shape(other) == sx:
                soft = self.call("softmax", other, axis=-1, pos=True)
            else:
                soft = self.call("one_hot", labels, depth)
            return self.call("softmax_cross_entropy", x, soft)
        if form == "one_hot":
            return self.call("mul", self.call("one_hot", labels, depth), x)
        mask = self.call("one_hot", labels, depth, dtype="bool")
        return self.call("where", mask, x, self.choice([0.0, -1.0]))

    def step_misc(self, x: Ref) -> Ref:
        form = self.choice(["size", "mse", "const_expr", "leaf", "scan"])
        if form == "scan":
            return self.step_scan(x)
        if form == "size":
            axis = self.axes(self.shape(x), False)
            return self.call("div", x, self.call("size", x, axis=axis, pos=True))
        if form == "mse":
            return self.call("mse_loss", x, self.partner(x), pos=False)
        if form == "const_expr":  # an expression of constants only: simplify folds it
            sx = self.shape(x)
            ints = 0
            while ints < len(sx) and _is_int(sx[len(sx) - 1 - ints]):
                ints += 1
            shape = tuple(sx[len(sx) - self.between(0, ints) :])
            c = self.const(np.round(np.linspace(-1.0, 1.0, math.prod(shape)), 3).reshape(shape))
            c2 = self.call(self.choice(["tanh", "exp", "neg"]), c)
            return self.call("mul", x, c2)
        return self.step_binary(x)

    def step_scan(self, x: Ref) -> Ref:
        """A loop along axis 0 of x (`recurrence`), whose weight is a new param or x's."""
        sx = self.shape(x)
        if not sx or not self.is_float(x):
            raise _Reject("a loop needs steps on axis 0")
        w = self.leaf(sx[-1:] if len(sx) > 1 and _is_int(sx[-1]) else (), "param")
        return self.call("recurrence", x, w, reverse=self.flag())

    def step_chain(self, x: Ref) -> Ref:
        """A deep chain: 3 to 10 layers tanh(h * w) (or sigmoid, erf), one weight shared by all
        (a value read by many steps) or one each."""
        sx = self.shape(x)
        shared = not self.flag()
        w = None
        for _ in range(self.between(3, 10)):
            if w is None or not shared:
                w = self.leaf(sx[-1:] if sx and _is_int(sx[-1]) else (), "param")
            x = self.call(self.choice(["tanh", "sigmoid", "erf"]), self.call("mul", x, w))
        return x

    def step_duplicate(self, x: Ref) -> Ref:
        """The same call again (common subexpressions), combined with the first."""
        calls = [i for i in range(len(self.items) - 1, -1, -1)
                 if isinstance(self.items[i], Call) and self.is_float(Ref(i))
                 and not self.info[i].aux]  # fmt: skip
        if not calls:
            raise _Reject("nothing to repeat")
        i = self.choice(calls[:8])
        item = self.items[i]
        assert isinstance(item, Call)
        again = self.call(item.fn, *item.args, pos=self.info[i].pos, **dict(item.kwargs))
        return self.call(self.choice(["add", "mul", "sub"]), Ref(i), again)

    def step_math(self, x: Ref) -> Ref:
        """The other elementwise functions, each on a domain where it is smooth."""
        return self.elementwise(x, self.choice(
            ["sin", "cos", "atan", "asinh", "square", "sinh", "cosh", "expm1", "exp2", "log1p",
             "log2", "reciprocal", "rsqrt", "tan", "asin", "acos", "atanh", "acosh", "atan2",
             "fmod", "remainder"]))  # fmt: skip

    def step_activation(self, x: Ref) -> Ref:
        """The activations (their kinks known to checks.near_kinks) and copysign."""
        return self.elementwise(x, self.choice(
            ["softsign", "logsigmoid", "silu", "mish", "softplus", "elu", "leaky_relu",
             "hardtanh", "hardsigmoid", "hardswish", "clip", "copysign"]))  # fmt: skip

    def elementwise(self, x: Ref, op: str) -> Ref:
        if op in ("sinh", "cosh", "expm1", "exp2"):
            return self.call(op, self.tame(x, EXP_LIMIT), pos=op in ("cosh", "exp2"))
        if op in ("log1p", "log2", "reciprocal", "rsqrt"):
            return self.call(op, self.positive(x), pos=op in ("reciprocal", "rsqrt"))
        if op in ("tan", "asin", "acos", "atanh"):  # inside (-1, 1)
            return self.call(op, self.call("mul", self.call("tanh", x), 0.9))
        if op == "acosh":
            return self.call(op, self.call("add", self.positive(x), 1.0, pos=True), pos=True)
        if op == "hardtanh":
            return self.call(op, x, min_val=self.choice([-1.0, -0.5]), max_val=1.0)
        if op == "clip":
            return self.call(op, x, self.choice([-1.0, None]), self.choice([0.5, 2.0]))
        if op == "atan2":
            return self.call(op, x, self.positive(self.partner(x)))
        if op == "copysign":
            return self.call(op, x, self.choice([-1.5, 2.0]))
        if op == "fmod":  # |x| < 7: no jump
            return self.call(op, self.tame(x, 3.0), 7.0)
        if op == "remainder":  # 0 < x < 1.1 < y: no jump
            a = self.call("add", self.call("sigmoid", x), 0.1, pos=True)
            y = self.call("add", self.positive(self.partner(x)), 1.5, pos=True)
            return self.call(op, a, y, pos=True)
        return self.call(op, x, pos=op in ("softplus", "cosh"))

    def step_stats(self, x: Ref) -> Ref:
        """min, prod, var, std, norm and the scans."""
        sx = self.shape(x)
        op = self.choice(["min", "prod", "var", "std", "norm", "cumsum", "cumprod",
                          "logcumsumexp", "linrec", "shift"])  # fmt: skip
        if op in ("min", "prod", "var", "std", "norm"):
            axis = self.axes(sx, only_ints=op != "prod")
            if op == "min":
                return self.call(op, x, axis=axis, keepdims=self.flag())
            if op == "prod":
                return self.call(op, self.tame(x, 1.5), axis=axis, keepdims=self.flag())
            if op == "norm":
                return self.call(op, x, self.choice([2, 3]), axis=axis, pos=True)
            return self.call(op, x, axis=axis, correction=self.choice([0, 1]), pos=op == "std")
        if not sx:
            raise _Reject("a scan needs an axis")
        axis = self.between(0, len(sx) - 1)
        if op == "shift":
            return self.call(op, x, axis, self.choice([-2, -1, 1, 2]), self.choice([0.0, 1.5]))
        if op == "linrec":  # y = b + a shift(y), |a| < 1
            a = self.call("mul", self.call("tanh", x), 0.9)
            return self.call(op, a, x, axis=axis, reverse=self.flag())
        base = self.tame(x, 1.5) if op == "cumprod" else x
        return self.call(op, base, axis=axis, reverse=self.flag())

    def step_gather(self, x: Ref) -> Ref:
        """gather, scatter, scatter_add, advanced indexing (index, index_grad), pad and
        pad_grad, over the int axes of x."""
        sx = self.shape(x)
        op = self.choice(["gather", "scatter", "scatter_add", "index", "pad"])
        if op == "pad":
            if not any(_is_int(d) and d >= 1 for d in sx):
                raise _Reject("nothing to pad")
            widths = tuple((self.between(0, 2), self.between(0, 2)) if _is_int(d) and d >= 1
                           else (0, 0) for d in sx)  # fmt: skip
            mode = self.choice(["constant", "reflect", "replicate", "circular", "symmetric"])
            y = self.call("pad", x, widths, mode=mode, pos=self.info[x.i].pos and
                          mode != "constant")  # fmt: skip
            if self.flag() or self.shape(y) == sx:
                return y
            ct = self.call("tanh", y)
            return self.call("apply", "pad_grad", ct, widths=widths, mode=mode, value=0.0,
                             shape=sx)  # fmt: skip
        if op == "index":
            if len(sx) < 2 or not all(_is_int(d) and d >= 1 for d in sx[:2]):
                raise _Reject("index takes two int axes here")
            shape = self.choice([(2,), (3,), (2, 2)])
            i = self.leaf(shape, "data", ("labels", sx[0]), "int64")
            j = self.leaf(shape, "data", ("labels", sx[1]), "int64")
            y = self.call("apply", "index", x, i, j, axis=0, pos=self.info[x.i].pos)  # x[i, j]
            if self.flag():
                return y
            ct = self.call("tanh", y)
            return self.call("apply", "index_grad", ct, i, j, shape=sx, axis=0)
        if not sx or not all(_is_int(d) and d >= 1 for d in sx):
            raise _Reject("needs int axes")
        axis = self.between(0, len(sx) - 1)
        n = sx[axis]
        m = self.between(1, n)
        rows = []
        for _ in range(math.prod(d for k, d in enumerate(sx) if k != axis)):
            if op == "scatter":  # one write per place: each source reaches the output
                perm = self.draw(st.permutations(list(range(n))))
                rows.append(perm[:m])
            else:
                rows.append(self.draw(st.lists(st.integers(-n, n - 1), min_size=m, max_size=m)))
        moved = [d for k, d in enumerate(sx) if k != axis]
        idx = np.moveaxis(np.array(rows).reshape(*moved, m), -1, axis)
        if op == "gather":
            return self.call(op, x, axis, idx, pos=self.info[x.i].pos)
        src = self.leaf(idx.shape, "param")
        return self.call(op, x, axis, idx, src)

    # (the families of many ops are drawn more often)
    STEPS = ("unary", "binary", "scalar", "reduce", "matmul", "shape", "index", "where",
             "normalize", "concat", "take", "chain", "duplicate", "misc", "labels", "conv",
             "conv", "pool", "slice_grad", "math", "math", "activation", "activation", "stats",
             "stats", "gather", "gather", "resample")  # fmt: skip

    def step(self) -> None:
        kind = self.choice(self.STEPS)
        x = self.pick()
        assert x is not None
        mark = (len(self.items), self.param_elements)
        try:
            r = getattr(self, f"step_{kind}")(x)
            r = self.tame(r)
        except _Reject:
            del self.items[mark[0] :], self.values[mark[0] :], self.info[mark[0] :]
            self.param_elements = mark[1]

    # ---- the end: outputs and the loss --------------------------------------------------------
    def finish(self, n_outputs: int) -> ModelSpec:
        used: set[int] = set()
        for item in self.items:
            if isinstance(item, Call):
                used.update(_refs(item.args))
        sinks = [r for r in self.pool() if r.i not in used]
        extra = [r for r in self.pool() if r.i in used]
        for _ in range(self.between(0, min(2, len(extra)))):
            sinks.append(self.choice(extra))
        sinks = list(dict.fromkeys(sinks))
        terms = []
        for r in sinks:
            # a constant weight, broadcast along symbolic dims
            shape = tuple(d if _is_int(d) else 1 for d in self.shape(r))
            data = np.random.default_rng(r.i).uniform(-1.0, 1.0, shape)
            weight = self.const(np.round(data, 3))
            self.info[weight.i].aux = True
            prod = self.call("mul", r, weight)
            terms.append(self.call("sum", prod) if self.shape(r) else prod)
        loss = terms[0]
        for t in terms[1:]:
            loss = self.call("add", loss, t)
        reached = _differentiable_ancestors(self.g, self.values[loss.i].id)
        if not any(
            isinstance(it, Leaf) and it.role == "param" and v.id in reached
            for it, v in zip(self.items, self.values, strict=True)
        ):  # nothing to differentiate: a param that scales the first output
            p = self.leaf(self.shape(sinks[0]), "param", force=True)
            loss = self.call("add", loss, self.call("sum", self.call("mul", sinks[0], p)))
            reached = _differentiable_ancestors(self.g, self.values[loss.i].id)
        outputs = [(f"out{k}", r.i) for k, r in enumerate(sinks[:n_outputs])]
        outputs.append(("loss", loss.i))
        items = list(self.items)
        # params that reach the loss only through ops without a gradient are data inputs
        for i, item in enumerate(items):
            if isinstance(item, Leaf) and item.role == "param":
                if self.values[i].id not in reached:
                    items[i] = replace(item, role="data")
        return ModelSpec(tuple(items), tuple(outputs), self.seed)


def _refs(args: Any) -> set[int]:
    out: set[int] = set()
    for a in args:
        if isinstance(a, Ref):
            out.add(a.i)
        elif isinstance(a, list):
            out |= _refs(a)
    return out


def _differentiable_ancestors(g: gc.Graph, node: int) -> set[int]:
    """Nodes with a path to `node` along which every op has a gradient for its operand."""
    G = g.nx
    seen = {node}
    stack = [node]
    while stack:
        n = stack.pop()
        a = G.nodes[n]
        if a["op"] in ("input", "const"):
            continue
        args = operands(G, n)
        rules = REGISTRY[a["op"]].rules(len(args))
        for u, rule in zip(args, rules, strict=True):
            if rule is not None and u not in seen:
                seen.add(u)
                stack.append(u)
    return seen


# The registry ops with a gradient that the strategy draws (each through some step above).
OPS_DRAWN = frozenset(
    "add sub mul div neg pow exp log sqrt tanh erf erfc sigmoid relu abs maximum minimum gelu "
    "where cast transpose reshape broadcast_to take take_grad slice slice_grad concat conv2d "
    "conv2d_grad_input conv2d_grad_weight conv3d conv3d_grad_input conv3d_grad_weight conv1d "
    "conv1d_grad_input conv1d_grad_weight interpolate_nearest interpolate_nearest_grad "
    "interpolate_linear interpolate_linear_grad "
    "max_pool2d max_pool2d_grad max_pool2d_gather avg_pool2d avg_pool2d_grad avg_pool "
    "avg_pool_grad adaptive_avg_pool adaptive_avg_pool_grad max_unpool matmul sum mean "
    "max softmax log_softmax layer_norm "
    "logsumexp sin cos tan asin acos atan sinh cosh asinh acosh atanh expm1 exp2 log1p log2 "
    "reciprocal rsqrt square softplus silu mish elu leaky_relu hardtanh hardsigmoid hardswish "
    "logsigmoid softsign atan2 copysign fmod remainder clip min prod var std norm cumsum "
    "cumprod logcumsumexp linrec shift gather scatter scatter_add index index_grad pad "
    "pad_grad scan scan_out".split()
)


@st.composite
def models(
    draw: Callable[[st.SearchStrategy], Any], min_steps: int = 1, max_steps: int = 14
) -> ModelSpec:
    """A random valid model: one or two inputs, then `min_steps` to `max_steps` steps (a step
    that cannot be made where it is drawn is dropped), its sinks as outputs and a scalar
    "loss": the sum over them of sum(value * weight), the weights constants."""
    m = _Maker(draw, draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**16)))
    for _ in range(draw(st.integers(1, 2))):
        m.leaf(m.new_shape(), m.choice(["param", "param", "data"]),
               m.choice([("normal", 1.0), ("positive",)]))  # fmt: skip
    if not m.pool(lambda r: m.values[r.i].attrs.get("role") == "param"):
        m.leaf(m.new_shape(), "param")
    for _ in range(draw(st.integers(min_steps, max_steps))):
        m.step()
    return m.finish(n_outputs=draw(st.integers(1, 3)))


def batches(size: int, min_steps: int = 3, max_steps: int = 8) -> st.SearchStrategy:
    """`size` models, to be checked in one graph (batch_graph)."""
    return st.lists(models(min_steps=min_steps, max_steps=max_steps), min_size=size, max_size=size)
