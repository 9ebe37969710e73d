"""Indexing, slicing, concatenation, gathers and the normalisations that need a kernel; and
the checks a generated module makes of the indices it is given (`index_checks`).

Gathers and scatters (`take`, `take_grad`) call a helper of templates/kernels/take.pyx.j2, one
per float dtype and index type; it skips any index out of range, as `one_hot` does (the
argument checks refuse those before a call runs), so no index ever makes a kernel read or
write outside an array. Slices, their gradients, `concat` and `one_hot` are plain loops.
Constants these ops read are arrays, never inlined literals (lower.Context.literal).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from graphc.codegen import cexpr
from graphc.codegen.kernels import INDENT, Values, flat_loop, loop_nest
from graphc.codegen.records import IndexCheck, Statement
from graphc.errors import ShapeError
from graphc.ir.graph import ancestors, describe
from graphc.ops.indexing import constant_index_problem, index_source, index_use

INDEX_SUFFIX = {"int64": "l", "int32": "i"}  # the helpers' index type: long long, int


def _gather(v: Values, n: int, args: list[int], params: dict, name: str) -> list[Statement]:
    """take: out[o, k, i] = x[o, idx[k], i]; take_grad: out[o, idx[k], i] += ct[o, k, i]."""
    src, idx = args
    shape = v.shape(n) if name == "take_grad" else v.shape(src)  # the gathered-from shape
    axis = params["axis"]
    helper = f"_{name}_{cexpr.SUFFIX[v.dtype(n)]}_{INDEX_SUFFIX[v.dtype(idx)]}"
    call = (
        f"{helper}({v.ptr(src)}, {v.ptr(idx)}, {v.ptr(n)}, {cexpr.size(shape[:axis])}, "
        f"{cexpr.dim(shape[axis])}, {cexpr.size(v.shape(idx))}, {cexpr.size(shape[axis + 1 :])})"
    )
    return [Statement("", (), (call,))]


def _zeros(v: Values, n: int) -> Statement:
    heads, i, body = flat_loop(cexpr.size(v.shape(n)))
    return Statement("", heads, (f"{body}{v.ptr(n)}[{i}] = 0",))


def _one_hot(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    """out[k, c] = (idx[k] == c); an index out of range sets nothing."""
    (idx,) = args
    depth = params["depth"]
    heads, k, body = flat_loop(cexpr.size(v.shape(idx)))
    j, out = f"{v.ptr(idx)}[{k}]", v.ptr(n)
    lines = (f"{body}if {j} >= 0 and {j} < {depth}:", f"{body}{INDENT}{out}[{k}*{depth} + {j}] = 1")
    return [_zeros(v, n), Statement("", heads, lines)]


def _box_index(
    starts: Sequence[int], steps: Sequence[int], idx: Sequence[str | None]
) -> list[str | None]:
    """The index along each axis of a sliced value of the element at `idx` of the slice."""
    out: list[str | None] = []
    for a, c, i in zip(starts, steps, idx, strict=True):
        if i is None:
            out.append(str(a) if a else None)
        elif (a, c) == (0, 1):
            out.append(i)
        else:
            term = i if abs(c) == 1 else f"{abs(c)}*{i}"
            out.append(f"({a} {'-' if c < 0 else '+'} {term})")
    return out


def _slice(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    (x,) = args
    heads, idx, body = loop_nest(v.shape(n))
    at = _box_index(params["starts"], params["steps"], idx)
    read = f"{v.ptr(x)}[{cexpr.flat_index(v.shape(x), at)}]"
    target = f"{v.ptr(n)}[{cexpr.flat_index(v.shape(n), idx)}]"
    return [Statement("", heads, (f"{body}{target} = {read}",))]


def _slice_grad(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    (ct,) = args
    heads, idx, body = loop_nest(v.shape(ct))
    at = cexpr.flat_index(v.shape(n), _box_index(params["starts"], params["steps"], idx))
    read = f"{v.ptr(ct)}[{cexpr.flat_index(v.shape(ct), idx)}]"
    return [_zeros(v, n), Statement("", heads, (f"{body}{v.ptr(n)}[{at}] = {read}",))]


def _concat(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    """One copy per operand, each into its part of the output along the axis."""
    axis, out_shape = params["axis"], v.shape(n)
    statements, offset = [], 0
    for u in args:
        shape = v.shape(u)
        heads, idx, body = loop_nest(shape)
        at: list[str | None] = list(idx)
        i = idx[axis]
        if offset:
            at[axis] = f"({offset} + {i})" if i is not None else str(offset)
        target = f"{v.ptr(n)}[{cexpr.flat_index(out_shape, at)}]"
        read = f"{v.ptr(u)}[{cexpr.flat_index(shape, idx)}]"
        statements.append(Statement("", heads, (f"{body}{target} = {read}",)))
        offset += shape[axis] if isinstance(shape[axis], int) else 0  # symbolic: one operand
    return statements


def _rows(shape: tuple, axes: Sequence[int]) -> tuple[str, str, str]:
    """`shape` seen as [outer, length, inner] around the adjacent `axes`."""
    lo, hi = (axes[0], axes[-1] + 1) if axes else (len(shape), len(shape))
    return cexpr.size(shape[:lo]), cexpr.size(shape[lo:hi]), cexpr.size(shape[hi:])


def _layer_norm(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    (x,) = args
    outer, length, inner = _rows(v.shape(x), [params["axis"]])
    call = (
        f"_layer_norm_{cexpr.SUFFIX[v.dtype(n)]}({v.ptr(x)}, {v.ptr(n)}, {outer}, {length}, "
        f"{inner}, {params['eps']!r})"
    )
    return [Statement("", (), (call,))]


def _logsumexp(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    (x,) = args
    outer, length, inner = _rows(v.shape(x), params["axis"])
    call = (
        f"_logsumexp_{cexpr.SUFFIX[v.dtype(n)]}({v.ptr(x)}, {v.ptr(n)}, {outer}, {length}, {inner})"
    )
    return [Statement("", (), (call,))]


LOWER: dict[str, Callable[..., list[Statement]]] = {
    "take": lambda v, n, a, p: _gather(v, n, a, p, "take"),
    "take_grad": lambda v, n, a, p: _gather(v, n, a, p, "take_grad"),
    "one_hot": _one_hot,
    "slice": _slice,
    "slice_grad": _slice_grad,
    "concat": _concat,
    "layer_norm": _layer_norm,
    "logsumexp": _logsumexp,
}
KERNEL_TEMPLATE: dict[str, str] = {
    "take": "take",
    "take_grad": "take",
    "layer_norm": "layer_norm",
    "logsumexp": "logsumexp",
}


# ---- the indices a module checks before it runs ----------------------------------------------
def index_checks(
    v: Values, inputs: dict[str, int], var: dict[str, str], binder: dict[str, str]
) -> dict[str, tuple[IndexCheck, ...]]:
    """The index checks of a function taking `inputs` (name -> node; `var`: name -> its array
    in the checks, `binder`: symbol -> the argument binding it), keyed by the argument they
    are listed with. Indices from constants alone with a known bound are checked now."""
    G = v.G
    name_of = {n: name for name, n in inputs.items()}
    got = lambda d: str(d) if isinstance(d, int) else f"got.{cexpr.dim(d)}"
    groups: dict[tuple, list] = {}  # (fails, lo, hi, argument) -> the uses it checks
    seen = set()  # take_grad reads the indices its take does
    for n in sorted(G.nodes):
        use = index_use(G, n)
        if use is None or use[:3] in seen:
            continue
        seen.add(use[:3])
        idx, wraps, size, bound = use
        leaves = [u for u in sorted(ancestors(G, [idx])) if G.nodes[u]["op"] in ("input", "const")]
        args = [name_of.get(u) for u in leaves if G.nodes[u]["op"] == "input"]
        if None in args or not (isinstance(size, int) or size in binder):
            continue  # this function does not run the step
        if not args and isinstance(size, int):  # constants (verify checks them too)
            problem = constant_index_problem(G, n)
            if problem:
                raise ShapeError(f"{describe(G, n)}: {problem}")
            continue
        hi = got(size)
        lo = f"-{hi}" if wraps else "0"
        fails = []
        for u in leaves:
            a = G.nodes[u]
            if a["op"] == "input":
                count = "*".join(got(d) for d in a["shape"]) or "1"
                data = f"<const {cexpr.CTYPE[a['dtype']]}*>PyArray_DATA({var[a['name']]})"
                within = f"gc_within_{INDEX_SUFFIX[a['dtype']]}"
                fails.append(f"not {within}({data}, {count}, {lo}, {hi})")
            elif a["value"].size:
                fails.append(f"{a['value'].min()} < {lo} or {a['value'].max()} >= {hi}")
        if fails:
            key = (" or ".join(fails), lo, hi, args[0] if args else binder[size])
            groups.setdefault(key, []).append((n, bound, index_source(G, idx), args))
    out: dict[str, list[IndexCheck]] = {}
    for (fails, lo, hi, owner), uses in groups.items():
        args = sorted({a for *_, names in uses for a in names})
        what = [describe(G, u[0]) for u in uses]
        out.setdefault(owner, []).append(
            IndexCheck(
                "".join(c if c.isprintable() else "?" for c in ", ".join(what)),
                fails,
                lo,
                hi,
                repr(tuple(zip(what, (u[1] for u in uses), (u[2] for u in uses), strict=True))),
                "{" + ", ".join(f"{a!r}: {var[a]}" for a in args) + "}",
                "{" + ", ".join(f"{s!r}: {got(s)}" for s in binder) + "}",
            )
        )
    return {k: tuple(c) for k, c in out.items()}
