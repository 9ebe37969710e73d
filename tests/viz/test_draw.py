"""Drawings checked against the graph they draw: one box per node with its op, type and model
line, one edge per operand edge with its operand number, forward and backward apart, each
gradient tied to its node, fused loops as the program fuses them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import graphc as gc
from graphc.compiler import run_stages
from graphc.errors import DrawError
from graphc.viz import drawing as drawmod
from graphc.viz.drawing import picture
from tests.models import mlp, seed_net
from tests.viz import svgparse

SHORT = {"float64": "f64", "float32": "f32", "int64": "i64", "int32": "i32", "bool": "bool"}


def type_text(a: dict) -> str:
    return SHORT[a["dtype"]] + "[" + ",".join(str(d) for d in a["shape"]) + "]"


def check_boxes(svg: str, G) -> None:
    """One box per node of G, keyed by it, naming its op (or input name), type and line."""
    got = {b.key: b for b in svgparse.boxes(svg)}
    assert set(got) == {f"n{n}" for n in G.nodes}
    outputs = set(G.graph["outputs"].values())
    for n, a in G.nodes(data=True):
        b = got[f"n{n}"]
        text = "\n".join(b.lines)
        assert b.nodes == [n]
        assert type_text(a) in text
        assert a["loc"] in text
        if a["op"] == "input":
            assert b.lines[0] == a["name"] and f"kind-{a['role']}" in b.classes
        elif a["op"] == "const":
            assert b.lines[0].startswith("const") and "kind-const" in b.classes
        else:
            assert b.lines[0].split("[")[0] == a["op"] and "kind-op" in b.classes
        assert ("output" in b.classes) == (n in outputs)


def test_model_drawing_has_a_box_per_node_and_an_edge_per_operand():
    g = seed_net()
    svg = picture(g, engine="builtin").svg()
    check_boxes(svg, g.nx)
    drawn = {(s, d) for s, d, _ in svgparse.edges(svg)}
    assert drawn == {(f"n{u}", f"n{v}") for u, v in g.nx.edges()}


def test_operand_numbers_where_order_matters():
    g = seed_net()
    svg = picture(g, engine="builtin").svg()
    labels = {(s, d): text for s, d, text in svgparse.port_labels(svg)}
    for v in g.nx.nodes:
        ins = sorted((d["port"], u) for u, _, d in g.nx.in_edges(v, data=True))
        op = g.nx.nodes[v]["op"]
        for port, u in ins:
            key = (f"n{u}", f"n{v}")
            if op in ("sub", "matmul", "pow") and len(ins) > 1:
                assert labels[key] == str(port), (op, key)
            elif op in ("add", "mul"):
                assert key not in labels


def test_an_operand_used_twice_is_drawn_twice():
    g = gc.Graph("sq")
    x = g.param("x", shape=(3,))
    g.output("loss", gc.sum(x * x))
    svg = picture(g, engine="builtin").svg()
    mul = next(n for n, a in g.nx.nodes(data=True) if a["op"] == "mul")
    assert svgparse.edges(svg).count((f"n{x.id}", f"n{mul}", "")) == 2


def test_gradient_drawing_colours_sections_ties_gradients_and_boxes_fused_loops():
    g = seed_net()
    st = run_stages(g, functions=("value_and_grad",))
    prog, _ = st.programs["value_and_grad"]
    G = prog.graph.nx
    forward = set(st.graph.nx.nodes)  # the simplified model: everything else grad added
    svg = picture(g, "grad", engine="builtin").svg()
    check_boxes(svg, G)
    for b in svgparse.boxes(svg):
        n = b.nodes[0]
        assert ("backward" in b.classes) == (n not in forward)
        assert ("forward" in b.classes) == (n in forward)
    ties = {(s, d) for s, d, _ in svgparse.edges(svg, "tie")}
    want = {(f"n{n}", f"n{a['grad_of']}") for n, a in G.nodes(data=True) if "grad_of" in a}
    assert ties == want and want
    fused = [{f"n{n}" for n in s.fused} for s in prog.steps if len(s.fused) > 1]
    assert sorted(map(sorted, svgparse.loops(svg))) == sorted(map(sorted, fused)) and fused


@pytest.mark.parametrize("model", ["seed", "chain"])
def test_fused_outlines_name_their_step_and_the_kernel_its_row_calls(model):
    from tests.viz.test_groups import chain
    from tests.viz.test_sourcemap import row_kernels

    g = seed_net() if model == "seed" else chain(20)
    st = run_stages(g, functions=("value_and_grad",))
    prog, _ = st.programs["value_and_grad"]
    kernels = row_kernels(st, "value_and_grad")
    calls: dict[str, int] = {}
    for names in kernels.values():
        for name in names:
            calls[name] = calls.get(name, 0) + 1
    step_of = {frozenset(f"n{n}" for n in s.nodes): k for k, s in enumerate(prog.steps)}
    outlines = svgparse.loop_texts(picture(g, "grad", engine="builtin").svg())
    assert outlines
    for members, label, tip in outlines:
        k = step_of[frozenset(members)]  # each outline is one step of the program
        (name,) = kernels[k]
        shared = " (shared)" if calls[name] > 1 else ""
        assert label == f"step {k}: {name}, {len(members)} ops{shared}"
        assert tip.startswith(f"step {k} of value_and_grad: {len(members)} ops")
        assert ("also run by" in tip) == bool(shared)
    if model == "chain":  # alike layers: one kernel for their loops
        assert any(label.endswith("(shared)") for _, label, _ in outlines)


def test_gradient_labels_name_what_they_differentiate():
    svg = picture(seed_net(), "grad", engine="builtin").svg()
    for b in svgparse.boxes(svg):
        tip = b.tooltip
        if "gradient of v" in tip:
            k = tip.split("gradient of v")[1].split()[0]
            assert f"g{k} = ∂loss/∂v{k}" in b.lines[1]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_svg_has_the_same_boxes():
    g, _ = mlp(np.random.default_rng(0))
    svg = picture(g, engine="dot").svg()
    got = {b.key: b for b in svgparse.boxes(svg)}
    assert set(got) == {f"n{n}" for n in g.nx.nodes}
    for n, a in g.nx.nodes(data=True):
        text = "\n".join(got[f"n{n}"].lines)
        assert type_text(a) in text and a["loc"] in text


def test_dot_text_names_every_node_and_edge():
    g = seed_net()
    text = picture(g, engine="builtin").dot()
    for n in g.nx.nodes:
        assert f'"n{n}" [id="n{n}"' in text
    for u, v in g.nx.edges():
        assert f'"n{u}" -> "n{v}"' in text


def _pixels_vary(path) -> bool:
    from PIL import Image

    im = np.asarray(Image.open(path).convert("L"), dtype=float)
    return im.std() > 5 and im.shape[0] > 100 and im.shape[1] > 100


def test_png_through_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    path = picture(seed_net(), engine="builtin").save(tmp_path / "seed.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _pixels_vary(path)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_png_through_graphviz(tmp_path):
    pytest.importorskip("PIL")
    path = picture(seed_net(), engine="dot").save(tmp_path / "seed.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and _pixels_vary(path)


def test_png_without_matplotlib_or_graphviz_says_what_to_install(tmp_path, monkeypatch):
    import graphc.viz.png as png

    monkeypatch.setattr(png, "matplotlib_available", lambda: False)
    monkeypatch.setattr(drawmod.dotlib, "dot_available", lambda: False)
    monkeypatch.setattr(drawmod.dotlib.shutil, "which", lambda _: None)
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    with pytest.raises(DrawError, match=r"matplotlib.*Graphviz"):
        picture(seed_net(), engine="builtin").save(tmp_path / "x.png")
    pic = picture(seed_net(), engine="auto")
    assert pic.engine == "builtin"  # no dot: the built-in layout still draws SVG
    assert len(svgparse.boxes(pic.svg())) == len(seed_net())


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda g: picture(g, "gradient"), r"unknown stage 'gradient'; stages are graph, grad"),
        (lambda g: picture(g, engine="neato"), r"unknown engine 'neato'"),
        (lambda g: picture(g, collapse="yes"), r"collapse must be"),
        (lambda g: picture(g, view="nope"), r"no group 'nope'"),
        (lambda g: picture(g, values=[1, 2]), r"values must be True .* got list"),
        (lambda g: gc.draw(g, path="x.jpeg"), r"cannot tell the format of 'x.jpeg'"),
    ],
)
def test_bad_requests_are_drawerrors_naming_what_is_wrong(call, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DrawError, match=message):
        call(seed_net())


def test_grad_stage_of_a_model_without_params():
    g = gc.Graph("noparams")
    x = g.input("x", shape=(2,))
    g.output("y", gc.sum(x))
    with pytest.raises(DrawError, match="no params"):
        picture(g, "grad")


def test_graph_shows_itself_in_jupyter():
    g = seed_net()
    assert len(svgparse.boxes(g._repr_svg_())) == len(g)
    html = g._repr_html_()
    assert "seed_net" in html and html.count('class="node ') == len(g)
