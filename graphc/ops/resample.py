"""Resampling: `interpolate`, as torch.nn.functional.interpolate, for inputs [N, C, *spatial]
with 1 to 3 spatial axes: modes "nearest", "nearest-exact", "linear", "bilinear", "trilinear"
(align_corners either way) and "area" (adaptive average pooling).

Each spatial axis is resampled in turn, from the last: nearest modes are a take of x at
source indices; linear ones x at the two neighbours, weighted and added. Indices and weights
depend only on sizes and are computed here, in PyTorch's arithmetic (the source coordinate
in float32 for nearest, in the data's precision for linear, clamped at 0 without
align_corners), so results match PyTorch's to its rounding (the same sums in the same order).
The gradient is take's and the products': each output's cotangent sent back to its sources
with their weights.
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


def nearest_index(n_in: int, n_out: int, scale: float | None, exact: bool) -> np.ndarray:
    """PyTorch's nearest (and nearest-exact) source index of each output position."""
    s = np.float32(1.0 / scale if scale is not None and scale > 0 else n_in / n_out)
    dst = np.arange(n_out, dtype=np.float32)
    src = np.floor((dst + np.float32(0.5)) * s if exact else dst * s)
    return np.minimum(src.astype(np.int64), n_in - 1)


def linear_weights(n_in: int, n_out: int, scale: float | None, align: bool, dtype: str):
    """PyTorch's linear interpolation along one axis: the two source indices and their
    weights for each output position, the coordinate computed in `dtype`."""
    t = np.dtype(dtype).type
    if align:
        s = t((n_in - 1) / (n_out - 1)) if n_out > 1 else t(0)
    else:
        s = t(1.0 / scale) if scale is not None and scale > 0 else t(n_in / n_out)
    dst = np.arange(n_out).astype(dtype)
    src = dst * s if align else np.maximum(s * (dst + t(0.5)) - t(0.5), t(0))
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = (src - i0.astype(dtype)).astype(dtype)
    return i0, i1, (t(1) - w1).astype(dtype), w1


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


def _along(x: Value, axis: int, values: np.ndarray) -> Value:
    """A constant of `values` (per position along `axis`) broadcastable against x."""
    shape = (len(values),) + (1,) * (x.ndim - 1 - axis)
    return x.graph.const(values.reshape(shape), x.dtype)


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
    from graphc.ops.indexing import take

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
    for k in reversed(range(len(sizes))):  # the last axis first, as PyTorch's sums group
        axis = 2 + k
        n_in, n_out = x.shape[axis], sizes[k]
        if mode in ("nearest", "nearest-exact"):
            if n_in != n_out:
                x = take(x, nearest_index(n_in, n_out, scales[k], mode == "nearest-exact"), axis)
            continue
        i0, i1, w0, w1 = linear_weights(n_in, n_out, scales[k], bool(align_corners), x.dtype)
        x = take(x, i0, axis) * _along(x, axis, w0) + take(x, i1, axis) * _along(x, axis, w1)
    return x
