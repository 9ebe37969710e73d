"""What Jupyter shows for a Graph and a CompiledModule (`_repr_svg_`, `_repr_html_`)."""

from __future__ import annotations

from html import escape
from typing import Any

from graphc.ir.graph import Graph
from graphc.viz.drawing import picture


def graph_svg(g: Graph) -> str:
    """The model drawn with the built-in layout (collapsed when large)."""
    return picture(g, "graph", engine="builtin")._repr_svg_()


def graph_html(g: Graph) -> str:
    outs = ", ".join(escape(k) for k in g.outputs) or "none"
    head = (
        f"<div><b>{escape(g.name)}</b>: {len(g)} nodes, inputs "
        f"{escape(', '.join(g.input_ids())) or 'none'}, outputs {outs}</div>"
    )
    return f'<div class="graphc-graph">{head}<div>{graph_svg(g)}</div></div>'


def module_html(m: Any) -> str:
    """A compiled module's summary and, when the passes that made it are at hand, its report
    inline (one self-contained page in an iframe: no links, no network)."""
    mod = m.module
    rows = [
        ("model", mod.MODEL),
        ("dtype", mod.DTYPE),
        ("inputs", ", ".join(mod.INPUTS)),
        ("outputs", ", ".join(mod.OUTPUTS)),
        ("gradients of", f"{mod.OF} with respect to {', '.join(mod.WRT)}" if mod.WRT else "-"),
        (
            "functions",
            ", ".join(
                f"{k} ({v['steps']} steps, {v['slots']} buffers)" for k, v in mod.PLAN.items()
            ),
        ),  # fmt: skip
        ("built", str(m.path)),
    ]
    table = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(str(v))}</td>"
                    "</tr>" for k, v in rows)  # fmt: skip
    html = f"<table>{table}</table>"
    if m.stages is not None:
        from graphc.viz.report import report_html

        page = report_html(m.stages, built=m.built)
        html += (
            f'<iframe srcdoc="{escape(page, quote=True)}" style="width:100%;height:640px;'
            'border:1px solid #ccc" sandbox="allow-scripts"></iframe>'
        )
    return f'<div class="graphc-module">{html}</div>'
