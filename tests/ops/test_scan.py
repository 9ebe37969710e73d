"""gc.scan in the IR: the builder, the interpreter, JSON and the printer, its errors, and its
derivatives (first and second order, forward mode) against the same model unrolled and
against finite differences."""

from __future__ import annotations

import json

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GraphError, ShapeError
from graphc.gradcheck import check_grad
from graphc.passes.derivatives import hvp, jvp

T, N, D, H = 4, 3, 2, 5


def _lstm_cell(W, U, b):
    def cell(s, x):
        a = x @ W + s["h"] @ U + b
        i, f, g, o = (a[:, k * H : (k + 1) * H] for k in range(4))
        c = gc.sigmoid(f) * s["c"] + gc.sigmoid(i) * gc.tanh(g)
        h = gc.sigmoid(o) * gc.tanh(c)
        return {"h": h, "c": c}, (h, gc.sum(c, axis=1))

    return cell


def lstm_model(unroll: bool, reverse: bool = False, steps: int | str = T) -> gc.Graph:
    """An LSTM-like loop with a dict carry, two per-step results and captured params; the
    same model unrolled by hand when `unroll`."""
    g = gc.Graph("lstm")
    xs = g.input("xs", shape=(steps, "N", D))
    h0 = g.input("h0", shape=("N", H))
    c0 = g.param("c0", shape=("N", H))
    W = g.param("W", shape=(D, 4 * H))
    U = g.param("U", shape=(H, 4 * H))
    b = g.param("b", shape=(4 * H,))
    cell = _lstm_cell(W, U, b)
    if unroll:
        s, got = {"h": h0, "c": c0}, {}
        for t in range(steps - 1, -1, -1) if reverse else range(steps):
            s, got[t] = cell(s, xs[t])
        hs = gc.concat([got[t][0].reshape(1, "N", H) for t in range(steps)], axis=0)
        zs = gc.concat([got[t][1].reshape(1, "N") for t in range(steps)], axis=0)
    else:
        s, (hs, zs) = gc.scan(cell, {"h": h0, "c": c0}, xs, reverse=reverse)
    g.output("loss", gc.sum(hs * hs) + gc.sum(s["c"]) * 0.5 + gc.sum(zs * zs))
    return g


def lstm_inputs(steps: int = T, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "xs": rng.normal(size=(steps, N, D)),
        "h0": rng.normal(size=(N, H)),
        "c0": rng.normal(size=(N, H)),
        "W": rng.normal(size=(D, 4 * H)) * 0.5,
        "U": rng.normal(size=(H, 4 * H)) * 0.5,
        "b": rng.normal(size=4 * H),
    }


WRT = ["W", "U", "b", "h0", "c0", "xs"]


def rnn_graph(steps: int | str = "T") -> gc.Graph:
    """The issue's example: a tanh RNN over xs [T, N, 3] with h0 [N, 4]."""
    g = gc.Graph("rnn")
    xs = g.input("xs", shape=(steps, "N", 3))
    h0 = g.input("h0", shape=("N", 4))
    W = g.param("W", shape=(3, 4))
    U = g.param("U", shape=(4, 4))
    b = g.param("b", shape=(4,))

    def cell(h, x):
        h = gc.tanh(x @ W + h @ U + b)
        return h, h

    h_T, hs = gc.scan(cell, h0, xs)
    g.output("loss", gc.mean(hs**2) + gc.sum(h_T))
    g.output("hs", hs)
    return g


def rnn_inputs(steps: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "xs": rng.normal(size=(steps, 2, 3)),
        "h0": rng.normal(size=(2, 4)),
        "W": rng.normal(size=(3, 4)),
        "U": rng.normal(size=(4, 4)),
        "b": rng.normal(size=4),
    }


def rnn_numpy(inp: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
    h, hs = inp["h0"], []
    for x in inp["xs"]:
        h = np.tanh(x @ inp["W"] + h @ inp["U"] + inp["b"])
        hs.append(h)
    stacked = np.stack(hs) if hs else np.zeros((0, *h.shape))
    return float(np.mean(stacked**2) if hs else np.nan) + h.sum(), stacked


# ---- the interpreter ----------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [5, 1, 0])
def test_interpreter_runs_the_loop(steps: int) -> None:
    g = rnn_graph()
    inp = rnn_inputs(steps)
    got = gc.evaluate(g, inp)
    loss, hs = rnn_numpy(inp)
    assert got["hs"].shape == (steps, 2, 4)
    np.testing.assert_allclose(got["hs"], hs, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(got["loss"], loss, rtol=1e-14, equal_nan=True)


@pytest.mark.parametrize("reverse", [False, True])
def test_matches_the_unrolled_model(reverse: bool) -> None:
    """Values and gradients (d/d every input, captured params included) equal the unrolled
    model's to 1e-12."""
    inp = lstm_inputs()
    loop, unrolled = lstm_model(False, reverse), lstm_model(True, reverse)
    a = gc.evaluate(gc.simplify(gc.grad(loop, "loss", WRT)), inp)
    b = gc.evaluate(gc.simplify(gc.grad(unrolled, "loss", WRT)), inp)
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-12, err_msg=k)


def test_gradients_match_finite_differences() -> None:
    inp = lstm_inputs(steps=3)
    res = check_grad(lstm_model(False, steps=3), inp, "loss", WRT, rtol=1e-6, atol=1e-8)
    assert res.ok, str(res)


def test_symbolic_trip_count_gradient() -> None:
    """T is a symbol bound at call time; the same graph runs at any T, T = 0 included."""
    g = gc.simplify(gc.grad(rnn_graph("T"), "loss", ["W", "U", "b", "h0", "xs"]))
    for steps in (3, 0):
        inp = rnn_inputs(steps)
        got = gc.evaluate(g, inp)
        assert got["dloss/dxs"].shape == (steps, 2, 4 - 1)
        if steps:
            res = check_grad(rnn_graph("T"), inp, "loss", ["W", "U", "xs"], rtol=1e-6, atol=1e-8)
            assert res.ok, str(res)
        else:  # no step: the loss is sum(h0), W gets no gradient, h0 all ones
            np.testing.assert_array_equal(got["dloss/dW"], np.zeros((3, 4)))
            np.testing.assert_array_equal(got["dloss/dh0"], np.ones((2, 4)))


@pytest.mark.parametrize("reverse", [False, True])
def test_second_order_and_forward_mode(reverse: bool) -> None:
    """hvp (grad of grad, so a loop over the body's VJP's VJP) and jvp through the loop equal
    the unrolled model's."""
    inp = lstm_inputs(steps=3)
    loop, unrolled = lstm_model(False, reverse, 3), lstm_model(True, reverse, 3)
    params = ["c0", "W", "U", "b"]
    rng = np.random.default_rng(7)
    vs = {f"{p}_v": rng.normal(size=inp[p].shape) for p in params}
    ts = {f"{p}_dot": rng.normal(size=inp[p].shape) for p in params}
    for make, extra in ((hvp, vs), (jvp, ts)):
        a = gc.evaluate(make(loop, "loss"), {**inp, **extra})
        b = gc.evaluate(make(unrolled, "loss"), {**inp, **extra})
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-12, err_msg=k)


def test_hessian_vector_product_matches_finite_differences() -> None:
    """d/dW <dloss/dW, v> by finite differences of the (interpreted) gradient graph."""
    inp = lstm_inputs(steps=3)
    dg = gc.grad(lstm_model(False, steps=3), "loss", ["W"])
    v = dg.input("v", shape=(D, 4 * H))
    dg.output("loss2", gc.sum(dg["dloss/dW"] * v))
    feed = {**inp, "v": np.random.default_rng(3).normal(size=(D, 4 * H))}
    res = check_grad(dg, feed, "loss2", ["W", "U"], rtol=1e-6, atol=1e-8)
    assert res.ok, str(res)


def test_nested_loops() -> None:
    """A scan inside a scan's body (capturing a value of the model two levels up), and its
    gradient, against NumPy and finite differences."""
    g = gc.Graph("nested")
    xs = g.input("xs", shape=(3, 2, 4))  # 3 outer steps of 2 inner steps
    w = g.param("w", shape=(4,))
    h0 = g.param("h0", shape=(4,))

    def outer(h, x):
        def inner(k, xi):
            k = gc.tanh(k * w + xi)
            return k, None

        k, _ = gc.scan(inner, h, x)
        return k * 0.5 + h, k

    h, ks = gc.scan(outer, h0, xs)
    g.output("loss", gc.sum(ks * ks) + gc.sum(h))
    rng = np.random.default_rng(2)
    inp = {"xs": rng.normal(size=(3, 2, 4)), "w": rng.normal(size=4), "h0": rng.normal(size=4)}
    hh, kk = inp["h0"], []
    for x in inp["xs"]:
        k = hh
        for xi in x:
            k = np.tanh(k * inp["w"] + xi)
        kk.append(k)
        hh = k * 0.5 + hh
    want = np.sum(np.stack(kk) ** 2) + hh.sum()
    np.testing.assert_allclose(gc.evaluate(g, inp)["loss"], want, rtol=1e-14)
    res = check_grad(g, inp, "loss", ["w", "h0", "xs"], rtol=1e-6, atol=1e-8)
    assert res.ok, str(res)
    assert "scan" in str(g).split("body {", 2)[2]  # printed nested, two levels deep


def test_length_without_xs_and_carry_free_results() -> None:
    """No xs (length= gives T), a pytree carry with a pass-through part, and y = None."""
    g = gc.Graph("count")
    a = g.param("a", shape=(2,))
    k0 = g.input("k0", shape=())

    def step(c, _):
        x, k = c
        return (x * a + 1.0, k), None

    (x, k), ys = gc.scan(step, (a, k0), length=4)
    assert ys is None
    g.output("loss", gc.sum(x) + k)
    inp = {"a": np.array([0.5, -2.0]), "k0": np.array(3.0)}
    xv = inp["a"].copy()
    for _ in range(4):
        xv = xv * inp["a"] + 1.0
    np.testing.assert_allclose(gc.evaluate(g, inp)["loss"], xv.sum() + 3.0, rtol=1e-14)
    res = check_grad(g, inp, "loss", ["a"], rtol=1e-6, atol=1e-8)
    assert res.ok, str(res)


# ---- the IR: JSON, printer, CSE ---------------------------------------------------------------
def test_json_round_trip_holds_the_body() -> None:
    g = lstm_model(False)
    text = g.to_json()
    data = json.loads(text)
    (scan,) = [n for n in data["nodes"] if n["op"] == "scan"]
    assert scan["params"]["body"]["graph"]["name"] == "body"  # the body nests as a model
    h = gc.Graph.from_json(text)
    assert h.to_json() == text and str(h) == str(g)
    inp = lstm_inputs()
    np.testing.assert_array_equal(gc.evaluate(h, inp)["loss"], gc.evaluate(g, inp)["loss"])
    dg = gc.simplify(gc.grad(g, "loss", WRT))
    dh = gc.Graph.from_json(dg.to_json())
    a, b = gc.evaluate(dg, inp), gc.evaluate(dh, inp)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_a_broken_body_in_json_is_named() -> None:
    data = json.loads(rnn_graph().to_json())
    (scan,) = [n for n in data["nodes"] if n["op"] == "scan"]
    body = scan["params"]["body"]
    tanh = next(n for n in body["nodes"] if n["op"] == "tanh")
    tanh["op"] = "tanhh"
    with pytest.raises(GraphError, match=r"node \d+: its loop body: .*unknown op 'tanhh'"):
        gc.Graph.from_json(json.dumps(data))


def test_printer_shows_the_body_indented() -> None:
    text = str(rnn_graph())
    assert "= scan[length=('T',), n_carry=1, n_xs=1]" in text
    assert ":(f64[N,4], f64[T,N,4]) = scan" in text  # the loop's result types
    lines = text.splitlines()
    start = lines.index("    body {")
    assert lines[start + 1].startswith("      v0:f64[N,4] = data c0")
    assert "      return c0=v9, y0=v9" in lines
    assert "  v7:f64[T,N,4] = scan_out[index=1] v5" in "\n".join(lines)


def test_equal_loops_are_shared() -> None:
    g = gc.Graph("twice")
    xs = g.input("xs", shape=(3, 2))
    w = g.param("w", shape=(2,))
    outs = [gc.scan(lambda c, x: (c * w + x, c), w, xs)[1] for _ in range(2)]
    g.output("loss", gc.sum(outs[0]) + gc.sum(outs[1]))
    s = gc.simplify(g)
    assert sum(a["op"] == "scan" for _, a in s.nx.nodes(data=True)) == 1


# ---- errors -------------------------------------------------------------------------------------
def _carry_model():
    g = gc.Graph("m")
    return g, g.input("xs", shape=("T", 3)), g.param("h", shape=(3,))


def test_carry_changing_shape_is_refused() -> None:
    g, xs, h = _carry_model()
    with pytest.raises(ShapeError, match=r"carry leaf 0 changes type: init is f64\[3\], f "
                                         r"returned f64\[\]"):  # fmt: skip
        gc.scan(lambda c, x: (gc.sum(c * x), c), h, xs)


def test_body_returning_no_pair_is_refused() -> None:
    g, xs, h = _carry_model()
    with pytest.raises(GraphError, match="f must return a pair \\(new carry, y\\), it returned"):
        gc.scan(lambda c, x: c + x, h, xs)
    with pytest.raises(GraphError, match="a carry of another structure than init"):
        gc.scan(lambda c, x: ((c, c), x), h, xs)


def test_empty_xs_without_length_is_refused() -> None:
    g, xs, h = _carry_model()
    with pytest.raises(GraphError, match=r"with no xs, give length= \(the number of steps\)"):
        gc.scan(lambda c, x: (c, c), h)


def test_xs_disagreeing_on_steps_are_refused() -> None:
    g, xs, h = _carry_model()
    other = g.input("other", shape=(5, 3))
    with pytest.raises(ShapeError, match="xs leaf 1 .* has 5 steps on axis 0, xs leaf 0 has T"):
        gc.scan(lambda c, x: (c + x[0] + x[1], c), h, (xs, other))
    with pytest.raises(ShapeError, match="xs leaf 0 .* is a scalar"):
        gc.scan(lambda c, x: (c, c), h, g.input("s", shape=()))
    with pytest.raises(ShapeError, match="length=4, but xs have T steps"):
        gc.scan(lambda c, x: (c, c), h, xs, length=4)


def test_json_with_a_mismatched_body_is_refused() -> None:
    data = json.loads(rnn_graph().to_json())
    h0 = next(n for n in data["nodes"] if n.get("name") == "h0")
    h0["shape"] = ["N", 5]
    with pytest.raises(ShapeError, match=r"carry\[0\] is f64\[N,5\], the body takes f64\[N,4\]"):
        gc.Graph.from_json(json.dumps(data))


def test_reading_the_loop_itself_is_refused() -> None:
    data = json.loads(rnn_graph().to_json())
    loss = data["graph"]["outputs"][0]
    scan = next(n for n in data["nodes"] if n["op"] == "scan")
    loss[1] = scan["id"]
    with pytest.raises(GraphError, match="output 'loss' is .* a tuple of the loop's results"):
        gc.Graph.from_json(json.dumps(data))


def test_values_of_another_graph_cannot_be_captured() -> None:
    g, xs, h = _carry_model()
    other = gc.Graph("other").param("w", shape=(3,))
    with pytest.raises(GraphError, match="belongs to graph 'other'|a body can only read"):
        gc.scan(lambda c, x: (c * other, c), h, xs)
