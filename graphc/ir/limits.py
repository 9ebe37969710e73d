"""How large a graph graphc compiles: a graph past the limit is refused before any pass runs,
with an error that says how to raise it, rather than left to exhaust the machine's memory."""

from __future__ import annotations

import os

from graphc.errors import GraphError
from graphc.ir.graph import Graph

MAX_NODES = 200_000  # the default of max_nodes()


def max_nodes() -> int:
    """The most nodes a graph may have: $GRAPHC_MAX_NODES, else MAX_NODES. The passes take
    about 30 KiB and 1 ms per node (differentiation makes 4 or 5 nodes of each), so the
    default is about 6 GiB and a few minutes."""
    text = os.environ.get("GRAPHC_MAX_NODES", "").strip()
    if not text:
        return MAX_NODES
    try:
        return int(text)
    except ValueError:
        raise GraphError(f"GRAPHC_MAX_NODES must be a number of nodes, got {text!r}") from None


def check_size(g: Graph, size: int) -> None:
    limit = max_nodes()
    if size > limit:
        raise GraphError(
            f"graph {g.name!r} has {size:,} nodes, more than graphc compiles ({limit:,}: "
            "about 30 KiB of memory per node); build a repeated part once and loop over it, "
            "or raise the limit with GRAPHC_MAX_NODES"
        )
