"""What the per-op benchmarks share (benchmarks/resample.py, benchmarks/elementwise.py): each
workload's forward and value_and_grad models, compiled by graphc, run by graphc's interpreter
(the ops' NumPy references) and by PyTorch's eager CPU kernels when installed, in one process
on the same number of threads; graphc and PyTorch timed interleaved, then NumPy (interleaved
with them, its large temporaries slowed the compiled modules' next calls: a bilinear forward
9.2 ms instead of 3.4 here).

forward is y alone (a model whose only output is y); value_and_grad is the loss sum(y * r) for
a fixed r and its gradient in the inputs, PyTorch's a forward with autograd and
torch.autograd.grad.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import graphc as gc
from benchmarks._timing import FULL, QUICK, Case, fmt_us, format_table, load_average, measure

DTYPE = "float32"  # the default; --dtype float64 for the other
# name -> (input shapes, graphc's y(x, ...), PyTorch's y(x, ...))
Workloads = dict[str, tuple[dict[str, tuple], Callable, Callable]]


def graphs(
    name: str, shapes: dict[str, tuple], fn: Callable, dtype: str = DTYPE
) -> tuple[gc.Graph, gc.Graph]:
    """(the forward model: y of data inputs; the gradient's: loss = sum(y * r) of params)."""
    out = []
    for grad in (False, True):
        g = gc.Graph("".join(c if c.isalnum() else "_" for c in name) + ("_grad" if grad else ""))
        y = fn(
            *((g.param if grad else g.input)(k, shape=s, dtype=dtype) for k, s in shapes.items())
        )
        if grad:
            g.output("loss", gc.sum(y * g.input("r", shape=y.shape, dtype=dtype)))
        else:
            g.output("y", y)
        out.append(g)
    return out[0], out[1]


def cases(
    workloads: Workloads,
    threads: int,
    out: Path,
    inputs: Callable = np.random.Generator.standard_normal,
    dtype: str = DTYPE,
) -> tuple[list[Case], str | None]:
    """Every implementation's forward and value_and_grad of every workload, and why PyTorch is
    left out (or None). `inputs(rng, shape)` draws an input."""
    rng = np.random.default_rng(0)
    try:
        import torch

        torch.set_num_threads(threads)
        skipped = None
    except ImportError as exc:
        torch, skipped = None, f"PyTorch not importable ({exc})"
    out_cases = []
    for name, (shapes, ours, theirs) in workloads.items():
        fwd, grad_g = graphs(name, shapes, ours, dtype)
        mf, mg = (gc.compile(g, dtype=dtype, out_dir=out) for g in (fwd, grad_g))
        for m in (mf, mg):
            m.module.set_num_threads(threads)
        x = {k: inputs(rng, s).astype(dtype) for k, s in shapes.items()}
        feed = x | {"r": rng.standard_normal(fwd["y"].shape).astype(dtype)}
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
    return out_cases, skipped


def run(
    title: str, workloads: Workloads, quick: bool, threads: int, dtype: str = DTYPE, **kw: Any
) -> None:
    """Time every workload and print the table: median µs per call, and NumPy's and PyTorch's
    times over graphc's (above 1: graphc is faster)."""
    start = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        all_cases, skipped = cases(workloads, threads, Path(tmp), dtype=dtype, **kw)
        plan = QUICK if quick else FULL
        numpy = [c for c in all_cases if "|NumPy|" in c.name]
        rest = [c for c in all_cases if "|NumPy|" not in c.name]
        times = {k: t.median_us for part in (rest, numpy) for k, t in measure(part, plan).items()}
    end = load_average()
    rows = []
    for name in workloads:
        for fn, label in (("forward", "forward"), ("grad", "value_and_grad")):
            us = {impl: times.get(f"{name}|{impl}|{fn}") for impl in ("graphc", "NumPy", "PyTorch")}
            ratio = [f"{us[i] / us['graphc']:.2f}" if us[i] else "-" for i in ("NumPy", "PyTorch")]
            rows.append([name, label, *(fmt_us(v) if v else "-" for v in us.values()), *ratio])
    loads = "unknown" if start is None else f"{start:.2f} at the start, {end:.2f} at the end"
    print(f"{title}, {dtype}, {threads} thread(s) each (median µs per call); "
          f"1-minute load average {loads}")  # fmt: skip
    header = ["workload", "function", "graphc", "NumPy", "PyTorch", "NumPy/graphc",
              "PyTorch/graphc"]  # fmt: skip
    print(format_table(header, rows))
    if skipped:
        print(f"skipped PyTorch: {skipped}")


def torch() -> Any:
    """PyTorch, imported when a workload first asks for it (it is optional)."""
    import torch

    return torch


def main(prog: str, doc: str, title: str, workloads: Callable, argv: Sequence[str] | None,
         **kw: Any) -> int:  # fmt: skip
    """A per-op benchmark's command line: `workloads(quick)` timed and printed by `run`."""
    ap = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--threads", type=int, default=1, help="graphc's and PyTorch's threads")
    ap.add_argument("--dtype", choices=("float32", "float64"), default=DTYPE,
                    help="the models' and inputs' dtype")  # fmt: skip
    args = ap.parse_args(argv)
    run(title, workloads(args.quick), args.quick, args.threads, args.dtype, **kw)
    return 0
