"""Registry cases for conv2d, its gradient ops and pooling
(merged into tests/ops/test_registry.py's table).

The NumPy formulas here are written independently of the ops' `ref`: one output position at a
time, from explicitly padded copies, with `tensordot` per group (convolutions) and a scan of
each window cell by cell (max pooling's argmax).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import graphc as gc
from graphc.ops.conv import conv2d_grad_input, conv2d_grad_weight
from graphc.ops.pool import avg_pool2d_grad, max_pool2d_gather, max_pool2d_grad
from tests.domains import distinct, normal, small_ints


def pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def padded(x: np.ndarray, ph: int, pw: int, fill: float = 0.0) -> np.ndarray:
    n, c, h, w = x.shape
    out = np.full((n, c, h + 2 * ph, w + 2 * pw), fill, x.dtype)
    out[:, :, ph : ph + h, pw : pw + w] = x
    return out


def out_side(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


class Geometry:
    """Stride, padding, dilation and groups of one convolution, and its windows."""

    def __init__(self, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1):
        self.s, self.p, self.d, self.g = pair(stride), pair(padding), pair(dilation), groups

    def kw(self) -> dict[str, Any]:
        return {"stride": self.s, "padding": self.p, "dilation": self.d, "groups": self.g}

    def out_hw(self, hw: tuple, k: tuple) -> tuple[int, int]:
        return tuple(out_side(hw[a], k[a], self.s[a], self.p[a], self.d[a]) for a in (0, 1))

    def window(self, oh: int, ow: int, k: tuple) -> tuple[slice, slice]:
        """The cells of padded input that output (oh, ow) reads, tap by tap."""
        r, c = oh * self.s[0], ow * self.s[1]
        return (
            slice(r, r + self.d[0] * (k[0] - 1) + 1, self.d[0]),
            slice(c, c + self.d[1] * (k[1] - 1) + 1, self.d[1]),
        )

    def groups(self, c_in: int, c_out: int) -> list[tuple[slice, slice]]:
        """(input channels, output channels) of each group."""
        ci, co = c_in // self.g, c_out // self.g
        return [(slice(g * ci, (g + 1) * ci), slice(g * co, (g + 1) * co)) for g in range(self.g)]


def np_conv2d(x: np.ndarray, w: np.ndarray, geo: Geometry) -> np.ndarray:
    k = w.shape[2:]
    ho, wo = geo.out_hw(x.shape[2:], k)
    xp = padded(x, *geo.p)
    out = np.zeros((x.shape[0], w.shape[0], ho, wo), np.result_type(x, w))
    for oh in range(ho):
        for ow in range(wo):
            rows, cols = geo.window(oh, ow, k)
            for ci, co in geo.groups(x.shape[1], w.shape[0]):
                patch = xp[:, ci, rows, cols]
                out[:, co, oh, ow] = np.tensordot(patch, w[co], axes=([1, 2, 3], [1, 2, 3]))
    return out


def np_conv2d_grad_input(ct: np.ndarray, w: np.ndarray, size: tuple, geo: Geometry) -> np.ndarray:
    k = w.shape[2:]
    n, c = ct.shape[0], w.shape[1] * geo.g
    dxp = padded(np.zeros((n, c, *size), np.result_type(ct, w)), *geo.p)
    for oh in range(ct.shape[2]):
        for ow in range(ct.shape[3]):
            rows, cols = geo.window(oh, ow, k)
            for ci, co in geo.groups(c, w.shape[0]):
                dxp[:, ci, rows, cols] += np.tensordot(ct[:, co, oh, ow], w[co], axes=(1, 0))
    ph, pw = geo.p
    return dxp[:, :, ph : ph + size[0], pw : pw + size[1]]


def np_conv2d_grad_weight(x: np.ndarray, ct: np.ndarray, k: tuple, geo: Geometry) -> np.ndarray:
    xp = padded(x, *geo.p)
    dw = np.zeros((ct.shape[1], x.shape[1] // geo.g, *k), np.result_type(x, ct))
    for oh in range(ct.shape[2]):
        for ow in range(ct.shape[3]):
            rows, cols = geo.window(oh, ow, k)
            for ci, co in geo.groups(x.shape[1], ct.shape[1]):
                dw[co] += np.tensordot(ct[:, co, oh, ow], xp[:, ci, rows, cols], axes=(0, 0))
    return dw


def pool_out(x_hw: tuple, k: tuple, s: tuple, p: tuple) -> tuple[int, int]:
    return tuple(out_side(x_hw[a], k[a], s[a], p[a]) for a in (0, 1))


def np_max_pool(x: np.ndarray, k: tuple, s: tuple, p: tuple) -> np.ndarray:
    ho, wo = pool_out(x.shape[2:], k, s, p)
    xp = padded(x, *p, fill=-np.inf)
    out = np.empty((*x.shape[:2], ho, wo), x.dtype)
    for oh in range(ho):
        for ow in range(wo):
            win = xp[:, :, oh * s[0] : oh * s[0] + k[0], ow * s[1] : ow * s[1] + k[1]]
            out[:, :, oh, ow] = np.max(win, axis=(2, 3))
    return out


def first_max(x: np.ndarray, n: int, c: int, oh: int, ow: int, k, s, p) -> tuple[int, int]:
    """The cell of x holding window (oh, ow)'s first maximum in row-major order: the last
    NaN if there is one, else the first cell with the largest value (cells of x only)."""
    best = None
    for r in range(oh * s[0] - p[0], oh * s[0] - p[0] + k[0]):
        for col in range(ow * s[1] - p[1], ow * s[1] - p[1] + k[1]):
            if not (0 <= r < x.shape[2] and 0 <= col < x.shape[3]):
                continue
            v = x[n, c, r, col]
            if best is None or math.isnan(v) or (not math.isnan(best[0]) and v > best[0]):
                best = (v, r, col)
    assert best is not None
    return best[1], best[2]


def np_max_pool_grad(ct: np.ndarray, x: np.ndarray, k: tuple, s: tuple, p: tuple) -> np.ndarray:
    dx = np.zeros(x.shape, np.result_type(ct, x))
    for n, c, oh, ow in np.ndindex(*ct.shape):
        dx[(n, c, *first_max(x, n, c, oh, ow, k, s, p))] += ct[n, c, oh, ow]
    return dx


def np_max_pool_gather(v: np.ndarray, x: np.ndarray, k: tuple, s: tuple, p: tuple) -> np.ndarray:
    out = np.zeros((*x.shape[:2], *pool_out(x.shape[2:], k, s, p)), np.result_type(v, x))
    for n, c, oh, ow in np.ndindex(*out.shape):
        out[n, c, oh, ow] = v[(n, c, *first_max(x, n, c, oh, ow, k, s, p))]
    return out


def np_avg_pool(x: np.ndarray, k: tuple, s: tuple, p: tuple) -> np.ndarray:
    ho, wo = pool_out(x.shape[2:], k, s, p)
    xp = padded(x, *p)
    out = np.empty((*x.shape[:2], ho, wo), x.dtype)
    for oh in range(ho):
        for ow in range(wo):
            win = xp[:, :, oh * s[0] : oh * s[0] + k[0], ow * s[1] : ow * s[1] + k[1]]
            out[:, :, oh, ow] = win.mean(axis=(2, 3))
    return out


def np_avg_pool_grad(ct: np.ndarray, size: tuple, k: tuple, s: tuple, p: tuple) -> np.ndarray:
    dxp = padded(np.zeros((*ct.shape[:2], *size), ct.dtype), *p)
    for oh in range(ct.shape[2]):
        for ow in range(ct.shape[3]):
            win = (slice(None), slice(None), slice(oh * s[0], oh * s[0] + k[0]),
                   slice(ow * s[1], ow * s[1] + k[1]))  # fmt: skip
            dxp[win] += ct[:, :, oh, ow][:, :, None, None] / (k[0] * k[1])
    return dxp[:, :, p[0] : p[0] + size[0], p[1] : p[1] + size[1]]


F32 = ("float32",)


def in_float64(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """`fn` over float64 copies of its arrays, rounded to their dtype at the end."""

    def run(*arrays: np.ndarray) -> np.ndarray:
        out = fn(*(np.asarray(a, np.float64) for a in arrays))
        return out.astype(np.result_type(*arrays))

    return run


# (x shape, w shape, geometry, bind, label): every param alone and in combinations,
# non-square kernels and inputs, a symbolic batch (also 0), float32 below.
CONV = [
    ((2, 3, 5, 5), (4, 3, 3, 3), Geometry(), {}, ""),
    ((2, 3, 6, 7), (4, 3, 2, 3), Geometry(stride=2), {}, "stride=2"),
    ((2, 2, 5, 6), (3, 2, 3, 3), Geometry(padding=1), {}, "padding=1"),
    ((1, 2, 7, 7), (2, 2, 3, 2), Geometry(dilation=2), {}, "dilation=2"),
    ((2, 4, 5, 5), (6, 2, 3, 3), Geometry(groups=2), {}, "groups=2"),
    ((1, 2, 8, 8), (2, 2, 2, 2), Geometry(stride=3, padding=1), {}, "stride=3,padding=1"),
    ((1, 1, 4, 3), (1, 1, 4, 3), Geometry(), {}, "whole-input"),
    (("N", 3, 6, 5), (4, 3, 3, 2), Geometry((2, 1), (1, 2), (1, 2)), {"N": 2}, "s,p,d"),
    (("N", 4, 7, 6), (4, 1, 3, 3), Geometry(padding=1, groups=4), {"N": 0}, "depthwise"),
    (("N", 6, 8, 7), (4, 3, 2, 3), Geometry((1, 2), (0, 1), (2, 1), 2), {"N": 1}, "s,p,d,g"),
    (("N", 2, 5, 5), (3, 2, 1, 1), Geometry(stride=2), {"N": 3}, "1x1,stride=2"),
]
CONV_F32 = [
    ((2, 3, 5, 5), (4, 3, 3, 3), Geometry(), {}, ""),
    (("N", 4, 7, 6), (6, 2, 3, 2), Geometry((2, 1), 1, (1, 2), 2), {"N": 2}, "s,p,d,g"),
]

# (x shape, kernel, stride, padding, bind, label)
POOL = [
    ((2, 3, 6, 6), (2, 2), (2, 2), (0, 0), {}, "2x2"),
    ((2, 2, 7, 6), (3, 2), (1, 1), (0, 0), {}, "overlap"),
    ((2, 2, 5, 5), (3, 3), (2, 2), (1, 1), {}, "overlap,padding"),
    (("N", 2, 6, 5), (2, 3), (2, 1), (1, 1), {"N": 2}, "nonsquare,padding"),
    (("N", 3, 4, 4), (2, 2), (2, 2), (0, 0), {"N": 0}, "2x2"),
    ((1, 1, 5, 7), (1, 3), (1, 2), (0, 1), {}, "1x3"),
    ((1, 2, 7, 7), (3, 3), (2, 2), (0, 0), {}, "ragged"),
]
POOL_F32 = [POOL[1], POOL[3]]


def _conv_cases(case: Callable[..., Any], table: list, dtypes: tuple = ()) -> list[Any]:
    out = []
    for xs, ws, geo, bind, label in table:
        k, kw, size = ws[2:], geo.kw(), xs[2:]
        cts = (xs[0], ws[0], *geo.out_hw(xs[2:], k))
        common = {"bind": bind, "dtypes": dtypes * 2, "label": label}
        conv = in_float64(lambda x, w, geo=geo: np_conv2d(x, w, geo))
        grad_x = in_float64(lambda ct, w, g=geo, s=size: np_conv2d_grad_input(ct, w, s, g))
        grad_w = in_float64(lambda x, ct, geo=geo, k=k: np_conv2d_grad_weight(x, ct, k, geo))
        out += [
            case("conv2d", lambda x, w, kw=kw: gc.conv2d(x, w, **kw), conv, xs, ws, **common),
            case("conv2d_grad_input",
                 lambda ct, w, kw=kw, size=size: conv2d_grad_input(ct, w, size, **kw),
                 grad_x, cts, ws, **common),
            case("conv2d_grad_weight", lambda x, ct, kw=kw, k=k: conv2d_grad_weight(x, ct, k, **kw),
                 grad_w, xs, cts, **common),
        ]  # fmt: skip
    return out


def _pool_cases(case: Callable[..., Any], table: list, dtypes: tuple = ()) -> list[Any]:
    out = []
    for xs, k, s, p, bind, label in table:
        kw, g = {"kernel": k, "stride": s, "padding": p}, (k, s, p)
        ys = (*xs[:2], *pool_out(xs[2:], k, s, p))
        one = {"bind": bind, "dtypes": dtypes, "label": label}
        two = {**one, "dtypes": dtypes * 2, "domain": (normal(), distinct), "no_grad": (1,)}
        avg_grad = in_float64(lambda ct, g=g, size=xs[2:]: np_avg_pool_grad(ct, size, *g))
        out += [
            case("max_pool2d", lambda x, g=g: gc.max_pool2d(x, *g),
                 lambda x, g=g: np_max_pool(x, *g), xs, domain=(distinct,), **one),
            case("max_pool2d_grad", lambda ct, x, kw=kw: max_pool2d_grad(ct, x, **kw),
                 in_float64(lambda ct, x, g=g: np_max_pool_grad(ct, x, *g)), ys, xs, **two),
            case("max_pool2d_gather", lambda v, x, kw=kw: max_pool2d_gather(v, x, **kw),
                 lambda v, x, g=g: np_max_pool_gather(v, x, *g), xs, xs, **two),
            case("avg_pool2d", lambda x, g=g: gc.avg_pool2d(x, *g),
                 in_float64(lambda x, g=g: np_avg_pool(x, *g)), xs, **one),
            case("avg_pool2d_grad", lambda ct, kw=kw, size=xs[2:]: avg_pool2d_grad(ct, size, **kw),
                 avg_grad, ys, **one),
        ]  # fmt: skip
    return out


def _small_cnn(x: Any, w: Any, b: Any) -> Any:
    h = gc.relu(gc.conv2d(x, w, padding=1) + gc.reshape(b, (2, 1, 1)))
    return gc.avg_pool2d(gc.max_pool2d(h, 2, stride=1), 2)


def _np_small_cnn(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    h = np.maximum(np_conv2d(x, w, Geometry(padding=1)) + b.reshape(2, 1, 1), 0.0)
    return np_avg_pool(np_max_pool(h, (2, 2), (1, 1), (0, 0)), (2, 2), (2, 2), (0, 0))


def cases(case: Callable[..., Any]) -> list[Any]:
    """The cases, made with test_registry's `case(op, build, numpy, *shapes, **kw)`."""
    out = _conv_cases(case, CONV) + _conv_cases(case, CONV_F32, F32)
    out += _pool_cases(case, POOL) + _pool_cases(case, POOL_F32, F32)
    out += [
        # ties: each window's cotangent goes to its first maximum, where windows overlap too
        case("max_pool2d_grad", lambda ct, x: max_pool2d_grad(ct, x, 2, stride=1),
             lambda ct, x: np_max_pool_grad(ct, x, (2, 2), (1, 1), (0, 0)), (1, 2, 3, 3),
             (1, 2, 4, 4), domain=(normal(), small_ints), no_grad=(1,), label="ties"),
        # one value as both operands of a convolution
        case("conv2d", lambda x: gc.conv2d(x, x), lambda x: np_conv2d(x, x, Geometry()),
             (2, 2, 3, 3), label="conv(x,x)"),
        case("conv2d", _small_cnn, _np_small_cnn, ("N", 1, 5, 5), (2, 1, 3, 3), (2,),
             bind={"N": 2}, domain=(normal(), normal(), normal(0.1)), composite=True,
             label="cnn"),
    ]  # fmt: skip
    return out


def _x(g: Any, shape: tuple = (1, 3, 5, 5), dtype: str = "float64") -> Any:
    return g.param("x", shape=shape, dtype=dtype)


def _w(g: Any, shape: tuple = (4, 3, 3, 3)) -> Any:
    return g.param("w", shape=shape)


# (id, make(graph)) pairs whose shapes the op must reject with a ShapeError
ILLEGAL: list[tuple[str, Callable[[Any], Any]]] = [
    ("conv2d-3d", lambda g: gc.conv2d(_x(g, (3, 5, 5)), _w(g))),
    ("conv2d-w-3d", lambda g: gc.conv2d(_x(g), _w(g, (4, 3, 3)))),
    ("conv2d-symbolic-channels", lambda g: gc.conv2d(_x(g, ("N", "C", 5, 5)), _w(g))),
    ("conv2d-symbolic-height", lambda g: gc.conv2d(_x(g, ("N", 3, "H", 5)), _w(g))),
    ("conv2d-symbolic-w", lambda g: gc.conv2d(_x(g), _w(g, ("K", 3, 3, 3)))),
    ("conv2d-channels", lambda g: gc.conv2d(_x(g), _w(g, (4, 2, 3, 3)))),
    ("conv2d-groups-in", lambda g: gc.conv2d(_x(g), _w(g, (4, 1, 3, 3)), groups=2)),
    ("conv2d-groups-out", lambda g: gc.conv2d(_x(g, (1, 4, 5, 5)), _w(g, (3, 2, 3, 3)),
                                              groups=2)),
    ("conv2d-groups-0", lambda g: gc.conv2d(_x(g), _w(g), groups=0)),
    ("conv2d-too-small", lambda g: gc.conv2d(_x(g, (1, 3, 2, 5)), _w(g))),
    ("conv2d-dilated-too-big", lambda g: gc.conv2d(_x(g), _w(g), dilation=3)),
    ("conv2d-stride-0", lambda g: gc.conv2d(_x(g), _w(g), stride=0)),
    ("conv2d-padding-negative", lambda g: gc.conv2d(_x(g), _w(g), padding=(0, -1))),
    ("conv2d-stride-float", lambda g: gc.conv2d(_x(g), _w(g), stride=1.5)),
    ("conv2d-stride-triple", lambda g: gc.conv2d(_x(g), _w(g), stride=(1, 1, 1))),
    ("conv2d-bool", lambda g: gc.conv2d(_x(g, dtype="bool"), _w(g))),
    ("conv2d-empty-channels", lambda g: gc.conv2d(_x(g, (1, 0, 5, 5)), _w(g, (4, 0, 3, 3)))),
    ("conv2d_grad_input-size", lambda g: conv2d_grad_input(
        g.param("ct", shape=(1, 4, 3, 3)), _w(g), (6, 6))),
    ("conv2d_grad_input-channels", lambda g: conv2d_grad_input(
        g.param("ct", shape=(1, 5, 3, 3)), _w(g), (5, 5))),
    ("conv2d_grad_weight-batch", lambda g: conv2d_grad_weight(
        _x(g, ("N", 3, 5, 5)), g.param("ct", shape=("M", 4, 3, 3)), (3, 3))),
    ("conv2d_grad_weight-outputs", lambda g: conv2d_grad_weight(
        _x(g), g.param("ct", shape=(1, 4, 4, 3)), (3, 3))),
    ("max_pool2d-padding", lambda g: gc.max_pool2d(_x(g), 2, padding=2)),
    ("max_pool2d-too-small", lambda g: gc.max_pool2d(_x(g, (1, 3, 5, 2)), 3)),
    ("max_pool2d-symbolic", lambda g: gc.max_pool2d(_x(g, ("N", 3, 5, "W")), 2)),
    ("max_pool2d-kernel-0", lambda g: gc.max_pool2d(_x(g), (0, 2))),
    ("max_pool2d-2d", lambda g: gc.max_pool2d(_x(g, (5, 5)), 2)),
    ("max_pool2d_grad-ct", lambda g: max_pool2d_grad(g.param("ct", shape=(1, 3, 3, 3)),
                                                     _x(g), 2)),
    ("max_pool2d_gather-v", lambda g: max_pool2d_gather(g.param("v", shape=(1, 3, 2, 2)),
                                                        _x(g), 2)),
    ("avg_pool2d-padding", lambda g: gc.avg_pool2d(_x(g), (3, 2), padding=(1, 2))),
    ("avg_pool2d_grad-size", lambda g: avg_pool2d_grad(g.param("ct", shape=(1, 3, 2, 2)),
                                                       (7, 7), 2)),
]  # fmt: skip
