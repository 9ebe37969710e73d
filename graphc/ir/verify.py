"""`verify`: check a networkx graph against the IR schema, naming the node, its line, the rule."""

from __future__ import annotations

import keyword

import networkx as nx
import numpy as np

from graphc.errors import GraphError, ShapeError
from graphc.ir.dag import clean_loc, describe, infer_node, operands, topo_order, without_gc
from graphc.ir.graph import Graph, graph_name_problem, unknown_op
from graphc.ir.shapes import (
    DTYPES,
    ShapeMismatch,
    derived,
    dim_symbols,
    is_symbol,
    normalize_shape,
)
from graphc.ops.indexing import constant_index_problem
from graphc.ops.registry import LEAF_OPS, REGISTRY, VARIADIC


def _tuplify(x: object) -> object:
    """Lists (as JSON gives them) back to the tuples the schema uses for shapes and params."""
    if isinstance(x, list):
        return tuple(_tuplify(v) for v in x)
    return x


def _node_id(n: object) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


@without_gc
def verify(g: Graph | nx.MultiDiGraph, fill: bool = False) -> None:
    """Raise GraphError/ShapeError on the first broken rule. With `fill`, missing inferred
    shapes/dtypes of non-leaf nodes are written in (and list-valued params become tuples)."""
    G = g.nx if isinstance(g, Graph) else g
    if not isinstance(G, nx.MultiDiGraph):
        raise GraphError(f"a model must be a networkx.MultiDiGraph, got {type(G).__name__}")
    name = G.graph.get("name", "model")
    problem = graph_name_problem(name)
    if problem:
        raise GraphError(f"graph name {name!r} {problem}")
    for n in G.nodes:
        if not _node_id(n):
            raise GraphError(f"node id {n!r} is not an int >= 0")
    for u, v, port in (  # G.edges(data="port"), without networkx's views
        (u, v, d.get("port"))
        for u, nbrs in G._succ.items()
        for v, keys in nbrs.items()
        for d in keys.values()
    ):
        if not _node_id(port):
            raise GraphError(
                f"{describe(G, v)}: its operand edge from v{u} has port {port!r}, "
                "which must be an int >= 0"
            )
    ascending = all(not nbrs or min(nbrs) > u for u, nbrs in G._succ.items())  # the builder's
    if not ascending and not nx.is_directed_acyclic_graph(G):
        cycle = [u for u, _, *_ in nx.find_cycle(G)]
        raise GraphError("the graph has a cycle: " + " -> ".join(describe(G, u) for u in cycle))
    names: dict[str, int] = {}
    for n in topo_order(G):
        _verify_node(G, n, names, fill)
    _verify_products(G, names)
    outputs = G.graph.get("outputs")
    if not isinstance(outputs, dict):
        raise GraphError("graph attribute 'outputs' must be a dict from output name to node id")
    for name, n in outputs.items():
        if not isinstance(name, str) or not name or not name.isprintable():
            raise GraphError(f"output name {name!r} must be a non-empty printable string")
        if not _node_id(n) or n not in G:
            raise GraphError(f"output {name!r} refers to node {n!r}, which is not in the graph")
        if G.nodes[n]["op"] == "scan":
            raise GraphError(f"output {name!r} is {describe(G, n)}, a tuple of the loop's "
                             "results; output one result (scan_out[index=k])")  # fmt: skip


def _verify_products(G: nx.MultiDiGraph, inputs: dict[str, int]) -> None:
    """An input axis that is a product of symbols ("B*T") is checked against them at a call:
    each must be an axis of its own in some input, which gives its size."""
    alone = {d for n in inputs.values() for d in G._node[n].get("shape", ()) if is_symbol(d)}
    for n in inputs.values():
        for d in G._node[n].get("shape", ()):
            if isinstance(d, str) and any(derived(x) for x in dim_symbols(d)):
                raise GraphError(
                    f"{describe(G, n)}: symbol names ending in two underscores, a letter of "
                    f"qrcpe and a number ({d}) are kept for sizes graphc works out; rename it"
                )
            missing = [x for x in dim_symbols(d) if x not in alone]
            if missing:
                raise GraphError(
                    f"{describe(G, n)}: its axis {d} is a product of {', '.join(missing)}, which "
                    "no input has as an axis of its own; a call could not tell its factors "
                    f"apart (declare an input with an axis {missing[0]}, or use one symbol)"
                )


class _Where:
    """`describe(G, n)` when an error message shows it (most nodes have no error)."""

    __slots__ = ("G", "n")

    def __init__(self, G: nx.MultiDiGraph, n: int) -> None:
        self.G, self.n = G, n

    def __str__(self) -> str:
        return describe(self.G, self.n)


def _verify_node(G: nx.MultiDiGraph, n: int, names: dict[str, int], fill: bool) -> None:
    attrs = G._node[n]
    where = _Where(G, n)
    op = attrs.get("op")
    if op is None:
        raise GraphError(f"{where}: the node has no 'op' (is it named by an edge only?)")
    if not isinstance(op, str) or (op not in REGISTRY and op not in LEAF_OPS):
        raise GraphError(f"{where}: {unknown_op(op)}")
    loc = attrs.get("loc")
    if loc is not None and not isinstance(loc, str):
        raise GraphError(f"{where}: 'loc' must be a str such as 'model.py:12', got {loc!r}")
    if loc is not None and clean_loc(loc) != loc:
        if not fill:  # the builder and from_networkx clean them
            raise GraphError(
                f"{where}: 'loc' {loc!r} holds quotes, backslashes or unprintable characters"
            )
        attrs["loc"] = clean_loc(loc)
    grad_of = attrs.get("grad_of")
    if grad_of is not None and not _node_id(grad_of):
        raise GraphError(f"{where}: 'grad_of' must be a node id (an int >= 0), got {grad_of!r}")
    params = attrs.get("params", {})
    if not isinstance(params, dict):
        raise GraphError(f"{where}: 'params' must be a dict, got {type(params).__name__}")
    if fill:
        params = {k: _tuplify(v) for k, v in params.items()}
        attrs["params"] = params
        for key in ("shape",):
            if key in attrs and isinstance(attrs[key], list):
                attrs[key] = tuple(attrs[key])
    ports = sorted(d["port"] for keys in G._pred[n].values() for d in keys.values())
    if op in LEAF_OPS:
        if ports:
            raise GraphError(f"{where}: a leaf ({op}) cannot have operands")
        if params:
            raise GraphError(f"{where}: a leaf ({op}) takes no params, got {params!r}")
        _verify_leaf(G, n, attrs, names, where)
        return
    opdef = REGISTRY[op]
    if ports != list(range(len(ports))) or not opdef.takes(len(ports)):
        want = "0, 1, ..." if opdef.arity == VARIADIC else f"0..{opdef.arity - 1}"
        raise GraphError(
            f"{where}: {op} takes operands on ports {want}, its incoming edges have ports {ports}"
        )
    unknown = sorted(set(params) - set(opdef.params))
    if unknown:
        raise GraphError(f"{where}: {op} takes no parameter {', '.join(map(repr, unknown))}")
    if fill:
        attrs["params"] = params = opdef.full_params(params)
    elif set(params) != set(opdef.params):
        missing = sorted(set(opdef.params) - set(params))
        raise GraphError(f"{where}: {op} is missing parameter {', '.join(map(repr, missing))}")
    for key, value in sorted(params.items()):
        problem = opdef.param_problem(key, value)
        if problem:
            raise GraphError(f"{where}: parameter {key}={value!r} of {op} {problem}")
    args = operands(G, n)
    for u in args:
        if G._node[u].get("op") == "scan" and op != "scan_out":
            raise GraphError(
                f"{where}: reads {describe(G, u)} itself, a tuple of the loop's results; read "
                "one result with scan_out[index=k]"
            )
    shape, dtype = infer_node(G, n, args)
    problem = constant_index_problem(G, n)
    if problem:
        raise ShapeError(f"{where}: {problem}")
    for key, want in (("shape", shape), ("dtype", dtype)):
        if key not in attrs and fill:
            attrs[key] = want
        elif attrs.get(key) != want:
            raise ShapeError(
                f"{where}: recorded {key} {attrs.get(key)!r}, its operands give {want!r}; "
                f"correct it, or leave it out and load the graph with Graph.from_networkx, "
                "which infers it"
            )


def _verify_leaf(G, n, attrs, names, where) -> None:
    dtype = attrs.get("dtype")
    if dtype not in DTYPES:
        raise GraphError(f"{where}: dtype {dtype!r} is not one of {DTYPES}")
    try:
        shape = normalize_shape(attrs.get("shape", ()))
    except ShapeMismatch as e:
        raise ShapeError(f"{where}: {e}") from None
    if shape != attrs.get("shape"):
        raise ShapeError(f"{where}: shape {attrs.get('shape')!r} must be a tuple of ints/symbols")
    if attrs["op"] == "const":
        value = attrs.get("value")
        if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype.name != dtype:
            raise GraphError(f"{where}: 'value' must be a {dtype} array of shape {shape}")
        return
    name, role = attrs.get("name"), attrs.get("role")
    if role not in ("data", "param"):
        raise GraphError(f"{where}: input role must be 'data' or 'param', got {role!r}")
    if not is_symbol(name) or keyword.iskeyword(name):
        raise GraphError(f"{where}: input name {name!r} must be an ASCII Python identifier")
    if name in names:
        raise GraphError(
            f"{where}: input name {name!r} is also used by {describe(G, names[name])}; "
            "give each input its own name"
        )
    names[name] = n
