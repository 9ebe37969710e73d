"""The resampling ops (interpolate_nearest, interpolate_linear and their gradient ops) beyond
the registry table: second derivatives through every one, the compiled kernels against the
interpreter bit for bit and on one thread or two, and compiled float32 against PyTorch where
it is installed."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.gradcheck import check_grad

RESAMPLE_OPS = {"interpolate_nearest", "interpolate_nearest_grad", "interpolate_linear",
                "interpolate_linear_grad"}  # fmt: skip


def test_second_derivatives_through_every_resampling_op() -> None:
    """d/dx of <grad_x loss, u> for a loss through both kinds: every op differentiated twice,
    against finite differences."""
    rng = np.random.default_rng(0)
    xs = (2, 2, 4, 5)
    g = gc.Graph("m")
    x = g.param("x", shape=xs)
    y = gc.interpolate(gc.tanh(x), size=(7, 3), mode="bilinear")
    z = gc.interpolate(gc.tanh(y), scale_factor=(0.6, 2.5), mode="nearest-exact")
    g.output("loss", gc.sum(gc.tanh(z) * gc.sin(z)))
    dg = gc.grad(g, "loss")
    u = dg.input("u", shape=xs)
    dg.output("loss2", gc.sum(dg[gc.grad_name("loss", "x")] * u))
    ops = {a["op"] for _, a in gc.grad(dg, "loss2", ["x"]).nx.nodes(data=True)}
    assert RESAMPLE_OPS <= ops
    assert not {"take", "take_grad", "matmul"} & ops
    feed = {"x": rng.standard_normal(xs), "u": rng.standard_normal(xs)}
    res = check_grad(dg, feed, "loss2", ["x"], rtol=1e-6, atol=1e-8)
    assert res.ok, str(res)


# (x shape, interpolate keywords): each mode, up and down, scale factors, a kept axis, 1-3 axes
CASES = [
    ((3, 2, 5, 7), {"size": (11, 4)}),
    ((3, 2, 8, 6), {"size": (4, 4), "mode": "nearest-exact"}),
    ((3, 2, 4, 5, 6), {"scale_factor": (1.5, 0.6, 2.0)}),
    ((3, 2, 9), {"scale_factor": 2.3, "mode": "linear"}),
    ((3, 2, 5, 7), {"size": (11, 4), "mode": "bilinear"}),
    ((3, 2, 5, 7), {"size": (3, 13), "mode": "bilinear", "align_corners": True}),
    ((3, 2, 6, 7), {"scale_factor": (1.1, 1.7), "mode": "bilinear"}),
    ((3, 2, 4, 5, 6), {"size": (7, 3, 8), "mode": "trilinear"}),
    ((3, 2, 4, 5, 6), {"size": (7, 3, 8), "mode": "trilinear", "align_corners": True}),
]


def _model(dtype: str) -> gc.Graph:
    g = gc.Graph("resample")
    loss = None
    for j, (xs, kw) in enumerate(CASES):
        y = gc.interpolate(g.param(f"x{j}", shape=("N", *xs[1:]), dtype=dtype), **kw)
        g.output(f"y{j}", y)
        term = gc.sum(y * g.input(f"r{j}", shape=y.shape, dtype=dtype))
        loss = term if loss is None else loss + term
    g.output("loss", loss)
    return g


def _feed(g: gc.Graph, dtype: str, n: int = 3) -> dict:
    rng = np.random.default_rng(1)
    shapes = {a["name"]: a["shape"] for _, a in g.nx.nodes(data=True) if a["op"] == "input"}
    return {k: rng.standard_normal((n, *s[1:])).astype(dtype) for k, s in shapes.items()}


@pytest.mark.compiler
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_bits_are_the_interpreters_on_any_number_of_threads(tmp_path, dtype) -> None:
    """The kernels compute what the ops' references compute, in the same order: values and
    gradients equal to the bit; and the same bits on one thread as on two (each plane is
    one thread's), with batches large enough to be shared."""
    g = _model(dtype)
    m = gc.compile(g, dtype=dtype, out_dir=tmp_path)
    feed = _feed(g, dtype)
    want = gc.value_and_grad(g, feed, "loss")
    got = m.value_and_grad(**feed)
    for w, h in zip(want, got, strict=True):
        for k in set(w) - {"loss"}:  # (the loss: a sum, added in another order)
            np.testing.assert_array_equal(h[k], w[k], err_msg=k)
    big = _feed(g, dtype, 600)
    runs = []
    for threads in (1, 2):
        m.module.set_num_threads(threads)
        runs.append(m.value_and_grad(**big))
    for a, b in zip(*runs, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.compiler
def test_compiled_float32_matches_pytorch(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    g = _model("float32")
    feed = _feed(g, "float32")
    outs, grads = gc.compile(g, dtype="float32", out_dir=tmp_path).value_and_grad(**feed)
    for j, (_, kw) in enumerate(CASES):
        x = torch.tensor(feed[f"x{j}"], requires_grad=True)
        y = F.interpolate(x, **kw)
        (y * torch.tensor(feed[f"r{j}"])).sum().backward()
        np.testing.assert_allclose(outs[f"y{j}"], y.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grads[f"x{j}"], x.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_an_unchanged_axis_is_copied_whatever_the_scale_factor() -> None:
    """As PyTorch's linear modes (an axis of the same size is copied), and nearest as before."""
    x = np.arange(2 * 10 * 4, dtype=np.float64).reshape(1, 2, 10, 4)
    for mode in ("nearest", "bilinear"):
        g = gc.Graph("m")
        g.output("y", gc.interpolate(g.input("x", shape=x.shape), scale_factor=(1.05, 2.0),
                                     mode=mode))  # fmt: skip
        y = gc.evaluate(g, {"x": x})["y"]
        assert y.shape == (1, 2, 10, 8)
        np.testing.assert_array_equal(y[:, :, :, 0], x[:, :, :, 0])


def test_json_round_trip_keeps_the_params() -> None:
    g = gc.Graph("m")
    x = g.param("x", shape=("N", 2, 4, 5))
    y = gc.interpolate(x, scale_factor=(1.7, 0.45), mode="bilinear", align_corners=True)
    g.output("y", gc.interpolate(y, size=(3, 9), mode="nearest-exact"))
    h = gc.Graph.from_json(g.to_json())
    feed = {"x": np.random.default_rng(2).standard_normal((2, 2, 4, 5))}
    np.testing.assert_array_equal(gc.evaluate(h, feed)["y"], gc.evaluate(g, feed)["y"])
