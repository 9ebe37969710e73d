"""What a drawing shows, before any layout: boxes with their text, edges with their operand
order, fused loops, and collapsed groups. Built from the same graph and program records the
code is generated from (DESIGN.md §8), so the picture is what runs.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from graphc.ir.dag import operands
from graphc.ir.printer import format_params
from graphc.ir.shapes import format_type
from graphc.viz.groups import GroupTree

# Ops whose operands may be swapped: their edges carry no operand number.
COMMUTATIVE = frozenset({"add", "mul", "maximum", "minimum", "equal", "not_equal"})
MAX_LABEL = 44  # characters of one line of a box
FANOUT = 8  # in a collapsed view, a box feeding more boxes than this gets a note, not edges


@dataclass
class Box:
    """One box of the drawing: a node of the graph, or a group of them."""

    key: str  # "n12" for node 12, "grp:<group id>" for a group
    kind: str  # input | param | const | op | group
    section: str  # forward | backward
    lines: list[str]  # the text, first line the title
    tooltip: str
    nodes: tuple[int, ...]  # the graph nodes it stands for
    outputs: tuple[str, ...] = ()  # output names it computes
    grad_of: int | None = None  # for a gradient node: the node it differentiates
    context: bool = False  # drawn beside a group's view, not inside it
    values: dict[str, str] = field(default_factory=dict)  # "value"/"adjoint" -> full text


@dataclass
class Edge:
    src: str
    dst: str
    label: str = ""  # the operand number, where operand order matters; "×k" for k edges
    kind: str = "data"  # data | tie (a gradient node to the node it differentiates)
    ports: int = 0  # the target's number of operands, when `label` is an operand number


@dataclass
class Loop:
    """A fused step: its boxes are computed in one loop, by one row of the program."""

    key: str
    label: str
    members: list[str]
    section: str
    tooltip: str = ""


@dataclass(frozen=True)
class FusedStep:
    """A step of a program computing the nodes `nodes` in one loop (one row of the generated
    program, its comment listing a statement per node): `label` names the step and the kernel
    it calls, `tooltip` says more (the other steps calling the same kernel)."""

    nodes: tuple[int, ...]
    label: str
    tooltip: str = ""


@dataclass
class Drawing:
    title: str
    boxes: list[Box]
    edges: list[Edge]
    loops: list[Loop] = field(default_factory=list)
    view: str = ""  # the group whose inside this is ("" for the whole graph)

    def box(self, key: str) -> Box:
        return next(b for b in self.boxes if b.key == key)


@dataclass(frozen=True)
class NodeValues:
    """What `--values` shows on a node: its value, and d(of)/d(node) where there is one."""

    value: np.ndarray | None = None
    adjoint: np.ndarray | None = None


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def format_value(a: np.ndarray) -> str:
    """A value as a box shows it: a few significant digits, or a summary for a large array."""
    a = np.asarray(a)
    if a.size <= 6:
        if a.dtype.kind == "b" or a.dtype.kind in "iu":
            return np.array2string(a, separator=", ").replace("\n", "")
        text = np.array2string(
            a, separator=", ", formatter={"float_kind": lambda v: f"{v:.4g}"}
        ).replace("\n", "")
        return " ".join(text.split())
    shape = "×".join(map(str, a.shape))
    if a.dtype.kind not in "fiu":
        return f"[{shape}] {int(np.count_nonzero(a))} true"
    return f"[{shape}] {float(np.min(a)):.3g} … {float(np.max(a)):.3g}"


def value_lines(prefix: str, a: np.ndarray) -> list[str]:
    """`prefix` and the value, on as many lines as a small matrix has rows (each at most
    MAX_LABEL characters)."""
    text = format_value(a)
    if len(prefix) + len(text) <= MAX_LABEL or np.asarray(a).ndim < 2 or np.asarray(a).size > 6:
        return [_short(prefix + text)]
    rows = text.replace("], [", "],\n[").split("\n")
    pad = " " * (len(prefix) + 1)
    return [_short(prefix + rows[0])] + [_short(pad + r) for r in rows[1:]]


def full_value(a: np.ndarray) -> str:
    """A value in full (every digit), as the tooltip shows it; up to 64 elements."""
    a = np.asarray(a)
    if a.size > 64:
        return f"{format_value(a)} (mean {float(np.mean(a)):.17g})"
    return " ".join(np.array2string(a, separator=", ", precision=17, threshold=64).split())


def _const_text(value: np.ndarray) -> str:
    v = np.asarray(value)
    return format_value(v) if v.size <= 4 else f"[{v.size} values]"


def node_box(
    G: nx.MultiDiGraph,
    n: int,
    backward_from: float,
    outputs: Mapping[int, Sequence[str]],
    of: str | None,
    vals: NodeValues | None,
) -> Box:
    """The box of node n: op, name, type, model line, and values when given."""
    a = G.nodes[n]
    op, typ, loc = a["op"], format_type(a["shape"], a["dtype"]), a.get("loc") or "?"
    grad_of = a.get("grad_of") if n >= backward_from else None
    if op == "input":
        kind, title, sub = a.get("role", "data"), a["name"], f"{a.get('role', 'data')} · {typ}"
    elif op == "const":
        kind, title, sub = "const", f"const {_const_text(a['value'])}", f"v{n} · {typ}"
    else:
        params = format_params(op, a.get("params", {}))
        kind, title = "op", op + (f"[{params}]" if params else "")
        name = f"v{n}"
        if isinstance(grad_of, int):
            name = f"g{grad_of} = ∂{of or 'out'}/∂v{grad_of}"
        sub = f"{name} · {typ}"
    lines = [_short(title), _short(sub), _short(loc)]
    outs = tuple(outputs.get(n, ()))
    if outs:
        lines.append(_short("→ " + ", ".join(outs)))
    values: dict[str, str] = {}
    if vals is not None:
        if vals.value is not None:
            lines += value_lines("= ", vals.value)
            values["value"] = full_value(vals.value)
        if vals.adjoint is not None:
            lines += value_lines("δ = ", vals.adjoint)
            values["adjoint"] = full_value(vals.adjoint)
    tip = [f"v{n}: {op} {typ} at {loc}"]
    if op not in ("input", "const"):
        tip.append("operands: " + (", ".join(f"v{u}" for u in operands(G, n)) or "none"))
    if isinstance(grad_of, int):
        tip.append(f"gradient of v{grad_of}")
    tip += [f"{k}: {v}" for k, v in values.items()]
    section = "backward" if n >= backward_from else "forward"
    return Box(f"n{n}", kind, section, lines, "\n".join(tip), (n,), outs, grad_of, False, values)


def group_box(G: nx.MultiDiGraph, tree: GroupTree, gid: str, backward_from: float) -> Box:
    """The box of a collapsed group: its name, size and commonest ops (a fresh copy of the one
    made the first time it is asked for)."""
    memo = tree.memo.setdefault("group_box", {})
    if gid not in memo:
        memo[gid] = _group_box(G, tree, gid, backward_from)
    box = memo[gid]
    return dataclasses.replace(box, lines=list(box.lines), values=dict(box.values))


def _group_box(G: nx.MultiDiGraph, tree: GroupTree, gid: str, backward_from: float) -> Box:
    g = tree.groups[gid]
    nodes = tree.nodes_in(gid)
    ops = Counter(G.nodes[n]["op"] for n in nodes if G.nodes[n]["op"] not in ("input", "const"))
    common = ", ".join(f"{op}×{k}" for op, k in ops.most_common(3))
    params = sum(1 for n in nodes if G.nodes[n].get("role") == "param")
    backward = sum(1 for n in nodes if n >= backward_from)
    section = "backward" if backward * 2 > len(nodes) else "forward"
    counts = f"{len(nodes)} nodes" + (f", {params} params" if params else "")
    lines = [_short(g.label), _short(counts), _short(common or "leaves")]
    locs = sorted({G.nodes[n].get("loc") or "?" for n in nodes})
    tip = f"{g.label}: {len(nodes)} nodes (v{min(nodes)} … v{max(nodes)}); lines " + ", ".join(
        locs[:6]
    )
    return Box(f"grp:{gid}", "group", section, lines, tip + ("…" if len(locs) > 6 else ""),
               tuple(nodes))  # fmt: skip


def build(
    G: nx.MultiDiGraph,
    *,
    title: str,
    backward_from: int | None = None,
    of: str | None = None,
    fused: Sequence[FusedStep] = (),
    values: Mapping[int, NodeValues] | None = None,
    tree: GroupTree | None = None,
    view: str = "",
) -> Drawing:
    """The drawing of G: every node, or with `tree` the items of group `view` (and, faded,
    what they connect to outside it). `fused`: the fused steps to outline; `values`: what
    `--values` shows per node."""
    back = float("inf") if backward_from is None else backward_from
    outs: dict[int, list[str]] = {}
    for name, n in G.graph.get("outputs", {}).items():
        outs.setdefault(n, []).append(name)
    values = values or {}

    def item(n: int) -> str | int | None:
        return n if tree is None else tree.item(n, view)

    boxes: dict[str, Box] = {}
    order = sorted(G.nodes) if tree is None else tree.items(view)
    for x in order:
        if isinstance(x, int):
            boxes[f"n{x}"] = node_box(G, x, back, outs, of, values.get(x))
        else:
            boxes[f"grp:{x}"] = group_box(G, tree, x, back)  # type: ignore[arg-type]
    mine = G.nodes if tree is None else tree.nodes_in(view)

    def key(x: str | int) -> str:
        return f"n{x}" if isinstance(x, int) else f"grp:{x}"

    counted: Counter[tuple[str, str, str, int]] = Counter()
    context: dict[str, Box] = {}  # what the view's items read from outside it, then what
    after: dict[str, Box] = {}  # reads them: drawn above and below the view's items
    for v in mine:
        iv = item(v)
        for u in operands(G, v) if iv is not None else ():
            iu = item(u)
            if iu == iv or (tree is not None and G.nodes[u]["op"] == "const" and iu != u):
                continue  # a constant inside a group is drawn there, not wired to every reader
            if iu is None:  # from outside the view: draw what it comes from, faded
                iu = tree.context(u, view)  # type: ignore[union-attr]
                _add_context(context, G, tree, iu, back, outs, of)
            label, ports = "", 0
            if isinstance(iv, int) and isinstance(iu, int) and G.nodes[v]["op"] not in COMMUTATIVE:
                args = operands(G, v)
                if len(args) > 1:
                    label = ",".join(str(p) for p, w in enumerate(args) if w == u)
                    ports = len(args)
            counted[(key(iu), key(iv), label, ports)] += 1
        if iv is not None and tree is not None:
            for w in G.successors(v):
                if item(w) is None:
                    iw = tree.context(w, view)
                    _add_context(after, G, tree, iw, back, outs, of)
                    counted[(key(iv), key(iw), "", 0)] += 1
    if tree is not None:  # a box feeding many others (a shared weight): a note, no edges
        fan: Counter[str] = Counter(s for s, _, _, _ in counted)
        for src, k in fan.items():
            if k > FANOUT:
                holder = boxes.get(src) or context.get(src) or after[src]
                holder.lines.append(_short(f"→ {k} boxes here (edges not drawn)"))
                counted = Counter({e: c for e, c in counted.items() if e[0] != src})
    edges = []
    for (s, d, label, ports), k in counted.items():
        if label:  # one edge per operand number
            edges += [Edge(s, d, label, "data", ports)]
        else:
            edges.append(Edge(s, d, f"×{k}" if k > 1 and tree is not None else ""))
            if k > 1 and tree is None:
                edges += [Edge(s, d) for _ in range(k - 1)]
    after = {k: b for k, b in after.items() if k not in context}
    all_boxes = {**context, **boxes, **after}
    for b in boxes.values():  # a gradient node is tied to the node it differentiates
        if b.grad_of is not None and f"n{b.grad_of}" in all_boxes:
            edges.append(Edge(b.key, f"n{b.grad_of}", "", "tie"))
    loop_of: dict[int, int] = {}
    for k, step in enumerate(fused):
        loop_of.update(dict.fromkeys(step.nodes, k))
    drawn: dict[int, list[str]] = {}
    for b in boxes.values():
        if b.kind != "group" and b.nodes[0] in loop_of:
            drawn.setdefault(loop_of[b.nodes[0]], []).append(b.key)
    loops = []
    for k, keys in sorted(drawn.items()):
        if len(keys) > 1:
            step = fused[k]
            section = "backward" if all(n >= back for n in step.nodes) else "forward"
            loops.append(Loop(f"loop{k}", step.label, keys, section, step.tooltip))
    return Drawing(title, list(all_boxes.values()), edges, loops, view)


def _add_context(context, G, tree, x, back, outs, of) -> None:
    key = f"n{x}" if isinstance(x, int) else f"grp:{x}"
    if key not in context:
        box = (
            node_box(G, x, back, outs, of, None)
            if isinstance(x, int)
            else group_box(G, tree, x, back)
        )
        box.context = True
        context[key] = box
