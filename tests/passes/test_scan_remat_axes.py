"""Checkpointing loops with their steps on an inner axis (passes/scan_remat.py): the segments
are cut where the steps are (xs read and ys stacked on axis 1, the checkpoints on axis 0), with
no time-major copy of any array; values and gradients are bit for bit those without a budget,
and those of the same loop over time-major copies (an independent reference), whichever way
the loop runs; the budgeted plan of gc.nn.lstm (and of the same LSTM run last to first) holds
no more than its checkpoints, one segment and the sequences the loss reads."""

from __future__ import annotations

import math

import numpy as np
import pytest

import graphc as gc
from graphc.compiler import _differentiate, run_stages
from graphc.ir.dag import describe, operands
from graphc.ops.scan import results, xs_axis
from graphc.passes.memory import value_bytes
from graphc.passes.plan_report import live_bytes
from graphc.passes.scan_remat import checkpoint_loops
from tests.ops.test_scan import WRT, H, N, _lstm_cell, lstm_inputs
from tests.passes.budget_helpers import plain_and_budgeted, same_steps


def model(batch_first: bool, reverse: bool, steps: int) -> gc.Graph:
    """An LSTM-like loop reading two sequences [N, T, .] (one of them also a captured value of
    the loss) and stacking three: on axis 1 when `batch_first`, else over time-major copies."""
    g = gc.Graph("two")
    xs = g.input("xs", shape=("N", steps, 2))
    us = g.input("us", shape=("N", steps, 3))
    h0 = g.input("h0", shape=("N", H))
    c0 = g.param("c0", shape=("N", H))
    W = g.param("W", shape=(2, 4 * H))
    U = g.param("U", shape=(H, 4 * H))
    b = g.param("b", shape=(4 * H,))
    V = g.param("V", shape=(3, H))
    cell = _lstm_cell(W, U, b)

    def step(c: dict, x: tuple) -> tuple:
        new, (h, z) = cell(c, x[0])
        h = h + gc.tanh(x[1] @ V)
        return {"h": h, "c": new["c"]}, (h, z, new["c"] * x[1][:, :1])

    init = {"h": h0, "c": c0}
    if batch_first:
        s, (hs, zs, ws) = gc.scan(step, init, (xs, us), reverse=reverse, axis=1)
    else:
        t = (gc.transpose(xs, (1, 0, 2)), gc.transpose(us, (1, 0, 2)))
        s, (hs, zs, ws) = gc.scan(step, init, t, reverse=reverse)
        hs, zs, ws = (gc.transpose(hs, (1, 0, 2)), gc.transpose(zs, (1, 0)),
                      gc.transpose(ws, (1, 0, 2)))  # fmt: skip
    g.output("hs", hs)
    g.output("loss", gc.sum(hs * hs) + gc.sum(s["c"]) * 0.5 + gc.sum(zs * zs) + gc.sum(ws)
             + gc.sum(us * us))  # fmt: skip
    return g


def inputs(steps: int) -> dict[str, np.ndarray]:
    inp = lstm_inputs(steps)
    rng = np.random.default_rng(11)
    return {**inp, "xs": np.ascontiguousarray(inp["xs"].transpose(1, 0, 2)),
            "us": rng.normal(size=(N, steps, 3)), "V": rng.normal(size=(3, H)) * 0.3}  # fmt: skip


def _joint(g: gc.Graph) -> tuple[gc.Graph, int]:
    g = gc.simplify(g)
    joint, _ = _differentiate(g, "loss", [*WRT, "V", "xs", "us"])
    return joint, g._next_id


def _ops(h: gc.Graph) -> list[str]:
    return [a["op"] for a in h.nx._node.values()]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("steps", [0, 1, 4, 5, 9, 10, 16, 17])
def test_inner_axis_segments_bit_for_bit(steps: int, reverse: bool) -> None:
    """T = 0 and 1 (too few steps: left whole), k dividing T (4, 9, 16) or not (5, 10, 17):
    the split loops read and stack on axis 1 as the model's, no transpose is added, and
    every output equals the unsplit model's and the time-major model's bit for bit. A loop
    running last to first is split too: it keeps the carries entering steps k - 1, 2k - 1,
    ... (T // k of them), and its backward loop runs the segments first to last."""
    joint, backward_from = _joint(model(True, reverse, steps))
    h, loops = checkpoint_loops(joint, backward_from)
    assert loops == (0 if steps < 4 else 1)
    assert _ops(h).count("transpose") == _ops(joint).count("transpose") == 0
    G = h.nx
    if loops:
        k = math.isqrt(steps - 1) + 1
        scans = [n for n in G if G._node[n]["op"] == "scan"]
        (fwd,) = [n for n in scans if G._node[n]["params"]["strided"]]
        p = G._node[fwd]["params"]
        assert p["every"] == k and p["xs_axes"] == (1, 1) and p["reverse"] == reverse
        kept = steps // k if reverse else -(-steps // k)  # entering steps k - 1, 2k - 1, ...
        assert [results(G, fwd)[j][0][0] for j in p["strided"]] == [kept] * 2
        # arrays [N, ...] (sequences, segments of them) are read on axis 1, the others
        # (checkpoints, residuals the forward loop stacks time-major) on axis 0
        for n in scans:
            q = G._node[n]["params"]
            xs = operands(G, n)[q["n_carry"] : q["n_carry"] + q["n_xs"]]
            for i, u in enumerate(xs):
                want = 1 if G._node[u]["shape"][0] == "N" else 0
                assert xs_axis(q, i) == want, (n, i, G._node[u]["shape"])
    inp = inputs(steps)
    a, b = gc.evaluate(joint, inp), gc.evaluate(h, inp)
    want, _ = _joint(model(False, reverse, steps))
    c = gc.evaluate(want, inp)
    assert a.keys() == b.keys() == c.keys()
    for key in a:
        np.testing.assert_array_equal(b[key], a[key], err_msg=key)
        np.testing.assert_array_equal(b[key], c[key], err_msg=key)


def _lstm(steps: int, d: int = 3, hidden: int = 6, reverse: bool = False) -> gc.Graph:
    """gc.nn.lstm over x [N, T, d]; or, `reverse`, the same LSTM run from the last step to
    the first (a loop of gc.nn.lstm_cell from h = c = input h0)."""
    g = gc.Graph("lstm_budget")
    x = g.input("x", shape=("N", steps, d))
    if reverse:
        h0 = g.input("h0", shape=("N", hidden))

        def cell(s: tuple, x_t: gc.Value) -> tuple:
            h, c = gc.nn.lstm_cell(x_t, s[0], s[1], "lstm")
            return (h, c), h

        _, hs = gc.scan(cell, (h0, h0), x, reverse=True, axis=1)
    else:
        hs = gc.nn.lstm(x, hidden, "lstm", return_sequences=True)
    g.output("loss", gc.mean(hs * hs))
    return g


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("steps", [25, 200])
def test_budgeted_lstm_plan_has_no_transpose_and_keeps_little(steps: int, reverse: bool) -> None:
    """gc.nn.lstm over batch-first x [64, T, 128] (hidden 128) with memory_budget=1: no
    transpose in its plan, and its peak of live bytes at most its checkpoints, one segment of
    the per-step values the unbudgeted loop stacks for the backward pass, and hs [N, T, H]
    (the forward pass's, which the loss reads), whether k divides T (25) or not
    (200 = 13 * 15 + 5): the loop over whole segments reads x where it is, k steps at a time,
    with no copy of its first 195 steps, and computes the loss's cotangent of hs again in
    each segment: no [N, T, H] array is live in the backward pass. The same LSTM run last to
    first keeps T // k checkpoints and holds no more."""
    g, sizes, d = _lstm(steps, 128, 128, reverse), {"N": 64}, 64 * 128 * 4  # d: one [N, H]
    only = ("value_and_grad",)
    st = run_stages(g, dtype="float32", functions=only, memory_budget=1)
    prog, plan = st.programs["value_and_grad"]
    G = prog.graph.nx
    assert not [n for s in prog.steps for n in s.nodes if G._node[n]["op"] == "transpose"]
    k = math.isqrt(steps - 1) + 1
    loops = [s.node for s in prog.steps if G._node[s.node]["op"] == "scan"]
    (fwd,) = [n for n in loops if G._node[n]["params"]["strided"]]
    p = G._node[fwd]["params"]
    ckpts = sum(value_bytes(*results(G, fwd)[j], sizes) for j in p["strided"])
    # the loop without a budget: what it stacks for its backward loop, k steps of it
    prog0, _ = run_stages(g, dtype="float32", functions=only).programs["value_and_grad"]
    G0 = prog0.graph.nx
    backward = {n for s in prog0.steps if s.section == "backward" for n in s.nodes}
    stacked = 0
    for s in prog0.steps:
        if s.section == "forward" and G0._node[s.node]["op"] == "scan":
            types = results(G0, s.node)
            for o in s.nodes[1:]:
                j = G0._node[o]["params"]["index"]
                if j >= G0._node[s.node]["params"]["n_carry"] and backward & set(G0.succ[o]):
                    stacked += value_bytes(*types[j], sizes)
    assert stacked == 6 * steps * d  # h and c entering each step, the four gates
    assert p["reverse"] == reverse
    assert ckpts == 2 * (steps // k if reverse else -(-steps // k)) * d
    bound = ckpts + stacked * k // steps + steps * d
    live = live_bytes(prog, plan, sizes)
    assert max(live) <= bound
    # the backward pass holds no array of T steps: the loss's cotangent of hs is computed
    # again in each segment, from the hs the segment computes again; so at most the
    # checkpoints, one segment, the weights' gradients and a few [N, H]
    back = [t for t, s in enumerate(prog.steps) if s.section == "backward"]
    for v in plan.arena_values():
        iv = plan.intervals[v]
        if iv.end >= back[0] and steps in G._node[v]["shape"]:
            raise AssertionError(f"{describe(G, v)} is live in the backward pass")
    params = g.input_ids("param").values()
    grads = sum(value_bytes(g.nx._node[n]["shape"], "float32", sizes) for n in params)
    assert max(live[t] for t in back) <= ckpts + stacked * k // steps + grads + 4 * d


@pytest.mark.compiler
@pytest.mark.parametrize("steps", [16, 18])
def test_compiled_budgeted_lstm_bit_for_bit(tmp_path, steps: int) -> None:
    g = _lstm(steps)
    params = gc.nn.init_params(g, seed=0, dtype="float32")
    xs = np.random.default_rng(0).normal(size=(4, steps, 3)).astype(np.float32)
    plain, budget = plain_and_budgeted(g, tmp_path, dtype="float32")
    same_steps(plain, budget, x=xs, **params)
