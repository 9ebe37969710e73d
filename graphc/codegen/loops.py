"""`fused`: the kernel of a loop over elements, a fused step (passes/fuse.py) or one elementwise
op, from each op's scalar rule (`OpDef.scalar`).

One loop computes its nodes element by element: each value in a local scalar, reductions
accumulated, and the values in `stored` written out after every load of the element. A loop
whose size is not a small constant may be shared among threads (a `Parallel`): a map splits its
outermost loop; a loop with full reductions (always flat, see passes/fuse.py) runs as CHUNKS
fixed chunks, within which BLOCK terms at a time are computed (vectorised) into scratch and
then added in order, the chunks' sums added in order at the end. Every full reduction of a
domain adds its terms in this one order, fused or not, for any number of threads. Loops with
partial reductions (`sum(x, axis=0)`) run on one thread, each sum adding its terms in
row-major order; sums along the innermost axis advance ROWS rows at a time (`interleaved`).
(The chunks and blocks are kir.Reduce's: a renderer, the runtime, implements them once.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from graphc.codegen.emit import (
    MAP_CHUNK,
    PARALLEL_MIN,
    Emit,
    KernelBuilder,
    flat_index,
    flat_loop,
    operand_index,
)
from graphc.codegen.kir import (
    INDEX,
    Assign,
    Call,
    Cast,
    Expr,
    Lit,
    Load,
    Loop,
    Parallel,
    Reduce,
    SizeExpr,
    Stmt,
    Store,
    Var,
    calls,
    single,
)
from graphc.ir.graph import operands
from graphc.ops.registry import REGISTRY
from graphc.passes.fuse import is_flat

CALL_COST = 16  # operations a call of exp, erf, ... is worth, in a loop's work (about)
ROWS = 8  # rows of a sum along the innermost axis under way at once (see `interleaved`)


def nest(heads: Sequence[tuple[Var, Expr]], stmts: list[Stmt]) -> list[Stmt]:
    """`stmts` in loops over `heads` (index variables and extents), the first outermost."""
    for var, ext in reversed(heads):
        stmts = [Loop(var, Lit(0), ext, tuple(stmts))]
    return stmts


def interleaved(heads: Sequence[tuple[Var, Expr]], stmts: list[Stmt]) -> list[Stmt]:
    """The loops of `nest` with the last two swapped in blocks of ROWS rows: for each block of
    rows, for each element along the row, for each row of the block. A sum along the rows adds
    its terms in the same order as in `nest` (the same bits), but ROWS sums are under way at
    once, independent chains of additions the processor overlaps, where one row at a time
    waits for each addition to finish."""
    *outer, (r, rows), (j, n) = heads
    block = Var(f"{r.name}b", INDEX)
    each = Loop(r, block, Call("min", (block + Lit(ROWS), rows)), tuple(stmts))
    return nest(outer, [Loop(block, Lit(0), rows, (Loop(j, Lit(0), n, (each,)),), Lit(ROWS))])


def fused(e: Emit, nodes: Sequence[int], stored: set[int]) -> None:
    """The step computing `nodes` (in order) in one loop; see the module doc."""
    v = e.values
    G = v.G
    kb = KernelBuilder(v)
    mine = set(nodes)
    red = [n for n in nodes if G._node[n]["op"] in ("sum", "mean")]
    first = nodes[0]
    domain = v.shape(operands(G, first)[0]) if first in red else v.shape(first)
    full = [n for n in red if all(d == 1 for d in v.shape(n))]
    partial = [n for n in red if n not in full]
    flat = is_flat(G, nodes)
    local = {n: kb.var(v.dtype(n)) for n in nodes if n not in partial}

    # the loop's index: one flat index, or one per axis of the domain
    extent = kb.extent(domain)
    if flat:
        heads = [] if extent == Lit(1) else [(Var("i", INDEX), extent)]
        idx: list[Expr | None] = [heads[0][0] if heads else Lit(0)]
        at: Expr = idx[0]  # type: ignore[assignment]

        def index(u: int) -> Expr:
            return at if v.shape(u) == domain else Lit(0)
    else:
        heads, idx = [], []
        for k, d in enumerate(domain):
            if d == 1:
                idx.append(None)
                continue
            var = Var(f"i{k}", INDEX)
            heads.append((var, kb.dim(d)))
            idx.append(var)
        at = flat_index(kb, domain, idx)

        def index(u: int) -> Expr:
            return operand_index(kb, v.shape(u), idx)

    def read(u: int) -> Expr:
        return local[u] if u in mine else kb.read(u, index(u))

    def count(n: int) -> Expr:
        axes = G._node[n]["params"]["axis"]
        dims = [d for k, d in enumerate(v.shape(operands(G, n)[0])) if k in axes]
        return Cast(v.dtype(n), kb.extent(dims))

    before: list[Stmt] = []
    after: list[Stmt] = []
    body: list[Stmt] = []  # the body of the (innermost) loop
    terms: dict[int, Expr] = {}  # each full reduction's term
    for n in nodes:
        a = G._node[n]
        args = operands(G, n)
        if n in full:
            if heads:  # the term is read here, before any store of the element (in place)
                terms[n] = read(args[0])
                if not isinstance(terms[n], Var):
                    terms[n] = kb.var(v.dtype(n))
                    body.append(Assign(terms[n], read(args[0])))
            else:
                before.append(Assign(local[n], Lit(0)))
                body.append(Assign(local[n], local[n] + read(args[0])))
            total = local[n] / count(n) if a["op"] == "mean" else local[n]
            after.append(Assign(Store(kb.ref(n, write=True), Lit(0)), total))
        elif n in partial:
            out = kb.ref(n, write=True)
            before += flat_loop(kb, v.shape(n), lambda i, out=out: [Assign(Store(out, i), Lit(0))])
            axes = a["params"]["axis"]
            kept = [None if k in axes else x for k, x in enumerate(idx)]
            kept_shape = tuple(1 if k in axes else d for k, d in enumerate(domain))
            at_kept = flat_index(kb, kept_shape, kept)
            body.append(Assign(Store(out, at_kept), Load(out, at_kept) + read(args[0])))
            if a["op"] == "mean":
                after += flat_loop(
                    kb, v.shape(n),
                    lambda i, n=n, out=out: [Assign(Store(out, i), Load(out, i) / count(n))],
                )  # fmt: skip
        elif a["op"] == "broadcast_to":
            body.append(Assign(local[n], read(args[0])))
        else:
            opdef = REGISTRY[a["op"]]
            typed = {"dtypes": (v.dtype(n), *map(v.dtype, args))} if opdef.typed else {}
            expr = opdef.scalar(*(read(u) for u in args), **typed, **a["params"])
            body.append(Assign(local[n], single(expr) if v.dtype(n) == "float32" else expr))
    body += [
        Assign(Store(kb.ref(n, write=True), at), local[n])
        for n in nodes
        if n in stored and n not in red
    ]

    ops = [G._node[n]["op"] for n in nodes]
    what = f"{len(nodes)} ops ({', '.join(ops)})" if len(nodes) > 1 else ops[0]
    size = SizeExpr.of(domain)
    work = SizeExpr(size.coef * len(nodes), size.symbols)
    if not heads:
        doc = f"{what} of one element"
        return e.kernel(kb, doc, [*before, *body, *after], work, alone=True)
    shape = "[" + ", ".join(map(str, domain)) + "]"
    # its work: operations, a function call (exp, erf, ...) counting as CALL_COST
    cost = len(nodes) + CALL_COST * sum(calls(s.value) for s in body if isinstance(s, Assign))
    small = all(isinstance(d, int) for d in domain) and math.prod(domain) * cost < PARALLEL_MIN
    if partial or (small and not full):  # one thread
        doc = f"{what} over {shape}, on one thread"
        inner = [a["params"]["axis"] for a in (G._node[n] for n in partial)]
        if (
            inner
            and all(axes == (len(domain) - 1,) for axes in inner)
            and len(heads) > 1
            and (heads[-1][0] is idx[-1])
        ):  # sums along the innermost axis: rows advanced together
            if len(heads) > 2 and not full and not small:
                # each row its own output: the threads share the outermost loop (the zeroing
                # before and a mean's division after stay on the calling thread)
                (outer, outer_extent), rest = heads[0], heads[1:]
                par = Parallel(outer, outer_extent, Lit(1),
                               extent * Lit(cost) if cost > 1 else extent,
                               tuple(interleaved(rest, body)))  # fmt: skip
                doc = f"{what} over {shape}, its outer loop shared, {ROWS} rows at a time"
                return e.kernel(kb, doc, [*before, par, *after], work, alone=False)
            doc = f"{what} over {shape}, on one thread, {ROWS} rows at a time"
            return e.kernel(kb, doc, [*before, *interleaved(heads, body), *after], work, alone=True)
        return e.kernel(kb, doc, [*before, *nest(heads, body), *after], work, alone=True)
    if not red:  # a map: the threads share the outermost loop, in pieces of `chunk`
        (outer, outer_extent), inner = heads[0], heads[1:]
        chunk = Lit(MAP_CHUNK if flat else 1)  # elements, or rows of a nest
        par = Parallel(outer, outer_extent, chunk, extent * Lit(cost) if cost > 1 else extent,
                       tuple(nest(inner, body)))  # fmt: skip
        doc = f"{what} over {shape}, its outer loop shared among threads"
        return e.kernel(kb, doc, [par], work, alone=False)
    assert flat, "fuse puts full reductions in flat loops only"
    ((i, _),) = heads
    sums = tuple(local[n] for n in full)
    red = Reduce(i, extent, tuple(body), sums, tuple(terms[n] for n in full))
    doc = f"{what} over {shape}, summed in chunks shared among threads (see Reduce)"
    e.kernel(kb, doc, [*before, red, *after], work, alone=False)
