"""`simplify`: each rule, folding, CSE, DCE; results unchanged; gradient graphs shrink."""

import numpy as np
import pytest

import graphc as gc
from graphc.passes.simplify import RULES
from tests.models import mlp, seed_net


def ops_of(g: gc.Graph) -> list[str]:
    return sorted(a["op"] for _, a in g.nx.nodes(data=True) if a["op"] not in ("input", "const"))


def single(build, shape=(3,)):
    g = gc.Graph("s")
    x = g.input("x", shape=shape)
    g.output("y", build(x))
    return g


@pytest.mark.parametrize(
    "build, remaining",
    [
        (lambda x: x + 0, []),
        (lambda x: 0 + x, []),
        (lambda x: x - 0, []),
        (lambda x: 0 - x, ["neg"]),
        (lambda x: x * 1, []),
        (lambda x: 1 * x, []),
        (lambda x: x * -1, ["neg"]),
        (lambda x: x / 1, []),
        (lambda x: x**1, []),
        (lambda x: gc.neg(gc.neg(x)), []),
        (lambda x: x.T.T, []),
        (lambda x: gc.transpose(gc.transpose(x, (1, 2, 0)), (1, 2, 0)), ["transpose"]),
        (lambda x: gc.transpose(gc.transpose(x, (1, 2, 0)), (2, 0, 1)), []),
        (lambda x: gc.reshape(gc.reshape(x, (6, 2)), (3, 4)), ["reshape"]),
        (lambda x: gc.reshape(x, x.shape), []),
        (lambda x: gc.broadcast_to(x, x.shape), []),
        (lambda x: gc.sum(x, axis=()), []),
        (lambda x: gc.cast(gc.cast(x, "float32"), "float64"), ["cast", "cast"]),
        (lambda x: x * gc.size(x, (0, 1)), ["mul"]),
    ],
)
def test_identity_rules(build, remaining):
    g = single(build, shape=(2, 3, 2))
    s = gc.simplify(g)
    assert ops_of(s) == remaining
    x = np.random.default_rng(0).normal(size=(2, 3, 2))
    np.testing.assert_array_equal(gc.evaluate(s, {"x": x})["y"], gc.evaluate(g, {"x": x})["y"])


def test_rule_table_is_documented():
    for fns in RULES.values():
        for fn in fns:
            assert fn.__doc__ and "->" in fn.__doc__


def test_broadcasting_identities_are_not_applied():
    g = gc.Graph("b")
    x = g.input("x", shape=())
    g.output("y", x * np.ones(3))  # x * 1 is not x: the shape changes
    s = gc.simplify(g)
    assert ops_of(s) == ["mul"]
    np.testing.assert_array_equal(gc.evaluate(s, {"x": 2.0})["y"], [2.0, 2.0, 2.0])


def test_nan_safe_no_multiply_by_zero_rule():
    g = single(lambda x: x * 0)
    out = gc.evaluate(gc.simplify(g), {"x": np.array([np.inf, np.nan, 1.0])})["y"]
    assert np.isnan(out[0]) and np.isnan(out[1]) and out[2] == 0


def test_constant_folding():
    g = gc.Graph("f")
    x = g.input("x", shape=(2,))
    c = g.const(np.array([1.0, 4.0]))
    g.output("y", x + gc.sqrt(c) * 2 - gc.exp(g.const(0.0)))
    s = gc.simplify(g)
    assert ops_of(s) == ["add", "sub"] or ops_of(s) == ["add"]
    np.testing.assert_allclose(gc.evaluate(s, {"x": np.zeros(2)})["y"], [1.0, 3.0])


def test_cse_and_dce():
    g = gc.Graph("c")
    x = g.input("x", shape=(3,))
    unused = g.input("unused", shape=(3,))
    a = gc.tanh(x) * 2
    b = gc.tanh(x) * 2  # the same structure
    gc.exp(x)  # dead
    g.output("y", a + b)
    s = gc.simplify(g)
    assert ops_of(s) == ["add", "mul", "tanh"]
    assert "unused" in s.input_ids() and unused.id in s.nx


def test_surviving_nodes_keep_their_ids():
    g = seed_net()
    s = gc.simplify(g)
    assert set(s.nx.nodes) <= set(g.nx.nodes) | set(range(len(g), s._next_id))
    for n in (7, 9, 13):
        assert s.nx.nodes[n]["op"] == g.nx.nodes[n]["op"]


def test_seed_gradient_graph_shrinks_and_agrees():
    g = seed_net()
    dg = gc.grad(g, of="loss")
    s = gc.simplify(dg)
    assert len(s) < len(dg)
    gc.verify(s)
    rng = np.random.default_rng(0)
    inputs = {
        k: rng.uniform(
            size=(4,) + tuple(d for d in g.nx.nodes[n]["shape"][1:])
            if g.nx.nodes[n]["shape"][:1] == ("N",)
            else tuple(g.nx.nodes[n]["shape"])
        )
        for k, n in g.input_ids().items()
    }
    a, b = gc.evaluate(dg, inputs), gc.evaluate(s, inputs)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-14)


def test_simplify_is_idempotent_and_deterministic():
    g, _ = mlp(np.random.default_rng(0))
    s = gc.simplify(gc.grad(g, of="loss"))
    assert gc.simplify(s).to_json() == s.to_json()
    assert gc.simplify(gc.grad(g, of="loss")).to_json() == s.to_json()


def _transformer() -> gc.Graph:
    g = gc.Graph("block")
    h = g.input("x", shape=("N", 6, 8))
    h = gc.nn.transformer_encoder_block(h, 2, 16, "block")
    g.output("loss", gc.mean(h**2))
    return g


def _lstm() -> gc.Graph:
    g = gc.Graph("lstm")
    x = g.input("x", shape=("N", "T", 3))
    g.output("loss", gc.sum(gc.nn.lstm(x, 4, "lstm") ** 2))
    return g


@pytest.mark.parametrize(
    "build", [seed_net, lambda: mlp(np.random.default_rng(0))[0], _transformer, _lstm]
)
def test_an_adjoint_simplified_from_where_grad_began_is_the_whole_one(build):
    """The nodes of a simplified graph that grad added to are kept as they are (`settled`):
    the result is the graph that simplifying all of it gives."""
    s = gc.simplify(build())
    dg = gc.grad(s, of="loss")
    assert gc.simplify(dg, settled=s.next_id).to_json() == gc.simplify(dg).to_json()


def test_size_reads_an_input_with_the_same_dims():
    """size only needs a shape: it is rewritten to read an input (alive for the whole call)
    rather than keep the value it measured alive for the backward pass."""
    g = gc.Graph("sz")
    x = g.input("x", shape=("N", 3))
    g.output("loss", gc.mean(gc.exp(x) * 2.0))
    h = gc.simplify(gc.grad(g, of="loss", wrt=["x"]))
    G = h.nx
    sizes = [n for n in G if G.nodes[n]["op"] == "size"]
    assert sizes and all(G.nodes[u]["op"] == "input" for n in sizes for u in G.predecessors(n))
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=(4, 3))}
    got, want = gc.evaluate(h, inputs), gc.evaluate(gc.grad(g, of="loss", wrt=["x"]), inputs)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
