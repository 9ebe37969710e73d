"""`--values`: every node's value on given inputs, and every node's adjoint d(of)/d(node), as
the seed's worked example shows them flowing forward and back.

Values come from the NumPy interpreter with every node made an output. Adjoints are found
without trusting the gradient graph's own bookkeeping: each node v is given a zero input
`eps_v` added to it (v + 0 is v, so no value changes), and d(of)/d(eps_v) -- a plain gradient
with respect to an input -- is d(of)/d(v).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from graphc.errors import InputError
from graphc.interp import bind_inputs, evaluate
from graphc.ir.graph import Graph
from graphc.ir.shapes import FLOAT_DTYPES, bind_shape
from graphc.passes.grad import grad, grad_name
from graphc.viz.model import NodeValues

_EPS = "eps_"


def all_values(g: Graph, inputs: Mapping[str, Any]) -> dict[int, np.ndarray]:
    """The value of every node of `g` that the interpreter can compute from `inputs`."""
    H = g.nx.copy()
    H.graph["outputs"] = {f"v{n}": n for n in H.nodes}
    out = evaluate(Graph.from_networkx(H), inputs)
    return {int(k[1:]): v for k, v in out.items()}


def adjoints(g: Graph, inputs: Mapping[str, Any], of: str) -> dict[int, np.ndarray]:
    """d(of)/d(v) for every float node v that `of` depends on (inputs included)."""
    G = g.nx
    root = g.outputs[of]
    reach = nx.ancestors(G, root) | {root}
    H = G.copy()
    H.graph["outputs"] = dict(g.outputs)
    wrt: dict[str, int] = {}
    _, symbols = bind_inputs(g, inputs)
    fresh = max(H.nodes, default=-1) + 1
    for n in sorted(reach):
        a = G.nodes[n]
        if a["op"] in ("input", "const") or a["dtype"] not in FLOAT_DTYPES:
            continue
        users = [(v, d["port"]) for _, v, d in G.out_edges(n, data=True)]
        eps, total = fresh, fresh + 1
        fresh += 2
        H.add_node(eps, op="input", role="data", name=f"{_EPS}{n}", shape=a["shape"],
                   dtype=a["dtype"], params={}, loc=a.get("loc"))  # fmt: skip
        H.add_node(total, op="add", params={}, loc=a.get("loc"))
        H.add_edge(n, total, port=0)
        H.add_edge(eps, total, port=1)
        for v, port in users:
            key = next(k for k, d in H.get_edge_data(n, v).items() if d["port"] == port)
            H.remove_edge(n, v, key)
            H.add_edge(total, v, port=port)
        for name, out in H.graph["outputs"].items():
            if out == n:
                H.graph["outputs"][name] = total
        wrt[f"{_EPS}{n}"] = n
    for name, n in g.input_ids().items():
        if G.nodes[n]["dtype"] in FLOAT_DTYPES and n in reach:
            wrt[name] = n
    if not wrt:
        return {}
    h = Graph.from_networkx(H)
    dg = grad(h, of=of, wrt=list(wrt), allow_unused=True)
    zeros = {k: np.zeros(_shape(G.nodes[n], symbols), G.nodes[n]["dtype"])
             for k, n in wrt.items() if k.startswith(_EPS)}  # fmt: skip
    res = evaluate(dg, {**inputs, **zeros}, outputs=[grad_name(of, k) for k in wrt])
    return {n: res[grad_name(of, k)] for k, n in wrt.items()}


def _shape(attrs: dict, symbols: dict[str, int]) -> tuple[int, ...]:
    return tuple(bind_shape(attrs["shape"], symbols))


def node_values(
    g: Graph, inputs: Mapping[str, Any], of: str | None = None
) -> dict[int, NodeValues]:
    """What each node of `g` shows with `--values`: its value, and, when `of` names a scalar
    output, its adjoint d(of)/d(node). (In a joint graph a gradient node's value is already the
    adjoint of the node it differentiates.)"""
    if not isinstance(inputs, Mapping):
        raise InputError(f"values: inputs must be a dict of arrays, got {type(inputs).__name__}")
    vals = all_values(g, inputs)
    adj: dict[int, np.ndarray] = {}
    if of is not None:
        if of not in g.outputs or g.nx.nodes[g.outputs[of]]["shape"] != ():
            raise InputError(f"values: of={of!r} is not a scalar output of graph {g.name!r}")
        adj = adjoints(g, inputs, of)
    return {n: NodeValues(vals.get(n), adj.get(n)) for n in g.nx.nodes if n in vals or n in adj}
