"""The compiled modules' exp, log and tanh (templates/kernels/vecmath.pyx.j2): accuracy against
long double references, IEEE special values, and the same bits in every vector lane."""

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
}
SPECIAL = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 5e-324, 2.2e-308, 1e-300, -1e-300,
     709.78, 709.79, -745.13, -745.14, -708.5, 0.55, -0.55, 20.0, 1e300, -1e300]
)  # fmt: skip


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    out = tmp_path_factory.mktemp("vecmath")
    g = gc.Graph("vecmath")
    x = g.input("x", shape=("N",))
    for name, op in (("exp", gc.exp), ("log", gc.log), ("tanh", gc.tanh)):
        g.output(name, op(x))
    return gc.compile(g, out_dir=out)


def ulp_error(got: np.ndarray, x: np.ndarray, fn) -> np.ndarray:
    ref = fn(x.astype(np.longdouble))
    spacing = np.spacing(np.abs(ref.astype(np.float64))).astype(np.longdouble)
    return np.asarray(np.abs(got.astype(np.longdouble) - ref) / spacing, dtype=np.float64)


@pytest.mark.parametrize("case", list(CASES))
def test_accuracy_in_ulp(modules, case):
    _, fn, sample, limit = CASES[case]
    x = sample(np.random.default_rng(len(case)))
    got = modules.forward(x)[case.split("_")[0]]
    err = ulp_error(got, x, fn)
    finite = np.isfinite(fn(x))
    assert err[finite].max() <= limit, (
        f"{case}: {err[finite].max():.2f} ulp at x={x[finite][err[finite].argmax()]!r}"
    )


def test_special_values_follow_ieee(modules):
    with np.errstate(all="ignore"):
        got = modules.forward(SPECIAL)
        for name, fn in (("exp", np.exp), ("log", np.log), ("tanh", np.tanh)):
            want = fn(SPECIAL)
            same = (got[name] == want) | (np.isnan(got[name]) & np.isnan(want))
            # finite results may differ from NumPy's in the last place; the class may not
            close = np.isclose(got[name], want, rtol=4e-16, atol=0)
            assert np.all(same | close), (
                name,
                SPECIAL[~(same | close)],
                got[name][~(same | close)],
            )
            assert np.array_equal(np.signbit(got[name]), np.signbit(want)) or name == "log"


def test_every_lane_gives_the_same_bits(modules):
    """An element's result does not depend on where it sits in the array (vector lane or
    scalar remainder)."""
    x = np.random.default_rng(5).uniform(-30, 30, 1000)
    whole = modules.forward(x)
    for shift in (1, 2, 3, 5):
        part = modules.forward(np.ascontiguousarray(x[shift:]))
        for name in whole:
            assert whole[name][shift:].tobytes() == part[name].tobytes()
