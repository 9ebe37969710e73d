"""`fuse`: runs of elementwise steps over the same index space become one loop (DESIGN.md §4).

A fused step computes its nodes in order for one element at a time, holding every value in a
scalar: values that no step outside the group reads and that are not outputs never touch memory
(the planner gives them no storage). A group has a *domain*, the shape its loop runs over; its
members are

  - elementwise ops (and `broadcast_to` of a value from outside the group) whose result has the
    domain's shape, reading values of the group or any value from outside it (broadcast);
  - `sum` and `mean` of a value of the domain's shape, which accumulate over the loop and end
    their chain: nothing in the group may read a reduction's result. A partial reduction over
    the innermost axis sums each row in a loop of its own (codegen/loops.py: the row's terms
    computed again there), so it joins only when that saves storing its operand (see
    `_gains_nothing`); and a partial reduction's loop runs on one
    thread, so it shares no loop with an op whose elements cost a function call (exp, erf:
    `heavy`), which is better shared among threads, the reduction reading what it stored. A sum
    of floats along the innermost axis alone adds each row as NumPy does (codegen/loops.py
    `row_sums`) only in a loop whose partial reductions are all such sums, so it shares no loop
    with another partial reduction: its bits would then depend on the fusion.

Fusion only merges steps that are adjacent in the schedule, so the schedule's memory order is
kept; the last forward steps and the first backward ones may share a loop (then the forward
values the backward pass reads there are never stored). Within a step, every load of an
element happens before any store (the generated loop computes all scalars first), so a group
may write a result over an operand of the same shape whose last read it is, as a single
elementwise kernel may.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

from graphc.ir.dag import operands, without_gc
from graphc.ops.registry import REGISTRY
from graphc.passes.schedule import Program, Step

REDUCTIONS = ("sum", "mean")
MAX_SUMS = 32  # full reductions one loop computes at most (GC_MAX_SUMS of the runtime)
# Ops one loop computes at most: a longer run is cut into loops of this many, which a repeated
# model (a chain of the same block) makes the same kernel over and over -- emitted once, and
# compiled in a time that does not grow with the run. A cut stores one value and loads it again.
MAX_OPS = 64


def loop_op(G, n: int) -> bool:
    """Is n computed by a loop over elements (alone or fused): elementwise, broadcast, sum?"""
    op = G._node[n]["op"]
    return REGISTRY[op].elementwise or op == "broadcast_to" or op in REDUCTIONS


def domain(G, nodes: Sequence[int]) -> tuple:
    """The shape a group's loop runs over."""
    n = nodes[0]
    a = G._node[n]
    return G._node[operands(G, n)[0]]["shape"] if a["op"] in REDUCTIONS else a["shape"]


def full_reduction(G, n: int) -> bool:
    return G._node[n]["op"] in REDUCTIONS and all(d == 1 for d in G._node[n]["shape"])


def is_flat(G, nodes: Sequence[int]) -> bool:
    """Does the group's loop run over one flat index: every value it reads from outside has
    its domain's shape or a single element, and no reduction keeps an axis?"""
    mine, shape = set(nodes), domain(G, nodes)
    return all(_flat_member(G, n, mine, shape) for n in nodes)


def _flat_member(G, n: int, inside: set[int] | frozenset[int], shape: tuple) -> bool:
    """Can n be computed at a flat index over `shape`, in a loop computing `inside`?"""
    nodes = G._node
    if nodes[n]["op"] in REDUCTIONS and not full_reduction(G, n):
        return False
    for u in operands(G, n):
        if u not in inside:
            s = nodes[u]["shape"]
            if s != shape and not all(d == 1 for d in s):
                return False
    return True


@functools.cache
def heavy(op: str) -> bool:
    """Does an element of `op` cost a function call's work (exp, erf, ...): its scalar rule
    calls one? (codegen/loops.py weighs a loop's work so, and shares heavy loops among
    threads sooner.)"""
    from graphc.codegen import kir

    opdef = REGISTRY[op]
    if opdef.scalar is None:
        return False
    x = kir.Var("x", "float64")
    try:
        e = opdef.scalar(*([x] * max(opdef.arity, 1)), **opdef.params)
    except Exception:  # noqa: BLE001 (a rule that needs real params: count it light)
        return False
    return kir.calls(e) > 0


def partial_reduction(G, n: int) -> bool:
    return G._node[n]["op"] in REDUCTIONS and not full_reduction(G, n)


def row_sum(G, n: int) -> bool:
    """Is the partial reduction n one of floats along its operand's innermost axis alone
    (which codegen/loops.py adds row by row in NumPy's pairwise order)?"""
    a = G._node[n]
    rank = len(G._node[operands(G, n)[0]]["shape"])
    return a["params"]["axis"] == (rank - 1,) and a["dtype"] in ("float32", "float64")


@dataclasses.dataclass
class _Group:
    steps: list[Step]
    members: set[int]
    shape: tuple
    flat: bool
    full: int  # its full reductions
    partial: bool  # it has a partial reduction (its loop runs on one thread)
    rows: bool  # its partial reductions (if any) are sums of rows (`row_sum`)
    heavy: bool  # it has an op whose elements cost a function call (see `heavy`)

    @classmethod
    def of(cls, G, step: Step) -> _Group:
        n = step.node
        shape = domain(G, [n])
        flat = _flat_member(G, n, frozenset(), shape)
        op = G._node[n]["op"]
        partial = partial_reduction(G, n)
        return cls([step], {n}, shape, flat, int(full_reduction(G, n)),
                   partial, partial and row_sum(G, n), heavy(op))  # fmt: skip

    def join(self, G, step: Step, scheduled: dict[int, int]) -> bool:
        """Add `step`'s node to this loop if it may be computed in it; say whether it was. A
        full reduction is only ever computed in a flat loop, so that its terms are added in one
        order (codegen/loops.py), fused or not."""
        if len(self.steps) >= MAX_OPS:
            return False
        n = step.node
        nodes = G._node
        a = nodes[n]
        op = a["op"]
        args = operands(G, n)
        members = self.members
        inside = [u for u in args if u in members]
        for u in inside:
            if nodes[u]["op"] in REDUCTIONS:
                return False  # a reduction's result is known only after the loop
        if op == "broadcast_to" and inside:
            return False
        reduction = op in REDUCTIONS
        shape = nodes[args[0]]["shape"] if reduction else a["shape"]
        if shape != self.shape:
            return False
        if reduction and _gains_nothing(G, n, inside, scheduled):
            return False
        full = reduction and full_reduction(G, n)
        if full and self.full >= MAX_SUMS:
            return False
        heavy_op = heavy(op)
        partial = reduction and not full
        if (self.heavy and partial) or (self.partial and heavy_op):
            return False  # a heavy loop shared among threads, then a light one to reduce
        rows = partial and row_sum(G, n)
        if partial and self.partial and rows != self.rows:
            return False  # rows summed pairwise and other sums: see the module doc
        flat = self.flat and _flat_member(G, n, members, shape)
        if not flat and (self.full or full):
            return False  # a full reduction in a loop that is not flat
        self.flat = flat
        self.full += full
        self.rows = self.rows if self.partial else rows
        self.partial = self.partial or partial
        self.heavy = self.heavy or heavy_op
        self.steps.append(step)
        members.add(n)
        return True


def _gains_nothing(G, n: int, inside: list[int], scheduled: dict[int, int]) -> bool:
    """Would the partial reduction n, joining the loop computing its operand, cost that loop
    a second pass over each row for nothing? It does when it reduces the innermost axis (each
    row's sum is a loop of its own, computing its terms again) and the operand is stored
    anyway for another reader: the group would save only one read of it. `scheduled`: the
    program's steps' nodes."""
    shape = G._node[operands(G, n)[0]]["shape"]
    axes = G._node[n]["params"]["axis"]
    if full_reduction(G, n) or not shape or shape[-1] == 1 or len(shape) - 1 not in axes:
        return False
    return any(v != n and v in scheduled for u in inside for v in G.successors(u))


def _shape_only(G, n: int) -> bool:
    return G._node[n]["op"] == "size" and all(G._node[u]["op"] == "input" for u in operands(G, n))


@without_gc
def fuse(prog: Program) -> Program:
    """`prog` with maximal runs of adjacent fusable steps merged into fused steps (a run of one
    stays an ordinary step); a fused step's section is that of its first step."""
    G = prog.graph.nx
    # `size` of an input (simplify rewrites sizes so) reads no data: run it first, so it does not
    # split the loops around it.
    first = [t for t, s in enumerate(prog.steps) if _shape_only(G, s.node)]
    groups = [[dataclasses.replace(prog.steps[t], section=prog.steps[0].section)] for t in first]
    open_group: _Group | None = None
    skip = set(first)
    step_of = prog.step_of
    for t, step in enumerate(prog.steps):
        if t in skip:
            continue
        n = step.node
        looping = loop_op(G, n)
        if open_group is not None and looping and open_group.join(G, step, step_of):
            continue
        open_group = _Group.of(G, step) if looping else None
        groups.append(open_group.steps if open_group else [step])

    def merged(g: list[Step]) -> Step:
        if len(g) == 1:
            return g[0]
        nodes = tuple(s.node for s in g)
        return Step(g[-1].node, g[0].section, nodes, sections=tuple(s.section for s in g))

    steps = tuple(merged(g) for g in groups)
    return dataclasses.replace(prog, steps=steps)


def internal_values(prog: Program) -> set[int]:
    """Values of fused steps that only their own step reads and that are not outputs: they live
    in a scalar of the loop and need no storage."""
    G = prog.graph.nx
    nodes, succ, step_of = G._node, G._succ, prog.step_of
    outputs = set(prog.outputs.values())
    out = set()
    for s in prog.steps:
        if not s.fused:
            continue
        mine = set(s.nodes)
        for n in s.nodes:
            if n in outputs or nodes[n]["op"] in REDUCTIONS:
                continue
            for v in succ[n]:
                if v not in mine and v in step_of:
                    break  # read by another step of the program
            else:
                out.add(n)
    return out
