"""The kernel IR: what `lower` makes of a scheduled, planned program, for a backend to render.

A *kernel* is a function over buffers (typed pointers to elements), integer sizes and float
constants, whose body is loops, assignments of scalar expressions and conditions; a *runtime
kernel* is one the runtime provides (a matrix product, a convolution), named, with a documented
operand layout. A program is a list of *steps*, each a kernel applied to the values it reads and
writes, its sizes as products of the call's symbols, and its floats. Nothing here is spelled in
any backend's syntax: types are dtype names, operators are the tables below, and each renderer
(codegen/cython.py, codegen/pyrender.py) turns the records into its own text.

Expressions overload Python's operators, so a scalar rule reads as math: `1.0 / (1.0 + exp(-x))`.
Every record is a frozen dataclass: kernels that are the same up to their buffers and sizes are
equal, which is how a program computes each distinct loop with one function.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from graphc.ir.shapes import size_monomial

INDEX = "index"  # the dtype of loop variables, sizes and offsets (a signed machine word)
# Scalar functions an expression may call; every backend provides each with these semantics
# (exp, log and tanh, and the trigonometric, hyperbolic and other transcendental ones, are
# graphc's own branch-free versions: templates/runtime/graphc_rt.h and graphc_math.h).
FUNCTIONS = frozenset(
    ("exp", "log", "tanh", "sqrt", "erf", "erfc", "fabs", "pow", "min", "max", "first", "end",
     "expm1", "log1p", "log2", "exp2", "sin", "cos", "tan", "asin", "acos", "atan", "atan2",
     "sinh", "cosh", "asinh", "acosh", "atanh", "floor", "ceil", "trunc", "rint", "copysign",
     "fmod", "ifloordiv", "imod", "ipow", "expf", "sqrtf", "erff", "erfcf", "fmodf", "powf")
    # the last six: in float arithmetic (see `single`); fmodf is fmod of float32 operands, its
    # value fmod's exactly (fmod is exact), a double as fmod's is; powf is pow of float32
    # operands, in double and rounded once to float (within 0.5 ulp and a hair of x^y)
)  # fmt: skip
# the length of a leaf of NumPy's pairwise summation, and the sums its end completes (INDEX
# functions of the row's length and the leaf's start: codegen/loops.py `row_sum`)
FUNCTIONS |= {"pairwise_leaf", "pairwise_joins"}
SINGLE = {"exp": "expf", "sqrt": "sqrtf", "erf": "erff", "erfc": "erfcf", "fmod": "fmodf",
          "pow": "powf"}  # fmt: skip
# `and` and `or` of truth values: a backend may evaluate both sides (no side may guard the other)
BINARY = frozenset(("+", "-", "*", "/", "//", "<", "<=", ">", ">=", "==", "!=", "and", "or"))
BITWISE = frozenset(("|", "&", "^", "<<", ">>"))  # on booleans: both operands evaluated


class Expr:
    """A scalar expression; operators build new expressions (`x * y`, `-x`, `x < 0`)."""

    __slots__ = ()

    def __add__(self, other: Any) -> Expr:
        return Bin("+", self, lit(other))

    def __radd__(self, other: Any) -> Expr:
        return Bin("+", lit(other), self)

    def __sub__(self, other: Any) -> Expr:
        return Bin("-", self, lit(other))

    def __rsub__(self, other: Any) -> Expr:
        return Bin("-", lit(other), self)

    def __mul__(self, other: Any) -> Expr:
        return Bin("*", self, lit(other))

    def __rmul__(self, other: Any) -> Expr:
        return Bin("*", lit(other), self)

    def __truediv__(self, other: Any) -> Expr:
        return Bin("/", self, lit(other))

    def __rtruediv__(self, other: Any) -> Expr:
        return Bin("/", lit(other), self)

    def __floordiv__(self, other: Any) -> Expr:
        return Bin("//", self, lit(other))

    def __neg__(self) -> Expr:
        return Neg(self)

    def __lt__(self, other: Any) -> Expr:
        return Bin("<", self, lit(other))

    def __le__(self, other: Any) -> Expr:
        return Bin("<=", self, lit(other))

    def __gt__(self, other: Any) -> Expr:
        return Bin(">", self, lit(other))

    def __ge__(self, other: Any) -> Expr:
        return Bin(">=", self, lit(other))

    def eq(self, other: Any) -> Expr:  # == and != stay Python's: records are compared
        return Bin("==", self, lit(other))

    def ne(self, other: Any) -> Expr:
        return Bin("!=", self, lit(other))

    def __or__(self, other: Any) -> Expr:
        return Bin("|", self, lit(other))

    def __and__(self, other: Any) -> Expr:
        return Bin("&", self, lit(other))


@dataclass(frozen=True, slots=True, eq=True)
class Lit(Expr):
    """A literal. `dtype` None: a double as a formula writes it (`1.0`); else a value of that
    dtype (float32 literals keep float arithmetic in float)."""

    value: float | int | bool
    dtype: str | None = None

    def _key(self) -> tuple:  # 1.0 and 1, 0.0 and -0.0 are different literals; NaN is one
        return (type(self.value), repr(self.value), self.dtype)

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lit) and other._key() == self._key()


@dataclass(frozen=True, slots=True)
class Var(Expr):
    """A local scalar of the kernel (or a loop's variable, of dtype INDEX)."""

    name: str
    dtype: str


@dataclass(frozen=True, slots=True)
class Size(Expr):
    """The kernel's size operand `k` (INDEX)."""

    k: int


@dataclass(frozen=True, slots=True)
class Flt(Expr):
    """The kernel's float operand `k` (a double)."""

    k: int


@dataclass(frozen=True, slots=True)
class Buf:
    """The kernel's buffer operand `k` (a pointer to elements of `dtype`)."""

    k: int


@dataclass(frozen=True, slots=True)
class Scratch:
    """An array local to the kernel (or to a parallel body): `n` elements of `dtype`."""

    name: str
    dtype: str
    n: int


Ref = Buf | Scratch


@dataclass(frozen=True, slots=True)
class Load(Expr):
    ref: Ref
    at: Expr


@dataclass(frozen=True, slots=True)
class Bin(Expr):
    op: str  # one of BINARY or BITWISE
    a: Expr
    b: Expr


@dataclass(frozen=True, slots=True)
class Neg(Expr):
    a: Expr


@dataclass(frozen=True, slots=True)
class Call(Expr):
    fn: str  # one of FUNCTIONS
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Select(Expr):
    """`a` where `cond` holds, else `b` (both may be evaluated)."""

    cond: Expr
    a: Expr
    b: Expr


@dataclass(frozen=True, slots=True)
class Cast(Expr):
    dtype: str
    a: Expr


def lit(x: Any) -> Expr:
    """`x` as an expression: expressions unchanged, Python numbers as formula literals."""
    if isinstance(x, Expr):
        return x
    if isinstance(x, bool | int | float):
        return Lit(x)
    raise TypeError(f"not a scalar expression: {x!r}")


def single(e: Expr) -> Expr:
    """`e`, an expression of a float32 value, in float arithmetic: its float literals float32,
    its calls of exp, sqrt, erf, erfc the float ones (twice the elements per vector; float
    accuracy, as float32 deserves), of pow powf (vectorised, in double: x^y rounded to float
    but at near-midpoints), and of fmod fmodf (the same values, vectorised), in conditions too
    (whose literals and arithmetic stay as they are)."""
    if isinstance(e, Lit):
        float_lit = isinstance(e.value, float) and e.dtype is None
        return Lit(e.value, "float32") if float_lit else e
    if isinstance(e, Bin):
        return Bin(e.op, single(e.a), single(e.b))
    if isinstance(e, Neg):
        return Neg(single(e.a))
    if isinstance(e, Call):
        return Call(SINGLE.get(e.fn, e.fn), tuple(single(a) for a in e.args))
    if isinstance(e, Select):
        return Select(_exact_single(e.cond), single(e.a), single(e.b))
    return e  # loads, locals, sizes, casts: of their own types


def _exact_single(e: Expr) -> Expr:
    """`e` with its calls of fmod (of float32 operands, in a float32 value's expression) those
    of fmodf, which give the same values; nothing else changed."""
    if isinstance(e, Call):
        fn = "fmodf" if e.fn == "fmod" else e.fn
        return Call(fn, tuple(_exact_single(a) for a in e.args))
    if isinstance(e, Bin):
        return Bin(e.op, _exact_single(e.a), _exact_single(e.b))
    if isinstance(e, Neg):
        return Neg(_exact_single(e.a))
    if isinstance(e, Cast):
        return Cast(e.dtype, _exact_single(e.a))
    if isinstance(e, Select):
        return Select(_exact_single(e.cond), _exact_single(e.a), _exact_single(e.b))
    return e


TRANSCENDENTAL = frozenset(
    ("exp", "log", "tanh", "erf", "erfc", "expf", "erff", "erfcf", "pow", "powf")
)


def calls(e: Expr) -> int:
    """How many calls of transcendental functions `e` makes (a measure of its cost)."""
    if isinstance(e, Call):
        return (e.fn in TRANSCENDENTAL) + sum(calls(a) for a in e.args)
    if isinstance(e, Bin):
        return calls(e.a) + calls(e.b)
    if isinstance(e, Neg | Cast):
        return calls(e.a)
    if isinstance(e, Select):
        return calls(e.cond) + calls(e.a) + calls(e.b)
    return 0


def walk(node: Any) -> Iterator[Any]:
    """`node` (an expression, a statement, a store or a reference, or a tuple of them) and
    every part of it, depth first."""
    if isinstance(node, tuple | list):
        for n in node:
            yield from walk(n)
    elif isinstance(node, Expr | Stmt | Store | Buf | Scratch):
        yield node
        for f in node.__slots__:
            yield from walk(getattr(node, f))


def called(node: Any) -> set[str]:
    """The functions (Call.fn) that an expression, a statement, or a tuple of them calls."""
    return {n.fn for n in walk(node) if isinstance(n, Call)}


def call(fn: str, *args: Any) -> Expr:
    assert fn in FUNCTIONS, fn
    return Call(fn, tuple(lit(a) for a in args))


def exp(x: Any) -> Expr:
    return call("exp", x)


def log(x: Any) -> Expr:
    return call("log", x)


def tanh(x: Any) -> Expr:
    return call("tanh", x)


def sqrt(x: Any) -> Expr:
    return call("sqrt", x)


def select(cond: Any, a: Any, b: Any) -> Expr:
    return Select(lit(cond), lit(a), lit(b))


# ---- statements ------------------------------------------------------------------------------
class Stmt:
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Store:
    ref: Ref
    at: Expr


@dataclass(frozen=True, slots=True)
class Assign(Stmt):
    target: Var | Store
    value: Expr


@dataclass(frozen=True, slots=True)
class Loop(Stmt):
    """`var` from `start` up to `stop` (exclusive) by `step`."""

    var: Var
    start: Expr
    stop: Expr
    body: tuple[Stmt, ...]
    step: Expr | None = None


@dataclass(frozen=True, slots=True)
class If(Stmt):
    cond: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True, slots=True)
class Fail(Stmt):
    """An index the kernel may not use: `value`, for an axis of `bound` (both INDEX). The call
    raises an error naming the step once it is done (the first failure of a call is the one
    reported); the kernel goes on, so it must not use the index itself."""

    value: Expr
    bound: Expr


def fails(stmts: Sequence[Stmt]) -> bool:
    """Do `stmts` (or the loops and conditions in them) hold a Fail?"""
    for s in stmts:
        if isinstance(s, Fail):
            return True
        body = getattr(s, "body", None)
        if body is not None and fails(body):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Parallel(Stmt):
    """`body` for every `var` in 0 .. extent, run in ranges of iterations that the runtime may
    share among threads: in pieces of `chunk`, when the loop's `work` (elements) is large. The
    body reads only the kernel's operands and its own locals (a backend may run it as a
    function of its own)."""

    var: Var
    extent: Expr
    chunk: Expr
    work: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True, slots=True)
class Reduce(Stmt):
    """`body` for every `var` in 0 .. extent, and each local of `sums` set to the sum of its
    term (`terms`, the same position) over the elements, in the one order every full
    reduction adds in, fused or not, on any number of threads: blocks of BLOCK elements whose
    terms are stored, then added in order; CHUNKS chunks of whole blocks, at least one block
    each, each chunk's sum its partial; the partials added in order. The chunks may run on
    several threads (the runtime shares them when the loop is large). The body and terms read
    only the kernel's operands and their own locals."""

    var: Var
    extent: Expr
    body: tuple[Stmt, ...]
    sums: tuple[Var, ...]
    terms: tuple[Expr, ...]


# ---- kernels and programs --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Kernel:
    """A function of the program: buffer operand k has dtype `buffers[k]` (written by the
    kernel when k is in `writes`), `sizes` INDEX operands and `floats` double operands. `doc`
    says what it computes, with b0, b1, ... for its buffers."""

    doc: str
    buffers: tuple[str, ...]
    writes: frozenset[int]
    sizes: int
    floats: int
    body: tuple[Stmt, ...]


@dataclass(frozen=True, slots=True)
class Runtime:
    """A kernel of the runtime, by name (`gemm_d`, `take_s_l`, ...: the steps of
    templates/runtime/steps.pyx.j2, whose docstrings give their operands)."""

    name: str


# A size at call time: `coef` times the product of symbols (each with its exponent), divided
# by `div` (exact: shapes are checked to divide). A constant has no symbols.
@dataclass(frozen=True, slots=True)
class SizeExpr:
    coef: int
    symbols: tuple[tuple[str, int], ...] = ()
    div: int = 1

    @staticmethod
    def of(dims: Sequence[int | str]) -> SizeExpr:
        """The product of `dims` (ints, symbols and products of them, graphc/ir/shapes.py)."""
        coef, syms = size_monomial(tuple(dims))
        return SizeExpr(coef, tuple(sorted(Counter(syms).items())) if coef else ())

    @property
    def constant(self) -> int | None:
        return None if self.symbols else self.coef // self.div

    def __str__(self) -> str:
        parts = [s if e == 1 else f"{s}^{e}" for s, e in self.symbols]
        if self.coef != 1 or not parts:
            parts.append(str(self.coef))
        return "*".join(parts) + (f"/{self.div}" if self.div != 1 else "")


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a program: `kernel` (a Kernel or a Runtime one) over the program's values
    `buffers` (ids), with `sizes` and `floats`. `work` (elements, at call time) and `alone`
    (it runs on one thread whatever its size) let the runtime run a step `beside` the next
    one (passes/concurrency.py) at once; `what` and `section` say, for people, what it
    computes and where in the program it is."""

    kernel: Kernel | Runtime
    buffers: tuple[int, ...]  # node ids
    sizes: tuple[SizeExpr, ...]
    floats: tuple[float, ...]
    what: tuple[str, ...]
    section: str
    work: SizeExpr | None = None  # None: never beside another (BLAS threads itself)
    alone: bool = True
    beside: bool = False


# ---- loops over steps (a scan: ops/scan.py, codegen/scan.py) ---------------------------------
@dataclass(frozen=True, slots=True)
class Bind:
    """How a loop points value `key` (a value of its body) at each trip, before the body runs:

    - "step": at `refs[0]` plus t times `size` bytes (slice t of a per-step operand or result,
      t the step: T-1 down to 0 in a reverse loop);
    - "carry_in": at `refs[0]` (the initial carry) on the first trip, else at what the
      previous trip's "carry_out" pointed at;
    - "carry_out": at `refs[0]` (the final carry) on the last trip, else at `refs[1]` and
      `refs[2]` in turn (first `refs[1]`);
    - "alias": at `refs[0]` (the bytes of a value bound above it);
    - "every": at `refs[0]` plus t / `every` times `size` bytes when t is a multiple of
      `every` (or one less than a multiple, in a reverse loop: the step each block of `every`
      steps runs first), else at `refs[1]` (scratch): a result kept every k-th step;
    - "gather": `key` keeps its own bytes (scratch), into which each trip first copies slice t
      of `refs[0]`, a per-step operand with its steps on an inner axis: `rows` blocks of
      `size` bytes, block r at r * `stride` + t * size bytes (`stride`: the bytes of the
      array's steps axis and those after it, trips * size unless the loop reads chunks of
      steps from a longer array);
    - "scatter": `key` keeps its own bytes, which each trip copies out after the body, into
      slice t of `refs[0]` (a stacked result with its steps on an inner axis), as above."""

    kind: str
    key: Any
    refs: tuple
    size: SizeExpr | None = None
    every: int = 0
    rows: SizeExpr | None = None
    stride: SizeExpr | None = None


@dataclass(frozen=True, slots=True)
class Repeat:
    """A step that runs the steps `body` once per trip, `trips` times (the runtime's loop,
    graphc_rt.h `scan`), each trip's values bound by `binds` first. When there is no trip,
    each (final, initial, bytes) of `empty` is copied instead: the carries the loop returns are
    then its initial ones. Keys name the values of the program and of its loops' bodies."""

    trips: SizeExpr
    reverse: bool
    binds: tuple[Bind, ...]
    body: tuple[Any, ...]  # Step | Repeat
    empty: tuple[tuple[Any, Any, SizeExpr], ...]
    what: tuple[str, ...] = ()
    section: str = ""
