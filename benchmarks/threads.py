"""What graphc's threads buy: each workload's compiled step on one thread against the same
module on every usable core, timed interleaved in one process, quiet or under load.

Workloads: `towers`, two independent softmax kernels of [N, 256] (N = 256, float64; each
runs on one thread, so only running the two at once uses both cores), with NumPy by hand
beside it; `chain`, the suite's elementwise chain on 10**6 float64 elements (large fused
loops shared among the threads); `cnn`, the suite's CNN step (conv and pool kernels shared
by images and planes).

    python -m benchmarks.threads                   # quiet machine
    python -m benchmarks.threads --background 2    # under load: 2 busy process loops
    python -m benchmarks.threads --quick           # smoke run: tiny sizes, no claims
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import graphc as gc
from benchmarks import suite
from benchmarks._timing import (
    FULL,
    QUICK,
    Case,
    background_load,
    fmt_us,
    format_table,
    load_average,
    measure,
)

WIDTH = 256


def towers_graph() -> gc.Graph:
    g = gc.Graph("towers")
    x, y = g.input("x", shape=("N", WIDTH)), g.input("y", shape=("N", WIDTH))
    a, c = g.param("a", shape=(WIDTH,)), g.param("c", shape=(WIDTH,))
    g.output("loss", gc.sum(gc.softmax(x) * a) + gc.sum(gc.log_softmax(y) * c))
    return g


def towers_numpy(x: np.ndarray, y: np.ndarray, a: np.ndarray, c: np.ndarray) -> tuple:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    s = e / e.sum(axis=1, keepdims=True)
    z = y - y.max(axis=1, keepdims=True)
    ls = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return {"loss": np.sum(s * a) + np.sum(ls * c)}, {"a": s.sum(axis=0), "c": ls.sum(axis=0)}


def workloads(quick: bool) -> dict[str, tuple[gc.Graph, str, dict, Callable | None]]:
    """name -> (graph, dtype, arrays, NumPy step or None)."""
    rng = np.random.default_rng(0)
    n = 16 if quick else 256
    towers = {k: rng.normal(size=(n, WIDTH)) for k in "xy"} | {
        k: rng.normal(size=WIDTH) for k in "ac"
    }
    wls = suite.workloads(quick)
    out = {"towers": (towers_graph(), "float64", towers, towers_numpy)}
    for key in ("chain", "cnn"):
        wl = wls[key]
        out[key] = (wl.graph(), wl.dtype, wl.arrays(wl.n), None)
    return out


def threaded(m: gc.CompiledModule, threads: int, kwargs: dict) -> Callable[[], object]:
    def step() -> object:
        m.module.set_num_threads(threads)
        return m.value_and_grad(**kwargs)

    return step


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.threads", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--background", type=int, default=0, metavar="N",
                    help="N busy process loops run throughout (see benchmarks.suite)")  # fmt: skip
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    plan = QUICK if args.quick else FULL
    rows = []
    start = load_average()
    with tempfile.TemporaryDirectory() as tmp, background_load(args.background):
        for key, (graph, dtype, arrays, numpy_step) in workloads(args.quick).items():
            m = gc.compile(graph, dtype=dtype, out_dir=Path(tmp))
            kwargs = {k: arrays[k] for k in m.INPUTS}
            cases = [Case("1", threaded(m, 1, kwargs)), Case("all", threaded(m, cores, kwargs))]
            if numpy_step is not None:
                want, got = numpy_step(**kwargs), m.value_and_grad(**kwargs)
                for k in want[1]:
                    np.testing.assert_allclose(got[1][k], want[1][k], rtol=1e-9, atol=1e-12)
                cases.append(Case("numpy", numpy_step, (), kwargs))
            _, helped0, stalls0 = m.module.thread_stats()
            t = measure(cases, plan)
            _, helped, stalls = m.module.thread_stats()
            one, many = t["1"].median_us, t["all"].median_us
            rows.append(
                [
                    key,
                    fmt_us(one),
                    fmt_us(many),
                    f"{one / many:.2f}",
                    fmt_us(t["numpy"].median_us) if "numpy" in t else "-",
                    str(helped - helped0),
                    str(stalls - stalls0),
                ]
            )
    end = load_average()
    loads = "unknown" if start is None else f"{start:.2f} at the start, {end:.2f} at the end"
    extra = f"; --background {args.background}" if args.background else ""
    print(f"graphc threads: {cores} usable cores; 1-minute load average {loads}{extra}")
    header = ["workload", "1 thread µs", f"{cores} threads µs", "speed-up", "NumPy µs",
              "pieces run by helpers", "stalls"]  # fmt: skip
    print(format_table(header, rows))
    print(
        "pieces run by helpers: pieces of loops and independent steps the helper threads took. "
        "stalls: calls that waited for a descheduled helper so long that the module ran the "
        "next 0.2 s of its calls on one thread (templates/pool.h)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
