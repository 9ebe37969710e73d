"""What an op's lowering writes with: `Emit`, the steps of one graph node (kernels built with a
`KernelBuilder`, or runtime kernels), and the loop and index helpers every lowering shares.

Each op's lowering lives next to its OpDef (`OpDef.lower`) and calls these; elementwise ops
and sums are lowered by codegen/loops.py from their scalar rules (`OpDef.scalar`). A kernel's
buffers, sizes and locals are numbered in the order the lowering first uses them, so two
steps whose loops are the same up to their values and symbols build equal kernels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from graphc.codegen.kir import (
    INDEX,
    Buf,
    Expr,
    Kernel,
    Lit,
    Load,
    Loop,
    Runtime,
    Size,
    SizeExpr,
    Step,
    Stmt,
    Var,
)
from graphc.ir.shapes import Dim

# Elements below which a loop runs on the calling thread: a parallel region costs microseconds,
# and far more when the other cores are busy (a waiting thread must be scheduled again).
PARALLEL_MIN = 1 << 18
MAP_CHUNK = PARALLEL_MIN // 8  # elements of a flat map handed to a thread at a time
SUFFIX = {"float64": "d", "float32": "s"}  # the runtime kernels' dtype letter (BLAS's)


class Values(Protocol):
    """What a lowering may ask about the graph's values (see lower.Context)."""

    G: Any  # the graph's networkx view

    def shape(self, n: int) -> tuple: ...
    def dtype(self, n: int) -> str: ...
    def literal(self, n: int) -> Lit | None: ...


class KernelBuilder:
    """The operands and locals of one kernel being built: each value the kernel reads or
    writes is a buffer operand, each symbolic dimension a size operand."""

    def __init__(self, values: Values) -> None:
        self.values = values
        self.buffers: dict[int, int] = {}  # node -> operand
        self.dtypes: list[str] = []
        self.writes: set[int] = set()
        self.dims: dict[Dim | tuple, int] = {}  # symbol, or ("offset", k) -> size operand
        self.offsets: dict[tuple, int] = {}  # ("offset", k) -> its value
        self.count = 0

    def ref(self, n: int, write: bool = False) -> Buf:
        """The buffer operand holding value `n`."""
        k = self.buffers.get(n)
        if k is None:
            k = self.buffers[n] = len(self.dtypes)
            self.dtypes.append(self.values.dtype(n))
        if write:
            self.writes.add(k)
        return Buf(k)

    def read(self, n: int, at: Expr) -> Expr:
        """Element `at` of value `n`, or its literal when it is an inlined scalar constant."""
        return self.values.literal(n) or Load(self.ref(n), at)

    def dim(self, d: Dim) -> Expr:
        """A dimension: an int literal, or the size operand of a symbol."""
        if isinstance(d, int):
            return Lit(d)
        if d not in self.dims:
            self.dims[d] = len(self.dims)
        return Size(self.dims[d])

    def offset(self, value: int) -> Expr:
        """A size operand holding the int `value` (an offset): kernels that differ only in
        such values are one kernel."""
        key = ("offset", len(self.dims))
        self.offsets[key] = value
        self.dims[key] = len(self.dims)
        return Size(self.dims[key])

    def extent(self, dims: Sequence[Dim]) -> Expr:
        """The product of `dims`, ints folded: `z0*6`, or `1` when empty."""
        const = math.prod(d for d in dims if isinstance(d, int))
        if const == 0:
            return Lit(0)
        factors = [self.dim(d) for d in dims if not isinstance(d, int)]
        if const != 1 or not factors:
            factors.append(Lit(const))
        out = factors[0]
        for f in factors[1:]:
            out = out * f
        return out

    def var(self, dtype: str, prefix: str = "t") -> Var:
        """A fresh local scalar."""
        self.count += 1
        return Var(f"{prefix}{self.count}", dtype)

    def kernel(self, doc: str, body: Sequence[Stmt], floats: int = 0) -> tuple[Kernel, tuple]:
        """The kernel, and the values bound to its buffers (nodes) and sizes (SizeExprs), in
        operand order."""
        kernel = Kernel(
            doc, tuple(self.dtypes), frozenset(self.writes), len(self.dims), floats, tuple(body)
        )
        bound: list[Any] = [None] * len(self.dtypes)
        for n, k in self.buffers.items():
            bound[k] = n
        sizes = tuple(
            SizeExpr(self.offsets[d]) if d in self.offsets else SizeExpr.of([d])  # type: ignore[list-item]
            for d in self.dims
        )
        return kernel, (tuple(bound), sizes)


def loop_nest(
    kb: KernelBuilder, dims: Sequence[Dim], body: Callable[[list[Expr | None]], list[Stmt]],
    prefix: str = "i",
) -> list[Stmt]:  # fmt: skip
    """Loops over every dim of size > 1 around `body(idx)`, where idx holds the index variable
    of each dim (None for size-1 dims)."""
    idx: list[Expr | None] = []
    heads = []
    for k, d in enumerate(dims):
        if d == 1:
            idx.append(None)
            continue
        var = Var(f"{prefix}{k}", INDEX)
        heads.append((var, kb.dim(d)))
        idx.append(var)
    stmts = body(idx)
    for var, extent in reversed(heads):
        stmts = [Loop(var, Lit(0), extent, tuple(stmts))]
    return stmts


def flat_loop(kb: KernelBuilder, dims: Sequence[Dim], body: Callable[[Expr], list[Stmt]]):
    """One loop over every element of `dims` (none when there is one element)."""
    extent = kb.extent(dims)
    if extent == Lit(1):
        return body(Lit(0))
    i = Var("i", INDEX)
    return [Loop(i, Lit(0), extent, tuple(body(i)))]


def flat_index(kb: KernelBuilder, dims: Sequence[Dim], idx: Sequence[Expr | None]) -> Expr:
    """Row-major flat index of a value with `dims`, indexed by `idx` (None: index 0)."""
    expr: Expr | None = None
    for d, i in zip(dims, idx, strict=True):
        if expr is not None and d != 1:
            expr = expr * kb.dim(d)
        if i is not None and d != 1:
            expr = i if expr is None else expr + i
    return expr if expr is not None else Lit(0)


def operand_index(kb: KernelBuilder, shape: tuple, out_idx: Sequence[Expr | None]) -> Expr:
    """Flat index into an operand broadcast against an output indexed by `out_idx`."""
    off = len(out_idx) - len(shape)
    return flat_index(
        kb, shape, [out_idx[off + j] if d != 1 else None for j, d in enumerate(shape)]
    )


class Emit:
    """The steps of one node's lowering: kernels it builds and runtime kernels it calls."""

    def __init__(self, values: Values, n: int) -> None:
        self.values = values
        self.n = n
        self.steps: list[Step] = []  # `what`, `section` and `beside` are the caller's to set

    def builder(self) -> KernelBuilder:
        return KernelBuilder(self.values)

    def kernel(
        self,
        kb: KernelBuilder,
        doc: str,
        body: Sequence[Stmt],
        work: SizeExpr | None = None,
        alone: bool = True,
    ) -> None:
        """A step running the kernel of `kb` with `body`; `work` (elements at call time)
        defaults to the elements of the node and its operands."""
        kernel, (buffers, sizes) = kb.kernel(doc, body)
        work = work or self.default_work()
        self.steps.append(Step(kernel, buffers, sizes, (), (), "", work, alone))

    @property
    def suffix(self) -> str:
        """The letter of the node's dtype in runtime kernels' names (`gemm_d`)."""
        return SUFFIX[self.values.dtype(self.n)]

    def runtime(
        self,
        name: str,
        buffers: Sequence[int],
        ints: Sequence[Dim | SizeExpr | Sequence[Dim]],
        floats: Sequence[float] = (),
        work: SizeExpr | None | str = "elements",
        alone: bool = True,
    ) -> None:
        """A step calling the runtime kernel `name` (`gemm_d`: see
        templates/runtime/steps.pyx.j2) on the values `buffers`, with `ints` (dims, products
        of dims given as lists, or SizeExprs) and `floats`, in the order the kernel documents.
        `work`: about how many operations it does (default: the elements it reads and
        writes); None when it shares its work among threads of its own (BLAS)."""
        if work == "elements":
            work = self.default_work()
        sizes = tuple(
            i if isinstance(i, SizeExpr) else SizeExpr.of(i if isinstance(i, list | tuple) else [i])
            for i in ints
        )
        self.steps.append(
            Step(Runtime(name), tuple(buffers), sizes, tuple(floats), (), "", work, alone)
        )

    def default_work(self) -> SizeExpr:
        """About one operation per element read and written: the node's and its operands'."""
        from graphc.ir.dag import operands

        shapes = [self.values.shape(u) for u in (self.n, *operands(self.values.G, self.n))]
        return total_elements(shapes)


def total_elements(shapes: Sequence[tuple]) -> SizeExpr:
    """The elements of values of `shapes` together, as one product of symbols: the terms with
    the most symbols added up (those with fewer are small beside them at call time)."""
    terms = [SizeExpr.of(s) for s in shapes]
    top = max(len(t.symbols) for t in terms)
    kept = [t for t in terms if len(t.symbols) == top]
    symbols = kept[0].symbols
    if any(t.symbols != symbols for t in kept):  # other symbols: take the larger at 256 each
        kept = [max(kept, key=lambda t: t.coef * 256 ** sum(e for _, e in t.symbols))]
        symbols = kept[0].symbols
    return SizeExpr(sum(t.coef for t in kept), symbols)
