"""Cost accounting of derivatives: for the MLP and the elementwise chain of benchmarks.suite,
the time of graphc's forward, value_and_grad, jvp and hvp (one module, passes/derivatives.py)
and the ratios gradient / forward, JVP / forward and HVP / gradient, with JAX's jit-compiled
counterparts (jax.value_and_grad, jax.jvp, and jvp of grad for the HVP) when installed. Each
library runs in a fresh process of its own (two thread pools in one process slow each other
down), its four functions timed interleaved there. Also the two ways graphc can build an HVP,
reverse over reverse and forward over reverse, each compiled as a model of its own.

The cheap-gradient principle bounds gradient / forward near 3-4 in operation counts (Baur and
Strassen; Griewank and Walther); graphc's targets are gradient <= 3x forward and HVP < 4x
gradient.

    python -m benchmarks.derivatives            # full run
    python -m benchmarks.derivatives --quick    # smoke run: tiny sizes, no claims
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import graphc as gc
from benchmarks import suite
from benchmarks._timing import (
    FULL,
    QUICK,
    Case,
    fmt_us,
    format_table,
    load_average,
    measure,
    run_child,
)
from graphc.passes.derivatives import hvp, hvp_name, tangent_name

WORKLOADS = ("mlp", "chain")
FUNCTIONS = ("forward", "value_and_grad", "jvp", "hvp")


def graphc_cases(wl: suite.Workload, arrays: dict, out: Path) -> tuple[list[Case], Any]:
    m = gc.compile(wl.graph(), dtype=wl.dtype, wrt=list(wl.wrt), out_dir=out, functions=FUNCTIONS)
    rng = np.random.default_rng(1)
    data = {k: arrays[k] for k in m.INPUTS}
    t = {tangent_name(w): rng.normal(size=arrays[w].shape).astype(wl.dtype) for w in wl.wrt}
    v = {f"{w}_v": rng.normal(size=arrays[w].shape).astype(wl.dtype) for w in wl.wrt}
    cases = [
        Case("forward", m.forward, (), data),
        Case("grad", m.value_and_grad, (), data),
        Case("jvp", m.jvp, (), data | t),
        Case("hvp", m.hvp, (), data | v),
    ]
    return cases, (m, data, t, v)


def hvp_mode_cases(wl: suite.Workload, arrays: dict, out: Path) -> list[Case]:
    """The HVP built reverse over reverse and forward over reverse, each compiled alone."""
    cases = []
    for mode in ("reverse", "forward"):
        h = hvp(wl.graph(), "loss", wrt=list(wl.wrt), mode=mode)
        keep = {hvp_name("loss", w): h.outputs[hvp_name("loss", w)] for w in wl.wrt}
        h.nx.graph["outputs"] = keep
        m = gc.compile(gc.simplify(h), dtype=wl.dtype, wrt=(), out_dir=out / mode)
        rng = np.random.default_rng(2)
        feed = {k: arrays[k] for k in m.INPUTS if k in arrays}
        feed |= {k: rng.normal(size=np.shape(arrays[k[:-2]])).astype(wl.dtype)
                 for k in m.INPUTS if k.endswith("_v")}  # fmt: skip
        cases.append(Case(f"hvp {mode} over reverse", m.forward, (), feed))
    return cases


def jax_cases(wl: suite.Workload, arrays: dict, extra: Any) -> list[Case]:
    """JAX's jit of each function; suite.Skip (with the reason) when JAX cannot run here."""
    jax, ops = suite.jax_ops(wl.dtype == "float64")
    _, _, t, v = extra
    params = {k: jax.device_put(arrays[k]) for k in wl.wrt}
    data = {k: jax.device_put(a) for k, a in arrays.items() if k not in params}
    tang = {w: jax.device_put(t[tangent_name(w)]) for w in wl.wrt}
    vec = {w: jax.device_put(v[f"{w}_v"]) for w in wl.wrt}

    def f(p: dict) -> Any:
        return wl.loss(ops, {**p, **data})

    fns = {
        "forward": jax.jit(f),
        "grad": jax.jit(jax.value_and_grad(f)),
        "jvp": jax.jit(lambda p, t: jax.jvp(f, (p,), (t,))),
        "hvp": jax.jit(lambda p, v: jax.jvp(jax.grad(f), (p,), (v,))[1]),
    }
    args = {"forward": (params,), "grad": (params,), "jvp": (params, tang), "hvp": (params, vec)}
    cases = []
    for name, fn in fns.items():
        jax.block_until_ready(fn(*args[name]))  # compile

        def call(fn: Any = fn, a: tuple = args[name]) -> Any:
            return jax.block_until_ready(fn(*a))

        cases.append(Case(f"jax {name}", call))
    return cases


def child(spec: dict) -> dict[str, Any]:
    """Median µs of each function of one implementation (spec: workload, impl, quick, dir),
    or {"skipped": why} when it cannot run here (JAX not installed)."""
    wl = suite.workloads(spec["quick"])[spec["workload"]]
    arrays = wl.arrays(wl.n)
    out = Path(spec["dir"])
    cases, extra = graphc_cases(wl, arrays, out / "graphc")
    if spec["impl"] == "jax":
        try:
            cases = jax_cases(wl, arrays, extra)
        except suite.Skip as exc:
            return {"skipped": str(exc)}
    elif spec["impl"] == "modes":
        cases = hvp_mode_cases(wl, arrays, out / "modes")
    times = measure(cases, QUICK if spec["quick"] else FULL)
    return {name.removeprefix("jax "): t.median_us for name, t in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.derivatives", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    start = load_average()
    rows, modes, failed, skipped = [], [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in WORKLOADS:
            for impl, who in (("graphc", "graphc"), ("jax", "JAX jit"), ("modes", None)):
                spec = {"workload": key, "impl": impl, "quick": args.quick, "dir": tmp}
                us = run_child("benchmarks.derivatives", spec)
                if "error" in us:
                    failed.append(f"{key} {impl}: {us['error']}")
                elif "skipped" in us:
                    skipped[who] = us["skipped"]
                elif impl == "modes":
                    modes.append([key, *(fmt_us(x) for x in us.values())])
                else:
                    rows.append(
                        [key, who, *(fmt_us(us[n]) for n in ("forward", "grad", "jvp", "hvp")),
                         f"{us['grad'] / us['forward']:.2f}", f"{us['jvp'] / us['forward']:.2f}",
                         f"{us['hvp'] / us['grad']:.2f}"]
                    )  # fmt: skip
    end = load_average()
    loads = "unknown" if start is None else f"{start:.2f} at the start, {end:.2f} at the end"
    print(f"derivative costs (median µs per call); 1-minute load average {loads}")
    header = ["workload", "impl", "forward", "value_and_grad", "jvp", "hvp", "grad/fwd",
              "jvp/fwd", "hvp/grad"]  # fmt: skip
    print(format_table(header, rows))
    print()
    print("graphc's HVP built two ways, each compiled as a model of its own (median µs):")
    print(format_table(["workload", "reverse over reverse", "forward over reverse"], modes))
    for who, why in skipped.items():
        print(f"skipped {who}: {why}")
    for line in failed:
        print("FAILED", line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
