"""Forward mode, Hessian-vector products, Jacobians and Hessians (passes/derivatives.py),
interpreted and compiled, against finite differences and closed forms. Every op's JVP is
checked in tests/ops/test_registry.py::test_jvp."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GraphError
from graphc.passes.derivatives import hessian, hvp, hvp_name, jacobian, jvp, tangent_name
from tests.models import mlp

EPS = 1e-6


def softmax_classifier(rng):
    g = gc.Graph("softmax_classifier")
    x, t = g.input("x", shape=("N", 5)), g.input("t", shape=("N", 4))
    W, b = g.param("W", shape=(5, 4)), g.param("b", shape=(4,))
    g.output("loss", gc.softmax_cross_entropy(x @ W + b, t))
    inputs = {"x": rng.normal(size=(7, 5)), "t": np.eye(4)[rng.integers(0, 4, 7)],
              "W": rng.normal(size=(5, 4)), "b": rng.normal(size=4)}  # fmt: skip
    return g, inputs


def broadcasting(rng):
    g = gc.Graph("broadcasting")
    x = g.input("x", shape=("N", 3, 4))
    s, c = g.param("s", shape=(3, 1)), g.param("c", shape=(4,))
    g.output("loss", gc.mean(gc.sigmoid(x * s + c) * gc.exp(c)) + gc.sum(s * s * c))
    inputs = {"x": rng.normal(size=(2, 3, 4)), "s": rng.normal(size=(3, 1)),
              "c": rng.normal(size=4) * 0.5}  # fmt: skip
    return g, inputs


MODELS = {
    "mlp": lambda rng: mlp(rng),
    "softmax_classifier": softmax_classifier,
    "broadcasting": broadcasting,
}


def params(g):
    return list(g.input_ids("param"))


def fd_hvp(g, inputs, v):
    """(grad(x + eps v) - grad(x - eps v)) / 2 eps, per param."""

    def grads(s):
        moved = {k: a + s * v[k] if k in v else a for k, a in inputs.items()}
        return gc.value_and_grad(g, moved, of="loss")[1]

    plus, minus = grads(EPS), grads(-EPS)
    return {k: (plus[k] - minus[k]) / (2 * EPS) for k in v}


def _setup(name):
    rng = np.random.default_rng(len(name))
    g, inputs = MODELS[name](rng)
    v = {w: rng.normal(size=np.shape(inputs[w])) for w in params(g)}
    return g, inputs, v


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_hvp_matches_finite_differences_of_the_gradient(name, mode):
    g, inputs, v = _setup(name)
    h = hvp(g, "loss", mode=mode)
    got = gc.evaluate(h, inputs | {f"{w}_v": v[w] for w in v})
    want = fd_hvp(g, inputs, v)
    for w in v:
        np.testing.assert_allclose(got[hvp_name("loss", w)], want[w], rtol=1e-6, atol=1e-8)
    _, grads = gc.value_and_grad(g, inputs, of="loss")
    for w in v:  # the gradient comes along
        np.testing.assert_allclose(got[gc.grad_name("loss", w)], grads[w], rtol=1e-12)


@pytest.mark.parametrize("name", list(MODELS))
def test_hessian_matches_finite_differences_and_is_symmetric(name):
    g, inputs, _ = _setup(name)
    ws = params(g)
    H = hessian(g, "loss")
    got = gc.evaluate(H, inputs)
    sizes = {w: int(np.size(inputs[w])) for w in ws}
    blocks = []
    for u in ws:
        row = []
        for w in ws:
            block = got[gc.grad_name(gc.grad_name("loss", u), w)]
            assert block.shape == (*np.shape(inputs[u]), *np.shape(inputs[w]))
            row.append(block.reshape(sizes[u], sizes[w]))
        blocks.append(row)
    full = np.block(blocks)
    np.testing.assert_allclose(full, full.T, rtol=1e-9, atol=1e-12)
    for w in ws:  # column by column: finite differences of the gradient along each e_k
        for k in range(sizes[w]):
            e = {p: np.zeros(np.shape(inputs[p])) for p in ws}
            e[w].reshape(-1)[k] = 1.0
            col = np.concatenate([a.ravel() for a in fd_hvp(g, inputs, e).values()])
            start = sum(sizes[p] for p in ws[: ws.index(w)])
            np.testing.assert_allclose(full[:, start + k], col, rtol=1e-5, atol=1e-7)


def test_jvp_of_every_output_and_tangents_by_name():
    rng = np.random.default_rng(1)
    g = gc.Graph("two_outputs")
    x = g.param("x", shape=(3,))
    y = g.param("y", shape=(2, 3))
    g.output("a", gc.tanh(y @ x))
    g.output("b", gc.sum(x * x))
    j = jvp(g, tangents={"x": "dx"})
    assert set(j.outputs) == {"a", "b", "a_dot", "b_dot"}
    feed = {"x": rng.normal(size=3), "y": rng.normal(size=(2, 3))}
    t = {"dx": rng.normal(size=3), tangent_name("y"): rng.normal(size=(2, 3))}
    got = gc.evaluate(j, feed | t)
    xv, yv = feed["x"], feed["y"]
    a = np.tanh(yv @ xv)
    np.testing.assert_allclose(
        got["a_dot"], (1 - a**2) * (t["y_dot"] @ xv + yv @ t["dx"]), rtol=1e-12
    )
    np.testing.assert_allclose(got["b_dot"], 2 * xv @ t["dx"], rtol=1e-12)


def test_jvp_keeps_no_trace_of_the_first_reverse_pass():
    """The double-backward construction leaves the forward pass and its linearisation: for
    the MLP, as many matrix products as the gradient (2 forward, one per param's tangent) and
    no more operations than forward plus gradient; the cotangent input is gone."""
    g, _ = mlp(np.random.default_rng(0))
    j = jvp(g, of="loss")
    vg = gc.simplify(gc.grad(g, "loss"))

    def ops(h, op=None):
        kinds = [a["op"] for _, a in h.nx.nodes(data=True) if a["op"] not in ("input", "const")]
        return len(kinds) if op is None else kinds.count(op)

    assert ops(j, "matmul") == ops(vg, "matmul") == 5
    assert ops(j) <= ops(vg) + ops(gc.simplify(g))
    assert not any(name.startswith("_") for name in j.input_ids())


def test_jacobian_picks_the_cheap_mode_by_counting_passes():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(50, 3))
    tall = gc.Graph("tall")  # R^3 -> R^50: fewer inputs than outputs, forward mode
    x = tall.param("x", shape=(3,))
    tall.output("y", gc.tanh(x @ A.T))
    J = jacobian(tall, "y")
    assert J.nx.graph["jacobian"] == {"mode": "forward", "passes": 3}
    xv = rng.normal(size=3)
    got = gc.evaluate(J, {"x": xv})["dy/dx"]
    np.testing.assert_allclose(got, (1 - np.tanh(A @ xv) ** 2)[:, None] * A, rtol=1e-12)

    wide = gc.Graph("wide")  # R^50 -> R^3: reverse mode
    z = wide.param("z", shape=(50,))
    wide.output("y", gc.tanh(A.T @ z) * 2.0)
    J = jacobian(wide, "y")
    assert J.nx.graph["jacobian"] == {"mode": "reverse", "passes": 3}
    zv = rng.normal(size=50)
    want = 2 * (1 - np.tanh(A.T @ zv) ** 2)[:, None] * A.T
    np.testing.assert_allclose(gc.evaluate(J, {"z": zv})["dy/dz"], want, rtol=1e-12)
    fd = np.stack(
        [
            (
                gc.evaluate(wide, {"z": zv + EPS * e})["y"]
                - gc.evaluate(wide, {"z": zv - EPS * e})["y"]
            )
            / (2 * EPS)
            for e in np.eye(50)
        ],
        axis=1,
    )
    np.testing.assert_allclose(gc.evaluate(J, {"z": zv})["dy/dz"], fd, rtol=1e-6, atol=1e-9)


def test_third_order_is_grad_of_an_hvp():
    """f(w) = sum(w^4): H v = 12 w^2 v, so the gradient of <H v, u> is 24 w v u."""
    g = gc.Graph("quartic")
    w = g.param("w", shape=(4,))
    g.output("loss", gc.sum(w * w * w * w))
    h = hvp(g, "loss")
    u = h.input("u", shape=(4,))
    h.output("hvu", gc.sum(h[hvp_name("loss", "w")] * u))
    third = gc.grad(h, "hvu", wrt="w")
    rng = np.random.default_rng(5)
    feed = {k: rng.normal(size=4) for k in ("w", "w_v", "u")}
    got = gc.evaluate(third, feed)[gc.grad_name("hvu", "w")]
    np.testing.assert_allclose(got, 24 * feed["w"] * feed["w_v"] * feed["u"], rtol=1e-12)


def test_bad_requests_name_what_is_wrong():
    g, _ = mlp(np.random.default_rng(0))
    with pytest.raises(GraphError, match="mode must be"):
        hvp(g, "loss", mode="sideways")
    with pytest.raises(GraphError, match="symbolic shape"):
        jacobian(g, "loss", wrt="x")
    with pytest.raises(GraphError, match="not an output"):
        jvp(g, of="nope")


@pytest.mark.compiler
@pytest.mark.parametrize("name", list(MODELS))
def test_compiled_jvp_and_hvp_equal_the_interpreter(name, tmp_path):
    g, inputs, v = _setup(name)
    m = gc.compile(g, out_dir=tmp_path, functions=("forward", "value_and_grad", "jvp", "hvp"))
    assert set(m.TANGENTS) == {tangent_name(w) for w in v} and set(m.VECTORS) == {
        f"{w}_v" for w in v
    }
    t = {tangent_name(w): a for w, a in v.items()}
    outs, tangents = m.jvp(**inputs, **t)
    want = gc.evaluate(jvp(g, of="loss"), inputs | t)
    np.testing.assert_allclose(outs["loss"], want["loss"], rtol=1e-12)
    np.testing.assert_allclose(tangents["loss"], want["loss_dot"], rtol=1e-10)
    outs, grads, hvps = m.hvp(**inputs, **{f"{w}_v": a for w, a in v.items()})
    ref = gc.evaluate(hvp(g, "loss"), inputs | {f"{w}_v": a for w, a in v.items()})
    fd = fd_hvp(g, inputs, v)
    for w in v:
        np.testing.assert_allclose(hvps[w], ref[hvp_name("loss", w)], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(hvps[w], fd[w], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(grads[w], ref[gc.grad_name("loss", w)], rtol=1e-10)
    vg = m.value_and_grad(**inputs)  # the other functions are unchanged
    np.testing.assert_allclose(vg[0]["loss"], outs["loss"], rtol=1e-12)


@pytest.mark.compiler
def test_cli_emit(tmp_path):
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(
        [sys.executable, "-m", "graphc.cli", "compile", "examples/seed_network.py", "--emit",
         "jvp,hvp", "--out", str(tmp_path)],
        cwd=root, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = gc.load(tmp_path / "seed_net")
    assert hasattr(m.module, "jvp") and hasattr(m.module, "hvp")
    bad = subprocess.run(
        [sys.executable, "-m", "graphc.cli", "compile", "examples/seed_network.py", "--emit",
         "jacobian"],
        cwd=root, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "--emit" in bad.stderr
