"""Data-parallel training and evaluation of graphc models on a Dask cluster.

    from graphc.distributed import DataParallel
    dp = DataParallel(g, client, optimizer=gc.optim.Adam(lr=1e-3))

Needs Dask's distributed scheduler (`pip install 'graphc[distributed]'`); graphc itself never
imports it. `graphc.distributed.batch` (which models split into shards) needs only graphc.
"""

from __future__ import annotations

from typing import Any

INSTALL = "pip install 'graphc[distributed]'"


def __getattr__(name: str) -> Any:
    if name in ("DataParallel", "StepTiming"):
        try:
            import distributed  # noqa: F401
        except ImportError as e:
            raise ImportError(
                f"graphc.distributed.{name} needs Dask's distributed scheduler, which is not "
                f"installed ({e}); install it with {INSTALL}"
            ) from e
        from graphc.distributed import parallel

        return getattr(parallel, name)
    raise AttributeError(f"module 'graphc.distributed' has no attribute {name!r}")


__all__ = ["DataParallel", "StepTiming"]
