"""The builder: operators, constants, locs, determinism, build-time shape errors."""

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GraphError, ShapeError
from tests.models import seed_net


def test_operators_build_the_named_ops():
    g = gc.Graph("ops")
    x = g.input("x", shape=("N", 3))
    w = g.param("w", shape=(3, 3))
    ops = {
        "add": x + 1,
        "sub": 1 - x,
        "mul": x * x,
        "div": x / 2,
        "pow": x**2,
        "matmul": x @ w,
        "neg": -x,
        "transpose": w.T,
        "less": x < 0,
        "greater_equal": x >= 0,
    }
    for op, v in ops.items():
        assert v.op == op
    assert (+x) is x
    assert (x @ w).shape == ("N", 3) and w.T.shape == (3, 3) and (x < 0).dtype == "bool"


def test_scalars_and_arrays_become_consts_in_the_operand_dtype():
    g = gc.Graph("c")
    x = g.input("x", shape=(3,), dtype="float32")
    y = x * 2
    c = g.nx.nodes[y.id]
    assert y.dtype == "float32"
    two = [g.nx.nodes[u] for u in g.nx.predecessors(y.id) if u != x.id][0]
    assert two["op"] == "const" and two["dtype"] == "float32" and two["value"] == 2
    z = x + np.array([1.0, 2.0, 3.0])  # a float64 array keeps its dtype and promotes
    assert z.dtype == "float64" and c["op"] == "mul"
    r = np.ones(3) + x  # ndarray on the left defers to the Value
    assert r.op == "add" and r.dtype == "float64"


def test_every_node_records_the_users_line():
    g = gc.Graph("loc")
    x = g.input("x", shape=(2,))
    y = gc.tanh(x)
    line = y.attrs["loc"]
    assert line.startswith("test_builder.py:")
    assert int(line.split(":")[1]) == int(x.attrs["loc"].split(":")[1]) + 1


def test_same_model_gives_the_same_graph():
    a, b = seed_net(), seed_net()
    assert a.to_json() == b.to_json()
    assert str(a) == str(b)
    assert list(a.nx.nodes) == sorted(a.nx.nodes)


def test_matmul_shape_mismatch_names_operands_shapes_and_line():
    g = gc.Graph("bad")
    x = g.input("x", shape=("N", 3))
    W1 = g.param("W1", shape=(2, 3))
    with pytest.raises(ShapeError) as e:
        x @ W1  # noqa: B018
    msg = str(e.value)
    assert "matmul" in msg and "test_builder.py:" in msg
    assert "f64[N,3]" in msg and "f64[2,3]" in msg and "inner dimensions 3 and 2" in msg
    assert len(g) == 2  # the failed node is not left behind


def test_broadcast_mismatch_and_symbol_mismatch():
    g = gc.Graph("bad")
    x = g.input("x", shape=("N", 3))
    y = g.input("y", shape=("M", 3))
    with pytest.raises(ShapeError, match="cannot broadcast"):
        x + y
    with pytest.raises(ShapeError, match="3 and 4 cannot broadcast"):
        x + g.input("z", shape=(4,))


def test_bad_leaves_and_names():
    g = gc.Graph("leaves")
    g.input("x", shape=(2,))
    with pytest.raises(GraphError, match="already used"):
        g.input("x", shape=(3,))
    with pytest.raises(GraphError, match="identifier"):
        g.input("not ok", shape=(3,))
    with pytest.raises(GraphError, match="dtype"):
        g.input("z", shape=(3,), dtype="float16")
    with pytest.raises(ShapeError, match="negative"):
        g.param("w", shape=(-1, 3))
    with pytest.raises(GraphError, match="identifier"):
        gc.Graph("two words")


def test_values_of_another_graph_are_refused():
    a, b = gc.Graph("a"), gc.Graph("b")
    x, y = a.input("x", shape=(2,)), b.input("y", shape=(2,))
    with pytest.raises(GraphError, match="belongs to graph 'a'"):
        y + x


def test_value_has_no_truth_value():
    g = gc.Graph("t")
    x = g.input("x", shape=(2,))
    with pytest.raises(TypeError, match="gc.where"):
        if x > 0:
            pass


def test_methods_and_reshape():
    g = gc.Graph("m")
    x = g.input("x", shape=("N", 2, 3))
    assert x.reshape("N", -1).shape == ("N", 6)
    with pytest.raises(ShapeError, match="cannot infer -1"):
        x.reshape(-1, 4)
    assert x.reshape(-1).shape == ("6*N",)  # a product of a symbol is one dimension
    assert x.reshape(6, -1).shape == (6, "N")
    assert x.sum(axis=(1, 2)).shape == ("N",)
    assert x.mean(-1, keepdims=True).shape == ("N", 2, 1)
    assert x.max().shape == ()
    assert x.transpose(2, 0, 1).shape == (3, "N", 2)
    assert x.T.shape == (3, 2, "N")
    with pytest.raises(ShapeError, match="sizes differ"):
        x.reshape("N", 5)
    with pytest.raises(ShapeError, match="out of range"):
        x.sum(axis=3)


def test_output_names():
    g = gc.Graph("o")
    x = g.input("x", shape=(2,))
    g.output("y", x)
    with pytest.raises(GraphError, match="already used"):
        g.output("y", x)
    with pytest.raises(GraphError, match="printable"):
        g.output("bad\nname", x)
    assert g["y"].id == x.id and g["x"].id == x.id
    with pytest.raises(KeyError, match="no output or input"):
        g["zzz"]
