"""2-D max and average pooling over NCHW values, with the gradient ops they need.

Geometry as for convolution (ops/conv.py): windows of kH x kW, stride (the kernel by default)
and padding, at most half the kernel, as PyTorch's. The gradient ops are ops of their own:
  max_pool2d(x)              -> dx: max_pool2d_grad(ct, x)
  max_pool2d_grad(ct, x)     -> dct: max_pool2d_gather(c, x)   (x: none, the argmax is
  max_pool2d_gather(v, x)    -> dv: max_pool2d_grad(c, x)       piecewise constant)
  avg_pool2d(x) <-> avg_pool2d_grad(ct): each the other's VJP (both linear).
Max pooling sends a window's gradient to its first maximum in row-major order, as PyTorch does
(to the last NaN, if the window has one); where windows overlap, their gradients add up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.codegen.emit import Emit
from graphc.codegen.kir import SizeExpr
from graphc.ir.graph import Value
from graphc.ir.shapes import ShapeMismatch, format_shape
from graphc.ops._build import apply, float_dtype
from graphc.ops._window import (
    _in_float64,
    _nchw,
    _out_hw,
    _pad,
    _pair,
    _pair_param,
    _pool_params,
    _scatter_windows,
    _windows,
)
from graphc.ops.registry import OpDef, register

_POOL = {"kernel": None, "stride": None, "padding": (0, 0)}  # stride None: the kernel's


def _lower_pool(e: Emit, n: int, args: list[int], params: dict) -> None:
    """The runtime's pooling of every [N, C] plane (templates/runtime/pool.pyx.j2), its
    operands as the op's, its geometry from x's shape and the pooled one. A window's cell
    costs about four multiply-adds of a convolution, and the planes share threads."""
    op = e.values.G.nodes[n]["op"]
    shape = e.values.shape
    if op in ("max_pool2d", "avg_pool2d"):  # the pooling's x and pooled shapes
        x, y = shape(args[0]), shape(n)
    elif op == "max_pool2d_grad":
        x, y = shape(args[1]), shape(args[0])
    elif op == "max_pool2d_gather":
        x, y = shape(args[1]), shape(n)
    else:  # avg_pool2d_grad
        x, y = shape(n), shape(args[0])
    stride = params["stride"] or params["kernel"]
    geometry = [x[:2], *x[2:], *params["kernel"], *y[2:], *stride, *params["padding"]]
    kernel_cells = params["kernel"][0] * params["kernel"][1]
    work = SizeExpr.of([*y, 4 * kernel_cells])
    e.runtime(f"{op}_{e.suffix}", [*args, n], geometry, work=work, alone=False)


# ---- max pooling ------------------------------------------------------------------------------
def _pooled(op: str, x: tuple, params) -> tuple:
    kernel, stride, padding = _pool_params(op, params)
    return (*x[:2], *_out_hw(op, x[2:], kernel, stride, padding))


def _infer_max_pool(shapes, dtypes, params):
    x = _nchw("max_pool2d", shapes[0], "x", "[N, C, H, W]")
    return _pooled("max_pool2d", x, params), float_dtype(dtypes, "max_pool2d")


def _infer_pool_pair(op: str, first: str, shapes, dtypes, params):
    """(ct, x) -> x's shape for the scatter, (v, x) -> the pooled shape for the gather."""
    x = _nchw(op, shapes[1], "x", "[N, C, H, W]")
    pooled = _pooled(op, x, params)
    want = pooled if first == "ct" else x
    if tuple(shapes[0]) != tuple(want):
        raise ShapeMismatch(f"{op}: {first} must be {format_shape(want)} for this x")
    return (x if first == "ct" else pooled), float_dtype(dtypes, op)


def _argmax(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """Per window, the flat index in its [H, W] plane of the first maximum in row-major order
    (the last NaN if any, as PyTorch's; the first cell when every cell is -inf); never a
    padding cell."""
    n, c, h, w = x.shape
    stride = stride or kernel
    win = _windows(_pad(x, padding, -np.inf), kernel, stride)
    ho, wo = win.shape[2:4]
    win = win.reshape(n, c, ho, wo, kernel[0] * kernel[1])
    real = _windows(_pad(np.ones((1, 1, h, w), bool), padding, False), kernel, stride)
    real = real.reshape(1, 1, ho, wo, kernel[0] * kernel[1])
    k = np.argmax(win, axis=-1)
    nan = np.isnan(win)
    k = np.where(nan.any(-1), win.shape[-1] - 1 - np.argmax(nan[..., ::-1], -1), k)
    k = np.where(np.take_along_axis(real, k[..., None], -1)[..., 0], k, np.argmax(real, -1))
    rows = np.arange(ho)[:, None] * stride[0] + k // kernel[1] - padding[0]
    cols = np.arange(wo)[None, :] * stride[1] + k % kernel[1] - padding[1]
    return rows * w + cols


def _plane_index(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """`idx`, per-plane indices of x's [N, C] planes, as flat indices into x."""
    n, c, h, w = x.shape
    return idx + (np.arange(n * c).reshape(n, c, 1, 1) * (h * w))


def _max_pool_ref(x, kernel, stride, padding):
    win = _windows(_pad(x, padding, -np.inf), kernel, stride or kernel)
    return np.max(win, axis=(4, 5))


@_in_float64
def _max_pool_grad_ref(ct, x, kernel, stride, padding):
    dx = np.zeros(x.shape, np.result_type(ct, x))
    np.add.at(dx.reshape(-1), _plane_index(x, _argmax(x, kernel, stride, padding)), ct)
    return dx


def _max_pool_gather_ref(v, x, kernel, stride, padding):
    flat = _plane_index(x, _argmax(x, kernel, stride, padding))
    return v.reshape(-1)[flat].astype(np.result_type(v, x), copy=False)


# d max_pool2d(x) = dy sent to each window's first maximum
register(
    OpDef(
        "max_pool2d",
        1,
        _infer_max_pool,
        _max_pool_ref,
        (lambda ct, out, x, **p: max_pool2d_grad(ct, x, **p),),
        params=_POOL,
        lower=_lower_pool,
        formula="dx = dy at each window's first maximum, summed where windows overlap",
    )
)
# A scatter of ct to the argmax of x's windows: linear in ct (its VJP gathers the cotangent
# there); piecewise constant in x.
register(
    OpDef(
        "max_pool2d_grad",
        2,
        lambda s, d, p: _infer_pool_pair("max_pool2d_grad", "ct", s, d, p),
        _max_pool_grad_ref,
        (lambda c, out, ct, x, **p: max_pool2d_gather(c, x, **p), None),
        params=_POOL,
        lower=_lower_pool,
        formula="dct = dy gathered at the argmax of x's windows; x: none",
    )
)
register(
    OpDef(
        "max_pool2d_gather",
        2,
        lambda s, d, p: _infer_pool_pair("max_pool2d_gather", "v", s, d, p),
        _max_pool_gather_ref,
        (lambda c, out, v, x, **p: max_pool2d_grad(c, x, **p), None),
        params=_POOL,
        lower=_lower_pool,
        formula="dv = dy scattered to the argmax of x's windows; x: none",
    )
)


# ---- average pooling (count_include_pad: always divided by kH kW) -----------------------------
def _infer_avg_pool(shapes, dtypes, params):
    x = _nchw("avg_pool2d", shapes[0], "x", "[N, C, H, W]")
    return _pooled("avg_pool2d", x, params), float_dtype(dtypes, "avg_pool2d")


def _infer_avg_pool_grad(shapes, dtypes, params):
    op = "avg_pool2d_grad"
    ct = _nchw(op, shapes[0], "ct", "[N, C, H_out, W_out]")
    size = _pair_param(op, params, "size", 1)
    pooled = _pooled(op, (*ct[:2], *size), params)
    if pooled != tuple(ct):
        raise ShapeMismatch(f"{op}: an input of size {size} pools to {pooled[2:]}, not {ct[2:]}")
    return (*ct[:2], *size), float_dtype(dtypes, op)


@_in_float64
def _avg_pool_ref(x, kernel, stride, padding):
    win = _windows(_pad(x, padding), kernel, stride or kernel)
    return np.sum(win, axis=(4, 5)) / (kernel[0] * kernel[1])


@_in_float64
def _avg_pool_grad_ref(ct, kernel, stride, padding, size):
    share = ct / (kernel[0] * kernel[1])
    shape = (*ct.shape[:2], *size)
    dx = _scatter_windows(lambda i, j: share, shape, ct.dtype, kernel, stride or kernel, padding)
    return np.ascontiguousarray(dx)


register(
    OpDef(
        "avg_pool2d",
        1,
        _infer_avg_pool,
        _avg_pool_ref,
        (lambda ct, out, x, **p: avg_pool2d_grad(ct, x.shape[2:], **p),),
        params=_POOL,
        lower=_lower_pool,
        formula="dx = dy / (kH kW) spread over each window",
    )
)
register(
    OpDef(
        "avg_pool2d_grad",
        1,
        _infer_avg_pool_grad,
        _avg_pool_grad_ref,
        (lambda c, out, ct, size, **p: avg_pool2d(c, **p),),
        params={**_POOL, "size": None},
        lower=_lower_pool,
        formula="dct = avg_pool2d(dy)",
    )
)


# ---- builders ---------------------------------------------------------------------------------
def _pool_kw(op: str, kernel, stride, padding) -> dict[str, Any]:
    kernel = _pair(op, "kernel", kernel)
    return {
        "kernel": kernel,
        "stride": kernel if stride is None else _pair(op, "stride", stride),
        "padding": _pair(op, "padding", padding),
    }


def max_pool2d(x: Value, kernel: Any, stride: Any = None, padding: Any = 0) -> Value:
    """Maximum over kH x kW windows of x [N, C, H, W] (stride: the kernel by default; padding
    counts as -inf and is at most half the kernel); NaN propagates as in np.max. The gradient
    goes to each window's first maximum in row-major order."""
    return apply("max_pool2d", x, **_pool_kw("max_pool2d", kernel, stride, padding))


def max_pool2d_grad(
    ct: Value, x: Value, kernel: Any, stride: Any = None, padding: Any = 0
) -> Value:
    """`ct` (max_pool2d(x)'s shape) added at the first maximum of each window of x."""
    return apply("max_pool2d_grad", ct, x, **_pool_kw("max_pool2d_grad", kernel, stride, padding))


def max_pool2d_gather(
    v: Value, x: Value, kernel: Any, stride: Any = None, padding: Any = 0
) -> Value:
    """`v` (x's shape) read at the first maximum of each window of x."""
    kw = _pool_kw("max_pool2d_gather", kernel, stride, padding)
    return apply("max_pool2d_gather", v, x, **kw)


def avg_pool2d(x: Value, kernel: Any, stride: Any = None, padding: Any = 0) -> Value:
    """Mean over kH x kW windows of x [N, C, H, W], zero padding included in every mean
    (divided by kH kW always, as PyTorch's default count_include_pad=True)."""
    return apply("avg_pool2d", x, **_pool_kw("avg_pool2d", kernel, stride, padding))


def avg_pool2d_grad(
    ct: Value, size: Any, kernel: Any, stride: Any = None, padding: Any = 0
) -> Value:
    """The gradient of avg_pool2d(x) in x of spatial `size` (H, W), for cotangent `ct`."""
    kw = _pool_kw("avg_pool2d_grad", kernel, stride, padding)
    return apply("avg_pool2d_grad", ct, size=_pair("avg_pool2d_grad", "size", size), **kw)
