"""The memory plan as a picture: one row per arena buffer, one bar per value over the steps it
is live, live bytes over the schedule, and the naive, planned and floor bytes. Values the
backward pass keeps from the forward pass are marked: `saved` (or `checkpoint` when
checkpointing chose to keep them) and `recomputed` (a forward value computed again in the
backward pass instead of being kept)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import networkx as nx

from graphc.ir.dag import operands
from graphc.ir.shapes import format_type
from graphc.passes.memory import MemoryPlan, value_bytes
from graphc.passes.plan_report import live_bytes, totals
from graphc.passes.schedule import Program

ROW_H, LEFT, TOP, CHART_H = 16.0, 64.0, 96.0, 60.0
WIDTH = 900.0  # px the steps share, each between 10 and 48 px wide


def recomputed(G: nx.MultiDiGraph, backward_from: int) -> dict[int, int]:
    """Backward nodes that compute a forward node again (checkpointing's clones) -> that node:
    the same op, parameters, model line and type on the same operands or their clones. (After
    simplify no two forward nodes are alike, so only a clone can match.)"""
    sig: dict[tuple, int] = {}
    out: dict[int, int] = {}

    def signature(n: int, args: tuple) -> tuple:
        a = G.nodes[n]
        return (a["op"], repr(sorted(a["params"].items())), a.get("loc"), a["shape"],
                a["dtype"], args)  # fmt: skip

    for n in sorted(G.nodes):
        a = G.nodes[n]
        if a["op"] in ("input", "const"):
            continue
        args = tuple(out.get(u, u) for u in operands(G, n))
        key = signature(n, args)
        if n < backward_from:
            sig[key] = n
        elif "grad_of" not in a and key in sig:
            out[n] = sig[key]
    return out


def marks(prog: Program, backward_from: int, checkpointed: bool) -> dict[int, str]:
    """node -> "saved" / "checkpoint" (forward values the backward steps read) or "recomputed"."""
    G = prog.graph.nx
    out: dict[int, str] = {}
    in_prog = set(prog.step_of)
    for n in in_prog:
        if n < backward_from and any(v >= backward_from and v in in_prog for v in G.successors(n)):
            out[n] = "checkpoint" if checkpointed else "saved"
    for n in recomputed(G, backward_from):
        if n in in_prog:
            out[n] = "recomputed"
    return out


@dataclass
class Timeline:
    svg: str
    naive: int
    planned: int
    floor: int
    sizes: dict[str, int]


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def timeline(
    prog: Program, plan: MemoryPlan, sizes: dict[str, int], mark: dict[int, str]
) -> Timeline:
    """The timeline SVG of one function's plan at `sizes` (each bar: `data-node`)."""
    G = prog.graph.nx
    steps = len(prog.steps)
    # each step 10 to 48 px wide, and narrower when there are many: at most ~3000 px in all
    step_w = min(48.0, max(WIDTH / max(steps, 1), min(10.0, 3000.0 / max(steps, 1))))
    t = totals(prog, plan, sizes)
    live = live_bytes(prog, plan, sizes)
    offsets, at = {}, 0
    for s in plan.slots:
        offsets[s.id] = at
        at += s.nbytes(sizes)
    width = LEFT + step_w * max(steps, 1) + 20
    height = TOP + ROW_H * len(plan.slots) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gc-timeline" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">'
    ]
    k = 0
    while k < steps:  # sections shaded apart, one band per run of steps
        section, first = prog.steps[k].section, k
        while k < steps and prog.steps[k].section == section:
            k += 1
        out.append(
            f'<rect class="sec {section}" x="{LEFT + step_w * first:.1f}" '
            f'y="{TOP - CHART_H - 8:.1f}" width="{step_w * (k - first):.1f}" '
            f'height="{CHART_H + 8 + ROW_H * len(plan.slots):.1f}">'
            f"<title>steps {first} to {k - 1}: {section}</title></rect>"
        )
    top = max([t.arena_bytes, *live, 1])
    pts = " ".join(
        f"{LEFT + step_w * (k + 0.5):.1f},{TOP - 8 - CHART_H * b / top:.1f}"
        for k, b in enumerate(live)
    )
    arena_y = TOP - 8 - CHART_H * t.arena_bytes / top
    out.append(f'<polyline class="live" points="{pts}"><title>live arena bytes</title></polyline>')
    out.append(
        f'<line class="arena" x1="{LEFT}" x2="{LEFT + step_w * steps:.1f}" y1="{arena_y:.1f}" '
        f'y2="{arena_y:.1f}"><title>planned arena: {t.arena_bytes} bytes</title></line>'
    )
    out.append(f'<text class="axis" x="4" y="{TOP - CHART_H:.1f}">{_kib(top)}</text>')
    out.append(f'<text class="axis" x="4" y="{TOP - 10:.1f}">0</text>')
    for s in plan.slots:
        y = TOP + ROW_H * s.id
        out.append(
            f'<text class="slot" data-slot="{s.id}" x="4" y="{y + 12:.1f}">buf{s.id}'
            f"<title>{escape(s.describe())}, {s.nbytes(sizes)} bytes at offset "
            f"{offsets[s.id]}</title></text>"
        )
    for v in plan.arena_values():
        iv, a, slot = plan.intervals[v], G.nodes[v], int(plan.storage[v].ref)
        start, end = max(iv.start, 0), min(iv.end, steps - 1)
        x = LEFT + step_w * start
        w = step_w * (end - start + 1)
        y = TOP + ROW_H * slot + 2
        section = "backward" if prog.steps[prog.step_of[v]].section != "forward" else "forward"
        cls = ["bar", section] + ([mark[v]] if v in mark else [])
        if v in plan.in_place:
            cls.append("in-place")
        name = f"v{v}"
        nbytes = value_bytes(a["shape"], a["dtype"], sizes)
        tip = (
            f"{name} {a['op']} {format_type(a['shape'], a['dtype'])}: buf{slot}, steps "
            f"{iv.start}..{iv.end}, {nbytes} bytes"
            + (f" ({mark[v]})" if v in mark else "")
            + (" (written over its operand in place)" if v in plan.in_place else "")
        )
        inset = min(1.0, w / 4)  # bars of neighbouring values apart, however narrow a step
        out.append(
            f'<g class="{" ".join(cls)}" data-node="{v}" data-slot="{slot}">'
            f'<rect x="{x + inset:.2f}" y="{y:.1f}" width="{w - 2 * inset:.2f}" '
            f'height="{ROW_H - 4:.1f}" rx="{min(3.0, w / 4):.1f}"/><title>{escape(tip)}</title>'
        )
        if w > 8 * len(name):
            out.append(f'<text x="{x + 4:.1f}" y="{y + 10:.1f}">{name}</text>')
        if v in mark and mark[v] != "saved":
            out.append(f'<text class="mark" x="{x + w - 9:.1f}" y="{y + 10:.1f}">'
                       f'{"◆" if mark[v] == "checkpoint" else "↻"}</text>')  # fmt: skip
        out.append("</g>")
    out.append("</svg>")
    return Timeline("\n".join(out), t.naive_bytes, t.arena_bytes, t.live_peak_bytes, sizes)
