"""Sums and means along the innermost axis add each row as NumPy's pairwise summation does
(codegen/loops.py `row_sum`): the compiled results equal np.sum's and np.mean's bits, for rows
shorter than NumPy's 8 accumulators, of one leaf (at most 128 terms) and of a tree of leaves,
of static and symbolic lengths, fused with the elementwise ops that make their terms, several
in one loop beside stored values, on any number of threads, and in the Python backend. (They
used to add each row's terms in order, 8 rows at a time: other bits than NumPy's from 8 terms
on.)"""

import os

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.pyrender import PyModule
from graphc.compiler import run_stages
from tests.bits import same_bits

pytestmark = pytest.mark.compiler

LENGTHS = [0, 1, 7, 8, 9, 15, 16, 63, 64, 65, 127, 128, 129, 136, 255, 256, 257, 300, 1000]
DTYPES = ["float64", "float32"]


def _rows(rng, shape, dtype) -> np.ndarray:
    """Terms of many magnitudes, whose sums' bits depend on the order of the additions."""
    scale = 10.0 ** rng.integers(-3, 4, size=shape)
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_static_rows_sum_to_numpys_bits(tmp_path, dtype):
    g = gc.Graph("static_rows")
    for n in LENGTHS:
        x = g.input(f"x{n}", shape=(3, n))
        y = g.input(f"y{n}", shape=(3, n))
        g.output(f"s{n}", gc.sum((x - y) * x, axis=-1))
        g.output(f"m{n}", gc.mean(x, axis=1, keepdims=True))
    m = gc.compile(g, out_dir=tmp_path, dtype=dtype)
    assert "rows summed pairwise" in m.source
    rng = np.random.default_rng(0)
    ins = {f"{v}{n}": _rows(rng, (3, n), dtype) for n in LENGTHS for v in "xy"}
    out = m.forward(**ins)
    for n in LENGTHS:
        x, y = ins[f"x{n}"], ins[f"y{n}"]
        same_bits(out[f"s{n}"], np.sum((x - y) * x, axis=-1), f"sum, n={n}")
        if n:  # np.mean of no element: NaN, as the compiled one (sign aside)
            same_bits(out[f"m{n}"], np.mean(x, axis=1, keepdims=True), f"mean, n={n}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_symbolic_rows_sum_to_numpys_bits(tmp_path, dtype):
    g = gc.Graph("symbolic_rows")
    x = g.input("x", shape=("B", 2, "L"))
    w = g.input("w", shape=("L",))
    g.output("s", gc.sum(x * w, axis=-1))
    g.output("m", gc.mean(x, axis=-1, keepdims=True))
    m = gc.compile(g, out_dir=tmp_path, dtype=dtype)
    rng = np.random.default_rng(1)
    for n in LENGTHS:
        xs, ws = _rows(rng, (3, 2, n), dtype), _rows(rng, (n,), dtype)
        out = m.forward(x=xs, w=ws)
        same_bits(out["s"], np.sum(xs * ws, axis=-1), f"sum, n={n}")
        if n:
            same_bits(out["m"], np.mean(xs, axis=-1, keepdims=True), f"mean, n={n}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_several_sums_beside_stored_values(tmp_path, dtype):
    """Layer norm's backward: two means of one loop, and a value the loop stores."""
    g = gc.Graph("layer_norm_like")
    dy = g.input("dy", shape=("N", "C"))
    xh = g.input("xh", shape=("N", "C"))
    w = g.input("w", shape=("C",))
    gw = dy * w
    g.output("gw", gw)
    g.output("a", gc.mean(gw, axis=-1, keepdims=True))
    g.output("b", gc.mean(gw * xh, axis=-1, keepdims=True))
    g.output("d", dy - xh)
    g.output("c", gc.sum((dy - xh) * dy, axis=-1))
    m = gc.compile(g, out_dir=tmp_path, dtype=dtype)
    assert "rows summed pairwise" in m.source
    rng = np.random.default_rng(2)
    for n in (5, 64, 100, 300):
        dys, xhs, ws = _rows(rng, (7, n), dtype), _rows(rng, (7, n), dtype), _rows(rng, (n,), dtype)
        out = m.forward(dy=dys, xh=xhs, w=ws)
        gws = dys * ws
        want = {
            "gw": gws,
            "a": np.mean(gws, axis=-1, keepdims=True),
            "b": np.mean(gws * xhs, axis=-1, keepdims=True),
            "d": dys - xhs,
            "c": np.sum((dys - xhs) * dys, axis=-1),
        }
        for k, v in want.items():
            same_bits(out[k], v, f"{k}, n={n}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_signed_zeros_nans_and_infinities(tmp_path, dtype):
    g = gc.Graph("special_rows")
    x = g.input("x", shape=(6, "L"))
    g.output("s", gc.sum(x, axis=-1))
    g.output("m", gc.mean(x, axis=-1))
    m = gc.compile(g, out_dir=tmp_path, dtype=dtype)
    for n in (1, 7, 8, 9, 64, 129, 300):
        xs = np.ones((6, n), dtype)
        xs[0] = -0.0  # np.sum starts from 0.0: +0.0, not -0.0
        xs[1, n // 2] = np.nan
        xs[2, n - 1] = np.inf
        xs[3, 0], xs[3, n - 1] = np.inf, -np.inf
        xs[4, :] = -np.inf
        xs[5, :] = np.finfo(dtype).max  # overflows to inf as NumPy's does
        out = m.forward(x=xs)
        with np.errstate(all="ignore"):
            same_bits(out["s"], np.sum(xs, axis=-1), f"sum, n={n}")
            same_bits(out["m"], np.mean(xs, axis=-1), f"mean, n={n}")
        assert not np.signbit(out["s"][0]) and not np.signbit(out["m"][0])


def test_the_bits_do_not_depend_on_the_threads(tmp_path):
    """Rows of a large 3-d loop are shared among threads (its outer loop): each row is summed
    by one thread, the same bits on one thread or two."""
    g = gc.Graph("shared_rows")
    x = g.input("x", shape=(64, 32, "L"))
    y = g.input("y", shape=(64, 32, "L"))
    g.output("m", gc.mean((x - y) * x, axis=-1))
    m = gc.compile(g, out_dir=tmp_path, dtype="float32")
    assert "its outer loop shared, rows summed pairwise" in m.source
    rng = np.random.default_rng(3)
    for n in (128, 129):
        xs, ys = _rows(rng, (64, 32, n), "float32"), _rows(rng, (64, 32, n), "float32")
        want = np.mean((xs - ys) * xs, axis=-1)
        try:
            for threads in (1, 2):
                m.module.set_num_threads(threads)
                same_bits(m.forward(x=xs, y=ys)["m"], want, f"{threads} threads, n={n}")
        finally:
            m.module.set_num_threads(os.cpu_count() or 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_python_backend_sums_rows_the_same(tmp_path, dtype):
    g = gc.Graph("py_rows")
    x = g.input("x", shape=(2, "L"))
    y = g.input("y", shape=(2, "L"))
    g.output("m", gc.mean((x - y) * x, axis=-1))
    g.output("e", x * y)
    g.output("s", gc.sum(x * y, axis=-1))
    py = PyModule(run_stages(g, dtype=dtype).module)
    native = gc.compile(g, out_dir=tmp_path, dtype=dtype)
    rng = np.random.default_rng(4)
    for n in (0, 3, 8, 21, 128, 129, 300):
        xs, ys = _rows(rng, (2, n), dtype), _rows(rng, (2, n), dtype)
        got, want = py.forward(x=xs, y=ys), native.forward(x=xs, y=ys)
        for k in want:
            same_bits(got[k], want[k], f"{k}, n={n}")
        same_bits(want["s"], np.sum(xs * ys, axis=-1), f"s, n={n}")
