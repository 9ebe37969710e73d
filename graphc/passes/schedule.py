"""`schedule`: one deterministic linear order of the forward and backward program."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import networkx as nx

from graphc.errors import GraphError
from graphc.ir.dag import ancestors, operands, topo_order, without_gc
from graphc.ir.graph import Graph
from graphc.ir.shapes import at_hint, shape_symbols


@dataclass(frozen=True)
class Step:
    """Compute node `node`; `section` says whether it belongs to the forward or backward pass.
    A fused step (see passes/fuse.py) computes the nodes `fused`, in order, in one loop; `node`
    is then the last of them, and `sections` their sections. A step `beside` the next one may
    run at the same time as it (see passes/concurrency.py)."""

    node: int
    section: str  # "forward" | "backward" | "update" (a training step's optimiser)
    fused: tuple[int, ...] = ()
    beside: bool = False
    sections: tuple[str, ...] = ()

    @property
    def nodes(self) -> tuple[int, ...]:
        return self.fused or (self.node,)

    def sections_of_nodes(self) -> tuple[str, ...]:
        """The section of each of `nodes`."""
        return self.sections or (self.section,) * len(self.nodes)


@dataclass(frozen=True)
class Program:
    """What one generated function computes: `steps` in order, reading `inputs` (all declared
    inputs, in declaration order) and producing `outputs` (output name -> node)."""

    graph: Graph
    steps: tuple[Step, ...]
    inputs: dict[str, int]
    outputs: dict[str, int]

    @cached_property
    def step_of(self) -> dict[int, int]:
        """The index of the step that computes each node."""
        return {n: t for t, s in enumerate(self.steps) for n in s.nodes}

    @cached_property
    def _reads(self) -> tuple[tuple[int, ...], ...]:
        """`reads(t)` of every step, computed once: the passes ask for it per value."""
        G = self.graph.nx
        out = []
        for s in self.steps:
            if not s.fused:  # a node is not its own operand
                out.append(tuple(dict.fromkeys(operands(G, s.node))))
                continue
            mine = set(s.nodes)
            found = (u for n in s.nodes for u in operands(G, n) if u not in mine)
            out.append(tuple(dict.fromkeys(found)))
        return tuple(out)

    def reads(self, t: int) -> list[int]:
        """The values step `t` reads from outside itself, each once, in operand order."""
        return list(self._reads[t])

    def operands_of(self, v: int) -> list[int]:
        """What the step computing `v` reads: v's operands, or its fused step's reads."""
        t = self.step_of[v]
        return list(self._reads[t]) if self.steps[t].fused else operands(self.graph.nx, v)

    def __str__(self) -> str:
        from graphc.ir.printer import format_node

        lines = []
        section = None
        for s in self.steps:
            if s.section != section:
                section = s.section
                lines.append(f"# {section}")
            for k, n in enumerate(s.nodes):
                mark = "" if not s.fused else ("fused { " if k == 0 else "        ")
                end = " }" if s.fused and k == len(s.nodes) - 1 else ""
                lines.append(f"{len(lines):4d}  {mark}" + format_node(self.graph.nx, n) + end)
        outs = ", ".join(f"{k}=v{v}" for k, v in self.outputs.items())
        return "\n".join([*lines, f"return {outs}"])


@without_gc
def schedule(
    g: Graph,
    outputs: Sequence[str],
    backward_from: int | None = None,
    order: str = "id",
    size_hint: int = 256,
    update_from: int | None = None,
) -> Program:
    """The steps that compute `outputs` of `g` in a topological order, skipping nodes no output
    needs. Nodes with id >= `backward_from` (those `grad` added) form the backward section, which
    follows the forward one. `order` is "id" (the order the nodes were made in, which for an
    adjoint is reverse-mode order) or "memory" (greedy: among the steps that are ready, take the
    one that adds the fewest bytes net of those it frees, at `size_hint` for each symbol).
    Nodes with id >= `update_from` (a training step's optimiser) form the update section, last:
    it may then overwrite the parameters, which no earlier step reads any more."""
    G, all_outputs = g.nx, g.outputs
    for name in outputs:
        if name not in all_outputs:
            raise GraphError(f"graph {g.name!r} has no output {name!r}")
    targets = {all_outputs[name] for name in outputs}
    nodes = _needed(G, targets)

    def section(n: int) -> str:
        if update_from is not None and n >= update_from:
            return "update"
        return "backward" if backward_from is not None and n >= backward_from else "forward"

    if order == "id":
        nodes = _demand_order(G, nodes, section)
    elif order == "memory":
        nodes = _memory_order(G, nodes, targets, section, size_hint)
    else:
        raise ValueError(f"unknown schedule order {order!r}")
    steps = tuple(Step(n, section(n)) for n in nodes)
    prog = Program(g, steps, g.input_ids(), {name: all_outputs[name] for name in outputs})
    from graphc.passes.scan_steps import group_scans

    return group_scans(prog)  # a loop's results are computed in the loop's step


def _needed(G, targets: set[int]) -> list[int]:
    """The nodes computing `targets`, but for inputs and constants, in topological order; a
    frozen graph remembers them for each set of targets (each function is scheduled twice)."""
    known = G.__dict__.get("_needed") if nx.is_frozen(G) else None
    key = frozenset(targets)
    if known is not None and key in known:
        return list(known[key])
    needed = ancestors(G, targets)
    nodes = [n for n in topo_order(G) if n in needed and G._node[n]["op"] not in ("input", "const")]
    if nx.is_frozen(G):
        G.__dict__.setdefault("_needed", {})[key] = tuple(nodes)
    return nodes


def _demand_order(G, nodes: list[int], section) -> list[int]:
    """The forward steps in node order, then each later step in node order, each preceded by
    whatever it needs that has not run yet (depth first): values recomputed for the backward
    pass are computed just before their first use, not as soon as they could be."""
    forward = [n for n in nodes if section(n) == "forward"]
    backward = sorted(n for n in nodes if section(n) != "forward")
    pending = set(backward)
    out = list(forward)
    for n in backward:
        stack = [n]
        while stack:
            v = stack[-1]
            if v not in pending:
                stack.pop()
                continue
            deps = [u for u in operands(G, v) if u in pending]
            if deps:
                stack.extend(sorted(set(deps), reverse=True))
                continue
            stack.pop()
            pending.discard(v)
            out.append(v)
    return out


def _memory_order(G, nodes: list[int], keep: set[int], section, size_hint: int) -> list[int]:
    """List scheduling that keeps live bytes low; ties go to the smaller id (deterministic)."""
    from graphc.passes.memory import bytes_at

    in_steps = set(nodes)
    nodes_ = G._node
    shapes = dict.fromkeys(nodes_[n]["shape"] for n in nodes)
    sized = bytes_at(at_hint({d for shape in shapes for d in shape_symbols(shape)}, size_hint))
    nbytes = {n: sized(nodes_[n]["shape"], nodes_[n]["dtype"]) for n in nodes}
    args = {n: [u for u in dict.fromkeys(operands(G, n)) if u in in_steps] for n in nodes}
    users: dict[int, list[int]] = {n: [] for n in nodes}
    for n in nodes:
        for u in args[n]:
            users[u].append(n)
    waiting = {n: len(args[n]) for n in nodes}  # operands not yet computed
    pending = {n: len(users[n]) for n in nodes}  # consumers not yet scheduled
    rank = {"forward": 0, "backward": 1, "update": 2}
    rank_of = {n: rank[section(n)] for n in nodes}

    latest: dict[int, tuple] = {}  # the entry last pushed for each step: its priority now

    def entry(n: int) -> tuple:  # a later section waits until no step of an earlier one is ready
        freed = 0  # the bytes n frees: operands it is the last consumer of
        for u in args[n]:
            if pending[u] == 1 and u not in keep:
                freed += nbytes[u]
        e = latest[n] = (rank_of[n], nbytes[n] - freed, n)
        return e

    ready = [entry(n) for n in nodes if waiting[n] == 0]
    heapq.heapify(ready)
    out: list[int] = []
    done: set[int] = set()
    while ready:
        e = heapq.heappop(ready)
        n = e[-1]
        if n in done or e is not latest[n]:
            continue  # a stale entry: n was pushed again with its current priority
        done.add(n)
        out.append(n)
        for u in args[n]:
            pending[u] -= 1
            if pending[u] == 1:  # its last consumer now frees it: that consumer's priority drops
                (last,) = [c for c in users[u] if c not in done]
                if waiting[last] == 0:
                    heapq.heappush(ready, entry(last))
        for c in users[n]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, entry(c))
    assert len(out) == len(nodes), "the graph has a cycle"
    return out
