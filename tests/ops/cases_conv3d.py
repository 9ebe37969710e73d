"""Registry cases for conv3d and its gradient ops (merged into tests/ops/test_registry.py's
table).

The NumPy formulas here are written independently of the ops' `ref`: one output position at a
time, from an explicitly padded copy, with `tensordot` per group (tests/ops/cases_spatial.py's
k-d convolution and transposed convolution, and the weight's gradient below).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import graphc as gc
from graphc.ops.conv3d import conv3d, conv3d_grad_input, conv3d_grad_weight
from tests.ops.cases_conv import F32, in_float64
from tests.ops.cases_spatial import np_conv, np_conv_transpose


def triple(v: Any) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else tuple(v)


class Geometry3:
    """Stride, padding, dilation and groups of one 3-d convolution."""

    def __init__(self, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1):
        self.s, self.p, self.d = triple(stride), triple(padding), triple(dilation)
        self.g = groups

    def kw(self) -> dict[str, Any]:
        return {"stride": self.s, "padding": self.p, "dilation": self.d, "groups": self.g}

    def out(self, size: tuple, k: tuple) -> tuple[int, ...]:
        return tuple(
            (n + 2 * p - d * (kk - 1) - 1) // s + 1
            for n, kk, s, p, d in zip(size, k, self.s, self.p, self.d, strict=True)
        )

    def output_padding(self, ct: tuple, k: tuple, size: tuple) -> tuple[int, ...]:
        """What a transposed convolution of `ct` adds to reach `size` (the input's)."""
        return tuple(
            n - ((m - 1) * s - 2 * p + d * (kk - 1) + 1)
            for n, m, kk, s, p, d in zip(size, ct, k, self.s, self.p, self.d, strict=True)
        )


def np_conv3d(x: np.ndarray, w: np.ndarray, geo: Geometry3) -> np.ndarray:
    return np_conv(x, w, geo.s, geo.p, geo.d, geo.g)


def np_conv3d_grad_input(ct: np.ndarray, w: np.ndarray, size: tuple, geo: Geometry3):
    op = geo.output_padding(ct.shape[2:], w.shape[2:], size)
    return np_conv_transpose(ct, w, geo.s, geo.p, op, geo.g, geo.d)


def np_conv3d_grad_weight(x: np.ndarray, ct: np.ndarray, k: tuple, geo: Geometry3) -> np.ndarray:
    """dw[o, c, taps] = sum over images and output positions of ct * the window's cells."""
    sides = list(zip(x.shape[2:], geo.p, strict=True))
    xp = np.zeros((*x.shape[:2], *(n + 2 * p for n, p in sides)))
    xp[(slice(None), slice(None), *(slice(p, p + n) for n, p in sides))] = x
    ci, co = x.shape[1] // geo.g, ct.shape[1] // geo.g
    dw = np.zeros((ct.shape[1], ci, *k))
    for pos in np.ndindex(*ct.shape[2:]):
        win = tuple(slice(o * s, o * s + d * (kk - 1) + 1, d)
                    for o, s, d, kk in zip(pos, geo.s, geo.d, k, strict=True))  # fmt: skip
        for g in range(geo.g):
            cells = xp[(slice(None), slice(g * ci, (g + 1) * ci), *win)]
            part = np.tensordot(ct[(slice(None), slice(g * co, (g + 1) * co), *pos)], cells,
                                axes=(0, 0))  # fmt: skip
            dw[g * co : (g + 1) * co] += part
    return dw


# (x shape, w shape, geometry, bind, label): every param alone and in combinations, non-cubic
# kernels and inputs, odd sizes, a symbolic batch (3, 1 and 0), float32 below.
CONV3 = [
    ((2, 2, 3, 4, 3), (3, 2, 2, 2, 2), Geometry3(), {}, ""),
    ((1, 2, 5, 4, 5), (2, 2, 2, 1, 3), Geometry3(stride=(2, 1, 2)), {}, "stride"),
    ((1, 2, 3, 3, 4), (2, 2, 3, 2, 2), Geometry3(padding=(1, 0, 1)), {}, "padding"),
    ((1, 1, 5, 3, 5), (2, 1, 2, 2, 2), Geometry3(dilation=(2, 1, 2)), {}, "dilation"),
    ((1, 4, 3, 3, 3), (4, 2, 2, 2, 1), Geometry3(groups=2), {}, "groups=2"),
    (("N", 3, 3, 4, 3), (2, 3, 1, 2, 2), Geometry3((1, 2, 1), (1, 1, 0), (1, 1, 2)),
     {"N": 3}, "s,p,d"),
    (("N", 4, 4, 3, 5), (4, 1, 2, 3, 2), Geometry3((2, 1, 2), (1, 1, 1), (1, 1, 1), 4),
     {"N": 1}, "depthwise"),
    (("N", 2, 3, 3, 3), (2, 2, 2, 2, 2), Geometry3(padding=1), {"N": 0}, "empty"),
]  # fmt: skip
CONV3_F32 = [
    ((2, 2, 3, 4, 3), (3, 2, 2, 2, 2), Geometry3(), {}, ""),
    (("N", 4, 3, 4, 5), (6, 2, 2, 2, 3), Geometry3((2, 1, 2), 1, (1, 2, 1), 2), {"N": 2},
     "s,p,d,g"),
]  # fmt: skip


def _conv3_cases(case: Callable[..., Any], table: list, dtypes: tuple = ()) -> list[Any]:
    out = []
    for xs, ws, geo, bind, label in table:
        k, kw, size = ws[2:], geo.kw(), xs[2:]
        cts = (xs[0], ws[0], *geo.out(size, k))
        common = {"bind": bind, "dtypes": dtypes * 2, "label": label}
        fwd = in_float64(lambda x, w, geo=geo: np_conv3d(x, w, geo))
        grad_x = in_float64(lambda ct, w, g=geo, s=size: np_conv3d_grad_input(ct, w, s, g))
        grad_w = in_float64(lambda x, ct, geo=geo, k=k: np_conv3d_grad_weight(x, ct, k, geo))
        out += [
            case("conv3d", lambda x, w, kw=kw: conv3d(x, w, **kw), fwd, xs, ws, **common),
            case("conv3d_grad_input",
                 lambda ct, w, kw=kw, size=size: conv3d_grad_input(ct, w, size, **kw),
                 grad_x, cts, ws, **common),
            case("conv3d_grad_weight", lambda x, ct, kw=kw, k=k: conv3d_grad_weight(x, ct, k, **kw),
                 grad_w, xs, cts, **common),
        ]  # fmt: skip
    return out


def cases(case: Callable[..., Any]) -> list[Any]:
    """The cases, made with test_registry's `case(op, build, numpy, *shapes, **kw)`."""
    out = _conv3_cases(case, CONV3) + _conv3_cases(case, CONV3_F32, F32)
    out += [
        # one value as both operands
        case("conv3d", lambda x: conv3d(x, x), lambda x: np_conv3d(x, x, Geometry3()),
             (2, 2, 2, 3, 2), label="conv(x,x)"),
        # the public conv3d and conv_transpose3d, with a bias
        case("conv3d", lambda x, w, b: gc.conv3d(x, w, b, padding=(0, 1, 1), stride=(1, 2, 1)),
             in_float64(lambda x, w, b: np_conv(x, w, (1, 2, 1), (0, 1, 1), (1, 1, 1), 1)
                        + b.reshape(-1, 1, 1, 1)),
             ("N", 2, 3, 4, 3), (3, 2, 2, 2, 2), (3,), bind={"N": 2}, composite=True,
             label="public,bias"),
        case("conv_transpose3d",
             lambda x, w, b: gc.conv_transpose3d(x, w, b, stride=(2, 1, 2), padding=(1, 0, 0),
                                                 output_padding=(1, 0, 1), groups=2,
                                                 dilation=(1, 2, 1)),
             in_float64(lambda x, w, b: np_conv_transpose(x, w, (2, 1, 2), (1, 0, 0), (1, 0, 1),
                                                          2, (1, 2, 1)) + b.reshape(-1, 1, 1, 1)),
             ("N", 4, 2, 3, 2), (4, 2, 2, 2, 2), (4,), bind={"N": 2}, composite=True,
             label="s,p,op,g,d,bias"),
        case("conv_transpose3d", lambda x, w: gc.conv_transpose3d(x, w),
             in_float64(lambda x, w: np_conv_transpose(x, w, (1,) * 3, (0,) * 3, (0,) * 3, 1,
                                                       (1,) * 3)),
             (1, 2, 2, 3, 2), (2, 3, 2, 2, 3), dtypes=F32 * 2, composite=True, label="f32"),
    ]  # fmt: skip
    return out


def _x(g: Any, shape: tuple = (1, 2, 4, 4, 4), dtype: str = "float64") -> Any:
    return g.param("x", shape=shape, dtype=dtype)


def _w(g: Any, shape: tuple = (3, 2, 2, 2, 2)) -> Any:
    return g.param("w", shape=shape)


# (id, make(graph)) pairs whose shapes or arguments the ops must reject with a ShapeError
ILLEGAL: list[tuple[str, Callable[[Any], Any]]] = [
    ("conv3d-4d", lambda g: conv3d(_x(g, (1, 2, 4, 4)), _w(g))),
    ("conv3d-w-4d", lambda g: conv3d(_x(g), _w(g, (3, 2, 2, 2)))),
    ("conv3d-symbolic-depth", lambda g: conv3d(_x(g, ("N", 2, "D", 4, 4)), _w(g))),
    ("conv3d-symbolic-w", lambda g: conv3d(_x(g), _w(g, (3, 2, "K", 2, 2)))),
    ("conv3d-channels", lambda g: conv3d(_x(g), _w(g, (3, 1, 2, 2, 2)))),
    ("conv3d-groups-out", lambda g: conv3d(_x(g), _w(g, (3, 1, 2, 2, 2)), groups=2)),
    ("conv3d-groups-0", lambda g: conv3d(_x(g), _w(g), groups=0)),
    ("conv3d-too-small", lambda g: conv3d(_x(g, (1, 2, 1, 4, 4)), _w(g))),
    ("conv3d-dilated-too-big", lambda g: conv3d(_x(g), _w(g), dilation=(1, 4, 1))),
    ("conv3d-stride-0", lambda g: conv3d(_x(g), _w(g), stride=(1, 0, 1))),
    ("conv3d-padding-negative", lambda g: conv3d(_x(g), _w(g), padding=-1)),
    ("conv3d-stride-pair", lambda g: conv3d(_x(g), _w(g), stride=(1, 1))),
    ("conv3d-stride-float", lambda g: conv3d(_x(g), _w(g), stride=1.5)),
    ("conv3d-bool", lambda g: conv3d(_x(g, dtype="bool"), _w(g))),
    ("conv3d_grad_input-size", lambda g: conv3d_grad_input(
        g.param("ct", shape=(1, 3, 3, 3, 3)), _w(g), (5, 4, 4))),
    ("conv3d_grad_input-channels", lambda g: conv3d_grad_input(
        g.param("ct", shape=(1, 2, 3, 3, 3)), _w(g), (4, 4, 4))),
    ("conv3d_grad_weight-batch", lambda g: conv3d_grad_weight(
        _x(g, ("N", 2, 4, 4, 4)), g.param("ct", shape=("M", 3, 3, 3, 3)), 2)),
    ("conv3d_grad_weight-outputs", lambda g: conv3d_grad_weight(
        _x(g), g.param("ct", shape=(1, 3, 3, 2, 3)), 2)),
    ("conv3d-public-bias", lambda g: gc.conv3d(_x(g), _w(g), g.param("b", shape=(2,)))),
    ("conv_transpose3d-output_padding", lambda g: gc.conv_transpose3d(
        _x(g), g.param("w", shape=(2, 3, 3, 3, 3)), stride=2, output_padding=(0, 2, 0))),
    ("conv_transpose3d-channels", lambda g: gc.conv_transpose3d(
        _x(g), g.param("w", shape=(3, 3, 3, 3, 3)))),
    ("conv_transpose3d-rank", lambda g: gc.conv_transpose3d(
        _x(g, (1, 2, 4, 4)), g.param("w", shape=(2, 3, 3, 3)))),
]  # fmt: skip
