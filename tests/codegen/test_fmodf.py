"""fmod of float32 values runs as graphc's own vectorised fmodf (templates/runtime/
graphc_math.h `gc_fmodf`), with the bits of the C library's fmod for every pair of operands:
random bit patterns, every pair of special values (zeros, infinities, NaNs with payloads,
subnormals, the largest and smallest floats), near multiples and the largest quotients;
remainder and floor_divide, which call it, keep the values of their formulas over C's
fmod."""

import re

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.kir import Call, Lit, Var, select, single

SPECIAL_BITS = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,
                0x7FC00123, 0x7F800001, 0x00000001, 0x80000001, 0x007FFFFF, 0x00800000,
                0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000, 0x3F333333, 0x4B800000, 0x4E800000,
                0xCB7FFFFF, 0x33800000, 0x40400000, 0xC0400000]  # fmt: skip


def as_float(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint64).astype(np.uint32).view(np.float32)


def operands() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 1 << 16
    xs = [as_float(rng.integers(0, 2**32, n)), None, None, None]
    ys = [as_float(rng.integers(0, 2**32, n)), None, None, None]
    special = as_float(SPECIAL_BITS)
    xs[1], ys[1] = (a.ravel() for a in np.meshgrid(special, special))
    y = rng.standard_normal(n).astype(np.float32)  # near multiples: x = k y, to the ulp
    k = rng.integers(-(2**26), 2**26, n).astype(np.float32)
    near = (k * y).view(np.uint32).astype(np.int64) + rng.integers(-2, 3, n)
    xs[2], ys[2] = as_float(near), y
    big = as_float(rng.integers(0x7E000000, 0x7F800000, n))  # quotients up to 2^277
    tiny = as_float(rng.integers(1, 0x00800000, n) | (rng.integers(0, 2, n) << 31))
    xs[3], ys[3] = big * np.where(rng.random(n) < 0.5, -1, 1).astype(np.float32), tiny
    return np.concatenate(xs), np.concatenate(ys)


def c_fmod(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The C library's fmod of the float32 operands as doubles, to float32 (exact)."""
    with np.errstate(all="ignore"):
        return np.fmod(x.astype(np.float64), y.astype(np.float64)).astype(np.float32)


def same_bits(got: np.ndarray, want: np.ndarray) -> None:
    bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    shown = [f"fmod case {i}: got {got[i]!r} ({got.view(np.uint32)[i]:08x}), "
             f"want {want[i]!r} ({want.view(np.uint32)[i]:08x})" for i in bad[:5]]  # fmt: skip
    assert not bad.size, f"{bad.size} of {got.size} differ: " + "; ".join(shown)


@pytest.mark.compiler
def test_fmod_remainder_and_floor_divide_of_float32(tmp_path) -> None:
    x, y = operands()
    g = gc.Graph("fmodf")
    gx, gy = g.input("x", shape=("N",)), g.input("y", shape=("N",))
    g.output("fmod", gc.fmod(gx, gy))
    g.output("remainder", gc.remainder(gx, gy))
    g.output("floor_divide", gc.floor_divide(gx, gy))
    g.output("by_const", gc.fmod(gx, 0.7))
    m = gc.compile(g, out_dir=tmp_path, dtype="float32")
    calls = re.findall(r"\b(fmodf?)\(b", m.source)  # the loop's calls, of buffers' elements
    assert calls and set(calls) == {"fmodf"}
    out = m.forward(x=x, y=y)
    same_bits(out["fmod"], c_fmod(x, y))
    same_bits(out["by_const"], c_fmod(x, np.full_like(x, np.float32(0.7))))
    # remainder and floor_divide: their formulas over C's fmod, in double as before
    with np.errstate(all="ignore"):
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        mod = np.fmod(x64, y64)
        rem = np.where((mod != 0) & ((y64 < 0) != (mod < 0)), mod + y64, mod).astype(np.float32)
        div = gc.evaluate(g, {"x": x64, "y": y64})["floor_divide"].astype(np.float32)
    for name, want in (("remainder", rem), ("floor_divide", div)):
        got = out[name]
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan), name
        same_bits(got[~nan], want[~nan])


def test_single_takes_fmodf_for_fmod_in_conditions_too() -> None:
    """In a float32 value's expression every fmod is fmodf, conditions' included (their
    literals stay double)."""
    a, b = Var("a", "float32"), Var("b", "float32")
    mod = Call("fmod", (a, b))
    e = single(mod + 1.0)
    assert e == Call("fmodf", (a, b)) + Lit(1.0, "float32")
    e = single(select(mod > 0.5, mod, b))
    assert e.cond.a == Call("fmodf", (a, b)) and e.cond.b == Lit(0.5)
    assert e.a == Call("fmodf", (a, b))


KERNEL_C = """
#include "graphc_rt.h"
void fmodf_all(const float* x, const float* y, float* out, long n) {
    for (long i = 0; i < n; i++) out[i] = (float)gc_fmodf(x[i], y[i]);
}
"""


@pytest.mark.compiler
@pytest.mark.parametrize("fused", [True, False], ids=["native", "no_fma"])
def test_both_ways_of_rounds_give_the_bits_of_c(tmp_path, fused: bool) -> None:
    """gc_fmodf's rounds as this machine's modules build them (with fused multiply-adds where
    it has them) and without (Veltkamp's split), built with the modules' loop flags
    (vectorised) and run over the same operands."""
    import ctypes
    import shutil
    import subprocess
    import sysconfig
    from pathlib import Path

    import graphc

    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no gcc")
    runtime = Path(graphc.__file__).resolve().parent.parent / "templates" / "runtime"
    (tmp_path / "k.c").write_text(KERNEL_C)
    flags = ["-O1", "-ftree-vectorize", "-fno-math-errno", "-fno-trapping-math",
             "-ffp-contract=off", "-march=native", *(() if fused else ("-mno-fma",))]  # fmt: skip
    subprocess.run([gcc, *flags, "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}",
                    f"-I{runtime}", str(tmp_path / "k.c"), "-o", str(tmp_path / "k.so"), "-lm"],
                   check=True)  # fmt: skip
    fn = ctypes.CDLL(str(tmp_path / "k.so")).fmodf_all
    x, y = operands()
    out = np.empty_like(x)
    ptr = ctypes.c_void_p
    fn(ptr(x.ctypes.data), ptr(y.ctypes.data), ptr(out.ctypes.data), ctypes.c_long(x.size))
    same_bits(out, c_fmod(x, y))
