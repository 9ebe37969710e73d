"""Splitting a batch into shards and adding shards' results up, in a fixed order.

Plain NumPy and Python: the Dask calls are the caller's (`parallel.py`), which hands `tree` a
function that submits one addition as a task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from graphc.distributed.batch import BatchPlan, Kind
from graphc.errors import InputError
from graphc.ir.shapes import is_symbol

T = TypeVar("T")


def split_rows(n: int, k: int) -> list[tuple[int, int]]:
    """`min(k, n)` consecutive row ranges covering 0..n, sizes differing by at most one (the
    first ranges get the extra rows)."""
    k = max(1, min(k, n))
    size, extra = divmod(n, k)
    bounds = [0]
    for i in range(k):
        bounds.append(bounds[-1] + size + (i < extra))
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def tree(items: Sequence[T], add: Callable[[T, T], T]) -> T:
    """((0+1)+(2+3))+... : neighbours added pairwise, level by level; an odd last item moves up
    a level unchanged. The order depends on the number of items only."""
    level = list(items)
    if not level:
        raise ValueError("nothing to add up")
    while len(level) > 1:
        pairs = [add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = pairs + level[len(level) - len(level) % 2 :]
    return level[0]


def is_dask_array(x: Any) -> bool:
    """A dask array (duck-typed, so that NumPy callers never import dask)."""
    return hasattr(x, "__dask_graph__") and hasattr(x, "chunks")


def check_inputs(
    plan: BatchPlan, params: Mapping[str, Any], data: Mapping[str, Any], what: str
) -> int:
    """Every param and data input present and nothing else; the batch's row count."""
    want = {"param": plan.params, "data": plan.batched + plan.replicated}
    given = {"param": params, "data": data}
    for role, names in want.items():
        missing = [k for k in names if k not in given[role]]
        unknown = [k for k in given[role] if k not in names]
        if missing or unknown:
            problem = f"is missing {missing}" if missing else f"got unknown {unknown}"
            raise InputError(f"{what}: the {role} arrays {problem}; the model takes {names}")
    rows = {}
    for k in plan.batched:
        shape = getattr(data[k], "shape", None)
        if not shape:
            raise InputError(f"{what}: data input {k!r} must be an array with the batch axis "
                             f"{plan.symbol!r} first, got {type(data[k]).__name__}")  # fmt: skip
        rows[k] = int(shape[0])
    if len(set(rows.values())) > 1:
        raise InputError(f"{what}: the batched inputs disagree on the number of rows "
                         f"({plan.symbol}): {rows}")  # fmt: skip
    n = next(iter(rows.values()))
    if n == 0:
        raise InputError(f"{what}: the batch is empty ({plan.symbol}=0)")
    return n


def as_arrays(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """NumPy arrays, C-contiguous (what the compiled module takes), others left as they are."""
    return {
        k: np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v for k, v in arrays.items()
    }


def combine_outputs(
    plan: BatchPlan, parts: Sequence[dict[str, np.ndarray]], rows: Sequence[int]
) -> dict[str, np.ndarray]:
    """Shards' outputs as the full batch's: per-example outputs joined in shard order, means
    weighted by each shard's share of the rows, sums and counts added, in shard order."""
    total = sum(rows)
    out = {}
    for name in parts[0]:
        kind = plan.outputs.get(name, Kind("const"))
        values = [p[name] for p in parts]
        if kind.tag == "rows":
            out[name] = np.concatenate(values, axis=kind.axis)
        elif kind.tag == "const":
            out[name] = values[0]
        else:
            acc = values[0] * plan.weight(kind, rows[0], total)
            for v, r in zip(values[1:], rows[1:], strict=True):
                acc = acc + v * plan.weight(kind, r, total)
            out[name] = acc
    return out


def combine_grads(
    plan: BatchPlan, parts: Sequence[dict[str, np.ndarray]], rows: Sequence[int]
) -> dict[str, np.ndarray]:
    """Shards' gradients of the loss as the full batch's, weighted as the loss is."""
    loss = Kind(plan.loss)
    total = sum(rows)
    out = {}
    for name in parts[0]:
        acc = parts[0][name] * plan.weight(loss, rows[0], total)
        for p, r in zip(parts[1:], rows[1:], strict=True):
            acc = acc + p[name] * plan.weight(loss, r, total)
        out[name] = acc
    return out


def bind_symbols(shapes: Mapping[str, tuple], arrays: Mapping[str, Any]) -> dict[str, int]:
    """The symbolic sizes the arrays give (input name -> its declared shape)."""
    sizes: dict[str, int] = {}
    for name, shape in shapes.items():
        if name in arrays:
            for d, n in zip(shape, arrays[name].shape, strict=False):
                if is_symbol(d):
                    sizes.setdefault(d, int(n))
    return sizes
