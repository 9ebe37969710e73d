"""conv2d and pooling beyond the registry table: conventions where finite differences do not
apply (ties, NaN, windows of -inf), how parameters are given, errors, second derivatives
through every gradient op, and agreement with PyTorch where it is installed."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ShapeError
from graphc.gradcheck import check_grad
from graphc.ops.conv import conv2d_grad_input, conv2d_grad_weight
from graphc.ops.pool import max_pool2d_grad
from tests.ops.cases_conv import Geometry, np_conv2d, pair, pool_out

NAN, INF = np.nan, np.inf


def _pool_grad(kind: str, x: np.ndarray, ct: np.ndarray, **kw) -> tuple[np.ndarray, np.ndarray]:
    """(pool(x), d sum(pool(x) * ct) / dx) from the interpreter."""
    g = gc.Graph("m")
    xv = g.param("x", shape=x.shape)
    y = getattr(gc, kind)(xv, **kw)
    r = g.input("r", shape=y.shape)
    g.output("y", y)
    g.output("loss", gc.sum(y * r))
    outs, grads = gc.value_and_grad(g, {"x": x, "r": ct}, of="loss")
    return outs["y"], grads["x"]


def test_max_pool_ties_go_to_the_first_maximum() -> None:
    """Row-major order within each window; overlapping windows add up at a shared argmax."""
    x = np.array([[[[1.0, 3.0, 3.0], [3.0, 2.0, 3.0], [0.0, 3.0, 1.0]]]])
    ct = np.array([[[[1.0, 10.0], [100.0, 1000.0]]]])
    y, dx = _pool_grad("max_pool2d", x, ct, kernel_size=2, stride=1)
    np.testing.assert_array_equal(y, [[[[3.0, 3.0], [3.0, 3.0]]]])
    # windows: (0,0) -> x[0,1]; (0,1) -> x[0,1]; (1,0) -> x[1,0]; (1,1) -> x[1,2]
    np.testing.assert_array_equal(dx, [[[[0, 11, 0], [100, 0, 1000], [0, 0, 0]]]])


def test_max_pool_nan_wins_and_takes_the_gradient() -> None:
    x = np.array([[[[1.0, NAN, 5.0, NAN], [NAN, 2.0, 0.0, 1.0]]]])
    y, dx = _pool_grad("max_pool2d", x, np.array([[[[2.0, 3.0]]]]), kernel_size=2)
    np.testing.assert_array_equal(y, [[[[NAN, NAN]]]])
    np.testing.assert_array_equal(dx, [[[[0, 0, 0, 3], [2, 0, 0, 0]]]])  # the last NaN


def test_max_pool_padding_is_never_the_argmax() -> None:
    """A window whose cells are all -inf has the value -inf, and its first cell inside x (not
    a padding cell, also -inf) gets the gradient."""
    x = np.array([[[[-INF, -INF, 1.0], [-INF, -INF, 2.0]]]])
    y, dx = _pool_grad("max_pool2d", x, np.array([[[[1.0, 10.0], [100.0, 1000.0]]]]),
                       kernel_size=2, padding=1)  # fmt: skip
    np.testing.assert_array_equal(y, [[[[-INF, 1.0], [-INF, 2.0]]]])
    np.testing.assert_array_equal(dx, [[[[1, 0, 10], [100, 0, 1000]]]])


def test_avg_pool_counts_padding() -> None:
    """count_include_pad: every window is divided by kH*kW, padding cells included."""
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    ct = np.ones((1, 1, 2, 2))
    y, dx = _pool_grad("avg_pool2d", x, ct, kernel_size=2, stride=2, padding=1)
    np.testing.assert_allclose(y, [[[[1 / 4, (2 + 3) / 4], [(4 + 7) / 4, (5 + 6 + 8 + 9) / 4]]]])
    np.testing.assert_allclose(dx, np.full((1, 1, 3, 3), 0.25))


def test_avg_pool_overlapping_windows_add_up() -> None:
    x = np.zeros((1, 1, 3, 3))
    _, dx = _pool_grad("avg_pool2d", x, np.ones((1, 1, 2, 2)), kernel_size=2, stride=1)
    np.testing.assert_allclose(dx, [[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]] * np.array(0.25))


@pytest.mark.parametrize(
    "kw",
    [
        {"stride": 2, "padding": (1, 0), "groups": 2},
        {"dilation": (2, 1), "groups": 2},
        {"stride": (1, 2), "padding": 2, "dilation": 2, "groups": 2},
    ],
)
def test_second_derivatives_through_every_conv_op(kw: dict) -> None:
    """d/dx and d/dw of <grad_w loss, v> + <grad_x loss, u>: every gradient op differentiated
    again, against finite differences."""
    rng = np.random.default_rng(0)
    g = gc.Graph("m")
    x, w = g.param("x", shape=(2, 4, 6, 7)), g.param("w", shape=(4, 2, 3, 2))
    g.output("loss", gc.sum(gc.tanh(gc.conv2d(x, w, **kw))))
    dg = gc.grad(g, "loss")
    u, v = dg.input("u", shape=(2, 4, 6, 7)), dg.input("v", shape=(4, 2, 3, 2))
    first = gc.sum(dg[gc.grad_name("loss", "x")] * u) + gc.sum(dg[gc.grad_name("loss", "w")] * v)
    dg.output("loss2", first)
    ops = {a["op"] for _, a in gc.grad(dg, "loss2", ["x", "w"]).nx.nodes(data=True)}
    assert {"conv2d", "conv2d_grad_input", "conv2d_grad_weight"} <= ops
    feed = {
        k: rng.standard_normal(s)
        for k, s in [
            ("x", (2, 4, 6, 7)),
            ("w", (4, 2, 3, 2)),
            ("u", (2, 4, 6, 7)),
            ("v", (4, 2, 3, 2)),
        ]
    }
    res = check_grad(dg, feed, "loss2", ["x", "w"], rtol=1e-6, atol=1e-8)  # fmt: skip
    assert res.ok, str(res)


def test_pairs_and_ints_are_the_same_params() -> None:
    g = gc.Graph("m")
    x, w = g.param("x", shape=("N", 2, 9, 9)), g.param("w", shape=(4, 1, 3, 3))
    a = gc.conv2d(x, w, stride=2, padding=np.int64(1), dilation=(1, 1), groups=2)
    b = gc.conv2d(x, w, stride=(2, 2), padding=[1, 1], groups=np.int32(2))
    assert a.attrs["params"] == b.attrs["params"]
    assert a.shape == ("N", 4, 5, 5)
    p = gc.max_pool2d(x, 3)
    assert p.attrs["params"]["stride"] == (3, 3) and p.shape == ("N", 2, 3, 3)


def test_json_round_trip_keeps_the_params() -> None:
    g = gc.Graph("m")
    x, w = g.param("x", shape=("N", 2, 6, 6)), g.param("w", shape=(3, 2, 2, 2))
    g.output("y", gc.avg_pool2d(gc.max_pool2d(gc.conv2d(x, w, padding=(1, 0)), 2), 1))
    h = gc.Graph.from_json(g.to_json())
    rng = np.random.default_rng(1)
    feed = {"x": rng.standard_normal((2, 2, 6, 6)), "w": rng.standard_normal((3, 2, 2, 2))}
    np.testing.assert_array_equal(gc.evaluate(h, feed)["y"], gc.evaluate(g, feed)["y"])


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda g: gc.conv2d(g.param("x", shape=("N", "C", 5, 5)),
                             g.param("w", shape=(2, 3, 3, 3))), "C_in of x is the symbol 'C'"),
        (lambda g: gc.conv2d(g.param("x", shape=(1, 4, 5, 5)), g.param("w", shape=(3, 2, 3, 3)),
                             groups=2), "C_out = 3 is not a multiple of groups = 2"),
        (lambda g: gc.conv2d(g.param("x", shape=(1, 1, 2, 5)), g.param("w", shape=(1, 1, 3, 3))),
         "does not fit"),
        (lambda g: gc.conv2d(g.param("x", shape=(1, 1, 5, 5)), g.param("w", shape=(1, 1, 3, 3)),
                             stride="2"), "stride must be an int or a pair"),
        (lambda g: gc.max_pool2d(g.param("x", shape=(1, 1, 5, 5)), 2, padding=2),
         "more than half the kernel"),
        (lambda g: conv2d_grad_weight(g.param("x", shape=("N", 1, 5, 5)),
                                      g.param("c", shape=("M", 1, 3, 3)), 3),
         "batch sizes N and M differ"),
    ],
)  # fmt: skip
def test_errors_say_what_is_wrong(make, words: str) -> None:
    with pytest.raises(ShapeError, match=words):
        make(gc.Graph("bad"))


def test_every_conv_op_on_an_empty_batch() -> None:
    g = gc.Graph("m")
    x, w = g.param("x", shape=("N", 2, 5, 5)), g.param("w", shape=(3, 2, 3, 3))
    y = gc.max_pool2d(gc.conv2d(x, w, padding=1), 2)
    g.output("loss", gc.sum(gc.avg_pool2d(y, 2, stride=1)))
    feed = {"x": np.zeros((0, 2, 5, 5)), "w": np.ones((3, 2, 3, 3))}
    outs, grads = gc.value_and_grad(g, feed, "loss")
    assert outs["loss"] == 0.0
    assert grads["x"].shape == (0, 2, 5, 5)
    np.testing.assert_array_equal(grads["w"], np.zeros((3, 2, 3, 3)))


# ---- agreement with PyTorch's definitions (when it is installed) ------------------------------
TORCH_CONV = [
    ((2, 3, 7, 6), (4, 3, 3, 2), Geometry()),
    ((2, 4, 9, 8), (6, 2, 3, 3), Geometry((2, 1), (1, 2), (2, 1), 2)),
    ((3, 6, 10, 11), (3, 2, 1, 3), Geometry((3, 2), (0, 1), (1, 3), 3)),
]


@pytest.mark.parametrize(("xs", "ws", "geo"), TORCH_CONV)
def test_conv2d_matches_pytorch(xs: tuple, ws: tuple, geo: Geometry) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    g = gc.Graph("m")
    y = gc.conv2d(g.param("x", shape=xs), g.param("w", shape=ws), **geo.kw())
    r = g.input("r", shape=y.shape)
    g.output("y", y)
    g.output("loss", gc.sum(y * r))
    ct = rng.standard_normal(y.shape)
    outs, grads = gc.value_and_grad(g, {"x": x, "w": w, "r": ct}, of="loss")
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, None, geo.s, geo.p, geo.d, geo.g)
    ty.backward(torch.tensor(ct))
    np.testing.assert_allclose(outs["y"], ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["x"], tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["w"], tw.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize(
    "kw",
    [
        {"kernel_size": 2},
        {"kernel_size": (3, 2), "stride": 1, "padding": (1, 1)},
        {"kernel_size": 3, "stride": (2, 1), "padding": 1},
    ],
)
def test_pooling_matches_pytorch(kind: str, kw: dict) -> None:
    """Ties included (small integers), where PyTorch too sends the gradient to the first
    maximum of each window."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, (2, 3, 7, 6)).astype(np.float64)
    k, s, p = (pair(kw.get(key, dflt)) for key, dflt in
               (("kernel_size", 1), ("stride", kw["kernel_size"]), ("padding", 0)))  # fmt: skip
    ct = rng.standard_normal((2, 3, *pool_out(x.shape[2:], k, s, p)))
    y, dx = _pool_grad(kind, x, ct, **kw)
    tx = torch.tensor(x, requires_grad=True)
    stride = kw.get("stride", kw["kernel_size"])
    ty = getattr(torch.nn.functional, kind)(tx, kw["kernel_size"], stride, kw.get("padding", 0))
    ty.backward(torch.tensor(ct))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12)


def test_conv_formula_matches_a_direct_sum() -> None:
    """The test suite's NumPy conv2d against the definition, term by term, on one output."""
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 4, 7, 7)), rng.standard_normal((2, 2, 3, 3))
    geo = Geometry(stride=2, padding=1, dilation=2, groups=2)
    y = np_conv2d(x, w, geo)
    o, oh, ow = 1, 2, 1  # output channel 1 is in group 1, reading input channels 2 and 3
    want = 0.0
    for c in range(2):
        for i in range(3):
            for j in range(3):
                r, col = oh * 2 - 1 + 2 * i, ow * 2 - 1 + 2 * j
                if 0 <= r < 7 and 0 <= col < 7:
                    want += w[o, c, i, j] * x[0, 2 + c, r, col]
    assert y[0, o, oh, ow] == pytest.approx(want, rel=1e-12)


def test_max_pool_grad_has_no_gradient_in_x() -> None:
    g = gc.Graph("m")
    ct, x = g.param("ct", shape=(1, 1, 2, 2)), g.param("x", shape=(1, 1, 4, 4))
    g.output("loss", gc.sum(max_pool2d_grad(ct, x, 2) ** 2))
    with pytest.raises(gc.GraphError, match="does not depend on"):
        gc.grad(g, "loss", "x")


def test_grad_input_takes_the_input_size() -> None:
    """With stride 2, inputs of 6 and 7 rows give the same output; `size` tells them apart, and
    the row no window reads gets no gradient."""
    g = gc.Graph("m")
    ct, w = g.param("ct", shape=(1, 1, 2, 2)), g.param("w", shape=(1, 1, 2, 2))
    g.output("six", conv2d_grad_input(ct, w, (6, 6), stride=3))
    g.output("seven", conv2d_grad_input(ct, w, (7, 7), stride=3))
    out = gc.evaluate(g, {"ct": np.ones((1, 1, 2, 2)), "w": np.ones((1, 1, 2, 2))})
    assert out["six"].shape == (1, 1, 6, 6) and out["seven"].shape == (1, 1, 7, 7)
    np.testing.assert_array_equal(out["seven"][0, 0, 6], np.zeros(7))
    np.testing.assert_array_equal(out["seven"][0, 0, :6, :6], out["six"][0, 0])


# ---- the compiled kernels: which one a layer gets, and float32 through BLAS ------------------
def _layers(dtype: str) -> gc.Graph:
    """A wide layer (BLAS: 4*9 taps, 16 outputs per group) and a narrow one (direct loops)."""
    g = gc.Graph("kernel_choice")
    x = g.param("x", shape=("N", 4, 9, 8), dtype=dtype)
    wide, narrow = (
        g.param("wide", shape=(32, 4, 3, 3), dtype=dtype),
        g.param("narrow", shape=(3, 32, 1, 1), dtype=dtype),
    )
    h = gc.conv2d(x, wide, padding=(1, 2), dilation=(1, 2), stride=(2, 1))
    y = gc.conv2d(gc.tanh(h), narrow)
    r = g.input("r", shape=y.shape, dtype=dtype)
    g.output("loss", gc.sum(y * r))
    return g


def test_each_layer_gets_the_kernel_that_is_faster_for_it() -> None:
    from graphc.compiler import run_stages
    from graphc.ops.conv import tiling

    module = run_stages(_layers("float64"), dtype="float64").module
    assert tiling((32, 4, 3, 3), ("N", 32, 5, 8), 1) is not None
    assert tiling((3, 32, 1, 1), ("N", 3, 5, 8), 1) is None  # 32 taps, but 3 outputs
    assert tiling((32, 1, 3, 3), ("N", 32, 5, 8), 32) is None  # depthwise: 9 taps
    (vg,) = [f for f in module.functions if f.name == "value_and_grad"]
    kernel = {len(module.kernels) + k: name for k, name in enumerate(module.runtime)}
    steps = [(kernel.get(r.cells[0]), r.comment[0]) for r in vg.program]
    # the wide layer's forward, grad_input and grad_weight by BLAS, the narrow one's directly
    tiled = [what for name, what in steps if name == "conv2d_tiled_d"]
    ops = sorted(w.split(" = ")[1].split("[")[0] for w in tiled)
    assert ops == ["conv2d", "conv2d_grad_input", "conv2d_grad_weight"]
    direct = {"conv2d_d", "conv2d_grad_input_d", "conv2d_grad_weight_d"}
    assert direct <= {name for name, _ in steps}


@pytest.mark.compiler
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_both_kernels_agree_with_the_interpreter(dtype: str, tmp_path) -> None:
    """Sums of many float32 terms differ from the interpreter's (exact, then rounded) by
    float32 rounding: judged against the largest magnitude there."""
    from graphc.passes.dtype import with_dtype

    g = _layers(dtype)
    m = gc.compile(g, dtype=dtype, out_dir=tmp_path)
    rng = np.random.default_rng(5)
    for n in (3, 0):
        feed = {"x": rng.standard_normal((n, 4, 9, 8)), "wide": rng.standard_normal((32, 4, 3,
                3)) / 6, "narrow": rng.standard_normal((3, 32, 1, 1)) / 6,
                "r": rng.standard_normal((n, 3, 5, 8))}  # fmt: skip
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
    """Large enough, images (convolutions), blocks of output channels (weight gradients) and
    planes (pooling) are shared among threads: the results are the same bits on one thread
    or two, and agree with the interpreter."""
    g = gc.Graph("threads")
    x, w = g.param("x", shape=("N", 4, 32, 32)), g.param("w", shape=(8, 4, 3, 3))
    h = gc.tanh(gc.conv2d(x, w, padding=1))
    y = gc.max_pool2d(h, 3, stride=1, padding=1) + gc.avg_pool2d(h, 3, stride=1, padding=1)
    r = g.input("r", shape=y.shape)
    g.output("loss", gc.sum(y * r))
    m = gc.compile(g, out_dir=tmp_path)
    rng = np.random.default_rng(6)
    feed = {"x": rng.standard_normal((8, 4, 32, 32)), "w": rng.standard_normal((8, 4, 3, 3)),
            "r": rng.standard_normal((8, 8, 32, 32))}  # fmt: skip
    runs = []
    for threads in (1, 2):
        m.module.set_num_threads(threads)
        runs.append(m.value_and_grad(**feed))
    want_outs, want_grads = gc.value_and_grad(g, feed, of="loss")
    for name in ("x", "w"):
        np.testing.assert_array_equal(runs[0][1][name], runs[1][1][name])
        np.testing.assert_allclose(runs[1][1][name], want_grads[name], rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(runs[0][0]["loss"], runs[1][0]["loss"])
    np.testing.assert_allclose(runs[1][0]["loss"], want_outs["loss"], rtol=1e-12)
