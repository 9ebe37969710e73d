"""NumPy's advanced indexing on Values: `x[idx]`, `x[:, idx]`, `x[i, j]` with int arrays (lists,
NumPy arrays, int Values) and ints among them, mixed with slices; one op, `index`, for several
arrays (one array is `take`), and its gradient `index_grad`, a scatter-add.

NumPy's rules: the index arrays (and ints, when arrays are present) broadcast together; the
result's axes for them stand where the first of them stands when they are adjacent, first
otherwise. An index may be negative (from the end); one outside its axis is an error (the
interpreter's, or a compiled call's after the step, kir.Fail). A boolean mask selects a number
of elements known only at run time, which a graph cannot hold: `where` and `masked_fill` keep
the shape instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.codegen.emit import Emit, flat_index, flat_loop, loop_nest, operand_index
from graphc.codegen.kir import Assign, Fail, If, Lit, Load, Store
from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import FLOAT_DTYPES, INT_DTYPES, ShapeMismatch, broadcast_shapes
from graphc.ops._build import apply
from graphc.ops.gather import _ref_index, checked_index
from graphc.ops.indexing import _check_const, _index_value
from graphc.ops.registry import VARIADIC, OpDef, register


def _indexed(x: tuple, idx: list[tuple], axis: int) -> tuple:
    return (*x[:axis], *broadcast_shapes(*idx), *x[axis + len(idx) :])


def _check(op: str, x: tuple, idx_dtypes: list[str], axis: Any, k: int) -> None:
    if not isinstance(axis, int) or isinstance(axis, bool) or not 0 <= axis <= len(x) - k:
        raise ShapeMismatch(f"{op}: {k} indices from axis {axis!r} do not fit a {len(x)}-d value")
    for d in idx_dtypes:
        if d not in INT_DTYPES:
            raise ShapeMismatch(f"{op} needs int indices, got {d}")


def _infer_index(shapes, dtypes, params):
    x, idx = shapes[0], list(shapes[1:])
    _check("index", x, dtypes[1:], params["axis"], len(idx))
    return _indexed(x, idx, params["axis"]), dtypes[0]


def _infer_index_grad(shapes, dtypes, params):
    shape, axis = params["shape"], params["axis"]
    _check("index_grad", shape, dtypes[1:], axis, len(shapes) - 1)
    want = _indexed(shape, list(shapes[1:]), axis)
    if tuple(shapes[0]) != want:
        raise ShapeMismatch(f"index_grad: the cotangent must be {want}")
    if dtypes[0] not in FLOAT_DTYPES:
        raise ShapeMismatch(f"index_grad adds floats, got {dtypes[0]}")
    return shape, dtypes[0]


def _positions(shape: tuple, idxs: tuple, axis: int) -> tuple:
    """The NumPy key of x[..., i0, i1, ...] from `axis`, the indices made non-negative."""
    fixed = [_ref_index(j, shape[axis + k], f"for axis {axis + k} with size {shape[axis + k]}")
             for k, j in enumerate(idxs)]  # fmt: skip
    return (*(slice(None),) * axis, *fixed)


def _index_ref(x: np.ndarray, *idxs: np.ndarray, axis: int) -> np.ndarray:
    return np.ascontiguousarray(x[_positions(x.shape, idxs, axis)])


def _index_grad_ref(ct: np.ndarray, *idxs: np.ndarray, shape: tuple, axis: int) -> np.ndarray:
    out = np.zeros(shape, ct.dtype)
    np.add.at(out, _positions(tuple(shape), idxs, axis), ct)
    return out


def _lower_index(e: Emit, n: int, args: list[int], params: dict) -> None:
    """index: out[a, b.., c] = x[a, i0[b..], i1[b..], .., c]; index_grad: out = 0, then
    out[a, i0[b..], .., c] += ct[a, b.., c], in row-major order of ct."""
    op = e.values.G.nodes[n]["op"]
    src, idxs = args[0], args[1:]
    kb, shape, axis = e.builder(), e.values.shape, params["axis"]
    full = shape(n) if op == "index_grad" else shape(src)  # the indexed value's shape
    walked = shape(src) if op == "index_grad" else shape(n)  # indexed by the loop
    width = len(walked) - len(full) + len(idxs)  # the broadcast indices' rank
    out = kb.ref(n, write=True)
    zeros = []
    if op == "index_grad":
        zeros = flat_loop(kb, shape(n), lambda i: [Assign(Store(out, i), Lit(0))])

    def body(coords: list) -> list:
        at = flat_index(kb, walked, coords)
        lead, mid, tail = coords[:axis], coords[axis : axis + width], coords[axis + width :]
        place, stmts, all_ok = list(lead), [], None
        for k, u in enumerate(idxs):  # every index checked before any is used
            size = kb.dim(full[axis + k])
            j, jj, ok = checked_index(kb, u, operand_index(kb, shape(u), mid), size)
            stmts.append(If(ok.eq(0), (Fail(j, size),)))
            place.append(jj)
            all_ok = ok if all_ok is None else all_ok & ok
        target = flat_index(kb, full, [*place, *tail])
        if op == "index":
            stmts.append(If(all_ok, (Assign(Store(out, at), kb.read(src, target)),)))
            stmts.append(If(all_ok.eq(0), (Assign(Store(out, at), Lit(0)),)))
        else:
            add = Assign(Store(out, target), Load(out, target) + kb.read(src, at))
            stmts.append(If(all_ok, (add,)))
        return stmts

    e.kernel(kb, f"b0 = {op}(b1, {len(idxs)} index arrays from axis {axis})",
             [*zeros, *loop_nest(kb, walked, body)])  # fmt: skip


register(
    OpDef(
        "index",
        VARIADIC,
        _infer_index,
        _index_ref,
        (lambda ct, out, x, *idxs, axis, port: (
            apply("index_grad", ct, *idxs, shape=x.shape, axis=axis) if port == 0 else None),),
        params={"axis": 0},
        lower=_lower_index,
        formula="dx = index_grad(dy): dy added at the places read (repeats add up)",
    )
)  # fmt: skip
register(
    OpDef(
        "index_grad",
        VARIADIC,
        _infer_index_grad,
        _index_grad_ref,
        (lambda c, out, ct, *idxs, shape, axis, port: (
            apply("index", c, *idxs, axis=axis) if port == 0 else None),),
        params={"shape": (), "axis": 0},
        shape_params=("shape",),
        lower=_lower_index,
        formula="index_grad is linear: its own VJP is index",
    )
)  # fmt: skip


# ---- x[key] with arrays -------------------------------------------------------------------------
def is_advanced(k: Any) -> bool:
    """Is `k` an index array (a Value, a NumPy array of ints, a list), not basic indexing?"""
    if isinstance(k, Value):
        return True
    if isinstance(k, np.ndarray):
        return k.ndim > 0 or k.dtype.kind == "b"
    return isinstance(k, list)


def advanced_getitem(x: Value, key: tuple) -> Value:
    """x[key] where some entries of `key` are index arrays (see the module's doc)."""
    from graphc.ops.indexing import take
    from graphc.ops.shape import transpose

    loc = user_loc()
    where = f"indexing v{x.id} at {loc}"
    for k in key:
        if k is None:
            raise ShapeError(f"{where}: None (a new axis) beside index arrays is not supported; "
                             "index first, then reshape")  # fmt: skip
        mask = (isinstance(k, Value) and k.dtype == "bool") or (
            isinstance(k, np.ndarray | list) and np.asarray(k).dtype.kind == "b"
        )
        if mask:
            raise ShapeError(f"{where}: a boolean mask selects a number of elements known only "
                             "when the model runs; keep the shape with gc.where(mask, x, 0) or "
                             "gc.masked_fill(x, ~mask, 0)")  # fmt: skip
    if sum(k is Ellipsis for k in key) > 1:
        raise ShapeError(f"{where}: more than one '...'")
    used = sum(1 for k in key if k is not Ellipsis)
    if used > x.ndim:
        raise ShapeError(f"{where}: {used} indices for {x.ndim} dimensions")
    dots = [k for k, v in enumerate(key) if v is Ellipsis]  # (`in` would compare arrays)
    if dots:
        at = dots[0]
        key = (*key[:at], *([slice(None)] * (x.ndim - used)), *key[at + 1 :])
    key = (*key, *([slice(None)] * (x.ndim - len(key))))
    # the slices first, on their own axes (arrays' axes kept whole)
    basic = tuple(k if isinstance(k, slice) else slice(None) for k in key)
    if any(k != slice(None) for k in basic):
        x = x[basic]
    arrays = [(a, k) for a, k in enumerate(key) if not isinstance(k, slice)]
    idxs = []
    for a, k in arrays:
        idx = _index_value(x, np.asarray(k) if isinstance(k, list) else k, "indexing")
        d = x.shape[a]
        if isinstance(d, int):
            _check_const(idx, -d, d, f"for axis {a} with size {d}", "indexing")
        idxs.append(idx)
    axes = [a for a, _ in arrays]
    if len(idxs) == 1 and idxs[0].ndim > 0:
        return take(x, idxs[0], axes[0])
    adjacent = axes == list(range(axes[0], axes[0] + len(axes)))
    first = axes[0]
    if not adjacent:  # the indexed axes first, in order, as NumPy puts the result's
        rest = [a for a in range(x.ndim) if a not in axes]
        x = transpose(x, (*axes, *rest))
        first = 0
    return apply("index", x, *idxs, axis=first)
