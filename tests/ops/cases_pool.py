"""Registry cases for the pooling ops of their own: avg_pool and avg_pool_grad,
adaptive_avg_pool and adaptive_avg_pool_grad, max_unpool (merged into
tests/ops/test_registry.py's table).

The NumPy formulas are written independently of the ops' `ref`: one window at a time over its
cells inside the input (tests/ops/cases_spatial.py's `windows`), the gradients by adding each
window's share of dy to its cells, the adaptive windows from PyTorch's documented rule, and
max_unpool one element at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import graphc as gc
from graphc.ops._build import apply
from tests.domains import distinct
from tests.ops.cases_spatial import (
    F32,
    in_float64,
    np_adaptive,
    np_avg_pool,
    np_max_pool,
    np_unpool,
    windows,
)


def avg_kw(k: int, kernel: Any, stride: Any = None, padding: Any = 0, ceil: bool = False,
           include_pad: bool = True, divisor: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The avg_pool op's params."""

    def t(v: Any) -> tuple[int, ...]:
        return (v,) * k if isinstance(v, int) else tuple(v)

    return {"kernel": t(kernel), "stride": t(kernel if stride is None else stride),
            "padding": t(padding), "ceil_mode": ceil, "count_include_pad": include_pad,
            "divisor": divisor}  # fmt: skip


def _geo(kw: dict) -> tuple:
    return (kw["kernel"], kw["stride"], kw["padding"], kw["ceil_mode"], kw["count_include_pad"],
            kw["divisor"])  # fmt: skip


def np_avg(x: np.ndarray, kw: dict) -> np.ndarray:
    return np_avg_pool(x, *_geo(kw))


def np_avg_grad(ct: np.ndarray, size: tuple, kw: dict) -> np.ndarray:
    """Each window's dy over its count (or the divisor) added to each of its cells."""
    k, s, p, ceil, include_pad, divisor = _geo(kw)
    dx = np.zeros((*ct.shape[:2], *size))
    for pos, cells, taps, extent, _ in windows(size, k, s, p, (1,) * len(k), ceil):
        count = divisor or (extent if include_pad else len(cells))
        for cell in cells:
            at = tuple(t[c] for t, c in zip(taps, cell, strict=True))
            dx[(slice(None), slice(None), *at)] += ct[(slice(None), slice(None), *pos)] / count
    return dx


def np_adaptive_grad(ct: np.ndarray, size: tuple) -> np.ndarray:
    dx = np.zeros((*ct.shape[:2], *size))
    for pos in np.ndindex(*ct.shape[2:]):
        box = [range(i * n // o, -(-(i + 1) * n // o))
               for i, n, o in zip(pos, size, ct.shape[2:], strict=True)]  # fmt: skip
        share = ct[(slice(None), slice(None), *pos)] / math.prod(len(b) for b in box)
        for cell in np.ndindex(*(len(b) for b in box)):
            at = tuple(b[c] for b, c in zip(box, cell, strict=True))
            dx[(slice(None), slice(None), *at)] += share
    return dx


def pooled_shape(xs: tuple, kw: dict) -> tuple:
    outs = []
    for n, k, s, p in zip(xs[2:], kw["kernel"], kw["stride"], kw["padding"], strict=True):
        o = (n + 2 * p - k + (s - 1 if kw["ceil_mode"] else 0)) // s + 1
        outs.append(o - 1 if kw["ceil_mode"] and (o - 1) * s >= n + p else o)
    return (*xs[:2], *outs)


# (x shape, params, bind, label): every option alone and together, 1 to 3 axes, a symbolic
# batch of 3, 1 and 0, ceil_mode windows past the padding, a negative divisor.
AVG = [
    ((2, 2, 7, 8), avg_kw(2, 3, 2, 1, ceil=True, include_pad=False), {}, "ceil,no-pad"),
    ((2, 2, 7, 8), avg_kw(2, 3, 2, 1, ceil=True), {}, "ceil"),
    (("N", 2, 5, 6), avg_kw(2, 2, divisor=3), {"N": 3}, "divisor"),
    (("N", 3, 9), avg_kw(1, 3, 2, 1, include_pad=False), {"N": 1}, "s,p,no-pad"),
    (("N", 3, 8), avg_kw(1, 2), {"N": 0}, "empty"),
    ((2, 3, 6), avg_kw(1, 4, 3, 2, ceil=True), {}, "ceil,past-padding"),
    ((2, 2, 5, 4, 5), avg_kw(3, 2, (2, 1, 2), 1, ceil=True), {}, "s,p,ceil"),
    ((1, 2, 4, 4, 4), avg_kw(3, (2, 3, 2), None, (1, 1, 0), include_pad=False, divisor=-5), {},
     "no-pad,divisor<0"),
    ((1, 1, 3, 3), avg_kw(2, 3, 1, 1), {}, "plain"),
]  # fmt: skip
AVG_F32 = [
    ((2, 2, 7, 8), avg_kw(2, 3, 2, 1, ceil=True, include_pad=False), {}, "ceil,no-pad"),
    (("N", 2, 5, 4, 5), avg_kw(3, 2, (2, 1, 2), 1, ceil=True), {"N": 2}, "s,p,ceil"),
]
# (x shape, output sizes, bind): sizes that divide, do not (overlapping windows), grow, keep
ADAPTIVE = [((2, 2, 7, 8), (3, 5), {}), (("N", 3, 7), (4,), {"N": 3}),
            (("N", 3, 7), (4,), {"N": 0}), ((1, 2, 5, 4, 6), (2, 4, 4), {}),
            ((1, 1, 3, 4), (6, 1), {}),
            (("N", 2, 6), (6,), {"N": 1})]  # fmt: skip


def _avg_cases(case: Callable[..., Any], table: list, dtypes: tuple = ()) -> list[Any]:
    out = []
    for xs, kw, bind, label in table:
        ys, size = pooled_shape(xs, kw), xs[2:]
        common = {"bind": bind, "dtypes": dtypes, "label": label}
        out += [
            case("avg_pool", lambda x, kw=kw: apply("avg_pool", x, **kw),
                 in_float64(lambda x, kw=kw: np_avg(x, kw)), xs, **common),
            case("avg_pool_grad", lambda ct, kw=kw, s=size: apply("avg_pool_grad", ct, size=s,
                                                                  **kw),
                 in_float64(lambda ct, kw=kw, s=size: np_avg_grad(ct, s, kw)), ys, **common),
        ]  # fmt: skip
    return out


def _adaptive_cases(case: Callable[..., Any], table: list, dtypes: tuple = ()) -> list[Any]:
    out = []
    for xs, sizes, bind in table:
        label = ",".join(map(str, sizes))
        common = {"bind": bind, "dtypes": dtypes, "label": label}
        out += [
            case("adaptive_avg_pool", lambda x, s=sizes: apply("adaptive_avg_pool", x, sizes=s),
                 in_float64(lambda x, s=sizes: np_adaptive(x, s)), xs, **common),
            case("adaptive_avg_pool_grad",
                 lambda ct, s=xs[2:]: apply("adaptive_avg_pool_grad", ct, size=s),
                 in_float64(lambda ct, s=xs[2:]: np_adaptive_grad(ct, s)), (*xs[:2], *sizes),
                 **common),
        ]  # fmt: skip
    return out


# distinct places in each plane of 2 x 3 x 5 cells (a permutation), for max_unpool from ints
PLACES = np.stack([np.random.default_rng(k).permutation(30)[:6] for k in range(4)])


def _unpool_cases(case: Callable[..., Any]) -> list[Any]:
    out = []
    for k, xs, kw, size, label in [
        (2, ("N", 2, 4, 6), {"kernel_size": 2}, (4, 6), "2d"),
        (1, (2, 3, 9), {"kernel_size": 2, "output_size": (9,)}, (9,), "1d,size"),
        (3, (1, 2, 4, 4, 4), {"kernel_size": 2}, (4, 4, 4), "3d"),
    ]:  # fmt: skip
        pool, unpool = getattr(gc, f"max_pool{k}d"), getattr(gc, f"max_unpool{k}d")
        pkw = {a: b for a, b in kw.items() if a != "output_size"}

        def build(x, pool=pool, unpool=unpool, kw=kw, pkw=pkw):
            return unpool(*pool(x, **pkw, return_indices=True), **kw)

        def numpy(x, k=k, size=size):
            g = ((2,) * k, (2,) * k, (0,) * k, (1,) * k, False)
            return np_unpool(np_max_pool(x, *g), np_max_pool(x, *g, indices=True), size)

        for bind in ({"N": 3}, {"N": 1}, {"N": 0}) if xs[0] == "N" else ({},):
            out.append(case("max_unpool", build, numpy, xs, bind=bind, domain=(distinct,),
                            label=f"{label},from-pool"))  # fmt: skip
    idx = PLACES.reshape(2, 2, 2, 3)
    out.append(
        case(
            "max_unpool",
            lambda x: apply("max_unpool", x, x.graph.const(idx, "int64"), size=(3, 10)),
            lambda x: np_unpool(x, idx, (3, 10)),
            (2, 2, 2, 3),
            label="const-indices",
        )
    )
    out.append(case("max_unpool", lambda x: apply("max_unpool", x, x.graph.const(idx, "int64"),
                                                  size=(3, 10)),
                    in_float64(lambda x: np_unpool(x, idx, (3, 10))), (2, 2, 2, 3), dtypes=F32,
                    label="const-indices"))  # fmt: skip
    return out


def cases(case: Callable[..., Any]) -> list[Any]:
    """The cases, made with test_registry's `case(op, build, numpy, *shapes, **kw)`."""
    return (_avg_cases(case, AVG) + _avg_cases(case, AVG_F32, F32)
            + _adaptive_cases(case, ADAPTIVE) + _adaptive_cases(case, ADAPTIVE[:2], F32)
            + _unpool_cases(case))  # fmt: skip


def _x(g: Any, shape: tuple = (1, 2, 5, 5)) -> Any:
    return g.param("x", shape=shape)


def _i(g: Any, shape: tuple = (1, 2, 2, 2)) -> Any:
    return g.input("i", shape=shape, dtype="int64")


# (id, make(graph)) pairs whose shapes or arguments the ops must reject with a ShapeError
ILLEGAL: list[tuple[str, Callable[[Any], Any]]] = [
    ("avg_pool-rank", lambda g: apply("avg_pool", _x(g), **avg_kw(1, 2))),
    ("avg_pool-padding", lambda g: apply("avg_pool", _x(g), **avg_kw(2, 2, 1, 2))),
    ("avg_pool-divisor-0", lambda g: apply("avg_pool", _x(g), **avg_kw(2, 2, divisor=0))),
    ("avg_pool-too-small", lambda g: apply("avg_pool", _x(g, (1, 2, 2, 5)), **avg_kw(2, 3))),
    ("avg_pool-symbolic", lambda g: apply("avg_pool", _x(g, ("N", 2, "H", 5)), **avg_kw(2, 2))),
    ("avg_pool-stride-pair", lambda g: apply("avg_pool", _x(g), **{**avg_kw(2, 2),
                                                                   "stride": (1,)})),
    ("avg_pool_grad-size", lambda g: apply("avg_pool_grad", _x(g, (1, 2, 3, 3)), size=(5, 5),
                                           **avg_kw(2, 2))),
    ("avg_pool3d-divisor-bool", lambda g: gc.avg_pool3d(_x(g, (1, 1, 4, 4, 4)), 2,
                                                        divisor_override=True)),
    ("adaptive_avg_pool-sizes", lambda g: apply("adaptive_avg_pool", _x(g), sizes=(2,))),
    ("adaptive_avg_pool-zero", lambda g: apply("adaptive_avg_pool", _x(g), sizes=(0, 2))),
    ("adaptive_avg_pool_grad-rank", lambda g: apply("adaptive_avg_pool_grad", _x(g),
                                                    size=(4, 4, 4))),
    ("max_unpool-shape", lambda g: apply("max_unpool", _x(g, (1, 2, 2, 2)),
                                         _i(g, (1, 2, 2, 3)), size=(4, 4))),
    ("max_unpool-float-indices", lambda g: apply("max_unpool", _x(g, (1, 2, 2, 2)),
                                                 g.param("j", shape=(1, 2, 2, 2)), size=(4, 4))),
    ("max_unpool-size", lambda g: apply("max_unpool", _x(g, (1, 2, 2, 2)), _i(g), size=(4,))),
    ("max_unpool2d-output_size", lambda g: gc.max_unpool2d(_x(g, (1, 2, 2, 2)), _i(g), 2,
                                                           output_size=(0, 4))),
]  # fmt: skip
