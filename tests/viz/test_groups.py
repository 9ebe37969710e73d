"""Collapsing large graphs into their layers or name scopes: a 12-block Transformer and a
20,000-node chain stay readable (a bounded number of boxes at every level), and no node is
lost or drawn twice."""

from __future__ import annotations

import re

import pytest

import graphc as gc
from graphc.viz.drawing import LIMIT, from_stages, picture, views
from graphc.viz.groups import ROOT, group_tree, layer_of, scope_paths
from tests.viz import svgparse


def transformer(blocks: int = 12) -> gc.Graph:
    g = gc.Graph("tf")
    tokens = g.input("tokens", shape=("N", 10), dtype="int64")
    labels = g.input("labels", shape=("N", 10), dtype="int64")
    h = gc.nn.positional_encoding(gc.nn.embedding(tokens, 16, 32, "embed"))
    for i in range(blocks):
        h = gc.nn.transformer_encoder_block(h, 4, 64, f"block{i}")
    g.output("loss", gc.softmax_cross_entropy(gc.nn.dense(h, 16, "out"), labels))
    return g


def chain(nodes: int) -> gc.Graph:
    g = gc.Graph("chain")
    x = g.input("x", shape=("N", 8))
    w = g.param("w", shape=(8,))
    h = x
    for _ in range(nodes // 2 - 1):
        h = gc.tanh(h * w)
    g.output("loss", gc.sum(h))
    return g


@pytest.mark.parametrize(
    "name, layer",
    [("fc1_w", "fc1"), ("block3_attn_q_b", "block3_attn_q"), ("lstm_w_ih", "lstm"),
     ("gru_b_hh", "gru"), ("W1", None), ("_w", None)],
)  # fmt: skip
def test_layer_of_a_param_name(name, layer):
    assert layer_of(name) == layer


def test_scopes_are_the_shared_prefixes():
    paths = scope_paths({"block0_attn_q", "block0_attn_k", "block0_ln1", "block1_ln1", "out"})
    assert paths["block0_attn_q"] == ("block0", "block0_attn", "block0_attn_q")
    assert paths["block1_ln1"] == ("block1_ln1",)  # one layer under block1: no scope of its own
    assert paths["out"] == ("out",)


def check_tree(tree, G, limit=LIMIT) -> None:
    """Every node in exactly one group; every view at most `limit` items."""
    seen = [n for gid in tree.groups for n in tree.groups[gid].members]
    assert sorted(seen) == sorted(G.nodes)
    for gid in tree.groups:
        assert len(tree.items(gid)) <= limit, gid


def test_transformer_collapses_into_its_blocks():
    g = transformer()
    G = g.nx
    tree = group_tree(G)
    check_tree(tree, G)
    top = {tree.groups[x].label for x in tree.items(ROOT) if isinstance(x, str)}
    assert {f"block{i}" for i in range(12)} | {"embed", "out"} <= top
    for name, n in g.input_ids("param").items():  # each param inside its own layer's group
        chain = [tree.groups[c].label for c in tree.chain(n)]
        layer = layer_of(name)
        assert chain[-1] == layer and chain[1] == layer.split("_")[0], (name, chain)
    svg = picture(g, engine="builtin").svg()
    got = svgparse.boxes(svg)
    assert len(got) <= LIMIT
    assert sum(b.size for b in got) == len(G)  # every node counted once


def test_transformer_gradient_mirrors_its_blocks():
    from graphc.compiler import run_stages

    g = transformer()
    st = run_stages(g, functions=("value_and_grad",))
    sg = from_stages(st, "value_and_grad")
    tree = group_tree(sg.graph.nx, sg.backward_from)
    check_tree(tree, sg.graph.nx)
    top = {tree.groups[x].label for x in tree.items(ROOT) if isinstance(x, str)}
    assert {f"∂block{i}" for i in range(12)} | {f"block{i}" for i in range(12)} <= top
    for n, a in sg.graph.nx.nodes(data=True):  # a gradient sits in the mirror of its node
        if "grad_of" in a and a["op"] != "input":
            mine = [tree.groups[c].label for c in tree.chain(n)][1:]
            theirs = [tree.groups[c].label for c in tree.chain(a["grad_of"])][1:]
            if theirs and not re.match(r"v\d+ …", theirs[0]):
                assert mine[: len(theirs)] == ["∂" + t for t in theirs], (n, mine, theirs)


def test_a_20000_node_chain_stays_readable():
    g = chain(20000)
    G = g.nx
    assert len(G) >= 20000
    pic = picture(g, engine="builtin")
    assert pic.tree is not None
    check_tree(pic.tree, G)
    got = svgparse.boxes(pic.svg())
    assert len(got) <= LIMIT and sum(b.size for b in got) == len(G)
    deepest = max(views(pic.tree), key=lambda v: len(pic.tree.chain_of_group(v)))
    inner = picture(g, engine="builtin", view=deepest)
    assert 0 < len([b for b in inner.drawing.boxes if not b.context]) <= LIMIT
    assert inner.layout.width < 4000  # a view fits a screen or two, whatever the graph's size


def test_small_graphs_are_drawn_whole_unless_asked():
    g = chain(40)
    assert picture(g).tree is None
    folded = picture(g, collapse=True, engine="builtin")
    assert folded.tree is not None
    got = svgparse.boxes(folded.svg())
    assert sum(b.size for b in got) == len(g) and len(got) < len(g)


def test_a_box_feeding_many_gets_one_note_in_every_view():
    from graphc.compiler import run_stages
    from graphc.viz.drawing import from_stages
    from graphc.viz.model import build

    sg = from_stages(run_stages(chain(2000), functions=("value_and_grad",)), "value_and_grad")
    tree = group_tree(sg.graph.nx, sg.backward_from)
    notes = 0
    for gid in views(tree):  # one tree for every view, as the report draws them
        d = build(sg.graph.nx, title=gid, backward_from=sg.backward_from, tree=tree, view=gid)
        for b in d.boxes:
            k = sum("edges not drawn" in line for line in b.lines)
            assert k <= 1, (gid, b.key, b.lines)
            notes += k
    assert notes  # the shared weight w feeds every run of the chain
