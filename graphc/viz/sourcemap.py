"""Which lines of a generated module belong to which node: the one place that reads the source
comments code generation writes (DESIGN.md §5).

It relies on three conventions of the generated source and on nothing else:
  - values are named `v<id>` and gradients `g<id of the node they differentiate>`;
  - a statement carries a comment `# <name> = <op>(...)   [<model line>]`, after `adj: ` in the
    backward section, either at the end of its line or alone on the line before it (it then
    covers the lines that follow at its indentation, up to a blank line or the next comment);
  - a fused loop is announced by `fused loop: <k> ops, <name>, <name> stored` in a comment or
    a docstring, which then belongs to the values it stores.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import networkx as nx

_NAME = r"[vg]\d+"
# `# adj: v12 = tanh(v11)   [model.py:14]`; the op may carry `[params]`.
_STATEMENT = re.compile(rf"#\s*(adj:\s*)?({_NAME}) = [A-Za-z_]\w*[\[(].*\[[^\]]*\]\s*$")
_FUSED = re.compile(rf"(adj:\s*)?fused loop: \d+ ops?, ((?:{_NAME}(?:, )?)+) stored")


def value_names(G: nx.MultiDiGraph) -> dict[str, int]:
    """The name the generated source gives each node -> its id: `g<k>` for the first node (by
    id) that is the gradient of node k, `v<id>` for every other."""
    names: dict[str, int] = {}
    for n in sorted(G.nodes):
        k = G.nodes[n].get("grad_of")
        name = f"g{k}" if isinstance(k, int) and f"g{k}" not in names else f"v{n}"
        names[name] = n
    return names


@dataclass
class SourceMap:
    """`lines[i]`: the nodes line i (1-based) belongs to; `nodes[n]`: the lines of node n;
    `backward`: the lines of `adj:` statements; `unknown`: names the comments use that no node
    has (empty for a module made from the same graph)."""

    lines: dict[int, list[int]] = field(default_factory=dict)
    nodes: dict[int, list[int]] = field(default_factory=dict)
    backward: set[int] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)

    def add(self, line: int, node: int) -> None:
        if node not in self.lines.setdefault(line, []):
            self.lines[line].append(node)
            self.nodes.setdefault(node, []).append(line)


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def source_map(source: str, names: Mapping[str, int]) -> SourceMap:
    """Map each line of the generated `source` to the nodes it computes; `names` is
    `value_names` of the graph the source was generated from."""
    sm = SourceMap()
    block: tuple[list[int], int, bool] | None = None  # (nodes, indentation, adj) of a comment

    def resolve(found: list[str]) -> list[int]:
        sm.unknown.update(k for k in found if k not in names)
        return [names[k] for k in found if k in names]

    for i, text in enumerate(source.splitlines(), start=1):
        stripped = text.strip()
        code, hash_, comment = text.partition("#")
        comment = hash_ + comment
        nodes: list[int] = []
        adj = False
        if m := _STATEMENT.search(comment):
            nodes, adj = resolve([m.group(2)]), bool(m.group(1))
        elif m := _FUSED.search(text):
            nodes, adj = resolve(re.findall(_NAME, m.group(2))), bool(m.group(1))
        if block is not None and stripped and _indent(text) < block[1]:
            block = None  # a line left of the block's comment ends it
        if nodes and not code.strip():  # a comment alone on its line: it heads a block
            block = (nodes, _indent(text), adj)
        elif nodes and block is not None:
            adj = adj or block[2]  # a statement of a backward block is backward too
        elif not nodes and block is not None:  # a line of the block, or the block's end
            if not stripped or stripped.startswith("#"):
                block = None
            else:
                nodes, adj = block[0], block[2]
        for n in nodes:
            sm.add(i, n)
        if nodes and adj:
            sm.backward.add(i)
    return sm
