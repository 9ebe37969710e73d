"""What runs on the Dask workers: the model's spec arrives as plain data (the graph as JSON and
the build options, by a worker plugin, so workers that join later get it too); each worker
process builds it once through graphc's cache and checks the key it built against the client's;
the tasks run the compiled module on a shard and add shards' results up.

Only this module and `parallel.py` import `distributed`.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

import graphc as gc
from graphc.errors import BuildError

# Per worker process: the specs the plugins delivered (by plugin name: two DataParallel objects
# of one model each have their own) and the modules built from them (by the client's cache key).
# Several workers of one process (LocalCluster(processes=False)) share them.
_SPECS: dict[str, dict[str, Any]] = {}
_MODULES: dict[str, Any] = {}
_LOCK = threading.Lock()
_BUILDING: dict[str, threading.Lock] = {}


class ModelPlugin(WorkerPlugin):
    """Delivers a model's spec to every worker, present and future (plain data: no code)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.name = f"graphc-model-{spec['key'][:16]}-{uuid.uuid4().hex[:8]}"

    def setup(self, worker: Any) -> None:
        with _LOCK:
            _SPECS[self.name] = self.spec

    def teardown(self, worker: Any) -> None:
        key = self.spec["key"]
        with _LOCK:
            _SPECS.pop(self.name, None)
            if not any(s["key"] == key for s in _SPECS.values()):
                _MODULES.pop(key, None)


def key_difference(mine: dict[str, Any], theirs: dict[str, Any]) -> str:
    """What differs between two builds' key inputs, as `field: here ... client ...` lines."""
    lines = []
    for field in sorted(set(mine) | set(theirs)):
        a, b = mine.get(field), theirs.get(field)
        if a != b:
            short = [str(v).splitlines()[0][:120] if v is not None else "-" for v in (a, b)]
            lines.append(f"  {field}: worker {short[0]!r}, client {short[1]!r}")
    return "\n".join(lines) or "  (nothing recorded differs)"


def _build(spec: dict[str, Any]) -> Any:
    """Compile the spec's graph here and check that it is the client's build."""
    g = gc.Graph.from_json(spec["graph"])
    m = gc.compile(
        g,
        of=spec["of"],
        wrt=spec["wrt"],
        dtype=spec["dtype"],
        opt_level=spec["opt_level"],
        out_dir=spec["build_dir"],
        functions=("forward", "value_and_grad"),
    )
    mine = m.built.meta["key_inputs"]
    theirs = spec["key_inputs"]
    same = m.built.key == spec["key"]
    if spec["check_build"] == "source":
        same = all(mine.get(f) == theirs.get(f) for f in ("source_sha256", "graphc", "name"))
    if not same:
        what = "cache key" if spec["check_build"] == "key" else "generated source"
        raise BuildError(
            f"the worker's build of {g.name!r} has another {what} than the client's "
            f"({m.built.key[:16]} here, {spec['key'][:16]} on the client):\n"
            f"{key_difference(mine, theirs)}\nInstall the same versions on the client and the "
            "workers; on machines whose compiler or CPU differs from the client's, pass "
            "check_build='source' to compare the generated source only"
        )
    return m


def module(key: str) -> Any:
    """The compiled module of the model whose client key is `key`, built on first use."""
    with _LOCK:
        m = _MODULES.get(key)
        if m is not None:
            return m
        spec = next((s for s in _SPECS.values() if s["key"] == key), None)
        lock = _BUILDING.setdefault(key, threading.Lock())
    if spec is None:
        raise BuildError(
            f"this worker (process {os.getpid()}) has no graphc model with key {key[:16]}: "
            "its DataParallel was closed, or the worker plugin that delivers it failed here "
            "(see the worker's log)"
        )
    with lock:  # one build per process; the cache's lock makes it one per disk
        if key not in _MODULES:
            m = _build(spec)
            with _LOCK:
                _MODULES[key] = m
    return _MODULES[key]


def build_here(key: str) -> dict[str, Any]:
    """Build (or fetch) the model on this worker; what the client checks and reports."""
    t0 = time.perf_counter()
    m = module(key)
    return {"key": m.built.key, "cache_hit": m.built.cache_hit, "pid": os.getpid(),
            "seconds": time.perf_counter() - t0}  # fmt: skip


def _usable(*dicts: dict[str, Any]) -> dict[str, Any]:
    """The arrays of `dicts` in one dict, each aligned and C-contiguous as the compiled module
    requires: arrays that arrive over the network may sit at any offset in the message that
    brought them, and are copied then."""
    out: dict[str, Any] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = np.require(v, requirements=("C", "A")) if isinstance(v, np.ndarray) else v
    return out


def shard_grads(
    key: str,
    params: dict[str, np.ndarray],
    data: dict[str, np.ndarray],
    replicated: dict[str, np.ndarray],
    of: str,
    weight: float,
) -> dict[str, Any]:
    """One shard's loss and gradients, each times `weight` (its share of a mean loss)."""
    m = module(key)
    args = _usable(data, replicated, params)
    t0 = time.perf_counter()
    outs, grads = m.value_and_grad(**args)
    seconds = time.perf_counter() - t0
    if weight != 1.0:
        grads = {k: g * weight for k, g in grads.items()}
    return {"loss": outs[of] * weight, "grads": grads, "compute": [seconds]}


def combine(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two partial results added up (a first: the order is fixed by the caller's tree)."""
    return {
        "loss": a["loss"] + b["loss"],
        "grads": {k: a["grads"][k] + b["grads"][k] for k in a["grads"]},
        "compute": a["compute"] + b["compute"],
    }


def shard_run(
    key: str,
    function: str,
    params: dict[str, np.ndarray],
    data: dict[str, np.ndarray],
    replicated: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], ...]:
    """`forward` or `value_and_grad` of the module on one shard, unweighted."""
    m = module(key)
    out = getattr(m, function)(**_usable(data, replicated, params))
    return out if isinstance(out, tuple) else (out,)


def pick(result: tuple[dict[str, np.ndarray], ...], part: int, name: str) -> np.ndarray:
    """One array of a shard_run result (for building dask arrays from per-chunk results)."""
    return result[part][name]


def part(result: tuple[dict[str, np.ndarray], ...], i: int) -> dict[str, np.ndarray]:
    """One dict of a shard_run result: 0 the outputs, 1 the gradients."""
    return result[i]
