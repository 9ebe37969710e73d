"""A loop's step in a program: the scan node and the results the program reads of it
(`scan_out` nodes) are one step, at the scan's place in the schedule.

The step defines every result it holds at once, as a fused step defines its values, so the
memory plan gives each its storage for its own lifetime; the scan node itself, a tuple that only
its results read, needs none (passes/fuse.py `internal_values`). Results no step of the program
reads are not in it, and the loop's code does not compute them (codegen/scan.py): a forward
program computes no residuals for a backward pass it does not have.
"""

from __future__ import annotations

import dataclasses

from graphc.ir.dag import operands
from graphc.passes.schedule import Program, Step


def group_scans(prog: Program) -> Program:
    """`prog` with each scan's results moved into the scan's own step."""
    G = prog.graph.nx
    results: dict[int, list[int]] = {}
    for s in prog.steps:
        if G._node[s.node]["op"] == "scan_out":
            results.setdefault(operands(G, s.node)[0], []).append(s.node)
    if not results:
        return prog
    steps = []
    for s in prog.steps:
        op = G._node[s.node]["op"]
        if op == "scan_out":
            continue
        if op == "scan":
            outs = tuple(sorted(results.get(s.node, ())))
            sections = (s.section,) * (1 + len(outs))
            s = dataclasses.replace(s, fused=(s.node, *outs), sections=sections)
        steps.append(s)
    return dataclasses.replace(prog, steps=tuple(steps))


def is_loop(G, step: Step) -> bool:
    """Is `step` a loop's step?"""
    return G._node[step.node]["op"] == "scan"
