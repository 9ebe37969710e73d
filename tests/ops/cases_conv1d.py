"""Registry cases for conv1d and its gradient ops (merged into tests/ops/test_registry.py's
table).

The NumPy formulas are those of tests/ops/cases_conv3d.py, which are written for any number of
spatial axes: one output position at a time, from an explicitly padded copy, with `tensordot`
per group; none of them is a conv2d or an op's `ref`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import graphc as gc
from graphc.ops.conv1d import conv1d, conv1d_grad_input, conv1d_grad_weight
from tests.ops.cases_conv import F32, in_float64
from tests.ops.cases_conv3d import (
    Geometry3,
    np_conv3d,
    np_conv3d_grad_input,
    np_conv3d_grad_weight,
)
from tests.ops.cases_spatial import np_conv_transpose


def single(v: Any) -> tuple[int]:
    return (v,) if isinstance(v, int) else tuple(v)


class Geometry1(Geometry3):
    """Stride, padding, dilation and groups of one 1-d convolution."""

    def __init__(self, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1):
        self.s, self.p, self.d = single(stride), single(padding), single(dilation)
        self.g = groups


# (x shape, w shape, geometry, bind, label): every param alone and in combinations, odd sizes,
# depthwise, a kernel as long as the padded input, a symbolic batch (3, 1 and 0), float32 below.
CONV1 = [
    ((2, 2, 7), (3, 2, 3), Geometry1(), {}, ""),
    ((1, 2, 9), (2, 2, 2), Geometry1(stride=3), {}, "stride"),
    ((1, 3, 4), (2, 3, 3), Geometry1(padding=2), {}, "padding"),
    ((1, 1, 9), (2, 1, 3), Geometry1(dilation=3), {}, "dilation"),
    ((2, 4, 6), (6, 2, 2), Geometry1(groups=2), {}, "groups=2"),
    (("N", 4, 10), (6, 2, 3), Geometry1(2, 1, 2, 2), {"N": 3}, "s,p,d,g"),
    (("N", 3, 8), (3, 1, 3), Geometry1(2, 1, 1, 3), {"N": 1}, "depthwise"),
    (("N", 2, 3), (2, 2, 5), Geometry1(padding=1), {"N": 0}, "empty,k=L+2p"),
]
CONV1_F32 = [
    ((2, 2, 7), (3, 2, 3), Geometry1(), {}, ""),
    (("N", 4, 11), (6, 2, 3), Geometry1(2, 1, 2, 2), {"N": 2}, "s,p,d,g"),
]


def _conv1_cases(case: Callable[..., Any], table: list, dtypes: tuple = ()) -> list[Any]:
    out = []
    for xs, ws, geo, bind, label in table:
        k, kw, size = ws[2:], geo.kw(), xs[2:]
        cts = (xs[0], ws[0], *geo.out(size, k))
        common = {"bind": bind, "dtypes": dtypes * 2, "label": label}
        fwd = in_float64(lambda x, w, geo=geo: np_conv3d(x, w, geo))
        grad_x = in_float64(lambda ct, w, g=geo, s=size: np_conv3d_grad_input(ct, w, s, g))
        grad_w = in_float64(lambda x, ct, geo=geo, k=k: np_conv3d_grad_weight(x, ct, k, geo))
        out += [
            case("conv1d", lambda x, w, kw=kw: conv1d(x, w, **kw), fwd, xs, ws, **common),
            case("conv1d_grad_input",
                 lambda ct, w, kw=kw, size=size: conv1d_grad_input(ct, w, size, **kw),
                 grad_x, cts, ws, **common),
            case("conv1d_grad_weight", lambda x, ct, kw=kw, k=k: conv1d_grad_weight(x, ct, k, **kw),
                 grad_w, xs, cts, **common),
        ]  # fmt: skip
    return out


def cases(case: Callable[..., Any]) -> list[Any]:
    """The cases, made with test_registry's `case(op, build, numpy, *shapes, **kw)`."""
    out = _conv1_cases(case, CONV1) + _conv1_cases(case, CONV1_F32, F32)
    out += [
        # one value as both operands; ints for the gradient ops' size and kernel
        case("conv1d", lambda x: conv1d(x, x), lambda x: np_conv3d(x, x, Geometry1()),
             (2, 2, 2), label="conv(x,x)"),
        case("conv1d_grad_input", lambda ct, w: conv1d_grad_input(ct, w, 6, stride=2),
             lambda ct, w: np_conv3d_grad_input(ct, w, (6,), Geometry1(stride=2)),
             (2, 3, 3), (3, 2, 2), label="int size"),
        case("conv1d_grad_weight", lambda x, ct: conv1d_grad_weight(x, ct, 2, padding=1),
             lambda x, ct: np_conv3d_grad_weight(x, ct, (2,), Geometry1(padding=1)),
             (2, 2, 5), (2, 3, 6), label="int kernel"),
        # the public conv_transpose1d with every option and a bias
        case("conv_transpose1d",
             lambda x, w, b: gc.conv_transpose1d(x, w, b, stride=3, padding=1, output_padding=2,
                                                 groups=2, dilation=2),
             in_float64(lambda x, w, b: np_conv_transpose(x, w, (3,), (1,), (2,), 2, (2,))
                        + b.reshape(-1, 1)),
             ("N", 4, 5), (4, 3, 3), (6,), bind={"N": 2}, composite=True, label="s,p,op,g,d,bias"),
    ]  # fmt: skip
    return out


def _x(g: Any, shape: tuple = (1, 2, 6)) -> Any:
    return g.param("x", shape=shape)


def _w(g: Any, shape: tuple = (3, 2, 2)) -> Any:
    return g.param("w", shape=shape)


# (id, make(graph)) pairs whose shapes or arguments the ops must reject with a ShapeError
ILLEGAL: list[tuple[str, Callable[[Any], Any]]] = [
    ("conv1d-4d", lambda g: conv1d(_x(g, (1, 2, 4, 4)), _w(g))),
    ("conv1d-w-4d", lambda g: conv1d(_x(g), _w(g, (3, 2, 2, 2)))),
    ("conv1d-symbolic-length", lambda g: conv1d(_x(g, ("N", 2, "L")), _w(g))),
    ("conv1d-channels", lambda g: conv1d(_x(g), _w(g, (3, 1, 2)))),
    ("conv1d-groups-0", lambda g: conv1d(_x(g), _w(g), groups=0)),
    ("conv1d-too-small", lambda g: conv1d(_x(g, (1, 2, 1)), _w(g))),
    ("conv1d-dilated-too-big", lambda g: conv1d(_x(g), _w(g), dilation=6)),
    ("conv1d-stride-0", lambda g: conv1d(_x(g), _w(g), stride=0)),
    ("conv1d-stride-pair", lambda g: conv1d(_x(g), _w(g), stride=(1, 1))),
    ("conv1d_grad_input-size", lambda g: conv1d_grad_input(
        g.param("ct", shape=(1, 3, 5)), _w(g), 7)),
    ("conv1d_grad_weight-batch", lambda g: conv1d_grad_weight(
        _x(g, ("N", 2, 6)), g.param("ct", shape=("M", 3, 5)), 2)),
    ("conv_transpose1d-output_padding", lambda g: gc.conv_transpose1d(
        _x(g), g.param("w", shape=(2, 3, 3)), stride=2, output_padding=2)),
]  # fmt: skip
