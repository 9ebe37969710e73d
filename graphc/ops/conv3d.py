"""3-D convolution over NCDHW values, with the gradient ops it needs, as conv2d's (ops/conv.py)
with a depth axis; the public conv3d with bias and conv_transpose3d are in ops/conv_nd.py.

Layouts as PyTorch's: x is [N, C, D, H, W], a weight [C_out, C_in/groups, kD, kH, kW];
convolution is cross-correlation with zero padding, and an output side is
`(D + 2 padding - dilation (k - 1) - 1) // stride + 1`. The batch N may be a symbol; every
other dim is an int. Geometry params are triples (depth, height, width); the builders also
take an int.

The gradient ops are ops of their own, each with its VJP written with these same ops, so the
set is closed under differentiation and `grad(grad(g))` works:
  conv3d(x, w)               -> dx: conv3d_grad_input(ct, w), dw: conv3d_grad_weight(x, ct)
  conv3d_grad_input(ct, w)   -> dct: conv3d(c, w),      dw: conv3d_grad_weight(c, ct)
  conv3d_grad_weight(x, ct)  -> dx: conv3d_grad_input(ct, c), dct: conv3d(x, c)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from graphc.codegen.emit import Emit
from graphc.codegen.kir import SizeExpr
from graphc.ops._window import (
    _in_float64,
)
from graphc.ops.conv import conv_family, tiling

# ---- lowering: direct loops or im2col tiles and BLAS (templates/runtime/conv3d.pyx.j2) --------
# As conv2d's (ops/conv.py), each op runs one of two runtime kernels, chosen per layer by the
# same rule (`tiling`: from GEMM_MIN_TAPS taps and GEMM_MIN_OUT outputs per group on, BLAS):
# direct loops along output rows, their large work shared among the module's threads (images,
# or blocks of output channels for the weight's gradient), each result computed by one thread
# (the same bits for any number of threads); or im2col of tiles of output positions multiplied
# by BLAS, which shares the products among its own threads.
# The tile is on the heap, of a fixed size whatever the batch (so the sums' order is too), twice
# conv2d's: a 3x3x3 kernel's taps leave few positions per tile for BLAS in 8192 elements.
# Measured (float32, batch 4, one thread, 3x3x3 kernel, padding 1; milliseconds, forward /
# value_and_grad, against the loop of grouped conv2d's this op replaced, on a loaded machine):
#   1->8, 16^3 (direct)  1.11 / 3.33 against 1.29 / 5.01
#   4->8, 16^3 (direct)  4.13 / 11.0 against 4.49 / 11.7
#   8->16, 12^3 (BLAS)   3.58 / 11.2 against 3.35 / 9.54  (tiles of 8192: 3.98 / 11.6)
#   16->32, 8^3 (BLAS)   3.15 / 9.15 against 2.54 / 7.57  (tiles of 8192: 3.57 / 10.5)
TILE3 = 16384
WHICH = {"conv3d": 0, "conv3d_grad_input": 1, "conv3d_grad_weight": 2}  # conv3d_tiled's


def _lower_conv3d(e: Emit, n: int, args: list[int], params: dict) -> None:
    """The kernel of conv3d or a gradient of it, with its operands `args` and the geometry of
    the convolution (x [N, C_in, D, H, W], weight w, output y) it belongs to."""
    op = e.values.G.nodes[n]["op"]
    shape = e.values.shape
    a, b = args
    x, w, y = {  # the shapes of the convolution's x, weight and output
        "conv3d": (shape(a), shape(b), shape(n)),
        "conv3d_grad_input": (shape(n), shape(b), shape(a)),
        "conv3d_grad_weight": (shape(a), shape(n), shape(b)),
    }[op]
    g = params["groups"]
    geometry = [x[0], g, w[1], w[0] // g, *x[2:], *w[2:], *y[2:], *params["stride"],
                *params["padding"], *params["dilation"]]  # fmt: skip
    tiles = tiling(w, y, g, TILE3)
    if tiles is None:  # direct loops: one multiply-add per output and tap
        work = SizeExpr.of([*y, *w[1:]])
        e.runtime(f"{op}_{e.suffix}", [a, b, n], geometry, work=work, alone=False)
    else:  # im2col tiles and BLAS
        e.runtime(f"conv3d_tiled_{e.suffix}", [a, b, n], [WHICH[op], *geometry, *tiles], work=None)


# ---- NumPy helpers of the references ---------------------------------------------------------
def _padded(x: np.ndarray, padding) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), *((p, p) for p in padding)))


def _windows(xp: np.ndarray, kernel, stride, dilation) -> np.ndarray:
    """The view [N, C, D_out, H_out, W_out, kD, kH, kW] of the windows of padded `xp`."""
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    win = sliding_window_view(xp, span, axis=(2, 3, 4))
    (sd, sh, sw), (dd, dh, dw) = stride, dilation
    return win[:, :, ::sd, ::sh, ::sw, ::dd, ::dh, ::dw]


# ---- conv3d -----------------------------------------------------------------------------------
@_in_float64
def _conv3d_ref(x, w, stride, padding, dilation, groups):
    n, g = x.shape[0], groups
    win = _windows(_padded(x, padding), w.shape[2:], stride, dilation)
    win = win.reshape(n, g, x.shape[1] // g, *win.shape[2:])
    wg = w.reshape(g, w.shape[0] // g, *w.shape[1:])
    out = np.einsum("ngcdhwijk,gocijk->ngodhw", win, wg, optimize=True)
    return out.reshape(n, w.shape[0], *out.shape[3:])


# ---- conv3d_grad_input: the transposed convolution, adjoint of conv3d in x -------------------
@_in_float64
def _grad_input_ref(ct, w, stride, padding, dilation, groups, size):
    """Each tap's products [N, C_in, D_out, H_out, W_out] added where the tap read from, in the
    padded input, whose padding is then cut off."""
    n, g, c = ct.shape[0], groups, groups * w.shape[1]
    ctg = ct.reshape(n, g, ct.shape[1] // g, *ct.shape[2:])
    wg = w.reshape(g, w.shape[0] // g, *w.shape[1:])
    dx = np.zeros((n, c, *(s + 2 * p for s, p in zip(size, padding, strict=True))))
    for tap in np.ndindex(*w.shape[2:]):
        part = np.einsum("ngodhw,goc->ngcdhw", ctg, wg[(..., *tap)]).reshape(n, c, *ct.shape[2:])
        cells = tuple(
            slice(t * d, t * d + (m - 1) * s + 1, s)
            for t, d, m, s in zip(tap, dilation, ct.shape[2:], stride, strict=True)
        )
        dx[(slice(None), slice(None), *cells)] += part
    inner = tuple(slice(p, p + s) for s, p in zip(size, padding, strict=True))
    return np.ascontiguousarray(dx[(slice(None), slice(None), *inner)])


# ---- conv3d_grad_weight: adjoint of conv3d in w ------------------------------------------------
@_in_float64
def _grad_weight_ref(x, ct, stride, padding, dilation, groups, kernel):
    n, g = x.shape[0], groups
    win = _windows(_padded(x, padding), kernel, stride, dilation)
    win = win.reshape(n, g, x.shape[1] // g, *win.shape[2:])
    ctg = ct.reshape(n, g, ct.shape[1] // g, *ct.shape[2:])
    dw = np.einsum("ngcdhwijk,ngodhw->gocijk", win, ctg, optimize=True)
    return dw.reshape(ct.shape[1], x.shape[1] // g, *kernel)


conv3d, conv3d_grad_input, conv3d_grad_weight = conv_family(
    3,
    ("[N, C_in, D, H, W]", "[C_out, C_in/groups, kD, kH, kW]", "[N, C_out, D_out, H_out, W_out]"),
    (_conv3d_ref, _grad_input_ref, _grad_weight_ref),
    _lower_conv3d,
)
