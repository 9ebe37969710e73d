"""`lower`: scheduled programs and their memory plans become a module's records (records.py):
each step's kernel (an op's lowering, next to its OpDef, or a fused loop, codegen/loops.py),
kernels that are the same up to their values and sizes kept once, and per function the tables
the runtime reads to check a call, lay out its memory and run the steps."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from graphc.codegen.emit import Emit
from graphc.codegen.failures import failing_steps
from graphc.codegen.indexing import index_checks
from graphc.codegen.kir import Kernel, Lit, Repeat, Runtime, SizeExpr, Step
from graphc.codegen.loops import fused
from graphc.codegen.records import Const, Function, Module, Row
from graphc.codegen.scan import LOOP, Extra, lower_loop
from graphc.errors import GraphError
from graphc.ir.graph import Graph, operands
from graphc.ir.printer import format_params
from graphc.ir.shapes import INT_DTYPES, ITEMSIZE, is_symbol, monomial, shape_symbols
from graphc.ops.reductions import nonempty_dims
from graphc.ops.registry import REGISTRY
from graphc.passes.fuse import loop_op
from graphc.passes.memory import MemoryPlan
from graphc.passes.scan_steps import is_loop
from graphc.passes.schedule import Program

DOCS = {
    "forward": "forward(*inputs, out=None, **inputs) -> dict of the model's outputs. "
    "out: a dict like the one returned, whose arrays are filled instead of new ones.",
    "value_and_grad": "value_and_grad(*inputs, out=None, **inputs) -> (outputs, grads): "
    "grads keyed by the names of the inputs differentiated. out: a pair like the one "
    "returned, whose arrays are filled instead of new ones.",
    "train_step": "train_step(*inputs, out=None, **inputs) -> dict of the model's outputs "
    "before the step. Updates the params and the optimiser's state (inputs too, see STATE) "
    "in place, with one step of the optimiser (OPTIMIZER), whose hyperparameters "
    "(HYPERPARAMETERS) it also takes, the last arguments, each optional. out: as for forward.",
    "jvp": "jvp(*inputs, out=None, **inputs) -> (outputs, tangents): also takes the tangent "
    "of each param (TANGENTS) and returns each output's directional derivative along them, "
    "keyed by output name. out: a pair like the one returned.",
    "hvp": "hvp(*inputs, out=None, **inputs) -> (outputs, grads, hvps): also takes a vector "
    "v per param (VECTORS) and returns the Hessian of OF times v, a block per param. out: a "
    "triple like the one returned.",
}


def comment_text(text: str) -> str:
    """Text safe inside a one-line comment or a docstring: printable, no quote or backslash."""
    text = text.replace('"', "'").replace("\\", "/")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "?" for c in text)


class Context:
    """Names and facts about the values of one graph, shared by every function of a module."""

    def __init__(self, g: Graph, prefix: str = "") -> None:
        self.g = g
        self.G = g.nx
        self.names: dict[int, str] = {}
        self._literals: dict[int, Lit | None] = {}
        self._described: dict[int, str] = {}
        taken: set[str] = set()
        attrs = self.G._node
        for n in sorted(attrs):
            a = attrs[n]
            grad_of = a.get("grad_of")
            name = f"g{grad_of}" if isinstance(grad_of, int) else f"v{n}"
            self.names[n] = prefix + (name if name not in taken else f"v{n}")
            taken.add(name if name not in taken else f"v{n}")

    def shape(self, n: int) -> tuple:
        return self.G._node[n]["shape"]

    def dtype(self, n: int) -> str:
        return self.G._node[n]["dtype"]

    def literal(self, n: int) -> Lit | None:
        """A one-element float or bool constant as a literal, when every step reading it can
        take one (loops over elements, reshape, max, size); else None: an array."""
        if n not in self._literals:
            a = self.G._node[n]
            inline = (
                a["op"] == "const"
                and a["value"].size == 1
                and a["dtype"] not in INT_DTYPES
                and all(
                    loop_op(self.G, s) or self.G._node[s]["op"] in ("reshape", "max", "size")
                    for s in self.G.successors(n)
                )
            )
            self._literals[n] = _literal(a["value"]) if inline else None
        return self._literals[n]

    def step_key(self, nodes: Sequence[int], stored: Sequence[bool]) -> tuple[tuple, list[int]]:
        """What the lowering of a step computing `nodes` (storing those `stored`) reads of the
        graph, with the values it reads from outside numbered in order of first use; and the
        step's values: `nodes`, then those it reads."""
        nodes_ = self.G._node
        values = list(nodes)
        number = {n: k for k, n in enumerate(nodes)}
        key = []
        for n, keep in zip(nodes, stored, strict=True):
            a = nodes_[n]
            args = []
            for u in operands(self.G, n):
                if u not in number:
                    number[u] = len(values)
                    values.append(u)
                    b = nodes_[u]
                    args.append((number[u], b["shape"], b["dtype"], self.literal(u)))
                else:
                    args.append(number[u])
            params = a["params"]
            shown = repr(sorted(params.items())) if params else ""
            key.append((a["op"], shown, a["shape"], a["dtype"], keep, tuple(args)))
        return tuple(key), values

    def name(self, n: int) -> str:
        """`v12`, or `g12` for the gradient of node 12, with an input's name: `v0 'x'`."""
        a = self.G._node[n]
        return self.names[n] + (f" {a['name']!r}" if a["op"] == "input" else "")

    def describe(self, n: int) -> str:
        """`g13 = mul(g14, v30)   [model.py:14]`."""
        got = self._described.get(n)  # every function computing n describes it
        if got is not None:
            return got
        a = self.G._node[n]
        params = format_params(a["op"], a["params"]) if a["params"] else ""
        args = ", ".join(_shown(self.literal(u)) or self.names[u] for u in operands(self.G, n))
        call = f"{a['op']}[{params}]({args})" if params else f"{a['op']}({args})"
        got = self._described[n] = comment_text(
            f"{self.names[n]} = {call}   [{a.get('loc') or '?'}]"
        )
        return got


def _literal(value: np.ndarray) -> Lit:
    v = value.reshape(()).item()
    if isinstance(v, bool):
        return Lit(v, "bool")
    return Lit(float(v), "float32" if value.dtype == np.float32 else None)


def _shown(lit: Lit | None) -> str | None:
    return None if lit is None else repr(lit.value)


class Tables:
    """The numbered things of one function's tables: sizes, floats and values, each numbered
    once, in order of first use."""

    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = list(symbols)
        self.sizes: dict[SizeExpr, int] = {}
        self.floats: dict[float, int] = {}

    def size(self, s: SizeExpr) -> int:
        return self.sizes.setdefault(s, len(self.sizes))

    def size_of(self, dims: Sequence) -> int:
        return self.size(SizeExpr.of(dims))

    def float(self, x: float) -> int:
        return self.floats.setdefault(x, len(self.floats))

    def size_rows(self) -> tuple[Row, ...]:
        rows = []
        for s in self.sizes:
            syms = [self.symbols.index(name) for name, e in s.symbols for _ in range(e)]
            rows.append(Row((s.coef, s.div, len(syms), *syms), (str(s),)))
        return tuple(rows)


def lower(
    g: Graph,
    programs: dict[str, tuple[Program, MemoryPlan]],
    returns: dict[str, tuple[dict[str, str], ...]],
    meta: dict[str, str],
    source_file: str,
    version: str,
    in_place: dict[str, str] | None = None,
    defaults: dict[str, float] | None = None,
    share: bool = True,
    fusion: bool = True,
) -> Module:
    """The module records: one Function per program, returning the dicts `returns` names for
    it (output name -> key). `in_place` (output -> input) names what train_step writes over
    its inputs; `defaults` the values of the arguments a call may leave out (train_step's
    hyperparameters, its last arguments). `share`: lower the steps that are the same up to
    their values once (the records are the same either way; tests compare). `fusion`: fuse
    the loops of loop bodies (those of the programs are fused already, or not)."""
    ctx = Context(g)
    symbols = sorted(
        {d for prog, _ in programs.values() for n in prog.inputs.values()
         for d in shape_symbols(ctx.shape(n))}
    )  # fmt: skip
    consts: dict[Any, int] = {}  # node (or a loop body's constant) -> module constant
    memo: dict | None = {} if share else None
    extras = {name: Extra() for name in programs}
    lowered = {
        name: _steps(ctx, prog, plan, memo, extras[name], fusion)
        for name, (prog, plan) in programs.items()
    }
    kernels: dict[Kernel, int] = {}
    runtime: dict[str, int] = {}
    ids: dict[int, int] = {}  # id(step.kernel) -> its number (a shared kernel is hashed once)
    flat = [s for steps in lowered.values() for s in _flat(steps)]
    for step in flat:
        if isinstance(step.kernel, Kernel) and id(step.kernel) not in ids:
            ids[id(step.kernel)] = kernels.setdefault(step.kernel, len(kernels))
    if any(isinstance(s, Repeat) for steps in lowered.values() for s in steps):
        runtime[LOOP.name] = len(kernels)  # the module's loop: right after its own kernels
        ids[id(LOOP)] = len(kernels)
    for step in flat:
        if isinstance(step.kernel, Runtime) and id(step.kernel) not in ids:
            name = step.kernel.name
            ids[id(step.kernel)] = runtime.setdefault(name, len(kernels) + len(runtime))
    functions = tuple(
        _function(ctx, name, prog, plan, returns[name], lowered[name], ids, symbols, consts,
                  (in_place or {}) if name == "train_step" else {}, defaults or {},
                  extras[name])
        for name, (prog, plan) in programs.items()
    )  # fmt: skip
    header = (
        f"{g.name}: generated by graphc {version} from {os.path.basename(source_file)}"
        " -- do not edit; compile it again.",
        "Below: the model's loops, each distinct one once; then each function's program, its",
        "steps in order with the nodes and model lines they compute (backward ones: `adj:`),",
        "which graphc's runtime (graphc_rt.h) runs after checking the arguments.",
    )
    return Module(
        name=g.name,
        header=tuple(comment_text(h) for h in header),
        meta=tuple(meta.items()),
        symbols=tuple(symbols),
        kernels=tuple(kernels),
        runtime=tuple(runtime),
        consts=tuple(_const(ctx, n, k, extras) for n, k in consts.items()),
        functions=functions,
    )


def _flat(steps: Sequence[Step | Repeat]) -> list[Step]:
    """`steps` with each loop's body's steps after it (in place of the loop)."""
    out: list[Step] = []
    for s in steps:
        out.extend(_flat(s.body) if isinstance(s, Repeat) else [s])
    return out


def _steps(
    ctx: Context,
    prog: Program,
    plan: MemoryPlan,
    memo: dict | None,
    extra: Extra,
    fusion: bool = True,
) -> list[Step | Repeat]:
    """The kernel-IR steps of `prog`, in order. Steps whose nodes are the same up to their
    values (`ctx.shape_key`) are lowered once, when `memo` (shared by the functions) is given:
    the same kernels bound to other values. A loop's step is a Repeat of its body's steps
    (codegen/scan.py), which adds its body's values to `extra`."""
    out: list[Step | Repeat] = []
    for step in prog.steps:
        G = ctx.G
        if is_loop(G, step):
            out.append(lower_loop(
                ctx, step, plan, extra,
                lambda c, p, pl, ex: _steps(c, p, pl, memo, ex, fusion), Context, fusion,
            ))  # fmt: skip
            continue
        loop = bool(step.fused) or loop_op(G, step.node)
        if not loop and plan.storage[step.node].kind == "alias":
            continue  # a reshape that shares its operand's bytes: nothing to compute
        stored = tuple(plan.storage[n].kind != "local" for n in step.nodes)
        key, values = ctx.step_key(step.nodes, stored)
        rebind = memo is not None and key in memo  # the memo's steps, bound to these values
        if not rebind:
            e = Emit(ctx, step.node)
            if loop:
                fused(e, step.nodes, {n for n, s in zip(step.nodes, stored, strict=True) if s})
            else:
                a = G._node[step.node]
                REGISTRY[a["op"]].lower(e, step.node, operands(G, step.node), a["params"])
            lowered = e.steps
            if memo is not None:
                at = {v: k for k, v in enumerate(values)}
                memo[key] = [replace(s, buffers=tuple(at[b] for b in s.buffers)) for s in lowered]
        else:
            lowered = memo[key]
        what = tuple(
            ("adj: " if section == "backward" else "") + ctx.describe(n)
            for n, section in zip(step.nodes, step.sections_of_nodes(), strict=True)
        )
        assert len(lowered) == 1 or not step.beside, "a step run beside another is one kernel"
        for k, s in enumerate(lowered):
            more = ("(the step above, continued)",)
            if rebind:
                out.append(replace(s, buffers=tuple(values[b] for b in s.buffers),
                                   what=what if k == 0 else more, section=step.section,
                                   beside=step.beside))  # fmt: skip
            else:
                out.append(replace(s, what=what if k == 0 else more, section=step.section,
                                   beside=step.beside))  # fmt: skip
    return out


def _function(
    ctx: Context,
    name: str,
    prog: Program,
    plan: MemoryPlan,
    returns: tuple[dict[str, str], ...],
    steps: list[Step],
    ids: dict[int, int],
    symbols: list[str],
    consts: dict[int, int],
    in_place: dict[str, str],
    defaults: dict[str, float],
    extra: Extra | None = None,
) -> Function:
    t = Tables(symbols)
    args = list(prog.inputs)
    position = {a: k for k, a in enumerate(args)}
    # outputs returned (not those written over an input), each in its part of `returns`
    part_of = {o: (k, key) for k, keys in enumerate(returns) for o, key in keys.items()}
    returned = [(o, n) for o, n in prog.outputs.items() if o not in in_place]
    outs, outspec, keys = [], [], []
    for o, n in returned:
        part, key = part_of[o]
        dims = [t.size_of([d]) for d in ctx.shape(n)]
        outs.append(Row((ctx.dtype(n), len(dims), part, *dims), (f"{key}: {ctx.names[n]}",)))
        outspec.append((part if len(returns) > 1 else -1, key, ctx.dtype(n), len(dims)))
        keys.append(key)
    out_index = {o: k for k, (o, _) in enumerate(returned)}
    extra = extra or Extra()
    storage = {**plan.storage, **extra.storage}  # loop bodies' values too (codegen/scan.py)

    def root(v: Any) -> Any:
        while storage[v].kind == "alias":
            v = storage[v].ref
        return v

    # the values the steps and copies use, their pointers set in this order: an alias after
    # the value whose bytes it shares
    used: dict = {}
    for step in steps:
        for b in _keys(step):
            used.setdefault(b, None)
    for v in plan.extra_outputs.values():
        used.setdefault(v, None)
    for v in list(used):  # an alias's pointer is its root's: the root has one too
        while storage[v].kind == "alias":
            v = storage[v].ref
            used.setdefault(v, None)

    def depth(v: Any) -> int:
        st = storage[v]
        return 0 if st.kind != "alias" else 1 + depth(st.ref)

    order = sorted(used, key=depth)
    number = {v: k for k, v in enumerate(order)}
    values = []
    for v in order:
        st = storage[v]
        if st.kind == "input":
            cells = ("arg", position[st.ref])
        elif st.kind == "output" and st.ref in in_place:
            cells = ("arg", position[in_place[st.ref]])
        elif st.kind == "output":
            cells = ("out", out_index[st.ref])
        elif st.kind == "const":
            cells = ("const", consts.setdefault(v, len(consts)))
        elif st.kind == "alias":
            cells = ("alias", number[root(v)])
        elif st.kind == "arena":
            cells = ("slot", int(st.ref))
        elif st.kind == "scratch":  # a loop body's slot, after the plan's
            cells = ("slot", len(plan.slots) + int(st.ref))
        else:
            raise GraphError(f"internal error: {_name(ctx, extra, v)} ({st.kind}) has no storage")
        values.append(Row(cells, (_name(ctx, extra, v),)))
    slots = []
    for s in plan.slots:
        layouts = [(t.size_of(shape), ITEMSIZE[dtype]) for shape, dtype in s.layouts]
        slots.append(Row((len(layouts), *(x for pair in layouts for x in pair)),
                         (f"buf{s.id}: {s.describe()}",)))  # fmt: skip
    for k, lay in enumerate(extra.slots):
        layouts = [(t.size_of(shape), ITEMSIZE[dtype]) for shape, dtype in lay]
        text = " | ".join(f"{dtype}[{','.join(map(str, shape))}]" for shape, dtype in lay)
        slots.append(Row((len(layouts), *(x for pair in layouts for x in pair)),
                         (f"buf{len(plan.slots) + k}: {text} (a loop's)",)))  # fmt: skip
    copies = []
    for o, v in plan.extra_outputs.items():
        cells = (out_index[o], number[v], t.size_of(ctx.shape(v)), ITEMSIZE[ctx.dtype(v)])
        copies.append(Row(cells, (f"{o!r} is {ctx.names[v]}",)))
    program, nonempty, empty_messages = [], [], []
    for s in steps:
        program += _rows(s, number, t, ids)
    for prog_step in prog.steps:
        n = prog_step.node
        reduced = nonempty_dims(ctx.G, n)  # max, min, argmax, argmin
        if reduced is not None and any(isinstance(d, str) for d in reduced):  # symbols, products
            op = ctx.G._node[n]["op"]
            nonempty.append(Row((t.size_of(reduced),), (ctx.describe(n),)))
            empty_messages.append(f"{ctx.describe(n)}: {op} over an axis of size 0 has no value")
    for reduced, text in extra.nonempty:  # a max in a loop's body
        nonempty.append(Row((t.size_of(reduced),), (text,)))
        empty_messages.append(f"{text}: max over an axis of size 0 has no value")
    products = sorted({d for n in prog.inputs.values() for d in ctx.shape(n)
                       if isinstance(d, str) and not is_symbol(d)})  # fmt: skip
    arg_rows, spec = _arg_rows(ctx, prog, [*symbols, *products])
    product_rows = []
    for k, d in enumerate(products):
        coef, syms = monomial(d)
        cells = (len(symbols) + k, coef, len(syms), *(symbols.index(x) for x in syms))
        product_rows.append(Row(cells, (d,)))
    index_rows, index_data = index_checks(ctx, prog.inputs, t)
    given = tuple(
        (ctx.dtype(prog.inputs[a]), float(defaults[a])) if a in defaults else None for a in args
    )
    return Function(
        name=name,
        doc=DOCS[name],
        nparts=len(returns),
        args=arg_rows,
        products=tuple(product_rows),
        written=tuple(position[a] for a in in_place.values()),
        outs=tuple(outs),
        sizes=t.size_rows(),
        floats=tuple(t.floats),
        slots=tuple(slots),
        values=tuple(values),
        copies=tuple(copies),
        index=index_rows,
        nonempty=tuple(nonempty),
        program=tuple(program),
        names=tuple(args),
        defaults=given if any(given) else (),
        spec=spec,
        outspec=tuple(outspec),
        keys=tuple(keys),
        checks=(*index_data, *empty_messages, failing_steps(steps)),
        symbols=(*symbols, *products),
    )


# the runtime's scan (templates/runtime/scan.pyx.j2)
BIND = {"step": 0, "carry_in": 1, "carry_out": 2, "alias": 3, "every": 4, "gather": 5, "scatter": 6}


def _keys(s: Step | Repeat) -> list[Any]:
    """The values step `s` uses (a loop's: those it binds and its body's)."""
    if isinstance(s, Step):
        return list(s.buffers)
    out = [k for b in s.binds for k in (b.key, *b.refs)]
    out += [k for f, i, _ in s.empty for k in (f, i)]
    return out + [k for b in s.body for k in _keys(b)]


def _rows(s: Step | Repeat, number: dict, t: Tables, ids: dict[int, int]) -> list[Row]:
    """The program rows of step `s`: a loop's row is followed by its body's, which its
    operands hold (graphc_rt.h `scan`)."""
    if isinstance(s, Step):
        ops = [number[b] for b in s.buffers]
        ops += [t.size(z) for z in s.sizes]
        ops += [t.float(f) for f in s.floats]
        flags = "|".join(("alone",) * s.alone + ("beside",) * s.beside) or 0
        work = -1 if s.work is None else t.size(s.work)
        return [Row((ids[id(s.kernel)], len(ops), work, flags, *ops), s.what)]
    body = [r for b in s.body for r in _rows(b, number, t, ids)]
    nbody = sum(len(r.cells) for r in body)
    head: list[Any] = [t.size(s.trips), int(s.reverse), len(s.binds), nbody, len(s.empty)]
    for b in s.binds:
        refs = [number[r] for r in b.refs] + [-1] * (3 - len(b.refs))
        if b.kind == "every":  # its third ref: the size holding k
            refs[2] = t.size(SizeExpr(b.every))
        elif b.rows is not None:  # gather, scatter: the sizes holding the blocks' count, stride
            refs[1], refs[2] = t.size(b.stride), t.size(b.rows)
        head += [BIND[b.kind], number[b.key], *refs, -1 if b.size is None else t.size(b.size)]
    for final, init, nbytes in s.empty:
        head += [number[final], number[init], t.size(nbytes)]
    note = f"loop: {s.trips} trips of the {len(body)} steps below" + (
        ", last to first" if s.reverse else ""
    )
    row = Row((ids[id(LOOP)], len(head) + nbody, -1, "alone", *head), (*s.what, note))
    return [row, *(Row(r.cells, tuple("  | " + c for c in r.comment)) for r in body)]


def _name(ctx: Context, extra: Extra, v: Any) -> str:
    """A value's name in comments: `v12 'x'`, or a loop body's `v5.v3`."""
    return ctx.name(v) if isinstance(v, int) else extra.names.get(v, str(v))


def _arg_rows(ctx: Context, prog: Program, symbols: list[str]) -> tuple[tuple[Row, ...], tuple]:
    """gc_check_args's table (dtype, rank, a size per axis, symbol s as -1 - s, a product
    axis as the symbol after the symbols that is its own) and each argument's (name, dtype,
    shape as people write it, sizes, integer) for its messages."""
    rows, spec = [], []
    for name, n in prog.inputs.items():
        shape, dtype = ctx.shape(n), ctx.dtype(n)
        sizes = tuple(d if isinstance(d, int) else -1 - symbols.index(d) for d in shape)
        shown = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
        rows.append(Row((dtype, len(shape), *sizes), (comment_text(f"{name}: {dtype} {shown}"),)))
        spec.append((name, dtype, shown, tuple(shape), dtype in INT_DTYPES))
    return tuple(rows), tuple(spec)


def _const(ctx: Context, n: Any, k: int, extras: dict[str, Extra]) -> Const:
    if isinstance(n, int):
        a, name = ctx.G._node[n], ctx.names[n]
    else:  # a loop body's
        ex = next(e for e in extras.values() if n in e.consts)
        a, name = ex.consts[n], ex.names[n]
    kind = int if a["dtype"] in INT_DTYPES else float
    values = tuple(kind(x) for x in np.asarray(a["value"]).ravel())
    return Const(f"_c{k}", a["dtype"], tuple(a["shape"]), values,
                 comment_text(f"{name} [{a['loc']}]"))  # fmt: skip
