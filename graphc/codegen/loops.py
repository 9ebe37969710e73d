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
row-major order; but where every sum of the loop is of floats along the innermost axis only
(`sum(x, axis=-1)`: layer norm's, softmax's and cross-entropy's rows), each row's sum is
NumPy's pairwise summation of it (`row_sum`: 8 accumulators, one vector, over runs of at most
128 terms, longer rows split in halves as NumPy splits them), the bits of np.sum and np.mean
for rows of any length, static or symbolic; a large loop's rows are then shared among
threads, each row summed by one. Other sums along the innermost axis (of integers) advance
ROWS rows at a time, each row in order (`interleaved`). (The chunks and blocks are
kir.Reduce's: a renderer, the runtime, implements them once.)
"""

from __future__ import annotations

import dataclasses
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
    If,
    Lit,
    Load,
    Loop,
    Parallel,
    Reduce,
    Scratch,
    SizeExpr,
    Stmt,
    Store,
    Var,
    calls,
    single,
    walk,
)
from graphc.ir.dag import operands
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


LANES = 8  # NumPy's pairwise summation: its accumulators, and
LEAF = 128  # the most terms it adds with them; a longer run is split in two (see `row_sums`)
DEPTH = 64  # partial sums a row's tree holds at once, at most (the tree is < 64 deep)


def substitute(node, mapping: dict):
    """`node` (an expression, a statement, or a tuple of them) with each Var of `mapping`
    replaced by its expression."""
    if isinstance(node, tuple | list):
        return tuple(substitute(x, mapping) for x in node)
    if isinstance(node, Var):
        return mapping.get(node, node)
    if isinstance(node, Expr | Stmt | Store):
        return type(node)(*(substitute(getattr(node, f.name), mapping)
                            for f in dataclasses.fields(node)))  # fmt: skip
    return node


def _plus(a: Expr, b: int) -> Expr:
    return Lit(a.value + b) if isinstance(a, Lit) else (a + Lit(b) if b else a)


def needed(compute: Sequence[Stmt], node) -> list[Stmt]:
    """The statements of `compute` (assignments of locals, in order) that `node` reads,
    directly or through others."""
    want = {x for x in walk(node) if isinstance(x, Var)}
    out: list[Stmt] = []
    for s in reversed(compute):
        if isinstance(s, Assign) and s.target in want:
            out.append(s)
            want |= {x for x in walk(s.value) if isinstance(x, Var)}
    return out[::-1]


def row_sums(
    j: Var, n: Expr, compute: list[Stmt], stores: list[Stmt], terms: list[tuple[Expr, str]]
) -> tuple[list[Stmt], list[Var]]:
    """The statements of one row of `n` elements (index `j`, of each element's `compute`):
    the sum of each of `terms` (an expression and its dtype) over the row, then the row's
    `stores`. Each sum is a loop of its own (computing what its term needs), so that its
    LANES accumulators are one vector: gcc vectorises a loop's accumulators together only
    when they add the same operation. Then one loop computes and stores the stored values
    (after every read of the sums: a value may be written over an operand, in place)."""
    stmts: list[Stmt] = []
    sums: list[Var] = []
    for k, (term, dtype) in enumerate(terms):
        part, total = row_sum(j, n, needed(compute, term), term, Var(f"sum{k}", dtype), k)
        stmts += part
        sums.append(total)
    if stores:
        stmts.append(Loop(j, Lit(0), n, (*needed(compute, stores), *stores)))
    return stmts, sums


def row_sum(
    j: Var, n: Expr, compute: list[Stmt], term: Expr, total: Var, k: int
) -> tuple[list[Stmt], Var]:
    """Statements setting `total` to the sum of `term` over a row of `n` elements (index
    `j`, each computed by `compute`), added as NumPy's pairwise_sum (numpy/_core/src/umath/
    loops_utils.h.src) adds a contiguous row, so that it is np.sum's bits (but for np.sum's
    initial 0.0, which the caller adds). Fewer than LANES terms: in order, from 0.0. Up to
    LEAF: a leaf, LANES accumulators that the first LANES terms start and each later block
    of LANES advances (a vector operation), then added as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)),
    then the last n % LANES terms in order. More than LEAF: the sum of the first n/2 (rounded
    down to a multiple of LANES) and the sum of the rest, each split so in turn; the leaves
    are summed left to right, and after each the sums its end completes are added from a
    stack (pairwise_leaf and pairwise_joins, kir.FUNCTIONS, walk the tree). `k` numbers the
    sum's locals."""
    dtype = total.dtype
    acc = [Var(f"acc{k}_{c}", dtype) for c in range(LANES)]
    names = [s.target for s in compute if isinstance(s, Assign) and isinstance(s.target, Var)]
    static = n.value if isinstance(n, Lit) else None

    def in_order() -> tuple[Stmt, ...]:  # the term at j added to the total
        return (*compute, Assign(total, total + term))

    def block(at: Expr, first: bool) -> list[Stmt]:
        """LANES terms from `at`, each added to its lane's accumulator (`first`: starting it)."""
        body: list[Stmt] = []
        for c in range(LANES):
            m = {j: _plus(at, c), **{v: Var(f"{v.name}_{c}", v.dtype) for v in names}}
            body += substitute(compute, m)
            t = substitute(term, m)
            body.append(Assign(acc[c], t if first else acc[c] + t))
        return body

    def leaf(lo: Expr, m: Expr) -> list[Stmt]:  # m >= LANES terms from lo
        fixed = m.value if isinstance(m, Lit) else None
        stop = Lit(fixed - fixed % LANES) if fixed is not None else (m // Lit(LANES)) * Lit(LANES)
        at0 = isinstance(lo, Lit) and lo.value == 0
        end = stop if at0 else lo + stop
        stmts = block(lo, True)
        if fixed is None or fixed >= 2 * LANES:
            jb = Var(f"{j.name}v", INDEX)
            stmts.append(Loop(jb, _plus(lo, LANES), end, tuple(block(jb, False)), Lit(LANES)))
        r = acc
        stmts.append(
            Assign(total, ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7])))
        )
        if fixed is None or fixed % LANES:
            stmts.append(Loop(j, end, m if at0 else lo + m, in_order()))
        return stmts

    zero = Lit(0.0, "float32") if dtype == "float32" else Lit(0.0)
    small = [Assign(total, zero), Loop(j, Lit(0), n, in_order())]
    if static is not None and static < LANES:
        return small, total
    if static is not None and static <= LEAF:
        return leaf(Lit(0), n), total
    # a tree of leaves: `pos` the next leaf's start, `size` its length; `sp` the stack's depth
    pos, size, sp = Var("pos", INDEX), Var("size", INDEX), Var("sp", INDEX)
    joins, q, u = Var("joins", INDEX), Var("leaf", INDEX), Var("join", INDEX)
    stack = Scratch(f"stack{k}", dtype, DEPTH)
    each = [
        Assign(size, Call("pairwise_leaf", (n, pos))),
        *leaf(pos, size),
        Assign(joins, Call("pairwise_joins", (n, pos))),
        Loop(u, Lit(0), joins, (Assign(sp, sp - Lit(1)), Assign(total, Load(stack, sp) + total))),
        Assign(Store(stack, sp), total),
        Assign(sp, sp + Lit(1)),
        Assign(pos, pos + size),
    ]
    leaves = (n + Lit(LEAF // 2 - 1)) // Lit(LEAF // 2)  # each leaf has LEAF / 2 terms or more
    tree = [
        Assign(pos, Lit(0)),
        Assign(sp, Lit(0)),
        Loop(q, Lit(0), leaves, (If(pos < n, tuple(each)),)),
        Assign(total, Load(stack, Lit(0))),
    ]
    if static is not None:
        return tree, total
    return [If(n < Lit(LANES), tuple(small)), If(n >= Lit(LANES), tuple(tree))], total


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
    # sums of floats along the innermost axis only: each row summed as NumPy sums it (row_sums)
    rowwise = (
        bool(partial)
        and all(G._node[n]["params"]["axis"] == (len(domain) - 1,) for n in partial)
        and all(v.dtype(n) in ("float32", "float64") for n in partial)
        and len(heads) > 1
        and heads[-1][0] is idx[-1]
    )
    rows: list[tuple[int, Expr]] = []  # each such sum, and its term
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
        elif n in partial and rowwise:
            rows.append((n, read(args[0])))
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
    stores = [
        Assign(Store(kb.ref(n, write=True), at), local[n])
        for n in nodes
        if n in stored and n not in red
    ]
    compute = list(body)
    body += stores

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
        if rowwise:  # each row summed in NumPy's pairwise order, its sums stored once
            (j, n_row), outer_heads = heads[-1], heads[:-1]
            terms_ = [(t, v.dtype(n)) for n, t in rows]
            row, sums = row_sums(j, n_row, compute, stores, terms_)
            for (n, _), s in zip(rows, sums, strict=True):
                kept = [None if k == len(domain) - 1 else x for k, x in enumerate(idx)]
                at_kept = flat_index(kb, (*domain[:-1], 1), kept)
                total = single(Lit(0.0)) if s.dtype == "float32" else Lit(0.0)
                total = total + s  # np.sum's: its initial 0.0, then the row's pairwise sum
                if G._node[n]["op"] == "mean":
                    total = total / count(n)
                row.append(Assign(Store(kb.ref(n, write=True), at_kept), total))
            if len(heads) > 2 and not small:
                # each row its own output: the threads share the outermost loop
                (outer, outer_extent), rest = heads[0], outer_heads[1:]
                par = Parallel(outer, outer_extent, Lit(1),
                               extent * Lit(cost) if cost > 1 else extent,
                               tuple(nest(rest, row)))  # fmt: skip
                doc = f"{what} over {shape}, its outer loop shared, rows summed pairwise"
                return e.kernel(kb, doc, [par], work, alone=False)
            doc = f"{what} over {shape}, on one thread, rows summed pairwise"
            return e.kernel(kb, doc, nest(outer_heads, row), work, alone=True)
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
