"""x ** y of float64 values runs as graphc's own vectorised pow (templates/runtime/graphc_math.h
`gc_pow`: exp(y log|x|) with log|x| and the product in double-double, rounded once): within
0.52 ulp of x^y as long double computes it over positive x of every exponent with y log x
spanning the double range, x in [0.5, 2] and x near 1 with large |y|, negative x with integer
y, results near the overflow and in the subnormal range; exact results (powers of dyadic
numbers) exact, overflow to inf and underflow to 0 where x^y rounds to them; C99's special
cases with the bits of the C library's pow; the same bits with and without fused
multiply-adds, and a loop of it vectorised."""

import ctypes
import ctypes.util
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from tests.codegen.math_kernel import LOOP_LINE, build

TINY = 5e-324
BIG = 1.7976931348623157e308
# operands whose pairs take C99's special cases (zeros, infinities, NaN, +-1) or their edges
SPECIAL = np.array(
    [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 2.5,
     -2.5, -1.5, 1.5, 0.1, -7.0, TINY, -TINY, BIG, -BIG, 2.0**-1022, 2.0**53, -(2.0**53),
     2.0**53 + 2.0, -(2.0**64) * 1.5, 2.0**65, 1e300, -1e-300, 1024.0, -1075.0, 0.25, -0.25],
)  # fmt: skip


def _samples() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    n = 1 << 18
    x = rng.integers(1, 0x7FF0000000000000, n, dtype=np.int64).view(np.float64)  # any positive
    with np.errstate(all="ignore"):
        y = rng.uniform(-745.0, 709.7, n) / np.log(x)
        y_big = rng.uniform(705.0, 709.79, n) / np.log(x)
        y_sub = rng.uniform(-746.0, -708.4, n) / np.log(x)
    return {
        "positive x, y log x in [-745, 709.7]": (x, y),
        "x in [0.5, 2], y in [-1000, 1000]": (rng.uniform(0.5, 2.0, n), rng.uniform(-1e3, 1e3, n)),
        "x within 1e-6 of 1, y in [-1e8, 1e8]": (
            1.0 + rng.uniform(-1e-6, 1e-6, n),
            rng.uniform(-1e8, 1e8, n),
        ),
        "x in [-10, -0.1], integer y in [-300, 300]": (
            -rng.uniform(0.1, 10.0, n),
            rng.integers(-300, 301, n).astype(np.float64),
        ),
        "x^y in [e^705, e^709.79]": (x, y_big),
        "x^y subnormal or 0, in [e^-746, e^-708.4]": (x, y_sub),
    }


def reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.power(x.astype(np.longdouble), y.astype(np.longdouble))


def ulps(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|got - ref| in ulps of ref as a double (subnormal ulps below 2^-1022), where ref is
    finite and not 0 and got finite."""
    keep = np.isfinite(ref) & (ref != 0) & np.isfinite(got)
    r = ref[keep]
    e = np.floor(np.log2(np.maximum(np.abs(r), np.longdouble(2.0**-1022))))
    return np.abs(got[keep].astype(np.longdouble) - r) / np.longdouble(2.0) ** (e - 52)


def c_pow(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The C library's pow of each pair."""
    name = ctypes.util.find_library("m")
    if name is None:
        pytest.skip("no C math library to load")
    fn = ctypes.CDLL(name).pow
    fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_double, ctypes.c_double]
    return np.array([fn(a, b) for a, b in zip(x.tolist(), y.tolist(), strict=True)])


@pytest.fixture(scope="module")
def power(tmp_path_factory):
    g = gc.Graph("pow64")
    gx, gy = g.input("x", shape=("N",)), g.input("y", shape=("N",))
    g.output("pow", gx**gy)
    return gc.compile(g, out_dir=tmp_path_factory.mktemp("pow64"))


@pytest.mark.compiler
def test_the_loop_calls_graphcs_pow(power) -> None:
    calls = re.findall(r"\b(powf?)\(b", power.source)  # the loop's calls, of buffers' elements
    assert calls and set(calls) == {"pow"}
    pxd = Path(gc.__file__).resolve().parent.parent / "templates" / "runtime" / "graphc_rt.pxd"
    assert 'double pow "gc_pow" (double, double)' in pxd.read_text()


@pytest.mark.compiler
@pytest.mark.parametrize("name", list(_samples()))
def test_pow_is_within_052_ulp(power, name) -> None:
    x, y = _samples()[name]
    cubes = y == 3  # (x * x) * x, as PyTorch's (ops/elementwise.py), not pow
    x, y = x[~cubes], y[~cubes]
    got = power.forward(x=x, y=y)["pow"]
    ref = reference(x, y)
    # overflow and underflow where x^y rounds to inf or 0 (and nowhere else)
    with np.errstate(over="ignore"):
        want = ref.astype(np.float64)
    assert np.array_equal(np.isinf(got), np.isinf(want)), name
    assert np.array_equal(got == 0, want == 0), name
    err = ulps(got, ref)
    assert err.size > x.size // 2
    assert err.max() <= 0.52, (name, float(err.max()))


@pytest.mark.compiler
def test_exact_powers_are_exact(power) -> None:
    """k / 4096 to the integer powers -6 to 6: every result that is a double is that double."""
    rng = np.random.default_rng(3)
    n = 1 << 14
    x = rng.integers(-4096, 4097, n) * 2.0**-12
    y = rng.integers(-6, 7, n).astype(np.float64)
    keep = (x != 0) & (y != 3)
    x, y = x[keep], y[keep]
    got = power.forward(x=x, y=y)["pow"]
    exact = [Fraction(a) ** int(b) for a, b in zip(x.tolist(), y.tolist(), strict=True)]
    doubles = [Fraction(float(v)) == v for v in exact]
    assert sum(doubles) > n // 4
    bad = [(a, b, g, float(v)) for a, b, g, v, d in zip(x, y, got, exact, doubles, strict=True)
           if d and g != float(v)]  # fmt: skip
    assert not bad, bad[:5]


@pytest.mark.compiler
def test_special_cases_have_the_bits_of_c(power) -> None:
    """Pairs with x = 0, +-1, +-inf or NaN, y = 0, +-inf or NaN, or x < 0 and y not an
    integer: C's bits (a NaN's sign and payload aside); the other pairs of these operands
    within 0.52 ulp (a few are within 2^-100 of a midpoint between two doubles, which is
    where the C library's last bit and graphc's may differ)."""
    x, y = (a.ravel() for a in np.meshgrid(SPECIAL, SPECIAL))
    got = power.forward(x=x, y=y)["pow"]
    want = c_pow(x, y)
    ax = np.abs(x)
    special = (
        (ax == 0) | (ax == 1) | np.isinf(ax) | np.isnan(x) | (y == 0) | ~np.isfinite(y)
        | ((x < 0) & (y != np.trunc(y)))
    )  # fmt: skip
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    s = special & ~nan
    g, w = got[s].view(np.uint64), want[s].view(np.uint64)
    bad = np.flatnonzero(g != w)
    shown = [(x[s][i], y[s][i], got[s][i], want[s][i]) for i in bad[:5]]
    assert not bad.size, shown
    assert special.sum() > x.size // 3
    rest = ~special & (y != 3)
    err = ulps(got[rest], reference(x[rest], y[rest]))
    assert err.max() <= 0.52, float(err.max())
    assert np.array_equal(np.isinf(got[rest]), np.isinf(want[rest]))


@pytest.fixture(scope="module", params=[True, False], ids=["native", "no_fma"])
def kernel(request, tmp_path_factory):
    """gc_pow over arrays, built as this machine's modules build it (fused multiply-adds
    where it has them) or without them (Dekker's product), and gcc's vectoriser report."""
    return build("gc_pow", tmp_path_factory.mktemp("pow"), fma=request.param)


@pytest.mark.compiler
def test_the_loop_of_gc_pow_is_vectorised(kernel) -> None:
    _, report = kernel
    assert re.search(rf"k\.c:{LOOP_LINE}:\d+: optimized: loop vectorized", report), report


@pytest.mark.compiler
def test_with_and_without_fused_multiply_adds_the_bits_are_the_modules(power, kernel) -> None:
    run, _ = kernel
    samples = _samples()
    x = np.concatenate([samples[k][0] for k in samples] + [np.repeat(SPECIAL, SPECIAL.size)])
    y = np.concatenate([samples[k][1] for k in samples] + [np.tile(SPECIAL, SPECIAL.size)])
    x, y = x[y != 3], y[y != 3]
    got, want = run(x, y), power.forward(x=x, y=y)["pow"]
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert got[~nan].tobytes() == want[~nan].tobytes()
