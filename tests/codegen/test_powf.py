"""x ** y of float32 values runs as graphc's own vectorised powf (templates/runtime/
graphc_math.h `gc_powf`: exp(y log|x|) in double, rounded once to float): within 0.5 ulp and
a hair (2^-20 ulp) of x^y as long double computes it, over positive x of every exponent with
y spanning the float range, x near 1 with large y, negative x with integer y, and dyadic x
with small integer y (exact midpoints among them, which go either way; y = 3 aside, which is
(x * x) * x); C99's special cases
with the bits of C's pow (NumPy's power of float64, rounded to float32)."""

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import graphc as gc

SPECIAL = np.array(
    [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 2.5, -2.5, np.inf, -np.inf,
     np.nan, 1e-45, -1e-45, 3.4e38, -3.4e38, 16777216.0, -16777215.0, 1e-38, 1.0000001,
     0.99999994, -1.5, 1.5, 0.1, -7.0],
    dtype=np.float32,
)  # fmt: skip


def _samples() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(5)
    n = 1 << 18
    x = rng.integers(1, 0x7F800000, n).astype(np.uint32).view(np.float32)  # any positive
    with np.errstate(all="ignore"):
        y = (rng.uniform(-103.0, 88.7, n) / np.log(x.astype(np.float64))).astype(np.float32)
    return {
        "positive x, y log x in [-103, 88.7]": (x, y),
        "x in [0.5, 2], y in [-100, 100]": (
            rng.uniform(0.5, 2.0, n).astype(np.float32),
            rng.uniform(-100.0, 100.0, n).astype(np.float32),
        ),
        "x in [-10, -0.1], integer y in [-30, 30]": (
            -rng.uniform(0.1, 10.0, n).astype(np.float32),
            rng.integers(-30, 31, n).astype(np.float32),
        ),
        "k / 4096, integer y in [-4, 5]": (
            (rng.integers(-4096, 4097, n) * 2.0**-12).astype(np.float32),
            rng.integers(-4, 6, n).astype(np.float32),
        ),
    }


def ulps(got: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|got - x^y| in float32 ulps of x^y (long double), where x^y is finite and not 0."""
    with np.errstate(all="ignore"):
        ref = np.power(x.astype(np.longdouble), y.astype(np.longdouble))
    keep = np.isfinite(ref) & (ref != 0) & np.isfinite(got)
    r = ref[keep]
    e = np.floor(np.log2(np.maximum(np.abs(r), np.longdouble(2.0**-126))))
    return np.abs(got[keep].astype(np.longdouble) - r) / np.longdouble(2.0) ** (e - 23)


@pytest.fixture(scope="module")
def power(tmp_path_factory):
    g = gc.Graph("powf")
    gx, gy = g.input("x", shape=("N",)), g.input("y", shape=("N",))
    g.output("pow", gx**gy)
    m = gc.compile(g, out_dir=tmp_path_factory.mktemp("powf"), dtype="float32")
    return m


@pytest.mark.compiler
def test_the_loop_calls_powf(power) -> None:
    calls = re.findall(r"\b(powf?)\(b", power.source)  # the loop's calls, of buffers' elements
    assert calls and set(calls) == {"powf"}


@pytest.mark.compiler
@pytest.mark.parametrize("name", list(_samples()))
def test_powf_is_within_half_an_ulp_and_a_hair(power, name) -> None:
    x, y = _samples()[name]
    cubes = y == 3  # (x * x) * x, as PyTorch's (ops/elementwise.py), not powf
    x, y = x[~cubes], y[~cubes]
    got = power.forward(x=x, y=y)["pow"]
    err = ulps(got, x, y)
    assert err.size > x.size // 2
    assert err.max() <= 0.5 + 2.0**-20, (name, float(err.max()))


@pytest.mark.compiler
def test_special_cases_have_the_bits_of_c(power) -> None:
    x, y = (a.ravel() for a in np.meshgrid(SPECIAL, SPECIAL))
    got = power.forward(x=x, y=y)["pow"]
    with np.errstate(all="ignore"):
        want = np.power(x.astype(np.float64), y.astype(np.float64)).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    g, w = got[~nan].view(np.uint32), want[~nan].view(np.uint32)
    bad = np.flatnonzero(g != w)
    shown = [(x[~nan][i], y[~nan][i], got[~nan][i], want[~nan][i]) for i in bad[:5]]
    assert not bad.size, shown


KERNEL_C = """
#include "graphc_rt.h"
void powf_all(const float* x, const float* y, float* out, long n) {
    for (long i = 0; i < n; i++) out[i] = gc_powf(x[i], y[i]);
}
"""


@pytest.mark.compiler
def test_the_loop_of_gc_powf_is_vectorised(tmp_path) -> None:
    """Built with the loop flags of graphc's modules (graphc/runtime/build.py)."""
    import graphc

    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no gcc")
    runtime = Path(graphc.__file__).resolve().parent.parent / "templates" / "runtime"
    (tmp_path / "k.c").write_text(KERNEL_C)
    flags = ["-O1", "-ftree-vectorize", "-fstrict-aliasing", "-finline-small-functions",
             "-fvect-cost-model=dynamic", "-fno-math-errno", "-fno-trapping-math",
             "-ffp-contract=off", "-march=native", "-fopt-info-vec-optimized"]  # fmt: skip
    done = subprocess.run([gcc, *flags, "-shared", "-fPIC",
                           f"-I{sysconfig.get_paths()['include']}", f"-I{runtime}",
                           str(tmp_path / "k.c"), "-o", str(tmp_path / "k.so"), "-lm"],
                          check=True, capture_output=True, text=True)  # fmt: skip
    report = done.stdout + done.stderr
    assert re.search(r"k\.c:4:\d+: optimized: loop vectorized", report), report
