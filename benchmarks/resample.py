"""Resampling and 1-D convolution: graphc's compiled interpolate (bilinear, trilinear, nearest)
and conv1d, forward and value_and_grad, in float32, against NumPy (graphc's interpreter: the
ops' NumPy references) and PyTorch's eager CPU kernels when installed, in one process on the
same number of threads (one by default: a shared machine's numbers); graphc and PyTorch timed
interleaved, then NumPy.

forward is y alone (a model whose only output is y); value_and_grad is the loss sum(y * r) for
a fixed r and its gradient in x (and in w for conv1d), PyTorch's a forward with autograd and
torch.autograd.grad.

    python -m benchmarks.resample               # full run
    python -m benchmarks.resample --threads 2   # graphc's and PyTorch's threads both 2
    python -m benchmarks.resample --quick       # smoke run: tiny sizes, no claims
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import graphc as gc
from benchmarks._timing import FULL, QUICK, Case, fmt_us, format_table, load_average, measure

DTYPE = "float32"


def workloads(quick: bool) -> dict[str, tuple[dict[str, tuple], Callable, Callable]]:
    """name -> (input shapes, graphc's y(x, ...), PyTorch's y(x, ...))."""
    n = 1 if quick else 8

    def interp(**kw: Any) -> tuple[Callable, Callable]:
        return (lambda x: gc.interpolate(x, **kw),
                lambda x: _torch().nn.functional.interpolate(x, **kw))  # fmt: skip

    s2, s3, length = (8, 4, 16) if quick else (64, 16, 1024)
    return {
        "bilinear": ({"x": (n, 16, s2, s2)}, *interp(size=(2 * s2, 2 * s2), mode="bilinear")),
        "trilinear": ({"x": (max(1, n // 4), 8, s3, 2 * s3, 2 * s3)},
                      *interp(scale_factor=(2.0, 1.5, 1.5), mode="trilinear",
                              align_corners=True)),
        "nearest": ({"x": (n, 16, s2, s2)}, *interp(scale_factor=2.0)),
        "nearest (down)": ({"x": (n, 16, 2 * s2, 2 * s2)}, *interp(size=(s2 - 3, s2 + 5))),
        "conv1d": ({"x": (n, 16, length), "w": (32, 16, 5)},
                   lambda x, w: gc.conv1d(x, w, padding=2),
                   lambda x, w: _torch().nn.functional.conv1d(x, w, padding=2)),
    }  # fmt: skip


def _torch() -> Any:
    import torch

    return torch


def graphs(name: str, shapes: dict[str, tuple], fn: Callable) -> tuple[gc.Graph, gc.Graph]:
    """(the forward model: y of data inputs; the gradient's: loss = sum(y * r) of params)."""
    out = []
    for grad in (False, True):
        g = gc.Graph(name.split()[0] + ("_grad" if grad else ""))
        y = fn(
            *((g.param if grad else g.input)(k, shape=s, dtype=DTYPE) for k, s in shapes.items())
        )
        if grad:
            g.output("loss", gc.sum(y * g.input("r", shape=y.shape, dtype=DTYPE)))
        else:
            g.output("y", y)
        out.append(g)
    return out[0], out[1]


def cases(quick: bool, threads: int, out: Path) -> tuple[list[Case], list[str], str | None]:
    """Every implementation's forward and value_and_grad of every workload; the workload
    names; why PyTorch is left out (or None)."""
    rng = np.random.default_rng(0)
    try:
        torch = _torch()
        torch.set_num_threads(threads)
        skipped = None
    except ImportError as exc:
        torch, skipped = None, f"PyTorch not importable ({exc})"
    out_cases = []
    for name, (shapes, ours, theirs) in workloads(quick).items():
        fwd, grad_g = graphs(name, shapes, ours)
        mf, mg = (gc.compile(g, dtype=DTYPE, out_dir=out) for g in (fwd, grad_g))
        for m in (mf, mg):
            m.module.set_num_threads(threads)
        x = {k: rng.standard_normal(s).astype(DTYPE) for k, s in shapes.items()}
        feed = x | {"r": rng.standard_normal(fwd["y"].shape).astype(DTYPE)}
        out_cases += [
            Case(f"{name}|graphc|forward", mf.forward, (), x),
            Case(f"{name}|graphc|grad", mg.value_and_grad, (), feed),
            Case(f"{name}|NumPy|forward", gc.evaluate, (fwd, x)),
            Case(f"{name}|NumPy|grad", gc.value_and_grad, (grad_g, feed, "loss")),
        ]
        if torch is None:
            continue
        ts = {k: torch.tensor(feed[k]) for k in shapes}
        r = torch.tensor(feed["r"])

        def forward(fn: Callable = theirs, ts: dict = ts) -> Any:
            with torch.no_grad():
                return fn(*ts.values())

        def grad(fn: Callable = theirs, ts: dict = ts, r: Any = r) -> Any:
            leaves = [t.detach().requires_grad_() for t in ts.values()]
            loss = (fn(*leaves) * r).sum()
            return loss, torch.autograd.grad(loss, leaves)

        out_cases += [Case(f"{name}|PyTorch|forward", forward), Case(f"{name}|PyTorch|grad", grad)]
    return out_cases, list(workloads(quick)), skipped


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.resample", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--threads", type=int, default=1, help="graphc's and PyTorch's threads")
    args = ap.parse_args(argv)
    start = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        all_cases, names, skipped = cases(args.quick, args.threads, Path(tmp))
        plan = QUICK if args.quick else FULL
        # NumPy's cases after the others: interleaved with them, its large temporaries slowed
        # the compiled modules' next calls (bilinear forward 9.2 ms instead of 3.4 here)
        numpy = [c for c in all_cases if "|NumPy|" in c.name]
        rest = [c for c in all_cases if "|NumPy|" not in c.name]
        times = {k: t.median_us for part in (rest, numpy) for k, t in measure(part, plan).items()}
    end = load_average()
    rows = []
    for name in names:
        for fn, label in (("forward", "forward"), ("grad", "value_and_grad")):
            us = {impl: times.get(f"{name}|{impl}|{fn}") for impl in ("graphc", "NumPy", "PyTorch")}
            ratio = [f"{us[i] / us['graphc']:.2f}" if us[i] else "-" for i in ("NumPy", "PyTorch")]
            rows.append([name, label, *(fmt_us(v) if v else "-" for v in us.values()), *ratio])
    loads = "unknown" if start is None else f"{start:.2f} at the start, {end:.2f} at the end"
    print(f"resampling and conv1d, float32, {args.threads} thread(s) each (median µs per call); "
          f"1-minute load average {loads}")  # fmt: skip
    header = ["workload", "function", "graphc", "NumPy", "PyTorch", "NumPy/graphc",
              "PyTorch/graphc"]  # fmt: skip
    print(format_table(header, rows))
    if skipped:
        print(f"skipped PyTorch: {skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
