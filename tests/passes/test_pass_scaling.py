"""The compile passes do work linear in the size of the graph (n log n at most), checked by
counting, never by timing: the measure is the number of Python lines that the passes and the
IR (graphc/passes, graphc/ir) execute during `run_stages`, traced with sys.settrace. Between a
graph and one four times its size, linear work grows about 4 times and quadratic work (one
scan of every slot per value, one walk of the graph per output) about 16 times."""

import os
import sys

import pytest

import graphc as gc
from benchmarks.scaling import chain_graph
from graphc.compiler import run_stages

TRACED = tuple(os.path.join(os.path.dirname(gc.__file__), d) + os.sep for d in ("passes", "ir"))


def lines_run(g: gc.Graph) -> int:
    """Trace events (mostly lines) in graphc/passes and graphc/ir while `run_stages(g)` runs."""
    count = 0

    def line(frame, event, arg):
        nonlocal count
        count += 1
        return line

    def call(frame, event, arg):
        return line if frame.f_code.co_filename.startswith(TRACED) else None

    previous = sys.gettrace()
    sys.settrace(call)
    try:
        run_stages(g)
    finally:
        sys.settrace(previous)
    return count


def layers(k: int) -> gc.Graph:
    """k elementwise layers with their own parameters: one long fused loop each way, and as
    many gradient outputs as layers."""
    g = gc.Graph("layers")
    h = g.input("x", shape=("N", 8))
    for i in range(k):
        h = gc.tanh(h * g.param(f"w{i}", shape=(8,)) + g.param(f"b{i}", shape=(8,)))
    g.output("loss", gc.sum(h))
    return g


@pytest.mark.parametrize(
    "build, n",
    [
        (lambda n: chain_graph(n, "chain"), 64),  # the scaling benchmark's tanh/matmul chain
        (layers, 48),
    ],
    ids=["chain", "layers"],
)
def test_pass_work_grows_linearly(build, n):
    small, large = lines_run(build(n)), lines_run(build(4 * n))
    assert large / small <= 5, f"4x the graph, {large / small:.1f}x the work ({small} -> {large})"
