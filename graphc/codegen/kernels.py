"""How each op becomes code: elementwise ops from their fragments (`fused`), the rest from a
lowering function that fills loop records or calls a kernel template's helper (`_gemm_d`, ...):
those of the core ops here, the others in one module per family of ops (see codegen/ops.py)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from graphc.codegen import cexpr
from graphc.codegen.records import LoopHead, Statement
from graphc.ir.graph import operands
from graphc.ir.shapes import Dim
from graphc.ops.registry import REGISTRY
from graphc.passes.fuse import is_flat

INDENT = "    "


class Values(Protocol):
    """What a lowering function may ask about values (see lower.Context)."""

    G: Any  # the graph's networkx view

    def describe(self, n: int) -> str: ...
    def ptr(self, n: int) -> str: ...
    def literal(self, n: int) -> str | None: ...
    def shape(self, n: int) -> tuple: ...
    def dtype(self, n: int) -> str: ...


def loop_nest(
    dims: Sequence[Dim], prefix: str = "i"
) -> tuple[tuple[LoopHead, ...], list[str | None], str]:
    """Loops over every dim of size > 1; returns the heads, the index variable per dim (None for
    size-1 dims) and the indentation of the body."""
    heads, idx = [], []
    for k, d in enumerate(dims):
        if d == 1:
            idx.append(None)
            continue
        var = f"{prefix}{k}"
        heads.append(LoopHead(INDENT * len(heads), var, cexpr.dim(d)))
        idx.append(var)
    return tuple(heads), idx, INDENT * len(heads)


def flat_loop(n_elements: str) -> tuple[tuple[LoopHead, ...], str, str]:
    if n_elements == "1":
        return (), "0", ""
    return (LoopHead("", "i", n_elements),), "i", INDENT


def _operand_index(shape: tuple, out_idx: Sequence[str | None]) -> str:
    """Flat index into an operand broadcast against an output indexed by `out_idx`."""
    off = len(out_idx) - len(shape)
    return cexpr.flat_index(
        shape, [out_idx[off + j] if d != 1 else None for j, d in enumerate(shape)]
    )


def _reshape(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    # Reached only when the plan could not alias the bytes (the result is an output array).
    heads, i, body = flat_loop(cexpr.size(v.shape(n)))
    src = v.literal(args[0]) or f"{v.ptr(args[0])}[{i}]"
    return [Statement("", heads, (f"{body}{v.ptr(n)}[{i}] = {src}",))]


def _transpose(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    (x,) = args
    perm = params["perm"]
    heads, idx, body = loop_nest(v.shape(n))
    x_idx: list[str | None] = [None] * len(perm)
    for j, p in enumerate(perm):
        x_idx[p] = idx[j]
    read = f"{v.ptr(x)}[{cexpr.flat_index(v.shape(x), x_idx)}]"
    target = f"{v.ptr(n)}[{cexpr.flat_index(v.shape(n), idx)}]"
    return [Statement("", heads, (f"{body}{target} = {read}",))]


def _max(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    """max over axes; NaN wins and stays, as in np.max (sum and mean are loops: `fused`)."""
    (x,) = args
    axes = params["axis"]
    out = v.ptr(n)
    init_heads, i, ib = flat_loop(cexpr.size(v.shape(n)))
    heads, idx, body = loop_nest(v.shape(x))
    kept = tuple(1 if k in axes else d for k, d in enumerate(v.shape(x)))  # keepdims layout
    o = f"{out}[{cexpr.flat_index(kept, [None if k in axes else j for k, j in enumerate(idx)])}]"
    r = v.literal(x) or f"{v.ptr(x)}[{cexpr.flat_index(v.shape(x), idx)}]"
    return [
        Statement("", init_heads, (f"{ib}{out}[{i}] = (-INFINITY)",)),
        Statement("", heads, (f"{body}{o} = ({r} if ({r} > {o} or {r} != {r}) else {o})",)),
    ]


def _size(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    count = cexpr.size([v.shape(args[0])[k] for k in params["axis"]])
    return [Statement("", (), (f"{v.ptr(n)}[0] = <{cexpr.CTYPE[v.dtype(n)]}>({count})",))]


def _softmax(v: Values, n: int, args: list[int], params: dict, log: bool) -> list[Statement]:
    (x,) = args
    shape, axis = v.shape(x), params["axis"]
    call = (
        f"_softmax_{cexpr.SUFFIX[v.dtype(n)]}({v.ptr(x)}, {v.ptr(n)}, "
        f"{cexpr.size(shape[:axis])}, {cexpr.dim(shape[axis])}, "
        f"{cexpr.size(shape[axis + 1 :])}, {int(log)})"
    )
    return [Statement("", (), (call,))]


def _matmul(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    a, b = args
    ta, tb = params["transpose_a"], params["transpose_b"]
    sa, sb = v.shape(a), v.shape(b)
    ea = (*sa[:-2], sa[-1], sa[-2]) if ta else sa
    eb = (*sb[:-2], sb[-1], sb[-2]) if tb else sb
    m = ea[-2] if len(ea) > 1 else 1
    k = ea[-1]
    n_ = eb[-1] if len(eb) > 1 else 1
    out_batch = v.shape(n)[: len(v.shape(n)) - (len(sa) > 1) - (len(sb) > 1)]
    heads, idx, body = loop_nest(out_batch, prefix="b")
    ba, bb = sa[:-2], sb[:-2]

    def at(ptr: str, batch: tuple, rows: str) -> str:
        if not batch:
            return ptr
        return f"{ptr} + ({_operand_index(batch, idx)})*{rows}"

    mk, kn, mn = cexpr.size([m, k]), cexpr.size([k, n_]), cexpr.size([m, n_])
    call = (
        f"_gemm_{cexpr.SUFFIX[v.dtype(n)]}({int(ta)}, {int(tb)}, {cexpr.dim(m)}, "
        f"{cexpr.dim(n_)}, {cexpr.dim(k)}, {at(v.ptr(a), ba, mk)}, {at(v.ptr(b), bb, kn)}, "
        f"{at(v.ptr(n), out_batch, mn)})"
    )
    return [Statement("", heads, (body + call,))]


LOWER: dict[str, Callable[..., list[Statement]]] = {
    "matmul": _matmul,
    "transpose": _transpose,
    "reshape": _reshape,
    "max": _max,
    "size": _size,
    "softmax": lambda v, n, a, p: _softmax(v, n, a, p, log=False),
    "log_softmax": lambda v, n, a, p: _softmax(v, n, a, p, log=True),
}
# Work (see ops.WORK): BLAS threads its products itself; `size` reads no element.
WORK = {"matmul": lambda *_: None, "size": lambda *_: "0"}
# The helper each op's code calls, rendered once per dtype from templates/kernels/.
KERNEL_TEMPLATE = {"matmul": "gemm", "softmax": "softmax", "log_softmax": "softmax"}


BLOCK = 64  # elements whose reduction terms are stored, then added in order
CHUNKS = 64  # a flat loop ending in full reductions runs as this many chunks
# Elements below which a loop runs on the calling thread: a parallel region costs microseconds,
# and far more when the other cores are busy (a waiting thread must be scheduled again).
PARALLEL_MIN = 1 << 18
MAP_CHUNK = PARALLEL_MIN // 8  # elements of a flat map handed to a thread at a time


@dataclass(frozen=True)
class Fused:
    """A fused step's code: `statements` run in the step's place; `ranged`, when the loop may
    be shared among threads, is the body of a function `(b, lo, hi)` over part of its outer
    loop (or of its chunks), which the statements hand to `_parallel`. `locals`, `ranged_locals`:
    the (ctype, name) of the variables each uses; `partials`: the (ctype, name) of each full
    reduction's per-chunk sums, CHUNKS values in the call's scratch memory; `size`: the
    elements of the loop (a C expression); `alone`: it runs on one thread whatever its size."""

    statements: list[Statement]
    locals: list[tuple[str, str]]
    size: str
    ranged: list[Statement] = field(default_factory=list)
    ranged_locals: list[tuple[str, str]] = field(default_factory=list)
    partials: list[tuple[str, str]] = field(default_factory=list)
    alone: bool = False


def fused(v: Values, nodes: Sequence[int], stored: set[int], fn: str) -> Fused:
    """One loop computing `nodes` (a fused step, see passes/fuse.py) element by element: each
    value in a scalar `<name>_`, reductions accumulated, and the values in `stored` written out
    after every load of the element. `fn` names the range function, if there is one.

    A loop whose size is not a small constant is a range function, which `_parallel` in the
    module runs on one thread or, when the loop is large, hands out to several (`_threads`). A
    map splits its outermost loop. A loop with full reductions (always flat, see
    passes/fuse.py) runs as CHUNKS fixed chunks: within a chunk, BLOCK terms at a time are
    computed (vectorised) into scratch and then added in order; the chunks' sums are added in
    order at the end. Every full reduction of a domain adds its terms in this one order, fused
    or not, for any number of threads. Loops with partial reductions (`sum(x, axis=0)`) run on
    one thread, in row-major order as the `sum` kernel does."""
    G = v.G
    mine = set(nodes)
    red = [n for n in nodes if G.nodes[n]["op"] in ("sum", "mean")]
    first = nodes[0]
    domain = v.shape(operands(G, first)[0]) if first in red else v.shape(first)
    full = [n for n in red if all(d == 1 for d in v.shape(n))]
    partial = [n for n in red if n not in full]
    flat = is_flat(G, nodes)
    if flat:
        heads, i, _ = flat_loop(cexpr.size(domain))
        index = lambda u: i if v.shape(u) == domain else "0"
        at, idx_ = i, [i]
    else:
        heads, idx_, _ = loop_nest(domain)
        index = lambda u: _operand_index(v.shape(u), idx_)
        at = cexpr.flat_index(domain, idx_)
    j = heads[-1].var if heads else ""  # the innermost index
    ctype = lambda n: cexpr.CTYPE[v.dtype(n)]
    name = v.ptr

    def read(u: int) -> str:
        return f"{name(u)}_" if u in mine else (v.literal(u) or f"{name(u)}[{index(u)}]")

    def count(n: int) -> str:
        axes = G.nodes[n]["params"]["axis"]
        dims = [d for k, d in enumerate(v.shape(operands(G, n)[0])) if k in axes]
        return f"<{ctype(n)}>({cexpr.size(dims)})"

    scalars = [(ctype(n), f"{name(n)}_") for n in nodes if n not in partial]
    before: list[Statement] = []
    after: list[Statement] = []
    lines: list[str] = []  # the body of the (innermost) loop, unindented
    for n in nodes:
        a = G.nodes[n]
        args = operands(G, n)
        note = f"  # {v.describe(n)}"
        if n in full:
            before.append(Statement("", (), (f"{name(n)}_ = 0",)))
            if heads:
                lines.append(f"{name(n)}_s[{j} - blk] = {read(args[0])}{note}")
            else:
                lines.append(f"{name(n)}_ = {name(n)}_ + {read(args[0])}{note}")
            mean = f" / {count(n)}" if a["op"] == "mean" else ""
            after.append(Statement("", (), (f"{name(n)}[0] = {name(n)}_{mean}",)))
        elif n in partial:
            oh, oi, ob = flat_loop(cexpr.size(v.shape(n)))
            before.append(Statement("", oh, (f"{ob}{name(n)}[{oi}] = 0",)))
            axes = a["params"]["axis"]
            kept = [None if k in axes else x for k, x in enumerate(idx_)]
            kept_shape = tuple(1 if k in axes else d for k, d in enumerate(domain))
            at_kept = cexpr.flat_index(kept_shape, kept)
            lines.append(f"{name(n)}[{at_kept}] = {name(n)}[{at_kept}] + {read(args[0])}{note}")
            if a["op"] == "mean":
                mean = f"{ob}{name(n)}[{oi}] = {name(n)}[{oi}] / {count(n)}"
                after.append(Statement("", oh, (mean,)))
        elif a["op"] == "broadcast_to":
            lines.append(f"{name(n)}_ = {read(args[0])}{note}")
        else:
            fragment = REGISTRY[a["op"]].fragment
            if callable(fragment):
                fragment = fragment(a["params"])
            cparams = {k: cexpr.CTYPE.get(p, p) for k, p in a["params"].items()}
            expr = fragment.format(*(read(u) for u in args), **cparams)
            lines.append(f"{name(n)}_ = {expr}{note}")
    lines += [f"{name(n)}[{at}] = {name(n)}_" for n in nodes if n in stored and n not in red]

    def statement(heads: Sequence[LoopHead], body: list[str]) -> Statement:
        return Statement("", tuple(heads), tuple(INDENT * len(heads) + ln for ln in body))

    size = cexpr.size(domain)
    loop_vars = [("Py_ssize_t", h.var) for h in heads]
    if not heads:
        return Fused([*before, statement((), lines), *after], scalars, "1", alone=True)
    small = all(isinstance(d, int) for d in domain) and math.prod(domain) < PARALLEL_MIN
    if partial or (small and not full):  # one thread
        return Fused(
            [*before, statement(heads, lines), *after], scalars + loop_vars, size, alone=True
        )
    if not red:  # a map: the threads share the outermost loop, in pieces of `chunk`
        outer, *inner = heads
        chunk = MAP_CHUNK if flat else 1  # elements, or rows of a nest
        call = f"_parallel({fn}, b, {outer.extent}, {chunk}, {size})"
        ranged = statement([LoopHead("", outer.var, "lo, hi"), *inner], lines)
        return Fused([Statement("", (), (call,))], [], size, [ranged], scalars + loop_vars)
    assert flat, "fuse puts full reductions in flat loops only"
    # chunks of a whole number of blocks, at least one block (no division by zero when empty)
    chunk = f"max((({size} + {CHUNKS - 1}) // {CHUNKS} + {BLOCK - 1}) // {BLOCK}, 1) * {BLOCK}"
    block = [
        f"blk_end = min(blk + {BLOCK}, ck_hi)",
        f"for {j} in range(blk, blk_end):",
        *(INDENT + ln for ln in lines),
        f"for {j} in range(blk, blk_end):",
        *(INDENT + f"{name(n)}_a = {name(n)}_a + {name(n)}_s[{j} - blk]" for n in full),
    ]
    body = [
        "ck_lo = ck * ck_len",
        f"ck_hi = min(ck_lo + ck_len, {size})",
        *(f"{name(n)}_a = 0" for n in full),
        f"for blk in range(ck_lo, ck_hi, {BLOCK}):",
        *(INDENT + ln for ln in block),
        *(f"{name(n)}_p[ck] = {name(n)}_a" for n in full),
    ]
    ranged = [
        Statement("", (), (f"ck_len = {chunk}",)),
        statement([LoopHead("", "ck", "lo, hi")], body),
    ]
    totals = {f"{name(n)}_" for n in full}  # added up by the caller, not the range function
    ranged_locals = [x for x in scalars if x[1] not in totals]
    ranged_locals += [("Py_ssize_t", x) for x in (j, "blk", "blk_end")]
    ranged_locals += [("Py_ssize_t", x) for x in ("ck", "ck_len", "ck_lo", "ck_hi")]
    for n in full:
        ranged_locals += [(ctype(n), f"{name(n)}_s[{BLOCK}]"), (ctype(n), f"{name(n)}_a")]
    ck_n = f"({size} + ck_len - 1) // ck_len"
    call = Statement("", (), (f"ck_len = {chunk}", f"_parallel({fn}, b, {ck_n}, 1, {size})"))
    sums = statement(
        [LoopHead("", "ck", ck_n)], [f"{name(n)}_ = {name(n)}_ + {name(n)}_p[ck]" for n in full]
    )
    locals_ = [(ctype(n), f"{name(n)}_") for n in full] + [
        ("Py_ssize_t", "ck"),
        ("Py_ssize_t", "ck_len"),
    ]
    partials = [(ctype(n), f"{name(n)}_p") for n in full]
    return Fused([*before, call, sums, *after], locals_, size, ranged, ranged_locals, partials)
