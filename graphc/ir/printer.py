"""The stable text form of a graph, one line per node, like a jaxpr."""

from __future__ import annotations

import networkx as nx
import numpy as np

from graphc.ir.graph import Graph, operands, topo_order
from graphc.ir.shapes import format_type
from graphc.ops.registry import REGISTRY

_COMMENT_COLUMN = 48


def _const_text(value: np.ndarray) -> str:
    if value.size <= 4:
        return np.array2string(value, separator=", ", precision=17).replace("\n", "")
    return f"<{value.size} values>"


def format_params(op: str, params: dict) -> str:
    """`axis=(0, 1), keepdims=True`: the params that differ from the op's defaults (and the
    axes of a reduction, always)."""
    defaults = REGISTRY[op].params
    return ", ".join(
        f"{k}={v!r}"
        for k, v in sorted(params.items())
        if k not in defaults or v != defaults[k] or k == "axis"
    )


def format_node(G: nx.MultiDiGraph, n: int) -> str:
    """`v12:f64[N,2] = tanh v11` with the user's line as a trailing comment."""
    a = G.nodes[n]
    lhs = f"v{n}:{format_type(a['shape'], a['dtype'])}"
    if a["op"] == "input":
        rhs = f"{a['role']} {a['name']}"
    elif a["op"] == "const":
        rhs = f"const {_const_text(a['value'])}"
    else:
        params = format_params(a["op"], a["params"])
        rhs = a["op"] + (f"[{params}]" if params else "")
        rhs += "".join(f" v{u}" for u in operands(G, n))
    line = f"{lhs} = {rhs}"
    return f"{line.ljust(_COMMENT_COLUMN)}  # {a.get('loc') or '?'}"


def format_graph(g: Graph) -> str:
    G = g.nx
    lines = [f"graph {g.name} {{"]
    lines += ["  " + format_node(G, n) for n in topo_order(G)]
    outs = ", ".join(f"{k}=v{v}" for k, v in g.outputs.items())
    lines += [f"  return {outs}", "}"]
    return "\n".join(lines)
