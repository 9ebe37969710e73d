"""Workers in processes of their own: one build shared through the cache, a worker killed with
SIGKILL in the middle of a step, and checkpoints that resume a run bit for bit."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np
import pytest

import graphc as gc
from tests.distributed.conftest import SKIP_REASON, WORKERS
from tests.models import mlp

distributed = pytest.importorskip("distributed", reason=SKIP_REASON)

from graphc.distributed import DataParallel  # noqa: E402

pytestmark = pytest.mark.compiler
N = 120


class KillDuringShard(distributed.WorkerPlugin):
    """SIGKILLs the worker at `victim` when its shard of step `step` starts to run: the
    worker dies in the middle of that step, holding its shard."""

    name = "test-kill-during-shard"

    def __init__(self, victim: str, step: int) -> None:
        self.victim, self.step, self.seen = victim, step, 0

    def setup(self, worker: Any) -> None:
        self.address = worker.address

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if self.address == self.victim and finish == "executing" and "shard_grads" in str(key):
            self.seen += 1
            if self.seen == self.step:
                os.kill(os.getpid(), signal.SIGKILL)


def _setup(seed: int = 0) -> tuple[gc.Graph, dict, list[dict]]:
    g = mlp(np.random.default_rng(0), hidden=16)[0]
    rng = np.random.default_rng(seed)
    params = {"W1": rng.normal(size=(4, 16)), "b1": rng.normal(size=16),
              "W2": rng.normal(size=(16, 3))}  # fmt: skip
    batches = []
    for _ in range(20):
        batches.append({"x": rng.normal(size=(N, 4)), "t": np.eye(3)[rng.integers(0, 3, N)]})
    return g, params, batches


def _reference(g, opt, params, batches, build_dir) -> dict:
    m = gc.compile(g, out_dir=build_dir)
    params = {k: v.copy() for k, v in params.items()}
    state = opt.init(params)
    for b in batches:
        opt.step(params, m.value_and_grad(**b, **params)[1], state)
    return params


def _relative(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(b[k]))) for k in b)


def test_workers_in_processes_build_once_through_the_shared_cache(process_client, tmp_path):
    g, _, _ = _setup()
    with DataParallel(g, process_client, build_dir=tmp_path) as dp:
        builds = dp.builds
    assert len(builds) == WORKERS
    assert {b["key"] for b in builds.values()} == {dp.key}
    assert all(b["cache_hit"] for b in builds.values())  # the client built it; they loaded it
    pids = {b["pid"] for b in builds.values()}
    assert len(pids) == WORKERS and os.getpid() not in pids
    entries = [p.name for p in (tmp_path / "mlp").iterdir() if p.is_dir() and p.name[0] != "."]
    assert entries == [dp.key[:16]]


def test_a_worker_killed_mid_step_loses_no_update(process_client, build_dir) -> None:
    client = process_client
    g, params, batches = _setup()
    opt = gc.optim.Adam(lr=1e-2)
    with DataParallel(g, client, optimizer=opt, build_dir=build_dir, timeout=120) as dp:
        victim = sorted(dp.builds)[1]
        client.register_plugin(KillDuringShard(victim, step=6))
        try:
            state = dp.init_state(params)
            p = params
            for b in batches[:12]:
                _, p, state = dp.train_step(p, state, **b)
            assert len(dp.events) == 1 and "step 6: a worker was lost" in dp.events[0]
            assert dp.step == 12
            # The nanny restarts the killed worker; it gets the model from the plugin and
            # takes its shard again.
            client.wait_for_workers(WORKERS, timeout=60)
            for b in batches[12:]:
                _, p, state = dp.train_step(p, state, **b)
            assert dp.timings[-1].workers == WORKERS
        finally:
            client.unregister_worker_plugin(KillDuringShard.name)
    assert victim not in client.scheduler_info()["workers"]
    assert _relative(p, _reference(g, opt, params, batches, build_dir)) < 1e-12


def test_a_resumed_run_equals_an_uninterrupted_one_bit_for_bit(process_client, build_dir, tmp_path):
    g, params, batches = _setup(seed=1)
    opt = gc.optim.Adam(lr=1e-2)
    kw = {"optimizer": opt, "build_dir": build_dir}
    with DataParallel(g, process_client, **kw) as dp:
        state, p = dp.init_state(params), params
        for k, b in enumerate(batches):
            _, p, state = dp.train_step(p, state, **b)
            if k == 9:
                saved = dp.save(tmp_path / "run.npz")
    with DataParallel.load(saved, g, process_client, **kw) as resumed:
        assert resumed.step == 10
        q, rstate = resumed.params, resumed.state
        for b in batches[10:]:
            _, q, rstate = resumed.train_step(q, rstate, **b)
    assert all(np.array_equal(p[k], q[k]) for k in p)
    assert all(np.array_equal(state[k], rstate[k]) for k in state)
    assert resumed.step == dp.step == 20


def test_a_checkpoint_of_another_run_is_refused(client, build_dir, tmp_path) -> None:
    g, params, _ = _setup()
    with DataParallel(g, client, optimizer=gc.optim.SGD(lr=0.1), build_dir=build_dir) as dp:
        dp.init_state(params)
        path = dp.save(tmp_path / "sgd.npz")
    with pytest.raises(gc.GraphcError, match=r"saved for another run \(optimizer: saved 'SGD"):
        DataParallel.load(path, g, client, optimizer=gc.optim.Adam(), build_dir=build_dir)
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(gc.InputError, match="is not a readable graphc checkpoint"):
        DataParallel.load(tmp_path / "junk.npz", g, client, build_dir=build_dir)


def test_a_step_that_cannot_finish_in_time_is_an_error_not_a_hang(client, build_dir) -> None:
    g, params, batches = _setup()
    with DataParallel(g, client, optimizer=gc.optim.SGD(), build_dir=build_dir, timeout=0.5) as dp:
        state = dp.init_state(params)
        busy = [client.submit(time.sleep, 2, workers=[w], pure=False) for w in dp.builds]
        t0 = time.monotonic()
        with pytest.raises(gc.GraphcError, match=r"took longer than timeout=0.5 s"):
            dp.train_step(params, state, **batches[0])
        assert time.monotonic() - t0 < 1.5
        distributed.wait(busy, timeout=10)
        assert dp.step == 0  # the step did not count
        _, p, _ = dp.train_step(params, state, **batches[0])  # and the next one runs
    assert dp.step == 1 and _relative(p, params) > 0
