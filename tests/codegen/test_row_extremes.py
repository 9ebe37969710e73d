"""max and min along contiguous rows run in vector lanes (ops/reduce.py `_extreme_rows`) yet
give, bit for bit, what the in-order rule gives -- out = x if x beats out or x is NaN, over
the row first to last: the row's last NaN (its payload too), the first of tied zeros --
for rows shorter than, as long as, and longer than the lanes, in float32 and float64; the
values are NumPy's and the interpreter's, the gradients the interpreter's."""

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.pyrender import PyModule
from graphc.compiler import run_stages

pytestmark = pytest.mark.compiler

# 32 float32 or 16 float64 elements fill the lanes once: lengths below, at and past them
LENGTHS = [1, 2, 15, 16, 17, 31, 32, 33, 64, 65, 100, 257]


def in_order(rows: np.ndarray, op: str) -> np.ndarray:
    """Each row's extreme by the in-order rule, element by element."""
    out = np.empty(rows.shape[:-1], rows.dtype)
    for at in np.ndindex(rows.shape[:-1]):
        best = rows.dtype.type(-np.inf if op == "max" else np.inf)
        for v in rows[at]:
            if (v > best if op == "max" else v < best) or v != v:
                best = v
        out[at] = best
    return out


def nan_with_payload(dtype: str, payload: int, negative: bool = False) -> np.generic:
    bits = np.array([0x7FC00000 | payload if dtype == "float32" else 0x7FF8000000000000 | payload])
    value = bits.astype(np.uint32 if dtype == "float32" else np.uint64).view(dtype)[0]
    return -value if negative else value


def special_rows(n: int, dtype: str, seed: int) -> np.ndarray:
    """Rows of length n: plain numbers; signed zeros (alone, or the extreme among negatives
    or positives); NaNs of several payloads and signs anywhere; infinities; ties."""
    rng = np.random.default_rng(seed)
    zeros = np.array([0.0, -0.0], dtype)
    pool = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, 1.5, -0.0], dtype)
    nans = [nan_with_payload(dtype, p, neg) for p, neg in ((0, False), (0, True), (0x123, False))]
    rows = []
    for kind in range(12):
        r = rng.standard_normal(n).astype(dtype)
        if kind == 1:
            r = rng.choice(pool, n)
        elif kind == 2:
            r = rng.choice(zeros, n)
        elif kind in (3, 4):  # a zero the maximum (3) or the minimum (4), maybe twice
            r = -np.abs(r) if kind == 3 else np.abs(r)
            r[rng.integers(n, size=2)] = rng.choice(zeros, 2)
        elif kind == 5:
            r[rng.integers(n)] = nans[0]
        elif kind == 6:
            for v in nans:
                r[rng.integers(n)] = v
        elif kind == 7:
            r = rng.choice(pool, n)
            r[-1] = nans[2]
        elif kind == 8:
            r[0] = nans[1]
        elif kind == 9:
            r[:] = -np.inf
        elif kind == 10:
            r[:] = np.inf
        elif kind == 11:
            r = np.round(r)  # ties
        rows.append(r)
    return np.stack(rows)


def _same_values(got: np.ndarray, want: np.ndarray) -> None:
    """Equal numbers (+0 == -0) and NaN where NaN."""
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extremes_along_rows_are_the_in_order_ones(tmp_path, op: str, dtype: str) -> None:
    fn = getattr(gc, op)
    g = gc.Graph(f"rows_{op}")  # every length in one module: one build
    for n in LENGTHS:
        x = g.input(f"x{n}", shape=("N", n))
        g.output(f"y{n}", fn(x, axis=1))
        g.output(f"k{n}", fn(g.input(f"z{n}", shape=(2, "N", n)), axis=(1, 2), keepdims=True))
        g.output(f"a{n}", fn(x))
    m = gc.compile(g, out_dir=tmp_path, dtype=dtype)
    feed = {}
    for n in LENGTHS:
        x = special_rows(n, dtype, seed=n)
        feed[f"x{n}"], feed[f"z{n}"] = x, np.stack([x, x[::-1]])
    out = m.forward(**feed)
    ours = gc.evaluate(g, {k: v.astype(np.float64) for k, v in feed.items()})
    numpy = getattr(np, op)
    for n in LENGTHS:
        x, z = feed[f"x{n}"], feed[f"z{n}"]
        for name, rows in (("y", x), ("k", z.reshape(2, 1, 1, -1)), ("a", x.reshape(-1))):
            got, want = out[f"{name}{n}"], in_order(rows, op)
            assert got.tobytes() == want.tobytes(), (n, name, got, want)
        _same_values(out[f"y{n}"], numpy(x, axis=1))
        _same_values(out[f"a{n}"], numpy(x))
        _same_values(out[f"y{n}"], ours[f"y{n}"].astype(dtype))  # (the graph's inputs: float64)
        _same_values(out[f"k{n}"], ours[f"k{n}"].astype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_symbolic_row_length(tmp_path, dtype: str) -> None:
    """The lanes' share of a row is known only at call time: rows of every length agree."""
    g = gc.Graph("rows_nk")
    x = g.input("x", shape=("N", "K"))
    g.output("hi", gc.max(x, axis=-1))
    g.output("lo", gc.min(x, axis=1, keepdims=True))
    m = gc.compile(g, out_dir=tmp_path, dtype=dtype)
    for n in LENGTHS:
        x = special_rows(n, dtype, seed=100 + n)
        out = m.forward(x=x)
        assert out["hi"].tobytes() == in_order(x, "max").tobytes(), n
        assert out["lo"].tobytes() == in_order(x, "min")[:, None].tobytes(), n


def test_signed_zeros_and_nans_in_long_rows(tmp_path) -> None:
    """The first of tied zeros, wherever the lanes hold them; the last NaN, its payload kept."""
    g = gc.Graph("rows_zeros")
    g.output("y", gc.max(g.input("x", shape=(4, 70)), axis=1))
    m = gc.compile(g, out_dir=tmp_path, dtype="float32")
    x = -np.ones((4, 70), np.float32)
    x[0, 40], x[0, 3] = 0.0, -0.0  # the first zero, -0, is in another lane than +0
    x[1, 5], x[1, 69] = 0.0, -0.0  # the first, +0
    x[2, 1], x[2, 66] = nan_with_payload("float32", 7), nan_with_payload("float32", 9)
    x[3, 66], x[3, 1] = nan_with_payload("float32", 7), nan_with_payload("float32", 9)
    y = m.forward(x=x)["y"]
    assert np.signbit(y[0]) and y[0] == 0
    assert not np.signbit(y[1]) and y[1] == 0
    assert y[2:].view(np.uint32).tolist() == [0x7FC00009, 0x7FC00007]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradients_along_long_rows(tmp_path, dtype: str) -> None:
    """Ties share the gradient evenly, as the interpreter's; with distinct values the
    gradient is the finite differences' (the weight at the extreme, 0 elsewhere)."""
    g = gc.Graph("rows_grad")
    x = g.param("x", shape=(5, 45))
    r = g.input("r", shape=(5,))
    g.output("loss", gc.sum(gc.max(x, axis=1) * r) + gc.sum(gc.min(x, axis=1) * r * r))
    m = gc.compile(g, out_dir=tmp_path, dtype=dtype)
    rng = np.random.default_rng(3)
    rs = np.array([1.0, -2.0, 3.0, 0.5, -1.0], dtype)  # the losses exact: the differences too
    ties = np.round(rng.standard_normal((5, 45)) * 2).astype(dtype)
    _, grads = m.value_and_grad(x=ties, r=rs)
    feed = {"x": ties.astype(np.float64), "r": rs.astype(np.float64)}
    _, want_grads = gc.value_and_grad(g, feed, of="loss")
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(grads["x"], want_grads["x"], rtol=tol, atol=tol)
    distinct = rng.permutation(5 * 45).reshape(5, 45).astype(dtype) * 0.5
    _, grads = m.value_and_grad(x=distinct, r=rs)
    h = 0.125
    fd = np.zeros_like(distinct)
    for at in np.ndindex(distinct.shape):
        up, down = distinct.copy(), distinct.copy()
        up[at] += h
        down[at] -= h
        fd[at] = (m.forward(x=up, r=rs)["loss"] - m.forward(x=down, r=rs)["loss"]) / (2 * h)
    np.testing.assert_allclose(grads["x"], fd, rtol=tol, atol=tol)


def test_the_python_backend_computes_the_same_bits(tmp_path) -> None:
    """The lanes are kernel IR: the Python renderer runs them to the same results."""
    g = gc.Graph("rows_py")
    x = g.input("x", shape=(12, 37))
    g.output("hi", gc.max(x, axis=1))
    g.output("lo", gc.min(x, axis=1))
    py = PyModule(run_stages(g, dtype="float64").module)
    m = gc.compile(g, out_dir=tmp_path, dtype="float64")
    xs = special_rows(37, "float64", seed=5)
    got, want = py.forward(x=xs), m.forward(x=xs)
    for k in ("hi", "lo"):
        assert np.asarray(got[k]).tobytes() == want[k].tobytes(), k


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("axis", [2, 0, (0, 2), None])
def test_a_zero_extreme_is_the_first_zero_interpreted_and_compiled(op, axis, tmp_path) -> None:
    """Among tied zeros the first, in row-major order of the reduced elements, gives the
    sign, in the interpreter as in the compiled loops (np.max's is whichever its lanes meet
    last); PyTorch's amax along a row takes the first too."""
    rng = np.random.default_rng(7)
    shape = (4, 37, 5)
    away = 1.0 + rng.random(shape)  # the other elements lose to a zero of either sign
    zeros = np.copysign(0.0, rng.choice([-1.0, 1.0], shape))
    x = np.where(rng.random(shape) < 0.7, zeros, -away if op == "max" else away)
    axes = tuple(range(3)) if axis is None else (axis,) if isinstance(axis, int) else axis
    rows = np.moveaxis(x, axes, range(3 - len(axes), 3))
    rows = rows.reshape(*rows.shape[: 3 - len(axes)], -1)
    first = np.take_along_axis(rows, np.argmax(rows == 0, axis=-1)[..., None], -1)[..., 0]
    want = getattr(np, op)(x, axis)
    want = np.where(want == 0, first, want)
    assert (want == 0).any()
    for dtype in ("float64", "float32"):
        g = gc.Graph("z")
        g.output("y", getattr(gc, op)(g.input("x", shape=x.shape, dtype=dtype), axis))
        feed = {"x": x.astype(dtype)}
        m = gc.compile(g, dtype=dtype, out_dir=tmp_path / dtype)
        for got in (gc.evaluate(g, feed)["y"], m.forward(**feed)["y"]):
            np.testing.assert_array_equal(got, want.astype(dtype))
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
