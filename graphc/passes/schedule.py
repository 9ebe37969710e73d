"""`schedule`: one deterministic linear order of the forward and backward program."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx

from graphc.errors import GraphError
from graphc.ir.graph import Graph, topo_order


@dataclass(frozen=True)
class Step:
    """Compute node `node`; `section` says whether it belongs to the forward or backward pass."""

    node: int
    section: str  # "forward" | "backward"


@dataclass(frozen=True)
class Program:
    """What one generated function computes: `steps` in order, reading `inputs` (all declared
    inputs, in declaration order) and producing `outputs` (output name -> node)."""

    graph: Graph
    steps: tuple[Step, ...]
    inputs: dict[str, int]
    outputs: dict[str, int]

    def __str__(self) -> str:
        from graphc.ir.printer import format_node

        lines = []
        section = None
        for s in self.steps:
            if s.section != section:
                section = s.section
                lines.append(f"# {section}")
            lines.append(f"{len(lines):4d}  " + format_node(self.graph.nx, s.node))
        outs = ", ".join(f"{k}=v{v}" for k, v in self.outputs.items())
        return "\n".join([*lines, f"return {outs}"])


def schedule(g: Graph, outputs: Sequence[str], backward_from: int | None = None) -> Program:
    """The steps that compute `outputs` of `g` in a topological order, skipping nodes no output
    needs. Nodes with id >= `backward_from` (those `grad` added) form the backward section."""
    G = g.nx
    for name in outputs:
        if name not in g.outputs:
            raise GraphError(f"graph {g.name!r} has no output {name!r}")
    targets = {g.outputs[name] for name in outputs}
    needed = targets.union(*(nx.ancestors(G, t) for t in targets))
    steps = tuple(
        Step(n, "backward" if backward_from is not None and n >= backward_from else "forward")
        for n in topo_order(G)
        if n in needed and G.nodes[n]["op"] not in ("input", "const")
    )
    # The forward section first: a backward step never feeds a forward one.
    steps = tuple(s for s in steps if s.section == "forward") + tuple(
        s for s in steps if s.section == "backward"
    )
    return Program(g, steps, g.input_ids(), {name: g.outputs[name] for name in outputs})
