"""Lowering a loop's step (passes/scan_steps.py) to a `Repeat` (codegen/kir.py): the body is
scheduled, fused, planned and lowered as a program of its own, once, whatever the trip count,
and the runtime runs its steps once per trip (graphc_rt.h `scan`).

The body's values become values of the function, named by keys: its inputs are the loop's
operands (a captured value is the operand itself; a carry and a slice are bound at each trip),
its outputs the loop's results (a stacked result's slice t is bound at trip t), its scratch
the body plan's slots, added to the function's arena: scratch is shared by the body's values
as the plan says and used again at every trip. A slice of an array with its steps on an inner
axis (`xs_axes`, `ys_axes`: ops/scan.py) is not contiguous: the body reads and writes it in a
scratch buffer of one slice, which each trip fills from the array ("gather") or copies out to
it ("scatter"), a block per index of the axes before the steps' -- the array itself is the
model's, batch-first, with no time-major copy. A carry needs no copy from trip to trip: trip i
writes its new carry where trip i + 1 reads it, two buffers taking turns, the first trip reading
the initial carry and the last writing the final one. Results the function does not read are
not computed: the body's program is scheduled for the rest only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphc.codegen.kir import Bind, Repeat, Runtime, SizeExpr, Step
from graphc.errors import GraphError
from graphc.ir.dag import describe, operands
from graphc.ir.shapes import ITEMSIZE
from graphc.ops.scan import xs_axis, ys_axis
from graphc.passes.fuse import fuse
from graphc.passes.memory import DEFAULT_HINT, MemoryPlan, Storage, can_overwrite, plan_memory
from graphc.passes.schedule import Program, schedule
from graphc.passes.schedule import Step as ProgramStep
from graphc.passes.verify_plan import verify_plan

LOOP = Runtime("scan")  # the module's loop trampoline: graphc_rt.h's scan with its kernels
PER_TRIP = ("in", "x", "out", "y")  # keys of values bound at each trip


@dataclass
class Extra:
    """What a function's loops add to its tables: their bodies' values (key -> Storage; kind
    "scratch" refers to `slots`), scratch slots (layouts, as a plan's), names for comments,
    the attributes of their constants, and the sizes that must not be 0 (a max over them)."""

    storage: dict[Any, Storage] = field(default_factory=dict)
    slots: list[tuple[tuple[tuple, str], ...]] = field(default_factory=list)
    names: dict[Any, str] = field(default_factory=dict)
    consts: dict[Any, dict] = field(default_factory=dict)
    nonempty: list[tuple[tuple, str]] = field(default_factory=list)

    def scratch(self, layouts: tuple[tuple[tuple, str], ...]) -> Storage:
        self.slots.append(layouts)
        return Storage("scratch", len(self.slots) - 1)


def _nbytes(shape: tuple, dtype: str) -> SizeExpr:
    s = SizeExpr.of(shape)
    return SizeExpr(s.coef * ITEMSIZE[dtype], s.symbols)


def _blocks(step: tuple, dtype: str, axis: int) -> tuple[SizeExpr, SizeExpr]:
    """A slice of shape `step` of an array with its steps on `axis`: the number of its
    contiguous blocks (one per index of the axes before the steps') and their bytes."""
    return SizeExpr.of(step[:axis]), _nbytes(step[axis:], dtype)


def _own(extra: Extra, key: Any, name: str, shape: tuple, dtype: str) -> None:
    """Scratch of one slice for per-trip value `key`."""
    extra.storage[key] = extra.scratch(((shape, dtype),))
    extra.names[key] = name


def body_program(body: Any, outputs: list[str], fusion: bool) -> tuple[Program, MemoryPlan]:
    """The body's program computing `outputs`, and its memory plan (verified)."""
    prog = schedule(body.graph, outputs, order="id")
    prog = fuse(prog) if fusion else prog
    plan = plan_memory(prog, "best", DEFAULT_HINT)
    verify_plan(prog, plan)
    return prog, plan


def lower_loop(
    ctx: Any,
    step: ProgramStep,
    plan: MemoryPlan,
    extra: Extra,
    lower_steps: Callable[..., list],
    context: Callable[..., Any],
    fusion: bool,
) -> Repeat:
    """The Repeat computing loop step `step` of a function planned by `plan`. Its body's
    values and scratch go to `extra`; `lower_steps(ctx, prog, plan, extra)` lowers the body's
    program (nested loops too), `context(graph, prefix)` makes the body's naming context."""
    G = ctx.G
    S = step.node
    p = G._node[S]["params"]
    body = p["body"]
    B = body.graph
    nc, nxs = p["n_carry"], p["n_xs"]
    ins, outs = body.inputs, body.outputs
    args = operands(G, S)
    results = {G._node[o]["params"]["index"]: o for o in step.nodes if o != S}
    names = list(B.outputs)
    want = [names[k] for k in range(len(names)) if k < nc or k in results]
    prog, bplan = body_program(body, want, fusion)
    _refuse_unchecked(B, prog, ctx.describe(S))
    bctx = context(B, f"{ctx.names[S]}.")
    inner = Extra()
    bsteps = lower_steps(bctx, prog, bplan, inner)

    binds: list[Bind] = []
    key: dict[int, Any] = {}  # body node -> the function's key for it
    for k, u in enumerate(ins):
        a = B.nx._node[u]
        if k < nc:
            key[u] = ("in", S, k)
        elif k < nc + nxs:
            key[u] = ("x", S, k)
            axis = xs_axis(p, k - nc)
            if axis:  # gathered into scratch at each trip
                _own(extra, key[u], f"{ctx.names[S]}.x{k}", a["shape"], a["dtype"])
                rows, size = _blocks(a["shape"], a["dtype"], axis)
                stride = _nbytes(G._node[args[k]]["shape"][axis:], a["dtype"])
                binds.append(Bind("gather", key[u], (args[k],), size, rows=rows, stride=stride))
            else:
                binds.append(Bind("step", key[u], (args[k],), _nbytes(a["shape"], a["dtype"])))
        else:
            key[u] = args[k]  # a captured value: the operand itself
    dest: dict[str, Any] = {}  # body output name -> where the loop keeps it at each trip
    empty = []
    for k, name in enumerate(names):
        shape, dtype = B.nx._node[outs[k]]["shape"], B.nx._node[outs[k]]["dtype"]
        if k < nc:
            dest[name] = ("out", S, k)
            alone = _carry_in_place(prog, bplan, ins[k], outs[k], name)
            ping, pong = ("ping", S, k), ("pong", S, k)
            for turn in () if alone else (ping, pong):
                extra.storage[turn] = extra.scratch(((shape, dtype),))
                extra.names[turn] = f"{ctx.names[S]}.{turn[0]}{k}"
            final = results.get(k)
            if final is None:  # a carry the function does not read: kept in scratch
                final = ("final", S, k)
                extra.storage[final] = extra.scratch(((shape, dtype),))
                extra.names[final] = f"{ctx.names[S]}.final{k}"
            if alone:  # the first trip reads the initial carry, every trip writes the final
                ping = pong = final
            binds.append(Bind("carry_in", ("in", S, k), (args[k], ping, pong)))
            binds.append(Bind("carry_out", dest[name], (final, ping, pong)))
            empty.append((final, args[k], _nbytes(shape, dtype)))
            extra.storage[("in", S, k)] = Storage("alias", args[k])
            extra.storage[dest[name]] = Storage("alias", final)
        elif k in results and k in p["strided"]:  # kept every k-th step (checkpoints)
            dest[name] = ("y", S, k)
            skip = ("skip", S, k)
            extra.storage[skip] = extra.scratch(((shape, dtype),))
            extra.names[skip] = f"{ctx.names[S]}.skip{k}"
            binds.append(Bind("every", dest[name], (results[k], skip), _nbytes(shape, dtype),
                              p["every"]))  # fmt: skip
            extra.storage[dest[name]] = Storage("alias", results[k])
        elif k in results and ys_axis(p, k):  # written in scratch, scattered at each trip
            dest[name] = ("y", S, k)
            _own(extra, dest[name], f"{ctx.names[S]}.y{k}", shape, dtype)
            rows, size = _blocks(shape, dtype, ys_axis(p, k))
            stride = _nbytes(G._node[results[k]]["shape"][ys_axis(p, k) :], dtype)
            binds.append(Bind("scatter", dest[name], (results[k],), size, rows=rows,
                              stride=stride))  # fmt: skip
        elif k in results:
            dest[name] = ("y", S, k)
            binds.append(Bind("step", dest[name], (results[k],), _nbytes(shape, dtype)))
            extra.storage[dest[name]] = Storage("alias", results[k])
    for u, kk in key.items():
        if isinstance(kk, tuple) and kk[0] == "x" and kk not in extra.storage:
            extra.storage[kk] = Storage("alias", args[ins.index(u)])

    # the body plan's storage: scratch slots of the function, constants, aliases
    first_slot = len(extra.slots)
    for layouts in (s.layouts for s in bplan.slots):
        extra.slots.append(layouts)
    per_trip: set[Any] = {b.key for b in binds}

    def key_of(m: Any) -> Any:
        if not isinstance(m, int):
            return ("s", S, m)  # a key of a loop nested in the body
        if m in key:
            return key[m]
        st = bplan.storage[m]
        if st.kind == "input":
            return key[B.input_ids()[st.ref]]
        if st.kind == "output":
            return dest[st.ref]
        k = ("s", S, m)
        if k not in extra.storage:
            extra.names[k] = bctx.name(m)
            if st.kind == "arena":
                extra.storage[k] = Storage("scratch", first_slot + int(st.ref))
            elif st.kind == "const":
                extra.storage[k] = Storage("const", k)
                extra.consts[k] = B.nx._node[m]
            elif st.kind == "alias":
                root = key_of(int(st.ref))
                extra.storage[k] = Storage("alias", root)
                if _bound(root, per_trip, extra):
                    binds.append(Bind("alias", k, (root,)))
                    per_trip.add(k)
            else:
                raise GraphError(f"internal error: {bctx.name(m)} ({st.kind}) has no storage")
        return k

    # a loop nested in the body: its keys, storage and scratch under this loop's
    for k, st in inner.storage.items():
        extra.storage[key_of(k)] = _remap_storage(st, key_of, len(extra.slots))
    for k, name in inner.names.items():
        extra.names[key_of(k)] = name
    for k, attrs in inner.consts.items():
        extra.consts[key_of(k)] = attrs
    extra.slots.extend(inner.slots)
    extra.nonempty.extend(inner.nonempty)
    for n in B.nx:
        a = B.nx._node[n]
        if a["op"] == "max":
            x = operands(B.nx, n)[0]
            reduced = [B.nx._node[x]["shape"][i] for i in a["params"]["axis"]]
            if any(isinstance(d, str) for d in reduced):
                extra.nonempty.append((tuple(reduced), bctx.describe(n)))

    lowered = [_remap(s, key_of) for s in bsteps]
    # aliases (of a nested loop's values too) whose bytes move at each trip move with them
    for k in list(extra.storage):
        if isinstance(k, tuple) and k[:2] == ("s", S) and k not in per_trip:
            if extra.storage[k].kind == "alias" and _bound(extra.storage[k].ref, per_trip, extra):
                binds.extend(_alias_binds(k, per_trip, extra))
    for name, m in bplan.extra_outputs.items():  # results that are inputs or other results
        a = B.nx._node[m]
        lowered.append(Step(Runtime("copy"), (key_of(m), dest[name]),
                            (_nbytes(a["shape"], a["dtype"]),), (), (f"{name} = {bctx.name(m)}",),
                            step.section, None, True))  # fmt: skip
    what = tuple(ctx.describe(n) for n in step.nodes)
    return Repeat(SizeExpr.of([p["length"][0]]), bool(p["reverse"]), tuple(binds),
                  tuple(lowered), tuple(empty), what, step.section)  # fmt: skip


def _carry_in_place(prog: Program, plan: MemoryPlan, u: int, o: int, name: str) -> bool:
    """May the body write its new carry `o` (output `name`) over the carry `u` it reads? Then
    one buffer holds the carry from trip to trip instead of two taking turns (the sums of a
    reverse loop's gradients of the weights, the largest carries, are added in place). So it
    may when nothing reads `u`, or a value sharing its bytes, after the step writing `o` (nor
    beside it), and at that step only an elementwise `o` reads it, at the element it writes
    (the planner's rule for writing in place)."""
    t = prog.step_of.get(o)
    if t is None or plan.storage.get(o) != Storage("output", name):
        return False
    if t and prog.steps[t - 1].beside:
        return False
    same = {v for v in plan.storage if plan.root(v) == u} | {u}
    if same.intersection(plan.extra_outputs.values()):  # copied to a result after the steps
        return False
    last = max((r + prog.steps[r].beside for r, reads in enumerate(prog._reads)
                if same.intersection(reads)), default=-1)  # fmt: skip
    if last < t:
        return True
    reads = prog._reads[t]
    return last == t and same.intersection(reads) == {u} and can_overwrite(prog, o, u)


def _bound(k: Any, per_trip: set[Any], extra: Extra) -> bool:
    """Is the value `k` (through aliases) bound at each trip?"""
    while True:
        if k in per_trip:
            return True
        st = extra.storage.get(k)
        if st is None or st.kind != "alias":
            return False
        k = st.ref


def _alias_binds(k: Any, per_trip: set[Any], extra: Extra) -> list[Bind]:
    """Binds for alias `k` and the aliases it is an alias of, roots first."""
    chain = []
    while k not in per_trip:
        chain.append(k)
        k = extra.storage[k].ref
    out = []
    for a in reversed(chain):
        out.append(Bind("alias", a, (extra.storage[a].ref,)))
        per_trip.add(a)
    return out


def _remap_storage(st: Storage, key_of: Callable, slot_base: int) -> Storage:
    if st.kind == "alias" or st.kind == "const":
        return Storage(st.kind, key_of(st.ref))
    if st.kind == "scratch":
        return Storage("scratch", slot_base + int(st.ref))
    return st


def _remap(s: Any, key_of: Callable) -> Any:
    """Step or Repeat `s` of a body, its values named by the enclosing function's keys."""
    if isinstance(s, Step):
        return dataclasses.replace(s, buffers=tuple(key_of(b) for b in s.buffers), beside=False)
    binds = tuple(dataclasses.replace(b, key=key_of(b.key), refs=tuple(map(key_of, b.refs)))
                  for b in s.binds)  # fmt: skip
    empty = tuple((key_of(f), key_of(i), n) for f, i, n in s.empty)
    body = tuple(_remap(b, key_of) for b in s.body)
    return dataclasses.replace(s, binds=binds, empty=empty, body=body)


def _refuse_unchecked(B: Any, prog: Program, where: str) -> None:
    """Int indices are checked when a call begins (codegen/indexing.py), for the whole
    model's inputs; a gather inside a loop's body would use indices nothing checked."""
    from graphc.ops.indexing import index_use

    for s in prog.steps:
        for n in s.nodes:
            if index_use(B.nx, n) is not None:
                raise GraphError(
                    f"{where}: its body gathers with int indices ({describe(B.nx, n)}), which "
                    "compiled loops do not check yet; gather before the loop, for every step "
                    "at once (gc.take of the whole sequence), and pass the result as xs"
                )
