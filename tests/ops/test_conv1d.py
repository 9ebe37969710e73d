"""conv1d, its gradient ops and conv_transpose1d beyond the registry table: second derivatives
through every gradient op, the compiled kernels against the conv2d of height 1 they replace
(bit for bit: the same runtime kernels), errors at the model's line, and compiled float32
against PyTorch where it is installed."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ShapeError
from graphc.gradcheck import check_grad

CONV1D_OPS = {"conv1d", "conv1d_grad_input", "conv1d_grad_weight"}


@pytest.mark.parametrize(
    "kw",
    [{"stride": 2, "padding": 1, "groups": 2}, {"dilation": 2, "padding": 2, "groups": 2}],
)
def test_second_derivatives_through_every_conv1d_op(kw: dict) -> None:
    """d/dx and d/dw of <grad_w loss, v> + <grad_x loss, u>: every gradient op differentiated
    again, against finite differences."""
    rng = np.random.default_rng(0)
    xs, ws = (2, 4, 9), (4, 2, 3)
    g = gc.Graph("m")
    x, w = g.param("x", shape=xs), g.param("w", shape=ws)
    g.output("loss", gc.sum(gc.tanh(gc.conv1d(x, w, **kw))))
    dg = gc.grad(g, "loss")
    u, v = dg.input("u", shape=xs), dg.input("v", shape=ws)
    first = gc.sum(dg[gc.grad_name("loss", "x")] * u) + gc.sum(dg[gc.grad_name("loss", "w")] * v)
    dg.output("loss2", first)
    ops = {a["op"] for _, a in gc.grad(dg, "loss2", ["x", "w"]).nx.nodes(data=True)}
    assert CONV1D_OPS <= ops
    assert not {"conv2d", "conv2d_grad_input", "conv2d_grad_weight"} & ops
    feed = {k: rng.standard_normal(s) for k, s in [("x", xs), ("w", ws), ("u", xs), ("v", ws)]}
    res = check_grad(dg, feed, "loss2", ["x", "w"], rtol=1e-6, atol=1e-8)
    assert res.ok, str(res)


# (x, w, keywords): direct loops and im2col + BLAS (64 taps, 32 outputs per group)
LAYERS = [
    ((3, 4, 17), (6, 2, 3), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}),
    ((3, 16, 40), (32, 16, 4), {"padding": 2, "stride": 3}),
]


@pytest.mark.compiler
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_bits_are_those_of_a_conv2d_one_row_high(tmp_path, dtype: str) -> None:
    """conv1d runs conv2d's kernels: values and both gradients equal, to the bit, those of
    the conv2d of an image one row high that gc.conv1d was before."""
    rng = np.random.default_rng(1)
    graphs = []
    for as_2d in (False, True):
        g = gc.Graph(f"c{int(as_2d)}")
        loss = None
        for j, (xs, ws, kw) in enumerate(LAYERS):
            x = g.param(f"x{j}", shape=("N", *xs[1:]), dtype=dtype)
            w = g.param(f"w{j}", shape=ws, dtype=dtype)
            if as_2d:
                s, p, d = (kw.get(k, dflt) for k, dflt in (("stride", 1), ("padding", 0),
                                                            ("dilation", 1)))  # fmt: skip
                y = gc.conv2d(gc.reshape(x, ("N", xs[1], 1, xs[2])),
                              gc.reshape(w, (*ws[:2], 1, ws[2])), (1, s), (0, p), (1, d),
                              kw.get("groups", 1))  # fmt: skip
                y = gc.reshape(y, (y.shape[0], y.shape[1], y.shape[3]))
            else:
                y = gc.conv1d(x, w, **kw)
            g.output(f"y{j}", y)
            term = gc.sum(gc.tanh(y))
            loss = term if loss is None else loss + term
        g.output("loss", loss)
        graphs.append(g)
    feed = {}
    for j, (xs, ws, _) in enumerate(LAYERS):
        feed[f"x{j}"] = rng.standard_normal(xs).astype(dtype)
        feed[f"w{j}"] = rng.standard_normal(ws).astype(dtype)
    (o1, g1), (o2, g2) = (gc.compile(g, dtype=dtype, out_dir=tmp_path).value_and_grad(**feed)
                          for g in graphs)  # fmt: skip
    for k in o1:
        np.testing.assert_array_equal(o1[k], o2[k], err_msg=k)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k], err_msg=k)


def test_an_error_names_the_argument_at_the_models_line() -> None:
    g = gc.Graph("bad")
    x, w = g.param("x", shape=(1, 4, 9)), g.param("w", shape=(6, 2, 3))
    with pytest.raises(ShapeError, match="stride must be an int >= 1 or 1 of them") as err:
        gc.conv1d(x, w, stride=(1, 2), groups=2)
    assert "test_conv1d.py:" in str(err.value)
    with pytest.raises(ShapeError, match="a 11 window does not fit in the 9 input"):
        gc.conv1d(x, w, dilation=5, groups=2)
    with pytest.raises(ShapeError, match="output_padding \\(2,\\) must be smaller"):
        gc.conv_transpose1d(g.param("c", shape=(1, 6, 4)), w, stride=2, output_padding=2)


@pytest.mark.compiler
def test_compiled_float32_matches_pytorch(tmp_path) -> None:
    """conv1d and conv_transpose1d with groups, dilation, stride, padding, output_padding and
    bias, compiled in float32: values and gradients as PyTorch's to float32 rounding."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(2)
    shapes = {"x": (3, 4, 13), "w": (6, 2, 3), "b": (6,), "v": (6, 2, 4), "c": (4,)}
    feed = {k: rng.standard_normal(s).astype("float32") for k, s in shapes.items()}
    r = rng.standard_normal((3, 4, 25)).astype("float32")

    def model(lib, t):
        conv, tconv = {"gc": (gc.conv1d, gc.conv_transpose1d),
                       "torch": (F.conv1d, F.conv_transpose1d)}[lib]  # fmt: skip
        y = conv(t["x"], t["w"], t["b"], stride=2, padding=2, dilation=2, groups=2)
        return tconv(y, t["v"], t["c"], stride=3, padding=1, output_padding=2, groups=2,
                     dilation=2)  # fmt: skip

    g = gc.Graph("c1t")
    vals = {k: g.param(k, shape=s, dtype="float32") for k, s in shapes.items()}
    z = model("gc", vals)
    assert z.shape == r.shape
    g.output("z", z)
    g.output("loss", gc.sum(z * g.const(r, "float32")))
    outs, grads = gc.compile(g, dtype="float32", out_dir=tmp_path).value_and_grad(**feed)
    ts = {k: torch.tensor(a, requires_grad=True) for k, a in feed.items()}
    tz = model("torch", ts)
    (tz * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(outs["z"], tz.detach().numpy(), rtol=1e-5, atol=1e-5)
    for k in shapes:
        np.testing.assert_allclose(grads[k], ts[k].grad.numpy(), rtol=1e-4, atol=1e-4,
                                   err_msg=k)  # fmt: skip
