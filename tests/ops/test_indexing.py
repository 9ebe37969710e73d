"""Int inputs, indices out of range (interpreter and compiled module), NumPy's basic indexing
on Values, and the variadic concat in the IR. The ops' values and gradients are checked by the
registry's table (cases_indexing.py) and the compiled models (tests/codegen)."""

from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pytest

import graphc as gc
from graphc.errors import GraphError, InputError, ShapeError

# ---- int inputs in the interpreter ------------------------------------------------------------


def _lookup() -> gc.Graph:
    g = gc.Graph("lookup")
    table = g.param("table", shape=(5, 2))
    t = g.input("t", shape=("N",), dtype="int32")
    g.output("out", gc.take(table, t))
    return g


TABLE = np.arange(10.0).reshape(5, 2)


@pytest.mark.parametrize(
    "t", [np.array([0, 4, -1], np.int64), np.array([1, 2], np.uint8), [3, -5], np.int16(2)]
)
def test_int_input_takes_any_integers(t) -> None:
    g = _lookup()
    if np.ndim(t) == 0:
        g = gc.Graph("lookup0")
        g.output("out", gc.take(g.param("table", shape=(5, 2)), g.input("t", dtype="int32")))
    out = gc.evaluate(g, {"table": TABLE, "t": t})["out"]
    np.testing.assert_array_equal(out, np.take(TABLE, np.asarray(t), axis=0))


@pytest.mark.parametrize(
    "t, message",
    [
        (np.array([0.0, 1.0]), "expected an int32 array, got float64"),
        (np.array([True, False]), "expected an int32 array, got bool"),
        ([0.0, 1.0], "expected an int32 array, got float64 from a list"),
        (np.array([0, 2**40]), "values from 0 to 1099511627776 do not fit int32"),
    ],
)
def test_int_input_refuses_floats_bools_and_overflow(t, message) -> None:
    with pytest.raises(InputError, match=f"input 't': {message}"):
        gc.evaluate(_lookup(), {"table": TABLE, "t": t})


def test_int_inputs_have_no_gradient() -> None:
    g = _lookup()
    g.output("loss", gc.sum(g["out"]))
    with pytest.raises(GraphError, match="only float inputs have gradients"):
        gc.grad(g, "loss", ["table", "t"])
    dg = gc.grad(g, "loss")  # the params by default: table only
    assert gc.grad_name("loss", "t") not in dg.outputs


def test_ints_take_arithmetic_but_no_float_functions() -> None:
    g = gc.Graph("m")
    t = g.input("t", shape=(3,), dtype="int64")
    with pytest.raises(ShapeError, match="needs float operands, got int64"):
        gc.tanh(t)
    assert (t * 2 + 1).dtype == "int64"  # ints compute as ints (ops/_dtypes.py)
    assert gc.cast(g.param("x", shape=(3,)), "int32").dtype == "int32"
    assert gc.cast(t, "float32").dtype == "float32"
    assert g.const(np.arange(3)).dtype == "float64"  # int arrays are floats unless asked


# ---- indices out of range in the interpreter -------------------------------------------------
@pytest.mark.parametrize("bad", [5, -6, 100])
def test_take_out_of_range_names_op_line_index_and_bound(bad) -> None:
    t = np.array([0, bad, 1])
    pattern = (
        rf"v\d+ \(take\) at test_indexing.py:\d+ .*index {bad} \(at \(1,\) of the indices\) is "
        r"out of bounds for axis 0 with size 5"
    )
    with pytest.raises(InputError, match=pattern):
        gc.evaluate(_lookup(), {"table": TABLE, "t": t})


@pytest.mark.parametrize("bad", [3, -1])
def test_one_hot_out_of_range(bad) -> None:
    g = gc.Graph("m")
    g.output("y", gc.one_hot(g.input("lab", shape=(2,), dtype="int64"), 3))
    np.testing.assert_array_equal(gc.evaluate(g, {"lab": [2, 0]})["y"], np.eye(3)[[2, 0]])
    with pytest.raises(InputError, match=rf"one_hot.*index {bad} .*depth 3 \(labels 0 to 2\)"):
        gc.evaluate(g, {"lab": [0, bad]})


def test_cross_entropy_with_class_labels_equals_one_hot_labels() -> None:
    rng = np.random.default_rng(0)
    z, lab = rng.standard_normal((4, 3)), np.array([2, 0, 1, 1])
    graphs = []
    for labels in ("int", "onehot"):
        g = gc.Graph("xent")
        logits = g.param("z", shape=("N", 3))
        y = g.input("y", shape=("N",) if labels == "int" else ("N", 3),
                    dtype="int64" if labels == "int" else "float64")  # fmt: skip
        g.output("loss", gc.softmax_cross_entropy(logits, y))
        graphs.append((g, lab if labels == "int" else np.eye(3)[lab]))
    (o1, g1), (o2, g2) = (gc.value_and_grad(g, {"z": z, "y": y}, of="loss") for g, y in graphs)
    np.testing.assert_allclose(o1["loss"], o2["loss"], rtol=1e-14)
    np.testing.assert_allclose(g1["z"], g2["z"], rtol=1e-14, atol=1e-16)


# ---- basic indexing on Values, against NumPy --------------------------------------------------
S = np.s_
KEYS = [
    S[:, 1:3], S[..., -1], S[2], S[:, ::2], S[::-1], S[None], S[..., None], S[1, None, ::-2],
    S[-1, -1], S[-1, -1, -1], S[1:100], S[-100:2], S[::-3, 1], S[..., 1, :], S[np.int64(1)],
    S[:, 4:1:-1], S[3:1], S[None, :, None, 1],
]  # fmt: skip


@pytest.mark.parametrize("key", KEYS, ids=[str(k) for k in KEYS])
def test_getitem_matches_numpy(key) -> None:
    x = np.arange(60.0).reshape(3, 5, 4)
    g = gc.Graph("m")
    v = g.param("x", shape=(3, 5, 4))
    out = v[key]
    g.output("y", out)
    want = x[key]
    assert out.shape == want.shape
    np.testing.assert_array_equal(gc.evaluate(g, {"x": x})["y"], want)


@pytest.mark.parametrize("key", [S[:, -1], S[..., 1:3], S[:, None], S[:, ::-1, 0]])
def test_getitem_keeps_symbolic_axes_whole(key) -> None:
    g = gc.Graph("m")
    v = g.param("x", shape=("N", 3, 4))
    g.output("y", v[key])
    assert v[key].shape[0] == "N"
    for n in (0, 1, 3):
        x = np.arange(n * 12.0).reshape(n, 3, 4)
        np.testing.assert_array_equal(gc.evaluate(g, {"x": x})["y"], x[key])


def test_whole_slices_add_no_node() -> None:
    g = gc.Graph("m")
    v = g.param("x", shape=("N", 3))
    before = len(g)
    assert v[:].id == v.id and v[...].id == v.id and v[:, 0:3:1].id == v.id
    assert len(g) == before


def test_values_are_not_iterable() -> None:
    v = gc.Graph("m").param("x", shape=(3,))
    with pytest.raises(TypeError, match="cannot be iterated"):
        list(v)


# ---- the variadic concat in the IR ------------------------------------------------------------
def test_concat_takes_one_or_more_operands() -> None:
    g = gc.Graph("m")
    x = g.param("x", shape=(2,))
    with pytest.raises(GraphError, match="concat .* takes one or more operands, got 0"):
        g.add("concat", [], {"axis": 0})
    assert gc.concat([x]).id == x.id  # one value: itself, no copy
    assert g.add("concat", [x], {"axis": 0}).shape == (2,)


def test_hand_built_concat_verifies_and_round_trips() -> None:
    G = nx.MultiDiGraph(name="cat", outputs={"y": 4})
    for n, shape, dtype in [(0, (2,), "float64"), (1, (3,), "float64")]:
        G.add_node(n, op="input", role="param", name=f"x{n}", shape=shape, dtype=dtype,
                   params={}, loc="cat.py:1")  # fmt: skip
    G.add_node(2, op="input", role="data", name="i", shape=(2,), dtype="int32", params={},
               loc="cat.py:2")  # fmt: skip
    G.add_node(3, op="concat", params={"axis": 0}, loc="cat.py:3")
    G.add_node(4, op="take", params={"axis": 0}, loc="cat.py:4")
    G.add_edges_from([(0, 3, {"port": 0}), (1, 3, {"port": 1}), (0, 3, {"port": 2}),
                      (3, 4, {"port": 0}), (2, 4, {"port": 1})])  # fmt: skip
    g = gc.Graph.from_networkx(G)
    assert g.nx.nodes[3]["shape"] == (7,)
    again = gc.Graph.from_json(g.to_json())
    feed = {"x0": np.array([1.0, 2.0]), "x1": np.array([3.0, 4.0, 5.0]), "i": [6, -7]}
    np.testing.assert_array_equal(gc.evaluate(again, feed)["y"], [2.0, 1.0])
    G.remove_edge(0, 3)
    G.remove_edge(0, 3)
    G.add_edge(0, 3, port=2)
    with pytest.raises(GraphError, match=r"concat takes operands on ports 0, 1, \.\.\."):
        gc.Graph.from_networkx(G)


def test_int_constants_round_trip_through_json() -> None:
    g = gc.Graph("m")
    g.output("y", gc.take(g.param("x", shape=(4,)), np.array([3, -4, 1])))
    again = gc.Graph.from_json(g.to_json())
    x = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(gc.evaluate(again, {"x": x})["y"], [4.0, 1.0, 2.0])


# ---- compiled modules: int arguments and the index checks ---------------------------------------
def _indexed() -> gc.Graph:
    g = gc.Graph("indexed")
    table = g.param("table", shape=(5, 2))
    x = g.param("x", shape=("K", 3))
    t = g.input("t", shape=("N", 3), dtype="int64")  # column 0 is never read
    k = g.input("k", shape=("N",), dtype="int32")
    lab = g.input("lab", shape=("N",), dtype="int64")
    logits = gc.sum(gc.take(table, t[:, 1:]), axis=1)  # line of the take: named in errors
    rows = gc.take(x, k)
    first = gc.take(x, [0, -2])
    g.output("logits", logits)
    g.output("loss", gc.softmax_cross_entropy(logits, lab) + gc.sum(rows) + gc.sum(first))
    return g


def _feed(**changes) -> dict:
    feed = {
        "table": np.arange(10.0).reshape(5, 2) / 10,
        "x": np.arange(6.0).reshape(2, 3),
        "t": np.array([[0, 1, 4], [2, -5, 3]]),
        "k": np.array([1, -2], dtype=np.int32),
        "lab": np.array([1, 0]),
    }
    feed.update(changes)
    return feed


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    return gc.compile(_indexed(), out_dir=tmp_path_factory.mktemp("indexing"))


def _same(module, feed) -> None:
    want_outs, want_grads = gc.value_and_grad(_indexed(), feed, of="loss")
    outs, grads = module.value_and_grad(**feed)
    for name in want_outs:
        np.testing.assert_allclose(outs[name], want_outs[name], rtol=1e-13)
    for name in want_grads:
        np.testing.assert_allclose(grads[name], want_grads[name], rtol=1e-13, atol=1e-15)


@pytest.mark.compiler
@pytest.mark.parametrize(
    "changes, op, problem",
    [
        ({"t": np.array([[0, 1, 4], [2, 5, 3]])}, "take", "index 5 .*axis 0 with size 5"),
        ({"t": np.array([[0, 1, 4], [2, 1, -6]])}, "take", "index -6 .*axis 0 with size 5"),
        ({"k": np.array([1, 2], np.int32)}, "take", "index 2 .*axis 0 with size 2"),
        ({"k": np.array([-3, 0], np.int32)}, "take", "index -3 .*axis 0 with size 2"),
        ({"lab": np.array([1, 2])}, "one_hot", "index 2 .*one_hot with depth 2"),
        ({"lab": np.array([-1, 0])}, "one_hot", "index -1 .*one_hot with depth 2"),
        ({"x": np.zeros((1, 3)), "k": np.array([0, 0], np.int32)}, "take",
         "index -2 .*axis 0 with size 1"),  # the constant [0, -2] against K = 1
    ],
)  # fmt: skip
def test_compiled_index_out_of_range_is_a_clear_error(indexed, changes, op, problem) -> None:
    feed = _feed(**changes)
    where = rf"v\d+ \({op}\) at test_indexing.py:\d+"
    with pytest.raises(
        InputError, match=rf"{where} cannot run on these inputs: {problem}"
    ) as interpreted:
        gc.evaluate(_indexed(), feed)
    for call in (indexed.forward, indexed.value_and_grad):
        with pytest.raises(
            InputError, match=rf"{call.__name__}\(\): {where}: {problem}"
        ) as compiled:
            call(**feed)
        node = re.search(r"v\d+ \(\w+\) at [\w.]+:\d+", str(compiled.value)).group()
        assert node in str(interpreted.value)


@pytest.mark.compiler
def test_compiled_indices_a_slice_drops_are_not_checked(indexed) -> None:
    """Column 0 of t is sliced away before the take: its values index nothing."""
    feed = _feed(t=np.array([[99, 1, 4], [-99, -5, 3]]))
    _same(indexed, feed)


@pytest.mark.compiler
@pytest.mark.parametrize(
    "t",
    [
        np.array([[0, 1, 4], [2, -5, 3]], dtype=np.int32),
        np.array([[0, 1, 4], [2, 0, 3]], dtype=np.uint8),
        [[0, 1, 4], [2, -5, 3]],
        np.array([[0, 0, 1, 0, 4, 0], [2, 0, -5, 0, 3, 0]])[:, ::2],  # not contiguous
    ],
    ids=["int32", "uint8", "list", "strided"],
)
def test_compiled_int_argument_takes_any_integers(indexed, t) -> None:
    _same(indexed, _feed(t=t))


@pytest.mark.compiler
@pytest.mark.parametrize(
    "name, value, error, message",
    [
        ("t", np.zeros((2, 3)), TypeError, "argument 't': expected an int64 array, got float64"),
        ("t", np.zeros((2, 3), bool), TypeError, "argument 't': expected an int64 array, got bool"),
        ("k", np.array([0, 2**40]), ValueError, "argument 'k': values from 0 to .* fit int32"),
        ("t", np.zeros((2, 2), np.int64), ValueError, "argument 't': expected shape \\(N, 3\\)"),
        ("lab", np.zeros((2, 1), np.int64), ValueError, "argument 'lab': expected 1 dim"),
    ],
)
def test_compiled_int_argument_errors(indexed, name, value, error, message) -> None:
    with pytest.raises(error, match=message):
        indexed.forward(**_feed(**{name: value}))


def test_bad_constant_index_of_a_hand_built_graph() -> None:
    """The builder refuses it, and so does verify for a graph made otherwise, naming the
    node."""
    with pytest.raises(ShapeError, match="index 3 .*is out of bounds for axis 0 with size 3"):
        gc.take(gc.Graph("m").param("x", shape=(3,)), [3])
    G = nx.MultiDiGraph(name="m", outputs={"y": 3})
    G.add_node(0, op="input", role="param", name="x", shape=(3,), dtype="float64", params={},
               loc="m.py:1")  # fmt: skip
    G.add_node(1, op="const", value=np.array([[0, -4]]), shape=(1, 2), dtype="int64",
               params={}, loc="m.py:2")  # fmt: skip
    G.add_node(2, op="transpose", params={"perm": (1, 0)}, loc="m.py:3")
    G.add_node(3, op="take", params={"axis": 0}, loc="m.py:4")
    G.add_edges_from([(1, 2, {"port": 0}), (0, 3, {"port": 0}), (2, 3, {"port": 1})])
    pattern = r"v3 \(take\) at m.py:4: index -4 \(at \(1, 0\) of the indices\) .*size 3"
    with pytest.raises(ShapeError, match=pattern):
        gc.Graph.from_networkx(G)
    with pytest.raises(ShapeError, match=pattern):
        gc.evaluate(G, {"x": np.zeros(3)})
