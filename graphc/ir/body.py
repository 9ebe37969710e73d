"""A loop body: a graph of the IR held in an op's params (the `body` of a scan, ops/scan.py).

A body is an ordinary graph (DESIGN.md §2): its inputs are the loop's carries, then the slices
of its per-step operands, then the values it captures from the enclosing graph, in declaration
order; its outputs are the new carries, then the per-step results. `Body` freezes it and makes
it a hashable parameter, equal to another body with the same JSON form, so CSE shares equal
loops and the same model always gives the same text. Its JSON form nests in its node's params,
and loading it executes no code.

Tracing: while `f` is called to build a body, `Trace` is the graph its nodes go to. A value of
an enclosing graph used there becomes a captured input (through each body in between, for
nested loops); a param or input made there is made in the outermost graph.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import networkx as nx

from graphc.errors import GraphError
from graphc.ir.dag import copy_graph, describe
from graphc.ir.graph import Graph, Value


class Body:
    """A loop body: a frozen graph, hashable by content."""

    def __init__(self, graph: Graph) -> None:
        from graphc.ir.serialize import to_data

        g = graph.copy()
        nx.freeze(g.nx)
        self.graph = g
        text = json.dumps(to_data(g.nx), sort_keys=True, separators=(",", ":"))
        self.key = hashlib.sha256(text.encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Body) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"<body of {len(self.graph)} nodes {self.key[:12]}>"

    def __reduce__(self) -> tuple:  # pickled as its JSON form (a module's recipe, Dask)
        return (Body.from_data, (self.to_data(),))

    # ---- the signature ----------------------------------------------------------------------
    @functools.cached_property
    def inputs(self) -> list[int]:
        """The input nodes, in declaration order: carries, slices, captured values."""
        return list(self.graph.input_ids().values())

    @functools.cached_property
    def outputs(self) -> list[int]:
        """The output nodes, in order: new carries, then per-step results."""
        return list(self.graph.outputs.values())

    def types(self, nodes: Sequence[int]) -> list[tuple[tuple, str]]:
        G = self.graph.nx
        return [(G.nodes[n]["shape"], G.nodes[n]["dtype"]) for n in nodes]

    # ---- JSON -------------------------------------------------------------------------------
    def to_data(self) -> dict:
        from graphc.ir.serialize import to_data

        return to_data(self.graph.nx)

    @classmethod
    def from_data(cls, data: object, depth: int = 1) -> Body:
        from graphc.ir.serialize import from_data

        return cls(Graph.from_networkx(from_data(data, depth)))

    # ---- derived bodies (each computed once) -------------------------------------------------
    @functools.cached_property
    def simplified(self) -> Body:
        from graphc.passes.simplify import simplify

        g = simplify(self.graph)
        return self if g.to_json() == self.graph.to_json() else Body(g)

    def with_dtype(self, dtype: str) -> Body:
        from graphc.passes.dtype import in_dtype, with_dtype

        return self if in_dtype(self.graph, dtype) else Body(with_dtype(self.graph, dtype))


def check_body(key: str, value: object) -> str | None:
    """Why `value` cannot be the param `key` holding a loop body, or None."""
    if not isinstance(value, Body):
        return f"must be a loop body (graphc.ir.body.Body), got {type(value).__name__}"
    for n, a in value.graph.nx.nodes(data=True):
        if a["op"] == "input" and a.get("role") != "data":
            return f"has {describe(value.graph.nx, n)}: a body's inputs are data, not params"
    return None


class Trace(Graph):
    """The body being traced from a Python function (see the module's docstring)."""

    def __init__(self, parent: Graph, name: str = "body") -> None:
        super().__init__(name)
        self.parent = parent
        self.captured: list[Value] = []  # the parent's values, one per captured input
        self._captured_ids: dict[int, int] = {}  # parent node -> input of this body

    @property
    def root(self) -> Graph:
        g: Graph = self
        while isinstance(g, Trace):
            g = g.parent
        return g

    def slot(self, name: str, shape: Sequence[Any], dtype: str) -> Value:
        """A carry or slice input of the body."""
        return super()._leaf(name, shape, dtype, "data")

    def capture(self, v: Value) -> Value:
        """`v` of an enclosing graph as a value of this body: a captured input."""
        if v.graph is self:
            return v
        if v.graph is not self.parent:
            if not isinstance(self.parent, Trace):
                raise GraphError(
                    f"v{v.id} of graph {v.graph.name!r} is used in a loop body of graph "
                    f"{self.root.name!r}; a body can only read values of its own graph"
                )
            v = self.parent.capture(v)
        n = self._captured_ids.get(v.id)
        if n is None:
            a = v.graph.nx.nodes[v.id]
            with self.at(a.get("loc")):
                n = super()._leaf(f"w{len(self.captured)}", a["shape"], a["dtype"], "data").id
            self._captured_ids[v.id] = n
            self.captured.append(v)
        return Value(self, n)

    def _leaf(self, name: str, shape: Sequence[Any], dtype: str, role: str) -> Value:
        # g.param / g.input inside a body: made in the model (an input of the whole model),
        # and captured when used.
        return self.root._leaf(name, shape, dtype, role)

    def _operand_ids(self, args: Sequence[Any], loc: str) -> list[int]:
        args = [self.capture(a) if isinstance(a, Value) else a for a in args]
        return super()._operand_ids(args, loc)

    def finish(self) -> Graph:
        """The traced body as a plain graph."""
        g = Graph(self.name)
        g.nx = copy_graph(self.nx)
        g.nx.graph["outputs"] = dict(self.nx.graph["outputs"])
        g._next_id = self._next_id
        return g
