"""The stable text form of a graph, one line per node, like a jaxpr."""

from __future__ import annotations

import networkx as nx
import numpy as np

from graphc.ir.dag import operands, topo_order
from graphc.ir.graph import Graph
from graphc.ir.shapes import format_type
from graphc.ops.registry import REGISTRY, structured

_COMMENT_COLUMN = 48


def _const_text(value: np.ndarray) -> str:
    if value.size <= 4:
        return np.array2string(value, separator=", ", precision=17).replace("\n", "")
    return f"<{value.size} values>"


def format_params(op: str, params: dict) -> str:
    """`axis=(0, 1), keepdims=True`: the params that differ from the op's defaults (and the
    axes of a reduction, always); a loop's body is printed after its node, not here."""
    opdef = REGISTRY[op]
    defaults = opdef.params
    return ", ".join(
        f"{k}={v!r}"
        for k, v in sorted(params.items())
        if (k not in defaults or v != defaults[k] or k in ("axis", "index"))
        and k not in opdef.structured
    )


def _result_types(G: nx.MultiDiGraph, n: int) -> str:
    """`(f64[N,4], f64[T,N,4])`: the types of a loop's results."""
    from graphc.ops.scan import results

    return "(" + ", ".join(format_type(s, d) for s, d in results(G, n)) + ")"


def format_node(G: nx.MultiDiGraph, n: int) -> str:
    """`v12:f64[N,2] = tanh v11` with the user's line as a trailing comment."""
    a = G.nodes[n]
    typ = _result_types(G, n) if a["op"] == "scan" else format_type(a["shape"], a["dtype"])
    lhs = f"v{n}:{typ}"
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
    return "\n".join(_graph_lines(g, f"graph {g.name}", ""))


def _graph_lines(g: Graph, head: str, pad: str) -> list[str]:
    """The lines of `g`, each after `pad`; a loop's body after its node, indented once more."""
    G = g.nx
    lines = [f"{pad}{head} {{"]
    for n in topo_order(G):
        lines.append(f"{pad}  " + format_node(G, n))
        a = G.nodes[n]
        for k in structured(a["op"]):
            lines += _graph_lines(a["params"][k].graph, k, pad + "    ")
    outs = ", ".join(f"{k}=v{v}" for k, v in g.outputs.items())
    lines += [f"{pad}  return {outs}", f"{pad}}}"]
    return lines
