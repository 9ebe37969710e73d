"""Time of one data-parallel training step on a Dask LocalCluster of 1 and 2 workers, beside the
same step in one process, and where the step's time goes.

Workloads: `seed`, the 3-2-2 sigmoid network of examples/seed_network.py (batch 64, float64);
`digits_mlp`, the MLP of examples/digits_mlp.py (64-128-64-10, batch 512, float32); `cnn`, a
compute-heavy CNN (1x28x28 images, conv 3x3 to 16 channels, ReLU, 2x2 max-pool, conv 3x3 to 32,
ReLU, 2x2 max-pool, dense 1568 to 10, batch 512, float32). Each step is Adam's.

Rows: `one process` is `value_and_grad` on the whole batch and `opt.step` in a process of its
own, with graphc's and BLAS's default threads (`1 thread`: with one thread each); `N workers`
is `DataParallel.train_step` on a LocalCluster of N worker processes with one thread each
(GRAPHC_NUM_THREADS and the BLAS thread counts set to 1 in the workers). Before anything is
timed, one step from the same params is taken every way and the params compared with the
first row's (`max rel err`; MISMATCH beyond 1e-12 in float64, 1e-5 in float32).

    python -m benchmarks.distributed              # full run, a few minutes
    python -m benchmarks.distributed --quick      # smoke run: small batches, a few steps
    python -m benchmarks.distributed --workloads seed,cnn --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import graphc as gc
from benchmarks._timing import format_table, load_average, machine_info, run_child

ROOT = Path(__file__).resolve().parent.parent
SPLIT = ("scatter", "shards", "compute", "reduce", "update")
ONE_THREAD = {k: "1" for k in ("GRAPHC_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                "MKL_NUM_THREADS")}  # fmt: skip


@dataclass
class Workload:
    key: str
    title: str
    dtype: str
    n: int
    graph: Callable[[], gc.Graph]
    batch: Callable[[int], dict[str, np.ndarray]]


def _seed() -> gc.Graph:
    sys.path.insert(0, str(ROOT / "examples"))
    from seed_network import build  # type: ignore[import-not-found]

    return build()


def _seed_batch(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(n, 3)), "y": rng.uniform(size=(n, 2))}


def _digits_mlp() -> gc.Graph:
    sys.path.insert(0, str(ROOT / "examples"))
    from digits_mlp import graph  # type: ignore[import-not-found]

    return graph()


def _digits_batch(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.uniform(size=(n, 64)).astype(np.float32), "labels": rng.integers(0, 10, n)}


def _cnn() -> gc.Graph:
    g = gc.Graph("dist_cnn")
    x = g.input("x", shape=("N", 1, 28, 28), dtype="float32")
    labels = g.input("labels", shape=("N",), dtype="int64")
    h = gc.max_pool2d(gc.nn.conv2d(x, 16, 3, "conv1", padding=1, activation="relu"), 2)
    h = gc.max_pool2d(gc.nn.conv2d(h, 32, 3, "conv2", padding=1, activation="relu"), 2)
    g.output("loss", gc.softmax_cross_entropy(gc.nn.dense(gc.nn.flatten(h), 10, "out"), labels))
    return g


def _cnn_batch(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 1, 28, 28)).astype(np.float32)
    return {"x": x, "labels": rng.integers(0, 10, n)}


def workloads(quick: bool) -> dict[str, Workload]:
    small = 16 if quick else None
    return {
        "seed": Workload("seed", "seed net", "float64", 64, _seed, _seed_batch),
        "digits_mlp": Workload(
            "digits_mlp", "digits MLP", "float32", small or 512, _digits_mlp, _digits_batch
        ),  # fmt: skip
        "cnn": Workload("cnn", "CNN", "float32", small or 512, _cnn, _cnn_batch),
    }


def _params(g: gc.Graph, dtype: str) -> dict[str, np.ndarray]:
    params = gc.nn.init_params(g, seed=0, dtype=dtype, missing="skip")
    rng = np.random.default_rng(1)
    for name, node in g.input_ids("param").items():  # params without an init record
        if name not in params:
            shape = g.nx.nodes[node]["shape"]
            params[name] = (rng.normal(size=shape) * 0.5).astype(dtype)
    return params


def one_process(wl: Workload, build_dir: Path, steps: int) -> tuple[dict, dict[str, list]]:
    """Params after one step from the start, and per-step times (compute = value_and_grad)."""
    g = wl.graph()
    m = gc.compile(g, dtype=wl.dtype, out_dir=build_dir, functions=("forward", "value_and_grad"))
    batch, opt = wl.batch(wl.n), gc.optim.Adam(lr=1e-3)
    params = _params(g, wl.dtype)
    state = opt.init(params)
    times: dict[str, list] = {"total": [], "compute": [], "update": []}
    first = None
    for k in range(steps + 2):  # the first two are warm-up
        t0 = time.perf_counter()
        _, grads = m.value_and_grad(**batch, **params)
        t1 = time.perf_counter()
        opt.step(params, grads, state)
        t2 = time.perf_counter()
        if k == 0:
            first = {p: v.copy() for p, v in params.items()}
        if k >= 2:
            times["total"].append(t2 - t0)
            times["compute"].append(t1 - t0)
            times["update"].append(t2 - t1)
    return first, times


def data_parallel(wl: Workload, client: Any, build_dir: Path, steps: int) -> tuple[dict, list]:
    from graphc.distributed import DataParallel

    g = wl.graph()
    opt = gc.optim.Adam(lr=1e-3)
    with DataParallel(g, client, optimizer=opt, dtype=wl.dtype, build_dir=build_dir,
                      timeout=600) as dp:  # fmt: skip
        batch, params = wl.batch(wl.n), _params(g, wl.dtype)
        state = dp.init_state(params)
        first = None
        for k in range(steps + 2):
            _, params, state = dp.train_step(params, state, **batch)
            if k == 0:
                first = params
        return first, dp.timings[2:]


def _median_ms(values: Sequence[float]) -> str:
    return f"{statistics.median(values) * 1e3:.2f}" if values else "-"


def _rel(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k] - b[k])) / max(np.max(np.abs(b[k])), 1e-30)) for k in b)


def run(args: argparse.Namespace) -> tuple[list[dict], bool]:
    from distributed import Client, LocalCluster

    chosen = args.workloads.split(",") if args.workloads else list(workloads(args.quick))
    wls = workloads(args.quick)
    unknown = [k for k in chosen if k not in wls]
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}; choose from {list(wls)}")
    steps = 3 if args.quick else args.steps
    results, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        build_dir = Path(args.build_dir or tmp).absolute()
        ref = {}
        for k in chosen:
            for config, env in (("one process", {}), ("one process, 1 thread", ONE_THREAD)):
                spec = {"workload": k, "quick": args.quick, "dir": str(build_dir), "steps": steps}
                out = run_child("benchmarks.distributed", spec, env)
                if "error" in out:
                    raise SystemExit(f"{k}, {config}: {out['error']}")
                first = {p: np.array(v, dtype=wls[k].dtype) for p, v in out["first"].items()}
                ref.setdefault(k, first)
                ok &= _rel(first, ref[k]) <= (1e-12 if wls[k].dtype == "float64" else 1e-5)
                times = {s: out["times"].get(s, []) for s in ("total", *SPLIT)}
                results.append({"workload": k, "config": config, "rel_err": _rel(first, ref[k]),
                                **times})  # fmt: skip
        for workers in (1, 2):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, env=ONE_THREAD,
                                   dashboard_address=None,
                                   scheduler_kwargs={"dashboard_address": ":0"})  # fmt: skip
            with cluster, Client(cluster) as client:
                client.wait_for_workers(workers, timeout=120)
                for k in chosen:
                    first, timings = data_parallel(wls[k], client, build_dir, steps)
                    err = _rel(first, ref[k])
                    ok &= err <= (1e-12 if wls[k].dtype == "float64" else 1e-5)
                    row = {s: [getattr(t, s) for t in timings] for s in ("total", *SPLIT)}
                    config = f"{workers} worker" + "s" * (workers > 1)
                    results.append({"workload": k, "config": config, "rel_err": err,
                                    "bytes": timings[-1].bytes, **row})  # fmt: skip
    return results, ok


def report(results: list[dict], args: argparse.Namespace) -> None:
    wls = workloads(args.quick)
    for key in dict.fromkeys(r["workload"] for r in results):
        wl = wls[key]
        g = wl.graph()
        n_params = sum(v.size for v in _params(g, wl.dtype).values())
        size = n_params * np.dtype(wl.dtype).itemsize
        print(f"\n== {key}: {wl.title}, batch {wl.n}, {wl.dtype}, {n_params:,} params "
              f"({size / 1024:,.1f} KiB) ==")  # fmt: skip
        rows = []
        for r in (r for r in results if r["workload"] == key):
            moved = sum(r.get("bytes", {}).values())
            times = [_median_ms(r[s]) for s in ("total", *SPLIT)]
            kib = f"{moved / 1024:,.1f}" if moved else "-"
            rows.append([r["config"], *times, kib, f"{r['rel_err']:.1e}"])
        print(format_table(["", "step ms", "scatter", "shards", "compute", "reduce", "update",
                            "KiB moved", "max rel err"], rows))  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="small batches, 3 steps: a smoke run")
    ap.add_argument("--workloads", help="a subset of seed,digits_mlp,cnn")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per row (20)")
    ap.add_argument("--build-dir", help="graphc's build cache (default: a temporary directory)")
    ap.add_argument("--json", help="also write every number to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:  # one process's steps, in a process of its own (see run)
        spec = json.loads(args.child)
        wl = workloads(spec["quick"])[spec["workload"]]
        first, times = one_process(wl, Path(spec["dir"]), spec["steps"])
        print(json.dumps({"first": {k: v.tolist() for k, v in first.items()}, "times": times}))
        return 0
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("benchmarks.distributed needs Dask: pip install 'graphc[distributed]'")
        return 1
    start = load_average()
    results, ok = run(args)
    info = machine_info(["numpy", "cython", "dask", "distributed"])
    print(f"\ngraphc data-parallel step; {info['cpu']}, {info['cores_usable']} usable cores; "
          f"1-minute load average {start} at the start, {load_average()} at the end")  # fmt: skip
    print("median over the timed steps, in ms; scatter: params and shards sent; shards: until "
          "every shard's result is ready; compute: the slowest shard inside value_and_grad; "
          "reduce: until the sum is on the client; update: Adam on the client")  # fmt: skip
    report(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "results": results}, indent=1))
    if not ok:
        print("MISMATCH: a data-parallel step differs from the one-process step")
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
