"""1-D convolution over NCL values, with the gradient ops it needs, as conv3d's (ops/conv3d.py)
with one spatial axis; the public conv1d with bias and conv_transpose1d are in ops/conv_nd.py.

Layouts as PyTorch's: x is [N, C, L], a weight [C_out, C_in/groups, k]; convolution is
cross-correlation with zero padding, and the output's length is
`(L + 2 padding - dilation (k - 1) - 1) // stride + 1`. The batch N may be a symbol; every
other dim is an int. Geometry params are 1-tuples; the builders also take an int.

The gradient ops are ops of their own, each with its VJP written with these same ops, so the
set is closed under differentiation and `grad(grad(g))` works:
  conv1d(x, w)               -> dx: conv1d_grad_input(ct, w), dw: conv1d_grad_weight(x, ct)
  conv1d_grad_input(ct, w)   -> dct: conv1d(c, w),      dw: conv1d_grad_weight(c, ct)
  conv1d_grad_weight(x, ct)  -> dx: conv1d_grad_input(ct, c), dct: conv1d(x, c)
"""

from __future__ import annotations

from graphc.codegen.emit import Emit
from graphc.codegen.kir import SizeExpr
from graphc.ops import conv as conv2d_ops
from graphc.ops.conv import conv_family, tiling

# ---- lowering: conv2d's runtime kernels on an image one row high (templates/runtime/conv.pyx.j2)
# Each op runs the kernel of its conv2d twin, chosen by the same rule (`tiling`): direct loops
# along the row, shared among the module's threads by images (or blocks of output channels),
# or im2col tiles and BLAS; so the results are those of the conv2d of height 1 these ops
# replace, bit for bit. Measured against conv3d's kernels with a depth and height of 1 (float32,
# batch 8, one thread, interleaved; milliseconds, forward / value_and_grad, conv2d's / conv3d's):
#   64->64, k 3, L 512, padding 1 (BLAS)     2.29 / 6.17  against  7.14 / 10.3
#   16->32, k 5, L 1024, padding 2 (BLAS)    1.21 / 3.34  against  1.15 / 2.79
#   4->8, k 3, L 4096, padding 1 (direct)    0.63 / 2.95  against  0.61 / 2.91
# conv3d's are a little faster on the narrower layers and three times slower on the wide one.
WHICH = {"conv1d": 0, "conv1d_grad_input": 1, "conv1d_grad_weight": 2}  # conv2d_tiled's


def _lower_conv1d(e: Emit, n: int, args: list[int], params: dict) -> None:
    """The kernel of conv1d or a gradient of it: conv2d's, with a height of 1."""
    op = e.values.G.nodes[n]["op"]
    shape = e.values.shape
    a, b = args
    x, w, y = {  # the shapes of the convolution's x, weight and output
        "conv1d": (shape(a), shape(b), shape(n)),
        "conv1d_grad_input": (shape(n), shape(b), shape(a)),
        "conv1d_grad_weight": (shape(a), shape(n), shape(b)),
    }[op]
    g = params["groups"]
    (s,), (p,), (d,) = params["stride"], params["padding"], params["dilation"]
    geometry = [x[0], g, w[1], w[0] // g, 1, x[2], 1, w[2], 1, y[2], 1, s, 0, p, 1, d]
    tiles = tiling(w, y, g)
    name = op.replace("conv1d", "conv2d")
    if tiles is None:  # direct loops: one multiply-add per output and tap
        work = SizeExpr.of([*y, *w[1:]])
        e.runtime(f"{name}_{e.suffix}", [a, b, n], geometry, work=work, alone=False)
    else:  # im2col tiles and BLAS
        e.runtime(f"conv2d_tiled_{e.suffix}", [a, b, n], [WHICH[op], *geometry, *tiles], work=None)


# ---- references: conv2d's on an image one row high ----------------------------------------------
def _rows(a):
    return a[:, :, None, :]


def _as2d(p: dict) -> dict:
    return {
        "stride": (1, *p["stride"]),
        "padding": (0, *p["padding"]),
        "dilation": (1, *p["dilation"]),
        "groups": p["groups"],
    }


def _conv1d_ref(x, w, **p):
    return conv2d_ops._conv2d_ref(_rows(x), _rows(w), **_as2d(p))[:, :, 0]


def _grad_input_ref(ct, w, size, **p):
    return conv2d_ops._grad_input_ref(_rows(ct), _rows(w), size=(1, *size), **_as2d(p))[:, :, 0]


def _grad_weight_ref(x, ct, kernel, **p):
    return conv2d_ops._grad_weight_ref(_rows(x), _rows(ct), kernel=(1, *kernel), **_as2d(p))[
        :, :, 0
    ]


conv1d, conv1d_grad_input, conv1d_grad_weight = conv_family(
    1,
    ("[N, C_in, L]", "[C_out, C_in/groups, k]", "[N, C_out, L_out]"),
    (_conv1d_ref, _grad_input_ref, _grad_weight_ref),
    _lower_conv1d,
)
