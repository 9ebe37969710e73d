"""Derivatives where finite differences do not apply: kinks, poles, ties and the points x ** y
takes PyTorch's conventions at (the README's table of them). Each value here is PyTorch's
(written out, so this runs without it; tests/ops/test_torch_parity.py asks PyTorch itself)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

import graphc as gc

INF = np.inf


def grads(fn: Callable[..., gc.Value], *arrays: np.ndarray) -> list[np.ndarray]:
    """d sum(fn(*inputs)) / d each input, by the interpreter."""
    g = gc.Graph("m")
    xs = [g.param(f"x{k}", shape=a.shape) for k, a in enumerate(arrays)]
    g.output("loss", gc.sum(fn(*xs)))
    feed = {f"x{k}": a for k, a in enumerate(arrays)}
    _, got = gc.value_and_grad(g, feed, of="loss")
    return [got[f"x{k}"] for k in range(len(arrays))]


def test_pow_at_zero_follows_pytorch() -> None:
    """x ** y at x = 0: no dx where y = 0; no dy where y >= 0; -inf dy below."""
    x = np.array([0.0, 0.0, 0.0, 0.0, 2.0, 0.0])
    y = np.array([0.0, 0.3, 2.0, -1.5, 0.0, 1.0])
    dx, dy = grads(lambda a, b: a**b, x, y)
    np.testing.assert_array_equal(dx, [0.0, INF, 0.0, -INF, 0.0, 1.0])
    np.testing.assert_array_equal(dy, [0.0, 0.0, 0.0, -INF, np.log(2.0), 0.0])


def test_pow_with_a_constant_exponent() -> None:
    """x ** 0 has no gradient anywhere (NaN before), x ** 0.3 at 0 is inf, 0 ** y's at y > 0
    is 0 (NaN before)."""
    x = np.array([0.0, 1.5, -2.0])
    (d0,) = grads(lambda a: a**0.0, x)
    np.testing.assert_array_equal(d0, [0.0, 0.0, 0.0])
    (d3,) = grads(lambda a: a**0.3, np.array([0.0]))
    np.testing.assert_array_equal(d3, [INF])
    (dz,) = grads(lambda b: gc.pow(0.0, b), np.array([0.5, 2.0, 0.0]))
    np.testing.assert_array_equal(dz, [0.0, 0.0, 0.0])


def test_a_cube_is_two_products_as_pytorch_computes_it(tmp_path) -> None:
    """x ** 3 is (x * x) * x, PyTorch's arithmetic (the C library's pow rounds once, so their
    last bits differ), in the interpreter and compiled alike, with a constant exponent or an
    exponent input holding 3 among other values; other exponents are pow's (graphc's gc_pow in
    the module, which rounds these as the C library's pow does)."""
    x = np.random.default_rng(0).uniform(-3.0, 3.0, 1000)
    cube = (x * x) * x
    assert not np.array_equal(cube, np.power(x, 3.0))  # the two differ on these x
    g = gc.Graph("cube")
    v, e = g.input("x", shape=("N",)), g.input("e", shape=("N",))
    g.output("c", v**3.0)
    g.output("p", v**e)
    m = gc.compile(g, out_dir=tmp_path)
    exps = np.where(np.arange(1000) % 2 == 0, 3.0, 2.5)
    with np.errstate(invalid="ignore"):
        numpy_pow = np.power(x, exps)
    # Other exponents are pow's: NumPy's in the interpreter, graphc's gc_pow in the module (on
    # these x the C library's bits: both round x^2.5 correctly here; NumPy's and the C library's
    # differ in last bits where NumPy has SIMD code of its own for pow, as with AVX-512).
    c_pow = np.array([math.pow(a, b) if a >= 0 else math.nan for a, b in zip(x, exps, strict=True)])
    interpreted, compiled = gc.evaluate(g, {"x": x, "e": exps}), m.forward(x=x, e=exps)
    for out, pow_ in ((interpreted, numpy_pow), (compiled, c_pow)):
        np.testing.assert_array_equal(out["c"], cube)
        np.testing.assert_array_equal(out["p"], np.where(exps == 3, cube, pow_))


def test_clip_at_its_bounds() -> None:
    """The gradient reaches x at both bounds; lo and hi only where they bind; when lo > hi
    the result is hi and hi takes the gradient."""
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 0.5, np.nan])
    lo = np.array([-1.0, -1.0, -1.0, -1.0, -1.0, 1.0, -1.0])
    hi = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    dx, dlo, dhi = grads(gc.clip, x, lo, hi)
    np.testing.assert_array_equal(dx, [0, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(dlo, [1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(dhi, [0, 0, 0, 0, 1, 1, 0])
    g = gc.Graph("m")
    v = g.param("v", shape=(3,))
    g.output("y", gc.clip(v, 1.0, 0.0))
    np.testing.assert_array_equal(gc.evaluate(g, {"v": np.array([-1.0, 0.5, 2.0])})["y"], 0.0)


# (builder, points, PyTorch's gradient there)
KINKS = [
    (gc.relu, [0.0], [0.0]),
    (gc.abs, [0.0], [0.0]),
    (gc.leaky_relu, [0.0], [0.01]),
    (gc.elu, [0.0], [1.0]),
    (gc.selu, [0.0], [1.0507009873554805 * 1.6732632423543772]),
    (lambda x: gc.celu(x, 2.0), [0.0], [1.0]),
    (gc.hardtanh, [-1.0, 1.0, 0.5], [0.0, 0.0, 1.0]),
    (gc.relu6, [0.0, 6.0, 3.0], [0.0, 0.0, 1.0]),
    (gc.hardsigmoid, [-3.0, 3.0, 0.0], [0.0, 0.0, 1 / 6]),
    (gc.hardswish, [-3.0, 3.0, 4.0, -4.0, 2.9], [0.0, 1.0, 1.0, 0.0, 2.9 / 3 + 0.5]),
    (lambda x: gc.softplus(x, threshold=1.0), [1.0, 1.5], [1 / (1 + np.exp(-1.0)), 1.0]),
    (gc.softsign, [0.0, INF, -INF], [1.0, np.nan, np.nan]),  # inf / inf: NaN, value and slope
    (lambda x: gc.copysign(x, -1.0), [0.0, 2.0], [0.0, -1.0]),
    (lambda x: gc.maximum(x, 1.0), [1.0], [0.5]),
    (gc.sqrt, [0.0], [INF]),
    (gc.log2, [0.0], [INF]),
]


# (builder, points, PyTorch's gradient there) at NaN and at atan2's origin
NAN_POINTS = [
    (gc.relu, [np.nan], [1.0]),
    (gc.abs, [np.nan], [0.0]),
    (gc.elu, [np.nan], [1.0]),
    (lambda x: gc.maximum(x, 1.0), [np.nan], [1.0]),
    (lambda x: gc.minimum(1.0, x), [np.nan], [1.0]),
    (lambda x: gc.atan2(x, 0.0 * x), [0.0, -0.0], [0.0, 0.0]),
]
KINKS += NAN_POINTS


def test_sign_is_zero_at_nan_and_at_either_zero(tmp_path) -> None:
    """PyTorch's sign, (x > 0) - (x < 0): 0 at NaN (NumPy's is NaN), +0 at -0; interpreted
    and compiled alike."""
    g = gc.Graph("m")
    g.output("y", gc.sign(g.input("x", shape=(5,))))
    x = np.array([np.nan, -0.0, 0.0, -2.0, INF])
    for y in (gc.evaluate(g, {"x": x})["y"], gc.compile(g, out_dir=tmp_path).forward(x=x)["y"]):
        np.testing.assert_array_equal(y, [0.0, 0.0, 0.0, -1.0, 1.0])
        assert not np.signbit(y[:3]).any()


@pytest.mark.parametrize("k", range(len(KINKS)))
def test_kinks(k: int) -> None:
    fn, points, want = KINKS[k]
    (got,) = grads(fn, np.array(points))
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_remainder_and_fmod_signs() -> None:
    """remainder takes the divisor's sign (a zero keeps fmod's, as PyTorch's); fmod the
    dividend's."""
    g = gc.Graph("m")
    x, y = g.input("x", shape=(6,)), g.input("y", shape=(6,))
    g.output("r", gc.remainder(x, y))
    g.output("f", gc.fmod(x, y))
    g.output("q", gc.floor_divide(x, y))
    feed = {"x": np.array([5.0, -5.0, 5.0, -4.0, 4.0, -5.0]),
            "y": np.array([3.0, 3.0, -3.0, 2.0, -2.0, INF])}  # fmt: skip
    out = gc.evaluate(g, feed)
    np.testing.assert_array_equal(out["r"], [2.0, 1.0, -1.0, -0.0, 0.0, INF])
    assert np.signbit(out["r"][3]) and not np.signbit(out["r"][4])
    np.testing.assert_array_equal(out["f"], [2.0, -2.0, 2.0, -0.0, 0.0, -5.0])
    np.testing.assert_array_equal(out["q"], [1.0, -2.0, -2.0, -2.0, -2.0, -1.0])
