"""Checkpointing loops (passes/scan_remat.py): with a memory budget, the forward loop keeps its
carry every k-th step and the backward pass runs in segments that compute each segment's
per-step values again, whichever way the forward loop runs. Gradients are bit for bit those
without a budget (interpreter, compiled module, Python backend); the plan's arena shrinks;
loops it cannot split are left alone."""

from __future__ import annotations

import math

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.pyrender import PyModule
from graphc.compiler import _differentiate, run_stages
from graphc.errors import GraphError
from graphc.ops.scan import results
from graphc.passes.scan_remat import checkpoint_loops
from graphc.passes.simplify import simplify
from tests.ops.test_scan import WRT, D, H, _lstm_cell, lstm_inputs, lstm_model, rnn_graph
from tests.passes.budget_helpers import plain_and_budgeted, same_steps


def _joint(g: gc.Graph, wrt: list[str]) -> tuple[gc.Graph, int]:
    g = simplify(g)
    joint, _ = _differentiate(g, "loss", wrt)
    return joint, g._next_id


def _forward_scans(h: gc.Graph, backward_from: int) -> list[int]:
    G = h.nx
    return [n for n in G if n < backward_from and G._node[n]["op"] == "scan"]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("steps", [*range(18), 40])
def test_segments_give_the_same_gradients_bit_for_bit(steps: int, reverse: bool) -> None:
    """ceil(T / k) checkpoints of each carry (k = ceil(sqrt(T))), or T // k when the loop
    runs last to first (its last T mod k steps, run first, start from the initial carry), a
    tail segment when k does not divide T, and every output equal to the unsplit model's,
    bit for bit; fewer than 4 steps are left whole."""
    joint, backward_from = _joint(lstm_model(False, reverse=reverse, steps=steps), WRT)
    h, loops = checkpoint_loops(joint, backward_from)
    assert loops == (steps >= 4)
    if loops:
        (s,) = _forward_scans(h, backward_from)
        p = h.nx._node[s]["params"]
        k = math.isqrt(steps - 1) + 1
        assert p["every"] == k and len(p["strided"]) == 2  # the carry: h and c
        assert p["reverse"] == reverse
        for j in p["strided"]:
            assert results(h.nx, s)[j][0][0] == (steps // k if reverse else -(-steps // k))
    inp = lstm_inputs(steps)
    a, b = gc.evaluate(joint, inp), gc.evaluate(h, inp)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_loops_it_cannot_split_are_left_alone() -> None:
    """Too few steps keep their loops as they were; so does a symbolic T when the size hint
    gives segments of one step (else it is split: tests/passes/test_scan_remat_symbolic.py)."""
    for g, hint in ((rnn_graph("T"), 1), (lstm_model(False, steps=3), 256),
                    (lstm_model(False, reverse=True, steps=3), 256)):  # fmt: skip
        joint, backward_from = _joint(g, ["W", "U"])
        h, loops = checkpoint_loops(joint, backward_from, hint)
        assert loops == 0
        assert h.nx.number_of_nodes() == joint.nx.number_of_nodes()


def test_a_checkpointing_loop_has_no_derivative() -> None:
    joint, backward_from = _joint(lstm_model(False, steps=9), WRT)
    h, _ = checkpoint_loops(joint, backward_from)
    outputs = h.nx.graph["outputs"]
    for name in [k for k in outputs if k != "loss"]:
        del outputs[name]
    with pytest.raises(GraphError, match="keeps checkpoints"):
        gc.grad(h, "loss", ["W"])


@pytest.mark.compiler
def test_compiled_with_a_budget_equals_without(tmp_path) -> None:
    """memory_budget= splits the loop (the report says so), the planned arena shrinks, and the
    module's values and gradients equal the module without a budget bit for bit; the Python
    backend runs the same rows ("every" binds included)."""
    steps = 12
    g = lstm_model(False, steps=steps)
    plain, budget = plain_and_budgeted(g, tmp_path, wrt=WRT)
    c = budget.stages.checkpointing
    assert "1 loops run in segments" in str(c)
    assert c.arena_bytes < c.unbudgeted_arena_bytes / 2
    prog, _ = budget.stages.programs["value_and_grad"]
    G = prog.graph.nx
    strided = [n for n in G if G._node[n]["op"] == "scan" and G._node[n]["params"]["strided"]]
    assert len(strided) == 1  # the forward loop runs once: never cloned by checkpointing
    inp = lstm_inputs(steps, seed=3)
    grads = same_steps(plain, budget, **inp)
    st = run_stages(g, wrt=WRT, functions=["value_and_grad"], memory_budget=1)
    _, gp = PyModule(st.module).value_and_grad(**inp)
    for key in grads:
        np.testing.assert_allclose(gp[key], grads[key], rtol=1e-12, atol=1e-13, err_msg=key)


LENGTHS = [*range(18), 40]


def _loops_of_every_length() -> gc.Graph:
    """One LSTM-like loop (tests/ops/test_scan.py's cell) per length in LENGTHS, each run
    first to last and last to first over an input of its own, sharing the weights."""
    g = gc.Graph("lengths")
    h0 = g.input("h0", shape=("N", H))
    c0 = g.param("c0", shape=("N", H))
    W = g.param("W", shape=(D, 4 * H))
    U = g.param("U", shape=(H, 4 * H))
    b = g.param("b", shape=(4 * H,))
    cell = _lstm_cell(W, U, b)
    loss = gc.sum(c0 * c0)
    for steps in LENGTHS:
        for reverse in (False, True):
            xs = g.input(f"x{steps}{'r' if reverse else 'f'}", shape=(steps, "N", D))
            s, (hs, zs) = gc.scan(cell, {"h": h0, "c": c0}, xs, reverse=reverse)
            loss = loss + gc.sum(hs * hs) + gc.sum(s["c"]) * 0.5 + gc.sum(zs * zs)
    g.output("loss", loss)
    return g


@pytest.mark.compiler
@pytest.mark.parametrize("dtype", ["float64", pytest.param("float32", marks=pytest.mark.slow)])
def test_compiled_loops_of_every_length_either_way(tmp_path, dtype: str) -> None:
    """T = 0 .. 17 and 40, k dividing T or not, each loop run first to last and last to
    first: with memory_budget= every loop of 4 steps or more runs in segments (those run last
    to first too), and the module's value and every gradient (the inputs' too) equal the
    module's without a budget, bit for bit; the Python backend runs the same rows."""
    g = _loops_of_every_length()
    wrt = ["h0", "c0", "W", "U", "b", *(f"x{t}{d}" for t in LENGTHS for d in "fr")]
    split = 2 * sum(t >= 4 for t in LENGTHS)
    plain, budget = plain_and_budgeted(g, tmp_path, split, wrt=wrt, dtype=dtype)
    prog, _ = budget.stages.programs["value_and_grad"]
    G = prog.graph.nx
    strided = [G._node[n]["params"]["reverse"] for n in G
               if G._node[n]["op"] == "scan" and G._node[n]["params"]["strided"]]  # fmt: skip
    assert sorted(strided) == [False] * (split // 2) + [True] * (split // 2)
    rng = np.random.default_rng(5)
    inp = {k: v.astype(dtype) for k, v in lstm_inputs(0, seed=4).items() if k != "xs"}
    for t in LENGTHS:
        for d in "fr":
            inp[f"x{t}{d}"] = rng.normal(size=(t, 3, D)).astype(dtype)
    grads = same_steps(plain, budget, **inp)
    assert len(grads) == len(wrt)
    if dtype == "float64":
        st = run_stages(g, wrt=wrt, functions=["value_and_grad"], memory_budget=1)
        _, gp = PyModule(st.module).value_and_grad(**inp)
        for key in grads:
            np.testing.assert_allclose(gp[key], grads[key], rtol=1e-12, atol=1e-13, err_msg=key)


@pytest.mark.compiler
def test_compiled_lstm_layer_with_a_budget(tmp_path) -> None:
    """gc.nn.lstm (batch first, its input products made before the loop) at T = 10 in
    float32: a budget splits its loop and leaves its gradients as they were, bit for bit."""
    g = gc.Graph("lstm_budget")
    x = g.input("x", shape=("N", 10, 3))
    hs = gc.nn.lstm(x, 6, "lstm", return_sequences=True)
    g.output("loss", gc.mean(hs * hs))
    params = gc.nn.init_params(g, seed=0, dtype="float32")
    xs = np.random.default_rng(0).normal(size=(4, 10, 3)).astype(np.float32)
    plain, budget = plain_and_budgeted(g, tmp_path, dtype="float32")
    same_steps(plain, budget, x=xs, **params)


@pytest.mark.parametrize("layer", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("lengths", [False, True])
def test_recurrent_layers_split_bit_for_bit(layer: str, lengths: bool) -> None:
    """gc.nn's layers (padded batches too: the carry holds each sequence's steps left) at
    T = 11, k = 4: two full segments and a tail of 3."""
    from tests.test_recurrent import feed, model

    g = model(layer, False, steps=11, lengths=lengths)
    joint, backward_from = _joint(g, [k for k in g.input_ids("param")])
    h, loops = checkpoint_loops(joint, backward_from)
    assert loops == 1
    inp = feed(g, steps=11)
    a, b = gc.evaluate(joint, inp), gc.evaluate(h, inp)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_a_module_with_hvp_keeps_its_loops_whole() -> None:
    """jvp and hvp differentiate the joint graph again, which a split loop does not allow: a
    budget then leaves the loops alone (and the build works)."""
    g = lstm_model(False, steps=9)
    st = run_stages(g, wrt=WRT, memory_budget=1, functions=["value_and_grad", "hvp", "jvp"])
    assert st.checkpointing.loops == 0
    assert {"value_and_grad", "hvp", "jvp"} <= set(st.programs)


@pytest.mark.compiler
def test_a_loop_holding_a_loop_splits_bit_for_bit(tmp_path) -> None:
    """The outer loop of two is split (its segments then hold loops three levels deep); the
    interpreter and the compiled module give what they give without a budget, bit for bit."""
    g = gc.Graph("nested")
    xs = g.input("xs", shape=(7, 2, 4))
    w = g.param("w", shape=(4,))
    h0 = g.param("h0", shape=(4,))

    def outer(h, x):
        def inner(k, xi):
            return gc.tanh(k * w + xi), None

        k, _ = gc.scan(inner, h, x)
        return k * 0.5 + h, k

    h, ks = gc.scan(outer, h0, xs)
    g.output("loss", gc.sum(ks * ks) + gc.sum(h))
    rng = np.random.default_rng(2)
    inp = {"xs": rng.normal(size=(7, 2, 4)), "w": rng.normal(size=4), "h0": rng.normal(size=4)}
    joint, backward_from = _joint(g, ["w", "h0", "xs"])
    split, loops = checkpoint_loops(joint, backward_from)
    assert loops == 1
    a, b = gc.evaluate(joint, inp), gc.evaluate(split, inp)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    same_steps(*plain_and_budgeted(g, tmp_path), **inp)
