"""Compiled-versus-interpreter models for padding (every mode), the public convolutions
(conv1d, conv3d, the transposed ones), pooling with PyTorch's options (dilation,
ceil_mode, count_include_pad, return_indices and max_unpool, adaptive averages, 1-D and 3-D;
the pooling ops' own cases: tests/codegen/cases_pool.py) and interpolate (its resampling ops;
merged into cases.MODELS). The batch N may be 0 in all of them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import graphc as gc
from graphc.ops._build import apply
from tests.codegen.cases import NAN, In, Model, fixed
from tests.domains import distinct

INF = np.inf
# A plane of NaN, infinities and ties for the windows of max pooling with options.
SPECIAL = fixed([[[NAN, 1, 2, NAN, 0], [0, NAN, 2, 2, 1], [-INF, -INF, 5, 2, 5],
                  [-INF, -INF, -INF, 1, 1]]])  # fmt: skip
MODES = ("constant", "reflect", "replicate", "circular", "symmetric")


def add_pad(m: Model) -> None:
    for k, mode in enumerate(MODES):
        value = {"value": -1.5} if mode == "constant" else {}
        m.case(f"pad[{mode};N,2,4,5]", "pad",
               lambda x, mode=mode, v=value: gc.pad(x, (1, 2, 3, 0), mode=mode, **v),
               In(("N", 2, 4, 5)))  # fmt: skip
        # widths past the axis: mirrored again and again, wrapped around
        m.case(f"pad[{mode};wide]", "pad",
               lambda x, mode=mode: gc.pad(x, ((0, 0), (5, 7)), mode=mode),
               In(("N", 3)))  # fmt: skip
        m.case(f"pad_grad[{mode}]", "pad_grad",
               lambda ct, mode=mode, k=k: apply("pad_grad", ct, widths=((0, 0), (2, 3), (4, 1)),
                                                mode=mode, value=0.0, shape=("N", 3, 2)),
               In(("N", 8, 7)))  # fmt: skip
    m.case("pad[crop]", "pad", lambda x: gc.pad(x, (-1, 2, 1, -2)), In(("N", 4, 5)))
    m.case("pad[1]", "pad", lambda x: gc.pad(x, ((0, 0), (1, 0)), mode="reflect"), In(("N", 1)),
           numpy=lambda x: np.pad(x, ((0, 0), (1, 0)), mode="reflect"))  # fmt: skip


# the op each public convolution is made of
OPS = {"conv1d": "conv1d", "conv3d": "conv3d", "conv_transpose1d": "conv1d_grad_input",
       "conv_transpose2d": "conv2d_grad_input"}  # fmt: skip


def add_conv(m: Model) -> None:
    for label, fn, ins in [
        ("conv1d[s,p,d,g]", lambda x, w, b: gc.conv1d(x, w, b, stride=2, padding=1, dilation=2,
                                                      groups=2),
         (In(("N", 4, 9)), In((6, 2, 3)), In((6,)))),
        ("conv3d", lambda x, w: gc.conv3d(x, w), (In(("N", 2, 4, 4, 3)), In((3, 2, 2, 3, 2)))),
        ("conv3d[s,p,d,g]", lambda x, w, b: gc.conv3d(x, w, b, stride=(2, 1, 2),
                                                      padding=(1, 0, 1), dilation=(2, 1, 1),
                                                      groups=2),
         (In(("N", 4, 5, 4, 5)), In((6, 2, 2, 3, 2)), In((6,)))),
        ("conv_transpose2d", lambda x, w: gc.conv_transpose2d(x, w),
         (In(("N", 3, 4, 3)), In((3, 2, 3, 2)))),
        ("conv_transpose2d[s,p,op,g,d]", lambda x, w, b: gc.conv_transpose2d(
            x, w, b, stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2,
            dilation=(1, 2)), (In(("N", 4, 4, 5)), In((4, 3, 3, 2)), In((6,)))),
        ("conv_transpose1d[s,p,op]", lambda x, w: gc.conv_transpose1d(
            x, w, stride=2, padding=1, output_padding=1), (In(("N", 4, 5)), In((4, 3, 3)))),
    ]:  # fmt: skip
        m.case(label, OPS[label.split("[")[0]], fn, *ins)


def add_pool(m: Model) -> None:
    x2, x1, x3 = In(("N", 2, 7, 8), distinct), In(("N", 3, 9), distinct), In(("N", 2, 5, 6, 5))
    for label, op, fn, ins in [
        ("max_pool2d[d,ceil]", "pool_argmax",
         lambda x: gc.max_pool2d(x, 3, stride=2, padding=1, dilation=2, ceil_mode=True), (x2,)),
        ("max_pool2d[ceil]", "pool_argmax", lambda x: gc.max_pool2d(x, 2, ceil_mode=True), (x2,)),
        ("max_pool1d", "pool_argmax",
         lambda x: gc.max_pool1d(x, 3, stride=2, padding=1, ceil_mode=True), (x1,)),
        ("max_pool3d", "pool_argmax", lambda x: gc.max_pool3d(x, 2, stride=(2, 1, 2), padding=1),
         (In(("N", 2, 5, 6, 5), distinct),)),
        ("max_unpool2d", "max_unpool",
         lambda x: gc.max_unpool2d(*gc.max_pool2d(x, 2, return_indices=True), 2), (x2,)),
        ("max_unpool1d[size]", "max_unpool",
         lambda x: gc.max_unpool1d(*gc.max_pool1d(x, 2, return_indices=True), 2,
                                   output_size=(9,)), (x1,)),
        ("avg_pool2d[ceil,no pad]", "avg_pool",
         lambda x: gc.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True,
                                 count_include_pad=False), (x2,)),
        ("avg_pool2d[ceil]", "avg_pool",
         lambda x: gc.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True), (x2,)),
        ("avg_pool2d[divisor]", "avg_pool", lambda x: gc.avg_pool2d(x, 2, divisor_override=3),
         (x2,)),
        ("avg_pool1d", "avg_pool",
         lambda x: gc.avg_pool1d(x, 3, stride=2, padding=1, count_include_pad=False), (x1,)),
        ("avg_pool3d", "avg_pool",
         lambda x: gc.avg_pool3d(x, 2, stride=(2, 1, 2), padding=1, ceil_mode=True), (x3,)),
        ("adaptive_avg_pool2d", "adaptive_avg_pool", lambda x: gc.adaptive_avg_pool2d(x, (3, 5)),
         (x2,)),
        ("adaptive_avg_pool3d", "adaptive_avg_pool",
         lambda x: gc.adaptive_avg_pool3d(x, (2, None, 4)), (x3,)),
    ]:  # fmt: skip
        m.case(label, op, fn, *ins)
    m.case(
        "max_pool2d[indices]",
        "pool_argmax",
        lambda x: gc.max_pool2d(
            x, 3, stride=2, padding=1, dilation=2, ceil_mode=True, return_indices=True
        )[1],
        In(("N", 2, 7, 8), distinct, False),
    )
    m.case("max_pool2d[special]", "pool_argmax",
           lambda x: gc.max_pool2d(x, 2, stride=1, padding=1, return_indices=True)[1],
           In((1, 1, 4, 5), SPECIAL, grad=False))  # fmt: skip


def add_interpolate(m: Model) -> None:
    x2 = In(("N", 2, 5, 7))
    nearest, linear = "interpolate_nearest", "interpolate_linear"
    for label, op, fn, ins in [
        ("nearest", nearest, lambda x: gc.interpolate(x, size=(8, 4)), (x2,)),
        ("nearest-exact", nearest, lambda x: gc.interpolate(x, scale_factor=(2.3, 0.6),
                                                            mode="nearest-exact"), (x2,)),
        ("nearest[3d]", nearest, lambda x: gc.interpolate(x, size=(4, 4, 3)),
         (In(("N", 2, 3, 4, 5)),)),
        ("bilinear", linear, lambda x: gc.interpolate(x, size=(8, 4), mode="bilinear"), (x2,)),
        ("bilinear[align]", linear, lambda x: gc.interpolate(x, size=(3, 9), mode="bilinear",
                                                             align_corners=True), (x2,)),
        ("bilinear[kept]", linear, lambda x: gc.interpolate(x, scale_factor=(1.1, 1.5),
                                                            mode="bilinear"), (x2,)),
        ("linear[scale]", linear, lambda x: gc.interpolate(x, scale_factor=1.7, mode="linear"),
         (In(("N", 3, 5)),)),
        ("trilinear[align]", linear, lambda x: gc.interpolate(x, size=(4, 2, 5), mode="trilinear",
                                                              align_corners=True),
         (In(("N", 2, 3, 4, 5)),)),
        ("trilinear", linear, lambda x: gc.interpolate(x, size=(5, 7, 3), mode="trilinear"),
         (In(("N", 2, 3, 4, 5)),)),
        ("area", "matmul", lambda x: gc.interpolate(x, size=(2, 3), mode="area"), (x2,)),
    ]:  # fmt: skip
        m.case(f"interpolate[{label}]", op, fn, *ins)
    # the gradient ops on a cotangent of their own
    for op, flag in ((nearest, {"exact": True}), (linear, {"align_corners": False})):
        p = {"size": (8, 4), "scales": (None, None), "input_size": (5, 7), **flag}
        m.case(f"{op}_grad", f"{op}_grad", lambda ct, op=op, p=p: apply(f"{op}_grad", ct, **p),
               In(("N", 2, 8, 4)))  # fmt: skip


def spatial_model(name: str) -> Model:
    m = Model(name)
    add_pad(m)
    add_conv(m)
    add_pool(m)
    add_interpolate(m)
    return m.finish()


MODELS: dict[str, tuple[Callable[[str], Model], tuple[str, ...]]] = {
    "spatial": (spatial_model, ("float64", "float32")),
}
