"""A loop with its steps on axis 0 again: for the passes that cut a loop's arrays into segments
of steps (passes/scan_remat.py), a scan node reading or stacking its steps on an inner axis
(`xs_axes`, `ys_axes`: ops/scan.py) is rewritten to read time-major copies of those operands
(transposes moving the steps' axis first) and to stack those results time-major, each read
through a transpose moving the steps back where they were. The values are the same; only the
copies cost memory, as they did before loops could read along an inner axis.
"""

from __future__ import annotations

from graphc.ir.graph import Graph, Value, operands
from graphc.ops.scan import xs_axis, ys_axis


def _moved(rank: int, src: int, dst: int) -> tuple[int, ...]:
    """The perm of np.moveaxis(x, src, dst) for an x of `rank` axes."""
    rest = [k for k in range(rank) if k != src]
    rest.insert(dst, src)
    return tuple(rest)


def time_major(h: Graph, n: int) -> None:
    """Scan node `n` of `h` (changed in place) with every step on axis 0."""
    G = h.nx
    p = G._node[n]["params"]
    if not any(p.get("xs_axes", ())) and not any(p.get("ys_axes", ())):
        return
    nc, nxs = p["n_carry"], p["n_xs"]
    args = operands(G, n)
    with h.at(G._node[n].get("loc")):
        for k in range(nxs):
            a = xs_axis(p, k)
            if not a:
                continue
            u, port = args[nc + k], nc + k
            rank = len(G._node[u]["shape"])
            front = h.add("transpose", [Value(h, u)], {"perm": _moved(rank, a, 0)})
            (key,) = [e for e, d in G[u][n].items() if d["port"] == port]
            G.remove_edge(u, n, key)
            G.add_edge(front.id, n, port=port)
        G._node[n]["params"] = dict(p, xs_axes=(), ys_axes=())
        for o in [v for v in list(G.successors(n)) if G._node[v]["op"] == "scan_out"]:
            a = ys_axis(p, G._node[o]["params"]["index"])
            if not a:
                continue
            shape = G._node[o]["shape"]
            G._node[o]["shape"] = tuple(shape[k] for k in _moved(len(shape), a, 0))
            readers = list(G.out_edges(o, keys=True, data=True))
            back = h.add("transpose", [Value(h, o)], {"perm": _moved(len(shape), 0, a)})
            for _, v, key, d in readers:
                G.remove_edge(o, v, key)
                G.add_edge(back.id, v, port=d["port"])
            for name, m in list(G.graph["outputs"].items()):
                if m == o:
                    G.graph["outputs"][name] = back.id
