"""The tables of one generated function (records.py `Function`): what the runtime reads to
check a call's arguments, lay out its memory (values, slots, sizes) and run its program (a
row per step, a loop's row followed by its body's), each row with the statements it computes
as its comment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from graphc.codegen.failures import failing_steps
from graphc.codegen.indexing import index_checks
from graphc.codegen.kir import Repeat, SizeExpr, Step
from graphc.codegen.records import Function, Row
from graphc.codegen.scan import LOOP, Extra
from graphc.errors import GraphError
from graphc.ir.shapes import (
    DERIVED,
    INT_DTYPES,
    ITEMSIZE,
    derived,
    is_symbol,
    monomial,
    shape_symbols,
)
from graphc.ops.reductions import nonempty_dims
from graphc.passes.memory import MemoryPlan
from graphc.passes.schedule import Program

if TYPE_CHECKING:
    from graphc.codegen.lower import Context

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


def function_records(
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
    for k, x in enumerate(symbols):  # worked out from their sources (ir/shapes.py DERIVED)
        if (of := derived(x)) is not None:
            cells = (k, -1 - KINDS.index(of[1]), 2, symbols.index(of[0]), of[2])
            product_rows.append(Row(cells, (f"{x} from {of[0]}",)))
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


KINDS = tuple(DERIVED)  # a derived symbol's row in the products table: -1 - its kind's place


def derived_symbols(G: Any, bound: Sequence[str]) -> list[str]:
    """The symbols derived from those `bound` (ir/shapes.py) that graph `G` (its loops' bodies
    too) names in its shapes, trip counts and slices' starts, sorted."""
    found: set[str] = set()
    graphs = [G]
    while graphs:
        nodes = graphs.pop()._node
        shapes = {a.get("shape", ()) for a in nodes.values()}
        for a in nodes.values():
            p = a.get("params", {})
            shapes |= {p[key] for key in ("length", "starts") if key in p}
            if a["op"] == "scan":
                graphs.append(p["body"].graph.nx)
        for shape in shapes:
            found |= {x for x in shape_symbols(shape) if derived(x)}
    return sorted(x for x in found if derived(x)[0] in bound)  # type: ignore[index]


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
