"""The pooling ops of their own (ops/pool_avg.py, ops/pool_adaptive.py, ops/pool_nd.py):
forward and value_and_grad of avg_pool2d and avg_pool3d with non-default options,
adaptive_avg_pool2d to sizes that do not divide, and max_unpool2d, against NumPy by hand and
PyTorch eager (when installed), all timed interleaved in this one process, float32, each on
one thread (graphc's pool and PyTorch's in one process on a small machine slow each other
down). forward is y and sum(y * r), value_and_grad the latter and its gradient in x; NumPy
and PyTorch compute the same, checked against graphc's first.

    python -m benchmarks.pool            # full run
    python -m benchmarks.pool --quick    # smoke run: tiny sizes, no claims
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import graphc as gc
from benchmarks._timing import FULL, QUICK, Case, fmt_us, format_table, load_average, measure

DTYPE = "float32"


# ---- the workloads ------------------------------------------------------------------------------
def workloads(quick: bool) -> dict[str, tuple[tuple, dict, str]]:
    """name -> (x shape, keywords, the function's name: graphc's and PyTorch's alike)."""
    n = 2 if quick else 8
    s2, s3, c = (12, 6, 2) if quick else (64, 24, 16)
    return {
        "avg_pool2d k3 s2 p1 ceil no-pad": (
            (n, c, s2, s2), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
                             "count_include_pad": False}, "avg_pool2d"),
        "avg_pool3d k3 s2 p1 ceil": (
            (max(n // 2, 1), c // 2, s3, s3, s3), {"kernel_size": 3, "stride": 2, "padding": 1,
                                                   "ceil_mode": True}, "avg_pool3d"),
        "adaptive_avg_pool2d to 7x7": ((n, 2 * c, s2 // 2 - 2, s2 // 2 - 2),
                                       {"output_size": (7, 7)}, "adaptive_avg_pool2d"),
        "max_unpool2d k2": ((n, c, s2 // 2, s2 // 2), {"kernel_size": 2}, "max_unpool2d"),
    }  # fmt: skip


# ---- NumPy by hand ----------------------------------------------------------------------------
def _geometry(shape: tuple, kw: dict) -> list[tuple[int, int, int, int, int]]:
    """(n, k, s, p, out) per spatial axis, PyTorch's sizes."""
    k = len(shape) - 2
    t = lambda v: (v,) * k if isinstance(v, int) else tuple(v)  # noqa: E731
    ks, ss, ps = t(kw["kernel_size"]), t(kw.get("stride") or kw["kernel_size"]), t(kw["padding"])
    out = []
    for n, kk, s, p in zip(shape[2:], ks, ss, ps, strict=True):
        span = n + 2 * p - kk
        o = (-(-span // s) if kw.get("ceil_mode") else span // s) + 1
        o -= 1 if kw.get("ceil_mode") and (o - 1) * s >= n + p else 0
        out.append((n, kk, s, p, o))
    return out


def _factors(shape: tuple, kw: dict) -> np.ndarray:
    """Each window's 1 / count, broadcast over the output's spatial axes."""
    f = np.ones(())
    for n, kk, s, p, o in _geometry(shape, kw):
        start = np.arange(o) * s - p
        end = np.minimum(start + kk, n + p)
        if not kw.get("count_include_pad", True):
            end, start = np.minimum(end, n), np.maximum(start, 0)
        f = np.multiply.outer(f, 1.0 / (end - start))
    return f.astype(DTYPE)


def _padded(x: np.ndarray, geo: list) -> tuple[np.ndarray, list]:
    """x in zeros: the padding, and past it where a ceil_mode window reaches."""
    widths = [(p, max(0, (o - 1) * s + kk - n - p)) for n, kk, s, p, o in geo]
    return np.pad(x, [(0, 0), (0, 0), *widths]), widths


def numpy_avg_pool(x: np.ndarray, r: np.ndarray, kw: dict, grad: bool):
    geo = _geometry(x.shape, kw)
    k = len(geo)
    xp, widths = _padded(x, geo)
    win = sliding_window_view(xp, [g[1] for g in geo], axis=tuple(range(2, 2 + k)))
    win = win[(slice(None), slice(None), *(slice(None, None, g[2]) for g in geo))]
    win = win[(slice(None), slice(None), *(slice(g[4]) for g in geo))]
    f = _factors(x.shape, kw)
    y = win.sum(axis=tuple(range(2 + k, 2 + 2 * k))) * f
    if not grad:
        return y, np.sum(y * r)
    share = r * f
    dxp = np.zeros_like(xp)
    for tap in itertools.product(*(range(g[1]) for g in geo)):
        at = tuple(slice(t, t + (g[4] - 1) * g[2] + 1, g[2]) for t, g in zip(tap, geo, strict=True))
        dxp[(slice(None), slice(None), *at)] += share
    inner = tuple(slice(p, p + n) for (p, _), (n, *_) in zip(widths, geo, strict=True))
    return np.sum(y * r), dxp[(slice(None), slice(None), *inner)]


def _boxes(shape: tuple, sizes: tuple):
    for pos in np.ndindex(*sizes):
        yield pos, tuple(slice(i * n // o, -(-(i + 1) * n // o))
                         for i, n, o in zip(pos, shape[2:], sizes, strict=True))  # fmt: skip


def numpy_adaptive(x: np.ndarray, r: np.ndarray, kw: dict, grad: bool):
    sizes = kw["output_size"]
    y = np.empty((*x.shape[:2], *sizes), x.dtype)
    for pos, box in _boxes(x.shape, sizes):
        y[(..., *pos)] = x[(..., *box)].mean(axis=(2, 3))
    if not grad:
        return y, np.sum(y * r)
    dx = np.zeros_like(x)
    for pos, box in _boxes(x.shape, sizes):
        count = math.prod(b.stop - b.start for b in box)
        dx[(..., *box)] += (r[(..., *pos)] / count)[..., None, None]
    return np.sum(y * r), dx


def numpy_unpool(v: np.ndarray, idx: np.ndarray, r: np.ndarray, grad: bool):
    n, c, h, w = v.shape
    y = np.zeros((n, c, 4 * h * w), v.dtype)
    np.put_along_axis(y, idx.reshape(n, c, -1), v.reshape(n, c, -1), axis=2)
    y = y.reshape(n, c, 2 * h, 2 * w)
    if not grad:
        return y, np.sum(y * r)
    dv = np.take_along_axis(r.reshape(n, c, -1), idx.reshape(n, c, -1), axis=2)
    return np.sum(y * r), dv.reshape(v.shape)


# ---- one workload -------------------------------------------------------------------------------
def cases_for(shape: tuple, kw: dict, fn: str, tmp: Path, rng) -> list[Case]:
    g = gc.Graph("pool_" + fn)
    x = g.param("x", shape=shape)
    arrays = {"x": rng.standard_normal(shape).astype(DTYPE)}
    if fn == "max_unpool2d":
        big = rng.standard_normal((*shape[:2], 2 * shape[2], 2 * shape[3])).astype(DTYPE)
        idx = gc.evaluate(_argmax_graph(big.shape), {"z": big.astype(np.float64)})["i"]
        i = g.input("i", shape=shape, dtype="int64")
        y = gc.max_unpool2d(x, i, **kw)
        arrays["i"] = idx
    else:
        y = getattr(gc, fn)(x, **kw)
    r = g.input("r", shape=y.shape)
    g.output("y", y)
    g.output("loss", gc.sum(y * r))
    arrays["r"] = rng.standard_normal(y.shape).astype(DTYPE)
    m = gc.compile(g, dtype=DTYPE, out_dir=tmp)
    m.module.set_num_threads(1)
    if fn == "max_unpool2d":
        by_hand = lambda grad: numpy_unpool(arrays["x"], arrays["i"], arrays["r"], grad)  # noqa: E731
    elif fn.startswith("adaptive"):
        by_hand = lambda grad: numpy_adaptive(arrays["x"], arrays["r"], kw, grad)  # noqa: E731
    else:
        by_hand = lambda grad: numpy_avg_pool(arrays["x"], arrays["r"], kw, grad)  # noqa: E731
    outs, grads = m.value_and_grad(**arrays)
    np.testing.assert_allclose(by_hand(False)[0], m.forward(**arrays)["y"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(by_hand(True)[1], grads["x"], rtol=1e-4, atol=1e-5)
    cases = [Case("graphc forward", m.forward, (), arrays),
             Case("graphc value_and_grad", m.value_and_grad, (), arrays),
             Case("NumPy forward", by_hand, (False,)),
             Case("NumPy value_and_grad", by_hand, (True,))]  # fmt: skip
    cases += torch_cases(fn, kw, arrays, grads["x"])
    return cases


def _argmax_graph(shape: tuple) -> gc.Graph:
    g = gc.Graph("argmax")
    g.output("i", gc.max_pool2d(g.input("z", shape=shape), 2, return_indices=True)[1])
    return g


def torch_cases(fn: str, kw: dict, arrays: dict, dx: np.ndarray) -> list[Case]:
    try:
        import torch
    except ImportError:
        return []
    torch.set_num_threads(1)
    f = getattr(torch.nn.functional, fn)
    x = torch.tensor(arrays["x"], requires_grad=True)
    r = torch.tensor(arrays["r"])
    args = (x, torch.tensor(arrays["i"])) if "i" in arrays else (x,)

    def forward() -> object:
        with torch.no_grad():
            y = f(*args, **kw)
            return y, (y * r).sum()

    def value_and_grad() -> object:
        x.grad = None
        loss = (f(*args, **kw) * r).sum()
        loss.backward()
        return loss, x.grad

    value_and_grad()
    np.testing.assert_allclose(x.grad.numpy(), dx, rtol=1e-4, atol=1e-5)
    return [Case("PyTorch forward", forward), Case("PyTorch value_and_grad", value_and_grad)]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.pool", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else FULL
    rng = np.random.default_rng(0)
    rows = []
    start = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        for name, (shape, kw, fn) in workloads(args.quick).items():
            t = measure(cases_for(shape, kw, fn, Path(tmp), rng), plan)
            for what in ("forward", "value_and_grad"):
                ours = t[f"graphc {what}"].median_us
                row = [f"{name}, {what}", "x".join(map(str, shape)), fmt_us(ours)]
                for peer in ("NumPy", "PyTorch"):
                    theirs = t.get(f"{peer} {what}")
                    row += ([fmt_us(theirs.median_us), f"{theirs.median_us / ours:.2f}"]
                            if theirs else ["-", "-"])  # fmt: skip
                rows.append(row)
    end = load_average()
    loads = "unknown" if start is None else f"{start:.2f} at the start, {end:.2f} at the end"
    print(f"graphc pooling, {DTYPE}, medians of interleaved batches; 1-minute load {loads}")
    header = ["workload", "x", "graphc µs", "NumPy µs", "NumPy / graphc", "PyTorch µs",
              "PyTorch / graphc"]  # fmt: skip
    print(format_table(header, rows))
    print("ratios above 1: graphc is faster.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
