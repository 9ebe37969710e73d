"""One of the runtime's math functions of two doubles (templates/runtime/graphc_math.h) over
arrays, built as graphc's modules build their loops, for tests that compare its bits or read
gcc's vectoriser report."""

import ctypes
import shutil
import subprocess
import sysconfig
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import graphc

# the loop flags of graphc's modules (graphc/runtime/build.py), with gcc's vectoriser report
FLAGS = ["-O1", "-ftree-vectorize", "-fstrict-aliasing", "-finline-small-functions",
         "-fvect-cost-model=dynamic", "-fno-math-errno", "-fno-trapping-math",
         "-ffp-contract=off", "-march=native", "-fopt-info-vec-optimized"]  # fmt: skip
LOOP = """
#include "graphc_rt.h"
void all(const double* x, const double* y, double* out, long n) {
    for (long i = 0; i < n; i++) out[i] = %s(x[i], y[i]);
}
"""
LOOP_LINE = 4  # the line of the loop in LOOP, which gcc's report names


def build(
    function: str, folder: Path, fma: bool
) -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], str]:
    """`function` (gc_pow, gc_fmod) elementwise over two arrays, built in `folder` with this
    machine's fused multiply-adds or without them (-mno-fma), and gcc's vectoriser report.
    Skips the test when there is no gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no gcc")
    runtime = Path(graphc.__file__).resolve().parent.parent / "templates" / "runtime"
    (folder / "k.c").write_text(LOOP % function)
    flags = [*FLAGS, *(() if fma else ("-mno-fma",))]
    done = subprocess.run([gcc, *flags, "-shared", "-fPIC",
                           f"-I{sysconfig.get_paths()['include']}", f"-I{runtime}",
                           str(folder / "k.c"), "-o", str(folder / "k.so"), "-lm"],
                          check=True, capture_output=True, text=True)  # fmt: skip
    fn = ctypes.CDLL(str(folder / "k.so")).all

    def run(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = np.ascontiguousarray(x, np.float64), np.ascontiguousarray(y, np.float64)
        out = np.empty_like(x)
        p = ctypes.c_void_p
        fn(p(x.ctypes.data), p(y.ctypes.data), p(out.ctypes.data), ctypes.c_long(x.size))
        return out

    return run, done.stdout + done.stderr
