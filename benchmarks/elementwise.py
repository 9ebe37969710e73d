"""Elementwise ops and activations over 10^6 elements: graphc's compiled loops, forward and
value_and_grad, in float32 (float64 with --dtype float64), against NumPy (graphc's interpreter:
the ops' NumPy references) and PyTorch's eager CPU kernels when installed, in one process on
the same number of threads (one by default), as benchmarks/_ops.py times them. Inputs are
uniform on [-3, 3], so every branch of a function (clip's bounds, softplus's threshold aside) is
taken. graphc's loops are vectorised, the functions branch-free versions of their own
(templates/runtime/graphc_rt.h, graphc_math.h; fmod's exact, with the C library's bits), a
power of a tensor exponent too (gc_powf in float32, gc_pow in float64).

    python -m benchmarks.elementwise               # full run
    python -m benchmarks.elementwise --threads 2   # graphc's and PyTorch's threads both 2
    python -m benchmarks.elementwise --dtype float64  # the same in float64
    python -m benchmarks.elementwise --quick       # smoke run: five workloads, tiny, no claims
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

import graphc as gc
from benchmarks._ops import Workloads
from benchmarks._ops import main as main_of
from benchmarks._ops import torch as _torch


def _f() -> Any:
    return _torch().nn.functional


# name -> (graphc's y(x), PyTorch's y(x)); each of one input of ELEMENTS
FUNCTIONS = {
    "tanh": (gc.tanh, lambda x: _torch().tanh(x)),
    "sigmoid": (gc.sigmoid, lambda x: _torch().sigmoid(x)),
    "exp": (gc.exp, lambda x: _torch().exp(x)),
    "log1p(x^2)": (lambda x: gc.log1p(x * x), lambda x: _torch().log1p(x * x)),
    "erf": (gc.erf, lambda x: _torch().special.erf(x)),
    "gelu": (gc.gelu, lambda x: _f().gelu(x)),
    "silu": (gc.silu, lambda x: _f().silu(x)),
    "softplus": (gc.softplus, lambda x: _f().softplus(x)),
    "mish": (gc.mish, lambda x: _f().mish(x)),
    "logsigmoid": (gc.logsigmoid, lambda x: _f().logsigmoid(x)),
    "elu": (gc.elu, lambda x: _f().elu(x)),
    "clip": (lambda x: gc.clip(x, -0.5, 0.5), lambda x: _torch().clamp(x, -0.5, 0.5)),
    "fmod": (lambda x: gc.fmod(x, 0.7), lambda x: _torch().fmod(x, 0.7)),
    "x ** 3": (lambda x: x**3.0, lambda x: x**3.0),
}
# name -> (input names, graphc's y, PyTorch's y): functions of two inputs of ELEMENTS
FUNCTIONS2 = {
    "|x| ** y": (lambda x, y: gc.abs(x) ** y, lambda x, y: x.abs() ** y),
}


QUICK = ("tanh", "softplus", "clip", "x ** 3")  # a smoke run's functions


def workloads(quick: bool) -> Workloads:
    n = 1000 if quick else 10**6
    names = QUICK if quick else FUNCTIONS
    out: Workloads = {name: ({"x": (n,)}, *FUNCTIONS[name]) for name in names}
    if not quick:
        out |= {name: ({"x": (n,), "y": (n,)}, *fns) for name, fns in FUNCTIONS2.items()}
    rows = 10 if quick else 1000  # a max over the last axis of [rows, n / rows]
    out["max over an axis"] = (
        {"x": (rows, n // rows)},
        lambda x: gc.max(x, axis=1),
        lambda x: x.amax(dim=1),
    )
    return out


def uniform(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return rng.uniform(-3.0, 3.0, shape)


def main(argv: Sequence[str] | None = None) -> int:
    return main_of(
        "benchmarks.elementwise", __doc__, "elementwise ops", workloads, argv, inputs=uniform
    )


if __name__ == "__main__":
    sys.exit(main())
