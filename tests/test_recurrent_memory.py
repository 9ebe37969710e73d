"""The memory plan of gc.nn's layers as loops: a batch-first sequence is read, and every step's
h written, where it is (the loop's steps on axis 1), so a training step holds the values the
loop stacks for the backward pass, the cotangent of the outputs, and little else: no
time-major copy of the input, of the outputs or of their gradient. Plan numbers (bytes at the
benchmark's sizes), which do not depend on the machine."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.compiler import run_stages
from graphc.ops.scan import results
from graphc.passes.plan_report import live_bytes

N, T, D, H = 64, 200, 8, 16
SIZES = {"N": N, "T": T}
SEQUENCE = N * T * H * 4  # bytes of every step's h, float32
SMALL = 16 * N * max(D, 4 * H) * 4  # room for a few per-step values (carries, gates of a step)


def _stages(layer: str):
    g = gc.Graph("m")
    x = g.input("x", shape=("N", "T", D))
    hs = getattr(gc.nn, layer)(x, H, "r", return_sequences=True)
    g.output("loss", gc.mean(hs * hs))
    return run_stages(g, dtype="float32", functions=("forward", "value_and_grad"))


def _stacked(prog) -> int:
    """Bytes of the forward loops' results that the backward pass reads."""
    G = prog.graph.nx
    backward = {n for s in prog.steps if s.section == "backward" for n in s.nodes}
    total = 0
    for s in prog.steps:
        if s.section == "forward" and G._node[s.node]["op"] == "scan":
            types = results(G, s.node)
            for o in s.nodes[1:]:
                if any(v in backward for v in G.successors(o)):
                    shape, _ = types[G._node[o]["params"]["index"]]
                    total += int(np.prod([SIZES.get(d, d) for d in shape])) * 4
    return total


@pytest.mark.parametrize("layer", ["rnn", "lstm", "gru"])
def test_a_training_step_holds_the_stacked_values_and_one_cotangent(layer: str) -> None:
    st = _stages(layer)
    prog, plan = st.programs["value_and_grad"]
    stacked = _stacked(prog)
    assert stacked >= 2 * SEQUENCE  # the carry h entering each step, and more
    peak = max(live_bytes(prog, plan, SIZES))
    assert peak <= stacked + SEQUENCE + SMALL, (peak / SEQUENCE, stacked / SEQUENCE)
    assert not any(prog.graph.nx._node[n]["op"] == "transpose" for s in prog.steps
                   for n in s.nodes)  # fmt: skip


@pytest.mark.parametrize("layer", ["rnn", "lstm", "gru"])
def test_the_forward_pass_holds_only_the_outputs(layer: str) -> None:
    prog, plan = _stages(layer).programs["forward"]
    assert max(live_bytes(prog, plan, SIZES)) <= SEQUENCE + SMALL
