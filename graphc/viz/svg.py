"""A laid-out drawing as SVG text: boxes styled by kind and section, edges with their operand
numbers, dashed ties from each gradient node to the node it differentiates, fused loops
outlined. Every box is a `<g class="node">` with `data-key` and `data-nodes` (the graph node
ids it stands for), which tests and the report's script read."""

from __future__ import annotations

from html import escape

from graphc.viz.layout import LINE_H, PAD_X, PAD_Y, Layout
from graphc.viz.model import Drawing

STYLE = """
.gc-drawing { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: 11px; }
.gc-drawing .node rect { stroke-width: 1.2; }
.gc-drawing .node text { fill: #1d2630; white-space: pre; }
.gc-drawing .node .t0 { font-weight: bold; }
.gc-drawing .node .loc { fill: #5a6570; }
.gc-drawing .node .val { fill: #0b5394; }
.gc-drawing .node .adj { fill: #a8470f; }
.gc-drawing .forward rect.body { fill: #eef4fb; stroke: #3a6ea5; }
.gc-drawing .backward rect.body { fill: #fdf0e6; stroke: #c8641e; }
.gc-drawing .kind-data rect.body { fill: #e7f4e8; stroke: #2e7d32; }
.gc-drawing .kind-param rect.body { fill: #fff6d5; stroke: #a97800; }
.gc-drawing .kind-const rect.body { fill: #f4f4f4; stroke: #8a8a8a; stroke-dasharray: 3 2; }
.gc-drawing .kind-group rect.body { stroke-width: 1.6; }
.gc-drawing .kind-group rect.stack { fill: #fff; stroke: #9aa4ae; }
.gc-drawing .output rect.body { stroke-width: 3; }
.gc-drawing .context { opacity: 0.45; }
.gc-drawing .edge { fill: none; stroke: #59636e; stroke-width: 1.1; }
.gc-drawing .edge.from-backward { stroke: #c8641e; }
.gc-drawing .edge.tie { stroke: #c8641e; stroke-dasharray: 4 3; stroke-width: 0.8; opacity: 0.4; }
.gc-drawing .port { fill: #59636e; font-size: 9px; }
.gc-drawing .loop polygon { fill: #7a5cc8; fill-opacity: 0.07; stroke: #7a5cc8;
  stroke-dasharray: 5 3; }
.gc-drawing .loop text { fill: #5b3fa8; font-size: 9px; }
"""


def _path(points: list[tuple[float, float]]) -> str:
    """A smooth path through `points`: straight when two, else a curve with vertical
    tangents at each point (the edges of a layered drawing run up and down)."""
    (x0, y0), *rest = points
    out = [f"M{x0:.0f},{y0:.0f}"]
    px, py = x0, y0
    for x, y in rest:
        dy = (y - py) / 2
        out.append(f"C{px:.0f},{py + dy:.0f} {x:.0f},{y - dy:.0f} {x:.0f},{y:.0f}")
        px, py = x, y
    return " ".join(out)


def _tie(a: tuple, b: tuple) -> str:
    """A dashed curve between two boxes' sides, bowing out to the side."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    start = (ax + aw, ay + ah / 2) if ax + aw / 2 <= bx + bw / 2 else (ax, ay + ah / 2)
    end = (bx + bw, by + bh / 2) if ax + aw / 2 <= bx + bw / 2 else (bx, by + bh / 2)
    if abs(start[0] - end[0]) < 1:  # one above the other: bow out to the right
        start, end = (ax + aw, ay + ah / 2), (bx + bw, by + bh / 2)
    bow = 40.0 if start[0] >= ax + aw - 1 else -40.0
    c1 = (start[0] + bow, start[1])
    c2 = (end[0] + bow, end[1])
    return (
        f"M{start[0]:.1f},{start[1]:.1f} C{c1[0]:.1f},{c1[1]:.1f} "
        f"{c2[0]:.1f},{c2[1]:.1f} {end[0]:.1f},{end[1]:.1f}"
    )


def to_svg(
    d: Drawing, lay: Layout, id_prefix: str = "gc", standalone: bool = True, style: bool = True
) -> str:
    """SVG text of drawing `d` laid out as `lay`. `id_prefix` keeps element ids apart when
    several drawings share one page; `standalone` adds the XML declaration; without `style`
    the page holding the drawing styles it (with STYLE)."""
    w, h = lay.width, lay.height
    out = []
    if standalone:
        out.append('<?xml version="1.0" encoding="UTF-8"?>')
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gc-drawing" width="{w:.0f}" '
        f'height="{h:.0f}" viewBox="0 0 {w:.1f} {h:.1f}" data-view="{escape(d.view)}">'
    )
    out.append(f"<title>{escape(d.title)}</title>")
    if style:
        out.append(f"<style>{STYLE}</style>")
    out.append(
        f'<defs><marker id="{id_prefix}-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#59636e"/></marker></defs>'
    )
    out.append('<g class="loops">')
    for lp in d.loops:
        shapes = lay.loops[lp.key]
        out.append(
            f'<g class="loop {lp.section}" data-loop="{lp.key}" '
            f'data-members="{" ".join(lp.members)}">'
            f"<title>{escape(lp.tooltip or lp.label)}</title>"
        )
        for pts in shapes:
            out.append('<polygon points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
        x0, y0 = shapes[0][0]
        out.append(f'<text x="{x0 + 3:.1f}" y="{y0 - 2:.1f}">{escape(lp.label)}</text></g>')
    out.append('</g><g class="edges">')
    section = {b.key: b.section for b in d.boxes}
    for e, pts in zip(d.edges, lay.edges, strict=True):
        attrs = f'data-src="{escape(e.src)}" data-dst="{escape(e.dst)}"'
        if e.kind == "tie":
            path = _tie(lay.boxes[e.src], lay.boxes[e.dst])
            out.append(f'<path class="edge tie" {attrs} d="{path}"/>')
            continue
        if pts is None:
            continue
        cls = "edge data" + (" from-backward" if section[e.src] == "backward" else "")
        out.append(
            f'<path class="{cls}" {attrs} d="{_path(pts)}" marker-end="url(#{id_prefix}-arrow)"/>'
        )
        if e.label:
            x1, y1 = pts[-1]
            left = e.ports and int(e.label.split(",")[0]) < (e.ports - 1) / 2
            lx, ly = x1 + (-3 - 5.4 * len(e.label) if left else 3), y1 - 5
            out.append(f'<text class="port" x="{lx:.1f}" y="{ly:.1f}">{escape(e.label)}</text>')
    out.append('</g><g class="nodes">')
    for b in d.boxes:
        x, y, bw, bh = lay.boxes[b.key]
        cls = ["node", f"kind-{b.kind}", b.section]
        if b.outputs:
            cls.append("output")
        if b.context:
            cls.append("context")
        extra = f' data-grad-of="n{b.grad_of}"' if b.grad_of is not None else ""
        # a group names its size, not its nodes (which the tree's data name once)
        nodes = f'data-size="{len(b.nodes)}"' if b.kind == "group" else f'data-nodes="{b.nodes[0]}"'
        out.append(f'<g class="{" ".join(cls)}" data-key="{escape(b.key)}" {nodes}{extra}>')
        out.append(f"<title>{escape(b.tooltip)}</title>")
        if b.kind == "group":
            out.append(
                f'<rect class="stack" x="{x + 4:.1f}" y="{y + 4:.1f}" width="{bw:.1f}" '
                f'height="{bh:.1f}" rx="4"/>'
            )
        rx = bh / 2 if b.kind == "data" else 4
        out.append(
            f'<rect class="body" x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{bh:.1f}" '
            f'rx="{min(rx, 12):.1f}"/>'
        )
        spans = []  # no text between the spans: preserved, it would be drawn at the origin
        for i, line in enumerate(b.lines):
            cls_line = f"t{i}"
            if i == 2 and b.kind != "group":
                cls_line += " loc"
            if line.startswith("= "):
                cls_line += " val"
            elif line.startswith("δ = "):
                cls_line += " adj"
            ty = y + PAD_Y + LINE_H * (i + 1) - 3.5
            spans.append(
                f'<tspan class="{cls_line}" x="{x + PAD_X:.1f}" y="{ty:.1f}">{escape(line)}</tspan>'
            )
        out.append('<text xml:space="preserve">' + "".join(spans) + "</text>")
        out.append("</g>")
    out.append("</g></svg>")
    return "\n".join(out)
