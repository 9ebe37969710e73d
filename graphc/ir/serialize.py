"""JSON form of a model (networkx node-link data); loading it never executes code."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np

from graphc.errors import GraphError
from graphc.ir.dag import without_gc
from graphc.ir.shapes import DTYPES


@without_gc  # several dicts per node, no cycles: the collector would rescan the heap
def to_json(G: nx.MultiDiGraph, indent: int | None = 1) -> str:
    """The JSON form of `G`: indented for a file people read, compact (`indent=None`, several
    times faster to write) for a copy only graphc reads back, such as a module's recipe."""
    separators = None if indent is not None else (",", ":")
    return json.dumps(to_data(G), sort_keys=True, indent=indent, separators=separators)


def to_data(G: nx.MultiDiGraph) -> dict:
    """The JSON form of `G` as plain data (a loop body's graph nests in its node's params),
    networkx's node-link form made without copying `G`: each node's attributes and id, each
    edge's attributes, ends and key."""
    nodes = []
    for n, attrs in sorted(G._node.items()):
        node = dict(attrs, id=n)
        if "value" in attrs:
            v = attrs["value"]
            node["value"] = {"dtype": v.dtype.name, "shape": list(v.shape),
                             "data": v.ravel().tolist()}  # fmt: skip
        params = attrs.get("params")
        if params and any(hasattr(v, "to_data") for v in params.values()):
            node["params"] = {k: v.to_data() if hasattr(v, "to_data") else v
                              for k, v in params.items()}  # fmt: skip
        nodes.append(node)
    edges = [
        dict(d, source=u, target=v, key=k)
        for v, preds in G._pred.items()
        for u, keys in preds.items()
        for k, d in keys.items()
    ]
    # Canonical order, so the same graph always gives the same text whatever its insertion order.
    edges.sort(key=lambda d: (d["target"], d["port"], d["source"]))
    # The outputs as [name, id] pairs: their order is the model's (forward returns them so),
    # and sort_keys would sort an object's keys.
    graph = dict(G.graph, outputs=[[k, v] for k, v in G.graph["outputs"].items()])
    return {"directed": True, "multigraph": True, "graph": graph, "nodes": nodes, "edges": edges}


# The fields of each part of the JSON form; anything else is refused, so a misspelt field
# (`"parms"`) is an error instead of a default.
NODE_FIELDS = ("id", "op", "shape", "dtype", "params", "loc", "name", "role", "value")
NODE_EXTRA_FIELDS = ("grad_of", "init")  # a gradient's label, a layer's init record
EDGE_FIELDS = ("source", "target", "port", "key")
TOP_FIELDS = ("directed", "multigraph", "graph", "nodes", "edges")


def _schema_error(data: object) -> str | None:
    """What keeps `data` (parsed JSON) from being a model in node-link form, or None. The
    values themselves are checked by `verify` once the graph is built."""
    if not isinstance(data, dict):
        return f"the top level is a {type(data).__name__}, not an object"
    extra = sorted(set(data) - set(TOP_FIELDS))
    missing = [k for k in ("nodes", "edges", "graph") if k not in data]
    if extra or missing:
        return f"the top level must have the fields {TOP_FIELDS}; " + (
            f"{extra} are unknown" if extra else f"{missing} are missing"
        )
    if data.get("directed", True) is not True or data.get("multigraph", True) is not True:
        return "a model is a directed multigraph ('directed' and 'multigraph' are true)"
    graph, nodes, edges = data["graph"], data["nodes"], data["edges"]
    if not isinstance(graph, dict) or "outputs" not in graph:
        return "'graph' must be an object with the model's 'outputs' (and 'name')"
    outputs = graph["outputs"]
    pairs = outputs.items() if isinstance(outputs, dict) else outputs
    if not isinstance(pairs, list | type({}.items())) or not all(
        isinstance(p, list | tuple) and len(p) == 2 and isinstance(p[0], str) for p in pairs
    ):
        return "'outputs' must be a list of [name, node id] pairs"
    if not isinstance(nodes, list) or not isinstance(edges, list):
        return "'nodes' and 'edges' must be lists"
    ids = set()
    for k, node in enumerate(nodes):
        if not isinstance(node, dict):
            return f"nodes[{k}] is a {type(node).__name__}, not an object"
        n = node.get("id")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            return f"nodes[{k}]: 'id' must be an int >= 0, got {n!r}"
        if n in ids:
            return f"nodes[{k}]: node id {n} is used twice"
        ids.add(n)
        extra = sorted(set(node) - set(NODE_FIELDS) - set(NODE_EXTRA_FIELDS))
        if extra:
            return (
                f"node {n}: unknown field {', '.join(map(repr, extra))}; a node has {NODE_FIELDS}"
            )
        if "op" not in node:
            return f"node {n}: the field 'op' is missing"
    for k, edge in enumerate(edges):
        if not isinstance(edge, dict):
            return f"edges[{k}] is a {type(edge).__name__}, not an object"
        extra = sorted(set(edge) - set(EDGE_FIELDS))
        if extra or not {"source", "target", "port"} <= set(edge):
            return f"edges[{k}] must have the fields 'source', 'target', 'port' (and 'key')"
        for end in ("source", "target"):
            if not isinstance(edge[end], int) or edge[end] not in ids:
                return f"edges[{k}]: {end} {edge[end]!r} is not the id of a node in 'nodes'"
    return None


def from_json(text: str) -> nx.MultiDiGraph:
    """The model in `text` (as `to_json` writes it): plain data only, never code; a text that
    is not such a model raises GraphError saying what is wrong with it."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise GraphError(f"a model's JSON must be text, got {type(text).__name__}")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:  # also nesting too deep, numbers too long
        raise GraphError(f"not a graphc model: the text is not JSON ({e})") from None
    return from_data(data)


def from_data(data: object, depth: int = 0) -> nx.MultiDiGraph:
    """The model whose JSON form (parsed) is `data`; its loop bodies, nested in params, are
    read too (at most MAX_DEPTH deep)."""
    problem = _schema_error(data)
    if problem:
        raise GraphError(f"not a graphc model in JSON node-link form: {problem}")
    try:
        G = nx.node_link_graph(data, directed=True, multigraph=True, edges="edges")
    except (ValueError, KeyError, TypeError, AttributeError, nx.NetworkXError) as e:
        raise GraphError(f"not a graphc model in JSON node-link form: {e}") from None
    outputs = G.graph["outputs"]
    G.graph["outputs"] = dict(outputs.items() if isinstance(outputs, dict) else outputs)
    for n, attrs in G.nodes(data=True):
        if "value" in attrs:
            attrs["value"] = _const_value(n, attrs["value"])
        params = attrs.get("params")
        if isinstance(params, dict) and any(isinstance(v, dict) for v in params.values()):
            attrs["params"] = {k: _body(n, v, depth) if isinstance(v, dict) else v
                               for k, v in params.items()}  # fmt: skip
    return G


MAX_DEPTH = 8  # loop bodies nested in loop bodies, at most


def _body(n: int, data: dict, depth: int) -> object:
    """A loop body (ir/body.py) from its JSON form, checked as any model is."""
    from graphc.ir.body import Body

    if depth >= MAX_DEPTH:
        raise GraphError(f"node {n}: loop bodies nest more than {MAX_DEPTH} deep")
    try:
        return Body.from_data(data, depth + 1)
    except GraphError as e:
        raise GraphError(f"node {n}: its loop body: {e}") from None


def _const_value(n: int, v: object) -> np.ndarray:
    """A const node's array from its JSON form {"dtype", "shape", "data"}: numbers only."""
    try:
        if not isinstance(v, dict) or set(v) != {"dtype", "shape", "data"}:
            raise ValueError("it must be an object with the fields dtype, shape and data")
        if v["dtype"] not in DTYPES:
            raise ValueError(f"dtype {v['dtype']!r} is not one of {DTYPES}")
        data = np.array(v["data"])
        if data.dtype.kind not in "biuf":
            raise ValueError(f"'data' must hold numbers, got {data.dtype}")
        arr = np.array(v["data"], dtype=v["dtype"]).reshape(v["shape"])
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as e:
        raise GraphError(f"node {n}: const 'value' is malformed: {e}") from None
    arr.flags.writeable = False
    return arr
