"""Average pooling over 1 to 3 spatial axes with PyTorch's options: avg_pool1d/2d/3d
(ceil_mode, count_include_pad, divisor_override) and adaptive_avg_pool1d/2d/3d.

Average pooling is a sum by a depthwise convolution with a kernel of ones and a division by
each window's count (zeros padded beyond the input where a ceil_mode window reaches past the
padding); adaptive average pooling multiplies each spatial axis by a matrix of averages.
2-D pooling with default options keeps the runtime's kernels (ops/pool.py); geometry as for
max pooling (ops/pool_nd.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ops import pool as pool2d  # the runtime's 2-D kernels (and their ops registered)
from graphc.ops.pool_nd import _geometry, pooled_size


# ---- average pooling ----------------------------------------------------------------------------
def _counts(n: int, k: int, s: int, p: int, out: int, include_pad: bool) -> np.ndarray:
    """Each window's count along one axis, as PyTorch's avg_pool: with the padding (but not
    the part of a ceil_mode window beyond it), or the input's cells only."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, n + p)
    if include_pad:
        return (end - start).astype(np.float64)
    return (np.minimum(end, n) - np.maximum(start, 0)).astype(np.float64)


def avg_pool(
    x: Value,
    k: int,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Value:
    """Average pooling over the last k spatial axes of x, as PyTorch's avg_pool{k}d."""
    from graphc.ops.conv_nd import conv
    from graphc.ops.pad import pad
    from graphc.ops.shape import broadcast_to

    op = f"avg_pool{k}d"
    geo = _geometry(op, x, k, kernel_size, stride, padding, 1)
    kernel, stride, padding = geo["kernel"], geo["stride"], geo["padding"]
    plain = not ceil_mode and count_include_pad and divisor_override is None
    if k == 2 and plain:
        return pool2d.avg_pool2d(x, kernel, stride, padding)
    spatial = x.shape[2:]
    outs = [
        pooled_size(n, kk, s, p, 1, ceil_mode)
        for n, kk, s, p in zip(spatial, kernel, stride, padding, strict=True)
    ]
    # zeros beyond the input where a ceil_mode window reaches past the padding
    extra = [
        max(0, (o - 1) * s + kk - (n + 2 * p))
        for o, s, kk, n, p in zip(outs, stride, kernel, spatial, padding, strict=True)
    ]
    if any(extra):
        x_in = pad(x, ((0, 0), (0, 0), *((0, e) for e in extra)))
    else:
        x_in = x
    c = x.shape[1]
    ones = broadcast_to(x.graph.const(1.0, x.dtype), (c, 1, *kernel))
    total = conv(x_in, ones, k, stride=stride, padding=padding, groups=c)
    if divisor_override is not None:
        if (
            isinstance(divisor_override, bool)
            or not isinstance(divisor_override, int)
            or divisor_override == 0
        ):
            raise ShapeError(f"{op} at {user_loc()}: divisor_override must be a nonzero int")
        return total / float(divisor_override)
    counts = np.ones(outs)
    for a, (n, kk, s, p, o) in enumerate(zip(spatial, kernel, stride, padding, outs, strict=True)):
        shape = [1] * k
        shape[a] = o
        counts = counts * _counts(n, kk, s, p, o, count_include_pad).reshape(shape)
    return total * x.graph.const(1.0 / counts, x.dtype)


def avg_pool1d(
    x: Value, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True
) -> Value:
    """Average pooling of x [N, C, L], as PyTorch's avg_pool1d."""
    return avg_pool(x, 1, kernel_size, stride, padding, ceil_mode, count_include_pad)


def avg_pool3d(
    x: Value,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
) -> Value:
    """Average pooling of x [N, C, D, H, W], as PyTorch's avg_pool3d."""
    return avg_pool(
        x, 3, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


# ---- adaptive average pooling ------------------------------------------------------------------
def _average_matrix(n: int, out: int) -> np.ndarray:
    """[out, n]: row i averages cells floor(i n / out) to ceil((i + 1) n / out) (PyTorch's
    adaptive windows)."""
    a = np.zeros((out, n))
    for i in range(out):
        lo, hi = (i * n) // out, -(-((i + 1) * n) // out)
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


def adaptive_avg_pool(x: Value, output_size: Any) -> Value:
    """Average pooling of x [N, C, *spatial] to `output_size` (None keeps an axis), with
    PyTorch's adaptive windows, as adaptive_avg_pool{1,2,3}d."""
    from graphc.ops.shape import swapaxes

    k = x.ndim - 2
    sizes = [output_size] * k if isinstance(output_size, int | None) else list(output_size)
    if not 1 <= k <= 3 or len(sizes) != k:
        raise ShapeError(
            f"adaptive_avg_pool at {user_loc()}: x must be [N, C, 1 to 3 spatial "
            f"axes] and output_size one size per axis"
        )
    for a, out in enumerate(sizes):
        axis, n = 2 + a, x.shape[2 + a]
        out = n if out is None else out
        if not isinstance(n, int) or not isinstance(out, int) or out < 1:
            raise ShapeError(f"adaptive_avg_pool at {user_loc()}: sizes must be ints >= 1")
        if out == n:
            continue
        mat = x.graph.const(_average_matrix(n, out).T, x.dtype)  # [n, out]
        x = swapaxes(swapaxes(x, axis, -1) @ mat, axis, -1)
    return x


def adaptive_avg_pool1d(x: Value, output_size: Any) -> Value:
    return adaptive_avg_pool(x, output_size)


def adaptive_avg_pool2d(x: Value, output_size: Any) -> Value:
    return adaptive_avg_pool(x, output_size)


def adaptive_avg_pool3d(x: Value, output_size: Any) -> Value:
    return adaptive_avg_pool(x, output_size)


def avg_pool2d(
    x: Value,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
) -> Value:
    """Average pooling of x [N, C, H, W], as PyTorch's avg_pool2d: each window's sum over its
    count (with the zero padding, unless count_include_pad is False) or divisor_override."""
    return avg_pool(
        x, 2, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
