"""2-D convolution and pooling over NCHW values, with the gradient ops they need.

Layouts as PyTorch's: x is [N, C, H, W], a convolution weight [C_out, C_in/groups, kH, kW];
convolution is cross-correlation with zero padding, and an output side is
`(H + 2 padding - dilation (k - 1) - 1) // stride + 1`. The batch N may be a symbol; every
other dim is an int. Geometry params are pairs (height, width); the builders also take an int.

The gradient ops are ops of their own, each with its VJP written with these same ops, so the
set is closed under differentiation and `grad(grad(g))` works:
  conv2d(x, w)               -> dx: conv2d_grad_input(ct, w), dw: conv2d_grad_weight(x, ct)
  conv2d_grad_input(ct, w)   -> dct: conv2d(c, w),      dw: conv2d_grad_weight(c, ct)
  conv2d_grad_weight(x, ct)  -> dx: conv2d_grad_input(ct, c), dct: conv2d(x, c)
  max_pool2d(x)              -> dx: max_pool2d_grad(ct, x)
  max_pool2d_grad(ct, x)     -> dct: max_pool2d_gather(c, x)   (x: none, the argmax is
  max_pool2d_gather(v, x)    -> dv: max_pool2d_grad(c, x)       piecewise constant)
  avg_pool2d(x) <-> avg_pool2d_grad(ct): each the other's VJP (both linear).
Max pooling sends a window's gradient to its first maximum in row-major order, as PyTorch does
(to the first NaN, if the window has one); where windows overlap, their gradients add up.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import ShapeMismatch, format_shape
from graphc.ops._build import apply, float_dtype
from graphc.ops.registry import OpDef, register

_CONV = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
_POOL = {"kernel": None, "stride": None, "padding": (0, 0)}  # stride None: the kernel's


# ---- geometry ---------------------------------------------------------------------------------
def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _pair_param(op: str, params, name: str, least: int) -> tuple[int, int]:
    v = params[name]
    if not (isinstance(v, tuple) and len(v) == 2 and all(_int(d) and d >= least for d in v)):
        raise ShapeMismatch(f"{op}: {name} must be a pair of ints >= {least}, got {v!r}")
    return v


_CONV_LOW = (("stride", 1), ("padding", 0), ("dilation", 1))  # the least value of each


def _conv_params(op: str, params) -> tuple[tuple[int, int], ...]:
    """(stride, padding, dilation), checked; groups is checked against the channels."""
    if not (_int(params["groups"]) and params["groups"] >= 1):
        raise ShapeMismatch(f"{op}: groups must be an int >= 1, got {params['groups']!r}")
    return tuple(_pair_param(op, params, k, low) for k, low in _CONV_LOW)


def _pool_params(op: str, params) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, padding), checked; padding at most half the kernel, as PyTorch's."""
    kernel = _pair_param(op, params, "kernel", 1)
    stride = kernel if params["stride"] is None else _pair_param(op, params, "stride", 1)
    padding = _pair_param(op, params, "padding", 0)
    if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
        raise ShapeMismatch(f"{op}: padding {padding} is more than half the kernel {kernel}")
    return kernel, stride, padding


def _nchw(op: str, shape: tuple, what: str, layout: str, batch: bool = True) -> tuple:
    """`shape` checked to be 4-d with int dims >= 1 (the first may be a symbol or 0 if
    `batch`)."""
    if len(shape) != 4:
        raise ShapeMismatch(f"{op}: {what} must be 4-d {layout}, got {format_shape(shape)}")
    names = layout.strip("[]").split(", ")
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


def _out_hw(op: str, hw, kernel, stride, padding, dilation=(1, 1)) -> tuple[int, int]:
    out = tuple(map(_out_side, hw, kernel, stride, padding, dilation))
    if min(out) < 1:
        span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
        raise ShapeMismatch(
            f"{op}: a {span[0]}x{span[1]} window does not fit in the {hw[0]}x{hw[1]} input "
            f"padded by {padding}"
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


# ---- conv2d -----------------------------------------------------------------------------------
def _infer_conv2d(shapes, dtypes, params):
    x = _nchw("conv2d", shapes[0], "x", "[N, C_in, H, W]")
    w = _nchw("conv2d", shapes[1], "w", "[C_out, C_in/groups, kH, kW]", batch=False)
    stride, padding, dilation = _conv_params("conv2d", params)
    g = params["groups"]
    _groups("conv2d", x[1], w[0], g)
    if w[1] * g != x[1]:
        raise ShapeMismatch(
            f"conv2d: w takes {w[1]} channels per group, x has {x[1]} in {g} group(s)"
        )
    out = _out_hw("conv2d", x[2:], w[2:], stride, padding, dilation)
    return (x[0], w[0], *out), float_dtype(dtypes, "conv2d")


@_in_float64
def _conv2d_ref(x, w, stride, padding, dilation, groups):
    n, g = x.shape[0], groups
    win = _windows(_pad(x, padding), w.shape[2:], stride, dilation)
    win = win.reshape(n, g, x.shape[1] // g, *win.shape[2:])
    wg = w.reshape(g, w.shape[0] // g, *w.shape[1:])
    out = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True)
    return out.reshape(n, w.shape[0], *out.shape[3:])


# d conv(x, w) = conv2d_grad_input(dy, w) for x, conv2d_grad_weight(x, dy) for w
register(
    OpDef(
        "conv2d",
        2,
        _infer_conv2d,
        _conv2d_ref,
        (
            lambda ct, out, x, w, **p: conv2d_grad_input(ct, w, x.shape[2:], **p),
            lambda ct, out, x, w, **p: conv2d_grad_weight(x, ct, w.shape[2:], **p),
        ),
        params=_CONV,
        formula="dx = conv2d_grad_input(dy, w), dw = conv2d_grad_weight(x, dy)",
    )
)


# ---- conv2d_grad_input: the transposed convolution, adjoint of conv2d in x -------------------
def _infer_grad_input(shapes, dtypes, params):
    op = "conv2d_grad_input"
    ct = _nchw(op, shapes[0], "ct", "[N, C_out, H_out, W_out]")
    w = _nchw(op, shapes[1], "w", "[C_out, C_in/groups, kH, kW]", batch=False)
    stride, padding, dilation = _conv_params(op, params)
    size = _pair_param(op, params, "size", 1)
    g = params["groups"]
    _groups(op, w[1] * g, w[0], g)
    if ct[1] != w[0]:
        raise ShapeMismatch(f"{op}: ct has {ct[1]} channels, w has {w[0]} output channels")
    out = _out_hw(op, size, w[2:], stride, padding, dilation)
    if out != ct[2:]:
        raise ShapeMismatch(f"{op}: an input of size {size} gives outputs {out}, not {ct[2:]}")
    return (ct[0], w[1] * g, *size), float_dtype(dtypes, op)


@_in_float64
def _grad_input_ref(ct, w, stride, padding, dilation, groups, size):
    n, g = ct.shape[0], groups
    ctg = ct.reshape(n, g, ct.shape[1] // g, *ct.shape[2:])
    wg = w.reshape(g, w.shape[0] // g, *w.shape[1:])
    dx = _scatter_windows(
        lambda i, j: np.einsum("ngohw,goc->ngchw", ctg, wg[..., i, j]).reshape(
            n, g * w.shape[1], *ct.shape[2:]
        ),
        (n, g * w.shape[1], *size),
        np.result_type(ct, w),
        w.shape[2:],
        stride,
        padding,
        dilation,
    )
    return np.ascontiguousarray(dx)


# y = T(ct, w) with <T(ct, w), c> = <conv2d(c, w), ct>: d/dct = conv2d(c, w), and
# d/dw = conv2d_grad_weight(c, ct).
register(
    OpDef(
        "conv2d_grad_input",
        2,
        _infer_grad_input,
        _grad_input_ref,
        (
            lambda c, out, ct, w, size, **p: conv2d(c, w, **p),
            lambda c, out, ct, w, size, **p: conv2d_grad_weight(c, ct, w.shape[2:], **p),
        ),
        params={**_CONV, "size": None},
        formula="dct = conv2d(dy, w), dw = conv2d_grad_weight(dy, ct)",
    )
)


# ---- conv2d_grad_weight: adjoint of conv2d in w ------------------------------------------------
def _infer_grad_weight(shapes, dtypes, params):
    op = "conv2d_grad_weight"
    x = _nchw(op, shapes[0], "x", "[N, C_in, H, W]")
    ct = _nchw(op, shapes[1], "ct", "[N, C_out, H_out, W_out]")
    stride, padding, dilation = _conv_params(op, params)
    kernel = _pair_param(op, params, "kernel", 1)
    g = params["groups"]
    _same_batch(op, x, ct)
    _groups(op, x[1], ct[1], g)
    out = _out_hw(op, x[2:], kernel, stride, padding, dilation)
    if out != ct[2:]:
        raise ShapeMismatch(f"{op}: x and kernel {kernel} give outputs {out}, not {ct[2:]}")
    return (ct[1], x[1] // g, *kernel), float_dtype(dtypes, op)


@_in_float64
def _grad_weight_ref(x, ct, stride, padding, dilation, groups, kernel):
    n, g = x.shape[0], groups
    win = _windows(_pad(x, padding), kernel, stride, dilation)
    win = win.reshape(n, g, x.shape[1] // g, *win.shape[2:])
    ctg = ct.reshape(n, g, ct.shape[1] // g, *ct.shape[2:])
    dw = np.einsum("ngchwij,ngohw->gocij", win, ctg, optimize=True)
    return dw.reshape(ct.shape[1], x.shape[1] // g, *kernel)


# y = GW(x, ct) with <GW(x, ct), c> = <conv2d(x, c), ct>: d/dx = conv2d_grad_input(ct, c),
# d/dct = conv2d(x, c).
register(
    OpDef(
        "conv2d_grad_weight",
        2,
        _infer_grad_weight,
        _grad_weight_ref,
        (
            lambda c, out, x, ct, kernel, **p: conv2d_grad_input(ct, c, x.shape[2:], **p),
            lambda c, out, x, ct, kernel, **p: conv2d(x, c, **p),
        ),
        params={**_CONV, "kernel": None},
        formula="dx = conv2d_grad_input(ct, dy), dct = conv2d(x, dy)",
    )
)


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
    (the first NaN if any; the first cell when every cell is -inf); never a padding cell."""
    n, c, h, w = x.shape
    stride = stride or kernel
    win = _windows(_pad(x, padding, -np.inf), kernel, stride)
    ho, wo = win.shape[2:4]
    win = win.reshape(n, c, ho, wo, kernel[0] * kernel[1])
    real = _windows(_pad(np.ones((1, 1, h, w), bool), padding, False), kernel, stride)
    real = real.reshape(1, 1, ho, wo, kernel[0] * kernel[1])
    k = np.argmax(win, axis=-1)
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
        formula="dct = avg_pool2d(dy)",
    )
)


# ---- builders ---------------------------------------------------------------------------------
def _pair(op: str, name: str, v: Any) -> tuple:
    """An int or a pair as a pair (NumPy ints as ints); the op's shape rule checks values."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return (int(v), int(v))
    if isinstance(v, (tuple, list)) and len(v) == 2:
        return tuple(int(d) if isinstance(d, np.integer) else d for d in v)
    raise ShapeError(f"{op} at {user_loc()}: {name} must be an int or a pair of ints, got {v!r}")


def _conv_kw(op: str, stride, padding, dilation, groups) -> dict[str, Any]:
    if isinstance(groups, np.integer):
        groups = int(groups)
    return {
        "stride": _pair(op, "stride", stride),
        "padding": _pair(op, "padding", padding),
        "dilation": _pair(op, "dilation", dilation),
        "groups": groups,
    }


def conv2d(
    x: Value, w: Value, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1
) -> Value:
    """2-D cross-correlation of x [N, C_in, H, W] with w [C_out, C_in/groups, kH, kW] and zero
    padding, as PyTorch's `conv2d` without bias: [N, C_out, H_out, W_out]."""
    return apply("conv2d", x, w, **_conv_kw("conv2d", stride, padding, dilation, groups))


def conv2d_grad_input(
    ct: Value,
    w: Value,
    size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Value:
    """The gradient of conv2d(x, w) in x of spatial `size` (H, W), for cotangent `ct`: the
    transposed convolution."""
    kw = _conv_kw("conv2d_grad_input", stride, padding, dilation, groups)
    return apply("conv2d_grad_input", ct, w, size=_pair("conv2d_grad_input", "size", size), **kw)


def conv2d_grad_weight(
    x: Value,
    ct: Value,
    kernel: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Value:
    """The gradient of conv2d(x, w) in w of spatial `kernel` (kH, kW), for cotangent `ct`."""
    kw = _conv_kw("conv2d_grad_weight", stride, padding, dilation, groups)
    op = "conv2d_grad_weight"
    return apply(op, x, ct, kernel=_pair(op, "kernel", kernel), **kw)


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
