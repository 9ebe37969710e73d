"""The HTML report: one self-contained page (no network) with the graph and gradient graph, the
schedule with its fused steps and the kernel each step calls, the memory timeline, the
generated source, and the build and check results, all linked by node: a click on a node
shows its statements and rows in each program (strongly), the kernel it runs (shared by every
step computing the same loop, apart), its buffer and its model line; a click on a statement
or a row selects its nodes, and a click on a kernel's line the nodes of every step calling it.

The page is `templates/report/report.html.j2` with its script and style (shipped in the wheel)
inlined; everything it shows is prepared here, from the compiler's own records (DESIGN.md §8).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import jinja2

import graphc
from graphc.ir.dag import operands
from graphc.ir.shapes import format_type
from graphc.passes.plan_report import default_sizes
from graphc.viz.drawing import (
    AUTO_COLLAPSE,
    LIMIT,
    StageGraph,
    from_stages,
    fused_steps,
    stages_map,
    views,
)
from graphc.viz.groups import ROOT, group_tree
from graphc.viz.layout import layout
from graphc.viz.model import NodeValues, build, full_value
from graphc.viz.sourcemap import SourceMap, StepLines, aligned, value_names
from graphc.viz.svg import STYLE, to_svg
from graphc.viz.timeline import marks, timeline

_PACKAGE = Path(__file__).resolve().parent.parent
FULL = "*"  # the view of every node, for graphs small enough to draw whole
BOX_BUDGET = 12_000  # boxes drawn per stage: deeper views of a larger graph are left out


def report_dir() -> Path:
    """`graphc/templates/report` in an installed wheel; the repository's when editable."""
    for base in (_PACKAGE / "templates", _PACKAGE.parent / "templates"):
        if (base / "report" / "report.html.j2").is_file():
            return base / "report"
    raise FileNotFoundError(f"graphc's report templates are missing (looked beside {_PACKAGE})")


@dataclass
class View:
    stage: str
    id: str
    parent: str | None
    label: str
    svg: str


def stage_views(
    stage: str, sg: StageGraph, values: Mapping[int, NodeValues] | None, limit: int = LIMIT
) -> tuple[list[View], dict[str, Any]]:
    """Every drawing of one stage: the whole graph when it is small, and the collapsed views
    (the top level and the inside of each group) when it has groups; and the groups, as the
    page's script needs them (each node's innermost group, each group's parent)."""
    G = sg.graph.nx
    out = []
    kw = dict(backward_from=sg.backward_from, of=sg.of, fused=sg.fused, values=values)
    if len(G) <= AUTO_COLLAPSE:
        d = build(G, title=f"{sg.graph.name}: {stage}", **kw)
        svg = to_svg(d, layout(d), f"{stage}0", standalone=False, style=False)
        out.append(View(stage, FULL, None, "all nodes", svg))
    tree = group_tree(G, sg.backward_from, limit)
    drawn, left_out = 0, []
    if len(tree.groups) > 1 or not out:
        for k, gid in enumerate(views(tree)):  # outermost first, while the budget lasts
            g = tree.groups[gid]
            d = build(G, title=g.label, tree=tree, view=gid, **kw)
            if drawn + len(d.boxes) > BOX_BUDGET and gid != ROOT:
                left_out.append(gid)
                continue
            drawn += len(d.boxes)
            svg = to_svg(d, layout(d), f"{stage}{k + 1}", standalone=False, style=False)
            label = "collapsed" if gid == ROOT else g.label
            out.append(View(stage, gid, g.parent, label, svg))
    groups = {
        "groupOf": {str(n): gid for n, gid in tree.group_of.items()},
        "parent": {gid: g.parent for gid, g in tree.groups.items()},
        "label": {gid: g.label for gid, g in tree.groups.items()},
        "leftOut": left_out,
    }
    return out, groups


def _storage_text(plan: Any, n: int) -> str:
    st = plan.storage.get(n)
    if st is None:
        return ""
    if st.kind == "arena":
        return f"buf{st.ref}"
    if st.kind == "local":
        return f"a scalar inside step {st.ref}'s loop"
    if st.kind == "alias":
        return f"the bytes of v{st.ref}"
    return {"input": f"input {st.ref}", "output": f"output {st.ref}"}.get(st.kind, st.kind)


def _node_data(G, names: dict[str, int], smap: SourceMap, programs, values, backward_from):
    name_of = {n: k for k, n in names.items()}
    outs: dict[int, list[str]] = {}
    for k, n in G.graph.get("outputs", {}).items():
        outs.setdefault(n, []).append(k)
    data = {}
    for n, a in G.nodes(data=True):
        rec = {
            "name": name_of.get(n, f"v{n}"),
            "op": a["op"] if a["op"] != "input" else f"{a.get('role', 'data')} {a['name']}",
            "type": format_type(a["shape"], a["dtype"]),
            "loc": a.get("loc") or "?",
            "section": "backward" if backward_from is not None and n >= backward_from else
            "forward",
            "gradOf": a.get("grad_of") if isinstance(a.get("grad_of"), int) else None,
            "operands": operands(G, n),
            "users": sorted(set(G.successors(n))),
            "outputs": outs.get(n, []),
            "lines": smap.nodes.get(n, []),
            "kernels": smap.kernels_of(n),
            "storage": {f: _storage_text(plan, n) for f, (_, plan) in programs.items()
                        if n in plan.storage},
            "step": {f: prog.step_of[n] for f, (prog, _) in programs.items() if n in prog.step_of},
        }  # fmt: skip
        v = values.get(n) if values else None
        if v is not None and v.value is not None:
            rec["value"] = full_value(v.value)
        if v is not None and v.adjoint is not None:
            rec["adjoint"] = full_value(v.adjoint)
        data[str(n)] = rec
    return data


def _schedule_html(
    fn: str, prog: Any, plan: Any, mark: dict[int, str], rows: Mapping[int, StepLines],
    smap: SourceMap,
) -> str:  # fmt: skip
    """One function's steps as table rows: the kernel each calls (as its row in the source
    says; a kernel several steps call is marked shared), and the nodes it computes."""
    G = prog.graph.nx
    out = []
    for k, s in enumerate(prog.steps):
        cells = []
        for n in s.nodes:
            a = G.nodes[n]
            tag = f' <span class="mark {mark[n]}">{mark[n]}</span>' if n in mark else ""
            typ = escape(format_type(a["shape"], a["dtype"]))
            where = escape(_storage_text(plan, n))
            cells.append(
                f'<div class="op" data-node="{n}"><a class="nref" data-node="{n}">v{n}</a> '
                f"{escape(a['op'])} <span class=type>{typ}</span> <span class=where>{where}</span>"
                f"{tag}</div>"
            )
        row = rows.get(k)
        kernels = row.kernels if row is not None else []
        runs = []
        for x in kernels:
            kern = smap.kernels[x]
            notes = ["runtime"] if kern.runtime else []
            if len(smap.callers(x)) > 1:
                notes.append(f"{len(smap.callers(x))} steps")
            note = f' <span class="shared">{", ".join(notes)}</span>' if notes else ""
            runs.append(f'<a class="kref" data-k="{x}">{escape(kern.name)}</a>{note}')
        alias = getattr(plan.storage.get(s.node), "kind", None) == "alias"
        none = "none: it shares its operand's bytes" if alias else "none"
        run = "<br>".join(runs) or f"<span class=where>{none}</span>"
        kind = f'<div class="what">fused: {len(s.nodes)} ops in one loop</div>' if s.fused else ""
        beside = " ∥ next" if s.beside else ""
        ks = " ".join(map(str, kernels))
        out.append(
            f'<tr class="{s.section}{" fused" if s.fused else ""}" data-k="{ks}" '
            f'data-nodes="{" ".join(map(str, s.nodes))}"><td class=num>{k}</td>'
            f"<td>{s.section}{beside}</td><td>{run}</td><td>{kind}{''.join(cells)}</td></tr>"
        )
    bodies = "".join(
        f"<tbody>{''.join(out[k : k + CHUNK])}</tbody>" for k in range(0, len(out), CHUNK)
    )
    return (
        f'<table class="schedule" data-fn="{escape(fn)}"><thead><tr><th>step</th><th>section'
        f"</th><th>kernel</th><th>computes</th></tr></thead>{bodies}</table>"
    )


CHUNK = 200  # lines (or steps) per block that the browser lays out only when it is in view


def _source_html(source: str, smap: SourceMap) -> str:
    """The source's lines: those computing nodes (statements, rows, constants) marked `m`,
    the lines of the steps' comments styled as comments, and each line of a kernel's
    functions marked `k` with the kernel's number."""
    out = []
    for i, text in enumerate(source.splitlines(), start=1):
        if i in smap.comments:
            body = f'<span class="c">{escape(text)}</span>'
        else:
            code, hash_, comment = text.partition("#")
            body = escape(code) + (f'<span class="c">#{escape(comment)}</span>' if hash_ else "")
        cls = "l m" if i in smap.lines else "l"
        if i in smap.backward:
            cls += " adj"
        k = smap.kernel_at.get(i)
        attrs = (
            f'class="{cls}" data-l="{i}"'
            if k is None
            else f'class="{cls} k" data-l="{i}" data-k="{k}"'
        )
        out.append(f"<div {attrs}><i>{i}</i>{body or ' '}</div>")
    return "".join(
        '<div class="chunk">' + "\n".join(out[k : k + CHUNK]) + "</div>"
        for k in range(0, len(out), CHUNK)
    )


def _spans(lines: list[int]) -> list[list[int]]:
    """Sorted line numbers as [first, last] runs."""
    out: list[list[int]] = []
    for i in lines:
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def _kernel_data(smap: SourceMap, number: Mapping[int, tuple[str, int]]) -> dict[str, Any]:
    """Per kernel, what the page needs: its name and doc, its lines (as runs), the steps that
    call it (function, step number) and their nodes."""
    return {
        str(k): {
            "name": kern.name,
            "runtime": kern.runtime,
            "doc": kern.doc,
            "spans": _spans(kern.lines),
            "steps": [list(number[id(s)]) for s in smap.callers(k) if id(s) in number],
            "nodes": smap.kernel_nodes(k),
        }
        for k, kern in smap.kernels.items()
    }


def _model_html(text: str | None) -> str:
    if text is None:
        return ""
    return "\n".join(
        f'<div class="l" data-l="{i}"><i>{i}</i>{escape(t) or " "}</div>'
        for i, t in enumerate(text.splitlines(), start=1)
    )


def report_html(
    st: Any,
    *,
    built: Any = None,
    check: tuple[bool, str] | None = None,
    inputs: Mapping[str, Any] | None = None,
    model_file: str | Path | None = None,
) -> str:
    """The report page of the passes' results `st` (a compiler.Stages). `built`: the build
    (graphc.runtime's BuiltModule) when there was one; `check`: (ok, text) of a check;
    `inputs`: to show each node's value; `model_file`: the model's source, for its lines."""
    programs = st.programs
    main = next(f for f in ("value_and_grad", "train_step", "forward") if f in programs)
    backward_from = st.graph.next_id
    big = max((prog.graph for prog, _ in programs.values()), key=len)
    G = big.nx
    names = value_names(G)
    smap = stages_map(st)
    rows = {f: aligned(prog, smap.program(f)) for f, (prog, _) in programs.items()}
    number = {id(s): (f, k) for f, r in rows.items() for k, s in r.items()}
    stages = {"graph": StageGraph(st.graph, None, fused_steps(st, "forward", smap), st.of)}
    if st.grads and main != "forward":
        stages["grad"] = from_stages(st, main, smap)
    vals: dict[str, dict[int, NodeValues]] = {}
    if inputs is not None:
        from graphc.viz.values import node_values

        vals["graph"] = node_values(st.graph, inputs, st.of)
        if "grad" in stages:
            vals["grad"] = node_values(stages["grad"].graph, inputs)
    all_views, groups = [], {}
    for s, sg in stages.items():
        views_s, groups[s] = stage_views(s, sg, vals.get(s))
        all_views += views_s
    merged = {**vals.get("grad", {}), **vals.get("graph", {})}
    node_data = _node_data(G, names, smap, programs, merged, backward_from)
    sizes = {f: default_sizes(prog, st.size_hint) for f, (prog, _) in programs.items()}
    timelines, schedules = {}, {}
    for f, (prog, plan) in programs.items():
        mark = marks(prog, backward_from, st.checkpointing is not None)
        timelines[f] = timeline(prog, plan, sizes[f], mark)
        schedules[f] = _schedule_html(f, prog, plan, mark, rows[f], smap)
    model_text, model_name = None, None
    if model_file is not None and Path(model_file).is_file():
        model_text = Path(model_file).read_text(encoding="utf-8", errors="replace")
        model_name = Path(model_file).name
    data = {
        "nodes": node_data,
        "lines": {str(k): v for k, v in smap.lines.items()},
        "kernels": _kernel_data(smap, number),
        "stages": list(stages),
        "views": {
            s: [
                {"id": v.id, "parent": v.parent, "label": v.label}
                for v in all_views
                if v.stage == s
            ]
            for s in stages
        },  # fmt: skip
        "groups": groups,
        "boxBudget": BOX_BUDGET,
        "functions": list(programs),
        "main": main,
        "modelFile": model_name,
    }
    meta = {
        "model": st.graph.name,
        "version": graphc.__version__,
        "dtype": st.graph.nx.nodes[next(iter(st.graph.outputs.values()))]["dtype"],
        "of": st.of or "-",
        "wrt": _few(list(st.grads.values()), "params"),
        "wrt_all": ", ".join(st.grads.values()),
        "nodes": len(st.graph),
        "joint": len(G),
        "source_lines": len(st.source.splitlines()),
        "checkpointing": str(st.checkpointing) if st.checkpointing else "",
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(report_dir())),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    here = report_dir()
    return env.get_template("report.html.j2").render(
        meta=meta,
        built=_built(built),
        check=check,
        views=all_views,
        stage_names=list(stages),
        timelines=timelines,
        schedules=schedules,
        source_html=_source_html(st.source, smap),
        model_html=_model_html(model_text),
        model_name=model_name,
        data_json=json.dumps(data, separators=(",", ":")).replace("</", "<\\/"),
        style=(here / "report.css").read_text(encoding="utf-8") + STYLE,
        script=(here / "report.js").read_text(encoding="utf-8").replace("</", "<\\/"),
        main=main,
    )


def _few(names: list[str], what: str, most: int = 6) -> str:
    """`a, b, c`, or `24 params` when there are more than `most`."""
    if not names:
        return "-"
    return ", ".join(names) if len(names) <= most else f"{len(names)} {what}"


def _built(built: Any) -> dict[str, str] | None:
    if built is None:
        return None
    return {
        "how": "cache hit" if built.cache_hit else "built",
        "seconds": f"{built.seconds:.2f}",
        "so": str(built.so_path),
        "key": built.key[:16],
    }


def write_report(st: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write `report_html(st, **kwargs)` to `path` (UTF-8)."""
    path = Path(path)
    path.write_text(report_html(st, **kwargs), encoding="utf-8")
    return path
