"""The runtime's softmax, log-softmax and logsumexp along the last axis (templates/runtime/
softmax.pyx.j2, logsumexp.pyx.j2) take each row's maximum and add its exps as the interpreter
does (np.max, then np.sum: NumPy's pairwise order), vectorised: their bits are those of the
NumPy formulas of graphc/ops/nn.py computed from the compiled module's own exp and log
(graphc's, which are not NumPy's), for rows of any length, static or symbolic, with NaN, infinities
and signed zeros, on one thread or two. (They used to add each row's exps in order, in double
for logsumexp: other bits from 8 terms on.) Layer norm's rows likewise: their means in
double as np.mean's."""

import os

import numpy as np
import pytest

import graphc as gc
from tests.bits import same_bits

pytestmark = pytest.mark.compiler

LENGTHS = [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65, 127, 128, 129, 136, 200, 255, 256,
           257, 300]  # fmt: skip
DTYPES = ["float64", "float32"]
ROWS = 12


def _rows(rng, n: int, dtype: str) -> np.ndarray:
    """ROWS rows of n: spread values whose exps' sums depend on the order of the additions;
    rows holding NaN, +inf, -inf, only -inf, signed zeros, a maximum that is -0.0 or +0.0."""
    x = (rng.standard_normal((ROWS, n)) * 4).astype(dtype)
    if n:
        x[1, n // 2] = np.nan
        x[2, n - 1] = np.inf
        x[3, 0] = -np.inf
        x[4, :] = -np.inf
        x[5, :] = -np.abs(x[5]) - 1
        x[5, ::2] = -0.0  # the maximum -0.0 (and +0.0 below): the same results
        x[6, :] = -np.abs(x[6]) - 1
        x[6, n // 3] = 0.0
        x[6, n - 1] = -0.0
        x[7, :] = x[7, 0]  # all equal
        x[8, :] = np.finfo(dtype).max
    return x


@pytest.fixture(scope="module")
def helpers(tmp_path_factory):
    """The compiled module's exp(x - t) (fused, elementwise) and log, per dtype."""
    out = {}
    for dtype in DTYPES:
        g = gc.Graph("exp_and_log")
        x, t, s = g.input("x", shape=("B", "L")), g.input("t", shape=("B", 1)), g.input("s", ("B",))
        g.output("e", gc.exp(x - t))
        g.output("log", gc.log(s))
        out[dtype] = gc.compile(g, out_dir=tmp_path_factory.mktemp("helpers"), dtype=dtype)
    return out


def _want(helper, x: np.ndarray) -> dict[str, np.ndarray]:
    """graphc/ops/nn.py's references with graphc's own exp and log in place of NumPy's."""
    top = np.max(x, axis=-1, keepdims=True, initial=-np.inf)
    finite = np.where(np.isfinite(top), top, 0).astype(x.dtype)
    with np.errstate(all="ignore"):
        e = helper.forward(x=x, t=top, s=np.ones(len(x), x.dtype))["e"]
        total = np.sum(e, axis=-1, keepdims=True)
        log_total = helper.forward(x=x, t=top, s=total[:, 0])["log"][:, None]
        ef = helper.forward(x=x, t=finite, s=np.ones(len(x), x.dtype))["e"]
        lse_total = np.sum(ef, axis=-1)
        lse = helper.forward(x=x, t=finite, s=lse_total)["log"] + finite[:, 0]
        return {"s": e / total, "ls": (x - top) - log_total, "lse": lse}


def _graph(shape: tuple) -> gc.Graph:
    g = gc.Graph("row_softmax")
    x = g.input("x", shape=shape)
    g.output("s", gc.softmax(x, -1))
    g.output("ls", gc.log_softmax(x, -1))
    g.output("lse", gc.logsumexp(x, -1))
    return g


@pytest.mark.parametrize("dtype", DTYPES)
def test_symbolic_rows_have_the_interpreters_order(tmp_path, helpers, dtype):
    m = gc.compile(_graph(("B", "L")), out_dir=tmp_path, dtype=dtype)
    rng = np.random.default_rng(0)
    for n in LENGTHS:
        x = _rows(rng, n, dtype)
        got, want = m.forward(x=x), _want(helpers[dtype], x)
        for k in want:
            same_bits(got[k], want[k], f"{k}, n={n}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_static_rows_have_the_interpreters_order(tmp_path, helpers, dtype):
    g = gc.Graph("static_row_softmax")
    for n in LENGTHS:
        x = g.input(f"x{n}", shape=(ROWS, n))
        g.output(f"s{n}", gc.softmax(x, -1))
        g.output(f"ls{n}", gc.log_softmax(x, -1))
        g.output(f"lse{n}", gc.logsumexp(x, -1))
    m = gc.compile(g, out_dir=tmp_path, dtype=dtype)
    rng = np.random.default_rng(1)
    ins = {f"x{n}": _rows(rng, n, dtype) for n in LENGTHS}
    got = m.forward(**ins)
    for n in LENGTHS:
        want = _want(helpers[dtype], ins[f"x{n}"])
        for k in want:
            same_bits(got[f"{k}{n}"], want[k], f"{k}, n={n}")


def test_the_bits_do_not_depend_on_the_threads(tmp_path, helpers):
    """Rows shared among threads (a softmax of many rows): each row by one thread."""
    m = gc.compile(_graph(("B", "L")), out_dir=tmp_path, dtype="float32")
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((4096, 129)) * 4).astype("float32")
    want = _want(helpers["float32"], x)
    try:
        for threads in (1, 2):
            m.module.set_num_threads(threads)
            got = m.forward(x=x)
            for k in want:
                same_bits(got[k], want[k], f"{k}, {threads} threads")
    finally:
        m.module.set_num_threads(os.cpu_count() or 1)


def test_other_axes_stay_in_order(tmp_path):
    """Along an axis that is not the last, np.sum adds in the order of the elements, and so
    does the runtime: the interpreter's bits where exp and log are exact (0, 1, -inf)."""
    g = gc.Graph("middle_axis")
    x = g.input("x", shape=(3, "L", 4))
    g.output("s", gc.softmax(x, 1))
    g.output("lse", gc.logsumexp(x, 1))
    m = gc.compile(g, out_dir=tmp_path)
    xs = np.full((3, 9, 4), -np.inf)
    xs[:, ::2] = 0.0
    xs[1, :, 2] = np.nan
    got, want = m.forward(x=xs), gc.evaluate(g, {"x": xs})
    for k in want:
        same_bits(got[k], want[k], k)


def _layer_norm64(x: np.ndarray, eps: float) -> np.ndarray:
    """Layer norm in double (graphc/codegen/pysteps.py's, the interpreter's for float64)."""
    x64 = x.astype(np.float64)
    d = x64 - x64.mean(axis=-1, keepdims=True)
    return (d / np.sqrt((d * d).mean(axis=-1, keepdims=True) + eps)).astype(x.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_rows_are_numpys_means_in_double(tmp_path, dtype):
    """Layer norm along the last axis: each row's mean and variance are np.mean's in double
    (pairwise), for float64 the interpreter's bits."""
    g = gc.Graph("row_layer_norm")
    x = g.input("x", shape=("B", "L"))
    g.output("y", gc.layer_norm(x, -1, eps=1e-5))
    m = gc.compile(g, out_dir=tmp_path, dtype=dtype)
    rng = np.random.default_rng(3)
    for n in LENGTHS[1:]:
        xs = _rows(rng, n, dtype)
        xs[8] = 1000 + xs[0]  # a large mean
        got = m.forward(x=xs)["y"]
        with np.errstate(all="ignore"):
            same_bits(got, _layer_norm64(xs, 1e-5), f"n={n}")
            if dtype == "float64":
                same_bits(got, gc.evaluate(g, {"x": xs})["y"], f"interpreter, n={n}")
