"""`gc.draw`: a model or its gradient as a picture, in SVG, PNG or DOT.

stage="graph" draws the model as built; stage="grad" runs the compiler's passes (no build)
and draws the graph its gradient is generated from, forward and backward coloured apart, with
each fused step of its value_and_grad program outlined: a row of the generated program whose
comment lists several statements, labelled with its step and the kernel it calls (which other
steps computing the same loop call too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from graphc.errors import DrawError
from graphc.ir.graph import Graph, as_graph
from graphc.viz import dot as dotlib
from graphc.viz.groups import ROOT, GroupTree, group_tree
from graphc.viz.layout import Layout, layout
from graphc.viz.model import Drawing, FusedStep, NodeValues, build
from graphc.viz.sourcemap import SourceMap, aligned, source_map, value_names
from graphc.viz.svg import to_svg

STAGES = ("graph", "grad")
ENGINES = ("auto", "builtin", "dot")
FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot"}
AUTO_COLLAPSE = 150  # nodes: larger graphs are drawn collapsed unless asked otherwise
LIMIT = 40  # items in one view of a collapsed drawing


@dataclass
class StageGraph:
    """What a stage draws: the graph, where its backward part starts, its fused steps, and the
    output differentiated."""

    graph: Graph
    backward_from: int | None = None
    fused: list[FusedStep] = field(default_factory=list)
    of: str | None = None


def stage_graph(
    g: Graph | nx.MultiDiGraph, stage: str, of: str | None = None, dtype: str = "float64"
) -> StageGraph:
    """The graph of `stage` for model `g` (see the module's docstring)."""
    if stage not in STAGES:
        raise DrawError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    g = as_graph(g)
    if stage == "graph":
        return StageGraph(g, None, [], of)
    from graphc.compiler import run_stages

    if not g.input_ids("param"):
        raise DrawError(
            f"stage 'grad' of graph {g.name!r}: it has no params to differentiate with respect to"
        )
    st = run_stages(g, of=of, dtype=dtype, functions=("value_and_grad",))
    return from_stages(st, "value_and_grad")


def from_stages(st: Any, function: str, smap: SourceMap | None = None) -> StageGraph:
    """The graph of compiled function `function` of `st` (a compiler.Stages), fused steps and
    all; `smap`: the source map of `st.source`, when the caller has it."""
    prog, _ = st.programs[function]
    return StageGraph(prog.graph, st.graph.next_id, fused_steps(st, function, smap), st.of)


def stages_map(st: Any) -> SourceMap:
    """The source map of `st.source`, named after the graph the module was generated from
    (the largest of its programs' graphs: each extends the one before)."""
    big = max((prog.graph for prog, _ in st.programs.values()), key=len)
    return source_map(st.source, value_names(big.nx))


def fused_steps(st: Any, function: str, smap: SourceMap | None = None) -> list[FusedStep]:
    """The steps of `function`'s program in the generated source that compute several nodes
    in one loop, each labelled with its number in the schedule and the kernel it calls."""
    if function not in st.programs:
        return []
    smap = smap or stages_map(st)
    number = {id(s): (f, k) for f, (prog, _) in st.programs.items()
              for k, s in aligned(prog, smap.program(f)).items()}  # fmt: skip
    out = []
    for s in smap.program(function):
        if len(s.computed) < 2 or id(s) not in number:
            continue
        k = number[id(s)][1]
        kernels = ", ".join(smap.kernels[x].name for x in s.kernels)
        shared = sum(len(smap.callers(x)) for x in s.kernels) - len(s.kernels)
        others = [
            "{} step {}".format(*number[id(c)])
            for x in s.kernels
            for c in smap.callers(x)[:7]
            if c is not s and id(c) in number
        ][:6]
        tip = f"step {k} of {function}: {len(s.computed)} ops in one loop, kernel {kernels}"
        if shared:
            more = f" and {shared - len(others)} more" if shared > len(others) else ""
            tip += f" (also run by {', '.join(others)}{more})"
        label = f"step {k}: {kernels}, {len(s.computed)} ops" + (" (shared)" if shared else "")
        out.append(FusedStep(tuple(s.computed), label, tip))
    return out


@dataclass
class Picture:
    """A drawing ready to write: `svg()`, `png(path)`, `dot()`, or `save(path)` by suffix."""

    drawing: Drawing
    tree: GroupTree | None = None
    engine: str = "builtin"  # "builtin" or "dot", resolved
    _layout: Layout | None = None

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = layout(self.drawing)
        return self._layout

    def svg(self, id_prefix: str = "gc") -> str:
        if self.engine == "dot":
            return dotlib.run_dot(self.dot(), "svg").decode()
        return to_svg(self.drawing, self.layout, id_prefix)

    def dot(self) -> str:
        return dotlib.to_dot(self.drawing)

    def png(self, path: str | Path) -> None:
        """Write a PNG: through Graphviz with engine "dot", else through matplotlib."""
        if self.engine == "dot":
            Path(path).write_bytes(dotlib.run_dot(self.dot(), "png"))
            return
        from graphc.viz.png import to_png

        to_png(self.drawing, self.layout, str(path))

    def save(self, path: str | Path) -> Path:
        """Write the picture in the format its suffix names (.svg, .png, .dot or .gv)."""
        path = Path(path)
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise DrawError(
                f"cannot tell the format of {str(path)!r}: end it in {', '.join(FORMATS)}"
            )
        if fmt == "png":
            if self.engine != "dot":
                from graphc.viz.png import matplotlib_available

                if not matplotlib_available() and dotlib.dot_available():
                    self.engine = "dot"
            self.png(path)
        else:
            path.write_text(self.svg() if fmt == "svg" else self.dot(), encoding="utf-8")
        return path

    def _repr_svg_(self) -> str:
        return to_svg(self.drawing, self.layout, "gc", standalone=False)


def _inputs(g: Graph, values: Any) -> Mapping[str, Any] | None:
    """The inputs `values` asks for: None (no values), True (random), or a dict of arrays."""
    if values is None or values is False:
        return None
    if values is True:
        from graphc.cli import random_inputs

        return random_inputs(g)
    if isinstance(values, Mapping):
        return {k: np.asarray(v) for k, v in values.items()}
    raise DrawError(
        "values must be True (random inputs) or a dict of input arrays, got "
        f"{type(values).__name__}"
    )


def picture(
    g: Graph | nx.MultiDiGraph | StageGraph,
    stage: str = "graph",
    *,
    of: str | None = None,
    values: Any = None,
    collapse: bool | str = "auto",
    view: str = ROOT,
    engine: str = "auto",
    dtype: str = "float64",
    limit: int = LIMIT,
) -> Picture:
    """The picture of `stage` of model `g` (see `draw`)."""
    if engine not in ENGINES:
        raise DrawError(f"unknown engine {engine!r}; engines are {', '.join(ENGINES)}")
    if collapse not in (True, False, "auto"):
        raise DrawError(f"collapse must be True, False or 'auto', got {collapse!r}")
    sg = g if isinstance(g, StageGraph) else stage_graph(g, stage, of, dtype)
    G = sg.graph.nx
    vals: dict[int, NodeValues] | None = None
    inputs = _inputs(sg.graph, values)
    if inputs is not None:
        from graphc.compiler import default_of
        from graphc.viz.values import node_values

        if sg.backward_from is None:  # the model: values forward, adjoints back
            vals = node_values(sg.graph, inputs, of or default_of(sg.graph))
        else:  # the joint graph: a gradient node's value is its adjoint
            vals = node_values(sg.graph, inputs)
    fold = collapse is True or (collapse == "auto" and len(G) > AUTO_COLLAPSE) or view != ROOT
    tree = group_tree(G, sg.backward_from, limit) if fold else None
    if tree is not None and view not in tree.groups:
        named = [gid for gid, grp in tree.groups.items() if grp.label == view]
        if len(named) != 1:
            top = [grp.label for grp in tree.groups.values() if grp.parent == ROOT]
            some = ", ".join(sorted(top))
            raise DrawError(
                f"no group {view!r} in graph {sg.graph.name!r}; its top-level groups are "
                f"{some[:300] or 'none'}"
            )
        view = named[0]
    drawing = build(
        G,
        title=_title(sg, tree, view),
        backward_from=sg.backward_from,
        of=sg.of or of,
        fused=sg.fused,
        values=vals,
        tree=tree,
        view=view,
    )
    chosen = engine
    if engine == "auto":
        chosen = "dot" if dotlib.dot_available() else "builtin"
    return Picture(drawing, tree, chosen)


def _title(sg: StageGraph, tree: GroupTree | None, view: str) -> str:
    G = sg.graph.nx
    what = "the model" if sg.backward_from is None else "forward and gradient"
    back = sum(1 for n in G if sg.backward_from is not None and n >= sg.backward_from)
    extra = f", {back} backward" if back else ""
    title = f"{sg.graph.name}: {what} ({len(G)} nodes{extra})"
    if tree is not None and view != ROOT:
        title += " / " + tree.groups[view].label
    return title


def draw(
    g: Graph | nx.MultiDiGraph,
    stage: str = "graph",
    path: str | Path | None = None,
    *,
    of: str | None = None,
    values: bool | Mapping[str, Any] | None = None,
    collapse: bool | str = "auto",
    view: str = ROOT,
    engine: str = "auto",
    dtype: str = "float64",
) -> Picture:
    """Draw model `g`: stage "graph" (as built) or "grad" (forward and gradient, as compiled),
    written to `path` (.svg, .png, .dot) when given. `values`: True for random inputs or a dict
    of inputs, to show each node's value and adjoint. `collapse`: group layers and name scopes
    into boxes (default: for graphs over 150 nodes); `view` draws the inside of one group.
    `engine`: "dot" (Graphviz), "builtin", or "auto" (Graphviz when it is on PATH)."""
    pic = picture(g, stage, of=of, values=values, collapse=collapse, view=view, engine=engine,
                  dtype=dtype)  # fmt: skip
    if path is not None:
        pic.save(path)
    return pic


def views(tree: GroupTree) -> Sequence[str]:
    """Every group of `tree` with a view of its own, outermost first."""
    return sorted(tree.groups, key=lambda gid: (len(tree.chain_of_group(gid)), gid))
