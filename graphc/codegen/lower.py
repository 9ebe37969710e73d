"""`lower`: a scheduled program and its memory plan become plain records for the templates."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, replace

import numpy as np

from graphc.codegen import cexpr
from graphc.codegen.indexing import index_checks
from graphc.codegen.kernels import CHUNKS, PARALLEL_MIN, fused
from graphc.codegen.ops import KERNEL_TEMPLATE, lower_op, op_work
from graphc.codegen.records import (
    Arg,
    Check,
    Const,
    DimCheck,
    Function,
    Module,
    Out,
    Part,
    Pointer,
    SlotOffset,
    Statement,
)
from graphc.ir.graph import Graph, operands
from graphc.ir.printer import format_params
from graphc.ir.shapes import INT_DTYPES
from graphc.passes.concurrency import CONCURRENT_MIN
from graphc.passes.fuse import loop_op
from graphc.passes.memory import ITEMSIZE, MemoryPlan
from graphc.passes.schedule import Program


def _comment_text(text: str) -> str:
    """Text safe inside a one-line comment or a docstring: printable, no quote or backslash."""
    text = text.replace('"', "'").replace("\\", "/")
    return "".join(c if c.isprintable() else "?" for c in text)


class Context:
    """Names and facts about the values of one graph, shared by every function of a module."""

    def __init__(self, g: Graph) -> None:
        self.g = g
        self.G = g.nx
        self.names: dict[int, str] = {}
        self._literals: dict[int, str | None] = {}
        taken: set[str] = set()
        for n, a in sorted(self.G.nodes(data=True)):
            grad_of = a.get("grad_of")
            name = f"g{grad_of}" if isinstance(grad_of, int) else f"v{n}"
            self.names[n] = name if name not in taken else f"v{n}"
            taken.add(self.names[n])

    def ptr(self, n: int) -> str:
        return self.names[n]

    def literal(self, n: int) -> str | None:
        """A one-element float or bool constant as a literal, when every step reading it can
        take one (loops over elements, reshape, max, size); else None: an array."""
        if n not in self._literals:
            a = self.G.nodes[n]
            inline = (
                a["op"] == "const"
                and a["value"].size == 1
                and a["dtype"] not in INT_DTYPES
                and all(
                    loop_op(self.G, s) or self.G.nodes[s]["op"] in ("reshape", "max", "size")
                    for s in self.G.successors(n)
                )
            )
            self._literals[n] = cexpr.literal(a["value"]) if inline else None
        return self._literals[n]

    def shape(self, n: int) -> tuple:
        return self.G.nodes[n]["shape"]

    def dtype(self, n: int) -> str:
        return self.G.nodes[n]["dtype"]

    def describe(self, n: int) -> str:
        """`g13 = mul(g14, v30)   [model.py:14]` (after `adj:` in the backward section)."""
        a = self.G.nodes[n]
        params = format_params(a["op"], a["params"])
        args = ", ".join(self.literal(u) or self.ptr(u) for u in operands(self.G, n))
        call = f"{a['op']}[{params}]({args})" if params else f"{a['op']}({args})"
        return _comment_text(f"{self.ptr(n)} = {call}   [{a.get('loc') or '?'}]")


def _args(ctx: Context, inputs: dict[str, int]) -> tuple[Arg, ...]:
    """The checks of each argument; a symbolic dim is bound by the first argument that has it."""
    args, bound = [], {}
    for pos, (name, n) in enumerate(inputs.items()):
        shape = ctx.shape(n)
        checks = []
        for axis, d in enumerate(shape):
            field = f"got.{cexpr.dim(d)}"
            if isinstance(d, int):
                checks.append(DimCheck(axis, str(d), None, None, None))
            elif d in bound:
                checks.append(DimCheck(axis, field, None, d, bound[d]))
            else:
                bound[d] = name
                checks.append(DimCheck(axis, field, field, d, name))
        shown = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
        expected = [
            f'("{d}", {c.expected}, "{c.binder}")' if c.symbol else c.expected
            for d, c in zip(shape, checks, strict=True)
        ]
        dtype = ctx.dtype(n)
        args.append(
            Arg(
                name,
                repr(name),
                pos,
                f"a_{name}",
                f"p_{name}",
                cexpr.CTYPE[dtype],
                cexpr.TYPENUM[dtype],
                dtype,
                shown,
                len(shape),
                tuple(checks),
                "(" + ", ".join(expected) + ("," if len(expected) == 1 else "") + ")",
                integer=dtype in INT_DTYPES,
            )
        )
    found = index_checks(ctx, inputs, {a.name: a.var for a in args}, bound)
    return tuple(replace(a, index_checks=found.get(a.name, ())) for a in args)


def _arg_tables(ctx: Context, args: tuple[Arg, ...], symbols: list[str]) -> tuple[str, tuple]:
    """What the generic argument check reads (args.h): a Python literal of each argument's
    (name, dtype, shape, sizes with symbols by name, integer) for the messages, and the rows
    of its C table: type number, rank and sizes, a symbol s as -1 - s."""
    spec, rows = [], []
    for a in args:
        sizes = tuple(int(d.expected) if d.symbol is None else d.symbol for d in a.dims)
        spec.append((a.name, a.dtype, a.shape, sizes, a.integer))
        cells = [a.typenum, str(a.ndim)]
        cells += [str(d) if isinstance(d, int) else str(-1 - symbols.index(d)) for d in sizes]
        comment = _comment_text(f"{a.name}: {a.dtype} {a.shape}").replace("*/", "* /")
        rows.append(", ".join(cells) + f",  /* {comment} */")
    return repr(tuple(spec)), tuple(rows)


def _outs(
    ctx: Context, prog: Program, returns: tuple[dict[str, str], ...], in_place: dict[str, str]
) -> tuple[tuple[Out, ...], str]:
    """The outputs returned (not those written over an input), each in the group of `returns`
    (a dict per returned dict: output name -> its key there) that names it, and the bytes of
    the block holding them all (each at a 64-byte boundary)."""
    outs, at = [], "0"
    returned = [(name, n) for name, n in prog.outputs.items() if name not in in_place]
    group_of = {name: (k, key) for k, keys in enumerate(returns) for name, key in keys.items()}
    for k, (name, n) in enumerate(returned):
        group, key = group_of[name]
        outs.append(
            Out(
                name,
                key,
                group,
                group if len(returns) > 1 else -1,
                repr(key),
                ctx.dtype(n),
                f"o{k}",
                cexpr.TYPENUM[ctx.dtype(n)],
                len(ctx.shape(n)),
                tuple(cexpr.dim(d) for d in ctx.shape(n)),
                at,
            )
        )
        at = f"at_o{k} + _aligned({cexpr.size(ctx.shape(n))}*{ITEMSIZE[ctx.dtype(n)]})"
    return tuple(outs), at


def _function(
    ctx: Context,
    prog: Program,
    plan: MemoryPlan,
    name: str,
    returns: tuple[dict[str, str], ...],
    doc: str,
    in_place: dict[str, str],
    check: Check,
) -> Function:
    """The records of one generated function, returning a dict per element of `returns`
    (output name -> key), a tuple of them when there are several; outputs in `in_place`
    (output -> input) are computed straight into the input's array instead of being
    returned. `check` checks its arguments."""
    args = check.args
    field_of = {a.name: a.field for a in args}
    outs, outs_end = _outs(ctx, prog, returns, in_place)
    out_var = {o.name: o.var for o in outs}
    slots, start = [], "0"
    for s in plan.slots:
        sizes = [f"{cexpr.size(shape)}*{ITEMSIZE[dtype]}" for shape, dtype in s.layouts]
        nbytes = sizes[0] if len(sizes) == 1 else f"max({', '.join(sizes)})"
        slots.append(SlotOffset(f"off_buf{s.id}", start, nbytes, f"buf{s.id}: {s.describe()}"))
        start = f"off_buf{s.id} + _aligned({nbytes})"
    pointers = []
    # aliases last: each is set from its root's pointer, which must be set already
    for v, st in sorted(plan.storage.items(), key=lambda i: (i[1].kind == "alias", i[0])):
        ctype = cexpr.CTYPE[ctx.dtype(v)]
        if st.kind == "input":
            init = f"<{ctype}*>got.p_{st.ref}"
        elif st.kind == "output" and st.ref in in_place:
            init = f"<{ctype}*>got.{field_of[in_place[st.ref]]}"
        elif st.kind == "output":
            init = f"<{ctype}*>PyArray_DATA({out_var[st.ref]})"
        elif st.kind == "const":
            if ctx.literal(v) is not None and v not in plan.extra_outputs.values():
                continue  # a scalar inlined as a literal, and not copied out
            init = f"<{ctype}*>PyArray_DATA(_c{v})"
        elif st.kind == "alias":
            init = f"b.{ctx.ptr(plan.root(v))}"
        elif st.kind == "local":
            continue  # a scalar of its fused loop
        else:
            init = f"<{ctype}*>(arena + off_buf{st.ref})"
        pointers.append(Pointer(ctx.ptr(v), ctype, init))
    code, partials = _code(ctx, prog, plan, name)
    copies = []  # outputs that are inputs, constants or repeated
    for out_name, v in plan.extra_outputs.items():
        nbytes = f"{cexpr.size(ctx.shape(v))}*sizeof({cexpr.CTYPE[ctx.dtype(v)]})"
        copy = f"memcpy(PyArray_DATA({out_var[out_name]}), b.{ctx.ptr(v)}, {nbytes})"
        copies.append(Statement(f"{out_name!r} is {ctx.ptr(v)}", (), (copy,)))
    pointers += partials
    fields = {p.name: (k, p) for k, p in enumerate(pointers)}
    parts = []
    for title, fn, run in _runs(name, code):
        parts += [r.with_fields(fields) for c in run for r in c.parts]
        stmts = [st for c in run for st in c.statements]
        local = [x for c in run for x in c.locals]
        uses = set().union(*(c.uses for c in run))
        parts.append(_cfunction(fn, f"{name}: {title}", stmts, local, uses).with_fields(fields))
    dicts = ["{" + ", ".join(f"{o.key!r}: {o.var}" for o in outs if o.group == k) + "}"
             for k in range(len(returns))]  # fmt: skip
    written = tuple(a.pos for a in args if a.name in in_place.values())
    return Function(
        name,
        doc,
        check.suffix,
        written,
        outs,
        outs_end,
        tuple(slots),
        start if partials else None,
        f"off_partials + {len(partials) * CHUNKS * 8}" if partials else start,
        tuple(pointers),
        parts,
        tuple(copies),
        ", ".join(dicts),
        repr(tuple((o.part, o.key, o.dtype, o.ndim) for o in outs)),
    )


@dataclass(frozen=True)
class StepCode:
    """One step's code (or two steps' run at once): its statements, their locals, the names
    they use and the functions they call; `work` and `beside` for _pair."""

    section: str
    statements: list[Statement]
    locals: list[tuple[str, str]]
    uses: set[str]
    parts: tuple[Part, ...] = ()
    work: str = "0"  # operations (C expression); 0: never run beside another step
    beside: bool = False  # may run at once with the next step (passes/concurrency.py)


def _code(
    ctx: Context, prog: Program, plan: MemoryPlan, name: str
) -> tuple[list[StepCode], list[Pointer]]:
    """Each step's code, in program order, the steps that may run at once paired; and the
    pointers to the full reductions' sums per chunk, which follow the buffers in the arena."""
    code: list[StepCode] = []
    partials: list[Pointer] = []
    for t, step in enumerate(prog.steps):
        prefix = "adj: " if step.section == "backward" else ""
        uses = {ctx.ptr(v) for v in (*step.nodes, *prog.reads(t))}
        comment = prefix + ctx.describe(step.node)
        parts: tuple[Part, ...] = ()
        a = ctx.G.nodes[step.node]
        if step.fused or loop_op(ctx.G, step.node):
            stored = {n for n in step.nodes if plan.storage[n].kind != "local"}
            f = fused(ctx, step.nodes, stored, fn=f"_{name}_loop{t}")
            if step.fused:
                written = ", ".join(ctx.ptr(n) for n in sorted(stored))
                comment = f"{prefix}fused loop: {len(step.nodes)} ops, {written} stored"
            for ctype, partial in f.partials:
                at = f"off_partials + {len(partials) * CHUNKS * 8}"
                partials.append(Pointer(partial, ctype, f"<{ctype}*>(arena + {at})"))
                uses.add(partial)
            if f.ranged:
                title = f"{comment}: the iterations lo to hi of its outer loop (run by _parallel)"
                fn = f"_{name}_loop{t}"
                parts = (_cfunction(fn, title, f.ranged, f.ranged_locals, uses, ranged=True),)
            lowered, local = f.statements, f.locals
            work, threaded = f"{f.size}*{len(step.nodes)}", not f.alone
        elif plan.storage[step.node].kind == "alias":
            continue  # a reshape that shares its operand's bytes: nothing to compute
        else:
            args = operands(ctx.G, step.node)
            lowered = lower_op(ctx, step.node, a["op"], args, a["params"])
            local = []
            work, threaded = op_work(ctx, step.node, a["op"], args, a["params"])
        lowered[0] = Statement(comment, lowered[0].heads, lowered[0].body)
        if work is None:
            work = "0"  # BLAS, which has threads of its own
        elif not threaded:  # the step runs on one thread: worth pairing however large
            work = f"min({work}, {PARALLEL_MIN - 1})"
        code.append(StepCode(step.section, lowered, local, uses, parts, work, step.beside))
    return _pair(name, code), partials


def _pair(name: str, code: list[StepCode]) -> list[StepCode]:
    """Each step `beside` the next (their memory is disjoint, see passes/concurrency.py) and
    that next one become one call of `_concurrent`, which runs them at once on two threads
    when both turn out between CONCURRENT_MIN and PARALLEL_MIN operations. A step that always
    runs on one thread counts as at most PARALLEL_MIN - 1; a larger one shares its own loops
    among the threads."""
    out: list[StepCode] = []
    k = 0
    while k < len(code):
        a = code[k]
        if not a.beside or k + 1 == len(code):
            out.append(a)
            k += 1
            continue
        b = code[k + 1]
        fns = [f"_{name}_task{len(out)}_{i}" for i in (0, 1)]
        tasks = tuple(
            _cfunction(fn, f"{s.statements[0].comment} (run by _concurrent)", s.statements,
                       s.locals, s.uses, ranged=True)
            for fn, s in zip(fns, (a, b), strict=True)
        )  # fmt: skip
        call = f"_concurrent({fns[0]}, {fns[1]}, b, {a.work}, {b.work})"
        comment = "two independent steps, at once when each is mid-sized (see _concurrent)"
        statement = Statement(comment, (), (call,))
        parts = (*a.parts, *b.parts, *tasks)
        out.append(StepCode(a.section, [statement], [], a.uses | b.uses, parts))
        k += 2
    return out


PART_STEPS = 32  # steps per generated C function at most


def _runs(name: str, code: list[StepCode]) -> list[tuple[str, str, list[StepCode]]]:
    """The steps' code cut into runs of at most PART_STEPS steps of one section, each with a
    title and a function name (`_value_and_grad_backward`, `_forward_forward_2`, ...)."""
    runs = []
    for section, group in itertools.groupby(code, key=lambda c: c.section):
        group = list(group)
        cuts = range(0, len(group), PART_STEPS)
        for k, start in enumerate(cuts, 1):
            title, fn = section, f"_{name}_{section}"
            if len(cuts) > 1:
                title, fn = f"{section} ({k} of {len(cuts)})", f"{fn}_{k}"
            runs.append((title, fn, group[start : start + PART_STEPS]))
    return runs


def _cfunction(
    name: str,
    title: str,
    statements: list[Statement],
    local: list[tuple[str, str]],
    uses: set[str],
    ranged: bool = False,
) -> Part:
    """A generated C function running `statements`, with their locals declared."""
    loop_vars = {"i"} | {h.var for st in statements for h in st.heads}
    scalars: dict[str, dict[str, None]] = {}  # ctype -> names, in order of first use
    for ctype, var in local:
        if ctype == "Py_ssize_t":
            loop_vars.add(var)
        else:
            scalars.setdefault(ctype, {})[var] = None
    declared = tuple(
        (ctype, ", ".join(group))
        for ctype, names in sorted(scalars.items())
        for group in (
            [[n for n in names if "[" not in n], *([n] for n in names if "[" in n)]
            if "*" not in ctype
            else [[n] for n in names]  # one pointer per line: `cdef double* a, b` is not two
        )
        if group
    )
    return Part(
        name,
        title,
        ranged,
        frozenset(uses),
        ", ".join(sorted(loop_vars)),
        declared,
        tuple(statements),
    )


def _consts(ctx: Context, plans: list[MemoryPlan]) -> tuple[Const, ...]:
    """Module-level arrays for the constants a kernel reads through a pointer: those that are
    not scalars (scalars are inlined as literals) and those returned as outputs."""
    used = set()
    for plan in plans:
        used |= {
            v for v, st in plan.storage.items() if st.kind == "const" and ctx.literal(v) is None
        }
        used |= {v for v in plan.extra_outputs.values() if ctx.G.nodes[v]["op"] == "const"}
    out = []
    for v in sorted(used):
        a = ctx.G.nodes[v]
        values = repr([float(x) for x in np.asarray(a["value"], dtype=np.float64).ravel()])
        values = values.replace("nan", "float('nan')").replace("inf", "float('inf')")
        out.append(
            Const(
                f"_c{v}",
                cexpr.CTYPE[a["dtype"]],
                a["dtype"],
                repr(tuple(a["shape"])),
                values,
                _comment_text(f"{ctx.ptr(v)} [{a['loc']}]"),
            )
        )
    return tuple(out)


def lower(
    g: Graph,
    programs: dict[str, tuple[Program, MemoryPlan]],
    returns: dict[str, tuple[dict[str, str], ...]],
    meta: dict[str, str],
    source_file: str,
    version: str,
    in_place: dict[str, str] | None = None,
    defaults: dict[str, float] | None = None,
) -> Module:
    """The module records: one Function per program, returning the dicts `returns` names for
    it (output name -> key), the constants and the kernel helpers. `in_place` (output ->
    input) names what `train_step` writes over its inputs; `defaults` the values of the
    arguments a call may leave out (train_step's hyperparameters, its last arguments)."""
    ctx = Context(g)
    docs = {
        "forward": "forward(*inputs, out=None, **inputs) -> dict of the model's outputs. "
        "out: a dict like the one returned, whose arrays are filled instead of new ones.",
        "value_and_grad": "value_and_grad(*inputs, out=None, **inputs) -> (outputs, grads): "
        "grads keyed by the names of the inputs differentiated. out: a pair like the one "
        "returned, whose arrays are filled instead of new ones.",
        "train_step": "train_step(*inputs, out=None, **inputs) -> dict of the model's outputs "
        "before the step. Updates the params and the optimiser's state (inputs too, see STATE) "
        "in place, with one step of the optimiser (OPTIMIZER). out: as for forward.",
        "jvp": "jvp(*inputs, out=None, **inputs) -> (outputs, tangents): also takes the tangent "
        "of each param (TANGENTS) and returns each output's directional derivative along them, "
        "keyed by output name. out: a pair like the one returned.",
        "hvp": "hvp(*inputs, out=None, **inputs) -> (outputs, grads, hvps): also takes a vector "
        "v per param (VECTORS) and returns the Hessian of OF times v, a block per param. out: a "
        "triple like the one returned.",
    }
    arg_lists = {name: _args(ctx, prog.inputs) for name, (prog, _) in programs.items()}
    dims = [d for args in arg_lists.values() for a in args for d in a.dims]
    symbols = sorted({d.symbol for d in dims if d.symbol})
    checks: dict[tuple[Arg, ...], Check] = {}  # one per distinct argument list
    for name, args in arg_lists.items():
        if args not in checks:
            suffix = "" if not checks else f"_{name}"
            given = tuple(
                f"np.array({float(defaults[a.name])!r}, dtype=np.{a.dtype})"
                if a.name in (defaults or {})
                else None
                for a in args
            )
            checks[args] = Check(
                suffix, args, repr(tuple(a.name for a in args)), *_arg_tables(ctx, args, symbols),
                given if any(given) else (),
            )  # fmt: skip
    functions = tuple(
        _function(ctx, prog, plan, name, returns[name], docs[name],
                  (in_place or {}) if name == "train_step" else {},
                  checks[arg_lists[name]])
        for name, (prog, plan) in programs.items()
    )  # fmt: skip
    kernels = sorted(
        {
            (KERNEL_TEMPLATE[ctx.G.nodes[s.node]["op"]], ctx.dtype(s.node))
            for prog, _ in programs.values()
            for s in prog.steps
            if ctx.G.nodes[s.node]["op"] in KERNEL_TEMPLATE
        }
    )
    header = (
        f"{g.name}: generated by graphc {version} from {os.path.basename(source_file)}"
        " -- do not edit.",
        "Compile it again with `graphc compile` instead; each statement below names the node",
        "and the model line it computes. Backward statements are marked `adj:`.",
    )
    return Module(
        name=g.name,
        header=tuple(_comment_text(h) for h in header),
        meta=tuple(meta.items()),
        kernels=tuple((t, cexpr.CTYPE[d], cexpr.SUFFIX[d]) for t, d in kernels),
        consts=_consts(ctx, [p for _, p in programs.values()]),
        functions=functions,
        checks=tuple(checks.values()),
        symbols=tuple(cexpr.dim(d) for d in symbols),
        parallel_min=PARALLEL_MIN,
        concurrent_min=CONCURRENT_MIN,
    )
