"""fmod of float64 values runs as graphc's own vectorised fmod (templates/runtime/graphc_math.h
`gc_fmod`), with the bits of the C library's fmod for every pair of operands: random bit
patterns, every pair of special values (zeros, infinities, NaNs with payloads, subnormals, the
largest and smallest doubles), near multiples, the largest exponent differences, and pairs
hypothesis draws; remainder and floor_divide, which call it, keep their values."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from tests.codegen.math_kernel import LOOP_LINE, build

SPECIAL_BITS = [
    0x0000000000000000, 0x8000000000000000, 0x7FF0000000000000, 0xFFF0000000000000,
    0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000000123, 0x7FF0000000000001,
    0xFFF0000000000042, 0x0000000000000001, 0x8000000000000001, 0x0000000000000003,
    0x000FFFFFFFFFFFFF, 0x0010000000000000, 0x001FFFFFFFFFFFFF, 0x8008000000000000,
    0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 0x3FF0000000000000, 0x3FF0000000000001,
    0x3FEFFFFFFFFFFFFF, 0x3FE6666666666666, 0x4340000000000000, 0x4330000000000001,
    0x4008000000000000, 0xC008000000000000, 0x3CB0000000000000, 0x7FE0000000000000,
]  # fmt: skip
MANTISSA = 0x000FFFFFFFFFFFFF


def as_double(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint64).view(np.float64)


def operands() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    n = 1 << 16
    u64 = np.uint64
    xs = [as_double(rng.integers(0, 2**64, n, dtype=u64))]
    ys = [as_double(rng.integers(0, 2**64, n, dtype=u64))]
    special = as_double(SPECIAL_BITS)
    a, b = np.meshgrid(special, special)
    xs.append(a.ravel())
    ys.append(b.ravel())
    y = rng.standard_normal(n)  # near multiples: x = k y to the ulp, k up to 2^112
    k = rng.integers(-(2**52), 2**52, n).astype(np.float64) * 2.0 ** rng.integers(-8, 60, n)
    xs.append(((k * y).view(np.int64) + rng.integers(-2, 3, n)).view(np.float64))
    ys.append(y)
    big = as_double(rng.integers(0x7FE0000000000000, 0x7FF0000000000000, n, dtype=u64))
    tiny = as_double(rng.integers(1, 1 << 52, n, dtype=u64))  # exponent differences to 2097
    sign = np.where(rng.random((2, n)) < 0.5, -1.0, 1.0)
    xs.append(big * sign[0])
    ys.append(tiny * sign[1])
    # significands all ones, all zeros and between, at every exponent (subnormals too)
    edge = rng.choice([0, 1, 2, MANTISSA, MANTISSA - 1, 1 << 51], (2, n)).astype(u64)
    exps = rng.integers(0, 2047, (2, n)).astype(u64) << u64(52)
    xs.append(as_double(exps[0] | edge[0]))
    ys.append(as_double(exps[1] | edge[1]))
    return np.concatenate(xs), np.concatenate(ys)


def c_fmod(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.fmod(x, y)


def same_bits(got: np.ndarray, want: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    g, w = got.view(np.uint64), want.view(np.uint64)
    bad = np.flatnonzero(g != w)
    xb, yb = x.view(np.uint64), y.view(np.uint64)
    shown = [f"fmod({xb[i]:016x}, {yb[i]:016x}): got {g[i]:016x}, want {w[i]:016x}"
             for i in bad[:5]]  # fmt: skip
    assert not bad.size, f"{bad.size} of {got.size} differ: " + "; ".join(shown)


@pytest.mark.compiler
def test_fmod_remainder_and_floor_divide_of_float64(tmp_path) -> None:
    x, y = operands()
    g = gc.Graph("fmod64")
    gx, gy = g.input("x", shape=("N",)), g.input("y", shape=("N",))
    g.output("fmod", gc.fmod(gx, gy))
    g.output("remainder", gc.remainder(gx, gy))
    g.output("floor_divide", gc.floor_divide(gx, gy))
    g.output("by_const", gc.fmod(gx, 0.7))
    m = gc.compile(g, out_dir=tmp_path)
    assert re.findall(r"\bfmod\(b", m.source)  # the loop's calls, of buffers' elements
    out = m.forward(x=x, y=y)
    same_bits(out["fmod"], c_fmod(x, y), x, y)
    same_bits(out["by_const"], c_fmod(x, np.full_like(x, 0.7)), x, np.full_like(x, 0.7))
    with np.errstate(all="ignore"):
        want = gc.evaluate(g, {"x": x, "y": y})
    for name in ("remainder", "floor_divide"):
        nan = np.isnan(want[name])
        assert np.array_equal(np.isnan(out[name]), nan), name
        same_bits(out[name][~nan], want[name][~nan], x[~nan], y[~nan])


@pytest.fixture(scope="module", params=[True, False], ids=["native", "no_fma"])
def kernel(request, tmp_path_factory):
    """gc_fmod over arrays, built as this machine's modules build it (fused multiply-adds
    where it has them) or without them (Dekker's product), and gcc's vectoriser report."""
    return build("gc_fmod", tmp_path_factory.mktemp("fmod"), fma=request.param)


@pytest.mark.compiler
def test_the_loop_of_gc_fmod_is_vectorised(kernel) -> None:
    _, report = kernel
    assert re.search(rf"k\.c:{LOOP_LINE}:\d+: optimized: loop vectorized", report), report


@pytest.mark.compiler
def test_both_ways_of_rounds_give_the_bits_of_c(kernel) -> None:
    run, _ = kernel
    x, y = operands()
    same_bits(run(x, y), c_fmod(x, y), x, y)


def _doubles():
    """Doubles of every kind: any bit pattern, or a sign, an exponent of the extremes
    (subnormal, smallest normal, largest) or any, and a significand of few or many bits."""
    exponent = st.one_of(st.sampled_from([0, 1, 2, 1022, 1023, 1024, 2045, 2046, 2047]),
                         st.integers(0, 2047))  # fmt: skip
    significand = st.one_of(st.sampled_from([0, 1, MANTISSA, MANTISSA - 1, 1 << 51]),
                            st.integers(0, MANTISSA))  # fmt: skip
    built = st.builds(lambda s, e, m: (s << 63) | (e << 52) | m, st.integers(0, 1), exponent,
                      significand)  # fmt: skip
    return st.one_of(built, st.integers(0, 2**64 - 1))


@pytest.mark.compiler
@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_doubles(), _doubles()), min_size=1, max_size=64))
def test_gc_fmod_has_the_bits_of_c_for_drawn_pairs(kernel, pairs) -> None:
    run, _ = kernel
    bits = np.array(pairs, dtype=np.uint64)
    x, y = as_double(bits[:, 0].copy()), as_double(bits[:, 1].copy())
    same_bits(run(x, y), c_fmod(x, y), x, y)
