"""Registry cases for the resampling ops interpolate_nearest and interpolate_linear and their
gradient ops (merged into tests/ops/test_registry.py's table).

The NumPy formulas are tests/ops/cases_spatial.py's: a dense [n_out, n_in] matrix per axis
built from PyTorch's documented coordinate rules in plain float64 Python arithmetic, applied
to each axis in turn; the gradient ops apply the transposed matrices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.ops._build import apply
from graphc.ops.interpolate import interpolate_linear, interpolate_nearest
from tests.domains import positive
from tests.ops.cases_conv import F32, in_float64
from tests.ops.cases_spatial import axis_matrix

MODE = {("interpolate_nearest", False): "nearest", ("interpolate_nearest", True): "nearest-exact",
        ("interpolate_linear", False): "linear",
        ("interpolate_linear", True): "linear"}  # fmt: skip


def np_resample(x: np.ndarray, size: tuple, scales: tuple, op: str, flag: bool) -> np.ndarray:
    for a, (n_out, sc) in enumerate(zip(size, scales, strict=True)):
        mat = axis_matrix(x.shape[2 + a], n_out, MODE[op, flag], flag, sc)
        x = np.moveaxis(np.tensordot(x, mat, axes=([2 + a], [1])), -1, 2 + a)
    return x


def np_resample_grad(ct: np.ndarray, input_size: tuple, scales: tuple, op: str, flag: bool):
    for a, (n_in, sc) in enumerate(zip(input_size, scales, strict=True)):
        mat = axis_matrix(n_in, ct.shape[2 + a], MODE[op, flag], flag, sc)
        ct = np.moveaxis(np.tensordot(ct, mat, axes=([2 + a], [0])), -1, 2 + a)
    return ct


# (op, x shape, size, scales, exact or align_corners, bind, label): up and down along each
# axis, scale factors (non-integer), an axis of 1 either way, an axis kept (copied even with a
# scale factor), nearest-exact where sources fall on cell boundaries, 1 to 3 spatial axes, a
# symbolic batch (3, 1 and 0).
NEAREST, LINEAR = "interpolate_nearest", "interpolate_linear"
TABLE = [
    (NEAREST, (2, 2, 5, 7), (8, 4), (None, None), False, {}, "up,down"),
    (NEAREST, ("N", 3, 4), (10,), (2.5,), False, {"N": 2}, "scale"),
    (NEAREST, (2, 2, 5, 7), (11, 4), (2.3, 0.6), True, {}, "exact,scale"),
    (NEAREST, (1, 2, 8, 6), (4, 4), (None, None), True, {}, "exact,boundaries"),
    (NEAREST, ("N", 2, 3, 4, 5), (4, 2, 7), (None,) * 3, False, {"N": 1}, "3d"),
    (NEAREST, (2, 2, 4, 6), (4, 9), (1.05, 1.5), False, {}, "kept"),
    (NEAREST, ("N", 2, 1, 5), (3, 1), (None, None), False, {"N": 0}, "size1,empty"),
    (LINEAR, (2, 2, 5, 7), (8, 4), (None, None), False, {}, "up,down"),
    (LINEAR, ("N", 2, 5, 7), (3, 9), (None, None), True, {"N": 1}, "align"),
    (LINEAR, (2, 3, 5), (7,), (1.5,), False, {}, "scale"),
    (LINEAR, (2, 3, 5), (1,), (None,), True, {}, "align,to1"),
    (LINEAR, (2, 3, 5), (1,), (None,), False, {}, "to1"),
    (LINEAR, ("N", 2, 1, 3), (4, 5), (None, None), False, {"N": 3}, "from1"),
    (LINEAR, (1, 2, 3, 4, 5), (4, 2, 5), (None,) * 3, True, {}, "3d,align"),
    (LINEAR, (1, 2, 3, 4, 2), (6, 3, 4), (2.2, 0.8, 2.1), False, {}, "3d,scale"),
    (LINEAR, (2, 2, 4, 6), (4, 9), (1.05, 1.5), False, {}, "kept"),
    (LINEAR, ("N", 2, 4, 5), (6, 3), (None, None), False, {"N": 0}, "empty"),
]
F32_TABLE = [
    (NEAREST, (2, 2, 5, 7), (8, 4), (None, None), True, {}, "exact"),
    (LINEAR, ("N", 2, 5, 7), (8, 4), (None, None), False, {"N": 2}, "up,down"),
    (LINEAR, (1, 2, 3, 4, 5), (4, 2, 5), (None,) * 3, True, {}, "3d,align"),
]


def _key(op: str) -> str:
    return "exact" if op == NEAREST else "align_corners"


def _cases(case: Callable[..., Any], table: list, dtypes: tuple = ()) -> list[Any]:
    out = []
    for op, xs, size, scales, flag, bind, label in table:
        p = {"size": size, "scales": scales, _key(op): flag}
        common = {"bind": bind, "dtypes": dtypes, "label": label}
        if dtypes:  # float32 sums as PyTorch's, to its rounding: positive terms, no cancelling
            common["domain"] = (positive(),)
        make = interpolate_nearest if op == NEAREST else interpolate_linear
        out.append(case(op, lambda x, m=make, p=p: m(x, *p.values()),
                        in_float64(lambda x, a=(size, scales, op, flag): np_resample(x, *a)),
                        xs, **common))  # fmt: skip
        grad = in_float64(lambda ct, a=(xs[2:], scales, op, flag): np_resample_grad(ct, *a))
        out.append(case(f"{op}_grad",
                        lambda ct, op=op, p=p, n=xs[2:]: apply(f"{op}_grad", ct, input_size=n, **p),
                        grad, (*xs[:2], *size), **common))  # fmt: skip
    return out


def cases(case: Callable[..., Any]) -> list[Any]:
    """The cases, made with test_registry's `case(op, build, numpy, *shapes, **kw)`."""
    return _cases(case, TABLE) + _cases(case, F32_TABLE, F32)


def _x(g: Any, shape: tuple = (1, 2, 5, 5)) -> Any:
    return g.param("x", shape=shape)


def _grad(g: Any, op: str, shape: tuple, **p: Any) -> Any:
    return apply(f"{op}_grad", _x(g, shape), **p)


# (id, make(graph)) pairs whose shapes or params the ops must reject with a ShapeError
ILLEGAL: list[tuple[str, Callable[[Any], Any]]] = [
    ("interpolate_linear-4-axes", lambda g: interpolate_linear(_x(g, (1, 1, 2, 2, 2, 2)),
                                                               (3,) * 4, (None,) * 4)),
    ("interpolate_nearest-no-axes", lambda g: interpolate_nearest(_x(g, (1, 2)), (), ())),
    ("interpolate_nearest-size-count", lambda g: interpolate_nearest(_x(g), (3,), (None,))),
    ("interpolate_nearest-size-0", lambda g: interpolate_nearest(_x(g), (3, 0), (None, None))),
    ("interpolate_linear-scales-count", lambda g: interpolate_linear(_x(g), (3, 3), (None,))),
    ("interpolate_linear-scale-negative", lambda g: interpolate_linear(_x(g), (3, 3),
                                                                      (-2.0, None))),
    ("interpolate_linear-symbolic-axis", lambda g: interpolate_linear(_x(g, (1, 2, "H", 5)),
                                                                     (3, 3), (None, None))),
    ("interpolate_nearest-int", lambda g: interpolate_nearest(
        g.param("i", shape=(1, 2, 4), dtype="int64"), (3,), (None,))),
    ("interpolate_linear_grad-ct", lambda g: _grad(g, LINEAR, (1, 2, 4, 4), size=(3, 3),
                                                   scales=(None, None), input_size=(5, 5))),
    ("interpolate_nearest_grad-input_size", lambda g: _grad(
        g, NEAREST, (1, 2, 3, 3), size=(3, 3), scales=(None, None), input_size=(5,))),
]  # fmt: skip
