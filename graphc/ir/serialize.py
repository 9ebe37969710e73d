"""JSON form of a model (networkx node-link data); loading it never executes code."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np

from graphc.errors import GraphError
from graphc.ir.shapes import DTYPES


def to_json(G: nx.MultiDiGraph) -> str:
    H = G.copy()
    for _, attrs in H.nodes(data=True):
        if "value" in attrs:
            v = attrs["value"]
            attrs["value"] = {
                "dtype": v.dtype.name,
                "shape": list(v.shape),
                "data": v.ravel().tolist(),
            }
    data = nx.node_link_data(H, edges="edges")
    # Canonical order, so the same graph always gives the same text whatever its insertion order.
    data["nodes"].sort(key=lambda d: d["id"])
    data["edges"].sort(key=lambda d: (d["target"], d["port"], d["source"]))
    return json.dumps(data, sort_keys=True, indent=1)


def from_json(text: str) -> nx.MultiDiGraph:
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"the top level is a {type(data).__name__}, not an object")
        G = nx.node_link_graph(data, directed=True, multigraph=True, edges="edges")
    except (ValueError, KeyError, TypeError, AttributeError, nx.NetworkXError) as e:
        raise GraphError(f"not a graphc model in JSON node-link form: {e}") from None
    outputs = G.graph.get("outputs")
    if isinstance(outputs, dict):
        G.graph["outputs"] = dict(outputs)
    for n, attrs in G.nodes(data=True):
        if "value" in attrs:
            v = attrs["value"]
            try:
                if v["dtype"] not in DTYPES:
                    raise ValueError(f"dtype {v['dtype']!r}")
                arr = np.array(v["data"], dtype=v["dtype"]).reshape(v["shape"])
            except (KeyError, TypeError, ValueError) as e:
                raise GraphError(f"node {n}: const 'value' is malformed: {e}") from None
            arr.flags.writeable = False
            attrs["value"] = arr
    return G
