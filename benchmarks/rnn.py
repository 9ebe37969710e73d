"""Recurrent models as loops (gc.scan): build time and source size against the sequence length,
one training step's time against NumPy by hand, PyTorch and JAX, and its peak memory against
what it must keep, with and without a memory budget.

- Build: the LSTM (hidden 128) model with `value_and_grad`, cold (a fresh build directory; the
  runtime is built already; the best of two such builds), for T = 10 and T = 1000 given as
  ints, and for T a symbol; beside it, the same LSTM unrolled (`unroll=True`) over 10 and 20
  steps, whose build and source grow with T. The source size is that of the generated .pyx.
- Step: forward + backward of the LSTM, hidden 128, input 128, batch 64, T = 200, float32,
  the loss the mean square of every step's h, the same weights everywhere: graphc's
  `value_and_grad` (T a symbol) against the same LSTM's forward and backward written with
  NumPy, `torch.nn.LSTM` (PyTorch's fused C++ kernel), PyTorch eager with a loop of `LSTMCell`,
  and JAX's `jit(value_and_grad)` over `lax.scan`; a peer that is not installed is skipped
  with the reason. Each runs in a process of its own, on one thread and on the machine's
  default (graphc's pool and BLAS; PyTorch's intra-op threads), the median of several calls,
  the best of two processes each run in turn (the machine's load changes during a run);
  every loss is checked against NumPy's. Ratios are peer time / graphc time: above 1, graphc
  is faster.
- Memory: the peak resident memory of each step above the memory after setup (measured as
  benchmarks/memory.py does); graphc's against the bytes the step must keep: the per-step values the
  loop stacks for the backward pass, and the gradients. With `memory_budget=1` (T = 200 given
  as an int: checkpoints need a static T) the loop keeps its carry every k-th step,
  k = ceil(sqrt(T)), and recomputes each segment in the backward pass; its peak is set
  against ceil(T / k) carries, one segment's stacked values and the gradients.

    python -m benchmarks.rnn            # one run, every row
    python -m benchmarks.rnn --quick    # smoke run: tiny sizes, one build, one thread, no claims
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import graphc as gc
from benchmarks._timing import format_table, load_average, run_child

# sizes; cold builds per model, rounds of processes per implementation, thread counts (0: each
# library's default)
QUICK = {"hidden": 8, "input": 4, "batch": 3, "steps": 5, "calls": 2, "long": 50,
         "builds": 1, "rounds": 1, "threads": (1,)}  # fmt: skip
FULL = {"hidden": 128, "input": 128, "batch": 64, "steps": 200, "calls": 7, "long": 1000,
        "builds": 2, "rounds": 2, "threads": (1, 0)}  # fmt: skip
PEERS = ("numpy", "torch", "eager", "jax")
TITLES = {"numpy": "NumPy by hand", "torch": "torch.nn.LSTM", "eager": "LSTMCell loop",
          "jax": "JAX scan"}  # fmt: skip
LOSS_RTOL = 1e-3  # float32 sums over T * N * H terms in different orders


def lstm_graph(steps: int | str, hidden: int, d: int, unroll: bool = False) -> gc.Graph:
    g = gc.Graph("rnn_bench" + ("_unrolled" if unroll else ""))
    x = g.input("x", shape=("N", steps, d))
    hs = gc.nn.lstm(x, hidden, "lstm", return_sequences=True, unroll=unroll)
    g.output("loss", gc.mean(hs * hs))
    return g


def build(g: gc.Graph, out: Path, **options: Any) -> tuple[float, int, Any]:
    """A cold build of `g` (value_and_grad) in float32 in a fresh directory: seconds, bytes of
    generated source, the module."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    m = gc.compile(g, dtype="float32", out_dir=out, functions=("value_and_grad",), **options)
    return time.perf_counter() - t0, len(m.stages.source.encode()), m


def median_ms(fn: Callable[[], Any], calls: int) -> float:
    fn()
    fn()  # warm: spare blocks taken, threads started
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * a) + 0.5


def numpy_step(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b: np.ndarray) -> tuple:
    """The LSTM's loss mean(hs ** 2) and its gradients, forward and backward by hand."""
    n, steps, _ = x.shape
    hidden = w_hh.shape[0]
    xs = np.ascontiguousarray(x.transpose(1, 0, 2))
    xw = (xs.reshape(steps * n, -1) @ w_ih + b).reshape(steps, n, 4 * hidden)
    gates = np.empty((steps, n, 4 * hidden), x.dtype)
    cs = np.empty((steps + 1, n, hidden), x.dtype)
    hs = np.empty((steps + 1, n, hidden), x.dtype)
    tc = np.empty((steps, n, hidden), x.dtype)
    cs[0] = hs[0] = 0
    H = hidden
    for t in range(steps):
        a = xw[t] + hs[t] @ w_hh
        a[:, : 2 * H] = sigmoid(a[:, : 2 * H])
        a[:, 2 * H : 3 * H] = np.tanh(a[:, 2 * H : 3 * H])
        a[:, 3 * H :] = sigmoid(a[:, 3 * H :])
        gates[t] = a
        cs[t + 1] = a[:, H : 2 * H] * cs[t] + a[:, :H] * a[:, 2 * H : 3 * H]
        tc[t] = np.tanh(cs[t + 1])
        hs[t + 1] = a[:, 3 * H :] * tc[t]
    out = hs[1:]
    loss = float(np.mean(out * out))
    dout = out * (2.0 / out.size)
    dh = np.zeros((n, H), x.dtype)
    dc = np.zeros((n, H), x.dtype)
    da = np.empty((steps, n, 4 * H), x.dtype)
    dw_hh = np.zeros_like(w_hh)
    for t in range(steps - 1, -1, -1):
        i, f, g, o = (gates[t][:, k * H : (k + 1) * H] for k in range(4))
        dh += dout[t]
        do = dh * tc[t]
        dc += dh * o * (1 - tc[t] ** 2)
        d = da[t]
        d[:, :H] = dc * g * i * (1 - i)
        d[:, H : 2 * H] = dc * cs[t] * f * (1 - f)
        d[:, 2 * H : 3 * H] = dc * i * (1 - g * g)
        d[:, 3 * H :] = do * o * (1 - o)
        dc = dc * f
        dw_hh += hs[t].T @ d
        dh = d @ w_hh.T
    flat = da.reshape(steps * n, 4 * H)
    dw_ih = xs.reshape(steps * n, -1).T @ flat
    dx = (flat @ w_ih.T).reshape(steps, n, -1).transpose(1, 0, 2)
    return loss, {"w_ih": dw_ih, "w_hh": dw_hh, "b": flat.sum(0), "x": dx}


def setup(spec: dict[str, Any]) -> tuple[Callable[[], float], dict[str, Any]] | dict[str, Any]:
    """One implementation's step (returning its loss), or {"skipped": why}."""
    p, impl = spec["sizes"], spec["impl"]
    steps = p["steps"]
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((p["batch"], steps, p["input"])).astype(np.float32)
    budget = impl == "budget"  # graphc with memory_budget=1, T static
    g = lstm_graph(steps if budget else "T", p["hidden"], p["input"])
    params = gc.nn.init_params(g, seed=0, dtype="float32")
    w_ih, w_hh, b = params["lstm_w_ih"], params["lstm_w_hh"], params["lstm_b"]
    if impl in ("graphc", "budget"):
        options = {"memory_budget": 1} if budget else {}
        m = gc.compile(g, dtype="float32", out_dir=spec["dir"], functions=("value_and_grad",),
                       **options)  # fmt: skip
        extra = {"kept": kept_bytes(m.stages.programs["value_and_grad"][0], p)}
        if budget:  # one segment: k steps of what the loop stacks without one
            from graphc.compiler import run_stages

            st = run_stages(g, dtype="float32", functions=("value_and_grad",))
            every = math.isqrt(steps - 1) + 1
            whole = kept_bytes(st.programs["value_and_grad"][0], p)["stacked"]
            extra["kept"]["segment"] = whole * every // steps
        return (lambda: float(m.value_and_grad(x=xs, **params)[0]["loss"])), extra
    if impl == "numpy":
        return (lambda: numpy_step(xs, w_ih, w_hh, b)[0]), {}
    if impl == "jax":
        try:
            import jax
            import jax.numpy as jnp
        except ImportError:
            return {"skipped": "JAX is not installed (pip install jax)"}
        H = p["hidden"]

        def loss_of(w_ih, w_hh, b, x):
            def cell(carry, xw):
                h, c = carry
                a = xw + h @ w_hh
                i, f = jax.nn.sigmoid(a[:, :H]), jax.nn.sigmoid(a[:, H : 2 * H])
                g, o = jnp.tanh(a[:, 2 * H : 3 * H]), jax.nn.sigmoid(a[:, 3 * H :])
                c = f * c + i * g
                h = o * jnp.tanh(c)
                return (h, c), h

            xw = jnp.swapaxes(x, 0, 1) @ w_ih + b
            zero = jnp.zeros((x.shape[0], H), x.dtype)
            _, hs = jax.lax.scan(cell, (zero, zero), xw)
            return jnp.mean(hs * hs)

        fn = jax.jit(jax.value_and_grad(loss_of, argnums=(0, 1, 2, 3)))
        args = [jax.device_put(a) for a in (w_ih, w_hh, b, xs)]

        def jax_step() -> float:
            loss, grads = fn(*args)
            jax.block_until_ready(grads)
            return float(loss)

        return jax_step, {}
    try:
        import torch
    except ImportError:
        return {"skipped": "PyTorch is not installed (pip install torch)"}
    if spec["threads"] == 1:
        torch.set_num_threads(1)
    x = torch.from_numpy(xs).requires_grad_()
    weights = {
        "weight_ih": torch.from_numpy(w_ih.T.copy()),
        "weight_hh": torch.from_numpy(w_hh.T.copy()),
        "bias_ih": torch.from_numpy(b),
        "bias_hh": torch.zeros(4 * p["hidden"]),
    }
    if impl == "torch":
        net = torch.nn.LSTM(p["input"], p["hidden"], batch_first=True)
        with torch.no_grad():
            for k, v in weights.items():
                getattr(net, f"{k}_l0").copy_(v)

        def torch_step() -> float:
            net.zero_grad()
            x.grad = None
            out, _ = net(x)
            loss = (out * out).mean()
            loss.backward()
            return float(loss)

        return torch_step, {}
    cell = torch.nn.LSTMCell(p["input"], p["hidden"])  # eager: a Python loop of LSTMCell
    with torch.no_grad():
        for k, v in weights.items():
            getattr(cell, k).copy_(v)

    def eager_step() -> float:
        cell.zero_grad()
        x.grad = None
        h = c = torch.zeros(p["batch"], p["hidden"])
        hs = []
        for t in range(steps):
            h, c = cell(x[:, t], (h, c))
            hs.append(h)
        out = torch.stack(hs, 1)
        loss = (out * out).mean()
        loss.backward()
        return float(loss)

    return eager_step, {}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One implementation's peak memory, step time and loss, in this process. The peak is
    that of the second call above the resident memory after setup (as benchmarks/memory.py
    counts it: memory kept between calls, such as graphc's arena, is part of a call's cost)."""
    from benchmarks.memory import measure_call, proc_status, reset_peak

    made = setup(spec)
    if isinstance(made, dict):
        return made
    step, extra = made
    use_hwm = reset_peak() and proc_status()["VmHWM"] <= proc_status()["VmRSS"] + (1 << 20)
    setup_rss = proc_status()["VmRSS"]
    measure_call(step, use_hwm)  # the first call
    steady = measure_call(step, use_hwm)
    peak = steady.peak + max(0, steady.baseline - setup_rss)
    ms = median_ms(step, spec["sizes"]["calls"])
    return {"ms": ms, "loss": steady.result, "peak": peak, **extra}


def kept_bytes(prog: Any, p: dict[str, int]) -> dict[str, int]:
    """Bytes a value_and_grad step (`prog`, a scheduled program) must keep at these sizes: the
    values each forward loop stacks for the backward pass (its results that backward steps
    read: with checkpoints, the carries it keeps every k-th step), the per-step values any step
    reads (the sequences the loss reads, if the backward pass does not), and the gradients."""
    from graphc.ops.scan import results

    G = prog.graph.nx
    sizes = {"N": p["batch"], "T": p["steps"]}
    backward = {n for s in prog.steps if s.section == "backward" for n in s.nodes}
    stacked = checkpoints = read = 0
    for s in prog.steps:
        if s.section != "forward" or G._node[s.node]["op"] != "scan":
            continue
        types = results(G, s.node)
        params = G._node[s.node]["params"]
        for o in s.nodes[1:]:
            index = G._node[o]["params"]["index"]
            if index < params["n_carry"]:
                continue
            shape, _ = types[index]
            nbytes = int(np.prod([sizes.get(d, d) for d in shape])) * 4
            read += nbytes if index not in params["strided"] and G.out_degree(o) else 0
            if not any(v in backward for v in G.successors(o)):
                continue
            if index in params["strided"]:
                checkpoints += nbytes
            else:
                stacked += nbytes
    grads = sum(int(np.prod(G._node[n]["shape"])) * 4 for k, n in prog.outputs.items()
                if k != "loss")  # fmt: skip
    return {"stacked": stacked, "checkpoints": checkpoints, "read": read, "gradients": grads}


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.rnn", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, no claims")
    ap.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    s = QUICK if args.quick else FULL
    start = load_average()
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        print(f"build of the LSTM (hidden {s['hidden']}, input {s['input']}) with "
              "value_and_grad, float32, cold:")  # fmt: skip
        build(lstm_graph(3, 2, 2), out / "warm")  # the runtime and Cython's worker ready
        rows = []
        models = [(f"loop, T = {t}", lstm_graph(t, s["hidden"], s["input"]))
                  for t in (10, s["long"], "T")]  # fmt: skip
        models += [(f"unrolled, T = {t}", lstm_graph(t, s["hidden"], s["input"], unroll=True))
                   for t in (10, 20)]  # fmt: skip
        for name, g in models:
            secs, size, _ = min((build(g, out / f"b{k}") for k in range(s["builds"])),
                                key=lambda b: b[0])  # fmt: skip
            rows.append([name, f"{secs:.2f}", f"{size / 1024:.0f}"])
        print(format_table(["model", "build s", "source KiB"], rows))
        print()
        print(f"one value_and_grad step: LSTM hidden {s['hidden']}, input {s['input']}, "
              f"batch {s['batch']}, T = {s['steps']}, float32 (median of {s['calls']} calls, best "
              f"of {s['rounds']} processes, ms; ratio: the peer's time / graphc's):")  # fmt: skip
        got: dict[tuple[str, int], dict[str, Any]] = {}
        skipped: dict[str, str] = {}
        one = {
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "GRAPHC_NUM_THREADS": "1",
            "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false",
        }
        for _ in range(s["rounds"]):  # interleaved, each keeping its best: a shared machine's
            for threads in s["threads"]:  # load changes while the run goes on
                for impl in ("graphc", *PEERS, *(("budget",) if threads == 1 else ())):
                    if impl in skipped or any(impl in f for f in failed):
                        continue
                    spec = {"impl": impl, "threads": threads, "sizes": s, "dir": str(out / impl)}
                    r = run_child("benchmarks.rnn", spec, one if threads == 1 else None)
                    if "error" in r:
                        failed.append(f"{impl}, threads {threads}: {r['error']}")
                    elif "skipped" in r:
                        skipped[impl] = r["skipped"]
                    elif (impl, threads) not in got or r["ms"] < got[impl, threads]["ms"]:
                        got[impl, threads] = r
        rows = []
        for threads in (1, 0):
            if ("graphc", threads) not in got:
                continue
            mine = got["graphc", threads]
            row = [str(threads or "default"), f"{mine['ms']:.1f}"]
            want = got.get(("numpy", threads), {}).get("loss")
            for impl in ("graphc", *PEERS):
                theirs = got.get((impl, threads))
                if theirs is not None and want is not None and not math.isclose(
                        theirs["loss"], want, rel_tol=LOSS_RTOL):  # fmt: skip
                    failed.append(f"{impl}, threads {threads}: MISMATCH, loss {theirs['loss']!r}"
                                  f" against NumPy's {want!r}")  # fmt: skip
                if impl != "graphc":
                    row += ["-", "-"] if theirs is None else [
                        f"{theirs['ms']:.1f}", f"{theirs['ms'] / mine['ms']:.2f}"
                    ]  # fmt: skip
            rows.append(row)
        header = ["threads", "graphc"]
        for impl in PEERS:
            header += [TITLES[impl], "ratio"]
        print(format_table(header, rows))
        for impl, why in skipped.items():
            print(f"skipped {TITLES[impl]}: {why}")
        peaks = [[TITLES.get(impl, impl), mib(got[impl, 1]["peak"])]
                 for impl in ("graphc", *PEERS) if (impl, 1) in got]  # fmt: skip
        if peaks:
            print()
            print("peak memory of one step above the memory after setup (one thread):")
            print(format_table(["implementation", "peak"], peaks))
        if ("graphc", 1) in got:
            r = got["graphc", 1]
            kept = r["kept"]["stacked"] + r["kept"]["gradients"]
            print()
            print(f"graphc's peak (T a symbol): {mib(r['peak'])}; it keeps "
                  f"{mib(r['kept']['stacked'])} of stacked per-step values and "
                  f"{mib(r['kept']['gradients'])} of gradients: "
                  f"{r['peak'] / max(kept, 1):.2f} times what it keeps")  # fmt: skip
        r = got.get(("budget", 1))
        if r is not None:
            k = math.isqrt(s["steps"] - 1) + 1
            kept = r["kept"]
            bound = sum(kept[key] for key in ("read", "checkpoints", "segment", "gradients"))
            plain = got.get(("graphc", 1), {}).get("ms")
            slower = f" ({r['ms'] / plain:.2f} times graphc's without)" if plain else ""
            print(f"with memory_budget=1 (T = {s['steps']} static; checkpoints every {k} "
                  f"steps): {r['ms']:.1f} ms{slower}, peak {mib(r['peak'])}; it keeps "
                  f"{mib(kept['checkpoints'])} of checkpoints, one segment of "
                  f"{mib(kept['segment'])}, {mib(kept['read'])} of stacked per-step values "
                  f"the loss reads and {mib(kept['gradients'])} of gradients: "
                  f"{r['peak'] / max(bound, 1):.2f} times that")  # fmt: skip
            unbudgeted = got.get(("graphc", 1))
            if unbudgeted and not math.isclose(r["loss"], unbudgeted["loss"], rel_tol=1e-6):
                failed.append(f"graphc with a budget: MISMATCH, loss {r['loss']!r} against "
                              f"{unbudgeted['loss']!r}")  # fmt: skip
    end = load_average()
    if start is not None and end is not None:
        print(f"\n1-minute load average {start:.2f} at the start, {end:.2f} at the end")
    for line in failed:
        print("FAILED", line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
