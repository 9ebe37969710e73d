"""Per-call time of one training step of the seed network: graphc's compiled `value_and_grad`
against the same step in hand-written NumPy, PyTorch (eager and `torch.compile`) and JAX.

One step is the forward pass and the loss plus its gradients w.r.t. W1, b1, W2 and b2 of
`examples/seed_network.py` (a 3-2-2 sigmoid network, MSE loss, batch 1, float64). Every
implementation's loss and gradients are checked against graphc's before timing.

    python -m benchmarks.call_overhead                # full run, about a minute
    python -m benchmarks.call_overhead --quick        # smoke run: a few seconds, no speed claims
    python -m benchmarks.call_overhead --json out.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import graphc as gc
from benchmarks._timing import (
    FULL,
    QUICK,
    Case,
    Plan,
    Timing,
    fmt_us,
    format_table,
    harness_floor_us,
    load_average,
    machine_info,
    measure,
)

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed_network.py"
ORDER = ("x", "y", "W1", "b1", "W2", "b2")  # the model's declaration order
WRT = ("W1", "b1", "W2", "b2")
TOLERANCE = 1e-12  # max relative difference from graphc, element by element
PACKAGES = ("graphc", "numpy", "Cython", "torch", "jax", "jaxlib")

Values = dict[str, np.ndarray]  # {"loss": ..., "W1": ..., ...}


@dataclass
class Impl:
    """A timed implementation: `values` turns one call's result into NumPy loss and grads."""

    case: Case
    values: Callable[[Any], Values]
    note: str = ""


@dataclass
class Results:
    """Everything one run measured."""

    build: dict[str, Any]
    impls: list[Impl]
    skipped: list[Skipped]
    errors: dict[str, float]  # implementation -> max relative difference from graphc
    floor: dict[str, float]
    timings: dict[str, Timing]


@dataclass
class Skipped:
    """An implementation that could not be run here, and why."""

    name: str
    reason: str


def load_seed() -> tuple[gc.Graph, dict[str, np.ndarray]]:
    """The seed network's graph and its float64 inputs, from examples/seed_network.py."""
    spec = importlib.util.spec_from_file_location("seed_network", SEED)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {SEED}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    inputs = {k: np.ascontiguousarray(mod.INPUTS[k], dtype=np.float64) for k in ORDER}
    return mod.graph, inputs


def graphc_values(result: tuple[dict, dict]) -> Values:
    """Loss and gradients from graphc's `(outputs, grads)` (and anything shaped like it)."""
    outs, grads = result
    return {"loss": np.asarray(outs["loss"]), **{k: np.asarray(grads[k]) for k in WRT}}


def max_rel_err(got: Values, want: Values) -> float:
    """Largest element-wise |got - want| / |want| over the loss and all gradients."""
    worst = 0.0
    for k, w in want.items():
        g = np.asarray(got[k], dtype=np.float64)
        if g.shape != w.shape:
            return float("inf")
        den = np.maximum(np.abs(w), np.finfo(np.float64).tiny)
        worst = max(worst, float(np.max(np.abs(g - w) / den, initial=0.0)))
    return worst


def why(exc: BaseException) -> str:
    """A one-line reason from an exception."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# --- graphc ---------------------------------------------------------------------------------


def build_graphc(graph: gc.Graph, out_dir: Path) -> tuple[Any, dict[str, Any]]:
    """Compile twice into `out_dir`: the first call builds unless the cache has the module, the
    second must be a cache hit. Returns the module and the build facts."""
    t0 = time.perf_counter()
    module = gc.compile(graph, out_dir=out_dir)
    first = time.perf_counter() - t0
    first_hit = bool(getattr(module.built, "cache_hit", False))
    t0 = time.perf_counter()
    again = gc.compile(graph, out_dir=out_dir)
    second = time.perf_counter() - t0
    meta = getattr(module.built, "meta", {}) or {}
    compiler = meta.get("key_inputs", {}).get("compiler", {}).get("version", "")
    return module, {
        "dir": str(out_dir),
        "first_compile_s": first,
        "first_was_cache_hit": first_hit,
        "cache_hit_s": second,
        "second_was_cache_hit": bool(getattr(again.built, "cache_hit", False)),
        "stage_seconds": meta.get("build_seconds", {}),
        "cc_command": meta.get("commands", {}).get("cc", []),
        "compiler": compiler.splitlines()[0] if compiler else "",
    }


def graphc_impls(module: Any, inputs: dict[str, np.ndarray]) -> list[Impl]:
    """The compiled `value_and_grad`, called with keyword and with positional arguments."""
    kw = Case("graphc value_and_grad, keyword args", module.value_and_grad, (), dict(inputs))
    pos_args = tuple(inputs[k] for k in module.INPUTS)
    pos = Case("graphc value_and_grad, positional args", module.value_and_grad, pos_args)
    return [Impl(kw, graphc_values), Impl(pos, graphc_values)]


# --- hand-written NumPy ---------------------------------------------------------------------


def numpy_step(
    x: np.ndarray, y: np.ndarray, W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Forward and backward of the seed network by hand, returning what graphc returns."""
    a1 = 1.0 / (1.0 + np.exp(-(x @ W1.T + b1)))
    y_hat = 1.0 / (1.0 + np.exp(-(a1 @ W2.T + b2)))
    diff = y_hat - y
    loss = np.mean(diff * diff)
    dz2 = (2.0 / diff.size) * diff * y_hat * (1.0 - y_hat)
    dz1 = (dz2 @ W2) * a1 * (1.0 - a1)
    grads = {
        "W1": dz1.T @ x,
        "b1": dz1.sum(axis=0),
        "W2": dz2.T @ a1,
        "b2": dz2.sum().reshape(b2.shape),  # b2 has shape (1,): it broadcasts over every element
    }
    return {"loss": loss}, grads


def numpy_impls(inputs: dict[str, np.ndarray]) -> list[Impl]:
    """The hand-written step, called with positional arguments."""
    case = Case("NumPy by hand (no autodiff)", numpy_step, tuple(inputs[k] for k in ORDER))
    return [Impl(case, graphc_values)]


# --- PyTorch --------------------------------------------------------------------------------


def torch_impls(inputs: dict[str, np.ndarray], quick: bool) -> tuple[list[Impl], list[Skipped]]:
    """Eager autograd (tensors kept as tensors; and NumPy in and out), then torch.compile."""
    try:
        import torch
    except Exception as exc:  # ImportError, or a broken install failing to load its libraries
        return [], [Skipped("PyTorch", f"not importable ({why(exc)})")]

    def loss_fn(x: Any, y: Any, W1: Any, b1: Any, W2: Any, b2: Any) -> Any:
        a1 = torch.sigmoid(x @ W1.T + b1)
        y_hat = torch.sigmoid(a1 @ W2.T + b2)
        return torch.mean((y_hat - y) ** 2)

    def make_step() -> Callable[[], tuple[Any, list[Any]]]:
        """A step over leaf tensors created once; grads are reset each step as
        `optimizer.zero_grad()` does by default (set to None)."""
        x, y = (torch.tensor(inputs[k], dtype=torch.float64) for k in ("x", "y"))
        params = [torch.tensor(inputs[k], dtype=torch.float64, requires_grad=True) for k in WRT]

        def step() -> tuple[Any, list[Any]]:
            for p in params:
                p.grad = None
            loss = loss_fn(x, y, *params)
            loss.backward()
            return loss.detach(), [p.grad for p in params]

        return step

    def tensor_values(result: tuple[Any, list[Any]]) -> Values:
        loss, grads = result
        out = {"loss": loss.numpy()}
        out.update({k: g.numpy() for k, g in zip(WRT, grads, strict=True)})
        return out

    def numpy_io_step(
        x: np.ndarray,
        y: np.ndarray,
        W1: np.ndarray,
        b1: np.ndarray,
        W2: np.ndarray,
        b2: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        params = [torch.from_numpy(a).requires_grad_() for a in (W1, b1, W2, b2)]
        loss = loss_fn(torch.from_numpy(x), torch.from_numpy(y), *params)
        loss.backward()
        grads = {k: p.grad.numpy() for k, p in zip(WRT, params, strict=True)}
        return {"loss": loss.detach().numpy()}, grads

    threads = (
        f"grads set to None each step (as zero_grad() does); {torch.get_num_threads()} threads"
    )
    impls = [
        Impl(Case("PyTorch eager, tensors in/out", make_step()), tensor_values, threads),
        Impl(
            Case("PyTorch eager, NumPy in/out", numpy_io_step, tuple(inputs[k] for k in ORDER)),
            graphc_values,
            "from_numpy in, .numpy() out (no copies); new leaves each call",
        ),
    ]
    name = "torch.compile(step), tensors in/out"
    if quick:
        return impls, [Skipped(name, "not run with --quick (compiling takes tens of seconds)")]
    try:
        compiled = torch.compile(make_step())
        t0 = time.perf_counter()
        compiled()
        took = time.perf_counter() - t0
    except Exception as exc:  # no C++ toolchain, unsupported platform, ...
        return impls, [Skipped(name, f"torch.compile failed ({why(exc)})")]
    note = f"first call (tracing and compiling) took {took:.1f} s"
    impls.append(Impl(Case(name, compiled), tensor_values, note))
    return impls, []


# --- JAX ------------------------------------------------------------------------------------


def jax_impls(inputs: dict[str, np.ndarray]) -> tuple[list[Impl], list[Skipped]]:
    """`jax.jit(jax.value_and_grad(f))` in float64 on the CPU, with device arrays kept on the
    device, and with NumPy arrays in and out."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import jax
        import jax.numpy as jnp
    except Exception as exc:
        return [], [Skipped("JAX", f"not importable ({why(exc)})")]

    def loss_fn(x: Any, y: Any, W1: Any, b1: Any, W2: Any, b2: Any) -> Any:
        a1 = jax.nn.sigmoid(x @ W1.T + b1)
        y_hat = jax.nn.sigmoid(a1 @ W2.T + b2)
        return jnp.mean((y_hat - y) ** 2)

    try:
        jax.config.update("jax_enable_x64", True)
        vg = jax.jit(jax.value_and_grad(loss_fn, argnums=(2, 3, 4, 5)))
        dev_args = tuple(jax.device_put(inputs[k]) for k in ORDER)
        t0 = time.perf_counter()
        jax.block_until_ready(vg(*dev_args))
        took = time.perf_counter() - t0
    except Exception as exc:
        return [], [Skipped("JAX", f"jit failed ({why(exc)})")]

    def device_step(*args: Any) -> Any:
        return jax.block_until_ready(vg(*args))

    def device_values(result: Any) -> Values:
        loss, grads = result
        out = {"loss": np.asarray(loss)}
        out.update({k: np.asarray(g) for k, g in zip(WRT, grads, strict=True)})
        return out

    def numpy_io_step(*args: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        loss, grads = vg(*args)  # np.asarray waits for the result
        out = {k: np.asarray(g) for k, g in zip(WRT, grads, strict=True)}
        return {"loss": np.asarray(loss)}, out

    devices = ", ".join(str(d) for d in jax.devices())
    dtype = str(dev_args[0].dtype)
    np_args = tuple(inputs[k] for k in ORDER)
    return [
        Impl(
            Case("JAX jit(value_and_grad), device arrays", device_step, dev_args),
            device_values,
            f"{devices} {dtype}; block_until_ready; jit compile {took:.2f} s",
        ),
        Impl(
            Case("JAX jit(value_and_grad), NumPy in/out", numpy_io_step, np_args),
            graphc_values,
            "NumPy args to the jitted function, np.asarray on results",
        ),
    ], []


# --- the run --------------------------------------------------------------------------------


def report(
    impls: Sequence[Impl], timings: dict[str, Timing], errors: dict[str, float]
) -> tuple[str, list[dict[str, Any]]]:
    """The results table and its rows as JSON-ready records."""
    base = timings[impls[0].case.name].median_us
    rows, records = [], []
    for impl in impls:
        t = timings[impl.case.name]
        ratio = t.median_us / base
        err = errors[impl.case.name]
        rows.append(
            [
                impl.case.name,
                fmt_us(t.median_us),
                fmt_us(t.p10_us),
                f"{ratio:.2f}",
                f"{err:.1e}",
                str(t.calls_per_batch),
            ]
        )
        records.append(
            {
                "implementation": impl.case.name,
                "median_us": t.median_us,
                "p10_us": t.p10_us,
                "ratio_to_graphc": ratio,
                "max_rel_err_vs_graphc": err,
                "calls_per_batch": t.calls_per_batch,
                "batches": len(t.per_call_ns),
                "per_call_us": [v / 1e3 for v in t.per_call_ns],
                "note": impl.note,
            }
        )
    header = ["implementation", "median µs", "p10 µs", "× graphc", "max rel err", "calls/batch"]
    return format_table(header, rows), records


def item(name: str, text: str) -> str:
    """`  name: text`, wrapped at 100 columns."""
    return textwrap.fill(
        text, 100, initial_indent=f"  {name}: ", subsequent_indent="    ", break_on_hyphens=False
    )


def fmt_load(value: float | None) -> str:
    """A load average for the header."""
    return "unknown" if value is None else f"{value:.2f}"


def describe(
    info: dict[str, Any], build: dict[str, Any], plan: Plan, quick: bool, floor: dict[str, float]
) -> list[str]:
    """The header: machine, versions, graphc's build times and the timing method."""
    core = info["OPENBLAS_CORETYPE"]
    blas = "may be set on this machine; it picks the OpenBLAS kernels used by NumPy and SciPy"
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in build["stage_seconds"].items())
    if build["first_was_cache_hit"]:
        cold = (
            f"no cold build (module already cached; first gc.compile took "
            f"{build['first_compile_s'] * 1e3:.1f} ms; pass --build-dir EMPTY_DIR to measure one)"
        )
    else:
        cold = f"cold build {build['first_compile_s']:.2f} s" + (f" ({stages})" if stages else "")
    mode = "--quick, a smoke run: too few repetitions to compare speeds" if quick else "full run"
    fields = {
        "machine": f"{info['cpu']}, {info['cores']} cores ({info['cores_usable']} usable), "
        f"{info['platform']}",
        "python": info["python"],
        "versions": ", ".join(f"{k} {v}" for k, v in info["packages"].items()),
        "OPENBLAS_CORETYPE": f"{core} ({blas})" if core is not None else f"not set ({blas})",
        "graphc build": f"{cold}; cache hit {build['cache_hit_s'] * 1e3:.1f} ms (gc.compile "
        f"of the built model); in {build['dir']}"
        + (f" with {build['compiler']}" if build["compiler"] else ""),
        "timing": f"{mode}: {plan.batches} batches per implementation of ~"
        f"{plan.batch_ns / 1e6:g} ms each after {plan.warmup_ns / 1e6:g} ms of warm-up, "
        "interleaved across implementations; per-call time = batch time "
        "(time.perf_counter_ns) / calls per batch; Python's gc paused within a batch",
        "load": f"1-minute load average {fmt_load(info['loadavg_1min_start'])} at the start, "
        f"{fmt_load(info['loadavg_1min_end'])} at the end (this run adds about 1; more means "
        "other processes competed for the cores)",
        "harness floor": f"a Python no-op called by the same loop takes "
        f"{fmt_us(floor['positional'])} µs with 6 positional args, "
        f"{fmt_us(floor['keyword'])} µs with 6 keyword args (included in every row)",
    }
    width = max(map(len, fields)) + 3
    out = []
    for label, text in fields.items():
        out += textwrap.wrap(
            text,
            100,
            initial_indent=f"{label}:".ljust(width),
            subsequent_indent=" " * width,
            break_on_hyphens=False,
        )
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.call_overhead",
        description="Per-call time of one forward+backward step of the seed network.",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="few repetitions, no torch.compile: a smoke run, not a measurement",
    )
    ap.add_argument("--json", metavar="FILE", type=Path, help="also save the results here")
    ap.add_argument(
        "--build-dir",
        metavar="DIR",
        type=Path,
        help="build graphc's module here (default: a fresh temporary directory, so the cold "
        "build is measured; with --quick, $GRAPHC_BUILD_DIR or build/)",
    )
    return ap.parse_args(argv)


def run(args: argparse.Namespace, plan: Plan) -> Results:
    """Build, check and time everything."""
    graph, inputs = load_seed()
    with tempfile.TemporaryDirectory(prefix="graphc-bench-") as tmp:
        if args.build_dir is not None:
            out_dir = args.build_dir
        elif args.quick:
            out_dir = Path(os.environ.get("GRAPHC_BUILD_DIR") or ROOT / "build")
        else:
            out_dir = Path(tmp)
        module, build = build_graphc(graph, out_dir)

        impls = graphc_impls(module, inputs) + numpy_impls(inputs)
        skipped: list[Skipped] = []
        for more, skip in (torch_impls(inputs, args.quick), jax_impls(inputs)):
            impls += more
            skipped += skip

        reference = graphc_values(impls[0].case())
        errors: dict[str, float] = {}
        for impl in list(impls):
            try:
                errors[impl.case.name] = max_rel_err(impl.values(impl.case()), reference)
            except Exception as exc:
                traceback.print_exc()
                impls.remove(impl)
                skipped.append(Skipped(impl.case.name, f"failed when called ({why(exc)})"))

        timings = measure([impl.case for impl in impls], plan)
        floor = harness_floor_us(plan)
    return Results(build, impls, skipped, errors, floor, timings)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the report, optionally save JSON; 1 if any row disagrees."""
    args = parse_args(argv)
    plan: Plan = QUICK if args.quick else FULL
    info = machine_info(PACKAGES)
    res = run(args, plan)
    info["loadavg_1min_end"] = load_average()
    table, records = report(res.impls, res.timings, res.errors)
    lines = [
        "graphc call overhead: one forward+backward step of examples/seed_network.py (3-2-2",
        "sigmoid network, MSE loss, batch 1, float64; loss and gradients w.r.t. W1, b1, W2, b2)",
        "",
        *describe(info, res.build, plan, args.quick, res.floor),
        "",
        table,
        "",
        "× graphc: median / median of graphc with keyword args (how many times slower).",
        "max rel err: largest element-wise relative difference of the loss and gradients from",
        f"graphc's (keyword args); every row must be within {TOLERANCE:g}.",
    ]
    notes = [item(i.case.name, i.note) for i in res.impls if i.note]
    if notes:
        lines += ["notes:", *notes]
    if res.skipped:
        lines += ["skipped:", *(item(s.name, s.reason) for s in res.skipped)]
    bad = [name for name, err in res.errors.items() if not err <= TOLERANCE]
    if bad:
        lines.append(f"MISMATCH: {', '.join(bad)}: differs from graphc by more than {TOLERANCE:g}")
    print("\n".join(lines))

    if args.json is not None:
        doc = {
            "benchmark": "call_overhead",
            "model": str(SEED.relative_to(ROOT)),
            "mode": "quick" if args.quick else "full",
            "machine": info,
            "graphc_build": res.build,
            "plan": {
                "warmup_ns": plan.warmup_ns,
                "batch_ns": plan.batch_ns,
                "batches": plan.batches,
            },
            "harness_floor_us": res.floor,
            "tolerance": TOLERANCE,
            "results": records,
            "skipped": [{"implementation": s.name, "reason": s.reason} for s in res.skipped],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"saved {args.json}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
