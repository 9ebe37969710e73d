"""How each op becomes code: elementwise ops from their fragments, the rest from a lowering
function here that fills loop records or calls a kernel template's helper (`_gemm_d`, ...)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from graphc.codegen import cexpr
from graphc.codegen.records import LoopHead, Statement
from graphc.ir.shapes import Dim
from graphc.ops.registry import REGISTRY

INDENT = "    "


class Values(Protocol):
    """What a lowering function may ask about values (see lower.Context)."""

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


def elementwise(v: Values, n: int, op: str, args: list[int], params: dict) -> list[Statement]:
    out_shape = v.shape(n)
    fragment = REGISTRY[op].fragment
    if callable(fragment):
        fragment = fragment(params)
    assert fragment is not None
    scalar_like = [all(d == 1 for d in v.shape(u)) for u in args]
    if all(v.shape(u) == out_shape or s for u, s in zip(args, scalar_like, strict=True)):
        heads, i, body = flat_loop(cexpr.size(out_shape))
        index = {u: ("0" if s else i) for u, s in zip(args, scalar_like, strict=True)}
        target = f"{v.ptr(n)}[{i}]"
    else:
        heads, idx, body = loop_nest(out_shape)
        index = {u: _operand_index(v.shape(u), idx) for u in args}
        target = f"{v.ptr(n)}[{cexpr.flat_index(out_shape, idx)}]"
    reads = [v.literal(u) or f"{v.ptr(u)}[{index[u]}]" for u in args]
    cparams = {k: cexpr.CTYPE.get(p, p) for k, p in params.items()}
    expr = fragment.format(*reads, **cparams)
    return [Statement("", heads, (f"{body}{target} = {expr}",))]


def copy_broadcast(v: Values, n: int, src: int) -> list[Statement]:
    """`n` = `src` broadcast to n's shape (also a plain copy when the shapes agree)."""
    heads, idx, body = loop_nest(v.shape(n))
    read = v.literal(src) or f"{v.ptr(src)}[{_operand_index(v.shape(src), idx)}]"
    target = f"{v.ptr(n)}[{cexpr.flat_index(v.shape(n), idx)}]"
    return [Statement("", heads, (f"{body}{target} = {read}",))]


def _broadcast_to(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    return copy_broadcast(v, n, args[0])


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


def _reduce(v: Values, n: int, args: list[int], params: dict, op: str) -> list[Statement]:
    (x,) = args
    axes = params["axis"]
    out = v.ptr(n)
    init_heads, i, ib = flat_loop(cexpr.size(v.shape(n)))
    init = "(-INFINITY)" if op == "max" else "0"
    heads, idx, body = loop_nest(v.shape(x))
    kept = tuple(1 if k in axes else d for k, d in enumerate(v.shape(x)))  # keepdims layout
    o = f"{out}[{cexpr.flat_index(kept, [None if k in axes else j for k, j in enumerate(idx)])}]"
    r = v.literal(x) or f"{v.ptr(x)}[{cexpr.flat_index(v.shape(x), idx)}]"
    if op == "max":  # NaN wins and stays, as in np.max
        update = f"{o} = ({r} if ({r} > {o} or {r} != {r}) else {o})"
    else:
        update = f"{o} += {r}"
    stmts = [
        Statement("", init_heads, (f"{ib}{out}[{i}] = {init}",)),
        Statement("", heads, (f"{body}{update}",)),
    ]
    if op == "mean":
        count = cexpr.size([d for k, d in enumerate(v.shape(x)) if k in axes])
        ctype = cexpr.CTYPE[v.dtype(n)]
        stmts.append(
            Statement("", init_heads, (f"{ib}{out}[{i}] = {out}[{i}] / <{ctype}>({count})",))
        )
    return stmts


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
    "broadcast_to": _broadcast_to,
    "sum": lambda v, n, a, p: _reduce(v, n, a, p, "sum"),
    "mean": lambda v, n, a, p: _reduce(v, n, a, p, "mean"),
    "max": lambda v, n, a, p: _reduce(v, n, a, p, "max"),
    "size": _size,
    "softmax": lambda v, n, a, p: _softmax(v, n, a, p, log=False),
    "log_softmax": lambda v, n, a, p: _softmax(v, n, a, p, log=True),
}
# The helper each op's code calls, rendered once per dtype from templates/kernels/.
KERNEL_TEMPLATE = {"matmul": "gemm", "softmax": "softmax", "log_softmax": "softmax"}


def lower_op(v: Values, n: int, op: str, args: list[int], params: dict) -> list[Statement]:
    if REGISTRY[op].elementwise:
        return elementwise(v, n, op, args, params)
    if op not in LOWER:
        raise NotImplementedError(f"no code generation for op {op!r}")
    return LOWER[op](v, n, args, params)
