"""The compiled modules' exp, log and tanh (templates/runtime/graphc_rt.h) and the other
elementary functions (graphc_math.h): accuracy against long double references, IEEE special
values, and the same bits in every vector lane."""

import math

import numpy as np
import pytest

import graphc as gc

pytestmark = pytest.mark.compiler
N = 1 << 18

# (op, NumPy function, input sampler, max error in ulp)
CASES = {
    "exp": (gc.exp, np.exp, lambda r: r.uniform(-745, 709.7, N), 1.0),
    "exp_near_0": (gc.exp, np.exp, lambda r: r.uniform(-2, 2, N), 1.0),
    "log": (gc.log, np.log, lambda r: np.exp(r.uniform(-744, 709, N)), 1.0),
    "log_near_1": (gc.log, np.log, lambda r: r.uniform(0.5, 2, N), 1.0),
    "tanh": (gc.tanh, np.tanh, lambda r: r.uniform(-25, 25, N), 2.5),
    "tanh_near_0": (gc.tanh, np.tanh, lambda r: r.uniform(-0.6, 0.6, N), 2.5),
    "expm1": (gc.expm1, np.expm1, lambda r: r.uniform(-40, 709.7, N), 2.0),
    "expm1_near_0": (gc.expm1, np.expm1, lambda r: r.uniform(-1, 1, N), 2.0),
    "log1p": (gc.log1p, np.log1p, lambda r: np.exp(r.uniform(-700, 700, N)), 1.5),
    "log1p_near_0": (gc.log1p, np.log1p, lambda r: r.uniform(-0.9, 1, N), 1.5),
    "log2": (gc.log2, np.log2, lambda r: np.exp(r.uniform(-744, 709, N)), 1.0),
    "exp2": (gc.exp2, np.exp2, lambda r: r.uniform(-1074, 1023.9, N), 1.5),
    "sin": (gc.sin, np.sin, lambda r: r.uniform(-10, 10, N), 1.0),
    "sin_wide": (gc.sin, np.sin, lambda r: r.uniform(-1.6e6, 1.6e6, N), 1.0),
    "cos": (gc.cos, np.cos, lambda r: r.uniform(-10, 10, N), 1.0),
    "cos_wide": (gc.cos, np.cos, lambda r: r.uniform(-1.6e6, 1.6e6, N), 1.0),
    "tan": (gc.tan, np.tan, lambda r: r.uniform(-10, 10, N), 1.0),
    "tan_wide": (gc.tan, np.tan, lambda r: r.uniform(-1.6e6, 1.6e6, N), 1.0),
    "asin": (gc.asin, np.arcsin, lambda r: r.uniform(-1, 1, N), 1.0),
    "acos": (gc.acos, np.arccos, lambda r: r.uniform(-1, 1, N), 1.0),
    "atan": (
        gc.atan,
        np.arctan,
        lambda r: np.exp(r.uniform(-50, 50, N)) * r.choice([-1, 1], N),
        1.0,
    ),
    "sinh": (gc.sinh, np.sinh, lambda r: r.uniform(-710, 710, N), 2.0),
    "sinh_near_0": (gc.sinh, np.sinh, lambda r: r.uniform(-2, 2, N), 2.0),
    "cosh": (gc.cosh, np.cosh, lambda r: r.uniform(-710, 710, N), 1.5),
    "cosh_near_0": (gc.cosh, np.cosh, lambda r: r.uniform(-2, 2, N), 1.5),
    "asinh": (gc.asinh, np.arcsinh, lambda r: np.exp(r.uniform(-700, 700, N)), 2.0),
    "asinh_near_0": (gc.asinh, np.arcsinh, lambda r: r.uniform(-3, 3, N), 2.0),
    "acosh": (gc.acosh, np.arccosh, lambda r: np.exp(r.uniform(0, 700, N)), 2.5),
    "acosh_near_1": (gc.acosh, np.arccosh, lambda r: 1 + np.exp(r.uniform(-40, 1, N)), 2.5),
    "atanh": (gc.atanh, np.arctanh, lambda r: r.uniform(-1, 1, N), 2.0),
}
FUNCTIONS = {name.split("_")[0]: op for name, (op, *_) in CASES.items()}
NUMPY = {name.split("_")[0]: fn for name, (_, fn, *_) in CASES.items()}
SPECIAL = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 5e-324, 2.2e-308, 1e-300, -1e-300,
     709.78, 709.79, -745.13, -745.14, -708.5, 0.55, -0.55, 20.0, 1e300, -1e300, 0.5, -0.5,
     2.0, 710.4, 710.5, -1074.5, -1075.0, 1024.0, 0.975, -0.975, 22.0, 1e16, 1e-20, -1e-20]
)  # fmt: skip


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    out = tmp_path_factory.mktemp("vecmath")
    g = gc.Graph("vecmath")
    x = g.input("x", shape=("N",))
    y = g.input("y", shape=("N",))
    for name, op in FUNCTIONS.items():
        g.output(name, op(x))
    g.output("atan2", gc.atan2(y, x))
    return gc.compile(g, out_dir=out)


def run(modules, x: np.ndarray, y: np.ndarray | None = None) -> dict:
    return modules.forward(x=x, y=np.zeros_like(x) if y is None else y)


def ulp_error(got: np.ndarray, x: np.ndarray, fn) -> np.ndarray:
    ref = fn(x.astype(np.longdouble))
    spacing = np.spacing(np.abs(ref.astype(np.float64))).astype(np.longdouble)
    return np.asarray(np.abs(got.astype(np.longdouble) - ref) / spacing, dtype=np.float64)


@pytest.mark.parametrize("case", list(CASES))
def test_accuracy_in_ulp(modules, case):
    _, fn, sample, limit = CASES[case]
    x = sample(np.random.default_rng(len(case)))
    got = run(modules, x)[case.split("_")[0]]
    err = ulp_error(got, x, fn)
    finite = np.isfinite(fn(x))
    assert err[finite].max() <= limit, (
        f"{case}: {err[finite].max():.2f} ulp at x={x[finite][err[finite].argmax()]!r}"
    )


@pytest.mark.parametrize("sample", ["uniform", "wide"])
def test_atan2_accuracy_in_ulp(modules, sample):
    r = np.random.default_rng(9)
    if sample == "uniform":
        y, x = r.uniform(-10, 10, N), r.uniform(-10, 10, N)
    else:  # ratios from 1e-260 to 1e260, every quadrant
        y, x = (np.exp(r.uniform(-300, 300, N)) * r.choice([-1, 1], N) for _ in range(2))
    ref = np.arctan2(y.astype(np.longdouble), x.astype(np.longdouble))
    spacing = np.spacing(np.abs(ref.astype(np.float64))).astype(np.longdouble)
    got = run(modules, x, y)["atan2"].astype(np.longdouble)
    err = np.asarray(np.abs(got - ref) / spacing, dtype=np.float64)
    assert err.max() <= 2.0, f"{err.max():.2f} ulp at y={y[err.argmax()]!r}, x={x[err.argmax()]!r}"


def test_atan2_special_values(modules):
    """Every pair of zeros of both signs, infinities, NaN and ordinary numbers, as IEEE's
    (and C's) atan2 defines them, to the bit."""
    vals = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 3.0])
    y, x = (a.ravel() for a in np.meshgrid(vals, vals))
    got = run(modules, x, y)["atan2"]
    # C's atan2, not np.arctan2: NumPy 2.4's own SIMD arctan2 is 1 ulp off at (3, -1)
    want = np.array([math.atan2(a, b) for a, b in zip(y, x, strict=True)])
    same = (got == want) & (np.signbit(got) == np.signbit(want))
    same |= np.isnan(got) & np.isnan(want)
    assert same.all(), list(zip(y[~same], x[~same], got[~same], want[~same], strict=True))


def test_special_values_follow_ieee(modules):
    with np.errstate(all="ignore"):
        got = run(modules, SPECIAL)
        for name, fn in NUMPY.items():
            want = fn(SPECIAL)
            beyond = np.abs(SPECIAL) > 1.6e6 if name in ("sin", "cos", "tan") else False
            same = (got[name] == want) | (np.isnan(got[name]) & np.isnan(want)) | beyond
            # finite results may differ from NumPy's in the last place; the class may not
            close = np.isclose(got[name], want, rtol=4e-16, atol=0)
            assert np.all(same | close), (
                name,
                SPECIAL[~(same | close)],
                got[name][~(same | close)],
            )
            signs = (np.signbit(got[name]) == np.signbit(want)) | beyond
            assert np.all(signs | np.isnan(want)) or name == "log", (name, SPECIAL[~signs])


def test_every_lane_gives_the_same_bits(modules):
    """An element's result does not depend on where it sits in the array (vector lane or
    scalar remainder)."""
    x = np.random.default_rng(5).uniform(-30, 30, 1000)
    x[::7] = np.random.default_rng(6).uniform(-1, 1, len(x[::7]))  # asin, acos, atanh
    whole = run(modules, x, x[::-1].copy())
    for shift in (1, 2, 3, 5):
        part = run(modules, np.ascontiguousarray(x[shift:]), x[::-1][shift:].copy())
        for name in whole:
            assert whole[name][shift:].tobytes() == part[name].tobytes()
