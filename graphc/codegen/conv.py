"""Convolution and pooling: conv2d, its gradients, max and average pooling.

Each op is one call of a helper of templates/kernels/conv.pyx.j2 or pool.pyx.j2, with its
geometry as literals and the batch as a symbol's variable. A convolution (or either of its
gradients) runs one of two kernels, chosen per layer from its geometry: direct loops along
output rows, or im2col of tiles of output positions (on the stack) multiplied by BLAS, whose
inner dimension is the layer's taps per group, C_in/groups * kH * kW (`tiling`). Measured on
this kind of machine (float32, batch 32, one thread; microseconds, direct / BLAS):

  layer (C_in->C_out kernel, input)   taps  out/group  forward      grad_input   grad_weight
  1->8 3x3, 28x28                        9      8       221 / 316    607 / 369    315 / 417
  8->8 1x1, 28x28                        8      8       214 / 264    169 / 287    277 / 217
  1->8 5x5, 28x28 pad 2                 25      8       585 / 987   1054 / 1022   914 / 774
  4->16 3x3, 28x28 pad 1                36     16      1905 / 1311  2552 / 1986  1932 / 1439
  16->32 3x3, 28x28 pad 1              144     32     14161 / 6585 12838 / 7981 15075 / 10340
  32->8 3x3, 14x14 pad 1               288      8      2780 / 6244  2717 / 3080  4583 / 3204
  64->16 3x3, 14x14 pad 1, groups 4    144      4      4394 / 5755  3697 / 5644  3304 / 10643
  64->64 3x3, 14x14 pad 1, groups 4    144     16     16674 / 7015 19273 / 8639 23349 / 13416
  32->32 3x3, 28x28 pad 1, depthwise     9      1      1804 / 6207  3084 / 8025  3910 / 8486

BLAS wins once a group has both many taps and many outputs (its products are then neither
thin nor short): from GEMM_MIN_TAPS taps and GEMM_MIN_OUT outputs per group on. The direct
kernels and pooling share large work among the module's threads (by images, blocks of output
channels, planes), each result computed by one thread: the same bits for any number.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from graphc.codegen import cexpr
from graphc.codegen.kernels import Values
from graphc.codegen.records import Statement

TILE = 8192  # elements of the im2col tile, on the stack (_CONV_TILE in conv.pyx.j2)
GEMM_MIN_TAPS, GEMM_MIN_OUT = 32, 16  # im2col + BLAS from here on (see above)
INT32_MAX = 2**31 - 1  # BLAS may take 32-bit sizes


def _call(fn: str, v: Values, n: int, pointers: list[str], sizes: list[str]) -> list[Statement]:
    args = ", ".join([*pointers, *sizes])
    return [Statement("", (), (f"_{fn}_{cexpr.SUFFIX[v.dtype(n)]}({args})",))]


def _conv_geometry(x_shape: tuple, w_shape: tuple, y_shape: tuple, params: dict) -> list[str]:
    """n, groups, cig, cog, h, w, kh, kw, ho, wo, sh, sw, ph, pw, dh, dw (see conv.pyx.j2)."""
    g = params["groups"]
    ints = [g, w_shape[1], w_shape[0] // g, *x_shape[2:], *w_shape[2:], *y_shape[2:]]
    ints += [*params["stride"], *params["padding"], *params["dilation"]]
    return [cexpr.dim(x_shape[0]), *map(str, ints)]


def tiling(w_shape: tuple, y_shape: tuple, groups: int) -> tuple[int, int] | None:
    """(positions per tile, input channels per tile) of the im2col + BLAS kernel for a layer
    with weight `w_shape` and output `y_shape`, or None for direct loops: these win while a
    group has fewer than GEMM_MIN_TAPS taps or GEMM_MIN_OUT output channels."""
    cig, (kh, kw), cog = w_shape[1], w_shape[2:], w_shape[0] // groups
    taps, positions = cig * kh * kw, y_shape[2] * y_shape[3]
    if taps < GEMM_MIN_TAPS or cog < GEMM_MIN_OUT or kh * kw * 16 > TILE:
        return None
    if max(cog, taps, positions) > INT32_MAX:
        return None
    tile = max(16, TILE // taps)
    return tile, min(cig, TILE // (kh * kw * tile))


def _conv(fn: str, which: int, v: Values, n: int, a: int, b: int, geometry: list[str], w_shape,
          y_shape, groups: int) -> list[Statement]:  # fmt: skip
    tiles = tiling(w_shape, y_shape, groups)
    if tiles is None:
        return _call(fn, v, n, [v.ptr(a), v.ptr(b), v.ptr(n)], geometry)
    pointers = [str(which), v.ptr(a), v.ptr(b), v.ptr(n)]
    return _call("conv2d_tiled", v, n, pointers, [*geometry, *map(str, tiles)])


def _conv2d(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    x, w = args
    geometry = _conv_geometry(v.shape(x), v.shape(w), v.shape(n), params)
    return _conv("conv2d", 0, v, n, x, w, geometry, v.shape(w), v.shape(n), params["groups"])


def _conv2d_grad_input(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    ct, w = args
    geometry = _conv_geometry(v.shape(n), v.shape(w), v.shape(ct), params)
    g = params["groups"]
    return _conv("conv2d_grad_input", 1, v, n, ct, w, geometry, v.shape(w), v.shape(ct), g)


def _conv2d_grad_weight(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    x, ct = args
    geometry = _conv_geometry(v.shape(x), v.shape(n), v.shape(ct), params)
    g = params["groups"]
    return _conv("conv2d_grad_weight", 2, v, n, x, ct, geometry, v.shape(n), v.shape(ct), g)


def _pool_geometry(x_shape: tuple, y_shape: tuple, params: dict) -> list[str]:
    """nc, h, w, kh, kw, ho, wo, sh, sw, ph, pw (see pool.pyx.j2)."""
    stride = params["stride"] or params["kernel"]
    ints = [*x_shape[2:], *params["kernel"], *y_shape[2:], *stride, *params["padding"]]
    return [cexpr.size(x_shape[:2]), *map(str, ints)]


def _pool(fn: str, v: Values, n: int, x: int | None, a: int | None, x_shape, y_shape, params):
    """_pool2d running plane kernel `fn` (see pool.pyx.j2) over every plane."""
    geometry = _pool_geometry(x_shape, y_shape, params)
    plane = f"_{fn}_{cexpr.SUFFIX[v.dtype(n)]}"
    pointers = [plane, *("NULL" if u is None else v.ptr(u) for u in (x, a)), v.ptr(n)]
    return _call("pool2d", v, n, pointers, geometry)


def _max_pool2d(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    (x,) = args
    return _pool("max_pool2d", v, n, x, None, v.shape(x), v.shape(n), params)


def _max_pool2d_grad(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    ct, x = args
    return _pool("max_pool2d_scatter", v, n, x, ct, v.shape(x), v.shape(ct), params)


def _max_pool2d_gather(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    a, x = args
    return _pool("max_pool2d_gather", v, n, x, a, v.shape(x), v.shape(n), params)


def _avg_pool2d(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    (x,) = args
    return _pool("avg_pool2d", v, n, x, None, v.shape(x), v.shape(n), params)


def _avg_pool2d_grad(v: Values, n: int, args: list[int], params: dict) -> list[Statement]:
    (ct,) = args
    return _pool("avg_pool2d_grad", v, n, None, ct, v.shape(n), v.shape(ct), params)


LOWER: dict[str, Callable[..., list[Statement]]] = {
    "conv2d": _conv2d,
    "conv2d_grad_input": _conv2d_grad_input,
    "conv2d_grad_weight": _conv2d_grad_weight,
    "max_pool2d": _max_pool2d,
    "max_pool2d_grad": _max_pool2d_grad,
    "max_pool2d_gather": _max_pool2d_gather,
    "avg_pool2d": _avg_pool2d,
    "avg_pool2d_grad": _avg_pool2d_grad,
}


def _conv_work(w: int, y: int):
    """Work of a conv step whose weight-shaped value is args[w] (-1: the result) and whose
    output-shaped one is args[y] (see `WORK`)."""

    def work(v: Values, n: int, args: list[int], params: dict) -> str | None:
        ws, ys = v.shape(n if w < 0 else args[w]), v.shape(n if y < 0 else args[y])
        if tiling(ws, ys, params["groups"]) is not None:
            return None  # im2col tiles and BLAS, which shares the products among its threads
        return f"{cexpr.size(ys)}*{math.prod(ws[1:])}"  # one multiply-add per tap

    return work


def _pool_work(y: int):
    """Work of a pool step whose pooled-shaped value is args[y] (-1: the result): a window's
    cell costs about four multiply-adds (as in pool.pyx.j2's threshold)."""

    def work(v: Values, n: int, args: list[int], params: dict) -> str:
        return f"{cexpr.size(v.shape(n if y < 0 else args[y]))}*{4 * math.prod(params['kernel'])}"

    return work


# Multiply-adds of a step, as a C expression (see lower._pair_independent).
WORK: dict[str, Callable[..., str | None]] = {
    "conv2d": _conv_work(1, -1),
    "conv2d_grad_input": _conv_work(1, 0),
    "conv2d_grad_weight": _conv_work(-1, 1),
    "max_pool2d": _pool_work(-1),
    "max_pool2d_grad": _pool_work(0),
    "max_pool2d_gather": _pool_work(-1),
    "avg_pool2d": _pool_work(-1),
    "avg_pool2d_grad": _pool_work(0),
}
KERNEL_TEMPLATE: dict[str, str] = {
    **dict.fromkeys(("conv2d", "conv2d_grad_input", "conv2d_grad_weight"), "conv"),
    **dict.fromkeys(("max_pool2d", "max_pool2d_grad", "max_pool2d_gather", "avg_pool2d"), "pool"),
    "avg_pool2d_grad": "pool",
}
