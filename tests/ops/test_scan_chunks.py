"""A loop reading chunks of steps (the scan param `xs_chunks`, made by checkpointing for the
loop over segments: passes/scan_remat.py): trip t reads steps t c .. t c + c - 1 of its xs on
their axis, the axis kept, from an array with at least T c steps. The interpreter, the
compiled module and the Python backend against a NumPy loop; the shape errors."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.pyrender import PyModule
from graphc.compiler import run_stages
from graphc.errors import GraphError, ShapeError
from graphc.ir.body import Body, Trace
from graphc.ir.graph import TRACES

N, D = 3, 2


def chunked(axis: int, c: int, trips: int, steps: int, reverse: bool = False) -> gc.Graph:
    """A loop over `trips` chunks of `c` steps of x ([steps, N, D] or [N, steps, D]): carry
    h [N] = h * 0.5 + the chunk's sum of x * w over its steps and D; y = tanh(chunk) * h."""
    g = gc.Graph("chunks")
    shape = (steps, N, D) if axis == 0 else (N, steps, D)
    x = g.input("x", shape=shape)
    h0 = g.input("h0", shape=(N,))
    w = g.param("w", shape=(D,))
    chunk = (c, N, D) if axis == 0 else (N, c, D)
    trace = Trace(g)
    h, xc = trace.slot("c0", (N,), "float64"), trace.slot("x0", chunk, "float64")
    TRACES.append(trace)
    try:
        s = gc.sum(xc * w, axis=(axis, 2) if axis else (0, 2))
        new = h * 0.5 + s
        y = gc.tanh(xc) * (gc.reshape(new, (1, N, 1)) if axis == 0 else gc.reshape(new, (N, 1, 1)))
    finally:
        TRACES.pop()
    trace.output("c0", new)
    trace.output("y0", y)
    node = g.add("scan", [h0, x, *trace.captured], {
        "body": Body(trace.finish()), "n_carry": 1, "n_xs": 1, "reverse": reverse,
        "length": (trips,), "xs_axes": (axis,), "ys_axes": (axis,), "xs_chunks": (c,),
    })  # fmt: skip
    g.output("h", g.add("scan_out", [node], {"index": 0}))
    g.output("ys", g.add("scan_out", [node], {"index": 1}))
    return g


def reference(axis: int, c: int, trips: int, x: np.ndarray, h: np.ndarray, w: np.ndarray,
              reverse: bool) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    xt = np.moveaxis(x, axis, 0)
    ys = [None] * trips
    for t in range(trips - 1, -1, -1) if reverse else range(trips):
        xc = xt[t * c : t * c + c]  # [c, N, D]
        h = h * 0.5 + (xc * w).sum(axis=(0, 2))
        ys[t] = np.moveaxis(np.tanh(xc) * h[None, :, None], 0, axis)
    return h, np.stack(ys, axis=axis) if trips else np.zeros(())


def _inputs(axis: int, steps: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    shape = (steps, N, D) if axis == 0 else (N, steps, D)
    return {"x": rng.normal(size=shape), "h0": rng.normal(size=N), "w": rng.normal(size=D)}


CASES = [(0, 3, 2, 6), (0, 3, 2, 8), (1, 3, 2, 6), (1, 4, 3, 14), (1, 1, 5, 5)]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(("axis", "c", "trips", "steps"), CASES)
def test_interpreter_reads_chunks(axis: int, c: int, trips: int, steps: int,
                                  reverse: bool) -> None:  # fmt: skip
    """Chunks on axis 0 and 1, from an array of exactly trips * c steps or longer (the last
    steps unread), either direction; the stacked y is [N, trips, c, D] on axis 1."""
    g, inp = chunked(axis, c, trips, steps, reverse), _inputs(axis, steps)
    got = gc.evaluate(g, inp)
    h, ys = reference(axis, c, trips, inp["x"], inp["h0"], inp["w"], reverse)
    np.testing.assert_allclose(got["h"], h, rtol=1e-13)
    np.testing.assert_allclose(got["ys"], ys, rtol=1e-13)
    assert got["ys"].shape[axis : axis + 2] == (trips, c)


@pytest.mark.compiler
@pytest.mark.parametrize(("axis", "c", "trips", "steps"), [(0, 3, 2, 8), (1, 4, 3, 14)])
def test_compiled_and_python_backend_read_chunks(tmp_path, axis: int, c: int, trips: int,
                                                 steps: int) -> None:  # fmt: skip
    """The module gathers each chunk from a longer batch-first array (a block stride of the
    array's steps, not the trips'), as the interpreter; the Python backend runs the rows."""
    g, inp = chunked(axis, c, trips, steps), _inputs(axis, steps)
    want = gc.evaluate(g, inp)
    m = gc.compile(g, out_dir=tmp_path, functions=["forward"])
    got = m.forward(**inp)
    py = PyModule(run_stages(g, functions=["forward"]).module).forward(**inp)
    for key in want:  # tanh and the sums: the C library's and the kernels' order, last bits
        np.testing.assert_allclose(got[key], want[key], rtol=1e-13, err_msg=key)
        np.testing.assert_allclose(py[key], want[key], rtol=1e-13, err_msg=key)


def test_too_few_steps_and_bad_chunks_are_refused() -> None:
    with pytest.raises(ShapeError, match="reads 4 steps at each of its 3 trips"):
        chunked(1, 4, 3, 11)
    g = chunked(1, 2, 3, 6)
    g.output("loss", gc.sum(g["h"]))
    with pytest.raises(GraphError, match="no derivative"):
        gc.grad(g, "loss", ["w"])
