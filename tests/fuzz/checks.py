"""The checks the fuzz tests and their regression tests share: finite differences, closeness
of arrays (NaN-aware), and how close a model's inputs put it to a kink.

A kink is a point where an op is not smooth: relu, abs and sign at 0; maximum, minimum and
the comparisons where their operands tie; max and max pooling where the largest two elements
of a group tie. Near one, finite differences straddle it and a float32 run may take the other
branch, so those checks skip models whose values come within a relative `margin` of one. Exact
ties do not count: with inputs drawn from a continuous distribution they come from the model's
structure (relu(x - x), max over a broadcast value), and hold under any perturbation.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import graphc as gc
from graphc.ir.dag import operands
from graphc.ir.graph import Value
from tests.models import central_diff

KINK_UNARY = {"relu", "abs", "sign", "elu", "leaky_relu", "copysign"}  # at 0 (copysign: in x)
KINK_POINTS = {"hardsigmoid": (-3.0, 3.0), "hardswish": (-3.0, 3.0)}  # hardtanh: its params
KINK_BINARY = {"maximum", "minimum", "less", "less_equal", "greater", "greater_equal", "equal",
               "not_equal"}  # fmt: skip
POOLS = {"max_pool2d": 0, "max_pool2d_grad": 1, "max_pool2d_gather": 1}  # op -> operand x


def _gaps(x: np.ndarray, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(top - x, |top|) over groups along `axis`, top the group's maximum."""
    top = np.max(x, axis=axis, keepdims=True) if x.size else x
    return top - x, np.abs(top) + np.zeros_like(x)


def _pool_gaps(x: np.ndarray, params: Mapping) -> tuple[np.ndarray, np.ndarray]:
    kernel, padding = params["kernel"], params["padding"]
    stride = params["stride"] or kernel
    (ph, pw) = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    win = sliding_window_view(xp, kernel, axis=(2, 3))[:, :, :: stride[0], :: stride[1]]
    return _gaps(win, (-2, -1))


def near_kinks(g: gc.Graph, feed: Mapping[str, np.ndarray], margin: float) -> list[str]:
    """The nodes of `g` whose operands, at `feed`, come within a relative `margin` of a kink
    (but do not sit exactly on it); one line each."""
    G = g.nx
    kinked = [n for n, a in G.nodes(data=True)
              if a["op"] in KINK_UNARY | KINK_BINARY | set(KINK_POINTS) | set(POOLS)
              | {"max", "min", "hardtanh", "clip"}]  # fmt: skip
    if not kinked:
        return []
    probe = g.copy()
    wanted = sorted({u for n in kinked for u in operands(G, n)})
    for u in wanted:
        probe.output(f"_operand{u}", Value(probe, u))
    vals = gc.evaluate(probe, feed, outputs=[f"_operand{u}" for u in wanted])
    found = []
    with np.errstate(all="ignore"):
        for n in kinked:
            a = G.nodes[n]
            args = [np.asarray(vals[f"_operand{u}"], dtype=np.float64) for u in operands(G, n)]
            if a["op"] in KINK_UNARY:
                dist, scale = np.abs(args[0]), np.abs(args[0])
            elif a["op"] in KINK_BINARY:
                x, y = np.broadcast_arrays(*args)
                dist, scale = np.abs(x - y), np.maximum(np.abs(x), np.abs(y))
            elif a["op"] in ("max", "min"):
                x = args[0] if a["op"] == "max" else -args[0]
                dist, scale = _gaps(x, a["params"]["axis"])
            elif a["op"] in ("hardtanh", "clip", *KINK_POINTS):
                x = args[0]
                if a["op"] == "hardtanh":
                    points = [a["params"]["min_val"], a["params"]["max_val"]]
                elif a["op"] == "clip":
                    points = [np.broadcast_to(b, x.shape) for b in args[1:]]
                else:
                    points = list(KINK_POINTS[a["op"]])
                x = np.broadcast_to(x, np.broadcast_shapes(*(np.shape(q) for q in [x, *points])))
                dist = np.min([np.abs(x - q) for q in points], axis=0)
                scale = np.abs(x)
            else:
                dist, scale = _pool_gaps(args[POOLS[a["op"]]], a["params"])
            close = (dist > 0) & (dist < margin * np.maximum(scale, 1.0))
            if close.any():
                found.append(f"v{n} ({a['op']}): {float(dist[close].min()):.3g} from a kink")
    return found


def finite_difference_grads(
    g: gc.Graph, feed: Mapping[str, np.ndarray], names: list[str], of: str = "loss",
    eps: float = 1e-6,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Central differences of output `of` (the interpreter's forward pass) for each input."""
    out = {}
    for name in names:

        def f(arr: np.ndarray, name: str = name) -> float:
            return float(gc.evaluate(g, {**feed, name: arr}, outputs=[of])[of])

        out[name] = central_diff(f, feed[name], eps)
    return out


def mismatches(what: str, got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> list[str]:
    """Why `got` is not close to `want` (empty if it is): shape, dtype kind, or the worst
    elements. An element passes when |got - want| <= rtol |want| + atol; NaN must meet NaN,
    and an infinity the same infinity."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return [f"{what}: got shape {got.shape}, want {want.shape}"]
    if (want.dtype == bool) != (got.dtype == bool):
        return [f"{what}: got dtype {got.dtype}, want {want.dtype}"]
    if want.dtype == bool:
        bad = got != want
    else:
        g, w = got.astype(np.float64), want.astype(np.float64)
        with np.errstate(invalid="ignore"):
            close = np.abs(g - w) <= rtol * np.abs(w) + atol
        special = (np.isnan(g) & np.isnan(w)) | ((g == w) & np.isinf(w))
        bad = ~(close | special)
    if not bad.any():
        return []
    idx = [tuple(int(i) for i in ix) for ix in np.argwhere(bad)[:3]]
    shown = ", ".join(f"{ix}: got {got[ix]!r}, want {want[ix]!r}" for ix in idx)
    return [f"{what}: {int(bad.sum())} of {bad.size} elements differ; {shown}"]


def model_of(name: str) -> int | None:
    """The model of a batch (strategies.batch_graph) a name belongs to: "m3_out0" -> 3,
    "loss" -> None."""
    m = re.match(r"m(\d+)_", name)
    return int(m.group(1)) if m else None


def model_scales(*arrays: Mapping[str, np.ndarray]) -> dict[int | None, float]:
    """The largest finite magnitude (at least 1) among each model's arrays, and over all of
    them under None. Rounding errors grow with the terms that are summed, which may cancel:
    an array is judged against its model's scale, not its own."""
    scales: dict[int | None, float] = {None: 1.0}
    for named in arrays:
        for name, v in named.items():
            v = np.asarray(v, dtype=np.float64) if np.asarray(v).dtype != bool else np.zeros(1)
            finite = np.abs(v[np.isfinite(v)])
            top = float(finite.max()) if finite.size else 1.0
            i = model_of(name)
            scales[i] = max(scales.get(i, 1.0), top)
    scales[None] = max(scales.values())
    return scales


def compare_all(
    kind: str, got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray], rtol: float,
    scales: Mapping[int | None, float], skip: frozenset[str] | set[str] = frozenset(),
) -> list[str]:  # fmt: skip
    """The problems of `got` against `want`, name by name: |got - want| <= rtol (|want| +
    the scale of the name's model)."""
    problems = []
    if set(got) != set(want):
        problems.append(f"{kind} names: got {sorted(got)}, want {sorted(want)}")
    for name in sorted((set(got) & set(want)) - set(skip)):
        scale = scales.get(model_of(name), scales[None])
        problems += mismatches(f"{kind} {name!r}", got[name], want[name], rtol, rtol * scale)
    return problems


def aliases_set_too_early(source: str) -> list[str]:
    """Lines `b.vA = b.vB` (a view's pointer) of the generated source that come before b.vB
    itself is set."""
    first: dict[str, int] = {}
    lines = [line.strip() for line in source.splitlines()]
    for k, line in enumerate(lines):
        m = re.match(r"b\.(\w+) = ", line)
        if m:
            first.setdefault(m.group(1), k)
    early = []
    for k, line in enumerate(lines):
        m = re.fullmatch(r"b\.\w+ = b\.(\w+)", line)
        if m and first.get(m.group(1), -1) > k:
            early.append(line)
    return early


class Crashed(AssertionError):
    """A call into a compiled module killed its process."""


def isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in a forked child process, its result sent back: a compiled module that
    crashes (a wild pointer) fails the test with `Crashed` instead of ending the run."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child() -> None:
        faulthandler.disable()  # a crash is reported by the parent, without a dump here
        try:
            result: tuple[str, Any] = ("ok", fn(*args))
        except BaseException as e:  # noqa: BLE001  (reported by the parent)
            result = ("error", f"{type(e).__name__}: {e}")
        send.send(result)
        send.close()

    proc = ctx.Process(target=child)
    proc.start()
    send.close()
    try:
        status, value = receive.recv()
    except EOFError:
        status, value = "crashed", None
    proc.join()
    if status == "crashed":
        raise Crashed(f"the compiled module crashed its process (exit code {proc.exitcode})")
    if status == "error":
        raise AssertionError(f"the call raised {value}")
    return value
