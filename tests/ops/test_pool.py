"""The pooling ops of their own beyond the registry table: which op each public function
reaches, the same bits as the depthwise convolution that average pooling was built from,
second derivatives through the public functions, and max_unpool's repeated and bad indices
(the last repeated one wins, each gets the gradient; one outside the plane stops the call
with an error naming the step, in the native module and the Python renderer, and the
interpreter names the node)."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.pyrender import PyModule
from graphc.compiler import run_stages
from graphc.gradcheck import check_grad
from graphc.ops._build import apply
from graphc.ops.conv_nd import conv

RNG = np.random.default_rng(5)


def _ops(g: gc.Graph) -> set[str]:
    return {a["op"] for _, a in g.nx.nodes(data=True)}


def test_public_functions_reach_the_ops() -> None:
    g = gc.Graph("m")
    x1, x2 = g.param("a", shape=("N", 2, 9)), g.param("b", shape=("N", 2, 7, 8))
    x3 = g.param("c", shape=("N", 2, 5, 4, 5))
    v, i = gc.max_pool2d(x2, 2, return_indices=True)
    terms = [gc.avg_pool1d(x1, 3, 2, 1, True, False), gc.avg_pool2d(x2, 2, divisor_override=3),
             gc.avg_pool3d(x3, 2, ceil_mode=True), gc.adaptive_avg_pool2d(x2, (3, 5)),
             gc.adaptive_avg_pool1d(x1, 4), gc.max_unpool2d(v, i, 2),
             gc.avg_pool2d(x2, 2)]  # fmt: skip
    assert [t.op for t in terms] == ["avg_pool"] * 3 + ["adaptive_avg_pool"] * 2 + [
        "max_unpool", "avg_pool2d"]  # fmt: skip
    loss = terms[0].sum()
    for t in terms[1:]:
        loss = loss + gc.sum(t * t)
    g.output("loss", loss)
    ops = _ops(gc.grad(g, "loss"))
    assert {"avg_pool_grad", "adaptive_avg_pool_grad", "gather", "avg_pool2d_grad"} <= ops
    assert not {"conv2d", "conv3d", "matmul", "scatter", "conv2d_grad_input"} & ops
    assert gc.adaptive_avg_pool3d(x3, (None, 4, 5)) is x3  # nothing to average


def _composition(x: gc.Value, k: int, kernel, stride, padding, ceil, include_pad, divisor):
    """avg_pool as it was built before it was an op: a depthwise convolution with a kernel of
    ones, after zeros where a ceil_mode window reaches past the padding, times 1 / counts."""
    outs, extra, counts = [], [], np.ones(())
    for n, kk, s, p in zip(x.shape[2:], kernel, stride, padding, strict=True):
        o = -(-(n + 2 * p - kk) // s) + 1 if ceil else (n + 2 * p - kk) // s + 1
        o -= 1 if ceil and (o - 1) * s >= n + p else 0
        outs.append(o)
        extra.append(max(0, (o - 1) * s + kk - (n + 2 * p)))
        start = np.arange(o) * s - p
        end = np.minimum(start + kk, n + p)
        c = end - start if include_pad else np.minimum(end, n) - np.maximum(start, 0)
        counts = np.multiply.outer(counts, c.astype(np.float64))
    if any(extra):
        x = gc.pad(x, ((0, 0), (0, 0), *((0, e) for e in extra)))
    c = x.shape[1]
    ones = gc.broadcast_to(x.graph.const(1.0, x.dtype), (c, 1, *kernel))
    total = conv(x, ones, k, stride=stride, padding=padding, groups=c)
    if divisor is not None:
        return total / float(divisor)
    return total * x.graph.const(1.0 / counts, x.dtype)


SAME_BITS = [  # (x shape, kernel, stride, padding, ceil, count_include_pad, divisor)
    ((2, 3, 11), (3,), (2,), (1,), True, False, None),
    ((2, 3, 9, 10), (3, 3), (2, 2), (1, 1), True, False, None),
    ((2, 3, 9, 10), (3, 2), (2, 1), (1, 0), True, True, None),
    ((2, 3, 8, 9), (2, 2), (2, 2), (0, 0), False, True, 3),
    ((2, 2, 6, 7, 5), (2, 2, 2), (2, 1, 2), (1, 1, 1), True, True, None),
    ((1, 4, 8, 8, 8), (3, 3, 3), (2, 2, 2), (1, 1, 1), False, False, None),
    ((1, 2, 5, 5, 5), (2, 3, 2), (1, 1, 1), (1, 1, 0), False, False, 5),
]


def _pools(kind: str, dtype: str) -> tuple[gc.Graph, dict]:
    """Every SAME_BITS pooling, by the op (`kind` "op") or the composition, in one model."""
    g, feed, loss = gc.Graph(f"same_bits_{kind}"), {}, None
    rng = np.random.default_rng(9)
    for k, (xs, *geo) in enumerate(SAME_BITS):
        x = g.param(f"x{k}", shape=("N", *xs[1:]))
        dims = len(xs) - 2
        if kind == "op":
            y = getattr(gc, f"avg_pool{dims}d")(x, *(geo[:5] if dims == 1 else geo))
            assert y.op == "avg_pool"
        else:
            y = _composition(x, dims, *geo)
        r = g.input(f"r{k}", shape=y.shape)
        g.output(f"y{k}", y)
        term = gc.sum(y * r)
        loss = term if loss is None else loss + term
        feed[f"x{k}"] = rng.standard_normal((2, *xs[1:])).astype(dtype)  # N = 2
        feed[f"r{k}"] = rng.standard_normal((2, *y.shape[1:])).astype(dtype)
    g.output("loss", loss)
    return g, feed


@pytest.mark.compiler
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_avg_pool_has_the_bits_of_the_depthwise_convolution(dtype: str, tmp_path) -> None:
    """Summed in the order of the convolution's direct kernels and scaled by the same
    rounded factor, values and gradients are the same bits (1-D, 2-D, 3-D, every option)."""
    got = {}
    for kind in ("op", "composition"):
        g, feed = _pools(kind, dtype)
        got[kind] = gc.compile(g, dtype=dtype, out_dir=tmp_path).value_and_grad(**feed)
    (outs, grads), (outs2, grads2) = got["op"], got["composition"]
    for k in range(len(SAME_BITS)):
        np.testing.assert_array_equal(outs[f"y{k}"], outs2[f"y{k}"], err_msg=f"values {k}")
        np.testing.assert_array_equal(grads[f"x{k}"], grads2[f"x{k}"], err_msg=f"grads {k}")
        assert np.abs(grads[f"x{k}"]).max() > 0


def test_second_order_through_the_public_functions() -> None:
    g = gc.Graph("m")
    x = g.param("x", shape=(2, 2, 5, 6))
    y = gc.avg_pool2d(x * x, 3, 2, 1, True, False) + gc.adaptive_avg_pool2d(x * x * x, (3, 4))
    g.output("loss", gc.sum(y * y))
    dg = gc.grad(g, "loss", ["x"])
    u = dg.input("u", shape=(2, 2, 5, 6))
    dg.output("loss2", gc.sum(dg[gc.grad_name("loss", "x")] * u))
    ops = _ops(gc.grad(dg, "loss2", ["x"]))
    assert {"avg_pool", "avg_pool_grad", "adaptive_avg_pool", "adaptive_avg_pool_grad"} <= ops
    feed = {"x": RNG.standard_normal((2, 2, 5, 6)), "u": RNG.standard_normal((2, 2, 5, 6))}
    res = check_grad(dg, feed, "loss2", ["x"], rtol=1e-6, atol=1e-8)
    assert res.ok, str(res)


# ---- max_unpool's indices -----------------------------------------------------------------------
def _unpool_graph(offset: int | None = None) -> gc.Graph:
    """max_unpool2d of x [N, 1, 2, 2] at int indices `i` (given, or the given ones plus
    `offset`: then the model computes them) into planes of 4 x 4."""
    g = gc.Graph("unpool")
    x = g.param("x", shape=("N", 1, 2, 2))
    i = g.input("i", shape=("N", 1, 2, 2), dtype="int64")
    y = gc.max_unpool2d(x, i if offset is None else i + offset, 2)
    g.output("y", y)
    g.output("loss", gc.sum(y * g.const(np.arange(16.0).reshape(4, 4))))
    return g


X = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
REPEATED = np.array([[[[3, 0], [3, 1]]]])
OFFSET = 1  # the computed indices are the given ones + 1


def _given(idx: np.ndarray, key: str) -> np.ndarray:
    return idx - OFFSET if key == "computed" else idx


@pytest.fixture(scope="module")
def unpool_modules(tmp_path_factory):
    out = tmp_path_factory.mktemp("unpool")
    mods = {}
    for key, offset in (("given", None), ("computed", OFFSET)):
        g = _unpool_graph(offset)
        mods[key] = (g, gc.compile(g, out_dir=out), PyModule(run_stages(g).module))
    return mods


@pytest.mark.compiler
@pytest.mark.parametrize("key", ["given", "computed"])
def test_max_unpool_repeated_indices(unpool_modules, key: str) -> None:
    """The last of repeated indices wins (as PyTorch's on the CPU); each gets the gradient."""
    g, native, py = unpool_modules[key]
    want_y = np.zeros(16)
    want_y[[3, 0, 1]] = [3.0, 2.0, 4.0]
    want_dx = np.array([[[[3.0, 0.0], [3.0, 1.0]]]])  # d loss / d y is arange(16)
    i = _given(REPEATED, key)
    interp = gc.value_and_grad(g, {"x": X, "i": i}, of="loss")
    for outs, grads in (interp, native.value_and_grad(x=X, i=i),
                        py.value_and_grad(x=X, i=i)):  # fmt: skip
        np.testing.assert_array_equal(outs["y"].ravel(), want_y)
        np.testing.assert_array_equal(grads["x"], want_dx)


@pytest.mark.compiler
@pytest.mark.parametrize("key", ["given", "computed"])
@pytest.mark.parametrize("bad", [16, -1])
def test_max_unpool_index_outside_the_plane(unpool_modules, key: str, bad: int) -> None:
    g, native, py = unpool_modules[key]
    idx = _given(np.array([[[[3, 0], [bad, 1]]], [[[0, 1], [2, 3]]]]), key)
    x = np.concatenate([X, X])
    pattern = rf"index {bad} .*out of bounds .*16"
    for m in (native, py):
        with pytest.raises(gc.InputError, match=pattern):
            m.value_and_grad(x=x, i=idx)
    if key == "computed":  # the kernel found it: the message names the step
        with pytest.raises(gc.InputError, match=r"v\d+ = max_unpool"):
            native.forward(x=x, i=idx)
    with pytest.raises(gc.InputError, match="max_unpool"):
        gc.value_and_grad(g, {"x": x, "i": idx}, of="loss")
    np.testing.assert_array_equal(native.forward(x=X, i=_given(REPEATED, key))["y"][0, 0, 0, 3], 3)


def test_max_unpool_constant_indices_are_checked_when_built() -> None:
    g = gc.Graph("m")
    x = g.param("x", shape=(1, 1, 2, 2))
    bad = g.const(np.array([[[[0, 1], [16, 2]]]]), "int64")
    with pytest.raises(gc.ShapeError, match="max_unpool2d at test_pool.py:.*index 16 .*bounds"):
        gc.max_unpool2d(x, bad, 2)
    g.output("y", apply("max_unpool", x, bad, size=(4, 4)))  # past the builder's check
    with pytest.raises(gc.ShapeError, match="index 16 .*out of bounds"):
        gc.verify(g)
