"""`pair_independent`: steps that may run at the same time, one on each of two threads.

A step with enough work (it touches at least CONCURRENT_MIN elements at the size hint) is
paired with a later step of its section, at most LOOKAHEAD steps on, that reads nothing the
steps in between compute. That step moves up to follow the first, which is marked `beside`
(it runs beside the next step). Liveness then counts the pair as one span of time (both
steps' operands stay live until the pair ends, both results exist from its start), so the
memory plan gives the two disjoint memory and the generated code may run them at once
(`_concurrent` in the module decides at run time, from the exact work of each). Matrix
products are never paired: BLAS shares each one among its own threads. Nor are the steps of
an optimiser's update, which write over their inputs (see passes/train.py check_in_place)."""

from __future__ import annotations

import dataclasses
import functools
import math

from graphc.ir.shapes import hinted
from graphc.passes.schedule import Program

CONCURRENT_MIN = 1 << 15  # elements; below it, handing a step over costs more than it saves
LOOKAHEAD = 16  # steps searched for a partner, so the pass stays linear
# BLAS's own threads; no work; a loop (its steps run in turn, passes/scan_steps.py)
NEVER = frozenset({"matmul", "reshape", "size", "scan"})


def pair_independent(prog: Program, size_hint: int, least: int = CONCURRENT_MIN) -> Program:
    """`prog` with independent pairs of steps adjacent, the first of each marked `beside`;
    each step of a pair touches at least `least` elements at `size_hint`."""
    G = prog.graph.nx
    nodes = G._node
    known: dict[tuple, int] = {}  # shape -> its elements at the hint

    def elements(v: int) -> int:
        shape = nodes[v]["shape"]
        got = known.get(shape)
        if got is None:
            got = known[shape] = math.prod(hinted(d, size_hint) for d in shape)
        return got

    reads = prog._reads

    @functools.cache  # asked up to LOOKAHEAD times per step
    def worth(t: int) -> bool:
        s = prog.steps[t]
        if nodes[s.node]["op"] in NEVER or s.section == "update":
            return False
        return sum(map(elements, (*s.nodes, *reads[t]))) >= least

    steps = prog.steps
    step_of = prog.step_of
    taken: set[int] = set()  # steps moved up beside an earlier one
    order: list[int] = []  # the old index of each step, in the new order
    for t in range(len(steps)):
        if t in taken:
            continue
        order.append(t)
        if not worth(t):
            continue
        for u in range(t + 1, min(t + 1 + LOOKAHEAD, len(steps))):
            if u in taken or steps[u].section != steps[t].section or not worth(u):
                continue
            made = (step_of.get(r, -1) for r in reads[u])
            if all(m < t for m in made):  # needs nothing from t up to u
                taken.add(u)
                order.append(u)
                break
    if not taken:
        return prog
    paired = {order[k] for k in range(len(order) - 1) if order[k + 1] in taken}
    new = tuple(dataclasses.replace(steps[t], beside=t in paired) for t in order)
    out = dataclasses.replace(prog, steps=new)
    out.__dict__["_reads"] = tuple(reads[t] for t in order)  # the same steps' (a cached_property)
    return out


def pairs(prog: Program) -> list[tuple[int, int]]:
    """The (t, t + 1) step pairs that may run at once."""
    return [(t, t + 1) for t, s in enumerate(prog.steps[:-1]) if s.beside]
