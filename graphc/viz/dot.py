"""A drawing as Graphviz DOT text, and Graphviz's `dot` (when it is on PATH) to lay it out as
SVG or PNG. Boxes keep their keys as element ids and their kind and section as classes, as
the built-in SVG does."""

from __future__ import annotations

import shutil
import subprocess

from graphc.errors import DrawError
from graphc.viz.model import Box, Drawing

FILL = {"forward": ("#eef4fb", "#3a6ea5"), "backward": ("#fdf0e6", "#c8641e")}
KIND = {
    "data": ("#e7f4e8", "#2e7d32"),
    "param": ("#fff6d5", "#a97800"),
    "const": ("#f4f4f4", "#8a8a8a"),
}
TIMEOUT = 120.0  # seconds for one run of dot


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(lines: list[str]) -> str:
    """Left-justified lines (Graphviz's `\\l`)."""
    body = "".join(t.replace("\\", "\\\\").replace('"', '\\"') + "\\l" for t in lines)
    return f'"{body}"'


def _node(b: Box) -> str:
    fill, color = KIND.get(b.kind, FILL[b.section])
    style = ["filled", "rounded"]
    if b.kind == "const":
        style.append("dashed")
    attrs = {
        "id": _quote(b.key),
        "class": _quote(f"kind-{b.kind} {b.section}" + (" output" if b.outputs else "")),
        "label": _label(b.lines),
        "tooltip": _quote(b.tooltip),
        "fillcolor": _quote(fill),
        "color": _quote(color),
        "style": _quote(",".join(style)),
        "penwidth": "2.5" if b.outputs else ("1.6" if b.kind == "group" else "1"),
    }
    if b.kind == "group":
        attrs["peripheries"] = "2"
    if b.context:
        attrs["fontcolor"] = '"#8a939c"'
        attrs["color"] = '"#b8c0c8"'
    return f"  {_quote(b.key)} [" + ", ".join(f"{k}={v}" for k, v in attrs.items()) + "];"


def to_dot(d: Drawing) -> str:
    """DOT text of `d`: top to bottom, fused loops as dashed clusters, gradient nodes tied by
    dashed edges that do not constrain the layout."""
    out = [
        f"digraph {_quote(d.title)} {{",
        "  rankdir=TB; nodesep=0.25; ranksep=0.45;",
        f"  label={_quote(d.title)}; labelloc=t; fontname=monospace; fontsize=12;",
        '  node [shape=box, fontname="DejaVu Sans Mono", fontsize=10, margin="0.1,0.05"];',
        '  edge [color="#59636e", arrowsize=0.6, fontname="DejaVu Sans Mono", fontsize=8];',
    ]
    in_loop = {m for lp in d.loops for m in lp.members}
    for k, lp in enumerate(d.loops):
        out.append(f"  subgraph cluster_{k} {{")
        out.append(f'    id={_quote(lp.key)}; label={_quote(lp.label)}; style="dashed,rounded";')
        if lp.tooltip:
            out.append(f"    tooltip={_quote(lp.tooltip)};")
        out.append('    color="#7a5cc8"; fontcolor="#5b3fa8"; fontsize=9;')
        out += ["  " + _node(d.box(m)) for m in lp.members]
        out.append("  }")
    out += [_node(b) for b in d.boxes if b.key not in in_loop]
    section = {b.key: b.section for b in d.boxes}
    for e in d.edges:
        attrs = []
        if e.kind == "tie":
            attrs += ["style=dashed", "constraint=false", "arrowhead=none", 'color="#c8641e80"']
        elif section[e.src] == "backward":
            attrs.append('color="#c8641e"')
        if e.label:
            attrs.append(f"headlabel={_quote(e.label)}" if e.ports else f"label={_quote(e.label)}")
        out.append(f"  {_quote(e.src)} -> {_quote(e.dst)} [{', '.join(attrs)}];")
    out.append("}")
    return "\n".join(out)


def dot_available() -> bool:
    return shutil.which("dot") is not None


def run_dot(text: str, fmt: str) -> bytes:
    """Graphviz's layout of DOT `text` as `fmt` ("svg" or "png")."""
    exe = shutil.which("dot")
    if exe is None:
        raise DrawError(
            "Graphviz's dot is not on PATH; install Graphviz (e.g. apt-get install graphviz) "
            "or use the built-in layout (engine='builtin')"
        )
    try:
        done = subprocess.run(
            [exe, f"-T{fmt}"], input=text.encode(), capture_output=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise DrawError(
            f"Graphviz's dot took over {TIMEOUT:.0f} s; draw the graph collapsed or with "
            "engine='builtin'"
        ) from None
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise DrawError(f"Graphviz's dot failed (exit status {done.returncode}): {err}")
    return done.stdout
