"""What convolution and pooling share: NCHW geometry and its checks, the builders' pair
arguments, and the NumPy helpers of their references (windows of a padded input, their
adjoint)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from graphc.errors import ShapeError
from graphc.ir.loc import user_loc
from graphc.ir.shapes import ShapeMismatch, format_shape


# ---- geometry ---------------------------------------------------------------------------------
def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_COUNT = {1: "a 1-tuple of", 2: "a pair of", 3: "three"}


def _pair_param(op: str, params, name: str, least: int, k: int = 2) -> tuple[int, ...]:
    """Param `name`, checked to be `k` ints >= `least` (a pair for 2-d ops)."""
    v = params[name]
    if not (isinstance(v, tuple) and len(v) == k and all(_int(d) and d >= least for d in v)):
        raise ShapeMismatch(f"{op}: {name} must be {_COUNT[k]} ints >= {least}, got {v!r}")
    return v


_CONV_LOW = (("stride", 1), ("padding", 0), ("dilation", 1))  # the least value of each


def _conv_params(op: str, params, k: int = 2) -> tuple[tuple[int, ...], ...]:
    """(stride, padding, dilation) of a k-d convolution, checked; groups is checked against
    the channels."""
    if not (_int(params["groups"]) and params["groups"] >= 1):
        raise ShapeMismatch(f"{op}: groups must be an int >= 1, got {params['groups']!r}")
    return tuple(_pair_param(op, params, name, low, k) for name, low in _CONV_LOW)


def _pool_params(op: str, params) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, padding), checked; padding at most half the kernel, as PyTorch's."""
    kernel = _pair_param(op, params, "kernel", 1)
    stride = kernel if params["stride"] is None else _pair_param(op, params, "stride", 1)
    padding = _pair_param(op, params, "padding", 0)
    if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
        raise ShapeMismatch(f"{op}: padding {padding} is more than half the kernel {kernel}")
    return kernel, stride, padding


def _nchw(op: str, shape: tuple, what: str, layout: str, batch: bool = True) -> tuple:
    """`shape` checked to have the rank of `layout` ("[N, C, H, W]": 4-d, or NCDHW's 5-d) and
    int dims >= 1 (the first may be a symbol or 0 if `batch`)."""
    names = layout.strip("[]").split(", ")
    if len(shape) != len(names):
        raise ShapeMismatch(
            f"{op}: {what} must be {len(names)}-d {layout}, got {format_shape(shape)}"
        )
    for k, (d, name) in enumerate(zip(shape, names, strict=True)):
        if batch and k == 0:
            continue
        if not _int(d):
            raise ShapeMismatch(
                f"{op}: {name} of {what} is the symbol {d!r}; only the batch N may be symbolic"
            )
        if d < 1:
            raise ShapeMismatch(f"{op}: {name} of {what} is {d}; it must be at least 1")
    return shape


def _out_side(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _out_hw(op: str, hw, kernel, stride, padding, dilation=(1, 1)) -> tuple[int, ...]:
    """The output's spatial sizes (two, or three for 3-d) of windows over an input of `hw`."""
    out = tuple(map(_out_side, hw, kernel, stride, padding, dilation))
    if min(out) < 1:
        span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
        raise ShapeMismatch(
            f"{op}: a {'x'.join(map(str, span))} window does not fit in the "
            f"{'x'.join(map(str, hw))} input padded by {padding}"
        )
    return out


def _groups(op: str, c_in: int, c_out: int, groups: int) -> None:
    for name, c in (("C_in", c_in), ("C_out", c_out)):
        if c % groups:
            raise ShapeMismatch(f"{op}: {name} = {c} is not a multiple of groups = {groups}")


def _same_batch(op: str, a: tuple, b: tuple) -> None:
    if a[0] != b[0]:
        raise ShapeMismatch(f"{op}: batch sizes {a[0]} and {b[0]} differ")


# ---- NumPy helpers ----------------------------------------------------------------------------
def _in_float64(ref: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """`ref` computed on float64 copies of its arrays, its result rounded to their dtype: a
    float32 result is the float64 one rounded once, whatever order NumPy adds in."""

    @functools.wraps(ref)
    def run(*arrays: np.ndarray, **params: Any) -> np.ndarray:
        dtype = np.result_type(*arrays)
        out = ref(*(np.asarray(a, np.float64) for a in arrays), **params)
        return np.ascontiguousarray(out, dtype=dtype)

    return run


def _pad(x: np.ndarray, padding, value: float = 0.0) -> np.ndarray:
    (ph, pw) = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _windows(xp: np.ndarray, kernel, stride, dilation=(1, 1)) -> np.ndarray:
    """The view [N, C, H_out, W_out, kH, kW] of the windows of padded `xp`."""
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    win = sliding_window_view(xp, span, axis=(2, 3))
    return win[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]


def _scatter_windows(parts, shape, dtype, kernel, stride, padding, dilation=(1, 1)):
    """The adjoint of `_windows` on a padded input: parts(i, j) [N, C, H_out, W_out] added at
    tap (i, j) of every window, the padding cut off; `shape` is the unpadded [N, C, H, W]."""
    n, c, h, w = shape
    (ph, pw), (sh, sw), (dh, dw) = padding, stride, dilation
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            p = parts(i, j)
            rows = slice(i * dh, i * dh + (p.shape[2] - 1) * sh + 1, sh)
            cols = slice(j * dw, j * dw + (p.shape[3] - 1) * sw + 1, sw)
            out[:, :, rows, cols] += p
    return out[:, :, ph : ph + h, pw : pw + w]


def _pair(op: str, name: str, v: Any, k: int = 2) -> tuple:
    """An int or k of them (a 1-tuple, a pair or three) as a tuple of k (NumPy ints as ints);
    the op's shape rule checks values."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return (int(v),) * k
    if isinstance(v, (tuple, list)) and len(v) == k:
        return tuple(int(d) if isinstance(d, np.integer) else d for d in v)
    raise ShapeError(f"{op} at {user_loc()}: {name} must be an int or {_COUNT[k]} ints, got {v!r}")
