"""conv3d, its gradient ops and conv_transpose3d beyond the registry table: second derivatives
through every gradient op, how parameters are given, errors naming the wrong argument at the
model's line, empty batches, agreement with PyTorch over many geometries where it is
installed, and the compiled kernels (direct loops or im2col and BLAS, chosen per layer as
conv2d's; the direct ones give the same bits on any number of threads)."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ShapeError
from graphc.gradcheck import check_grad
from graphc.ops.conv3d import conv3d_grad_input, conv3d_grad_weight
from tests.ops.cases_conv3d import Geometry3, np_conv3d

CONV3D_OPS = {"conv3d", "conv3d_grad_input", "conv3d_grad_weight"}


@pytest.mark.parametrize(
    "kw",
    [
        {"stride": (2, 1, 1), "padding": (1, 0, 1), "groups": 2},
        {"dilation": (1, 2, 1), "groups": 2},
        {"stride": (1, 2, 2), "padding": 1, "dilation": (2, 1, 1), "groups": 2},
    ],
)
def test_second_derivatives_through_every_conv3d_op(kw: dict) -> None:
    """d/dx and d/dw of <grad_w loss, v> + <grad_x loss, u>: every gradient op differentiated
    again, against finite differences."""
    rng = np.random.default_rng(0)
    xs, ws = (1, 4, 4, 5, 4), (4, 2, 2, 3, 2)
    g = gc.Graph("m")
    x, w = g.param("x", shape=xs), g.param("w", shape=ws)
    g.output("loss", gc.sum(gc.tanh(gc.conv3d(x, w, **kw))))
    dg = gc.grad(g, "loss")
    u, v = dg.input("u", shape=xs), dg.input("v", shape=ws)
    first = gc.sum(dg[gc.grad_name("loss", "x")] * u) + gc.sum(dg[gc.grad_name("loss", "w")] * v)
    dg.output("loss2", first)
    ops = {a["op"] for _, a in gc.grad(dg, "loss2", ["x", "w"]).nx.nodes(data=True)}
    assert CONV3D_OPS <= ops
    assert not {"conv2d", "conv2d_grad_input", "conv2d_grad_weight"} & ops
    feed = {k: rng.standard_normal(s) for k, s in [("x", xs), ("w", ws), ("u", xs), ("v", ws)]}
    res = check_grad(dg, feed, "loss2", ["x", "w"], rtol=1e-6, atol=1e-8)
    assert res.ok, str(res)


def test_ints_and_triples_are_the_same_params() -> None:
    g = gc.Graph("m")
    x, w = g.param("x", shape=("N", 2, 9, 8, 7)), g.param("w", shape=(4, 1, 3, 3, 2))
    a = gc.conv3d(x, w, stride=2, padding=np.int64(1), dilation=(1, 1, 1), groups=2)
    b = gc.conv3d(x, w, stride=(2, 2, 2), padding=[1, 1, 1], groups=np.int32(2))
    assert a.op == b.op == "conv3d"
    assert a.attrs["params"] == b.attrs["params"]
    assert a.shape == ("N", 4, 5, 4, 4)


def test_json_round_trip_keeps_the_params() -> None:
    g = gc.Graph("m")
    x, w = g.param("x", shape=("N", 2, 4, 5, 4)), g.param("w", shape=(3, 2, 2, 2, 2))
    y = gc.conv3d(x, w, padding=(1, 0, 1), stride=(1, 2, 1))
    g.output("y", gc.conv_transpose3d(y, g.param("v", shape=(3, 2, 2, 2, 2)), stride=2))
    h = gc.Graph.from_json(g.to_json())
    rng = np.random.default_rng(1)
    feed = {"x": rng.standard_normal((2, 2, 4, 5, 4)), "w": rng.standard_normal((3, 2, 2, 2, 2)),
            "v": rng.standard_normal((3, 2, 2, 2, 2))}  # fmt: skip
    np.testing.assert_array_equal(gc.evaluate(h, feed)["y"], gc.evaluate(g, feed)["y"])


def _line(offset: int = 0) -> str:
    """`test_conv3d.py:<the caller's line + offset>`: where an error must point."""
    import inspect

    frame = inspect.currentframe().f_back
    return f"test_conv3d.py:{frame.f_lineno + offset}"


X, W = (1, 4, 5, 5, 5), (6, 2, 3, 3, 3)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda x, w, g: gc.conv3d(g.param("x4", shape=(1, 4, 5, 5)), w),
         "x must have 5 dimensions, got shape"),
        (lambda x, w, g: gc.conv3d(x, g.param("w4", shape=(6, 4, 3, 3))),
         "w must have 5 dimensions, got shape"),
        (lambda x, w, g: gc.conv3d(x, w), "w takes 2 channels per group, x has 4 in 1 group"),
        (lambda x, w, g: gc.conv3d(x, w, groups=4), "C_out = 6 is not a multiple of groups = 4"),
        (lambda x, w, g: gc.conv3d(x, w, groups=2, stride=(1, 2)),
         "stride must be an int >= 1 or 3 of them, got \\(1, 2\\)"),
        (lambda x, w, g: gc.conv3d(x, w, groups=2, padding=-1), "padding must be an int >= 0"),
        (lambda x, w, g: gc.conv3d(x, w, groups=2, dilation=(1, 3, 1)),
         "a 3x7x3 window does not fit in the 5x5x5 input"),
        (lambda x, w, g: gc.conv3d(x, w, g.param("b", shape=(4,)), groups=2),
         "bias must be a Value of shape \\(6,\\)"),
        (lambda x, w, g: gc.conv3d(g.param("xs", shape=("N", 4, 5, "H", 5)), w, groups=2),
         "H of x is the symbol 'H'"),
        (lambda x, w, g: gc.conv_transpose3d(x, g.param("wt", shape=(4, 2, 3, 3, 3)), stride=2,
                                             output_padding=(0, 2, 1)),
         "output_padding \\(0, 2, 1\\) must be smaller than stride or dilation"),
        (lambda x, w, g: gc.conv_transpose3d(x, w),
         "conv3d_grad_input: ct has 4 channels, w has 6 output channels"),
        (lambda x, w, g: conv3d_grad_weight(g.param("xn", shape=("N", 4, 5, 5, 5)),
                                            g.param("c", shape=("M", 6, 3, 3, 3)), 3),
         "batch sizes N and M differ"),
        (lambda x, w, g: conv3d_grad_input(g.param("c", shape=(1, 6, 3, 3, 3)), w, (5, 6, 5)),
         "an input of size \\(5, 6, 5\\) gives outputs"),
    ],
)  # fmt: skip
def test_errors_say_what_is_wrong_at_the_models_line(make, words: str) -> None:
    g = gc.Graph("bad")
    x, w = g.param("x", shape=X), g.param("w", shape=W)
    with pytest.raises(ShapeError, match=words) as err:
        make(x, w, g)
    assert "test_conv3d.py:" in str(err.value)  # the line of the lambda above


def test_an_error_points_at_the_line_that_made_the_node() -> None:
    g = gc.Graph("bad")
    x, w = g.param("x", shape=X), g.param("w", shape=W)
    with pytest.raises(ShapeError) as err:
        here = _line(1)
        gc.conv3d(x, w, stride=(1, 1))
    assert here in str(err.value)


def test_every_conv3d_op_on_an_empty_batch() -> None:
    g = gc.Graph("m")
    x, w = g.param("x", shape=("N", 2, 4, 4, 4)), g.param("w", shape=(3, 2, 3, 3, 3))
    y = gc.conv3d(x, w, padding=1)
    g.output("loss", gc.sum(gc.conv_transpose3d(y, g.param("v", shape=(3, 2, 2, 2, 2)))))
    feed = {"x": np.zeros((0, 2, 4, 4, 4)), "w": np.ones((3, 2, 3, 3, 3)),
            "v": np.ones((3, 2, 2, 2, 2))}  # fmt: skip
    outs, grads = gc.value_and_grad(g, feed, "loss")
    assert outs["loss"] == 0.0
    assert grads["x"].shape == (0, 2, 4, 4, 4)
    np.testing.assert_array_equal(grads["w"], np.zeros((3, 2, 3, 3, 3)))
    np.testing.assert_array_equal(grads["v"], np.zeros((3, 2, 2, 2, 2)))


def test_conv_formula_matches_a_direct_sum() -> None:
    """The test suite's NumPy conv3d against the definition, term by term, on one output."""
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 4, 6, 7, 5)), rng.standard_normal((2, 2, 2, 3, 2))
    geo = Geometry3(stride=(2, 1, 2), padding=1, dilation=(2, 1, 2), groups=2)
    y = np_conv3d(x, w, geo)
    o, od, oh, ow = 1, 1, 3, 1  # output channel 1 is in group 1, reading input channels 2, 3
    want = 0.0
    for c in range(2):
        for i, j, k in np.ndindex(2, 3, 2):
            d, r, col = od * 2 - 1 + 2 * i, oh - 1 + j, ow * 2 - 1 + 2 * k
            if 0 <= d < 6 and 0 <= r < 7 and 0 <= col < 5:
                want += w[o, c, i, j, k] * x[0, 2 + c, d, r, col]
    assert y[0, o, od, oh, ow] == pytest.approx(want, rel=1e-12)


# ---- agreement with PyTorch's definitions (when it is installed) ------------------------------
# (x shape, w shape, keywords): odd sizes, every param alone and together, depthwise
TORCH_CONV3D = [
    ((2, 3, 5, 6, 7), (4, 3, 3, 2, 3), {}),
    ((2, 2, 7, 5, 6), (3, 2, 2, 3, 1), {"stride": (3, 1, 2)}),
    ((1, 2, 4, 5, 3), (2, 2, 3, 3, 2), {"padding": (2, 1, 0)}),
    ((1, 2, 7, 7, 5), (2, 2, 2, 3, 2), {"dilation": (3, 2, 1)}),
    ((2, 4, 5, 4, 5), (6, 2, 2, 3, 2), {"stride": (2, 1, 2), "padding": (1, 0, 1),
                                        "dilation": (2, 1, 1), "groups": 2}),
    ((1, 3, 5, 5, 5), (3, 1, 3, 3, 3), {"groups": 3, "padding": 1, "stride": 2}),
]  # fmt: skip
# (x shape, w shape, keywords) of conv_transpose3d
TORCH_TRANSPOSE3D = [
    ((2, 3, 3, 4, 2), (3, 2, 2, 3, 2), {}),
    ((1, 2, 3, 2, 3), (2, 3, 3, 2, 2), {"stride": (2, 3, 1), "output_padding": (1, 2, 0)}),
    ((2, 4, 2, 3, 2), (4, 2, 2, 2, 3), {"stride": 2, "padding": (1, 0, 1), "groups": 2,
                                        "dilation": (1, 2, 1), "output_padding": (1, 0, 1)}),
    ((1, 2, 3, 3, 3), (2, 1, 3, 3, 3), {"padding": 1, "dilation": 2, "stride": 3,
                                        "output_padding": 2}),
]  # fmt: skip


def _both(fn: str, xs: tuple, ws: tuple, kw: dict, bias: bool) -> None:
    """fn (conv3d or conv_transpose3d) of graphc and PyTorch: values and gradients of
    sum(y * r) in x, w and the bias."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    c_out = ws[0] if fn == "conv3d" else ws[1] * kw.get("groups", 1)
    b = rng.standard_normal(c_out)
    g = gc.Graph("m")
    args = [g.param("x", shape=xs), g.param("w", shape=ws)]
    if bias:
        args.append(g.param("b", shape=(c_out,)))
    y = getattr(gc, fn)(*args, **kw)
    r = g.input("r", shape=y.shape)
    g.output("y", y)
    g.output("loss", gc.sum(y * r))
    ct = rng.standard_normal(y.shape)
    feed = {"x": x, "w": w, "r": ct} | ({"b": b} if bias else {})
    outs, grads = gc.value_and_grad(g, feed, of="loss")
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    ty = getattr(torch.nn.functional, fn)(ts[0], ts[1], ts[2] if bias else None, **kw)
    ty.backward(torch.tensor(ct))
    np.testing.assert_allclose(outs["y"], ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    for k, name in enumerate(["x", "w", "b"][: len(args)]):
        np.testing.assert_allclose(grads[name], ts[k].grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("xs", "ws", "kw"), TORCH_CONV3D)
def test_conv3d_matches_pytorch(xs: tuple, ws: tuple, kw: dict) -> None:
    _both("conv3d", xs, ws, kw, bias=bool(kw))


@pytest.mark.parametrize(("xs", "ws", "kw"), TORCH_TRANSPOSE3D)
def test_conv_transpose3d_matches_pytorch(xs: tuple, ws: tuple, kw: dict) -> None:
    _both("conv_transpose3d", xs, ws, kw, bias=bool(kw))


# ---- the compiled kernels ----------------------------------------------------------------------
def _net(dtype: str = "float64") -> gc.Graph:
    """conv3d (groups, stride, padding), tanh, conv_transpose3d: every op of the family in the
    forward and backward programs."""
    g = gc.Graph("net3d")
    x = g.param("x", shape=("N", 4, 8, 9, 10), dtype=dtype)
    w = g.param("w", shape=(8, 2, 3, 3, 3), dtype=dtype)
    v = g.param("v", shape=(8, 3, 2, 2, 2), dtype=dtype)
    h = gc.tanh(gc.conv3d(x, w, padding=1, stride=(1, 2, 1), groups=2))
    y = gc.conv_transpose3d(h, v, stride=2)
    r = g.input("r", shape=y.shape, dtype=dtype)
    g.output("loss", gc.sum(y * r))
    return g


def test_each_op_lowers_to_its_own_runtime_kernel() -> None:
    from graphc.compiler import run_stages

    module = run_stages(_net(), dtype="float64").module
    (vg,) = [f for f in module.functions if f.name == "value_and_grad"]
    kernel = {len(module.kernels) + k: name for k, name in enumerate(module.runtime)}
    names = {kernel.get(r.cells[0]) for r in vg.program}
    assert {"conv3d_d", "conv3d_grad_input_d", "conv3d_grad_weight_d"} <= names
    assert not {n for n in names if n and n.startswith("conv2d")}


def _layers(dtype: str) -> gc.Graph:
    """A wide layer (BLAS: 4*27 taps, 16 outputs per group) and a narrow one (direct loops)."""
    g = gc.Graph("kernel_choice3d")
    x = g.param("x", shape=("N", 4, 5, 6, 7), dtype=dtype)
    wide = g.param("wide", shape=(16, 4, 3, 3, 3), dtype=dtype)
    narrow = g.param("narrow", shape=(3, 16, 1, 2, 1), dtype=dtype)
    h = gc.conv3d(x, wide, padding=(1, 0, 2), dilation=(1, 1, 2), stride=(2, 1, 1))
    y = gc.conv3d(gc.tanh(h), narrow)
    r = g.input("r", shape=y.shape, dtype=dtype)
    g.output("loss", gc.sum(y * r))
    return g


def test_each_layer_gets_the_kernel_conv2d_would_choose() -> None:
    from graphc.compiler import run_stages
    from graphc.ops.conv import tiling

    assert tiling((16, 4, 3, 3, 3), ("N", 16, 3, 4, 7), 1) is not None
    assert tiling((3, 16, 1, 2, 1), ("N", 3, 3, 3, 7), 1) is None  # 32 taps, but 3 outputs
    assert tiling((16, 1, 3, 3, 3), ("N", 16, 3, 4, 7), 16) is None  # depthwise: 27 taps
    module = run_stages(_layers("float64"), dtype="float64").module
    (vg,) = [f for f in module.functions if f.name == "value_and_grad"]
    kernel = {len(module.kernels) + k: name for k, name in enumerate(module.runtime)}
    steps = [(kernel.get(r.cells[0]), r.comment[0]) for r in vg.program]
    tiled = [what for name, what in steps if name == "conv3d_tiled_d"]
    ops = sorted(w.split(" = ")[1].split("[")[0] for w in tiled)
    assert ops == ["conv3d", "conv3d_grad_input", "conv3d_grad_weight"]
    assert {"conv3d_d", "conv3d_grad_input_d", "conv3d_grad_weight_d"} <= {n for n, _ in steps}


@pytest.mark.compiler
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_both_kernels_agree_with_the_interpreter(dtype: str, tmp_path) -> None:
    """Sums of many float32 terms differ from the interpreter's (exact, then rounded) by
    float32 rounding: judged against the largest magnitude there."""
    from graphc.passes.dtype import with_dtype

    g = _layers(dtype)
    m = gc.compile(g, dtype=dtype, out_dir=tmp_path)
    rng = np.random.default_rng(5)
    for n in (3, 1, 0):
        feed = {"x": rng.standard_normal((n, 4, 5, 6, 7)),
                "wide": rng.standard_normal((16, 4, 3, 3, 3)) / 10,
                "narrow": rng.standard_normal((3, 16, 1, 2, 1)) / 4,
                "r": rng.standard_normal((n, 3, 3, 3, 7))}  # fmt: skip
        feed = {k: v.astype(dtype) for k, v in feed.items()}
        outs, grads = m.value_and_grad(**feed)
        want_outs, want_grads = gc.value_and_grad(with_dtype(g, dtype), feed, of="loss")
        tol = 1e-12 if dtype == "float64" else 2e-5
        for got, want in [(outs["loss"], want_outs["loss"])] + [
            (grads[k], want_grads[k]) for k in ("x", "wide", "narrow")
        ]:
            assert got.dtype == want.dtype and got.shape == want.shape
            scale = max(float(np.abs(want).max(initial=0.0)), 1.0)
            np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)


@pytest.mark.compiler
def test_threads_change_nothing(tmp_path) -> None:
    """Large enough, images (conv3d and its input's gradient) and blocks of output channels
    (its weight's gradient) are shared among threads: the same bits on one thread or two,
    and agreement with the interpreter."""
    g = _net()
    m = gc.compile(g, out_dir=tmp_path)
    rng = np.random.default_rng(6)
    feed = {
        "x": rng.standard_normal((6, 4, 8, 9, 10)),
        "w": rng.standard_normal((8, 2, 3, 3, 3)),
        "v": rng.standard_normal((8, 3, 2, 2, 2)),
        "r": rng.standard_normal((6, 3, 16, 10, 20)),
    }
    runs = []
    for threads in (1, 2):
        m.module.set_num_threads(threads)
        runs.append(m.value_and_grad(**feed))
    want_outs, want_grads = gc.value_and_grad(g, feed, of="loss")
    for name in ("x", "w", "v"):
        np.testing.assert_array_equal(runs[0][1][name], runs[1][1][name])
        np.testing.assert_allclose(runs[1][1][name], want_grads[name], rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(runs[0][0]["loss"], runs[1][0]["loss"])
    np.testing.assert_allclose(runs[1][0]["loss"], want_outs["loss"], rtol=1e-12)
