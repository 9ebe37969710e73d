"""`with_dtype`: a model in another floating-point precision."""

from __future__ import annotations

import numpy as np

from graphc.errors import GraphError
from graphc.ir.dag import copy_graph
from graphc.ir.graph import Graph
from graphc.ir.shapes import FLOAT_DTYPES, dtype_name
from graphc.ops.registry import structured


def in_dtype(g: Graph, dtype: str) -> bool:
    """Is `g` in `dtype` already: every float input, constant and cast (and loop body)?"""
    return all(
        a["dtype"] == dtype if a["op"] in ("input", "const") and a["dtype"] in FLOAT_DTYPES
        else (a["op"] != "cast" or a["params"]["dtype"] not in FLOAT_DTYPES
              or a["params"]["dtype"] == dtype)
        and all(in_dtype(a["params"][k].graph, dtype) for k in structured(a["op"]))
        for a in g.nx._node.values()
    )  # fmt: skip


def with_dtype(g: Graph, dtype: str) -> Graph:
    """`g` with every float input, constant and cast in `dtype` (shapes and dtypes re-inferred)."""
    dtype = dtype_name(dtype)
    if dtype not in FLOAT_DTYPES:
        raise GraphError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
    H = copy_graph(g.nx)
    H.graph["outputs"] = dict(g.outputs)
    for _, a in H.nodes(data=True):
        if a["op"] == "input" and a["dtype"] in FLOAT_DTYPES:
            a["dtype"] = dtype
        elif a["op"] == "const" and a["dtype"] in FLOAT_DTYPES:
            a["value"] = np.asarray(a["value"], dtype=dtype)
            a["value"].flags.writeable = False
            a["dtype"] = dtype
        elif a["op"] not in ("input", "const"):
            if a["op"] == "cast" and a["params"]["dtype"] in FLOAT_DTYPES:
                a["params"] = dict(a["params"], dtype=dtype)
            for k in structured(a["op"]):  # a loop's body, in the same precision
                a["params"] = dict(a["params"], **{k: a["params"][k].with_dtype(dtype)})
            a.pop("shape", None)
            a.pop("dtype", None)
    return Graph.from_networkx(H)
