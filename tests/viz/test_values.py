"""`--values`: the seed's worked example with its published numbers, and adjoints checked
against finite differences taken on the model itself."""

from __future__ import annotations

import re

import numpy as np
import pytest

import graphc as gc
from graphc.viz.drawing import picture
from graphc.viz.values import node_values
from tests.models import central_diff, mlp, seed_inputs, seed_net, seed_reference
from tests.viz import svgparse


def tooltip_value(tip: str, what: str) -> np.ndarray:
    line = next(t for t in tip.splitlines() if t.startswith(f"{what}: "))
    return np.array(eval(line.split(": ", 1)[1], {"__builtins__": {}}))  # a printed list


def shown_numbers(lines: list[str], prefix: str) -> list[float]:
    """The numbers of the box's lines from the one starting with `prefix` to the next value."""
    out, on = [], False
    for line in lines:
        if line.startswith(prefix):
            on = True
        elif on and not line.startswith(" "):
            break
        if on:
            out += [float(x) for x in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", line[len(prefix) :])]
    return out


def seed_nodes(g: gc.Graph) -> dict[str, int]:
    """z1, a1, z2, y_hat and loss of the seed network, found by the graph's structure."""
    G = g.nx
    sig = sorted(n for n, a in G.nodes(data=True) if a["op"] == "sigmoid")
    z = [next(iter(G.predecessors(n))) for n in sig]
    return {"z1": z[0], "a1": sig[0], "z2": z[1], "y_hat": sig[1], "loss": g.outputs["loss"]}


def test_seed_worked_example_shows_the_published_numbers():
    ref = seed_reference()
    g = seed_net()
    svg = picture(g, values=seed_inputs(), engine="builtin").svg()
    boxes = {b.key: b for b in svgparse.boxes(svg)}
    for name, n in seed_nodes(g).items():
        b, want = boxes[f"n{n}"], np.asarray(ref["forward"][name])
        np.testing.assert_allclose(tooltip_value(b.tooltip, "value"), want, rtol=1e-12)
        shown = shown_numbers(b.lines, "= ")
        np.testing.assert_allclose(shown, want.ravel(), rtol=1e-3)  # 4 significant digits
    params = g.input_ids("param")
    for name, want in ref["gradients"].items():
        b = boxes[f"n{params[name]}"]
        np.testing.assert_allclose(tooltip_value(b.tooltip, "adjoint"), want, rtol=1e-10)
        np.testing.assert_allclose(shown_numbers(b.lines, "δ = "), np.ravel(want), rtol=1e-3)
    loss = boxes[f"n{g.outputs['loss']}"]
    assert shown_numbers(loss.lines, "δ = ") == [1.0]  # d loss / d loss


def test_gradient_stage_values_are_the_adjoints():
    """In the joint graph, the gradient node of each param holds the published gradient."""
    ref = seed_reference()
    g = seed_net()
    pic = picture(g, "grad", values=seed_inputs(), engine="builtin")
    boxes = {b.key: b for b in svgparse.boxes(pic.svg())}
    params = {n: k for k, n in g.input_ids("param").items()}
    seen = 0
    for b in boxes.values():
        m = re.search(r"gradient of v(\d+)", b.tooltip)
        if m and int(m.group(1)) in params:
            want = ref["gradients"][params[int(m.group(1))]]
            np.testing.assert_allclose(tooltip_value(b.tooltip, "value"), want, rtol=1e-10)
            seen += 1
    assert seen == 4


def cut_at(g: gc.Graph, n: int) -> gc.Graph:
    """`g` with node n made an input `cut` (its operands no longer feed it)."""
    H = g.nx.copy()
    H.graph["outputs"] = dict(g.outputs)
    H.remove_edges_from(list(H.in_edges(n, keys=True)))
    a = dict(H.nodes[n])
    H.nodes[n].clear()
    H.nodes[n].update(op="input", role="data", name="cut", shape=a["shape"], dtype=a["dtype"],
                      params={}, loc=a["loc"])  # fmt: skip
    return gc.Graph.from_networkx(H)


def test_adjoints_of_inner_nodes_match_finite_differences():
    g, inputs = mlp(np.random.default_rng(1))
    got = node_values(g, inputs, of="loss")
    checked = 0
    for n, a in g.nx.nodes(data=True):
        if a["op"] in ("input", "const") or n == g.outputs["loss"]:
            continue
        h = cut_at(g, n)
        value = got[n].value
        want = central_diff(lambda v, h=h: float(gc.evaluate(h, {**inputs, "cut": v})["loss"]),
                            value)  # fmt: skip
        np.testing.assert_allclose(got[n].adjoint, want, rtol=1e-5, atol=1e-8)
        checked += 1
    assert checked >= 4


def test_values_need_the_inputs_the_model_declares():
    with pytest.raises(gc.InputError, match="missing input"):
        picture(seed_net(), values={"x": np.zeros((1, 3))})
