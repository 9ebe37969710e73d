"""How long a model takes to build: graphc's cold builds beside JAX's `jit(value_and_grad)` and
`torch.compile` compile times, when they are installed.

Each build runs in a fresh process with a fresh, empty build directory (a cold cache: the model
is translated by Cython and compiled by the C compiler), the median of `--repeat` builds (3)
reported, with the seconds of graphc's passes, Cython and the C compiler, the generated
`.pyx`'s lines, the distinct kernels and the process's peak memory. graphc's runtime is built
once per machine (and graphc version, compiler, flags); it is built before the first model and
its one-time cost reported apart.

A peer's time is its first call's (tracing and compiling the forward and backward pass) less a
second call's, in a fresh process too; a peer that runs past `--peer-timeout` seconds is
reported as such.

    python -m benchmarks.compile_time                    # every model, 3 builds each, peers
    python -m benchmarks.compile_time --quick            # seed and a 200-node chain, 1 build
    python -m benchmarks.compile_time --models seed,lstm --repeat 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._timing import (
    ROOT,
    format_fields,
    format_table,
    load_average,
    machine_info,
    run_child,
)

PACKAGES = ("graphc", "numpy", "networkx", "Cython", "jax", "torch")


@dataclass(frozen=True)
class Model:
    """A model to build: its description, graphc's target (seconds), and the sizes of its
    peers' version."""

    name: str
    what: str
    target_s: float
    peers: bool = True


def _chain_steps(n: int) -> int:
    from benchmarks.scaling import steps_for

    return steps_for(n)


MODELS = {
    "seed": Model("seed", "the seed network (examples/seed_network.py)", 1.5),
    "chain2k": Model("chain2k", "2,000-node tanh(h * w) chain, a matmul every 4th block", 3.0),
    "chain20k": Model("chain20k", "20,000-node tanh(h * w) chain, a matmul every 4th block", 20.0),
    "params2k": Model("params2k", "2,000 blocks tanh(h * w_i), a scalar param each", 4.0),
    "lstm": Model("lstm", "examples/lstm_adding.py: LSTM (hidden 32), a loop over any T", 4.0),
    "lstm50": Model("lstm50", "the same LSTM unrolled over 50 steps (unroll=True)", 4.0),
    "transformer12": Model(
        "transformer12", "12 pre-norm encoder blocks, d = 256, 8 heads, sequence 64", 8.0
    ),
}
QUICK = {"seed": None, "chain200": 200}  # model -> forward nodes of a chain


# --- the models, for graphc ---------------------------------------------------------------
def graph(name: str):
    import graphc as gc

    sys.path.insert(0, str(ROOT / "examples"))
    if name == "seed":
        import seed_network

        return seed_network.build()
    if name.startswith("chain"):
        from benchmarks.scaling import chain_graph

        n = int(name[5:].replace("k", "000"))
        return chain_graph(_chain_steps(n), name)
    if name == "params2k":
        g = gc.Graph("params2k")
        h = g.input("x", shape=("N", 8))
        for i in range(2000):
            h = gc.tanh(h * g.param(f"w{i}", shape=()))
        g.output("loss", gc.sum(h))
        return g
    if name == "lstm":
        import lstm_adding

        return lstm_adding.graph()
    if name == "lstm50":
        g = gc.Graph("lstm50")
        x = g.input("x", shape=("N", 50, 2), dtype="float32")
        y = g.input("y", shape=("N", 1), dtype="float32")
        h = gc.nn.lstm(x, 32, "lstm", unroll=True)
        g.output("loss", gc.mse_loss(gc.nn.dense(h, 1, "out"), y))
        return g
    if name == "transformer12":
        g = gc.Graph("transformer12")
        h = g.input("x", shape=("N", 64, 256))
        y = g.input("y", shape=("N", 64, 256))
        for b in range(12):
            h = gc.nn.transformer_encoder_block(h, 8, 1024, f"block{b}")
        g.output("loss", gc.mean((h - y) ** 2))
        return g
    raise SystemExit(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def build_child(spec: dict[str, Any]) -> dict[str, Any]:
    """One cold build of model spec["model"] in spec["build_dir"]."""
    import graphc as gc

    t0 = time.perf_counter()
    g = graph(spec["model"])
    t1 = time.perf_counter()
    m = gc.compile(g, out_dir=spec["build_dir"])
    t2 = time.perf_counter()
    seconds = m.built.meta.get("build_seconds", {})
    return {
        "nodes": g.nx.number_of_nodes(),
        "graph_s": t1 - t0,
        "compile_s": t2 - t1,
        "cython_s": seconds.get("cython"),
        "cc_s": seconds.get("cc"),
        "passes_s": t2 - t1 - m.built.seconds,
        "cache_hit": bool(m.built.cache_hit),
        "pyx_lines": m.source.count("\n"),
        "kernels": len(m.stages.module.kernels),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def runtime_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Build graphc's runtime for this machine unless it is cached; how long that took."""
    from graphc.runtime import BuildOptions, shared

    t = time.perf_counter()
    heard: list[str] = []
    shared.ensure(BuildOptions(), heard.append)
    return {"seconds": time.perf_counter() - t, "built": any("runtime" in m for m in heard)}


# --- the peers -----------------------------------------------------------------------------
def _peer_inputs(name: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    if name == "seed":
        return {"x": rng.normal(size=(8, 3)), "y": rng.normal(size=(8, 2))}
    if name.startswith("chain") or name == "params2k":
        return {"x": rng.normal(size=(8, 8))}
    if name.startswith("lstm"):
        return {"x": rng.normal(size=(8, 50, 2)), "y": rng.normal(size=(8, 1))}
    return {"x": rng.normal(size=(2, 64, 256)), "y": rng.normal(size=(2, 64, 256))}


def _params(name: str) -> dict:
    """The params of the peers' version of model `name`, as NumPy arrays (a nested dict)."""
    rng = np.random.default_rng(0)
    if name == "seed":
        shapes = {"W1": (2, 3), "b1": (2,), "W2": (2, 2), "b2": (1,)}
        return {k: rng.normal(size=s) for k, s in shapes.items()}
    if name.startswith("chain"):
        return {"w": rng.normal(size=8), "W": rng.normal(size=(8, 8)) / 3}
    if name == "params2k":
        return {f"w{i}": np.array(rng.normal()) for i in range(2000)}
    if name.startswith("lstm"):
        hid = 32
        return {
            "Wx": rng.normal(size=(2, 4 * hid)) / 2, "Wh": rng.normal(size=(hid, 4 * hid)) / 6,
            "b": np.zeros(4 * hid), "Wo": rng.normal(size=(hid, 1)) / 6, "bo": np.zeros(1),
        }  # fmt: skip
    d, ff = 256, 1024

    def dense(i: int, o: int) -> dict:
        return {"w": rng.normal(size=(i, o)) / math.sqrt(i), "b": np.zeros(o)}

    return {f"b{k}": {"q": dense(d, d), "k": dense(d, d), "v": dense(d, d), "o": dense(d, d),
                      "f1": dense(d, ff), "f2": dense(ff, d), "g1": np.ones(d),
                      "e1": np.zeros(d), "g2": np.ones(d), "e2": np.zeros(d)}
            for k in range(12)}  # fmt: skip


def _loss(name: str, L: Any) -> Callable:
    """loss(params, inputs) of the peers' version of model `name` (the arithmetic of
    graph(name)), over the arrays of a library whose functions `L` gives: tanh, sigmoid, relu,
    softmax (last axis), sqrt, mean_last (keeping the axis), zeros_like, swap(x, a, b)."""
    if name == "seed":
        return lambda p, d: ((L.sigmoid(L.sigmoid(d["x"] @ p["W1"].T + p["b1"]) @ p["W2"].T
                                        + p["b2"]) - d["y"]) ** 2).mean()  # fmt: skip
    if name.startswith("chain"):
        steps = _chain_steps(int(name[5:].replace("k", "000")))

        def chain(p, d):
            h = d["x"]
            for i in range(steps):
                h = L.tanh(h * p["w"])
                if i % 4 == 3:
                    h = h @ p["W"]
            return h.sum()

        return chain
    if name == "params2k":

        def params(p, d):
            h = d["x"]
            for i in range(2000):
                h = L.tanh(h * p[f"w{i}"])
            return h.sum()

        return params
    if name.startswith("lstm"):

        def lstm(p, d):
            hid = 32
            h = c = L.zeros_like(d["x"][:, 0, :1] * p["Wh"][:1, :hid])
            for t in range(50):
                z = d["x"][:, t] @ p["Wx"] + h @ p["Wh"] + p["b"]
                i, f, g, o = (z[:, k * hid : (k + 1) * hid] for k in range(4))
                c = L.sigmoid(f) * c + L.sigmoid(i) * L.tanh(g)
                h = L.sigmoid(o) * L.tanh(c)
            return ((h @ p["Wo"] + p["bo"] - d["y"]) ** 2).mean()

        return lstm
    d, heads = 256, 8

    def norm(x, g, e):
        m = L.mean_last(x)
        return (x - m) / L.sqrt(L.mean_last((x - m) ** 2) + 1e-5) * g + e

    def lin(x, p):
        return x @ p["w"] + p["b"]

    def transformer(p, data):
        x = data["x"]
        n, t, _ = x.shape
        for k in range(12):
            b = p[f"b{k}"]
            y = norm(x, b["g1"], b["e1"])
            q, kk, v = (L.swap(lin(y, b[s]).reshape(n, t, heads, -1), 1, 2) for s in "qkv")
            a = L.softmax(q @ L.swap(kk, 2, 3) / math.sqrt(d // heads)) @ v
            x = x + lin(L.swap(a, 1, 2).reshape(n, t, d), b["o"])
            x = x + lin(L.relu(lin(norm(x, b["g2"], b["e2"]), b["f1"])), b["f2"])
        return ((x - data["y"]) ** 2).mean()

    return transformer


def _map(tree: Any, fn: Callable) -> Any:
    return {k: _map(v, fn) for k, v in tree.items()} if isinstance(tree, dict) else fn(tree)


def peer_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Seconds of a peer's first value-and-gradient call less its second's (its compile)."""
    name, peer = spec["model"], spec["peer"]
    data = _peer_inputs(name, np.random.default_rng(1))
    if peer == "jax":
        import types

        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        L = types.SimpleNamespace(
            tanh=jnp.tanh, sigmoid=jax.nn.sigmoid, relu=jax.nn.relu, sqrt=jnp.sqrt,
            softmax=lambda x: jax.nn.softmax(x, -1), zeros_like=jnp.zeros_like,
            mean_last=lambda x: x.mean(-1, keepdims=True), swap=jnp.swapaxes,
        )  # fmt: skip
        params = _params(name)
        fn = jax.jit(jax.value_and_grad(_loss(name, L)))

        def call() -> None:
            jax.block_until_ready(fn(params, data))
    else:
        import types

        import torch

        L = types.SimpleNamespace(
            tanh=torch.tanh, sigmoid=torch.sigmoid, relu=torch.relu, sqrt=torch.sqrt,
            softmax=lambda x: torch.softmax(x, -1), zeros_like=torch.zeros_like,
            mean_last=lambda x: x.mean(-1, keepdim=True), swap=torch.transpose,
        )  # fmt: skip
        leaves: list = []
        params = _map(_params(name), lambda a: leaves.append(
            torch.tensor(np.asarray(a), requires_grad=True)) or leaves[-1])  # fmt: skip
        tdata = {k: torch.tensor(v) for k, v in data.items()}
        loss = _loss(name, L)
        step = torch.compile(lambda p, d: torch.autograd.grad(loss(p, d), leaves))

        def call() -> None:
            step(params, tdata)

    t0 = time.perf_counter()
    call()
    t1 = time.perf_counter()
    call()
    t2 = time.perf_counter()
    return {"compile_s": (t1 - t0) - (t2 - t1)}


def installed(peer: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(peer) is not None


# --- running and reporting -----------------------------------------------------------------
def run_peer(model: str, peer: str, timeout: float) -> dict[str, Any]:
    import subprocess

    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    spec = json.dumps({"model": model, "peer": peer, "kind": "peer"})
    argv = [sys.executable, "-m", "benchmarks.compile_time", "--child", spec]
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:200]}


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", help=f"comma-separated, of: {', '.join(MODELS)}")
    ap.add_argument("--repeat", type=int, default=3, help="cold builds per model (median)")
    ap.add_argument("--quick", action="store_true", help="seed and a 200-node chain, once")
    ap.add_argument("--no-peers", action="store_true", help="leave JAX and PyTorch out")
    ap.add_argument("--peer-timeout", type=float, default=300.0)
    ap.add_argument("--build-dir", help="where the fresh build directories go (default: tmp)")
    ap.add_argument("--json", help="also write every number to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        kind = {"build": build_child, "runtime": runtime_child, "peer": peer_child}
        print(json.dumps(kind[spec["kind"]](spec)))
        return 0

    if args.quick:
        names, repeat, peers = ["seed", "chain200"], 1, []
    else:
        names = args.models.split(",") if args.models else list(MODELS)
        repeat = args.repeat
        peers = [] if args.no_peers else [p for p in ("jax", "torch") if installed(p)]
    info = machine_info(PACKAGES)
    print("graphc compile time: cold builds, each in a fresh process and build directory")
    print("\n".join(format_fields({
        "machine": f"{info['cpu']}, {info['cores_usable']} cores usable, {info['platform']}",
        "python": info["python"],
        "versions": ", ".join(f"{k} {v}" for k, v in info["packages"].items()),
        "load": f"1-minute load average {load_average() or 0:.2f} at the start",
        "peers": ", ".join(peers) or "none (not installed, or --no-peers)",
    })))  # fmt: skip
    runtime = run_child("benchmarks.compile_time", {"kind": "runtime"})
    if "error" in runtime:
        print(f"graphc's runtime did not build: {runtime['error']}")
        return 1
    built = "built now" if runtime["built"] else "cached already"
    print(f"runtime:  graphc's runtime for this machine {built} ({runtime['seconds']:.1f} s, once)")
    root = Path(args.build_dir or tempfile.mkdtemp(prefix="graphc_compile_time_"))
    results: dict[str, Any] = {"machine": info, "runtime": runtime, "models": {}}
    rows = []
    failed = False
    for name in names:
        runs = []
        for _ in range(repeat):
            out = Path(tempfile.mkdtemp(dir=root))
            got = run_child("benchmarks.compile_time", {"kind": "build", "model": name,
                                                        "build_dir": str(out)})  # fmt: skip
            shutil.rmtree(out, ignore_errors=True)
            if "error" in got or got["cache_hit"]:
                print(f"{name}: {got.get('error', 'a cache hit in a fresh directory')}")
                failed = True
                break
            runs.append(got)
        if not runs:
            continue
        med = {k: statistics.median(r[k] for r in runs) for k in
               ("compile_s", "passes_s", "cython_s", "cc_s", "peak_mib")}  # fmt: skip
        peer_s = {p: run_peer(name, p, args.peer_timeout) for p in peers
                  if MODELS.get(name, Model(name, "", 0)).peers}  # fmt: skip
        target = MODELS[name].target_s if name in MODELS else None
        verdict = "" if target is None else ("ok" if med["compile_s"] <= target else "MISSED")
        results["models"][name] = {"runs": runs, "median": med, "peers": peer_s, "target": target}
        rows.append([
            name, f"{runs[0]['nodes']:,}", fmt(med["compile_s"]), fmt(med["passes_s"]),
            fmt(med["cython_s"]), fmt(med["cc_s"]), f"{runs[0]['pyx_lines']:,}",
            str(runs[0]["kernels"]), f"{med['peak_mib']:.0f}",
            fmt(target, 1) + (f" {verdict}" if verdict else ""),
            *(fmt(peer_s[p].get("compile_s")) if "compile_s" in peer_s.get(p, {})
              else peer_s.get(p, {}).get("error", "-") for p in peers),
        ])  # fmt: skip
    shutil.rmtree(root, ignore_errors=True) if not args.build_dir else None
    header = ["model", "nodes", "build s", "passes s", "cython s", "cc s", "pyx lines",
              "kernels", "peak MiB", "target s", *(f"{p} s" for p in peers)]  # fmt: skip
    print()
    print(format_table(header, rows))
    print()
    print("build s: gc.compile, median of the builds (passes: graphc's Python stages; cython and")
    print("cc: translating and compiling the module); peak MiB: the build process's; a peer's")
    print("s: its first jit(value_and_grad) / torch.compile'd gradient call less its second.")
    for name in names:
        if name in MODELS:
            print(f"  {name}: {MODELS[name].what}")
    if "chain2k" in results["models"] and "chain20k" in results["models"]:
        a = results["models"]["chain2k"]["median"]["compile_s"]
        b = results["models"]["chain20k"]["median"]["compile_s"]
        print(f"growth from 2,000 to 20,000 nodes: {b / a:.1f}x (target: at most 10x)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
