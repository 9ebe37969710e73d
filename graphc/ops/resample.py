"""Resampling: `interpolate`, as torch.nn.functional.interpolate, for inputs [N, C, *spatial]
with 1 to 3 spatial axes: modes "nearest", "nearest-exact", "linear", "bilinear", "trilinear"
(align_corners either way) and "area" (adaptive average pooling).

This module checks the arguments and works out the output's size and the scale factors PyTorch
passes on; the nearest and linear modes are the ops interpolate_nearest and interpolate_linear
(ops/interpolate.py: PyTorch's index and weight arithmetic, its sums in its order, and
gradient ops of their own).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc

LINEAR = {"linear": 1, "bilinear": 2, "trilinear": 3}


def _fail(msg: str) -> ShapeError:
    return ShapeError(f"interpolate at {user_loc()}: {msg}")


def _sizes(x: Value, size: Any, scale_factor: Any, recompute: bool | None) -> tuple[list, list]:
    """Each spatial axis's output size, and the scale factor PyTorch passes on (or None)."""
    spatial = list(x.shape[2:])
    k = len(spatial)
    if (size is None) == (scale_factor is None):
        raise _fail("give exactly one of size and scale_factor")
    if size is not None:
        sizes = [size] * k if isinstance(size, int | np.integer) else list(size)
        if len(sizes) != k or not all(isinstance(d, int | np.integer) and d > 0 for d in sizes):
            raise _fail(f"size must be {k} positive int(s), got {size!r}")
        return [int(d) for d in sizes], [None] * k
    factors = [scale_factor] * k if isinstance(scale_factor, int | float) else list(scale_factor)
    if len(factors) != k or not all(isinstance(f, int | float) and f > 0 for f in factors):
        raise _fail(f"scale_factor must be {k} positive number(s), got {scale_factor!r}")
    sizes = [math.floor(d * float(f)) for d, f in zip(spatial, factors, strict=True)]
    if any(d < 1 for d in sizes):
        raise _fail(f"scale_factor {scale_factor!r} leaves an axis empty")
    return sizes, ([None] * k if recompute else [float(f) for f in factors])


def interpolate(
    x: Value,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
) -> Value:
    """x [N, C, *spatial] resampled to `size` (or spatial * `scale_factor`), as PyTorch's
    interpolate (see the module's doc for the modes)."""
    from graphc.ops.interpolate import interpolate_linear, interpolate_nearest

    if not isinstance(x, Value) or not 3 <= x.ndim <= 5:
        raise _fail("x must be a Value [N, C, *spatial] with 1 to 3 spatial axes")
    if any(not isinstance(d, int) for d in x.shape[2:]):
        raise _fail(f"the spatial axes of {x.shape} must have int sizes")
    if mode in LINEAR and LINEAR[mode] != x.ndim - 2:
        raise _fail(f"mode {mode!r} takes {LINEAR[mode]} spatial axes, x has {x.ndim - 2}")
    if mode not in (*LINEAR, "nearest", "nearest-exact", "area"):
        raise _fail(f"mode {mode!r} is not nearest, nearest-exact, linear, bilinear, "
                    "trilinear or area")  # fmt: skip
    if align_corners is not None and mode not in LINEAR:
        raise _fail("align_corners applies to the linear modes only")
    sizes, scales = _sizes(x, size, scale_factor, recompute_scale_factor)
    if mode == "area":
        from graphc.ops.pool_adaptive import adaptive_avg_pool

        return adaptive_avg_pool(x, sizes)
    if sizes == list(x.shape[2:]):  # every axis copied
        return x
    if mode in LINEAR:
        return interpolate_linear(x, sizes, scales, bool(align_corners))
    return interpolate_nearest(x, sizes, scales, mode == "nearest-exact")
