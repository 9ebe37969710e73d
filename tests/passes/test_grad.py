"""Reverse-mode `grad`: fan-out, wrt selection, errors, deep graphs, higher order."""

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GraphError, ShapeError
from tests.models import central_diff, mlp, seed_net


def test_fan_out_sums_cotangents():
    g = gc.Graph("fan")
    x = g.param("x", shape=(3,))
    g.output("loss", gc.sum(x * x * x + gc.exp(x) * x))  # x used five times
    xv = np.array([0.3, -1.2, 2.0])
    _, grads = gc.value_and_grad(g, {"x": xv}, of="loss")
    np.testing.assert_allclose(grads["x"], 3 * xv**2 + np.exp(xv) * (1 + xv), rtol=1e-14)


def test_mlp_against_finite_differences():
    g, inputs = mlp(np.random.default_rng(1))
    _, grads = gc.value_and_grad(g, inputs, of="loss")
    for name in ("W1", "b1", "W2"):
        num = central_diff(
            lambda v, n=name: gc.evaluate(g, dict(inputs, **{n: v}))["loss"], inputs[name]
        )
        np.testing.assert_allclose(grads[name], num, rtol=1e-6, atol=1e-9)


def test_wrt_a_data_input_and_default_params():
    g = seed_net()
    dg = gc.grad(g, of="loss", wrt=["x"])
    assert [k for k in dg.outputs if k != "loss"] == ["dloss/dx"]
    dg = gc.grad(g, of="loss")
    want = [f"dloss/d{p}" for p in ("W1", "b1", "W2", "b2")]
    assert [k for k in dg.outputs if k != "loss"] == want


def test_input_graph_is_not_mutated():
    g = seed_net()
    before = (g.to_json(), dict(g.outputs))
    gc.simplify(gc.grad(g, of="loss"))
    assert (g.to_json(), dict(g.outputs)) == before


def test_unused_wrt_is_an_error_unless_allowed():
    g = gc.Graph("unused")
    a = g.param("a", shape=(2,))
    b = g.param("b", shape=(3, "N"))
    g.input("x", shape=("N",))
    g.output("loss", gc.sum(a * 2.0))
    with pytest.raises(GraphError, match="does not depend on 'b'.*allow_unused"):
        gc.grad(g, of="loss")
    dg = gc.grad(g, of="loss", allow_unused=True)
    out = gc.evaluate(dg, {"a": np.ones(2), "b": np.ones((3, 4)), "x": np.ones(4)})
    np.testing.assert_array_equal(out["dloss/db"], np.zeros((3, 4)))
    np.testing.assert_array_equal(out["dloss/da"], [2.0, 2.0])
    assert b.shape == (3, "N")


def test_dependence_only_through_a_comparison_is_unused():
    g = gc.Graph("cmp")
    a = g.param("a", shape=(2,))
    w = g.param("w", shape=(2,))
    g.output("loss", gc.sum(gc.where(a > 0, w, w * 2)))
    with pytest.raises(GraphError, match="does not depend on 'a'"):
        gc.grad(g, of="loss")
    _, grads = gc.value_and_grad(
        g, {"a": np.array([1.0, -1.0]), "w": np.ones(2)}, of="loss", wrt="w"
    )
    np.testing.assert_array_equal(grads["w"], [1.0, 2.0])


def test_non_scalar_of_names_node_and_line():
    g = gc.Graph("vec")
    x = g.param("x", shape=("N", 2))
    g.output("y", gc.tanh(x))  # this line is named in the error
    with pytest.raises(ShapeError, match=r"of='y' must be a scalar.*tanh.*test_grad\.py:\d+"):
        gc.grad(g, of="y")


def test_unknown_of_and_wrt():
    g = seed_net()
    with pytest.raises(GraphError, match="of='nope' is not an output"):
        gc.grad(g, of="nope")
    with pytest.raises(GraphError, match="wrt 'W9' is not an input"):
        gc.grad(g, of="loss", wrt="W9")


def test_deep_chain_of_20k_ops_has_no_recursion_limit():
    n_ops = 20_000  # twenty times Python's default recursion limit
    g = gc.Graph("deep")
    x = g.param("x", shape=(3,))
    v = x
    for i in range(n_ops):
        v = gc.tanh(v) if i % 2 else v * 1.0001
    g.output("loss", gc.sum(v))
    dg = gc.grad(g, of="loss")
    xv = np.array([0.5, -0.25, 1.0])
    got = gc.evaluate(dg, {"x": xv})["dloss/dx"]
    # Independent reference: forward-mode recurrence in NumPy.
    val, deriv = xv.copy(), np.ones(3)
    for i in range(n_ops):
        if i % 2:
            val = np.tanh(val)
            deriv = deriv * (1 - val * val)
        else:
            val, deriv = val * 1.0001, deriv * 1.0001
    np.testing.assert_allclose(got, deriv, rtol=1e-9)


def test_hessian_vector_product_matches_finite_differences():
    rng = np.random.default_rng(3)
    g, inputs = mlp(rng)
    dg = gc.grad(g, of="loss", wrt="W1")
    v = dg.input("v", shape=dg["W1"].shape)
    dg.output("gv", gc.sum(dg["dloss/dW1"] * v))
    hvp_graph = gc.grad(dg, of="gv", wrt="W1")
    vv = rng.normal(size=inputs["W1"].shape)
    hv = gc.evaluate(gc.simplify(hvp_graph), dict(inputs, v=vv))["dgv/dW1"]

    def grad_dot_v(w):
        return gc.evaluate(dg, dict(inputs, W1=w, v=vv))["gv"]

    np.testing.assert_allclose(hv, central_diff(grad_dot_v, inputs["W1"]), rtol=1e-6, atol=1e-9)


def test_second_derivative_of_elementwise_functions():
    g = gc.Graph("d2")
    x = g.param("x", shape=(4,))
    g.output("f", gc.sum(gc.sigmoid(x) * gc.log(x) + gc.sqrt(x)))
    d1 = gc.grad(g, of="f")
    d1.output("s", gc.sum(d1["df/dx"]))
    d2 = gc.grad(d1, of="s")  # diagonal Hessian: elementwise f''
    xv = np.array([0.4, 0.9, 1.7, 3.0])
    got = gc.evaluate(d2, {"x": xv})["ds/dx"]

    def fprime(v):
        return gc.evaluate(d1, {"x": v})["s"]

    np.testing.assert_allclose(got, central_diff(fprime, xv), rtol=1e-6)


def test_gradient_node_locs_point_at_the_forward_line():
    g = gc.Graph("loc")
    x = g.param("x", shape=(2,))
    y = gc.tanh(x)  # LINE_TANH
    g.output("loss", gc.sum(y))
    dg = gc.grad(g, of="loss")
    tanh_loc = g.nx.nodes[y.id]["loc"]
    new = [a for n, a in dg.nx.nodes(data=True) if n not in g.nx]
    assert tanh_loc in {a["loc"] for a in new}
    assert all(a["loc"].startswith("test_grad.py:") for a in new)


def test_grad_dtype_float32_stays_float32():
    g = gc.Graph("f32")
    x = g.param("x", shape=(3,), dtype="float32")
    g.output("loss", gc.sum(gc.tanh(x) * 2.0))
    dg = gc.grad(g, of="loss")
    out = gc.evaluate(dg, {"x": np.ones(3, np.float32)})
    assert out["dloss/dx"].dtype == np.float32
    assert dg["dloss/dx"].dtype == "float32"
