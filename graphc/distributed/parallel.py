"""DataParallel: a graphc model trained and evaluated on a Dask cluster, one shard per worker.

A step: the params go to every worker (see placement.distribute); each
worker runs the compiled `value_and_grad` on its shard of the batch and scales its loss and
gradients by its share of the rows (for a mean loss); the shards' results are added up by tasks
in a fixed tree order (`shards.tree`); the client gathers the sum and applies the optimiser's
NumPy update once. A worker lost during a step loses nothing: the step is redone on the
workers that remain. Every wait is bounded by `timeout`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from distributed import Client, Future, wait
from distributed.client import FutureCancelledError, FuturesCancelledError
from distributed.comm.core import CommClosedError
from distributed.scheduler import KilledWorker

import graphc as gc
from graphc.distributed import checkpoint, placement, worker
from graphc.distributed.batch import analyse
from graphc.distributed.shards import (
    as_arrays,
    check_inputs,
    combine_grads,
    combine_outputs,
    is_dask_array,
    tree,
)
from graphc.errors import GraphcError, GraphError, InputError
from graphc.ir import as_graph
from graphc.runtime import default_build_dir

log = logging.getLogger("graphc.distributed")


# What a worker that died (or its lost data) looks like to the client: the step is redone.
LOST = (FutureCancelledError, FuturesCancelledError, KilledWorker, CommClosedError,
        placement.WorkerLost)  # fmt: skip


@dataclass
class StepTiming:
    """Where one step's wall time went (seconds, measured on the client, except `compute`:
    the slowest shard's time inside the compiled function, measured on its worker)."""

    scatter: float = 0.0  # params and the batch's shards sent to the workers
    shards: float = 0.0  # from the shards' submission until every shard's result is ready
    compute: float = 0.0
    reduce: float = 0.0  # from then until the sum of all shards is on the client
    update: float = 0.0  # the optimiser's update on the client
    total: float = 0.0
    workers: int = 0
    rows: list[int] = field(default_factory=list)  # each shard's rows, in the order added
    bytes: dict[str, int] = field(default_factory=dict)  # sizes of the arrays moved


class DataParallel:
    """Train and evaluate graph `g` on the Dask cluster of `client`.

    `optimizer`: a gc.optim optimiser (needed by `train_step`). `of`, `wrt`, `dtype`,
    `opt_level`: as for gc.compile. `batch`: the symbol of the batch axis (default: the one
    that starts the data inputs' shapes). `build_dir`: where the client and the workers build
    (an absolute path they share, or each its own disk: default the client's build directory).
    `check_build`: "key" (every worker's cache key must equal the client's: same source,
    versions, compiler and CPU target) or "source" (the same generated source only, for workers
    on other machines). `timeout`: seconds any one wait (a build, a step) may take. `retries`:
    how many times a step is redone after losing workers."""

    def __init__(
        self,
        g: gc.Graph,
        client: Client,
        optimizer: gc.optim.Optimizer | None = None,
        *,
        of: str | None = None,
        wrt: Iterable[str] | None = None,
        batch: str | None = None,
        dtype: str = "float64",
        opt_level: int = 1,
        build_dir: str | Path | None = None,
        check_build: str = "key",
        timeout: float = 600.0,
        retries: int = 3,
    ) -> None:
        g = as_graph(g)
        if check_build not in ("key", "source"):
            raise GraphError(f"check_build must be 'key' or 'source', got {check_build!r}")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise GraphError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.plan = analyse(g, of, batch)
        wrt = list(self.plan.params if wrt is None else ([wrt] if isinstance(wrt, str) else wrt))
        not_params = [w for w in wrt if w not in self.plan.params]
        if not_params:
            raise GraphError(
                f"wrt {not_params}: data-parallel training differentiates params only; the "
                f"params of {g.name!r} are {list(self.plan.params)}"
            )
        self.graph, self.client, self.optimizer = g, client, optimizer
        self.wrt, self.dtype, self.timeout, self.retries = tuple(wrt), dtype, timeout, retries
        self.step = 0
        self.params: dict[str, np.ndarray] | None = None
        self.state: dict[str, np.ndarray] | None = None
        self.timings: list[StepTiming] = []
        self.events: list[str] = []  # steps redone after a worker was lost, and why
        build_dir = Path(build_dir if build_dir is not None else default_build_dir()).absolute()
        self.module = gc.compile(g, of=self.plan.of, wrt=self.wrt, dtype=dtype,
                                 opt_level=opt_level, out_dir=build_dir,
                                 functions=("forward", "value_and_grad"))  # fmt: skip
        self.key = self.module.built.key
        spec = {
            "key": self.key,
            "key_inputs": self.module.built.meta["key_inputs"],
            "graph": g.to_json(),
            "of": self.plan.of,
            "wrt": list(self.wrt),
            "dtype": dtype,
            "opt_level": opt_level,
            "build_dir": str(build_dir),
            "check_build": check_build,
        }
        self._plugin = worker.ModelPlugin(spec)
        self.client.register_plugin(self._plugin)
        try:
            self.builds = self.build_on_workers()
        except BaseException:
            self.close()
            raise

    # ---- setup ---------------------------------------------------------------------------------
    def build_on_workers(self) -> dict[str, dict[str, Any]]:
        """Build (or fetch from the cache) the model on every worker now, each checking its key
        against the client's; worker address -> {key, pid, seconds}."""
        workers = self.workers()
        futures = [
            self.client.submit(worker.build_here, self.key, workers=[w],
                               allow_other_workers=False, pure=False)
            for w in workers
        ]  # fmt: skip
        return dict(zip(workers, self._results(futures, "building the model"), strict=True))

    def workers(self) -> list[str]:
        """The running workers' addresses, sorted; waits (up to `timeout`) for at least one."""
        deadline = time.monotonic() + self.timeout
        while True:
            info = self.client.scheduler_info()["workers"]
            running = sorted(a for a, w in info.items() if w.get("status", "running") == "running")
            if running:
                return running
            if time.monotonic() > deadline:
                raise GraphcError(f"the Dask cluster has no running workers after {self.timeout} s")
            time.sleep(0.1)

    def close(self) -> None:
        """Remove the model from the workers (the client stays open)."""
        try:
            self.client.unregister_worker_plugin(self._plugin.name)
        except (ValueError, KeyError, OSError):  # already gone, or the cluster is down
            pass

    def __enter__(self) -> DataParallel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def init_state(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Fresh optimiser state for `params` (zeros); remembered, with them, for `save`."""
        opt = self._need_optimizer("init_state")
        self.params = {k: np.array(v) for k, v in params.items()}
        self.state = opt.init({k: self.params[k] for k in self.wrt if k in self.params})
        return {k: v.copy() for k, v in self.state.items()}

    # ---- training -------------------------------------------------------------------------------
    def train_step(
        self, params: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray], **data: Any
    ) -> tuple[float, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """One optimiser step on the batch `data` (NumPy arrays, scattered, or dask arrays on
        the workers, used where they are: one shard per chunk along the batch axis). Returns
        the batch's loss and new params and state (the arguments are left as they were)."""
        opt = self._need_optimizer("train_step")
        n = check_inputs(self.plan, params, data, "train_step")
        params, data = as_arrays(params), as_arrays(data)
        t0 = time.perf_counter()
        result, timing = self._redo_on_loss(
            f"step {self.step + 1}", lambda: self._step(params, data, n)
        )
        t1 = time.perf_counter()
        new_params = {k: np.array(v) for k, v in params.items()}
        new_state = {k: np.array(v) for k, v in state.items()}
        opt.step({k: new_params[k] for k in self.wrt}, result["grads"], new_state)
        timing.update = time.perf_counter() - t1
        timing.total = time.perf_counter() - t0
        self.timings.append(timing)
        self.step += 1
        self.params, self.state = new_params, new_state
        return float(result["loss"]), new_params, new_state

    def _step(self, params: dict, data: dict, n: int) -> tuple[dict[str, Any], StepTiming]:
        timing = StepTiming()
        t0 = time.perf_counter()
        shared, shards, rows, timing.workers = self._distribute(params, data, n)
        timing.scatter = time.perf_counter() - t0
        timing.rows = rows
        leaves = [
            self.client.submit(worker.shard_grads, self.key, shared[0], s, shared[1],
                               self.plan.of, self.plan.weight(self._loss_kind, r, n), pure=False)
            for s, r in zip(shards, rows, strict=True)
        ]  # fmt: skip
        root = tree(leaves, lambda a, b: self.client.submit(worker.combine, a, b, pure=False))
        t1 = time.perf_counter()
        self._wait(leaves, "computing the shards")
        timing.shards = time.perf_counter() - t1
        (result,) = self._results([root], "adding up the shards")
        timing.reduce = time.perf_counter() - t1 - timing.shards
        timing.compute = max(result["compute"])
        p_bytes = sum(v.nbytes for v in params.values())
        timing.bytes = {
            "params to workers": p_bytes * timing.workers,
            "batch from the client": sum(v.nbytes for v in data.values() if not is_dask_array(v)),
            "gradients from shards": p_bytes * len(shards),
        }
        return result, timing

    @property
    def _loss_kind(self) -> Any:
        return self.plan.outputs[self.plan.of]

    # ---- evaluation -----------------------------------------------------------------------------
    def map_batches(
        self,
        function: str,
        params: Mapping[str, np.ndarray],
        batch_size: int | None = None,
        **data: Any,
    ) -> Any:
        """`forward` (a dict of outputs) or `value_and_grad` (outputs, gradients of the loss) of
        the whole of `data`, computed shard by shard on the workers: at most `batch_size` rows
        per task for NumPy data (default: one shard per worker), one task per chunk for dask
        arrays. Per-example outputs come back as the data came (NumPy, or dask arrays held on
        the workers); means, sums and gradients are combined as for a training step."""
        if function not in ("forward", "value_and_grad"):
            raise InputError(f"map_batches: function must be 'forward' or 'value_and_grad', "
                             f"got {function!r}")  # fmt: skip
        if batch_size is not None and not (isinstance(batch_size, int) and batch_size > 0):
            raise InputError(f"map_batches: batch_size must be an int > 0, got {batch_size!r}")
        n = check_inputs(self.plan, params, data, "map_batches")
        params, data = as_arrays(params), as_arrays(data)
        return self._redo_on_loss(
            f"map_batches({function!r})", lambda: self._map(function, params, data, n, batch_size)
        )

    def _map(self, function: str, params: dict, data: dict, n: int, batch_size: int | None):
        shared, shards, rows, _ = self._distribute(params, data, n, batch_size)
        parts = [
            self.client.submit(worker.shard_run, self.key, function, shared[0], s, shared[1],
                               pure=False)
            for s in shards
        ]  # fmt: skip
        if any(is_dask_array(data[k]) for k in self.plan.batched):
            outs, small = placement.dask_outputs(self.client, self.graph, self.plan, self.dtype,
                                                 parts, rows, data)  # fmt: skip
            gathered = {k: self._results(v, "map_batches") for k, v in small.items()}
            reduced = [{k: v[i] for k, v in gathered.items()} for i in range(len(parts))]
            outs |= combine_outputs(self.plan, reduced, rows) if small else {}
            if function == "forward":
                return outs
            grads = self._results([self.client.submit(worker.part, p, 1) for p in parts],
                                  "map_batches")  # fmt: skip
            return outs, combine_grads(self.plan, grads, rows)
        results = self._results(parts, f"map_batches({function!r})")
        outs = combine_outputs(self.plan, [r[0] for r in results], rows)
        if function == "forward":
            return outs
        return outs, combine_grads(self.plan, [r[1] for r in results], rows)

    def _distribute(
        self, params: dict, data: dict, n: int, batch_size: int | None = None
    ) -> tuple[list[Future], list[Any], list[int], int]:
        workers = self.workers()
        shared, shards, rows = placement.distribute(
            self.client, self.plan, workers, params, data, n, batch_size
        )
        return shared, shards, rows, len(workers)

    # ---- waiting, bounded -----------------------------------------------------------------------
    def _wait(self, futures: list[Future], what: str) -> None:
        try:
            wait(futures, timeout=self.timeout)
        except TimeoutError:
            self.client.cancel(futures)
            raise GraphcError(f"{what} took longer than timeout={self.timeout} s") from None
        for f in futures:
            if f.status == "error":
                f.result()  # raises the task's exception
            if f.status == "cancelled":
                raise FutureCancelledError(f.key, "lost with a worker")

    def _results(self, futures: list[Future], what: str) -> list[Any]:
        self._wait(futures, what)
        return self.client.gather(futures)

    def _redo_on_loss(self, what: str, attempt: Any) -> Any:
        """`attempt()`, done again (up to `retries` times) on the remaining workers when a
        worker is lost during it."""
        for tries in range(self.retries + 1):
            try:
                return attempt()
            except LOST as e:
                why = (str(e).splitlines() or [""])[0]
                message = (f"{what}: a worker was lost ({type(e).__name__}: {why}); redoing "
                           "it on the workers that remain")  # fmt: skip
                if tries == self.retries:
                    raise GraphcError(f"{message}: gave up after {self.retries} retries") from e
                log.warning(message)
                self.events.append(message)
        raise AssertionError("unreachable")

    def _need_optimizer(self, what: str) -> gc.optim.Optimizer:
        if self.optimizer is None:
            raise GraphError(f"{what} needs an optimizer: DataParallel(g, client, optimizer=...)")
        return self.optimizer

    # ---- checkpoints ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the latest params, optimiser state and step count to `path` (.npz, replaced
        atomically)."""
        if self.params is None or self.state is None:
            raise GraphError("save: nothing to save yet; call init_state or train_step first")
        return checkpoint.save(path, self.params, self.state, self.step, self._fingerprint())

    @classmethod
    def load(cls, path: str | Path, g: gc.Graph, client: Client, **kwargs: Any) -> DataParallel:
        """A DataParallel for `g` resumed from the checkpoint at `path`: its `params`, `state`
        and `step` are the saved ones (the other arguments as for DataParallel)."""
        dp = cls(g, client, **kwargs)
        try:
            dp.params, dp.state, dp.step = checkpoint.load(path, dp._fingerprint())
        except BaseException:
            dp.close()
            raise
        return dp

    def _fingerprint(self) -> dict[str, str]:
        return {
            "model": self.graph.name,
            "graph_sha256": checkpoint.sha256(self.graph.to_json()),
            "optimizer": repr(self.optimizer),
            "dtype": self.dtype,
            "of": self.plan.of,
        }
