"""JSON round trip and the text printer."""

import json

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GraphError
from tests.models import mlp, seed_net


def test_json_round_trip_is_exact():
    g, inputs = mlp(np.random.default_rng(0))
    text = g.to_json()
    h = gc.Graph.from_json(text)
    assert h.to_json() == text
    assert str(h) == str(g)
    np.testing.assert_array_equal(gc.evaluate(h, inputs)["loss"], gc.evaluate(g, inputs)["loss"])
    dg = gc.simplify(gc.grad(g, of="loss"))
    dh = gc.Graph.from_json(dg.to_json())
    out_g, out_h = gc.evaluate(dg, inputs), gc.evaluate(dh, inputs)
    for k in out_g:
        np.testing.assert_array_equal(out_g[k], out_h[k])


def test_constants_round_trip_bit_for_bit():
    g = gc.Graph("c")
    x = g.input("x", shape=(3,))
    vals = np.array([0.1, 1 / 3, -2.5e-300])
    g.output("y", x * vals + np.float32(1.5))
    h = gc.Graph.from_json(g.to_json())
    consts = [a["value"] for _, a in h.nx.nodes(data=True) if a["op"] == "const"]
    assert any(c.dtype == np.float64 and np.array_equal(c, vals) for c in consts)


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("not json", "not a graphc model"),
        ("[]", "not a graphc model"),
        (
            '{"nodes": [{"id": 0, "op": "system"}], "edges": [], "directed": true,'
            ' "multigraph": true, "graph": {"outputs": {}}}',
            "unknown op 'system'",
        ),
        (
            '{"nodes": [{"id": 0, "op": "const", "shape": [], "dtype": "float64", "params": {},'
            ' "value": {"dtype": "object", "shape": [], "data": 1}}], "edges": [],'
            ' "directed": true, "multigraph": true, "graph": {"outputs": {}}}',
            "const 'value' is malformed",
        ),
    ],
)
def test_malformed_json_is_a_graph_error(text, pattern):
    with pytest.raises(GraphError, match=pattern):
        gc.Graph.from_json(text)


def test_json_is_plain_data():
    data = json.loads(seed_net().to_json())
    assert {"nodes", "edges", "graph"} <= set(data)
    assert data["graph"]["outputs"] == [["loss", 17]]  # pairs: the outputs keep their order


def test_printer_format():
    text = str(seed_net())
    lines = text.splitlines()
    assert lines[0] == "graph seed_net {" and lines[-1] == "}"
    assert lines[1].startswith("  v0:f64[N,3] = data x")
    assert "# models.py:" in lines[1]
    assert any(line.strip().startswith("v7:f64[N,2] = matmul v0 v6") for line in lines)
    assert lines[-2] == "  return loss=v17"


def test_the_outputs_keep_their_order_through_json():
    g = gc.Graph("ordered")
    x = g.input("x", shape=(2,))
    g.output("zeta", gc.tanh(x))
    g.output("alpha", gc.sum(x))
    assert list(gc.Graph.from_json(g.to_json()).outputs) == ["zeta", "alpha"]
    data = json.loads(g.to_json())
    data["graph"]["outputs"] = {"alpha": 2, "zeta": 1}  # a file from before: an object
    old = json.dumps(data)
    assert gc.Graph.from_json(old).outputs == {"alpha": 2, "zeta": 1}
    with pytest.raises(gc.GraphError, match="'outputs' must be a list of"):
        gc.Graph.from_json(g.to_json().replace('"zeta"', "7"))
