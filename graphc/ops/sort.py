"""Sorting: `argsort` (one op, a runtime kernel: a stable merge sort), and built on it with
gathers, `sort` and `topk`, which return (values, indices) as PyTorch's do.

Ties keep their order (a stable sort, in both directions: of equal values the lower index comes
first); NaN is the largest value, last ascending and first descending (NumPy's and PyTorch's).
The gradient goes through the values, each to the element it came from (gather's); indices
have none.
"""

from __future__ import annotations

import numpy as np

from graphc.codegen.emit import Emit
from graphc.codegen.kir import SizeExpr
from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import INT_DTYPES, ShapeMismatch
from graphc.ops._build import apply
from graphc.ops.registry import OpDef, register

SUFFIX = {"float64": "d", "float32": "s", "int64": "l"}  # the runtime's argsort kernels


def argsort_ref(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """The stable order of x along `axis` (NaN largest), as the runtime's kernel sorts."""
    moved = np.moveaxis(x, axis, -1)
    if not descending:
        order = np.argsort(moved, axis=-1, kind="stable")
    else:
        nan = np.isnan(moved) if moved.dtype.kind == "f" else np.zeros(moved.shape, bool)
        key = -moved if moved.dtype.kind == "f" else ~moved  # (~ reverses ints, never overflows)
        order = np.lexsort((key, ~nan), axis=-1)  # NaN first, then from the largest
    return np.ascontiguousarray(np.moveaxis(order, -1, axis).astype(np.int64))


def _infer_argsort(shapes, dtypes, params):
    (x,), axis = shapes, params["axis"]
    if not isinstance(axis, int) or isinstance(axis, bool) or not 0 <= axis < len(x):
        raise ShapeMismatch(f"argsort: axis {axis!r} is not an axis of a {len(x)}-d value")
    if dtypes[0] not in SUFFIX:
        raise ShapeMismatch(f"argsort sorts float64, float32 or int64 keys, got {dtypes[0]}")
    return x, "int64"


def _lower_argsort(e: Emit, n: int, args: list[int], params: dict) -> None:
    (x,) = args
    shape, axis = e.values.shape(x), params["axis"]
    ints = [shape[:axis], shape[axis], shape[axis + 1 :], SizeExpr(int(params["descending"]))]
    e.runtime(f"argsort_{SUFFIX[e.values.dtype(x)]}", [x, n], ints)


register(
    OpDef(
        "argsort",
        1,
        _infer_argsort,
        argsort_ref,
        (None,),
        params={"axis": 0, "descending": False},
        lower=_lower_argsort,
        formula="an order: no gradient",
    )
)


def _axis(op: str, x: Value, axis: int) -> int:
    if not isinstance(axis, int) or not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"{op} at {user_loc()}: axis {axis!r} is out of range for {x.ndim} dims")
    return axis % x.ndim


def _keys(x: Value) -> Value:
    from graphc.ops.elementwise import cast

    if x.dtype == "bool" or (x.dtype in INT_DTYPES and x.dtype != "int64"):
        return cast(x, "int64")  # the same order
    return x


def argsort(x: Value, axis: int = -1, descending: bool = False) -> Value:
    """int64 indices that sort x along `axis`, stably (NaN largest), as np.argsort(kind=
    "stable") and PyTorch's argsort(stable=True)."""
    return apply("argsort", _keys(x), axis=_axis("argsort", x, axis), descending=bool(descending))


def sort(x: Value, axis: int = -1, descending: bool = False) -> tuple[Value, Value]:
    """(x sorted along `axis`, the indices it came from), as PyTorch's sort(stable=True)."""
    from graphc.ops.gather import gather

    idx = argsort(x, axis, descending)
    return gather(x, _axis("sort", x, axis), idx), idx


def topk(
    x: Value,
    k: int,
    axis: int = -1,
    largest: bool = True,
    sorted: bool = True,  # noqa: A002
) -> tuple[Value, Value]:
    """(the k largest (smallest, when not `largest`) values along `axis`, their indices), as
    PyTorch's topk, always sorted; of equal values the lower index comes first."""
    from graphc.ops.gather import gather
    from graphc.ops.slicing import _slice_axis

    a = _axis("topk", x, axis)
    n = x.shape[a]
    if not isinstance(n, int):
        raise ShapeError(f"topk at {user_loc()}: axis {a} has symbolic size {n}; topk needs "
                         "its size")  # fmt: skip
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or not 0 <= k <= n:
        raise ShapeError(f"topk at {user_loc()}: k={k!r} must be an int from 0 to {n}")
    idx = _slice_axis(argsort(x, a, descending=bool(largest)), a, 0, int(k))
    return gather(x, a, idx), idx
