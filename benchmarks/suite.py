"""Time of one forward+backward step on seven workloads: graphc's compiled `value_and_grad`
against the same step in hand-written NumPy, PyTorch eager, `torch.compile` and JAX
`jit(value_and_grad)`, each implementation in a fresh process of its own.

Workloads: `seed`, the 3-2-2 sigmoid network of examples/seed_network.py (MSE, batch 1, float64);
`mlp`, an MLP 784-256-256-10 (ReLU, softmax cross-entropy on one-hot labels, batch 128, float32),
with the floor of the matrix products the step needs done by NumPy; `chain`, the elementwise
`sum(tanh(x*a + b) * sigmoid(x) - exp(-x*x))` on 10**6 float64 elements, with a memory-bandwidth
floor and a transcendental-function floor; and `cnn`, a small CNN on 1x28x28 images (conv 3x3 to
8 channels with bias, ReLU, 2x2 max-pool, dense 1352 to 10, softmax cross-entropy on one-hot
labels, batch 32, float32); and `gpt2`, `gpt4`, `gpt128`, a nanoGPT-style language model
(benchmarks/gpt.py: 2 or 4 layers, d 64 or 128, sequences of 32 or 128 tokens, batch 16,
float32). Every implementation's loss and gradients are checked against
graphc's before it is timed. graphc's cold-build and cache-hit compile times are reported for
each workload.

    python -m benchmarks.suite                        # full run, a few minutes (torch.compile)
    python -m benchmarks.suite --quick                # smoke run: tiny sizes, no speed claims
    python -m benchmarks.suite --workloads seed,gpt2  # a subset (seed,mlp,chain,cnn,gpt2,...)
    python -m benchmarks.suite --json out.json        # also save every number as JSON
    python -m benchmarks.suite --build-dir DIR        # graphc's build cache for the timed modules
    python -m benchmarks.suite --threads 1            # every library on one thread
    python -m benchmarks.suite --background 4         # under load: 4 busy process loops
    python -m benchmarks.suite --baseline ../old      # also graphc of another checkout, in turn

With `--baseline DIR` (a checkout of another commit of graphc: `git worktree add ../old REV`),
that graphc builds each workload too and its module is timed beside this one's, each in its
own process and again at the end, its results checked against this one's.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if os.environ.get("GRAPHC_SUITE_TREE"):  # a --baseline child: that checkout's graphc
    sys.path.insert(0, os.environ["GRAPHC_SUITE_TREE"])
import graphc as gc  # noqa: E402
from benchmarks import gpt
from benchmarks._timing import (
    FULL,
    QUICK,
    Case,
    Plan,
    Timing,
    background_load,
    fmt_us,
    format_fields,
    format_table,
    harness_floor_us,
    load_average,
    machine_info,
    measure,
    run_child,
)
from benchmarks.call_overhead import load_seed, numpy_step

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("graphc", "numpy", "scipy", "Cython", "torch", "jax", "jaxlib")
TOLERANCE = {"float64": 1e-10, "float32": 1e-3}  # see rel_error
SEED = 0
COPY_BYTES = 64 << 20  # the array np.copyto copies to measure the copy bandwidth
ALL_WORKLOADS = ("seed", "mlp", "chain", "cnn", *gpt.CONFIGS)

# Implementations, in table order: key -> row label. Each runs in a process of its own.
IMPLS = {
    "graphc": "graphc value_and_grad",
    "baseline": "graphc baseline (--baseline)",
    "numpy": "NumPy by hand (no autodiff)",
    "torch": "PyTorch eager",
    "torch_compile": "torch.compile(step)",
    "jax": "JAX jit(value_and_grad)",
}
PEERS = {"torch": "PyTorch", "torch_compile": "PyTorch", "jax": "JAX"}

Values = dict[str, np.ndarray]  # {"loss": ..., wrt name: gradient, ...}


# --- workloads ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ops:
    """The operations the workloads use, in one framework's spelling."""

    sigmoid: Callable[[Any], Any]
    tanh: Callable[[Any], Any]
    exp: Callable[[Any], Any]
    relu: Callable[[Any], Any]
    sum: Callable[[Any], Any]
    mean: Callable[[Any], Any]
    xent: Callable[[Any, Any], Any]  # softmax cross-entropy, mean over the batch
    conv2d: Callable[[Any, Any], Any]  # NCHW input, OIHW weight, stride 1, no padding, no bias
    max_pool2d: Callable[[Any, int], Any]  # NCHW, k x k windows, stride k, no padding
    # the GPT's (benchmarks/gpt.py)
    take: Callable[[Any, Any], Any]  # rows of a table picked by int indices
    layer_norm: Callable[[Any], Any]  # over the last axis, eps 1e-5, no gain or bias
    softmax: Callable[[Any], Any]  # over the last axis
    gelu: Callable[[Any], Any]  # exact (erf)
    xent_int: Callable[[Any, Any], Any]  # softmax cross-entropy on class indices, mean
    swap: Callable[[Any, int, int], Any]  # two axes swapped
    const: Callable[[np.ndarray, Any], Any]  # an array as a constant beside value `like`


def seed_loss(o: Ops, v: dict[str, Any]) -> Any:
    a1 = o.sigmoid(v["x"] @ v["W1"].T + v["b1"])
    y_hat = o.sigmoid(a1 @ v["W2"].T + v["b2"])
    return o.mean((y_hat - v["y"]) ** 2)


def mlp_loss(o: Ops, v: dict[str, Any]) -> Any:
    h = o.relu(v["x"] @ v["W1"] + v["b1"])
    h = o.relu(h @ v["W2"] + v["b2"])
    return o.xent(h @ v["W3"] + v["b3"], v["y"])


def chain_loss(o: Ops, v: dict[str, Any]) -> Any:
    x = v["x"]
    return o.sum(o.tanh(x * v["a"] + v["b"]) * o.sigmoid(x) - o.exp(-x * x))


def cnn_loss(o: Ops, v: dict[str, Any]) -> Any:
    z = o.conv2d(v["x"], v["Wc"]) + v["bc"].reshape(1, -1, 1, 1)  # [N, 8, 26, 26]
    h = o.max_pool2d(o.relu(z), CNN_POOL)  # [N, 8, 13, 13]
    return o.xent(h.reshape(h.shape[0], -1) @ v["Wd"] + v["bd"], v["y"])


@dataclass(frozen=True)
class Workload:
    """One step to time. `n` is the symbolic dimension N in this run (the batch, or the
    vector length); `hint` is graphc's `size_hint` (None: graphc's default), fixed so that
    --quick and the full run share one build."""

    key: str
    title: str
    dtype: str
    n: int
    hint: int | None
    wrt: tuple[str, ...]
    loss: Callable[[Ops, dict[str, Any]], Any]
    graph: Callable[[], gc.Graph]
    arrays: Callable[[int], dict[str, np.ndarray]]
    numpy_step: Callable[..., tuple[dict[str, Any], dict[str, Any]]] | None  # by hand

    @property
    def tolerance(self) -> float:
        return TOLERANCE[self.dtype]


GRAPHC_OPS = Ops(
    gc.sigmoid,
    gc.tanh,
    gc.exp,
    gc.relu,
    gc.sum,
    gc.mean,
    gc.softmax_cross_entropy,
    gc.conv2d,
    gc.max_pool2d,
    lambda table, idx: gc.take(table, idx, axis=0),
    lambda x: gc.layer_norm(x, axis=-1, eps=1e-5),
    lambda x: gc.softmax(x, axis=-1),
    gc.gelu,
    gc.softmax_cross_entropy,
    gc.swapaxes,
    lambda a, like: like.graph.const(a, dtype=like.dtype),
)
MLP_DIMS = (784, 256, 256, 10)
# The CNN: images [N, 1, 28, 28]; conv 3x3 to 8 channels (no padding) -> [N, 8, 26, 26]; 2x2
# max-pool -> [N, 8, 13, 13]; dense 8*13*13 = 1352 -> 10.
CNN_IMAGE = (1, 28, 28)
CNN_CHANNELS, CNN_KERNEL, CNN_POOL, CNN_CLASSES = 8, 3, 2, 10
CNN_CONV = CNN_IMAGE[1] - CNN_KERNEL + 1  # 26
CNN_FLAT = CNN_CHANNELS * (CNN_CONV // CNN_POOL) ** 2  # 1352


def seed_graph() -> gc.Graph:
    return load_seed()[0]


def seed_arrays(n: int) -> dict[str, np.ndarray]:
    return load_seed()[1]


def mlp_graph() -> gc.Graph:
    g = gc.Graph("suite_mlp")
    v = {"x": g.input("x", shape=("N", MLP_DIMS[0])), "y": g.input("y", shape=("N", MLP_DIMS[-1]))}
    for i in range(3):
        v[f"W{i + 1}"] = g.param(f"W{i + 1}", shape=MLP_DIMS[i : i + 2])
        v[f"b{i + 1}"] = g.param(f"b{i + 1}", shape=(MLP_DIMS[i + 1],))
    g.output("loss", mlp_loss(GRAPHC_OPS, v))
    return g


def mlp_arrays(n: int) -> dict[str, np.ndarray]:
    """Normal inputs, weights scaled by 1/sqrt(fan-in), small biases, one-hot float labels."""
    rng = np.random.default_rng(SEED)
    out = {
        "x": rng.standard_normal((n, MLP_DIMS[0])),
        "y": np.eye(MLP_DIMS[-1])[rng.integers(0, MLP_DIMS[-1], size=n)],
    }
    for i in range(3):
        fan_in, fan_out = MLP_DIMS[i : i + 2]
        out[f"W{i + 1}"] = rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)
        out[f"b{i + 1}"] = 0.1 * rng.standard_normal(fan_out)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def xent_numpy(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax cross-entropy of logits `z` [N, C] against labels `y` [N, C], mean over the
    batch: the loss and its gradient with respect to `z`."""
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    n = z.shape[0]
    loss = -np.sum(y * (shifted - np.log(s))) / n
    return loss, (e / s * y.sum(axis=1, keepdims=True) - y) / n


def mlp_numpy(
    x: np.ndarray,
    y: np.ndarray,
    W1: np.ndarray,
    b1: np.ndarray,
    W2: np.ndarray,
    b2: np.ndarray,
    W3: np.ndarray,
    b3: np.ndarray,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Forward and backward of the MLP by hand (float32 throughout), as graphc returns them."""
    z1 = x @ W1 + b1
    h1 = np.maximum(z1, 0)
    z2 = h1 @ W2 + b2
    h2 = np.maximum(z2, 0)
    loss, d3 = xent_numpy(h2 @ W3 + b3, y)
    d2 = (d3 @ W3.T) * (z2 > 0)
    d1 = (d2 @ W2.T) * (z1 > 0)
    grads = {
        "W1": x.T @ d1,
        "b1": d1.sum(axis=0),
        "W2": h1.T @ d2,
        "b2": d2.sum(axis=0),
        "W3": h2.T @ d3,
        "b3": d3.sum(axis=0),
    }
    return {"loss": loss}, grads


def chain_graph() -> gc.Graph:
    g = gc.Graph("suite_chain")
    v = {"x": g.input("x", shape=("N",))}
    v |= {k: g.param(k, shape=("N",)) for k in ("a", "b")}
    g.output("loss", chain_loss(GRAPHC_OPS, v))
    return g


def chain_arrays(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    return {k: rng.standard_normal(n) for k in ("x", "a", "b")}


def chain_numpy(
    x: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Forward and backward of the chain by hand, as graphc returns them."""
    t = np.tanh(x * a + b)
    s = 1.0 / (1.0 + np.exp(-x))
    e = np.exp(-x * x)
    loss = np.sum(t * s - e)
    dt = s * (1.0 - t * t)  # d loss / d (x*a + b)
    dx = dt * a + t * s * (1.0 - s) + 2.0 * x * e
    return {"loss": loss}, {"x": dx, "a": dt * x, "b": dt}


def cnn_graph() -> gc.Graph:
    g = gc.Graph("suite_cnn")
    v = {
        "x": g.input("x", shape=("N", *CNN_IMAGE)),
        "y": g.input("y", shape=("N", CNN_CLASSES)),
        "Wc": g.param("Wc", shape=(CNN_CHANNELS, CNN_IMAGE[0], CNN_KERNEL, CNN_KERNEL)),
        "bc": g.param("bc", shape=(CNN_CHANNELS,)),
        "Wd": g.param("Wd", shape=(CNN_FLAT, CNN_CLASSES)),
        "bd": g.param("bd", shape=(CNN_CLASSES,)),
    }
    g.output("loss", cnn_loss(GRAPHC_OPS, v))
    return g


def cnn_arrays(n: int) -> dict[str, np.ndarray]:
    """Normal images, weights scaled by 1/sqrt(fan-in), small biases, one-hot float labels."""
    rng = np.random.default_rng(SEED)
    fan_in = CNN_IMAGE[0] * CNN_KERNEL * CNN_KERNEL
    out = {
        "x": rng.standard_normal((n, *CNN_IMAGE)),
        "y": np.eye(CNN_CLASSES)[rng.integers(0, CNN_CLASSES, size=n)],
        "Wc": rng.standard_normal((CNN_CHANNELS, CNN_IMAGE[0], CNN_KERNEL, CNN_KERNEL))
        / np.sqrt(fan_in),
        "bc": 0.1 * rng.standard_normal(CNN_CHANNELS),
        "Wd": rng.standard_normal((CNN_FLAT, CNN_CLASSES)) / np.sqrt(CNN_FLAT),
        "bd": 0.1 * rng.standard_normal(CNN_CLASSES),
    }
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def cnn_numpy(
    x: np.ndarray,
    y: np.ndarray,
    Wc: np.ndarray,
    bc: np.ndarray,
    Wd: np.ndarray,
    bd: np.ndarray,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Forward and backward of the CNN by hand (float32 throughout), as graphc returns them.
    The convolution is one GEMM with the im2col matrix, built transposed from a strided view of
    the windows (row (c, i, j) holds x[n, c, i + r, j + s] for every n, r, s), so the feature
    maps come out channels first, [C, N, H, W]: the bias, the pooling and the bias's gradient
    then work on contiguous rows. Only the pooled maps are put in NCHW order for the dense
    layer. The max-pool is the maximum of its p*p strided corners; its gradient goes through
    the argmax mask (a corner equal to the window's maximum)."""
    n, c_in, h, w = x.shape
    c_out, _, k, _ = Wc.shape
    ho, wo, p = h - k + 1, w - k + 1, CNN_POOL
    hp, wp = ho // p, wo // p
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))  # N,C,Ho,Wo,k,k
    cols = windows.transpose(1, 4, 5, 0, 2, 3).reshape(c_in * k * k, n * ho * wo)
    z = (Wc.reshape(c_out, -1) @ cols + bc[:, None]).reshape(c_out, n, ho, wo)
    a = np.maximum(z, 0)
    corners = [(i, j) for i in range(p) for j in range(p)]
    view = {(i, j): a[:, :, i : p * hp : p, j : p * wp : p] for i, j in corners}
    pooled = view[0, 0]
    for ij in corners[1:]:
        pooled = np.maximum(pooled, view[ij])  # [C, N, Hp, Wp]
    flat = pooled.transpose(1, 0, 2, 3).reshape(n, -1)  # NCHW order, as Wd expects
    loss, dlogits = xent_numpy(flat @ Wd + bd, y)
    dpooled = (dlogits @ Wd.T).reshape(n, c_out, hp, wp).transpose(1, 0, 2, 3)
    # Ties in a window (every corner that equals the maximum gets the gradient) happen only
    # between zeros of the ReLU, where the ReLU's own mask (z > 0) removes them.
    da = np.zeros_like(a)
    for i, j in corners:
        da[:, :, i : p * hp : p, j : p * wp : p] = (view[i, j] == pooled) * dpooled
    dz = (da * (z > 0)).reshape(c_out, -1)
    grads = {
        "Wc": (dz @ cols.T).reshape(Wc.shape),
        "bc": dz.sum(axis=1),
        "Wd": flat.T @ dlogits,
        "bd": dlogits.sum(axis=0),
    }
    return {"loss": loss}, grads


def workloads(quick: bool) -> dict[str, Workload]:
    """The workloads; with `quick`, smaller sizes of mlp, chain, cnn and the GPTs."""
    n_mlp, n_chain, n_cnn = (8, 10**4, 4) if quick else (128, 10**6, 32)
    wls = [
        Workload(
            "seed",
            "examples/seed_network.py: 3-2-2 sigmoid network, MSE loss, batch 1, float64; "
            "gradients w.r.t. W1, b1, W2, b2",
            "float64",
            1,
            None,  # graphc's default, as benchmarks.call_overhead builds it
            ("W1", "b1", "W2", "b2"),
            seed_loss,
            seed_graph,
            seed_arrays,
            numpy_step,
        ),
        Workload(
            "mlp",
            f"MLP {'-'.join(map(str, MLP_DIMS))}, ReLU, softmax cross-entropy on one-hot labels, "
            f"mean over the batch, batch {n_mlp}, float32; gradients w.r.t. W1, b1, W2, b2, W3, b3",
            "float32",
            n_mlp,
            128,
            ("W1", "b1", "W2", "b2", "W3", "b3"),
            mlp_loss,
            mlp_graph,
            mlp_arrays,
            mlp_numpy,
        ),
        Workload(
            "chain",
            f"loss = sum(tanh(x*a + b) * sigmoid(x) - exp(-x*x)), x, a, b float64 vectors of "
            f"{n_chain:,} elements; gradients w.r.t. x, a, b",
            "float64",
            n_chain,
            10**6,
            ("x", "a", "b"),
            chain_loss,
            chain_graph,
            chain_arrays,
            chain_numpy,
        ),
        Workload(
            "cnn",
            f"CNN on {'x'.join(map(str, CNN_IMAGE))} images: conv {CNN_KERNEL}x{CNN_KERNEL} to "
            f"{CNN_CHANNELS} channels (no padding, plus bias), ReLU, {CNN_POOL}x{CNN_POOL} "
            f"max-pool, dense {CNN_FLAT} -> {CNN_CLASSES}, softmax cross-entropy on one-hot "
            f"labels, mean over the batch, batch {n_cnn}, float32; gradients w.r.t. Wc "
            f"{list((CNN_CHANNELS, CNN_IMAGE[0], CNN_KERNEL, CNN_KERNEL))}, bc, Wd, bd",
            "float32",
            n_cnn,
            32,
            ("Wc", "bc", "Wd", "bd"),
            cnn_loss,
            cnn_graph,
            cnn_arrays,
            cnn_numpy,
        ),
    ]
    for key, cfg in gpt.CONFIGS.items():
        if quick:
            cfg = dataclasses.replace(cfg, batch=2)
        wls.append(
            Workload(
                key,
                cfg.title,
                "float32",
                cfg.batch,
                cfg.batch,
                gpt.wrt(cfg),
                functools.partial(gpt.loss, cfg=cfg),
                functools.partial(gpt.graph, cfg),
                functools.partial(gpt.arrays, cfg),
                None,
            )  # fmt: skip
        )
    return {w.key: w for w in wls}


# --- comparing ------------------------------------------------------------------------------


def values_of(wl: Workload, result: tuple[dict, dict]) -> Values:
    """Loss and gradients from graphc's `(outputs, grads)` (and anything shaped like it)."""
    outs, grads = result
    return {"loss": np.asarray(outs["loss"]), **{k: np.asarray(grads[k]) for k in wl.wrt}}


def rel_error(got: Values, want: Values) -> float:
    """The largest, over the loss and every gradient, of max|got - want| / max|want|: for the
    loss the plain relative difference, for a gradient the error relative to its largest entry
    (an element-wise ratio means nothing for entries that are almost zero), or to a thousandth
    of the largest gradient entry of all when that is larger: a gradient that is zero in exact
    arithmetic (a key bias's, through a softmax that ignores a shift of its row) is rounding
    noise in every implementation, and its noise against another's is no error."""
    grads = [np.asarray(w, dtype=np.float64) for k, w in want.items() if k != "loss"]
    floor = 1e-3 * max((float(np.max(np.abs(w), initial=0.0)) for w in grads), default=0.0)
    worst = 0.0
    for k, w in want.items():
        g = np.asarray(got[k], dtype=np.float64)
        w = np.asarray(w, dtype=np.float64)
        if g.shape != w.shape:
            return float("inf")
        scale = max(float(np.max(np.abs(w), initial=0.0)), np.finfo(np.float64).tiny)
        scale = scale if k == "loss" else max(scale, floor)
        diff = float(np.max(np.abs(g - w), initial=0.0))
        worst = max(worst, diff / scale if np.isfinite(diff) else float("inf"))
    return worst


def why(exc: BaseException) -> str:
    """A one-line reason from an exception."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# --- the implementations, set up in the child process ---------------------------------------


class Skip(Exception):
    """The implementation cannot run here (not importable, compile failed); the reason."""


@dataclass
class Impl:
    """One timed row. `values` turns a call's result into NumPy loss and gradients; None for a
    floor, which computes nothing to check."""

    case: Case
    values: Callable[[Any], Values] | None
    note: str = ""
    kind: str = "impl"  # "impl"; "floor", a row of the table; "aux", a measurement behind one


@dataclass
class Setup:
    """What a child times: its rows, and for the floors how to turn timings into floor rows."""

    impls: list[Impl]
    finish: Callable[[dict[str, Timing]], tuple[list[dict[str, Any]], dict[str, Any]]] | None = None


def setup_graphc(wl: Workload, arrays: Values, spec: dict[str, Any]) -> Setup:
    m = gc.load(spec["entry"])
    if m.DTYPE != wl.dtype:
        raise RuntimeError(f"{spec['entry']} is a {m.DTYPE} module, expected {wl.dtype}")
    kwargs = {k: arrays[k] for k in m.INPUTS}
    case = Case(IMPLS[spec["impl"]], m.value_and_grad, (), kwargs)
    return Setup([Impl(case, lambda r: values_of(wl, r), "keyword args, NumPy in and out")])


def gemm_floor_case(n: int, dtype: str) -> Case:
    """Exactly the matrix products of one MLP step, on the same shapes and dtype, into
    preallocated outputs: forward x@W1, h1@W2, h2@W3; backward h2.T@d3, h1.T@d2, x.T@d1 (weight
    gradients) and d3@W3.T, d2@W2.T (gradients of the hidden layers; x needs none)."""
    rng = np.random.default_rng(SEED + 1)
    d0, d1_, d2_, d3_ = MLP_DIMS
    mk = lambda *shape: rng.standard_normal(shape).astype(dtype)
    x, W1, W2, W3 = mk(n, d0), mk(d0, d1_), mk(d1_, d2_), mk(d2_, d3_)
    h1, h2, g1, g2, g3 = mk(n, d1_), mk(n, d2_), mk(n, d1_), mk(n, d2_), mk(n, d3_)
    products = [
        (x, W1),
        (h1, W2),
        (h2, W3),
        (h2.T, g3),
        (h1.T, g2),
        (x.T, g1),
        (g3, W3.T),
        (g2, W2.T),
    ]
    outs = [np.empty((a.shape[0], b.shape[1]), dtype=dtype) for a, b in products]
    work = [(a, b, o) for (a, b), o in zip(products, outs, strict=True)]

    def step() -> None:
        for a, b, o in work:
            np.matmul(a, b, out=o)

    return Case("GEMM floor (NumPy, same products)", step)


def chain_floor_cases(n: int) -> tuple[Case, Case, int]:
    """The copy that measures bandwidth (and the bytes it moves), and the transcendental
    functions the chain needs (tanh, exp, and a sigmoid's exp) at NumPy's speed, into a
    preallocated buffer."""
    src = np.ones(COPY_BYTES // 8)
    dst = np.empty_like(src)
    copy = Case("np.copyto of 64 MiB", np.copyto, (dst, src))
    x = np.random.default_rng(SEED + 1).standard_normal(n)
    buf = np.empty_like(x)

    def transcendental() -> None:
        np.tanh(x, out=buf)
        np.exp(x, out=buf)
        np.negative(x, out=buf)  # sigmoid: 1 / (1 + exp(-x))
        np.exp(buf, out=buf)
        np.add(buf, 1.0, out=buf)
        np.divide(1.0, buf, out=buf)

    return (
        copy,
        Case("transcendental floor (NumPy tanh, exp, sigmoid)", transcendental),
        2 * (src.nbytes),
    )


def floor_row(name: str, median_us: float, p10_us: float, calls: int, note: str) -> dict:
    return {
        "implementation": name,
        "kind": "floor",
        "median_us": median_us,
        "p10_us": p10_us,
        "calls_per_batch": calls,
        "note": note,
    }


def setup_numpy(wl: Workload, arrays: Values, spec: dict[str, Any]) -> Setup:
    """The hand-written step, plus the workload's floors, timed in the same process."""
    if wl.numpy_step is None:
        raise Skip("no step by hand for this workload (a GPT's backward pass by hand is long)")
    case = Case(IMPLS["numpy"], wl.numpy_step, (), dict(arrays))
    how = "NumPy ufuncs and @"
    if wl.key == "cnn":
        how = "im2col rows of a strided view and @ for the conv, the argmax mask for the pool"
    impls = [Impl(case, lambda r: values_of(wl, r), f"{how}; returns the same dicts")]
    if wl.key == "mlp":
        gemm = gemm_floor_case(wl.n, wl.dtype)
        impls.append(Impl(gemm, None, "8 np.matmul calls into preallocated outputs", "floor"))
        return Setup(impls)
    if wl.key != "chain":
        return Setup(impls)
    copy, trans, moved = chain_floor_cases(wl.n)
    needed = 6 * wl.n * 8  # read x, a, b once; write three float64 gradients once
    impls += [
        Impl(copy, None, kind="aux"),
        Impl(trans, None, "out= a preallocated buffer; the sigmoid as 4 ufunc calls", "floor"),
    ]

    def finish(t: dict[str, Timing]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        c = t[copy.name]
        gb_s = moved / (c.median_us * 1e3)  # bytes per ns = GB/s
        scale = needed / moved
        row = floor_row(
            "bandwidth floor (read x, a, b; write 3 grads)",
            c.median_us * scale,
            c.p10_us * scale,
            c.calls_per_batch,
            f"{needed / 1e6:g} MB at the copy bandwidth, {gb_s:.1f} GB/s (np.copyto of "
            f"{COPY_BYTES >> 20} MiB: {moved >> 20} MiB moved in {fmt_us(c.median_us)} µs)",
        )
        facts = {
            "copy_bytes_moved": moved,
            "copy_median_us": c.median_us,
            "copy_p10_us": c.p10_us,
            "bandwidth_GB_s": gb_s,
            "floor_bytes": needed,
        }
        return [row], facts

    return Setup(impls, finish)


def torch_ops(torch: Any) -> Ops:
    def xent(z: Any, y: Any) -> Any:
        return -(y * torch.log_softmax(z, dim=-1)).sum(dim=-1).mean()

    f = torch.nn.functional
    return Ops(
        torch.sigmoid,
        torch.tanh,
        torch.exp,
        torch.relu,
        torch.sum,
        torch.mean,
        xent,
        f.conv2d,
        f.max_pool2d,
        lambda table, idx: table[idx],
        lambda x: f.layer_norm(x, x.shape[-1:], eps=1e-5),
        lambda x: torch.softmax(x, -1),
        f.gelu,
        lambda z, y: f.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1)),
        torch.transpose,
        lambda a, like: torch.from_numpy(a).to(like.dtype),
    )


def torch_step(wl: Workload, arrays: Values, torch: Any) -> Callable[[], Any]:
    """A step over tensors made once (sharing the NumPy arrays' memory), with the wrt ones as
    leaves requiring grad; grads reset to None each step, as `optimizer.zero_grad()` does."""
    ops = torch_ops(torch)
    tensors = {k: torch.from_numpy(a).requires_grad_(k in wl.wrt) for k, a in arrays.items()}
    leaves = [tensors[k] for k in wl.wrt]

    def step() -> tuple[Any, list[Any]]:
        for p in leaves:
            p.grad = None
        loss = wl.loss(ops, tensors)
        loss.backward()
        return loss.detach(), [p.grad for p in leaves]

    return step


def torch_values(wl: Workload) -> Callable[[Any], Values]:
    def values(result: tuple[Any, list[Any]]) -> Values:
        loss, grads = result
        out = {"loss": loss.numpy()}
        out.update({k: g.numpy() for k, g in zip(wl.wrt, grads, strict=True)})
        return out

    return values


def import_torch() -> Any:
    try:
        import torch
    except Exception as exc:  # ImportError, or a broken install failing to load its libraries
        raise Skip(f"PyTorch not importable ({why(exc)})") from exc
    return torch


def setup_torch(wl: Workload, arrays: Values, spec: dict[str, Any]) -> Setup:
    torch = import_torch()
    case = Case(IMPLS["torch"], torch_step(wl, arrays, torch))
    note = f"tensors in/out, {torch.get_num_threads()} threads; grads set to None each step"
    return Setup([Impl(case, torch_values(wl), note)])


def setup_torch_compile(wl: Workload, arrays: Values, spec: dict[str, Any]) -> Setup:
    torch = import_torch()
    try:
        compiled = torch.compile(torch_step(wl, arrays, torch))
        t0 = time.perf_counter()
        compiled()
        took = time.perf_counter() - t0
    except Exception as exc:  # no C++ toolchain, unsupported platform, ...
        raise Skip(f"torch.compile failed ({why(exc)})") from exc
    note = f"the eager step under torch.compile (inductor); first call (compiling) {took:.1f} s"
    spec["compile_s"] = took
    return Setup([Impl(Case(IMPLS["torch_compile"], compiled), torch_values(wl), note)])


def jax_ops(x64: bool) -> tuple[Any, Ops]:
    """JAX (CPU, 64-bit floats if `x64`) and the workloads' ops written with it; Skip if JAX is
    not importable."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import jax
        import jax.numpy as jnp
    except Exception as exc:
        raise Skip(f"JAX not importable ({why(exc)})") from exc
    jax.config.update("jax_enable_x64", x64)

    def xent(z: Any, y: Any) -> Any:
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(z, axis=-1), axis=-1))

    def conv2d(x: Any, w: Any) -> Any:
        dims = ("NCHW", "OIHW", "NCHW")
        return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=dims)

    def max_pool2d(x: Any, k: int) -> Any:
        window = (1, 1, k, k)
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, window, "VALID")

    def layer_norm(x: Any) -> Any:
        m = jnp.mean(x, axis=-1, keepdims=True)
        return (x - m) / jnp.sqrt(jnp.mean((x - m) ** 2, axis=-1, keepdims=True) + 1e-5)

    def xent_int(z: Any, y: Any) -> Any:
        logp = jax.nn.log_softmax(z, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[..., None], axis=-1))

    ops = Ops(
        jax.nn.sigmoid,
        jnp.tanh,
        jnp.exp,
        jax.nn.relu,
        jnp.sum,
        jnp.mean,
        xent,
        conv2d,
        max_pool2d,
        lambda table, idx: table[idx],
        layer_norm,
        lambda x: jax.nn.softmax(x, axis=-1),
        lambda x: jax.nn.gelu(x, approximate=False),
        xent_int,
        jnp.swapaxes,
        lambda a, like: jnp.asarray(a, like.dtype),
    )
    return jax, ops


def setup_jax(wl: Workload, arrays: Values, spec: dict[str, Any]) -> Setup:
    jax, ops = jax_ops(wl.dtype == "float64")
    params = {k: jax.device_put(arrays[k]) for k in wl.wrt}
    data = {k: jax.device_put(a) for k, a in arrays.items() if k not in params}
    vg = jax.jit(jax.value_and_grad(lambda p, d: wl.loss(ops, {**p, **d})))
    try:
        t0 = time.perf_counter()
        jax.block_until_ready(vg(params, data))
        took = time.perf_counter() - t0
    except Exception as exc:
        raise Skip(f"JAX jit failed ({why(exc)})") from exc
    spec["compile_s"] = took

    def step() -> Any:
        return jax.block_until_ready(vg(params, data))

    def values(result: Any) -> Values:
        loss, grads = result
        return {"loss": np.asarray(loss), **{k: np.asarray(grads[k]) for k in wl.wrt}}

    dtype = str(params[wl.wrt[0]].dtype)
    note = (
        f"{jax.devices()[0]} {dtype}, device arrays, block_until_ready; first call (jit "
        f"compile) {took:.2f} s"
    )
    return Setup([Impl(Case(IMPLS["jax"], step), values, note)])


SETUP: dict[str, Callable[[Workload, Values, dict[str, Any]], Setup]] = {
    "graphc": setup_graphc,
    "baseline": setup_graphc,
    "numpy": setup_numpy,
    "torch": setup_torch,
    "torch_compile": setup_torch_compile,
    "jax": setup_jax,
}


def load_values(path: str | Path) -> Values:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: set one implementation of one workload up, check its loss and
    gradients against graphc's (`spec["ref"]`; graphc itself saves them to `spec["save"]`),
    then time it and any floors that go with it, interleaved."""
    wl = workloads(spec["quick"])[spec["workload"]]
    plan = QUICK if spec["quick"] else FULL
    arrays = wl.arrays(wl.n)
    try:
        setup = SETUP[spec["impl"]](wl, arrays, spec)
    except Skip as exc:
        return {"skipped": str(exc)}
    errors: dict[str, float | None] = {}
    for impl in setup.impls:
        if impl.values is None:
            errors[impl.case.name] = None
            continue
        got = impl.values(impl.case())
        if spec.get("save"):
            np.savez(spec["save"], **got)
        ref = load_values(spec["ref"]) if spec.get("ref") else got
        errors[impl.case.name] = rel_error(got, ref)
        broken = [k for k, v in got.items() if not np.all(np.isfinite(v))]
        if broken:  # NaN or inf: not comparable, even with itself
            errors[impl.case.name] = float("inf")
            impl.note = f"NOT FINITE: {', '.join(broken)}; " + impl.note
    bad = [k for k, e in errors.items() if e is not None and not e <= wl.tolerance]
    load_start = load_average()
    # A row that disagrees with graphc is not timed: its time would mean nothing.
    timed = [i for i in setup.impls if i.case.name not in bad]
    timings = measure([i.case for i in timed], plan) if timed else {}
    rows = []
    for impl in setup.impls:
        t = timings.get(impl.case.name)
        rows.append(
            {
                "implementation": impl.case.name,
                "kind": impl.kind,
                "median_us": t.median_us if t else None,
                "p10_us": t.p10_us if t else None,
                "calls_per_batch": t.calls_per_batch if t else None,
                "batches": len(t.per_call_ns) if t else 0,
                "per_call_us": [v / 1e3 for v in t.per_call_ns] if t else [],
                "max_rel_err_vs_graphc": errors[impl.case.name],
                "note": impl.note,
            }
        )
    facts: dict[str, Any] = {}
    if setup.finish is not None and timings:
        more, facts = setup.finish(timings)
        rows += more
    return {
        "rows": rows,
        "facts": facts,
        "loadavg_1min": [load_start, load_average()],
        "compile_s": spec.get("compile_s"),
    }


THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GRAPHC_NUM_THREADS")
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def thread_env(threads: int) -> dict[str, str]:
    """The environment that limits every library to `threads` threads (0: their defaults).
    PyTorch reads OMP_NUM_THREADS; JAX is limited only for 1 thread, through XLA_FLAGS."""
    if threads <= 0:
        return {}
    env = dict.fromkeys(THREAD_VARS, str(threads))
    if threads == 1:
        env["XLA_FLAGS"] = " ".join(f for f in (os.environ.get("XLA_FLAGS"), XLA_ONE_THREAD) if f)
    return env


# --- graphc builds, in the parent -----------------------------------------------------------


def compile_once(wl: Workload, out_dir: Path, opt_level: int | None) -> tuple[Any, float]:
    """`gc.compile` the workload into `out_dir`; the module and the seconds it took."""
    kwargs: dict[str, Any] = {"dtype": wl.dtype, "wrt": list(wl.wrt), "out_dir": out_dir}
    if opt_level is not None:
        kwargs["opt_level"] = opt_level
    if wl.hint is not None:
        kwargs["size_hint"] = wl.hint
    graph = wl.graph()
    t0 = time.perf_counter()
    module = gc.compile(graph, **kwargs)
    return module, time.perf_counter() - t0


def cold_child(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: one cold build of a workload into the new directory `spec["dir"]`,
    as `graphc compile` would do it (Cython started in this process, nothing cached)."""
    wl = workloads(spec["quick"])[spec["cold"]]
    module, seconds = compile_once(wl, Path(spec["dir"]), spec["opt_level"])
    meta = getattr(module.built, "meta", {}) or {}
    return {
        "seconds": seconds,
        "stages": meta.get("build_seconds", {}),
        "entry": str(module.built.entry_dir),
    }


def baseline_env(tree: Path | None) -> dict[str, str]:
    """The environment of a child that runs the graphc of checkout `tree`."""
    return {"GRAPHC_SUITE_TREE": str(tree.resolve())} if tree is not None else {}


def build(
    wl: Workload,
    build_dir: Path,
    fresh: Path | None,
    opt_level: int | None = None,
    cold_builds: int = 0,
) -> dict[str, Any]:
    """graphc's compile times for `wl` and the cache entry the children load. With `fresh` (a
    new, empty directory), the first compile there is a cold build; else the first compile is
    into `build_dir`, cold only if the module is not cached there yet. Either way a second
    compile into the same directory is the cache hit. With `fresh`, `cold_builds` more cold
    builds each run in a fresh process (their first use of Cython included) into
    directories of their own under it."""
    colds = [
        run_child(
            "benchmarks.suite",
            {
                "cold": wl.key,
                "quick": False,
                "opt_level": opt_level,
                "dir": str(fresh / f"fresh-{k}"),
            },
        )  # fmt: skip
        for k in range(cold_builds if fresh is not None else 0)
    ]
    first_dir = fresh if fresh is not None else build_dir
    module, first = compile_once(wl, first_dir, opt_level)
    again, hit = compile_once(wl, first_dir, opt_level)
    if fresh is not None:
        module, _ = compile_once(wl, build_dir, opt_level)  # what the children load
    meta = getattr(again.built, "meta", {}) or {}
    return {
        "entry": str(module.built.entry_dir),
        "dir": str(first_dir),
        "first_compile_s": first,
        "first_was_cache_hit": False if fresh is not None else bool(module.built.cache_hit),
        "cache_hit_s": hit,
        "second_was_cache_hit": bool(again.built.cache_hit),
        "stage_seconds": meta.get("build_seconds", {}),
        "pyx_lines": again.source.count("\n"),
        "so_bytes": meta.get("so_bytes"),
        "fresh_cold_s": [c["seconds"] for c in colds if "seconds" in c],
        "fresh_cold_errors": [c["error"] for c in colds if "error" in c],
    }


# --- the run --------------------------------------------------------------------------------


@dataclass
class WorkloadResult:
    workload: Workload
    build: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # row label -> reason
    failed: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    again: dict[str, Any] | None = None  # graphc timed again at the end
    baseline_again: dict[str, Any] | None = None  # and the baseline's, with --baseline
    loads: list[float | None] = field(default_factory=list)


def run_workload(
    wl: Workload, build_facts: dict[str, Any], quick: bool, tmp: Path, env: dict[str, str],
    baseline: Path | None = None,
) -> WorkloadResult:  # fmt: skip
    """Every implementation of `wl`, one fresh process each, graphc first (its loss and
    gradients are the reference) and, in a full run, graphc once more at the end (and the
    baseline's graphc after each, with `baseline`)."""
    res = WorkloadResult(wl, build_facts)
    ref = tmp / f"{wl.key}-graphc.npz"
    order = [k for k in IMPLS if k != "baseline" or baseline is not None]
    order += [] if quick else ["graphc", *(["baseline"] if baseline is not None else [])]
    for i, impl in enumerate(order):
        last = i >= len(IMPLS) - (baseline is None)
        label = IMPLS[impl] + (" (again)" if last else "")
        if impl == "baseline" and "baseline_entry" not in build_facts:
            res.failed[label] = build_facts.get("baseline_error", "the baseline did not build")
            continue
        if impl == "torch_compile" and quick:
            res.skipped[label] = "not run with --quick (compiling takes tens of seconds)"
            continue
        if impl != "graphc" and not ref.is_file():
            res.skipped[label] = "graphc failed, nothing to compare with"
            continue
        print(f"[{wl.key}] {label} ...", file=sys.stderr, flush=True)
        spec = {
            "workload": wl.key,
            "quick": quick,
            "impl": impl,
            "entry": build_facts["baseline_entry" if impl == "baseline" else "entry"],
            "ref": None if impl == "graphc" and not last else str(ref),
            "save": str(ref) if impl == "graphc" and not last else None,
        }
        child_env = env | (baseline_env(baseline) if impl == "baseline" else {})
        rec = run_child("benchmarks.suite", spec, child_env)
        if "error" in rec:
            res.failed[label] = rec["error"]
        elif "skipped" in rec:
            res.skipped[label] = rec["skipped"]
        elif last and impl == "baseline":
            res.baseline_again = rec["rows"][0]
        elif last:
            res.again = rec["rows"][0]
        else:
            res.rows += rec["rows"]
            res.facts |= rec.get("facts", {})
            if rec.get("compile_s") is not None:
                res.facts[f"{impl}_first_call_s"] = rec["compile_s"]
            res.loads += rec["loadavg_1min"]
    return res


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def fmt_opt_us(value: float | None) -> str:
    return "-" if value is None else fmt_us(value)


def workload_table(res: WorkloadResult) -> str:
    """The rows of one workload, implementations first, then the floors."""
    base = next((r["median_us"] for r in res.rows if r["implementation"] == IMPLS["graphc"]), None)
    rows = []
    ordered = [r for r in res.rows if r["kind"] == "impl"]
    ordered += [r for r in res.rows if r["kind"] == "floor"]
    for r in ordered:
        err = r.get("max_rel_err_vs_graphc")
        rows.append(
            [
                r["implementation"],
                fmt_opt_us(r["median_us"]),
                fmt_opt_us(r["p10_us"]),
                ratio(r["median_us"], base),
                "-" if err is None else f"{err:.1e}",
                "-" if r["calls_per_batch"] is None else str(r["calls_per_batch"]),
            ]
        )
    header = ["implementation", "median µs", "p10 µs", "× graphc", "max rel err", "calls/batch"]
    return format_table(header, rows)


def row_named(res: WorkloadResult, name: str) -> dict[str, Any] | None:
    return next((r for r in res.rows if r["implementation"] == name), None)


def floor_lines(res: WorkloadResult) -> list[str]:
    """graphc's time against the workload's floors."""
    g = row_named(res, IMPLS["graphc"])
    if g is None or g["median_us"] is None:
        return []
    gt = g["median_us"]
    if res.workload.key == "mlp":
        f = row_named(res, "GEMM floor (NumPy, same products)")
        if f is None or not f["median_us"]:
            return []
        return [
            f"graphc / GEMM floor: {gt / f['median_us']:.2f} × (graphc {fmt_us(gt)} µs, the 8 "
            f"matrix products alone {fmt_us(f['median_us'])} µs with NumPy)"
        ]
    if res.workload.key != "chain":
        return []
    bw = row_named(res, "bandwidth floor (read x, a, b; write 3 grads)")
    tr = row_named(res, "transcendental floor (NumPy tanh, exp, sigmoid)")
    if bw is None or tr is None or not bw["median_us"] or not tr["median_us"]:
        return []
    b, t = bw["median_us"], tr["median_us"]
    larger, big = ("transcendental", t) if t >= b else ("bandwidth", b)
    text = (
        f"floors: bandwidth {fmt_us(b)} µs, transcendental {fmt_us(t)} µs; the {larger} floor "
        f"is the larger ({max(b, t) / min(b, t):.1f} ×). graphc / {larger} floor: {gt / big:.2f} "
        f"×; graphc / bandwidth floor: {gt / b:.2f} ×"
    )
    return textwrap.wrap(text, 100)


def item(name: str, text: str) -> str:
    """`  name: text`, wrapped at 100 columns."""
    return textwrap.fill(
        text, 100, initial_indent=f"  {name}: ", subsequent_indent="    ", break_on_hyphens=False
    )


def builds_table(results: Sequence[WorkloadResult]) -> str:
    rows = []
    for res in results:
        b = res.build
        if not b:
            rows.append([res.workload.key, "failed", "-", "-", "-", "-", "-", "-"])
            continue
        st = b["stage_seconds"] if not b["first_was_cache_hit"] else {}
        first = b["first_compile_s"]
        colds = b.get("fresh_cold_s") or []
        fresh = (
            f"{statistics.median(colds):.2f} ({', '.join(f'{c:.2f}' for c in colds)})"
            if colds
            else "-"
        )
        rows.append(
            [
                res.workload.key,
                "cache hit (already built)" if b["first_was_cache_hit"] else "cold build",
                f"{first:.2f}" if first >= 1 else f"{first:.3f}",
                f"{st['cython']:.2f}" if "cython" in st else "-",
                f"{st['cc']:.2f}" if "cc" in st else "-",
                fresh,
                f"{b['cache_hit_s'] * 1e3:.1f}" + ("" if b["second_was_cache_hit"] else " (MISS)"),
                str(b["pyx_lines"]),
            ]
        )
    header = [
        "workload",
        "first gc.compile",
        "seconds",
        "Cython s",
        "cc s",
        "cold builds, fresh processes: median (each) s",
        "cache hit ms",
        "pyx lines",
    ]
    return format_table(header, rows)


def threads_text(threads: int, core: str | None, kernels: str | None) -> str:
    """The header's line on threads."""
    if threads > 0:
        what = (
            f"--threads {threads}: the children run with "
            + ", ".join(f"{k}={v}" for k, v in thread_env(threads).items())
            + ("" if threads == 1 else " (JAX keeps its default thread pool)")
        )
    else:
        set_ = {k: os.environ[k] for k in (*THREAD_VARS, "XLA_FLAGS") if os.environ.get(k)}
        what = "each library's default (OpenBLAS, PyTorch, OpenMP: the usable cores; JAX: its "
        what += "own pool)" + (
            "; set here: " + ", ".join(f"{k}={v}" for k, v in set_.items()) if set_ else ""
        )
    return (
        f"{what}. graphc's generated code and NumPy call OpenBLAS for matrix products "
        f"({kernels or 'unknown'} kernels; OPENBLAS_CORETYPE {core or 'not set'}); PyTorch and "
        "JAX bring their own kernels"
    )


def fmt_load(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def describe(
    info: dict[str, Any], plan: Plan, args: argparse.Namespace, floor: dict[str, float]
) -> list[str]:
    """The header: machine, versions, the method and the harness's own cost."""
    core = info["OPENBLAS_CORETYPE"]
    mode = "--quick, a smoke run: tiny sizes, too few repetitions to compare speeds"
    fields = {
        "machine": f"{info['cpu']}, {info['cores']} cores ({info['cores_usable']} usable), "
        f"{info['platform']}",
        "python": info["python"],
        "versions": ", ".join(f"{k} {v}" for k, v in info["packages"].items()),
        "threads": threads_text(args.threads, core, info.get("openblas_kernels")),
        "graphc build": "gc.compile defaults"
        if args.opt_level is None
        else f"gc.compile(opt_level={args.opt_level})",
        "timing": (mode if args.quick else "full run")
        + f": each implementation in a fresh process (python -m benchmarks.suite --child), "
        f"its loss and gradients checked against graphc's, then {plan.warmup_ns / 1e6:g} ms of "
        f"warm-up and {plan.batches} batches of ~{plan.batch_ns / 1e6:g} ms, interleaved with "
        "the floors measured in the same process; per-call time = batch time / calls per "
        "batch; Python's gc paused within a batch",
        "builds": f"the timed modules are loaded from {args.build_dir}",
        "load": f"1-minute load average {fmt_load(info['loadavg_1min_start'])} at the start, "
        f"{fmt_load(info['loadavg_1min_end'])} at the end (a run adds about 1; more means "
        "other processes competed for the cores)"
        + (
            f"; --background {args.background}: that many busy process loops ran throughout, "
            "on purpose"
            if args.background
            else ""
        ),
        "harness floor": f"a Python no-op called by the same loop takes "
        f"{fmt_us(floor['positional'])} µs with 6 positional args, "
        f"{fmt_us(floor['keyword'])} µs with 6 keyword args (included in every row)",
    }
    return format_fields(fields)


def report(
    info: dict[str, Any],
    results: Sequence[WorkloadResult],
    plan: Plan,
    args: argparse.Namespace,
    floor: dict[str, float],
) -> tuple[str, list[str]]:
    """The printed report, and the rows that disagree with graphc (or could not be compared)."""
    lines = [
        "graphc suite: time of one forward+backward step (value_and_grad), graphc against",
        "NumPy by hand, PyTorch eager, torch.compile and JAX jit(value_and_grad)",
        "",
        *describe(info, plan, args, floor),
    ]
    start, end = info["loadavg_1min_start"], info["loadavg_1min_end"]
    if not args.background and ((start or 0) > 1.5 or (end or 0) > 2.5):  # a run adds about 1
        lines += textwrap.wrap(
            f"WARNING: 1-minute load average {fmt_load(start)} at the start, {fmt_load(end)} at "
            "the end: other processes competed for the cores, and multi-threaded BLAS and "
            "PyTorch can run many times slower then; these numbers are unreliable.",
            100,
        )
    bad: list[str] = []
    for res in results:
        wl = res.workload
        lines += ["", f"== {wl.key} ==", *textwrap.wrap(wl.title, 100), ""]
        if res.rows:
            lines += [workload_table(res), ""]
        lines += floor_lines(res)
        if res.again is not None and res.again["median_us"] is not None:
            g = row_named(res, IMPLS["graphc"])
            first = g["median_us"] if g else None
            lines += textwrap.wrap(
                f"graphc timed again in a fresh process after the others: "
                f"{fmt_us(res.again['median_us'])} µs, {ratio(res.again['median_us'], first)} × "
                "the first (how much two processes timing the same thing differ here)",
                100,
            )
        base = row_named(res, IMPLS["baseline"])
        if base is not None and base["median_us"] is not None:
            g = row_named(res, IMPLS["graphc"])
            new = [r["median_us"] for r in (g, res.again) if r and r["median_us"] is not None]
            old = [r["median_us"] for r in (base, res.baseline_again)
                   if r and r["median_us"] is not None]  # fmt: skip
            lines += textwrap.wrap(
                f"against the baseline (--baseline {args.baseline}), each timed twice in turn: "
                f"graphc {' and '.join(map(fmt_us, new))} µs, the baseline "
                f"{' and '.join(map(fmt_us, old))} µs: "
                f"{statistics.mean(new) / statistics.mean(old):.3f} × the baseline",
                100,
            )
        notes = [item(r["implementation"], r["note"]) for r in res.rows if r.get("note")]
        if notes:
            lines += ["notes:", *notes]
        if res.skipped:
            lines += ["skipped:", *(item(k, v) for k, v in res.skipped.items())]
        if res.failed:
            lines += ["failed:", *(item(k, v) for k, v in res.failed.items())]
        tol = wl.tolerance
        for r in res.rows:
            err = r.get("max_rel_err_vs_graphc")
            if r["kind"] == "impl" and not (err is not None and err <= tol):
                bad.append(f"{wl.key} / {r['implementation']}")
        if res.again is not None:
            err = res.again.get("max_rel_err_vs_graphc")
            if not (err is not None and err <= tol):
                bad.append(f"{wl.key} / graphc (again)")
        for label in res.failed:
            if label.startswith("graphc") or label == IMPLS["numpy"]:
                bad.append(f"{wl.key} / {label} (failed)")
    lines += [
        "",
        *textwrap.wrap(
            "× graphc: median / graphc's median (how many times slower than graphc; below 1 "
            "is faster). max rel err: the largest over the loss and every gradient of "
            "max|value - graphc's| / max|graphc's|; it must be within "
            + ", ".join(f"{v:g} ({k})" for k, v in TOLERANCE.items())
            + ". Floors are not implementations: their × graphc is the floor's share of "
            "graphc's time.",
            100,
        ),
    ]
    lines += ["", "graphc compile times (gc.compile of each workload):", ""]
    lines += [builds_table(results), ""]
    lines += textwrap.wrap(
        (
            "first gc.compile: into the build directory; a cold build only if the module was "
            "not cached there. "
            if args.quick
            else "first gc.compile: a cold build into a fresh temporary directory. "
        )
        + "Cython s, cc s: the build's stages. cache hit: gc.compile again into the same "
        "directory (graphc's pure-Python stages, the cache key, importing the cached module).",
        100,
    )
    if bad:
        lines += textwrap.wrap(
            f"MISMATCH: {', '.join(bad)}: differs from graphc by more than the tolerance, or "
            "could not be compared",
            100,
        )
    return "\n".join(lines), bad


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.suite",
        description="Time of one forward+backward step on seven workloads: graphc against "
        "NumPy, PyTorch eager, torch.compile and JAX, each in a fresh process.",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, few repetitions, no torch.compile: a smoke run, not a measurement",
    )
    ap.add_argument("--json", metavar="FILE", type=Path, help="also save the results here")
    ap.add_argument(
        "--workloads",
        default=",".join(ALL_WORKLOADS),
        type=lambda s: [w for w in s.split(",") if w],
        help=f"comma-separated subset of {','.join(ALL_WORKLOADS)}",
    )
    ap.add_argument(
        "--build-dir",
        metavar="DIR",
        type=Path,
        default=Path(os.environ.get("GRAPHC_BUILD_DIR") or ROOT / "build"),
        help="graphc's build cache for the timed modules (default: $GRAPHC_BUILD_DIR or "
        "build/); the full run measures cold builds in a fresh temporary directory besides",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="limit OpenBLAS, OpenMP, PyTorch and graphc to N threads in the children, and JAX "
        "too if N is 1 (default 0: each library's default)",
    )
    ap.add_argument(
        "--opt-level",
        type=int,
        choices=(0, 1, 2, 3),
        default=None,
        metavar="N",
        help="build graphc's modules with gc.compile(opt_level=N) (default: graphc's default)",
    )
    ap.add_argument(
        "--background",
        type=int,
        default=0,
        metavar="N",
        help="time everything under load: N processes each running short-lived busy Python "
        "processes one after another, as a test suite or a build would (default 0)",
    )
    ap.add_argument(
        "--cold-builds",
        type=int,
        default=3,
        metavar="K",
        help="also time K cold builds of each workload, each in a fresh process, and report "
        "their median (default 3; not in --quick runs)",
    )
    ap.add_argument(
        "--baseline",
        metavar="DIR",
        type=Path,
        default=None,
        help="a checkout of another commit of graphc, whose modules are timed beside this "
        "one's (git worktree add DIR REV)",
    )
    ap.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.baseline is not None and not (args.baseline / "graphc" / "__init__.py").is_file():
        ap.error(f"--baseline {args.baseline}: not a checkout of graphc (no graphc/__init__.py)")
    unknown = set(args.workloads) - set(ALL_WORKLOADS)
    if unknown:
        ap.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    if not args.workloads:
        ap.error("no workloads")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite, print the report, optionally save JSON; 1 if any row disagrees."""
    args = parse_args(argv)
    if args.child is not None:
        try:
            spec = json.loads(args.child)
            print(json.dumps(cold_child(spec) if "cold" in spec else child(spec)))
        except Exception:
            traceback.print_exc()
            return 1
        return 0
    plan: Plan = QUICK if args.quick else FULL
    info = machine_info(PACKAGES)
    wls = [w for k, w in workloads(args.quick).items() if k in args.workloads]
    results = []
    env = thread_env(args.threads)
    with (
        tempfile.TemporaryDirectory(prefix="graphc-suite-") as tmp,
        background_load(args.background),
    ):
        for wl in wls:
            print(f"[{wl.key}] building graphc's module ...", file=sys.stderr, flush=True)
            fresh = None if args.quick else Path(tmp) / f"cold-{wl.key}"
            try:
                facts = build(wl, args.build_dir, fresh, args.opt_level, args.cold_builds)
            except Exception as exc:  # graphc could not build it: report, go on with the rest
                traceback.print_exc()
                results.append(WorkloadResult(wl, {}, failed={"graphc build": why(exc)}))
                continue
            if args.baseline is not None:
                print(f"[{wl.key}] building the baseline's module ...", file=sys.stderr)
                spec = {"cold": wl.key, "quick": args.quick, "opt_level": args.opt_level,
                        "dir": str(Path(tmp) / f"baseline-{wl.key}")}  # fmt: skip
                got = run_child("benchmarks.suite", spec, baseline_env(args.baseline))
                if "entry" in got:
                    facts["baseline_entry"] = got["entry"]
                else:
                    facts["baseline_error"] = got.get("error", "no module")
            results.append(run_workload(wl, facts, args.quick, Path(tmp), env, args.baseline))
    floor = harness_floor_us(plan)
    info["loadavg_1min_end"] = load_average()
    text, bad = report(info, results, plan, args, floor)
    print(text)
    if args.json is not None:
        doc = {
            "benchmark": "suite",
            "mode": "quick" if args.quick else "full",
            "machine": info,
            "plan": {
                "warmup_ns": plan.warmup_ns,
                "batch_ns": plan.batch_ns,
                "batches": plan.batches,
            },
            "harness_floor_us": floor,
            "tolerance": TOLERANCE,
            "threads": args.threads,
            "background": args.background,
            "opt_level": args.opt_level,
            "thread_env": env,
            "workloads": {
                r.workload.key: {
                    "title": r.workload.title,
                    "dtype": r.workload.dtype,
                    "n": r.workload.n,
                    "graphc_build": r.build,
                    "results": r.rows,
                    "graphc_again": r.again,
                    "floor_facts": r.facts,
                    "skipped": r.skipped,
                    "failed": r.failed,
                    "loadavg_1min_children": r.loads,
                }
                for r in results
            },
            "mismatch": bad,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"saved {args.json}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
