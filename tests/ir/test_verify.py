"""`verify` and hand-built networkx graphs: each broken rule names the node, its line, the rule."""

import networkx as nx
import numpy as np
import pytest

import graphc as gc
from graphc.errors import GraphError, ShapeError
from tests.models import seed_net


def hand_built() -> nx.MultiDiGraph:
    """loss = sum(tanh(x) * w), written against the schema with plain networkx."""
    G = nx.MultiDiGraph(name="hand", outputs={"loss": 4})
    G.add_node(
        0,
        op="input",
        role="data",
        name="x",
        shape=("N", 2),
        dtype="float64",
        params={},
        loc="hand.py:1",
    )
    G.add_node(
        1,
        op="input",
        role="param",
        name="w",
        shape=(2,),
        dtype="float64",
        params={},
        loc="hand.py:2",
    )
    G.add_node(2, op="tanh", params={}, loc="hand.py:3")
    G.add_node(3, op="mul", params={}, loc="hand.py:4")
    G.add_node(4, op="sum", params={"axis": (0, 1)}, loc="hand.py:5")
    G.add_edge(0, 2, port=0)
    G.add_edge(2, 3, port=0)
    G.add_edge(1, 3, port=1)
    G.add_edge(3, 4, port=0)
    return G


def test_hand_built_graph_evaluates_and_differentiates():
    G = hand_built()
    x, w = np.array([[0.1, 0.2], [0.3, -0.4]]), np.array([2.0, -1.0])
    assert gc.evaluate(G, {"x": x, "w": w})["loss"] == pytest.approx(np.sum(np.tanh(x) * w))
    _, grads = gc.value_and_grad(G, {"x": x, "w": w}, of="loss")
    np.testing.assert_allclose(grads["w"], np.tanh(x).sum(0), rtol=1e-14)
    g = gc.Graph.from_networkx(G)
    assert g.nx.nodes[3]["shape"] == ("N", 2)  # inferred and filled in
    assert g.nx.nodes[4]["params"] == {"axis": (0, 1), "keepdims": False}


def broken(edit) -> nx.MultiDiGraph:
    G = hand_built()
    edit(G)
    return G


CASES = {
    "cycle": (lambda G: G.add_edge(3, 2, port=1), GraphError, r"cycle: v2 \(tanh\) at hand.py:3"),
    "unknown op": (
        lambda G: G.nodes[2].update(op="tanhh"),
        GraphError,
        r"v2 \(tanhh\) at hand.py:3: unknown op 'tanhh'",
    ),
    "missing operand": (
        lambda G: G.remove_edge(1, 3),
        GraphError,
        r"v3 \(mul\) at hand.py:4: mul takes operands on ports 0..1.*\[0\]",
    ),
    "duplicate port": (lambda G: G.add_edge(0, 3, port=0), GraphError, r"ports \[0, 0, 1\]"),
    "extra operand": (lambda G: G.add_edge(0, 2, port=1), GraphError, r"tanh takes operands"),
    "leaf with operand": (
        lambda G: G.add_edge(1, 0, port=0),
        GraphError,
        r"v0 'x' \(input\) at hand.py:1: a leaf",
    ),
    "unknown param": (
        lambda G: G.nodes[2].update(params={"alpha": 1}),
        GraphError,
        r"v2 \(tanh\) at hand.py:3: tanh takes no parameter 'alpha'",
    ),
    "bad axis": (
        lambda G: G.nodes[4].update(params={"axis": (0, 5)}),
        ShapeError,
        r"v4 \(sum\) at hand.py:5:.*axis",
    ),
    "shape mismatch": (
        lambda G: G.nodes[1].update(shape=(3,)),
        ShapeError,
        r"v3 \(mul\) at hand.py:4: dimensions 2 and 3 cannot broadcast",
    ),
    "wrong recorded shape": (
        lambda G: G.nodes[2].update(shape=(5,), dtype="float64"),
        ShapeError,
        r"v2 \(tanh\) at hand.py:3: recorded shape",
    ),
    "bad role": (lambda G: G.nodes[1].update(role="weight"), GraphError, r"role must be"),
    "bad dtype": (lambda G: G.nodes[1].update(dtype="uint16"), GraphError, r"dtype 'uint16'"),
    "duplicate name": (lambda G: G.nodes[1].update(name="x"), GraphError, r"also used by v0"),
    "dangling output": (
        lambda G: G.graph["outputs"].update(bad=99),
        GraphError,
        r"output 'bad' refers to node 99",
    ),
    "string id": (lambda G: G.add_node("a", op="tanh"), GraphError, r"node id 'a' is not an int"),
    "const without value": (
        lambda G: G.add_node(9, op="const", shape=(), dtype="float64", params={}, loc="hand.py:9"),
        GraphError,
        r"v9 \(const\) at hand.py:9: 'value' must be",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_broken_rule_is_named(case):
    edit, error, pattern = CASES[case]
    with pytest.raises(error, match=pattern):
        gc.Graph.from_networkx(broken(edit))


def test_not_a_multidigraph():
    with pytest.raises(GraphError, match="MultiDiGraph"):
        gc.Graph.from_networkx(nx.DiGraph())


def test_builder_graphs_verify():
    gc.verify(seed_net())
    gc.verify(gc.simplify(gc.grad(seed_net(), of="loss")))


def test_verify_does_not_fill_unless_asked():
    G = hand_built()
    with pytest.raises(ShapeError, match="recorded shape None"):
        gc.verify(G)


def test_evaluate_errors_name_the_input():
    g = seed_net()
    ok = {
        "x": np.ones((2, 3)),
        "y": np.ones((2, 2)),
        "W1": np.ones((2, 3)),
        "b1": np.ones(2),
        "W2": np.ones((2, 2)),
        "b2": np.ones(1),
    }
    bad = [
        ({k: v for k, v in ok.items() if k != "W2"}, "missing input W2"),
        (dict(ok, extra=np.ones(1)), "unknown input extra"),
        (
            dict(ok, W1=np.ones((3, 2))),
            r"input 'W1': expected shape \[2,3\], got \(3, 2\).*declared at models.py:\d+",
        ),
        (dict(ok, b1=np.ones((2, 1))), r"input 'b1': expected 1 dimensions"),
        (dict(ok, y=np.ones((3, 2))), r"input 'y': axis 0 is N=3, but 'x' bound N=2"),
        (dict(ok, x=np.ones((2, 3), dtype=complex)), r"input 'x': expected a float64 array, got c"),
        (dict(ok, x=np.array([["a"] * 3] * 2)), r"input 'x': expected a float64 array, got <U1"),
        (
            dict(ok, x=np.ones((2, 3), dtype=np.int64)),
            r"input 'x': expected a float64 array, got i",
        ),
        (dict(ok, x=[[True] * 3] * 2), r"'x': expected a float64 array, got bool from a list"),
    ]
    for inputs, pattern in bad:
        with pytest.raises(gc.InputError, match=pattern):
            gc.evaluate(g, inputs)
    with pytest.raises(gc.InputError, match="no output 'nope'"):
        gc.evaluate(g, ok, outputs=["nope"])
    # Python numbers have no dtype of their own: converted (as compiled modules do)
    assert gc.evaluate(g, dict(ok, x=[[1, 2, 3]] * 2))["loss"].dtype == np.float64
