"""A layered layout in pure Python (Sugiyama's method, kept small), so that drawing needs no
Graphviz: layers by longest path, edges longer than one layer through dummy points, the order
in each layer by barycenter sweeps (a fused loop's boxes kept side by side), and positions by
isotonic regression (pool adjacent violators) towards the neighbours' mean.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from graphc.viz.model import Drawing

CHAR_W = 6.6  # px per character of the 11 px monospace font the boxes use
LINE_H = 14.0
PAD_X, PAD_Y = 8.0, 5.0
GAP_X, GAP_Y = 22.0, 42.0
DUMMY_W = 8.0
MARGIN = 20.0
SWEEPS = 8
TRANSPOSE_MAX = 600  # boxes and edge points: above this the swaps cost more than they help


def box_size(lines: list[str]) -> tuple[float, float]:
    width = max((len(t) for t in lines), default=4) * CHAR_W + 2 * PAD_X
    return max(width, 48.0), len(lines) * LINE_H + 2 * PAD_Y


@dataclass
class Layout:
    """Where everything goes: box key -> (x, y, width, height) with (x, y) the top left; each
    data edge's points (in the drawing's edge order; None for a tie, drawn straight); each
    fused loop's outline."""

    width: float
    height: float
    boxes: dict[str, tuple[float, float, float, float]]
    edges: list[list[tuple[float, float]] | None]
    loops: dict[str, list[list[tuple[float, float]]]] = field(default_factory=dict)
    layer: dict[str, int] = field(default_factory=dict)
    crossings: int = 0  # edge crossings between layers (edges through dummy points)


def layout(d: Drawing) -> Layout:
    """Lay out `d` top to bottom: inputs above, outputs below."""
    keys = [b.key for b in d.boxes]
    size = {b.key: box_size(b.lines) for b in d.boxes}
    rank = {k: i for i, k in enumerate(keys)}
    data = [(e.src, e.dst) for e in d.edges if e.kind == "data" and e.src != e.dst]
    # Edges against the drawing order (a cycle among groups) are laid out reversed.
    links = [(s, t) if rank[s] < rank[t] else (t, s) for s, t in data]
    layer = _layers(keys, links)
    nodes, chains = _dummies(links, layer)
    order, crossings = _order(keys + nodes, layer, chains, d, rank)
    for k in nodes:
        size[k] = (DUMMY_W, 0.0)
    xs = _positions(order, chains, size)
    tops, heights = [], []
    y = MARGIN
    for row in order:
        tall = max((size[k][1] for k in row), default=0.0)
        tops.append(y)
        heights.append(tall)
        y += tall + GAP_Y
    left = min((xs[k] - size[k][0] / 2 for k in xs), default=0.0)
    shift = MARGIN - left
    boxes = {}
    for i, row in enumerate(order):
        for k in row:
            w, h = size[k]
            boxes[k] = (xs[k] + shift - w / 2, tops[i] + (heights[i] - h) / 2, w, h)
    width = max((x + w for x, _, w, _ in boxes.values()), default=0.0) + MARGIN
    height = y - GAP_Y + MARGIN if order else 2 * MARGIN
    edges = _routes(d, boxes, chains, links)
    loops = {lp.key: _outline(lp.members, boxes, layer) for lp in d.loops}
    real = {k: boxes[k] for k in keys}
    return Layout(max(width, 2 * MARGIN), height, real, edges, loops, layer, crossings)


def _layers(keys: list[str], links: list[tuple[str, str]]) -> dict[str, int]:
    """Longest path from the sources; a box that only feeds others sits just above the first
    of them (a param beside its use, not at the top)."""
    preds: dict[str, list[str]] = {k: [] for k in keys}
    succs: dict[str, list[str]] = {k: [] for k in keys}
    for s, t in links:
        preds[t].append(s)
        succs[s].append(t)
    layer: dict[str, int] = {}
    for k in keys:  # keys are in a topological order of `links`
        layer[k] = 1 + max((layer[p] for p in preds[k]), default=-1)
    for k in reversed(keys):
        if not preds[k] and succs[k]:
            layer[k] = min(layer[s] for s in succs[k]) - 1
    low = min(layer.values(), default=0)
    return {k: v - low for k, v in layer.items()}


def _dummies(
    links: list[tuple[str, str]], layer: dict[str, int]
) -> tuple[list[str], list[list[str]]]:
    """A point on every layer an edge crosses: each link becomes a chain of keys."""
    nodes, chains = [], []
    for i, (s, t) in enumerate(links):
        chain = [s]
        for j in range(layer[s] + 1, layer[t]):
            k = f"~{i}.{j}"
            layer[k] = j
            nodes.append(k)
            chain.append(k)
        chains.append([*chain, t])
    return nodes, chains


def _order(
    keys: list[str], layer: dict[str, int], chains: list[list[str]], d: Drawing, rank
) -> tuple[list[list[str]], int]:
    """Each layer's keys left to right: barycenter sweeps down and up, keeping the order with
    the fewest crossings; a fused loop's boxes stay together."""
    depth = max(layer.values(), default=-1) + 1
    rows: list[list[str]] = [[] for _ in range(depth)]
    for k in keys:
        rows[layer[k]].append(k)
    up: dict[str, list[str]] = {k: [] for k in keys}
    down: dict[str, list[str]] = {k: [] for k in keys}
    for chain in chains:
        for a, b in itertools.pairwise(chain):
            down[a].append(b)
            up[b].append(a)
    loop_of = {m: lp.key for lp in d.loops for m in lp.members}

    def sweep(rows: list[list[str]], downward: bool) -> None:
        span = range(1, depth) if downward else range(depth - 2, -1, -1)
        for i in span:
            ref = {k: p for p, k in enumerate(rows[i - 1 if downward else i + 1])}
            cur = {k: p for p, k in enumerate(rows[i])}
            near = up if downward else down
            key = {}
            for k in rows[i]:
                ps = [ref[n] for n in near[k] if n in ref]
                key[k] = sum(ps) / len(ps) if ps else float(cur[k])
            groups: dict[str, list[float]] = {}
            for k in rows[i]:
                if k in loop_of:
                    groups.setdefault(loop_of[k], []).append(key[k])
            rows[i].sort(
                key=lambda k: (
                    sum(groups[loop_of[k]]) / len(groups[loop_of[k]]) if k in loop_of else key[k],
                    loop_of.get(k, ""),
                    key[k],
                )
            )

    best, best_cross = [list(r) for r in rows], _crossings(rows, down)
    for s in range(SWEEPS if best_cross else 0):
        sweep(rows, downward=s % 2 == 0)
        c = _crossings(rows, down)
        if c < best_cross:
            best, best_cross = [list(r) for r in rows], c
            if c == 0:
                break
    if best_cross and len(keys) <= TRANSPOSE_MAX:
        best_cross = _transpose(best, up, down, loop_of, best_cross)
    return best, best_cross


def _pair_crossings(a: str, b: str, ref: dict[str, int], near: dict[str, list[str]]) -> int:
    """Crossings between the edges of a and of b (a left of b) to the layer whose positions
    are `ref`."""
    return sum(1 for x in near[a] if x in ref for y in near[b] if y in ref and ref[y] < ref[x])


def _transpose(rows, up, down, loop_of, crossings: int) -> int:
    """Swap neighbours in a layer while that removes crossings (counted with both adjacent
    layers), keeping a fused loop's boxes together; returns the crossings left."""
    improved = True
    while improved:
        improved = False
        for i, row in enumerate(rows):
            above = {k: p for p, k in enumerate(rows[i - 1])} if i else {}
            below = {k: p for p, k in enumerate(rows[i + 1])} if i + 1 < len(rows) else {}
            for j in range(len(row) - 1):
                a, b = row[j], row[j + 1]
                if loop_of.get(a, a) != loop_of.get(b, b) and (a in loop_of or b in loop_of):
                    continue
                now = _pair_crossings(a, b, above, up) + _pair_crossings(a, b, below, down)
                swapped = _pair_crossings(b, a, above, up) + _pair_crossings(b, a, below, down)
                if swapped < now:
                    row[j], row[j + 1] = b, a
                    crossings -= now - swapped
                    improved = True
    return crossings


def _crossings(rows: list[list[str]], down: dict[str, list[str]]) -> int:
    """Edge crossings between consecutive layers (inversions, counted with a Fenwick tree)."""
    total = 0
    for i in range(len(rows) - 1):
        pos = {k: p for p, k in enumerate(rows[i + 1])}
        ends = sorted(
            (p, pos[t]) for p, k in enumerate(rows[i]) for t in down.get(k, ()) if t in pos
        )
        tree = [0] * (len(rows[i + 1]) + 1)
        for seen, (_, q) in enumerate(ends):
            j, below = q + 1, 0  # how many earlier ends lie at or left of q
            while j > 0:
                below += tree[j]
                j -= j & -j
            total += seen - below
            j = q + 1
            while j < len(tree):
                tree[j] += 1
                j += j & -j
    return total


def _positions(
    rows: list[list[str]], chains: list[list[str]], size: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """x of each key's centre: each layer in its order, at least GAP_X apart, as close as
    possible (least squares) to the mean x of its neighbours in the layer swept from."""
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    for chain in chains:
        for a, b in itertools.pairwise(chain):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
    x: dict[str, float] = {}
    for row in rows:
        at = 0.0
        for k in row:
            x[k] = at + size[k][0] / 2
            at += size[k][0] + GAP_X
        mid = at / 2
        for k in row:
            x[k] -= mid
    for s in range(2 * SWEEPS):
        span = range(len(rows)) if s % 2 == 0 else range(len(rows) - 1, -1, -1)
        last = s == 2 * SWEEPS - 1
        for i in span:
            row = rows[i]
            want = []
            for k in row:
                near = (
                    (up.get(k, []) + down.get(k, []))
                    if last
                    else (up.get(k, []) if s % 2 == 0 else down.get(k, []))
                )
                want.append(sum(x[n] for n in near) / len(near) if near else x[k])
            for k, v in zip(row, _fit(row, want, size), strict=True):
                x[k] = v
    return x


def _fit(row: list[str], want: list[float], size: dict[str, tuple[float, float]]) -> list[float]:
    """The x's nearest `want` (least squares) that keep `row`'s order and gaps: with offsets
    o_i, x_i - o_i must not decrease, an isotonic regression solved by pooling adjacent
    violators."""
    offsets, at = [], 0.0
    for i, k in enumerate(row):
        if i:
            at += (size[row[i - 1]][0] + size[k][0]) / 2 + GAP_X
        offsets.append(at)
    blocks: list[list[float]] = []  # [mean, count]
    for w, o in zip(want, offsets, strict=True):
        blocks.append([w - o, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, c2 = blocks.pop()
            m1, c1 = blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    out = []
    for mean, count in blocks:
        out += [mean] * int(count)
    return [c + o for c, o in zip(out, offsets, strict=True)]


def _routes(d: Drawing, boxes, chains: list[list[str]], links) -> list:
    """Points of each data edge: from the bottom of its source, through its dummy points, to the
    top of its target (spread by operand number so operand order reads left to right)."""
    by_link: dict[tuple[str, str], list[list[str]]] = {}
    for (s, t), chain in zip(links, chains, strict=True):
        by_link.setdefault((s, t), []).append(chain)
    out: list = []
    for e in d.edges:
        if e.kind != "data" or e.src == e.dst:
            out.append(None)
            continue
        flipped = (e.src, e.dst) not in by_link
        chain = by_link[(e.dst, e.src) if flipped else (e.src, e.dst)].pop(0)
        if flipped:
            chain = chain[::-1]
        pts = []
        for k in chain:
            x, y, w, h = boxes[k]
            pts.append((x + w / 2, y + h / 2))
        sx, sy, sw, sh = boxes[e.src]
        tx, ty, tw, th = boxes[e.dst]
        nudge = 0.0
        if e.ports:
            port = int(e.label.split(",")[0])
            nudge = (port - (e.ports - 1) / 2) * min(24.0, tw / (e.ports + 1))
        below = ty > sy
        pts[0] = (sx + sw / 2, sy + sh if below else sy)
        pts[-1] = (tx + tw / 2 + nudge, ty if below else ty + th)
        out.append(pts)
    return out


def _outline(members: list[str], boxes, layer: dict[str, int]) -> list[list[tuple[float, float]]]:
    """A fused loop's outline: around its boxes layer by layer, one staircase polygon per run
    of consecutive layers (a layer without members between two runs would put other boxes
    inside one outline)."""
    pad = 7.0
    rows: dict[int, list[float]] = {}
    for k in members:
        x, y, w, h = boxes[k]
        r = rows.setdefault(layer[k], [x, y, x + w, y + h])
        r[0], r[1], r[2], r[3] = min(r[0], x), min(r[1], y), max(r[2], x + w), max(r[3], y + h)
    runs: list[list[int]] = []
    for i in sorted(rows):
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    shapes = []
    for run in runs:
        bands = [[r[0] - pad, r[1] - pad, r[2] + pad, r[3] + pad] for r in (rows[i] for i in run)]
        for a, b in itertools.pairwise(bands):  # meet halfway between layers
            mid = (a[3] + b[1]) / 2
            a[3], b[1] = mid, mid
        left = [p for b in bands for p in ((b[0], b[1]), (b[0], b[3]))]
        right = [p for b in reversed(bands) for p in ((b[2], b[3]), (b[2], b[1]))]
        shapes.append(left + right)
    return shapes
