"""A laid-out drawing as a PNG through matplotlib (the `plot` extra), for when Graphviz is not
installed: the same boxes, colours, edges and loop outlines as the built-in SVG."""

from __future__ import annotations

from graphc.errors import DrawError
from graphc.viz.layout import CHAR_W, LINE_H, PAD_X, PAD_Y, Layout
from graphc.viz.model import Drawing

COLORS = {
    "forward": ("#eef4fb", "#3a6ea5"),
    "backward": ("#fdf0e6", "#c8641e"),
    "data": ("#e7f4e8", "#2e7d32"),
    "param": ("#fff6d5", "#a97800"),
    "const": ("#f4f4f4", "#8a8a8a"),
}
DPI = 100
MAX_PIXELS = 16000  # per side; larger drawings are scaled down to fit


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def to_png(d: Drawing, lay: Layout, path: str) -> None:
    """Write drawing `d`, laid out as `lay`, to the PNG file `path`."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyBboxPatch, PathPatch, Polygon
        from matplotlib.path import Path
    except ImportError:
        raise DrawError(
            "PNG output needs matplotlib (pip install 'graphc[plot]') or Graphviz's dot on "
            "PATH (e.g. apt-get install graphviz); SVG and DOT output need neither"
        ) from None
    scale = min(1.0, MAX_PIXELS / max(lay.width, lay.height, 1.0))
    fig = plt.figure(figsize=(lay.width * scale / DPI, lay.height * scale / DPI), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, lay.width)
    ax.set_ylim(lay.height, 0)
    ax.axis("off")
    # points at DPI whose monospace characters are CHAR_W px wide (0.6 em), as the layout assumed
    font = CHAR_W / 0.62 * 72 / DPI * scale
    for lp in d.loops:
        for pts in lay.loops[lp.key]:
            ax.add_patch(Polygon(pts, closed=True, facecolor="#7a5cc812", edgecolor="#7a5cc8",
                                 linestyle="--", linewidth=0.8 * scale))  # fmt: skip
        x0, y0 = lay.loops[lp.key][0][0]
        ax.text(x0 + 3, y0 - 2, lp.label, fontsize=font * 0.8, color="#5b3fa8",
                family="monospace")  # fmt: skip
    section = {b.key: b.section for b in d.boxes}
    for e, pts in zip(d.edges, lay.edges, strict=True):
        if e.kind == "tie":
            (ax_, ay, aw, ah), (bx, by, bw, bh) = lay.boxes[e.src], lay.boxes[e.dst]
            ax.plot([ax_ + aw, bx + bw], [ay + ah / 2, by + bh / 2], color="#c8641e",
                    linestyle="--", linewidth=0.6 * scale, alpha=0.4)  # fmt: skip
            continue
        if pts is None:
            continue
        verts, codes = [pts[0]], [Path.MOVETO]
        for (px, py), (x, y) in zip(pts, pts[1:], strict=False):
            dy = (y - py) / 2
            verts += [(px, py + dy), (x, y - dy), (x, y)]
            codes += [Path.CURVE4] * 3
        color = "#c8641e" if section[e.src] == "backward" else "#59636e"
        ax.add_patch(PathPatch(Path(verts, codes), fill=False, edgecolor=color,
                               linewidth=1.0 * scale))  # fmt: skip
        ex, ey = pts[-1]
        ax.plot([ex], [ey], marker="v", color=color, markersize=4 * scale)
        if e.label:
            ax.text(ex + 3, ey - 5, e.label, fontsize=font * 0.8, color="#59636e")
    for b in d.boxes:
        x, y, w, h = lay.boxes[b.key]
        fill, edge = COLORS.get(b.kind, COLORS[b.section])
        ax.add_patch(
            FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=4",
                           facecolor=fill, edgecolor=edge, alpha=0.45 if b.context else 1.0,
                           linewidth=(2.5 if b.outputs else 1.1) * scale,
                           linestyle="--" if b.kind == "const" else "-")
        )  # fmt: skip
        for i, line in enumerate(b.lines):
            ax.text(x + PAD_X, y + PAD_Y + LINE_H * (i + 1) - 3.5, line, fontsize=font,
                    family="monospace", weight="bold" if i == 0 else "normal",
                    color="#1d2630", alpha=0.45 if b.context else 1.0)  # fmt: skip
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
