"""Fixtures of the data-parallel tests: Dask clusters started in this process (no outside
service), always closed, and one build directory shared by the tests of a run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SKIP_REASON = "graphc.distributed needs Dask's distributed: pip install 'graphc[distributed]'"
WORKERS = 2


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("distributed-build")


def local_client(processes: bool) -> Any:
    """A LocalCluster of WORKERS one-thread workers and a client, as a context manager."""
    distributed = pytest.importorskip("distributed", reason=SKIP_REASON)
    import contextlib

    import dask

    @contextlib.contextmanager
    def started() -> Iterator[Any]:
        # No work stealing: a task runs where most of its data is, so a test can see where.
        with dask.config.set({"distributed.scheduler.work-stealing": False}):
            cluster = distributed.LocalCluster(
                n_workers=WORKERS, threads_per_worker=1, processes=processes,
                dashboard_address=None, worker_dashboard_address=None,
                # the scheduler's HTTP server on a free port, not 8787 (which may be taken)
                scheduler_kwargs={"dashboard_address": ":0"},
            )  # fmt: skip
        try:
            with distributed.Client(cluster, timeout=60) as client:
                client.wait_for_workers(WORKERS, timeout=60)
                yield client
        finally:
            cluster.close(timeout=60)

    return started()


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """Two workers as threads of this process: quick to start, same answers as processes."""
    with local_client(processes=False) as c:
        yield c


@pytest.fixture(scope="module")
def process_client() -> Iterator[Any]:
    """Two workers in processes of their own (each restarted by its nanny when killed)."""
    with local_client(processes=True) as c:
        yield c
