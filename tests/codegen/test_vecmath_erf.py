"""The compiled modules' erf and erfc (templates/runtime/graphc_rt.h), and the float versions
of exp, erf and erfc that float32 loops call: accuracy in ulp against long double references
computed here from series and continued fractions, IEEE special values, and the same bits in
every vector lane."""

import numpy as np
import pytest

import graphc as gc

pytestmark = pytest.mark.compiler
N = 1 << 15
LD = np.longdouble
PI = 4 * np.arctan(LD(1))  # pi in long double (np.pi is a double's, 4e-17 off)
_TWO_OVER_SQRT_PI = 2 / np.sqrt(PI)


def erf_series(a: np.ndarray) -> np.ndarray:
    """erf(a) for 0 <= a <= 3 in long double: 2/sqrt(pi) exp(-a^2) sum 2^n a^(2n+1)/(2n+1)!!,
    a series of positive terms (no cancellation)."""
    term, total = a.copy(), a.copy()
    for n in range(200):
        term = term * (2 * a * a) / (2 * n + 3)
        total = total + term
    return _TWO_OVER_SQRT_PI * np.exp(-a * a) * total


def erfc_fraction(a: np.ndarray) -> np.ndarray:
    """erfc(a) for a >= 2 in long double: exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + ...))),
    the continued fraction evaluated from its 400th level up."""
    f = a.copy()
    for k in range(400, 0, -1):
        f = a + LD(k) / 2 / f
    return np.exp(-a * a) / np.sqrt(PI) / f


def erf_ld(x: np.ndarray) -> np.ndarray:
    a = np.abs(x.astype(LD))
    small = np.minimum(a, 3)
    r = np.where(a < 3, erf_series(small), 1 - erfc_fraction(np.maximum(a, 3)))
    return np.copysign(r, x)


def erfc_ld(x: np.ndarray) -> np.ndarray:
    x = x.astype(LD)
    big = np.maximum(x, 2)
    return np.where(x < 2, 1 - erf_ld(np.minimum(x, 2)), erfc_fraction(big))


def test_the_references_agree_where_both_hold():
    """The series and the continued fraction meet at 2 <= x <= 3 to long double's precision:
    the references are what they claim to be."""
    a = np.linspace(2, 3, 101).astype(LD)
    rel = np.abs((1 - erf_series(a)) - erfc_fraction(a)) / erfc_fraction(a)
    assert rel.max() < 2e-14  # 1 - erf near 3 cancels 15 of 64 bits: still within 0.2 ulp
    assert abs(float(erf_ld(np.array([0.5]))[0]) - 0.5204998778130465) < 1e-16  # A&S table 7.1


def ulp_error(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    spacing = np.spacing(np.abs(ref.astype(got.dtype))).astype(LD)
    return np.asarray(np.abs(got.astype(LD) - ref) / spacing, dtype=np.float64)


@pytest.fixture(scope="module", params=["float64", "float32"])
def module(request, tmp_path_factory):
    """exp, erf and erfc of one input; in float32 the loops call expf, erff and erfcf."""
    g = gc.Graph(f"erf_{request.param}")
    x = g.input("x", shape=("N",))
    for name, op in (("exp", gc.exp), ("erf", gc.erf), ("erfc", gc.erfc)):
        g.output(name, op(x))
    out = tmp_path_factory.mktemp(request.param)
    return request.param, gc.compile(g, out_dir=out, dtype=request.param)


# (function, long double reference, input range, max error in ulp: float64, float32)
CASES = {
    "erf_near_0": ("erf", erf_ld, (-0.6, 0.6), 3.0, 3.0),
    "erf": ("erf", erf_ld, (-6.5, 6.5), 3.0, 3.0),
    "erfc_near_0": ("erfc", erfc_ld, (-0.6, 0.6), 6.0, 6.0),
    "erfc": ("erfc", erfc_ld, (-6.0, 27.0), 6.0, 6.0),
    "exp": ("exp", lambda x: np.exp(x.astype(LD)), (-104.0, 88.7), 1.0, 1.0),  # expf's range
}


@pytest.mark.parametrize("case", list(CASES))
def test_accuracy_in_ulp(module, case):
    dtype, m = module
    fn, ref, (lo, hi), limit64, limit32 = CASES[case]
    x = np.random.default_rng(len(case)).uniform(lo, hi, N).astype(dtype)
    want = ref(x)
    got = m.forward(x)[fn]
    tiny = np.finfo(dtype).tiny
    normal = np.abs(want) >= tiny  # below, the result is subnormal and its ulp is fixed
    err = ulp_error(got, want)
    limit = limit64 if dtype == "float64" else limit32
    assert err[normal].max() <= limit, (
        f"{fn} ({dtype}): {err[normal].max():.2f} ulp at x={x[normal][err[normal].argmax()]!r}"
    )
    # subnormal results: within a few units of the smallest subnormal
    sub = ~normal & (want > 0)
    if sub.any():
        smallest = float(np.nextafter(np.array(0, dtype), np.array(1, dtype)))
        assert np.abs(got[sub].astype(LD) - want[sub]).max() <= 4 * smallest


SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300, -1e-300, 5e-324, 1e-30, 0.5, -0.5, 6.0, -6.0,
           27.0, -27.0, 1e300, -1e300]  # fmt: skip


def test_special_values(module):
    dtype, m = module
    with np.errstate(all="ignore"):
        x = np.array(SPECIAL, dtype=dtype)
        got = m.forward(x)
    for fn, want in (("erf", erf_ld), ("erfc", erfc_ld)):
        w = np.asarray(want(np.nan_to_num(x, posinf=1e4, neginf=-1e4)), dtype=dtype)
        w[np.isnan(x)] = np.nan
        same = (got[fn] == w) | (np.isnan(got[fn]) & np.isnan(w))
        close = np.isclose(got[fn], w, rtol=8 * np.finfo(dtype).eps, atol=0)
        assert np.all(same | close), (fn, dtype, x[~(same | close)], got[fn][~(same | close)])
        assert not np.isnan(got[fn][~np.isnan(x)]).any()
    assert np.array_equal(np.signbit(got["erf"]), np.signbit(x))  # erf(-0) = -0
    assert got["erfc"][2] == 0 and got["erfc"][3] == 2 and got["erf"][2] == 1


def test_every_lane_gives_the_same_bits(module):
    dtype, m = module
    x = np.random.default_rng(5).uniform(-8, 8, 1000).astype(dtype)
    whole = m.forward(x)
    for shift in (1, 2, 3, 5, 7):
        part = m.forward(np.ascontiguousarray(x[shift:]))
        for name in whole:
            assert whole[name][shift:].tobytes() == part[name].tobytes(), (name, shift)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gelu_gradient_keeps_its_precision_in_the_left_tail(dtype, tmp_path):
    """d gelu(x) = Phi(x) + x phi(x) where Phi(x) is far below 1: Phi comes from erfc, as in the
    forward; 1 + erf(x/sqrt2) would be 0 there (from x = -5.5 in float, -8.3 in double), an
    error of 1/x^2 relative (3 % at x = -6)."""
    g = gc.Graph(f"gelu_tail_{dtype}")
    x = g.param("x", shape=("N",))
    g.output("loss", gc.sum(gc.gelu(x)))
    m = gc.compile(g, out_dir=tmp_path, dtype=dtype)
    lo = -30.0 if dtype == "float64" else -12.0  # phi(x) a normal number
    xs = np.linspace(lo, -3.0, 2001).astype(dtype)
    a = -xs.astype(LD) / np.sqrt(LD(2))
    phi = np.exp(-a * a) / np.sqrt(2 * PI)
    want = erfc_fraction(np.maximum(a, 2)) / 2 + xs.astype(LD) * phi
    ours = gc.value_and_grad(g, {"x": xs.astype(np.float64)}, of="loss")[1]["x"]  # NumPy's
    for got, limit in ((m.value_and_grad(x=xs)[1]["x"], 1e-10 if dtype == "float64" else 2e-5),
                       (ours, 1e-10)):  # fmt: skip
        rel = np.asarray(np.abs((got.astype(LD) - want) / want), dtype=np.float64)
        assert rel.max() < limit, (dtype, got.dtype, xs[rel.argmax()], rel.max())
