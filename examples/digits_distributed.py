"""The digits CNN of digits_cnn.py trained data-parallel on a 2-worker Dask LocalCluster.

    python examples/digits_distributed.py [--epochs 30] [--plot curves.png] [--quick]

The model, data, batches (32), optimiser (Adam, lr 2e-3) and epochs are those of digits_cnn.py;
each step splits its batch between the two workers, adds their gradients up and updates the
params once, so it trains as digits_cnn.py does and reaches the same held-out accuracy (target:
at least 98%). The held-out accuracy is computed on the workers too (map_batches). Prints one
line per epoch, where a step's time went, and the accuracy at the end.
Needs scikit-learn and Dask: pip install 'graphc[examples,distributed]'.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from digits_cnn import TARGET, graph
from digits_mlp import load
from training import finish, fit, need, options

import graphc as gc

WORKERS = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = options(__doc__.splitlines()[0], epochs=30, argv=argv)
    need("distributed", "distributed")
    from distributed import Client, LocalCluster

    from graphc.distributed import DataParallel

    x_train, x_test, y_train, y_test = load(args.seed)
    x_train, x_test = (a.reshape(-1, 1, 8, 8) for a in (x_train, x_test))
    g = graph()
    cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, dashboard_address=None,
                           scheduler_kwargs={"dashboard_address": ":0"})  # fmt: skip
    with cluster, Client(cluster) as client:
        client.wait_for_workers(WORKERS, timeout=120)
        dp = DataParallel(g, client, optimizer=gc.optim.Adam(lr=2e-3), dtype="float32",
                          build_dir=Path(args.out).absolute(), timeout=300)  # fmt: skip
        print(f"{WORKERS} workers, each built {g.name!r} with key {dp.key[:16]}", flush=True)
        params = gc.nn.init_params(g, seed=args.seed, dtype="float32")
        state = dp.init_state(params)

        def step(idx: np.ndarray) -> tuple[float, None]:
            nonlocal params, state
            loss, params, state = dp.train_step(params, state, x=x_train[idx], labels=y_train[idx])
            return loss, None

        def accuracy() -> float:
            logits = dp.map_batches("forward", params, x=x_test, labels=y_test)["logits"]
            return float(np.mean(logits.argmax(1) == y_test))

        rng = np.random.default_rng(args.seed)
        h = fit(step, accuracy, len(x_train), 32, args.epochs, rng, "test accuracy", args.quick)
        times = dp.timings[1:] or dp.timings  # the first step also starts things up
        mean = {k: np.mean([getattr(t, k) for t in times]) * 1e3
                for k in ("total", "scatter", "shards", "compute", "reduce", "update")}  # fmt: skip
        print(f"per step ({len(times)} steps, ms): " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                                mean.items()))  # fmt: skip
        dp.close()
    return finish(h, args, TARGET)


if __name__ == "__main__":
    sys.exit(main())
