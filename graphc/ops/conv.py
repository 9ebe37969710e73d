"""2-D convolution over NCHW values, with the gradient ops it needs (pooling: ops/pool.py).

Layouts as PyTorch's: x is [N, C, H, W], a convolution weight [C_out, C_in/groups, kH, kW];
convolution is cross-correlation with zero padding, and an output side is
`(H + 2 padding - dilation (k - 1) - 1) // stride + 1`. The batch N may be a symbol; every
other dim is an int. Geometry params are pairs (height, width); the builders also take an int.

The gradient ops are ops of their own, each with its VJP written with these same ops, so the
set is closed under differentiation and `grad(grad(g))` works:
  conv2d(x, w)               -> dx: conv2d_grad_input(ct, w), dw: conv2d_grad_weight(x, ct)
  conv2d_grad_input(ct, w)   -> dct: conv2d(c, w),      dw: conv2d_grad_weight(c, ct)
  conv2d_grad_weight(x, ct)  -> dx: conv2d_grad_input(ct, c), dct: conv2d(x, c)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.codegen.emit import Emit
from graphc.codegen.kir import SizeExpr
from graphc.ir.graph import Value
from graphc.ir.shapes import ShapeMismatch
from graphc.ops._build import apply, float_dtype
from graphc.ops._window import (
    _conv_params,
    _groups,
    _in_float64,
    _nchw,
    _out_hw,
    _pad,
    _pair,
    _pair_param,
    _same_batch,
    _scatter_windows,
    _windows,
)
from graphc.ops.registry import OpDef, register

# ---- lowering: direct loops or im2col tiles and BLAS, per layer (templates/runtime/conv.pyx.j2)
# A convolution (or either of its gradients) runs one of two runtime kernels, chosen per layer
# from its geometry: direct loops along output rows, or im2col of tiles of output positions (on
# the stack) multiplied by BLAS, whose inner dimension is the layer's taps per group,
# C_in/groups * kH * kW. Measured on this kind of machine (float32, batch 32, one thread;
# microseconds, direct / BLAS):
#
#   layer (C_in->C_out kernel, input)   taps  out/group  forward      grad_input   grad_weight
#   1->8 3x3, 28x28                        9      8       221 / 316    607 / 369    315 / 417
#   8->8 1x1, 28x28                        8      8       214 / 264    169 / 287    277 / 217
#   1->8 5x5, 28x28 pad 2                 25      8       585 / 987   1054 / 1022   914 / 774
#   4->16 3x3, 28x28 pad 1                36     16      1905 / 1311  2552 / 1986  1932 / 1439
#   16->32 3x3, 28x28 pad 1              144     32     14161 / 6585 12838 / 7981 15075 / 10340
#   32->8 3x3, 14x14 pad 1               288      8      2780 / 6244  2717 / 3080  4583 / 3204
#   64->16 3x3, 14x14 pad 1, groups 4    144      4      4394 / 5755  3697 / 5644  3304 / 10643
#   64->64 3x3, 14x14 pad 1, groups 4    144     16     16674 / 7015 19273 / 8639 23349 / 13416
#   32->32 3x3, 28x28 pad 1, depthwise     9      1      1804 / 6207  3084 / 8025  3910 / 8486
#
# BLAS wins once a group has both many taps and many outputs (its products are then neither
# thin nor short): from GEMM_MIN_TAPS taps and GEMM_MIN_OUT outputs per group on. The direct
# kernels share large work among the module's threads (by images, blocks of output channels),
# each result computed by one thread: the same bits for any number.
TILE = 8192  # elements of the im2col tile, on the stack (_CONV_TILE in conv.pyx.j2)
GEMM_MIN_TAPS, GEMM_MIN_OUT = 32, 16  # im2col + BLAS from here on (see above)
INT32_MAX = 2**31 - 1  # BLAS may take 32-bit sizes
WHICH = {"conv2d": 0, "conv2d_grad_input": 1, "conv2d_grad_weight": 2}  # conv2d_tiled's


def tiling(w_shape: tuple, y_shape: tuple, groups: int, size: int = TILE) -> tuple[int, int] | None:
    """(positions per tile, input channels per tile) of the im2col + BLAS kernel, whose tile
    holds `size` elements, for a layer with weight `w_shape` and output `y_shape` (of conv2d,
    or of conv3d: ops/conv3d.py), or None for direct loops: these win while a group has fewer
    than GEMM_MIN_TAPS taps or GEMM_MIN_OUT output channels."""
    cig, kk, cog = w_shape[1], math.prod(w_shape[2:]), w_shape[0] // groups
    taps, positions = cig * kk, math.prod(y_shape[2:])
    if taps < GEMM_MIN_TAPS or cog < GEMM_MIN_OUT or kk * 16 > size:
        return None
    if max(cog, taps, positions) > INT32_MAX:
        return None
    tile = max(16, size // taps)
    return tile, min(cig, size // (kk * tile))


def _lower_conv(e: Emit, n: int, args: list[int], params: dict) -> None:
    """The kernel of conv2d or a gradient of it, with its operands `args` and the geometry of
    the convolution (x [N, C_in, H, W], weight w, output y) it belongs to."""
    op = e.values.G.nodes[n]["op"]
    shape = e.values.shape
    a, b = args
    x, w, y = {  # the shapes of the convolution's x, weight and output
        "conv2d": (shape(a), shape(b), shape(n)),
        "conv2d_grad_input": (shape(n), shape(b), shape(a)),
        "conv2d_grad_weight": (shape(a), shape(n), shape(b)),
    }[op]  # (every entry has both operands)
    g = params["groups"]
    geometry = [x[0], g, w[1], w[0] // g, *x[2:], *w[2:], *y[2:], *params["stride"],
                *params["padding"], *params["dilation"]]  # fmt: skip
    tiles = tiling(w, y, g)
    if tiles is None:  # direct loops: one multiply-add per tap
        work = SizeExpr.of([*y, *w[1:]])
        e.runtime(f"{op}_{e.suffix}", [a, b, n], geometry, work=work, alone=False)
    else:  # im2col tiles and BLAS, which shares the products among its own threads
        e.runtime(f"conv2d_tiled_{e.suffix}", [a, b, n], [WHICH[op], *geometry, *tiles], work=None)


# ---- shape rules, for a convolution of any spatial rank k (conv3d.py's too) ----------------
def conv_rules(name: str, k: int, x_: str, w_: str, ct_: str) -> tuple[Callable, ...]:
    """The shape rules of the k-d convolution `name` and of its gradients in x and in w
    (`name`_grad_input, `name`_grad_weight); x_, w_ and ct_ are the layouts errors show."""
    grad_input, grad_weight = f"{name}_grad_input", f"{name}_grad_weight"

    def conv(shapes, dtypes, params):
        x = _nchw(name, shapes[0], "x", x_)
        w = _nchw(name, shapes[1], "w", w_, batch=False)
        stride, padding, dilation = _conv_params(name, params, k)
        g = params["groups"]
        _groups(name, x[1], w[0], g)
        if w[1] * g != x[1]:
            raise ShapeMismatch(
                f"{name}: w takes {w[1]} channels per group, x has {x[1]} in {g} group(s)"
            )
        out = _out_hw(name, x[2:], w[2:], stride, padding, dilation)
        return (x[0], w[0], *out), float_dtype(dtypes, name)

    def input_grad(shapes, dtypes, params):
        op = grad_input
        ct = _nchw(op, shapes[0], "ct", ct_)
        w = _nchw(op, shapes[1], "w", w_, batch=False)
        stride, padding, dilation = _conv_params(op, params, k)
        size = _pair_param(op, params, "size", 1, k)
        g = params["groups"]
        _groups(op, w[1] * g, w[0], g)
        if ct[1] != w[0]:
            raise ShapeMismatch(f"{op}: ct has {ct[1]} channels, w has {w[0]} output channels")
        out = _out_hw(op, size, w[2:], stride, padding, dilation)
        if out != ct[2:]:
            raise ShapeMismatch(f"{op}: an input of size {size} gives outputs {out}, not {ct[2:]}")
        return (ct[0], w[1] * g, *size), float_dtype(dtypes, op)

    def weight_grad(shapes, dtypes, params):
        op = grad_weight
        x = _nchw(op, shapes[0], "x", x_)
        ct = _nchw(op, shapes[1], "ct", ct_)
        stride, padding, dilation = _conv_params(op, params, k)
        kernel = _pair_param(op, params, "kernel", 1, k)
        g = params["groups"]
        _same_batch(op, x, ct)
        _groups(op, x[1], ct[1], g)
        out = _out_hw(op, x[2:], kernel, stride, padding, dilation)
        if out != ct[2:]:
            raise ShapeMismatch(f"{op}: x and kernel {kernel} give outputs {out}, not {ct[2:]}")
        return (ct[1], x[1] // g, *kernel), float_dtype(dtypes, op)

    return conv, input_grad, weight_grad


def conv_kw(op: str, stride, padding, dilation, groups, k: int = 2) -> dict[str, Any]:
    """A k-d convolution's geometry params, from ints or k-tuples (NumPy ints as ints)."""
    if isinstance(groups, np.integer):
        groups = int(groups)
    return {
        "stride": _pair(op, "stride", stride, k),
        "padding": _pair(op, "padding", padding, k),
        "dilation": _pair(op, "dilation", dilation, k),
        "groups": groups,
    }


def conv_family(
    k: int, layouts: tuple[str, str, str], refs: tuple[Callable, ...], lower: Callable
) -> tuple[Callable, Callable, Callable]:
    """Register the k-d convolution `conv{k}d` and its gradients in x and in w (`_grad_input`,
    `_grad_weight`), each one's VJP written with the three, so the set is closed under
    differentiation and grad(grad(g)) works; `refs` are their NumPy references (in that
    order), `lower` their lowering, `layouts` those of x, w and the cotangent, as errors show
    them. Returns the three builders."""
    name = f"conv{k}d"
    gi, gw = f"{name}_grad_input", f"{name}_grad_weight"
    x_, w_, ct_ = layouts
    infer, infer_gi, infer_gw = conv_rules(name, k, x_, w_, ct_)
    geometry = {"stride": (1,) * k, "padding": (0,) * k, "dilation": (1,) * k, "groups": 1}

    def conv(
        x: Value, w: Value, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1
    ) -> Value:
        return apply(name, x, w, **conv_kw(name, stride, padding, dilation, groups, k))

    def grad_input(
        ct: Value, w: Value, size: Any, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
        groups: int = 1,
    ) -> Value:  # fmt: skip
        kw = conv_kw(gi, stride, padding, dilation, groups, k)
        return apply(gi, ct, w, size=_pair(gi, "size", size, k), **kw)

    def grad_weight(
        x: Value, ct: Value, kernel: Any, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
        groups: int = 1,
    ) -> Value:  # fmt: skip
        kw = conv_kw(gw, stride, padding, dilation, groups, k)
        return apply(gw, x, ct, kernel=_pair(gw, "kernel", kernel, k), **kw)

    # d conv(x, w) = grad_input(dy, w) for x, grad_weight(x, dy) for w
    register(
        OpDef(
            name,
            2,
            infer,
            refs[0],
            (
                lambda ct, out, x, w, **p: grad_input(ct, w, x.shape[2:], **p),
                lambda ct, out, x, w, **p: grad_weight(x, ct, w.shape[2:], **p),
            ),
            params=geometry,
            lower=lower,
            formula=f"dx = {gi}(dy, w), dw = {gw}(x, dy)",
        )
    )
    # y = T(ct, w) with <T(ct, w), c> = <conv(c, w), ct>: d/dct = conv(c, w), and
    # d/dw = grad_weight(c, ct)
    register(
        OpDef(
            gi,
            2,
            infer_gi,
            refs[1],
            (
                lambda c, out, ct, w, size, **p: conv(c, w, **p),
                lambda c, out, ct, w, size, **p: grad_weight(c, ct, w.shape[2:], **p),
            ),
            params={**geometry, "size": None},
            lower=lower,
            formula=f"dct = {name}(dy, w), dw = {gw}(dy, ct)",
        )
    )
    # y = GW(x, ct) with <GW(x, ct), c> = <conv(x, c), ct>: d/dx = grad_input(ct, c), and
    # d/dct = conv(x, c)
    register(
        OpDef(
            gw,
            2,
            infer_gw,
            refs[2],
            (
                lambda c, out, x, ct, kernel, **p: grad_input(ct, c, x.shape[2:], **p),
                lambda c, out, x, ct, kernel, **p: conv(x, c, **p),
            ),
            params={**geometry, "kernel": None},
            lower=lower,
            formula=f"dx = {gi}(ct, dy), dct = {name}(x, dy)",
        )
    )

    conv.__doc__ = (
        f"{k}-D cross-correlation of x {x_} with w {w_} and zero padding, as PyTorch's "
        f"`{name}` without bias: {ct_}."
    )
    grad_input.__doc__ = (
        f"The gradient of {name}(x, w) in x of spatial `size` ({k} ints, or an int), for "
        "cotangent `ct`: the transposed convolution."
    )
    grad_weight.__doc__ = (
        f"The gradient of {name}(x, w) in w of spatial `kernel` ({k} ints, or an int), for "
        "cotangent `ct`."
    )
    for fn, fn_name in ((conv, name), (grad_input, gi), (grad_weight, gw)):
        fn.__name__ = fn.__qualname__ = fn_name
    return conv, grad_input, grad_weight


# ---- conv2d -----------------------------------------------------------------------------------
@_in_float64
def _conv2d_ref(x, w, stride, padding, dilation, groups):
    n, g = x.shape[0], groups
    win = _windows(_pad(x, padding), w.shape[2:], stride, dilation)
    win = win.reshape(n, g, x.shape[1] // g, *win.shape[2:])
    wg = w.reshape(g, w.shape[0] // g, *w.shape[1:])
    out = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True)
    return out.reshape(n, w.shape[0], *out.shape[3:])


# ---- conv2d_grad_input: the transposed convolution, adjoint of conv2d in x -------------------
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


# ---- conv2d_grad_weight: adjoint of conv2d in w ------------------------------------------------
@_in_float64
def _grad_weight_ref(x, ct, stride, padding, dilation, groups, kernel):
    n, g = x.shape[0], groups
    win = _windows(_pad(x, padding), kernel, stride, dilation)
    win = win.reshape(n, g, x.shape[1] // g, *win.shape[2:])
    ctg = ct.reshape(n, g, ct.shape[1] // g, *ct.shape[2:])
    dw = np.einsum("ngchwij,ngohw->gocij", win, ctg, optimize=True)
    return dw.reshape(ct.shape[1], x.shape[1] // g, *kernel)


conv2d, conv2d_grad_input, conv2d_grad_weight = conv_family(
    2,
    ("[N, C_in, H, W]", "[C_out, C_in/groups, kH, kW]", "[N, C_out, H_out, W_out]"),
    (_conv2d_ref, _grad_input_ref, _grad_weight_ref),
    _lower_conv,
)
