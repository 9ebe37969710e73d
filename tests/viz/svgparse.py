"""Reading a drawing back from its SVG text, as a test sees it: boxes, their text, edges."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

NS = "{http://www.w3.org/2000/svg}"


@dataclass
class SvgBox:
    key: str
    classes: set[str]
    nodes: list[int]
    size: int  # the nodes it stands for: 1, or a group's size
    lines: list[str]
    tooltip: str


def _classes(el: ET.Element) -> set[str]:
    return set((el.get("class") or "").split())


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg.split("?>", 1)[1] if svg.startswith("<?xml") else svg)


def boxes(svg: str) -> list[SvgBox]:
    """Every `<g class="node">`, built-in or Graphviz SVG alike."""
    out = []
    for g in parse(svg).iter(f"{NS}g"):
        cls = _classes(g)
        if "node" not in cls:
            continue
        key = g.get("data-key") or g.get("id") or ""
        nodes = [int(x) for x in (g.get("data-nodes") or "").split()]
        lines = ["".join(t.itertext()).rstrip() for t in g.iter(f"{NS}tspan")]
        if not lines:  # Graphviz: one <text> per line
            lines = ["".join(t.itertext()).strip() for t in g.iter(f"{NS}text")]
        title = g.find(f"{NS}title")
        tip = "" if title is None else (title.text or "")
        size = int(g.get("data-size") or len(nodes))
        out.append(SvgBox(key, cls, nodes, size, lines, tip))
    return out


def edges(svg: str, kind: str = "data") -> list[tuple[str, str, str]]:
    """(source key, target key, label) of the built-in SVG's edges of `kind`."""
    return [
        (el.get("data-src"), el.get("data-dst"), "")
        for el in parse(svg).iter(f"{NS}path")
        if {"edge", kind} <= _classes(el)
    ]


def port_labels(svg: str) -> list[tuple[str, str, str]]:
    """(source, target, operand number) for the labelled data edges of the built-in SVG: a
    `<text class="port">` follows its edge's path."""
    root = parse(svg)
    group = next(g for g in root.iter(f"{NS}g") if _classes(g) == {"edges"})
    out, last = [], None
    for el in group:
        if el.tag == f"{NS}path" and "data" in _classes(el):
            last = (el.get("data-src"), el.get("data-dst"))
        elif el.tag == f"{NS}text" and "port" in _classes(el) and last is not None:
            out.append((*last, el.text or ""))
    return out


def loops(svg: str) -> list[set[str]]:
    """The member keys of each fused-step outline."""
    return [members for members, _, _ in loop_texts(svg)]


def loop_texts(svg: str) -> list[tuple[set[str], str, str]]:
    """(member keys, label, tooltip) of each fused-step outline."""
    out = []
    for g in parse(svg).iter(f"{NS}g"):
        if "loop" in _classes(g):
            label, title = g.find(f"{NS}text"), g.find(f"{NS}title")
            out.append((set((g.get("data-members") or "").split()),
                        "" if label is None else label.text or "",
                        "" if title is None else title.text or ""))  # fmt: skip
    return out
