"""Seeing the model: drawings of the graph and its gradient (SVG, PNG, DOT), `--values`, and the
HTML report of a compiled program, all read from the records the code is made from.

- `draw(g, stage, path)` / `picture(...)`: graphc/viz/drawing.py
- the drawing model, groups and layout: model.py, groups.py, layout.py (svg.py, dot.py, png.py)
- values and adjoints on each node: values.py
- generated source lines -> nodes and kernels: sourcemap.py (the one reader of the source's
  comments)
- the report: report.py, timeline.py, templates/report/; the commands: cli.py
"""

from graphc.viz.drawing import Picture, draw, picture
from graphc.viz.report import report_html, write_report
from graphc.viz.sourcemap import SourceMap, source_map, value_names

__all__ = [
    "Picture",
    "SourceMap",
    "draw",
    "picture",
    "report_html",
    "source_map",
    "value_names",
    "write_report",
]
