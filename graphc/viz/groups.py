"""Collapsing a large graph: which layer or name scope each node belongs to, and the tree of
groups a drawing shows one level of at a time.

Scopes come from the names `gc.nn` gives params, `{layer}_w`, `{layer}_b`, `{layer}_g`,
`{layer}_w_ih`, ...: the layer is the param's name without its last part, and the layer names'
shared prefixes (`block3` of `block3_attn_q` and `block3_ff1`) are the scopes above them. An op
that reads params belongs to their layer; any other op to the common scope of the operand it
reads last and of the nearest op downstream that reads params (so a residual `x + attn(x)` lands
in its block, a softmax between two projections in their attention). A gradient node belongs
to the scope of the node it differentiates, under `∂`. A graph without such names is grouped by
the model line that made each node, and any view with more than `limit` items is cut into runs
of consecutive nodes, so a chain of 20,000 ops is a few dozen boxes at every level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx

from graphc.ir.dag import operands, topo_order

Path = tuple[str, ...]
ROOT = ""
BACKWARD = "∂"
_TWO_PART = ("ih", "hh")  # `{layer}_w_ih`: the suffix has two parts


def layer_of(param: str) -> str | None:
    """The layer a param name belongs to (`block3_attn_q_w` -> `block3_attn_q`), or None for
    a name with no layer part (`W1`)."""
    parts = param.split("_")
    cut = 2 if len(parts) > 2 and parts[-1] in _TWO_PART else 1
    if len(parts) <= cut or not all(parts[: len(parts) - cut]):
        return None
    return "_".join(parts[: len(parts) - cut])


def scope_paths(layers: set[str]) -> dict[str, Path]:
    """Each layer's scopes from the outside in: the prefixes of its name (whole `_` parts) that
    are a layer or that two layers share, ending with the layer itself."""
    count: dict[str, int] = {}
    for name in layers:
        parts = name.split("_")
        for k in range(1, len(parts) + 1):
            prefix = "_".join(parts[:k])
            count[prefix] = count.get(prefix, 0) + 1
    out = {}
    for name in layers:
        parts = name.split("_")
        prefixes = ("_".join(parts[:k]) for k in range(1, len(parts) + 1))
        out[name] = tuple(p for p in prefixes if p in layers or count[p] > 1)
    return out


def _common(a: Path | None, b: Path | None) -> Path | None:
    if a is None:
        return b
    if b is None:
        return a
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return a[:k]


def node_paths(G: nx.MultiDiGraph, backward_from: int | None = None) -> dict[int, Path]:
    """Each node's scope path (outermost first; () for the top level): by layer names where the
    params have them, else by model line. Backward nodes' paths start with `∂`."""
    order = topo_order(G)
    layers = {
        n: layer_of(a["name"])
        for n, a in G.nodes(data=True)
        if a["op"] == "input" and a.get("role") == "param" and a.get("name")
    }
    scopes = scope_paths({x for x in layers.values() if x})
    if len(scopes) >= 2:
        anchors = {n: scopes[x] for n, x in layers.items() if x}
        for n in order:
            got = [anchors[u] for u in operands(G, n) if u in layers and u in anchors]
            if got and G.nodes[n]["op"] not in ("input", "const"):
                path = got[0]
                for p in got[1:]:
                    path = _common(path, p)
                anchors[n] = path
    else:
        anchors = {
            n: (a.get("loc") or "?",)
            for n, a in G.nodes(data=True)
            if a["op"] not in ("input", "const")
        }
    back = backward_from if backward_from is not None else math.inf
    forward = [n for n in order if n < back]
    paths = _propagate(G, forward, anchors, {})
    grad_anchor = {
        n: paths.get(G.nodes[n]["grad_of"], ())
        for n in order
        if n >= back and isinstance(G.nodes[n].get("grad_of"), int)
    }
    paths = _propagate(G, [n for n in order if n >= back], {**anchors, **grad_anchor}, paths)
    for n in order:  # constants go with the node that reads them first
        if G.nodes[n]["op"] == "const":
            users = sorted(G.successors(n))
            paths[n] = paths.get(users[0], ()) if users else ()
    for n in order:
        if n >= back and paths[n]:
            paths[n] = tuple(BACKWARD + p for p in paths[n])
    return paths


def _propagate(
    G: nx.MultiDiGraph, nodes: Sequence[int], anchors: dict[int, Path], known: dict[int, Path]
) -> dict[int, Path]:
    """Paths of `nodes` (in topological order): a node's anchor; else the scope it shares with
    the operand computed last (up) and the nearest anchored node downstream (down); else, when
    they share none, the nearer of the two (up on a tie: an activation stays with the layer
    before it); and the top level after the last layer (down is nowhere)."""
    mine = set(nodes)
    down: dict[int, tuple[Path, int] | None] = {}
    for n in reversed(nodes):
        if n in anchors:
            down[n] = (anchors[n], 0)
            continue
        users = sorted(v for v in G.successors(n) if v in mine)
        below = down[users[0]] if users else None
        down[n] = None if below is None else (below[0], below[1] + 1)
    paths = dict(known)
    up_dist: dict[int, int] = {}
    for n in nodes:
        a = G.nodes[n]
        if n in anchors:
            paths[n], up_dist[n] = anchors[n], 0
        elif a["op"] == "input":
            paths[n] = ()
        elif a["op"] == "const":
            continue  # placed with its reader
        else:
            ops = [u for u in operands(G, n) if u in paths and G.nodes[u]["op"] != "input"]
            last = max(ops) if ops else None
            up = None if last is None else (paths[last], up_dist.get(last, 0) + 1)
            up_dist[n] = up[1] if up else 0
            below = down[n]
            if below is None:
                paths[n] = ()
            elif up is None:
                paths[n] = below[0]
            else:
                shared = _common(up[0], below[0])
                paths[n] = shared or (up[0] if up[1] <= below[1] else below[0])
    return paths


@dataclass
class Group:
    """A box of a collapsed drawing: its direct `members` and `children` (group ids), in
    topological order."""

    id: str
    label: str
    parent: str | None
    members: list[int] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    size: int = 0  # nodes inside, at any depth


@dataclass
class GroupTree:
    """The groups of a graph. Built by `group_tree` and not changed after: what is asked of it
    is remembered (`_chains`, `_inside`)."""

    groups: dict[str, Group]
    group_of: dict[int, str]  # node -> the innermost group holding it
    position: dict[int, int]  # node -> its place in the drawing order
    _chains: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _inside: dict[str, list[int]] = field(default_factory=dict, repr=False)
    memo: dict[str, dict] = field(default_factory=dict, repr=False)  # for the drawings made

    def forget(self) -> None:
        """Drop what was remembered (while the tree is being built)."""
        self._chains.clear()
        self._inside.clear()
        self.memo.clear()

    def chain(self, n: int) -> list[str]:
        """The groups holding node n, from the root in."""
        return self.chain_of_group(self.group_of[n])

    def item(self, n: int, view: str) -> str | int | None:
        """What stands for node n in the drawing of group `view`: n itself, the child group
        holding it, or None when n is outside `view`."""
        chain = self.chain(n)
        if view not in chain:
            return None
        k = chain.index(view)
        return n if k == len(chain) - 1 else chain[k + 1]

    def context(self, n: int, view: str) -> str | int:
        """What stands for node n, outside `view`, beside it: n, or the group holding n that is
        a child of the innermost group holding both."""
        chain, mine = self.chain(n), self.chain_of_group(view)
        k = 0
        while k < min(len(chain), len(mine)) and chain[k] == mine[k]:
            k += 1
        return n if k == len(chain) else chain[k]

    def chain_of_group(self, view: str) -> list[str]:
        """The groups holding group `view`, from the root in, ending with `view`."""
        if view not in self._chains:
            parent = self.groups[view].parent
            up = [] if parent is None else self.chain_of_group(parent)
            self._chains[view] = [*up, view]
        return self._chains[view]

    def nodes_in(self, gid: str) -> list[int]:
        """Every node inside group `gid`, at any depth, in drawing order."""
        if gid not in self._inside:
            out, stack = [], [gid]
            while stack:
                g = self.groups[stack.pop()]
                out.extend(g.members)
                stack.extend(g.children)
            self._inside[gid] = sorted(out, key=self.position.__getitem__)
        return self._inside[gid]

    def items(self, view: str) -> list[str | int]:
        """The items drawn in the view of group `view`, in order."""
        g = self.groups[view]
        first = {c: min(self.position[n] for n in self.nodes_in(c)) for c in g.children}
        keyed = [(self.position[n], n) for n in g.members] + [(first[c], c) for c in g.children]
        return [x for _, x in sorted(keyed, key=lambda t: t[0])]


def drawing_order(G: nx.MultiDiGraph) -> list[int]:
    """Topological order with each leaf (input, param, constant) just before its first reader,
    so a run of consecutive nodes keeps a layer's params with it."""
    order, placed = [], set()
    leaves = {n for n, a in G.nodes(data=True) if a["op"] in ("input", "const")}
    for n in topo_order(G):
        if n in leaves:
            continue
        for u in operands(G, n):
            if u in leaves and u not in placed:
                placed.add(u)
                order.append(u)
        order.append(n)
    order += [n for n in sorted(leaves) if n not in placed]
    return order


def group_tree(G: nx.MultiDiGraph, backward_from: int | None = None, limit: int = 40) -> GroupTree:
    """The groups of G (see the module's docstring), each drawn with at most `limit` items."""
    order = drawing_order(G)
    position = {n: k for k, n in enumerate(order)}
    paths = node_paths(G, backward_from)
    groups = {ROOT: Group(ROOT, G.graph.get("name", "graph"), None)}
    group_of = {}
    for n in order:
        parent = ROOT
        for k in range(len(paths[n])):
            gid = "/".join(paths[n][: k + 1])
            if gid not in groups:
                groups[gid] = Group(gid, paths[n][k], parent)
                groups[parent].children.append(gid)
            parent = gid
        groups[parent].members.append(n)
        group_of[n] = parent
    tree = GroupTree(groups, group_of, position)
    _dissolve(tree)
    _split(tree, ROOT, limit)
    tree.forget()
    for g in tree.groups.values():
        g.size = len(tree.nodes_in(g.id))
    return tree


def _dissolve(tree: GroupTree) -> None:
    """Lift the contents of groups that would not help a reader: one holding a single node,
    and one that is all its parent would show."""
    changed = True
    while changed:
        changed = False
        for gid in list(tree.groups):
            if gid == ROOT or gid not in tree.groups:
                continue
            g = tree.groups[gid]
            parent = tree.groups[g.parent]  # type: ignore[index]
            alone = not parent.members and parent.children == [gid]
            if len(g.members) + sum(len(tree.nodes_in(c)) for c in g.children) <= 1 or alone:
                k = parent.children.index(gid)
                parent.children[k : k + 1] = g.children
                parent.members += g.members
                for c in g.children:
                    tree.groups[c].parent = parent.id
                for n in g.members:
                    tree.group_of[n] = parent.id
                del tree.groups[gid]
                tree.forget()
                changed = True


def _split(tree: GroupTree, gid: str, limit: int) -> None:
    """Cut every view with more than `limit` items into runs of consecutive items."""
    g = tree.groups[gid]
    for c in list(g.children):
        _split(tree, c, limit)
    items = tree.items(gid)
    if len(items) <= limit:
        return
    # First the nodes that lie between groups, each run of them one box: the groups stay.
    k = 0
    for run in _node_runs(items):
        if 1 < len(run) < len(items):
            _wrap(tree, gid, run, f"{gid}~{k}")
            k += 1
    items = tree.items(gid)
    for c in tree.groups[gid].children:
        if "~" in c.rsplit("/", 1)[-1]:
            _split(tree, c, limit)
    if len(items) <= limit:
        return
    runs = min(limit, math.ceil(len(items) / limit))
    size = math.ceil(len(items) / runs)
    for k in range(0, len(items), size):
        cid = f"{gid}#{k // size}"
        _wrap(tree, gid, items[k : k + size], cid)
        _split(tree, cid, limit)


def _node_runs(items: list[str | int]) -> list[list[int]]:
    """The maximal runs of consecutive nodes (not groups) among `items`."""
    runs: list[list[int]] = [[]]
    for x in items:
        if isinstance(x, int):
            runs[-1].append(x)
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def _wrap(tree: GroupTree, gid: str, run: Sequence[str | int], cid: str) -> None:
    """Put the items `run` of group `gid` in a new child group `cid`, named by its first and
    last node."""
    nodes = [n for x in run for n in ([x] if isinstance(x, int) else tree.nodes_in(x))]
    first, last = min(nodes, key=tree.position.get), max(nodes, key=tree.position.get)
    g = tree.groups[gid]
    new = tree.groups[cid] = Group(cid, f"v{first} … v{last}", gid)
    at = min((g.children.index(x) for x in run if isinstance(x, str)), default=len(g.children))
    for x in run:
        if isinstance(x, int):
            g.members.remove(x)
            new.members.append(x)
            tree.group_of[x] = cid
        else:
            g.children.remove(x)
            new.children.append(x)
            tree.groups[x].parent = cid
    g.children.insert(min(at, len(g.children)), cid)
    tree.forget()
