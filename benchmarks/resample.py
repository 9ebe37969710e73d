"""Resampling and 1-D convolution: graphc's compiled interpolate (bilinear, trilinear, nearest)
and conv1d, forward and value_and_grad, in float32, against NumPy (graphc's interpreter: the
ops' NumPy references) and PyTorch's eager CPU kernels when installed, in one process on the
same number of threads (one by default: a shared machine's numbers), as benchmarks/_ops.py
times them.

    python -m benchmarks.resample               # full run
    python -m benchmarks.resample --threads 2   # graphc's and PyTorch's threads both 2
    python -m benchmarks.resample --quick       # smoke run: tiny sizes, no claims
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import graphc as gc
from benchmarks._ops import Workloads
from benchmarks._ops import main as main_of
from benchmarks._ops import torch as _torch


def workloads(quick: bool) -> Workloads:
    n = 1 if quick else 8

    def interp(**kw: Any) -> tuple[Callable, Callable]:
        return (lambda x: gc.interpolate(x, **kw),
                lambda x: _torch().nn.functional.interpolate(x, **kw))  # fmt: skip

    s2, s3, length = (8, 4, 16) if quick else (64, 16, 1024)
    return {
        "bilinear": ({"x": (n, 16, s2, s2)}, *interp(size=(2 * s2, 2 * s2), mode="bilinear")),
        "trilinear": ({"x": (max(1, n // 4), 8, s3, 2 * s3, 2 * s3)},
                      *interp(scale_factor=(2.0, 1.5, 1.5), mode="trilinear",
                              align_corners=True)),
        "nearest": ({"x": (n, 16, s2, s2)}, *interp(scale_factor=2.0)),
        "nearest (down)": ({"x": (n, 16, 2 * s2, 2 * s2)}, *interp(size=(s2 - 3, s2 + 5))),
        "conv1d": ({"x": (n, 16, length), "w": (32, 16, 5)},
                   lambda x, w: gc.conv1d(x, w, padding=2),
                   lambda x, w: _torch().nn.functional.conv1d(x, w, padding=2)),
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    return main_of("benchmarks.resample", __doc__, "resampling and conv1d", workloads, argv)


if __name__ == "__main__":
    sys.exit(main())
