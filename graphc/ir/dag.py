"""The networkx MultiDiGraph under a Graph (schema: DESIGN.md §2), read and written through
its own dicts: a node's operands in port order, adding nodes, copying, ancestors, a
topological order, a node's description and inferred type; and `without_gc`, which every pass
over a large graph runs under. networkx's public views cost about ten times more per call,
and every pass makes such calls once or more per node."""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import networkx as nx

from graphc.errors import ShapeError
from graphc.ir.shapes import Shape, ShapeMismatch, format_type, normalize_shape
from graphc.ops.registry import REGISTRY

if TYPE_CHECKING:
    from graphc.ir.graph import Graph

F = TypeVar("F", bound=Callable[..., Any])


def clean_loc(loc: str) -> str:
    """`loc` as text safe wherever the generated source shows it (comments and docstrings):
    `"` becomes `'`, a backslash `/`, any other character that is not printable `?`."""
    if loc.isprintable() and '"' not in loc and "\\" not in loc:
        return loc
    return "".join(
        ("'" if c == '"' else "/" if c == "\\" else c) if c.isprintable() else "?" for c in loc
    )


def describe(G: nx.MultiDiGraph, n: int) -> str:
    """`v12 (tanh) at model.py:14`, or with the user's name when the node has one."""
    attrs = G.nodes[n]
    label = f"v{n}"
    if attrs.get("name"):
        label += f" {attrs['name']!r}"
    loc = attrs.get("loc") or "?"
    return f"{label} ({attrs.get('op', '?')}) at {clean_loc(loc) if isinstance(loc, str) else loc}"


def operands(G: nx.MultiDiGraph, n: int) -> list[int]:
    """The operand node ids of `n`, ordered by edge `port`."""
    known = G.__dict__.get("_operands")  # a frozen graph's (see `freeze`)
    if known is not None:
        got = known.get(n)
        if got is None:
            got = known[n] = _operands(G, n)
        return list(got)
    return list(_operands(G, n))


def _operands(G: nx.MultiDiGraph, n: int) -> tuple[int, ...]:
    # G._pred is networkx's adjacency dict; the public views cost ~10x more per call, and every
    # pass calls this once per node.
    preds = G._pred[n]
    if len(preds) == 1:  # one operand, or one value read at several ports
        ((u, keys),) = preds.items()
        if len(keys) == 1:
            return (u,)
    elif len(preds) == 2:  # two operands, each read once
        (u, ku), (v, kv) = preds.items()
        if len(ku) == 1 and len(kv) == 1:
            (pu,) = ku.values()
            (pv,) = kv.values()
            return (u, v) if (pu["port"], u) < (pv["port"], v) else (v, u)
    edges = sorted((d["port"], u) for u, keys in G._pred[n].items() for d in keys.values())
    return tuple(u for _, u in edges)


def add_node(G: nx.MultiDiGraph, n: int, attrs: dict[str, Any], ids: Sequence[int] = ()) -> None:
    """Add the new node `n` with the attributes `attrs` (the dict itself is kept) and an edge
    from each of `ids` (nodes of G), in port order: what `G.add_node` and a `G.add_edge` per
    operand do, without their generic work per call (every pass that builds a graph adds its
    nodes so, and networkx's calls were most of its time)."""
    if getattr(G, "frozen", False) or n in G._node:  # nx.is_frozen, or not a new node
        G.add_node(n, **attrs)
        for port, u in enumerate(ids):
            G.add_edge(u, n, port=port)
        return
    succ, pred = G._succ, G._pred
    succ[n] = {}
    pred[n] = mine = {}
    G._node[n] = attrs
    for port, u in enumerate(ids):
        keys = mine.get(u)
        if keys is None:
            mine[u] = succ[u][n] = {0: {"port": port}}
        else:  # the same operand again (x * x): the next free key, as networkx's
            key = len(keys)
            while key in keys:
                key += 1
            keys[key] = {"port": port}
    cache = G.__dict__.get("__networkx_cache__")
    if cache:
        cache.clear()


def copy_graph(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """What `G.copy()` makes (each node's and edge's attribute dict copied, values shared),
    written into networkx's dicts directly: its generic copy was a pass's largest cost."""
    H = nx.MultiDiGraph()
    H.graph.update(G.graph)
    H._node.update((n, dict(a)) for n, a in G._node.items())
    succ, pred = H._succ, H._pred
    for n in G._node:
        succ[n] = {}
        pred[n] = {}
    for u, nbrs in G._succ.items():
        out = succ[u]
        for v, keys in nbrs.items():
            out[v] = pred[v][u] = {k: dict(d) for k, d in keys.items()}
    return H


def freeze(g: Graph) -> Graph:
    """`g`, made unchangeable (networkx raises on any change): the passes after scheduling
    read a graph many times over, and `operands` then remembers each node's."""
    if not nx.is_frozen(g.nx):
        nx.freeze(g.nx)
        g.nx._operands = {}
    return g


def ancestors(G: nx.MultiDiGraph, nodes: Iterable[int]) -> set[int]:
    """`nodes` and every node they depend on, found in one walk: a `nx.ancestors` per node
    would walk their shared history once for each of them."""
    seen = set(nodes)
    stack = list(seen)
    while stack:
        for u in G._pred[stack.pop()]:
            if u not in seen:
                seen.add(u)
                stack.append(u)
    return seen


def topo_order(G: nx.MultiDiGraph) -> list[int]:
    """A deterministic topological order: by id when ids increase along every edge (as for
    every graph the builder makes), else networkx's lexicographical topological sort."""
    if all(not nbrs or min(nbrs) > u for u, nbrs in G._succ.items()):
        return sorted(G._node)
    return list(nx.lexicographical_topological_sort(G))


def infer_node(G: nx.MultiDiGraph, n: int, ops: Sequence[int]) -> tuple[Shape, str]:
    """Shape and dtype of non-leaf node `n` from its operands, or a ShapeError that names them."""
    nodes = G._node
    attrs = nodes[n]
    op = REGISTRY[attrs["op"]]
    shapes = [nodes[u]["shape"] for u in ops]
    dtypes = [nodes[u]["dtype"] for u in ops]
    try:
        if op.infer_graph is not None:
            shape, dtype = op.infer_graph(G, n, ops)
            return normalize_shape(shape), dtype
        shape, dtype = op.infer(shapes, dtypes, attrs["params"])
        return normalize_shape(shape), dtype
    except ShapeMismatch as e:
        args = ", ".join(
            f"{describe(G, u).split(' (')[0]} is {format_type(s, d)}"
            for u, s, d in zip(ops, shapes, dtypes, strict=True)
        )
        raise ShapeError(f"{describe(G, n)}: {e} (operands: {args})") from None


def without_gc(fn: F) -> F:
    """Run `fn` with Python's cyclic garbage collector paused.

    Passes allocate several dicts per node and free none of them until they return; with the
    collector on, its full collections rescan every live node over and over, which makes a pass
    over a 10^5-node graph quadratic. Nothing a pass allocates forms a reference cycle.

    What a pass leaves alive (a graph, a compiled module's records: a million objects for a
    20,000-node model) is long-lived, yet it would sit in the youngest generation, and the
    collector would scan all of it in each of the next two generations' collections before
    it reached the oldest (a second for that model). It goes into the oldest generation at
    once instead (`gc.freeze()` then `gc.unfreeze()` moves every object there without a
    scan), unless the program has frozen objects of its own, which unfreezing would release."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was_enabled:
                if not gc.get_freeze_count():
                    gc.freeze()
                    gc.unfreeze()
                gc.enable()

    return run  # type: ignore[return-value]
