"""Peak memory of one `value_and_grad` call: graphc's planned, naive and checkpointed modules
against PyTorch eager and JAX `jit(value_and_grad)`, each in a fresh process.

Three float64 workloads: an MLP 784-256-256-10 (ReLU, softmax cross-entropy, batch 4096), a
32-layer tanh MLP of width 512 (batch 256) and a 200-step unrolled tanh RNN of width 256 with one
input per step (batch 64). For each implementation and workload a subprocess sets up inputs and
parameters, makes one warm-up call, then measures the peak resident set size of one call above
the RSS after setup, before the warm-up call, so that memory kept between calls (graphc's spare
output block and arena, an allocator's pool) counts (Linux: VmHWM after resetting it through
/proc/self/clear_refs). graphc's
planner numbers (naive bytes, planned arena) and the time cost of checkpointing on the RNN are
reported beside the measurements, with PASS/FAIL against the targets.

    python -m benchmarks.memory                   # full run (builds cached in build/)
    python -m benchmarks.memory --quick           # smoke run: tiny sizes, no memory claims
    python -m benchmarks.memory --json out.json
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import sys
import tempfile
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from gc import collect as collect_garbage
from pathlib import Path
from typing import Any

import numpy as np

import graphc as gc
from benchmarks._timing import (
    QUICK,
    Case,
    Plan,
    format_fields,
    format_table,
    load_average,
    machine_info,
    measure,
    run_child,
)
from graphc.compiler import run_stages
from graphc.passes.plan_report import totals

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("graphc", "numpy", "scipy", "Cython", "torch", "jax", "jaxlib")
DTYPE = "float64"
TOLERANCE = 1e-6  # relative difference from graphc planned: loss, and gradients (see README)
BUDGET_FRACTION = 0.25  # of the unbudgeted planned arena at the batch size
PROBE_BYTES = 64 << 20  # the method check: one NumPy array of this size, filled in the call
MiB = float(1 << 20)
SEED = 0

# Implementations, in table order: key -> row label.
GRAPHC_VARIANTS = {"planned": "graphc planned", "naive": "graphc naive", "budget": "graphc budget"}
IMPLS = {**GRAPHC_VARIANTS, "torch": "PyTorch eager", "jax": "JAX jit(value_and_grad)"}

# Targets (reported PASS/FAIL; nothing is asserted).
ARENA_TARGET = 0.5  # planned arena <= 0.5 x naive bytes on the deep MLP and the RNN
TIME_TARGET = 1.5  # the budgeted RNN call <= 1.5 x the unbudgeted call's time
RNN_TIMING = Plan(warmup_ns=1_000_000_000, batch_ns=200_000_000, batches=11)


# --- workloads ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ops:
    """The few operations the workloads use, in one framework's spelling."""

    tanh: Callable[[Any], Any]
    relu: Callable[[Any], Any]
    mean: Callable[[Any], Any]
    xent: Callable[[Any, Any], Any]  # softmax cross-entropy, mean over the batch


@dataclass(frozen=True)
class Arg:
    """One argument of a workload: "N" in `shape` is the batch size."""

    name: str
    shape: tuple[int | str, ...]
    kind: str  # "input" or "param" (gradients are taken w.r.t. params)
    init: str = "normal"  # "normal" (weights scaled by 1/sqrt(fan-in)), "bias", "onehot"


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    batch: int
    args: tuple[Arg, ...]
    loss: Callable[[Ops, dict[str, Any]], Any]  # the same math for graphc, PyTorch and JAX

    def shape(self, arg: Arg) -> tuple[int, ...]:
        return tuple(self.batch if d == "N" else int(d) for d in arg.shape)

    @property
    def params(self) -> list[str]:
        return [a.name for a in self.args if a.kind == "param"]

    def grad_bytes(self) -> int:
        """Bytes of the gradients every implementation must return."""
        return sum(8 * int(np.prod(self.shape(a))) for a in self.args if a.kind == "param")


def mlp(inp: int, hidden: int, classes: int, batch: int) -> Workload:
    """ReLU MLP inp-hidden-hidden-classes with softmax cross-entropy on one-hot labels."""

    def loss(ops: Ops, v: dict[str, Any]) -> Any:
        h = ops.relu(v["x"] @ v["W1"] + v["b1"])
        h = ops.relu(h @ v["W2"] + v["b2"])
        return ops.xent(h @ v["W3"] + v["b3"], v["y"])

    dims = [inp, hidden, hidden, classes]
    args = [Arg("x", ("N", inp), "input"), Arg("y", ("N", classes), "input", "onehot")]
    for i in range(3):
        args += [
            Arg(f"W{i + 1}", (dims[i], dims[i + 1]), "param"),
            Arg(f"b{i + 1}", (dims[i + 1],), "param", "bias"),
        ]
    title = f"MLP {'-'.join(map(str, dims))} ReLU, softmax cross-entropy, batch {batch}"
    return Workload("mlp", title, batch, tuple(args), loss)


def deep_mlp(layers: int, width: int, batch: int) -> Workload:
    """`layers` tanh layers of `width`; loss = mean(h**2) of the last."""

    def loss(ops: Ops, v: dict[str, Any]) -> Any:
        h = v["x"]
        for i in range(layers):
            h = ops.tanh(h @ v[f"W{i}"] + v[f"b{i}"])
        return ops.mean(h * h)

    args = [Arg("x", ("N", width), "input")]
    for i in range(layers):
        args += [Arg(f"W{i}", (width, width), "param"), Arg(f"b{i}", (width,), "param", "bias")]
    title = f"{layers}-layer tanh MLP, width {width}, loss mean(h^2), batch {batch}"
    return Workload("deep_mlp", title, batch, tuple(args), loss)


def rnn(steps: int, width: int, batch: int) -> Workload:
    """h_{t+1} = tanh(h_t @ W + x_t @ U + b) for `steps` steps, one input x_t per step;
    loss = mean(h_T**2)."""

    def loss(ops: Ops, v: dict[str, Any]) -> Any:
        h = v["h0"]
        for t in range(steps):
            h = ops.tanh(h @ v["W"] + v[f"x{t}"] @ v["U"] + v["b"])
        return ops.mean(h * h)

    args = [Arg("h0", ("N", width), "input")]
    args += [Arg(f"x{t}", ("N", width), "input") for t in range(steps)]
    args += [
        Arg("W", (width, width), "param"),
        Arg("U", (width, width), "param"),
        Arg("b", (width,), "param", "bias"),
    ]
    title = (
        f"{steps}-step unrolled tanh RNN, width {width}, {steps} per-step inputs, "
        f"loss mean(h_T^2), batch {batch}"
    )
    return Workload("rnn", title, batch, tuple(args), loss)


def workloads(quick: bool) -> dict[str, Workload]:
    """The three workloads; with `quick`, tiny versions of them."""
    if quick:
        wls = [mlp(24, 16, 10, 32), deep_mlp(4, 16, 8), rnn(6, 16, 4)]
    else:
        wls = [mlp(784, 256, 10, 4096), deep_mlp(32, 512, 256), rnn(200, 256, 64)]
    return {w.key: w for w in wls}


def make_arrays(wl: Workload, seed: int = SEED) -> dict[str, np.ndarray]:
    """Deterministic float64 inputs and parameters (the same in every process)."""
    rng = np.random.default_rng(seed)
    out = {}
    for a in wl.args:
        shape = wl.shape(a)
        if a.init == "onehot":
            v = np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[0])]
        elif a.init == "bias":
            v = 0.1 * rng.standard_normal(shape)
        elif a.kind == "param":
            v = rng.standard_normal(shape) / np.sqrt(shape[0])
        else:
            v = rng.standard_normal(shape)
        out[a.name] = np.ascontiguousarray(v, dtype=DTYPE)
    return out


def graphc_ops() -> Ops:
    return Ops(gc.tanh, gc.relu, gc.mean, gc.softmax_cross_entropy)


def build_graph(wl: Workload, name: str) -> gc.Graph:
    """The workload as a graphc graph named `name`, with output "loss"."""
    g = gc.Graph(name)
    v = {}
    for a in wl.args:
        v[a.name] = (g.input if a.kind == "input" else g.param)(a.name, shape=a.shape)
    g.output("loss", wl.loss(graphc_ops(), v))
    return g


# --- graphc builds --------------------------------------------------------------------------


@dataclass
class Built:
    """One compiled graphc variant of a workload."""

    workload: str
    variant: str
    module: Any
    budget: int | None
    seconds: float
    facts: dict[str, Any] = field(default_factory=dict)


def graph_name(wl: Workload, variant: str, quick: bool) -> str:
    return f"{'memq' if quick else 'mem'}_{wl.key}_{variant}"


def compile_variant(
    wl: Workload, variant: str, budget: int | None, out_dir: Path, quick: bool
) -> Built:
    """`gc.compile` one variant (a cache hit if `out_dir` already holds it)."""
    name = graph_name(wl, variant, quick)
    say = lambda msg: print(f"  [{name}] {msg}", file=sys.stderr, flush=True)
    memory = "naive" if variant == "naive" else "best"
    t0 = time.perf_counter()
    m = gc.compile(
        build_graph(wl, name),
        dtype=DTYPE,
        out_dir=out_dir,
        memory=memory,
        memory_budget=budget,
        size_hint=wl.batch,
        progress=say,
    )
    took = time.perf_counter() - t0
    meta = getattr(m.built, "meta", {}) or {}
    facts = {
        "name": name,
        "entry": str(m.built.entry_dir),
        "cache_hit": bool(m.built.cache_hit),
        "compile_s": took,
        "stage_seconds": meta.get("build_seconds", {}),
        "pyx_lines": m.source.count("\n"),
        "so_bytes": meta.get("so_bytes"),
    }
    state = "cache hit" if facts["cache_hit"] else "built"
    say(f"{state} in {took:.1f} s")
    return Built(wl.key, variant, m, budget, took, facts)


def build_all(
    wls: Sequence[Workload], out_dir: Path, quick: bool, jobs: int
) -> tuple[dict[tuple[str, str], Built], dict[str, dict[str, Any]]]:
    """Plan each workload once to size its budget, then compile every variant, `jobs` at a
    time (Cython runs in this process, the C compiler in subprocesses)."""
    budgets: dict[str, dict[str, Any]] = {}
    for wl in wls:
        t0 = time.perf_counter()
        st = run_stages(build_graph(wl, graph_name(wl, "planned", quick)), size_hint=wl.batch)
        prog, plan = st.programs["value_and_grad"]
        arena = totals(prog, plan, {"N": wl.batch}).arena_bytes
        budgets[wl.key] = {
            "unbudgeted_arena_bytes": arena,
            "budget_bytes": int(arena * BUDGET_FRACTION),
            "plan_s": time.perf_counter() - t0,
        }
    jobs_list = [
        (wl, variant, budgets[wl.key]["budget_bytes"] if variant == "budget" else None)
        for wl in sorted(wls, key=lambda w: -len(w.args))  # the slowest builds first
        for variant in GRAPHC_VARIANTS
    ]
    print(f"building {len(jobs_list)} graphc modules in {out_dir} ...", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(compile_variant, wl, v, b, out_dir, quick) for wl, v, b in jobs_list]
        built = [f.result() for f in futures]
    return {(b.workload, b.variant): b for b in built}, budgets


def planner_numbers(b: Built, batch: int) -> dict[str, Any]:
    """The planner's own totals for a built variant's value_and_grad at the batch size."""
    prog, plan = b.module.stages.programs["value_and_grad"]
    t = totals(prog, plan, {"N": batch})
    out: dict[str, Any] = {
        "naive_bytes": t.naive_bytes,
        "arena_bytes": t.arena_bytes,
        "ratio": t.ratio,
        "live_peak_bytes": t.live_peak_bytes,
        "slots": t.slots,
        "values": t.values,
        "in_place": t.in_place,
        "steps": len(prog.steps),
    }
    ck = b.module.stages.checkpointing
    if ck is not None:
        out["checkpointing"] = {
            "budget_bytes": ck.budget,
            "every": ck.every,
            "kept": ck.kept,
            "saved": ck.saved,
            "recomputed_steps": ck.recomputed_steps,
            "forward_steps": ck.forward_steps,
            "arena_bytes": ck.arena_bytes,
            "unbudgeted_arena_bytes": ck.unbudgeted_arena_bytes,
            "fits": ck.fits,
            "summary": str(ck),
        }
    return out


# --- measuring, in the child process --------------------------------------------------------


def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


_LIBC = None


def trim_heap() -> None:
    """Give memory that the C allocator holds free back to the OS (glibc's malloc_trim), so that
    a call cannot reuse memory freed before it without it showing in the RSS."""
    global _LIBC
    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _LIBC.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class RssSampler(threading.Thread):
    """The fallback where VmHWM cannot be reset: the largest VmRSS seen by a thread reading it
    every 0.2 ms (it may miss short spikes)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = proc_status()["VmRSS"]
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, proc_status()["VmRSS"])
            time.sleep(0.0002)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return max(self.peak, proc_status()["VmRSS"])


@dataclass
class CallPeak:
    result: Any
    baseline: int  # RSS just before the call, bytes
    peak: int  # highest RSS during the call minus the baseline
    seconds: float


def measure_call(call: Callable[[], Any], use_hwm: bool) -> CallPeak:
    """One call's peak RSS above the RSS just before it, the heap trimmed and gc run first."""
    collect_garbage()
    trim_heap()
    sampler = None
    if use_hwm:
        reset_peak()
    else:
        sampler = RssSampler()
        sampler.start()
    base = proc_status()["VmRSS"]
    t0 = time.perf_counter()
    result = call()
    took = time.perf_counter() - t0
    top = proc_status()["VmHWM"] if sampler is None else sampler.stop()
    return CallPeak(result, base, max(0, top - base), took)


Values = dict[str, np.ndarray]  # {"loss": ..., param name: gradient, ...}


def setup_graphc(wl: Workload, arrays: Values, spec: dict[str, Any]) -> tuple[Callable, Callable]:
    m = gc.load(spec["entry"])
    kwargs = {k: arrays[k] for k in m.INPUTS}

    def values(result: Any) -> Values:
        outs, grads = result
        return {"loss": np.asarray(outs["loss"]), **{k: np.asarray(grads[k]) for k in wl.params}}

    return (lambda: m.value_and_grad(**kwargs)), values


def setup_torch(wl: Workload, arrays: Values, spec: dict[str, Any]) -> tuple[Callable, Callable]:
    import torch

    def xent(z: Any, y: Any) -> Any:
        return -(y * torch.log_softmax(z, dim=-1)).sum(dim=-1).mean()

    ops = Ops(torch.tanh, torch.relu, torch.mean, xent)
    params = set(wl.params)
    tensors = {
        k: torch.from_numpy(a).requires_grad_(k in params) for k, a in arrays.items()
    }  # no copies: the tensors share the NumPy arrays' memory

    def step() -> tuple[Any, dict[str, Any]]:
        loss = wl.loss(ops, tensors)
        loss.backward()
        grads = {k: tensors[k].grad for k in wl.params}
        for k in wl.params:  # as optimizer.zero_grad() does; the caller holds the grads
            tensors[k].grad = None
        return loss.detach(), grads

    def values(result: Any) -> Values:
        loss, grads = result
        return {"loss": loss.numpy(), **{k: g.numpy() for k, g in grads.items()}}

    spec["note"] = f"{torch.get_num_threads()} threads"
    return step, values


def setup_jax(wl: Workload, arrays: Values, spec: dict[str, Any]) -> tuple[Callable, Callable]:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def xent(z: Any, y: Any) -> Any:
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(z, axis=-1), axis=-1))

    ops = Ops(jnp.tanh, jax.nn.relu, jnp.mean, xent)
    params = {k: jax.device_put(arrays[k]) for k in wl.params}
    data = {k: jax.device_put(a) for k, a in arrays.items() if k not in params}
    fn = jax.value_and_grad(lambda p, d: wl.loss(ops, {**p, **d}))
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(params, data).compile()  # compiled ahead, outside the calls
    spec["note"] = f"{jax.devices()[0]}, compiled ahead in {time.perf_counter() - t0:.1f} s"

    def values(result: Any) -> Values:
        loss, grads = result
        return {"loss": np.asarray(loss), **{k: np.asarray(g) for k, g in grads.items()}}

    return (lambda: jax.block_until_ready(compiled(params, data))), values


def setup_probe(wl: Workload, arrays: Values, spec: dict[str, Any]) -> tuple[Callable, Callable]:
    """The method check: a call that fills PROBE_BYTES, frees them and returns a scalar; its
    peak must be PROBE_BYTES although its memory is given back before the call returns."""

    def call() -> Any:
        spike = np.ones(PROBE_BYTES // 8)
        return float(spike[-1])

    return call, (lambda result: {})


SETUP = {
    **dict.fromkeys(GRAPHC_VARIANTS, setup_graphc),
    "torch": setup_torch,
    "jax": setup_jax,
    "probe": setup_probe,
}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Set up one implementation of one workload, warm it up with one call, measure one call
    and save its loss and gradients to `spec["save"]`."""
    if spec["impl"] == "timing":
        return time_checkpointing(spec)
    wl = workloads(spec["quick"])[spec["workload"]]
    arrays = make_arrays(wl)
    call, values = SETUP[spec["impl"]](wl, arrays, spec)
    use_hwm = reset_peak() and proc_status()["VmHWM"] <= proc_status()["VmRSS"] + (1 << 20)
    setup_rss = proc_status()["VmRSS"]
    first = measure_call(call, use_hwm)  # the warm-up call, measured too
    del first.result
    steady = measure_call(call, use_hwm)
    out = values(steady.result)
    if out and spec.get("save"):
        np.savez(spec["save"], **out)
    return {
        # Memory kept between calls (graphc's spare output block and arena, an allocator's
        # pool) is part of what a call costs: the peak is counted from the post-setup RSS.
        "peak_bytes": steady.peak + max(0, steady.baseline - setup_rss),
        "kept_bytes": max(0, steady.baseline - setup_rss),
        "baseline_rss_bytes": steady.baseline,
        "call_s": steady.seconds,
        "first_call_peak_bytes": first.peak,
        "first_call_s": first.seconds,
        "setup_rss_bytes": setup_rss,
        "loss": float(out["loss"]) if out else None,
        "method": "VmHWM reset by clear_refs" if use_hwm else "VmRSS sampled every 0.2 ms",
        "note": spec.get("note", ""),
    }


# --- comparing ------------------------------------------------------------------------------


def rel_errors(got: Values, want: Values) -> tuple[float, float]:
    """|loss - ref| / |ref|, and over the gradients the largest max|g - r| / max|r|."""
    lw = float(want["loss"])
    loss_err = abs(float(got["loss"]) - lw) / max(abs(lw), np.finfo(np.float64).tiny)
    grad_err = 0.0
    for k, w in want.items():
        if k == "loss":
            continue
        g = np.asarray(got[k], dtype=np.float64)
        if g.shape != w.shape:
            return loss_err, float("inf")
        scale = max(float(np.max(np.abs(w), initial=0.0)), np.finfo(np.float64).tiny)
        grad_err = max(grad_err, float(np.max(np.abs(g - w), initial=0.0)) / scale)
    return loss_err, grad_err


def load_values(path: Path) -> Values | None:
    if not path.is_file():
        return None
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


# --- the run --------------------------------------------------------------------------------


@dataclass
class Results:
    rows: list[dict[str, Any]]  # one per workload x implementation
    planner: list[dict[str, Any]]
    budgets: dict[str, dict[str, Any]]
    builds: list[dict[str, Any]]
    timing: dict[str, Any] | None
    probe: dict[str, Any]


def time_checkpointing(spec: dict[str, Any]) -> dict[str, Any]:
    """In a child: the median time of one RNN value_and_grad call with the unbudgeted and the
    budgeted module (`spec["entries"]`), interleaved."""
    wl = workloads(spec["quick"])["rnn"]
    arrays = make_arrays(wl)
    cases = []
    for variant in ("planned", "budget"):
        m = gc.load(spec["entries"][variant])
        kwargs = {k: arrays[k] for k in m.INPUTS}
        cases.append(Case(variant, m.value_and_grad, (), kwargs))
    plan = QUICK if spec["quick"] else RNN_TIMING
    load = load_average()
    t = measure(cases, plan)
    unb, bud = t["planned"], t["budget"]
    return {
        "unbudgeted_median_ms": unb.median_us / 1e3,
        "budgeted_median_ms": bud.median_us / 1e3,
        "ratio": bud.median_us / unb.median_us,
        "batches": plan.batches,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS") or "default",
        "loadavg_1min": [load, load_average()],
        "calls_per_batch": {"planned": unb.calls_per_batch, "budget": bud.calls_per_batch},
        "per_call_ms": {k: [v / 1e6 for v in x.per_call_ns] for k, x in t.items()},
    }


def run(args: argparse.Namespace) -> Results:
    """Build, time the checkpointing, then measure every implementation in its own process."""
    wls = [w for k, w in workloads(args.quick).items() if k in args.workloads]
    built, budgets = build_all(wls, args.build_dir, args.quick, args.jobs)
    planner = []
    for wl in wls:
        for variant in GRAPHC_VARIANTS:
            nums = planner_numbers(built[wl.key, variant], wl.batch)
            planner.append({"workload": wl.key, "implementation": variant, **nums})
    builds = [b.facts | {"workload": b.workload, "variant": b.variant} for b in built.values()]
    del built  # the children load their own copies
    entries = {(b["workload"], b["variant"]): b["entry"] for b in builds}
    timing = None
    if "rnn" in args.workloads:
        print("timing rnn / graphc planned and budget ...", file=sys.stderr, flush=True)
        blas = {"OPENBLAS_NUM_THREADS": str(args.blas_threads)} if args.blas_threads else {}
        spec = {
            "impl": "timing",
            "quick": args.quick,
            "entries": {v: entries["rnn", v] for v in ("planned", "budget")},
        }
        timing = run_child("benchmarks.memory", spec, blas)
        if "error" in timing:
            print(f"timing failed: {timing['error']}", file=sys.stderr)
            timing = None

    rows = []
    with tempfile.TemporaryDirectory(prefix="graphc-mem-") as tmp:
        probe = run_child(
            "benchmarks.memory", {"workload": wls[0].key, "quick": args.quick, "impl": "probe"}
        )
        for wl in wls:
            ref = None
            for impl in IMPLS:
                print(f"measuring {wl.key} / {IMPLS[impl]} ...", file=sys.stderr, flush=True)
                save = Path(tmp) / f"{wl.key}-{impl}.npz"
                spec = {
                    "workload": wl.key,
                    "quick": args.quick,
                    "impl": impl,
                    "entry": entries.get((wl.key, impl)),
                    "save": str(save),
                }
                rec = {
                    "workload": wl.key,
                    "implementation": impl,
                    **run_child("benchmarks.memory", spec),
                }
                got = load_values(save)
                if impl == "planned":
                    ref = got
                if got is not None and ref is not None:
                    rec["loss_rel_err"], rec["grad_rel_err"] = rel_errors(got, ref)
                rows.append(rec)
                save.unlink(missing_ok=True)
    return Results(rows, planner, budgets, builds, timing, probe)


# --- the report -----------------------------------------------------------------------------


def mib(nbytes: float | None) -> str:
    return "-" if nbytes is None else f"{nbytes / MiB:.1f}"


def fmt_err(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def peaks_table(rows: Sequence[dict[str, Any]], wls: dict[str, Workload]) -> str:
    planned = {r["workload"]: r.get("peak_bytes") for r in rows if r["implementation"] == "planned"}
    out = []
    for r in rows:
        label = IMPLS[r["implementation"]]
        if "error" in r:
            out.append([r["workload"], label, "failed", "", "", "", ""])
            continue
        base = planned.get(r["workload"])
        ratio = f"{r['peak_bytes'] / base:.2f}" if base else "-"
        out.append(
            [
                r["workload"],
                label,
                mib(r["peak_bytes"]),
                ratio,
                mib(r["first_call_peak_bytes"]),
                fmt_err(r.get("loss_rel_err")),
                fmt_err(r.get("grad_rel_err")),
            ]
        )
    header = [
        "workload",
        "implementation",
        "peak MiB",
        "× planned",
        "1st call MiB",
        "loss rel err",
        "grad rel err",
    ]
    return format_table(header, out)


def planner_table(planner: Sequence[dict[str, Any]]) -> str:
    out = []
    for p in planner:
        ck = p.get("checkpointing")
        out.append(
            [
                p["workload"],
                GRAPHC_VARIANTS[p["implementation"]],
                mib(p["naive_bytes"]),
                mib(p["arena_bytes"]),
                f"{p['ratio']:.3f}",
                mib(p["live_peak_bytes"]),
                str(p["slots"]),
                str(p["steps"]),
                mib(ck["budget_bytes"]) if ck else "-",
                str(ck["recomputed_steps"]) if ck else "-",
                ("yes" if ck["fits"] else "NO") if ck else "-",
            ]
        )
    header = [
        "workload",
        "variant",
        "naive MiB",
        "arena MiB",
        "arena/naive",
        "live peak MiB",
        "buffers",
        "steps",
        "budget MiB",
        "recomputed",
        "fits",
    ]
    return format_table(header, out)


def targets(res: Results) -> list[dict[str, Any]]:
    """Each target with the numbers it compares and whether it was met (None: not measured)."""
    out = []
    for p in res.planner:
        if p["implementation"] == "planned" and p["workload"] in ("deep_mlp", "rnn"):
            ok = p["arena_bytes"] <= ARENA_TARGET * p["naive_bytes"]
            out.append(
                {
                    "target": f"{p['workload']}: planned arena <= {ARENA_TARGET} x naive bytes",
                    "value": f"{p['ratio']:.3f} x",
                    "pass": ok,
                }
            )
    peaks = {(r["workload"], r["implementation"]): r.get("peak_bytes") for r in res.rows}
    for wl in dict.fromkeys(r["workload"] for r in res.rows):
        mine, theirs = peaks.get((wl, "planned")), peaks.get((wl, "torch"))
        ok = None if mine is None or theirs is None else mine <= theirs
        out.append(
            {
                "target": f"{wl}: graphc planned peak <= PyTorch eager peak",
                "value": f"{mib(mine)} vs {mib(theirs)} MiB",
                "pass": ok,
            }
        )
    if res.timing is not None:
        fits = next(
            (
                p["checkpointing"]["fits"]
                for p in res.planner
                if p["workload"] == "rnn" and p["implementation"] == "budget"
            ),
            None,
        )
        t = res.timing
        ok = t["ratio"] <= TIME_TARGET
        out.append(
            {
                "target": f"rnn: {BUDGET_FRACTION:.0%} budget, time <= {TIME_TARGET} x unbudgeted",
                "value": f"{t['ratio']:.2f} x ({fmt_ms(t['budgeted_median_ms'])} vs "
                f"{fmt_ms(t['unbudgeted_median_ms'])} ms)" + ("" if fits else "; budget NOT met"),
                "pass": ok,
            }
        )
    return out


def item(name: str, text: str) -> str:
    """`  name: text`, wrapped at 100 columns."""
    return textwrap.fill(
        text, 100, initial_indent=f"  {name}: ", subsequent_indent="    ", break_on_hyphens=False
    )


def fmt_ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.3f}"


def fmt_load(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def thp_mode() -> str:
    """The transparent huge page mode (a 2 MiB page may count in the RSS when one byte is
    touched)."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "unknown"
    return next((w.strip("[]") for w in text.split() if w.startswith("[")), text.strip())


def mem_total() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def describe(info: dict[str, Any], res: Results, args: argparse.Namespace) -> list[str]:
    """The header: machine, versions, the method and its check, graphc's builds."""
    probe = res.probe
    if "error" in probe:
        check = f"the probe failed ({probe['error']})"
    else:
        check = (
            f"a call that fills a {mib(PROBE_BYTES)} MiB NumPy array and frees it before "
            f"returning measures {mib(probe['peak_bytes'])} MiB ({probe['method']})"
        )
    cold = [b for b in res.builds if not b["cache_hit"]]
    slow = sorted(res.builds, key=lambda b: -b["compile_s"])[:3]
    builds = (
        f"{len(res.builds)} modules in {args.build_dir}, {len(cold)} built now, "
        f"{len(res.builds) - len(cold)} cache hits; "
        + "; ".join(
            f"{b['name']} {b['compile_s']:.1f} s"
            + (
                " (" + ", ".join(f"{k} {v:.1f} s" for k, v in b["stage_seconds"].items()) + ")"
                if not b["cache_hit"]
                else ""
            )
            + f", {b['pyx_lines']} pyx lines"
            for b in slow
        )
    )
    mode = "--quick: tiny sizes, a smoke run; the numbers mean nothing" if args.quick else "full"
    fields = {
        "machine": f"{info['cpu']}, {info['cores']} cores ({info['cores_usable']} usable), "
        f"{mib(info['mem_total_bytes'])} MiB RAM, {info['platform']}, "
        f"transparent huge pages: {info['thp']}",
        "python": info["python"],
        "versions": ", ".join(f"{k} {v}" for k, v in info["packages"].items()),
        "mode": mode,
        "method": "one fresh process per implementation x workload: set up inputs and "
        "parameters, one warm-up call (measured too: 1st call), then gc.collect and "
        "malloc_trim(0), RSS baseline, VmHWM reset (echo 5 > /proc/self/clear_refs), one "
        "call, peak = VmHWM - the RSS after setup (before the warm-up call), so memory kept "
        "between calls counts; the call's returned loss and gradients are alive at the peak",
        "method check": check,
        "graphc builds": builds,
        "load": f"1-minute load average {fmt_load(info['loadavg_1min_start'])} at the start, "
        f"{fmt_load(info['loadavg_1min_end'])} at the end",
    }
    return format_fields(fields)


def report(info: dict[str, Any], res: Results, args: argparse.Namespace) -> tuple[str, bool]:
    """The printed report and whether every row agreed with graphc."""
    wls = workloads(args.quick)
    lines = [
        f"graphc memory: peak RSS of one value_and_grad call ({DTYPE}; gradients w.r.t. "
        "every parameter)",
        "",
        *describe(info, res, args),
        "",
        "workloads:",
    ]
    for key in dict.fromkeys(r["workload"] for r in res.rows):
        wl = wls[key]
        lines.append(
            item(key, f"{wl.title}; gradients {mib(wl.grad_bytes())} MiB (returned by every row)")
        )
    lines += ["", "measured (peak RSS above the post-setup baseline):", ""]
    lines += [peaks_table(res.rows, wls), ""]
    lines += [
        "× planned: peak / graphc planned's peak. 1st call: the warm-up call's peak. loss rel "
        "err: |loss - graphc's| / |graphc's|; grad rel err: max over parameters of "
        "max|g - graphc's| / max|graphc's|.",
    ]
    lines = lines[:-1] + textwrap.wrap(lines[-1], 100)
    lines += ["", "graphc's planner (value_and_grad at the batch size, from plan_report.totals):"]
    lines += ["", planner_table(res.planner), ""]
    b = res.budgets
    lines += textwrap.wrap(
        f"budget: {BUDGET_FRACTION:.0%} of the unbudgeted planned arena, "
        + ", ".join(f"{k} {mib(v['budget_bytes'])} MiB" for k, v in b.items())
        + ". recomputed: forward steps computed again by checkpointing.",
        100,
    )
    for p in res.planner:
        if "checkpointing" in p:
            lines.append(item(p["workload"], p["checkpointing"]["summary"]))
    if res.timing is not None:
        t = res.timing
        lines += [
            "",
            *textwrap.wrap(
                f"rnn value_and_grad time: unbudgeted {fmt_ms(t['unbudgeted_median_ms'])} ms, "
                f"budgeted {fmt_ms(t['budgeted_median_ms'])} ms (median of {t['batches']} "
                f"interleaved batches, in a fresh process, OpenBLAS threads: "
                f"{t['blas_threads']}): {t['ratio']:.2f} x; 1-minute load "
                + " -> ".join(fmt_load(v) for v in t["loadavg_1min"]),
                100,
            ),
        ]
    lines += ["", "targets:" + (" (--quick: not a measurement)" if args.quick else "")]
    for t in targets(res):
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[t["pass"]]
        lines.append(f"  {verdict}  {t['target']}: {t['value']}")
    notes = [
        item(f"{r['workload']} / {IMPLS[r['implementation']]}", r["note"])
        for r in res.rows
        if r.get("note")
    ]
    failed = [
        item(f"{r['workload']} / {IMPLS[r['implementation']]}", r["error"])
        for r in res.rows
        if "error" in r
    ]
    if notes:
        lines += ["", "notes:", *notes]
    if failed:
        lines += ["", "failed:", *failed]
    bad = [
        f"{r['workload']} / {IMPLS[r['implementation']]}"
        for r in res.rows
        if "error" not in r
        and not (
            r.get("loss_rel_err", np.inf) <= TOLERANCE
            and r.get("grad_rel_err", np.inf) <= TOLERANCE
        )
    ]
    if bad:
        lines.append(f"MISMATCH: {', '.join(bad)}: differs from graphc by more than {TOLERANCE:g}")
    return "\n".join(lines), not bad


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.memory",
        description="Peak memory of one value_and_grad call: graphc planned, naive and "
        "checkpointed against PyTorch eager and JAX, each in a fresh process.",
    )
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--json", metavar="FILE", type=Path, help="also save the results here")
    ap.add_argument(
        "--build-dir",
        metavar="DIR",
        type=Path,
        default=Path(os.environ.get("GRAPHC_BUILD_DIR") or ROOT / "build"),
        help="graphc's build cache (default: $GRAPHC_BUILD_DIR or build/); the 200-step RNN "
        "takes minutes to build cold",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
        help="graphc modules built at once (default: the usable cores)",
    )
    ap.add_argument(
        "--workloads",
        default="mlp,deep_mlp,rnn",
        type=lambda s: [w for w in s.split(",") if w],
        help="comma-separated subset of mlp,deep_mlp,rnn",
    )
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        metavar="N",
        help="OPENBLAS_NUM_THREADS for the RNN timing (default 1; 0: OpenBLAS's own default)",
    )
    ap.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    unknown = set(args.workloads) - {"mlp", "deep_mlp", "rnn"}
    if unknown:
        ap.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the report, optionally save JSON; 1 if any row disagrees."""
    args = parse_args(argv)
    if args.child is not None:
        try:
            print(json.dumps(child(json.loads(args.child))))
        except Exception:
            traceback.print_exc()
            return 1
        return 0
    info = machine_info(PACKAGES)
    info.update(thp=thp_mode(), mem_total_bytes=mem_total())
    res = run(args)
    info["loadavg_1min_end"] = load_average()
    text, agree = report(info, res, args)
    print(text)
    if args.json is not None:
        doc = {
            "benchmark": "memory",
            "mode": "quick" if args.quick else "full",
            "dtype": DTYPE,
            "machine": info,
            "workloads": {
                k: {"title": w.title, "batch": w.batch, "grad_bytes": w.grad_bytes()}
                for k, w in workloads(args.quick).items()
                if k in args.workloads
            },
            "builds": res.builds,
            "budgets": res.budgets,
            "planner": res.planner,
            "measured": res.rows,
            "method_check": {"expected_bytes": PROBE_BYTES, **res.probe},
            "rnn_timing": res.timing,
            "targets": targets(res),
            "tolerance": TOLERANCE,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"saved {args.json}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
