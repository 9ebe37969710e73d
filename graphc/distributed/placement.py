"""Where a step's data lives: what is sent to the workers, and what is used where it is.

NumPy batches are cut into shards (`shards.split_rows`) and each scattered to one worker; the
params and the inputs without a batch axis go to every worker. Dask arrays stay where they are:
each chunk along the batch axis is one shard, computed on the worker that holds it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from distributed import Client, Future, futures_of

from graphc.distributed.batch import BatchPlan
from graphc.distributed.shards import bind_symbols, is_dask_array, split_rows
from graphc.errors import InputError
from graphc.ir import Graph

# From this many workers on, the params are replicated by Dask as a tree (each holder sends to
# two more) before the shards run; below it they go to one worker and the others fetch them
# from it when their shard starts, which saves the replication's round trips.
TREE_FROM = 5


class WorkerLost(Exception):
    """A worker went away while data was being sent to it."""


def distribute(
    client: Client,
    plan: BatchPlan,
    workers: list[str],
    params: dict[str, np.ndarray],
    data: dict[str, Any],
    n: int,
    batch_size: int | None = None,
) -> tuple[list[Future], list[dict[str, Any]], list[int]]:
    """Futures of the params and of the inputs without a batch axis (on every worker), one
    dict of input futures per shard, and the shards' row counts. NumPy shards: one per worker,
    or more of at most `batch_size` rows."""
    replicated = {k: np.asarray(data[k]) for k in plan.replicated}
    batched = {k: data[k] for k in plan.batched}
    try:
        shared = client.scatter([params, replicated], broadcast=len(workers) >= TREE_FROM,
                                hash=False)  # fmt: skip
        if any(is_dask_array(v) for v in batched.values()):
            shards, rows = dask_shards(client, plan, batched)
            return shared, shards, rows
        pieces = len(workers)
        if batch_size is not None:
            pieces = max(pieces, -(-n // batch_size))
        ranges = split_rows(n, pieces)
        slices = [{k: v[a:b] for k, v in batched.items()} for a, b in ranges]
        # one call: Dask hands them out round robin, so each worker gets one (or its share)
        shards = client.scatter(slices, workers=workers, hash=False)
    except (TimeoutError, OSError) as e:  # a worker went away since it was listed
        raise WorkerLost(f"sending data to the workers failed: {e}") from e
    return shared, shards, [b - a for a, b in ranges]


def dask_shards(
    client: Client, plan: BatchPlan, batched: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[int]]:
    """One shard per chunk along the batch axis, as futures of the chunks where they are
    (persisted first if they were not); NumPy inputs beside them are cut to match."""
    lazy = {k: v for k, v in batched.items() if is_dask_array(v)}
    chunks = {k: tuple(v.chunks[0]) for k, v in lazy.items()}
    if len(set(chunks.values())) > 1:
        raise InputError(f"the dask arrays are chunked differently along the batch axis "
                         f"{plan.symbol!r}: {chunks}; rechunk them alike")  # fmt: skip
    rows = [int(r) for r in next(iter(chunks.values()))]
    whole = [v.rechunk({i: -1 for i in range(1, v.ndim)}) for v in lazy.values()]
    whole = client.persist(whole)
    shards: list[dict[str, Any]] = [{} for _ in rows]
    for name, arr in zip(lazy, whole, strict=True):
        by_key = {f.key: f for f in futures_of(arr)}
        for i, k in enumerate(_first_key(k) for k in arr.__dask_keys__()):
            shards[i][name] = by_key[k]
    bounds = np.cumsum([0, *rows])
    for name in set(batched) - set(lazy):
        for i in range(len(rows)):
            piece = np.asarray(batched[name][bounds[i] : bounds[i + 1]])
            shards[i][name] = client.scatter([piece], hash=False)[0]
    return shards, rows


def _first_key(k: Any) -> Any:
    """The key of a block along axis 0 (of an array with one chunk on its other axes), from
    dask's nested lists of keys."""
    return _first_key(k[0]) if isinstance(k, list) else k


def dask_outputs(
    client: Client,
    graph: Graph,
    plan: BatchPlan,
    dtype: str,
    parts: list[Future],
    rows: list[int],
    data: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, list[Future]]]:
    """The per-example outputs of `parts` (shard_run results, one per chunk) as dask arrays
    held on the workers, and futures of each other output per shard (for the caller to
    gather and combine)."""
    import dask
    import dask.array as da

    from graphc.distributed import worker

    G = graph.nx
    shapes = {a["name"]: a["shape"] for _, a in G.nodes(data=True) if a["op"] == "input"}
    sizes = bind_symbols(shapes, data)
    arrays: dict[str, Any] = {}
    small: dict[str, list[Future]] = {}
    for name, kind in plan.outputs.items():
        node = G.nodes[graph.outputs[name]]
        if kind.tag != "rows":
            small[name] = [client.submit(worker.pick, p, 0, name) for p in parts]
            continue
        out_dtype = dtype if node["dtype"].startswith("float") else node["dtype"]
        blocks = []
        for p, r in zip(parts, rows, strict=True):
            shape = tuple(r if d == plan.symbol else sizes.get(d, d) for d in node["shape"])
            value = dask.delayed(worker.pick)(p, 0, name)
            blocks.append(da.from_delayed(value, shape=shape, dtype=out_dtype))
        arrays[name] = da.concatenate(blocks, axis=kind.axis)
    if arrays:
        arrays = dict(zip(arrays, client.persist(list(arrays.values())), strict=True))
    return arrays, small
