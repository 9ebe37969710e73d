"""Elementwise fusion: which steps share a loop, what is never stored, and that fused code
computes exactly what unfused code does."""

import dataclasses

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.pyrender import PyModule
from graphc.compiler import run_stages
from graphc.errors import PlanError
from graphc.passes.fuse import full_reduction, is_flat
from graphc.passes.memory import Storage
from graphc.passes.verify_plan import verify_plan
from tests.models import elementwise_chain, mlp, seed_net
from tests.passes.test_memory import random_model


def bias_layer() -> gc.Graph:
    """Broadcast operands, a partial reduction (the bias gradient) and a full one."""
    g = gc.Graph("bias_layer")
    x = g.input("x", shape=("N", 4))
    b = g.param("b", shape=(4,))
    s = g.param("s", shape=())
    g.output("loss", gc.mean(gc.tanh(x + b) * s))
    return g


def step_of(prog, n):
    return prog.step_of[n]


def test_the_elementwise_chain_is_one_loop_that_stores_only_outputs():
    prog, plan = run_stages(elementwise_chain()).programs["value_and_grad"]
    assert len(prog.steps) == 1 and prog.steps[0].fused
    stored = {n for n in prog.steps[0].nodes if plan.storage[n].kind != "local"}
    assert stored == set(prog.outputs.values())
    assert plan.slots == ()  # no arena at all
    assert "fused {" in str(prog)


def test_nothing_reads_a_reduction_in_its_own_loop():
    g = gc.Graph("norm")
    x = g.input("x", shape=("N", 4))
    s = gc.sum(gc.exp(x), axis=1, keepdims=True)  # shape (N, 1): its own loop space
    g.output("y", gc.sum(gc.exp(x) / s))
    prog, _ = run_stages(g).programs["forward"]
    G = prog.graph.nx
    for n in G:
        if G.nodes[n]["op"] == "sum" and n in prog.step_of:
            for reader in G.successors(n):
                if reader in prog.step_of:
                    assert prog.step_of[reader] != prog.step_of[n]


def test_broadcast_reads_and_a_partial_reduction_share_the_loop():
    g = gc.Graph("colsum")
    x = g.input("x", shape=("N", 4))
    g.output("y", gc.sum(gc.relu(x + g.input("b", shape=(4,))), axis=0))
    prog, plan = run_stages(g).programs["forward"]
    assert len(prog.steps) == 1 and [plan.storage[n].kind for n in prog.steps[0].nodes] == [
        "local",
        "local",
        "output",
    ]


def test_a_heavy_op_does_not_share_the_one_thread_of_a_partial_reduction():
    """tanh's loop is shared among threads; the column sums reduce what it stored."""
    g = gc.Graph("colsum")
    x = g.input("x", shape=("N", 4))
    g.output("y", gc.sum(gc.tanh(x + g.input("b", shape=(4,))), axis=0))
    st = run_stages(g)
    prog, plan = st.programs["forward"]
    assert [len(s.nodes) for s in prog.steps] == [2, 1]
    assert plan.storage[prog.steps[0].nodes[-1]].kind == "arena"  # tanh's values are stored
    docs = [k.doc for k in st.module.kernels]
    assert any("tanh) over [N, 4], its outer loop shared among threads" in d for d in docs)
    assert any(d == "sum over [N, 4], on one thread" for d in docs)


def test_a_full_reduction_is_only_computed_in_a_flat_loop():
    prog, _ = run_stages(bias_layer()).programs["value_and_grad"]
    G = prog.graph.nx
    for s in prog.steps:
        if any(full_reduction(G, n) for n in s.nodes):
            assert is_flat(G, s.nodes)
    assert any(s.fused and any(full_reduction(G, n) for n in s.nodes) for s in prog.steps)


@pytest.mark.parametrize(
    "model", [seed_net, bias_layer, elementwise_chain, lambda: random_model(3)]
)
def test_fused_plans_verify(model):
    for budget in (None, 1):
        st = run_stages(model(), memory_budget=budget)
        for prog, plan in st.programs.values():
            verify_plan(prog, plan)


def test_verifier_rejects_a_loop_scalar_read_by_another_step():
    prog, plan = run_stages(seed_net()).programs["value_and_grad"]
    G = prog.graph.nx
    v = next(
        n
        for t, s in enumerate(prog.steps)
        if s.fused
        for n in s.nodes
        if plan.storage[n].kind == "arena"
        and any(prog.step_of.get(r, t) != t for r in G.successors(n))
    )
    storage = {**plan.storage, v: Storage("local", prog.step_of[v])}
    with pytest.raises(PlanError, match="a scalar of another step's loop"):
        verify_plan(prog, dataclasses.replace(plan, storage=storage))


def test_verifier_rejects_an_output_kept_in_a_loop_scalar():
    prog, plan = run_stages(elementwise_chain()).programs["value_and_grad"]
    out = prog.outputs["dloss/dx"]
    storage = {**plan.storage, out: Storage("local", 0)}
    with pytest.raises(PlanError, match="kept in a loop scalar but is needed"):
        verify_plan(prog, dataclasses.replace(plan, storage=storage))


@pytest.mark.compiler
def test_fused_code_is_bitwise_unfused_code(tmp_path):
    """The same arithmetic op by op, full reductions in one order, and math functions that
    give the same bits in any vector lane."""
    rng = np.random.default_rng(7)
    g_mlp, mlp_inputs = mlp(rng)
    cases = {
        "seed": (seed_net(), {}),
        "mlp": (g_mlp, mlp_inputs),
        "chain": (elementwise_chain(), {k: rng.normal(size=1000) for k in "xab"}),
        "bias": (bias_layer(), {"x": rng.normal(size=(300, 4)), "b": rng.normal(size=4),
                                "s": np.array(0.7)}),
    }  # fmt: skip
    cases["seed"][1].update(
        x=rng.normal(size=(5, 3)), y=rng.normal(size=(5, 2)), W1=rng.normal(size=(2, 3)),
        b1=rng.normal(size=2), W2=rng.normal(size=(2, 2)), b2=rng.normal(size=1),
    )  # fmt: skip
    for name, (g, inputs) in cases.items():
        fused = gc.compile(g, out_dir=tmp_path, fusion=True)
        plain = gc.compile(g, out_dir=tmp_path, fusion=False)
        assert " ops (" in fused.source and " ops (" not in plain.source  # kernels' docstrings
        got, want = fused.value_and_grad(**inputs), plain.value_and_grad(**inputs)
        for part in (0, 1):
            for k in want[part]:
                assert got[part][k].tobytes() == want[part][k].tobytes(), (name, k)
        ref = gc.value_and_grad(g, inputs, of="loss", wrt=list(got[1]))
        for k in ref[1]:
            np.testing.assert_allclose(got[1][k], ref[1][k], rtol=1e-10, atol=1e-12)


def _centred() -> gc.Graph:
    """y + (y - mean(y, -1)) * b: its backward pass has a sum along rows (of b's share) and a
    sum over the batch (b's gradient) in one loop's reach."""
    g = gc.Graph("centred")
    x = g.input("x", shape=("N", 6, 8))
    w, b = g.param("w", shape=(8,)), g.param("b", shape=(8,))
    y = x * w
    g.output("loss", gc.mean((y + (y - gc.mean(y, axis=-1, keepdims=True)) * b) ** 2))
    return g


def _block() -> gc.Graph:
    g = gc.Graph("block")
    x = g.input("x", shape=("N", 6, 8))
    g.output("loss", gc.mean(gc.nn.transformer_encoder_block(x, 2, 16, "b") ** 2))
    return g


@pytest.mark.parametrize("build", [_centred, _block])
def test_rows_are_summed_pairwise_fused_or_not(build):
    """A sum along rows is NumPy's pairwise sum of each row only in a loop whose partial
    reductions are all such sums: a loop that also summed over the batch added its rows in
    order, so a transformer block's gradients differed in the last bit with the fusion. The
    Python backend runs the modules' IR, with their sums."""
    g = build()
    rng = np.random.default_rng(3)
    shapes = {k: g.nx.nodes[n]["shape"] for k, n in g.input_ids("param").items()}
    params = {k: rng.normal(size=s) for k, s in shapes.items()}  # not at init: no zeros
    inputs = {"x": rng.normal(size=(3, 6, 8)), **params}
    runs = {}
    for fusion in (True, False):
        for memory in ("best", "naive"):
            st = run_stages(g, wrt=["x", *params], fusion=fusion, memory=memory)
            runs[fusion, memory] = PyModule(st.module).value_and_grad(**inputs)
    (loss, want) = runs[False, "naive"]
    for key, (out, grads) in runs.items():
        assert out["loss"].tobytes() == loss["loss"].tobytes(), key
        for k in want:
            assert grads[k].tobytes() == want[k].tobytes(), (key, k)


@pytest.mark.compiler
def test_threads_change_nothing_but_speed(tmp_path):
    g = elementwise_chain()
    m = gc.compile(g, out_dir=tmp_path)
    rng = np.random.default_rng(3)
    inputs = {k: rng.normal(size=300_007) for k in "xab"}  # large enough to use threads
    results = []
    assert "rt.reduce_d(" in m.source  # the loop's chunks are shared among threads
    for n in (1, 2, 3):
        m.module.set_num_threads(n)
        assert m.module.get_num_threads() == n
        results.append(m.value_and_grad(**inputs))
        assert m.module.thread_stats()[0] >= n - 1  # helper threads started
    for outs, grads in results[1:]:
        assert outs["loss"].tobytes() == results[0][0]["loss"].tobytes()
        for k in grads:
            assert grads[k].tobytes() == results[0][1][k].tobytes()
    ref = gc.value_and_grad(g, inputs, of="loss", wrt=list("xab"))
    np.testing.assert_allclose(results[0][0]["loss"], ref[0]["loss"], rtol=1e-12)
    for k in "xab":
        np.testing.assert_allclose(results[0][1][k], ref[1][k], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="at least 1 thread"):
        m.module.set_num_threads(0)


def _sum_step_is_fused(g: gc.Graph, program: str = "value_and_grad") -> bool:
    prog, _ = run_stages(g).programs[program]
    G = prog.graph.nx
    (s,) = [n for n in prog.step_of if G.nodes[n]["op"] == "sum" and G.nodes[n]["shape"] != ()]
    return bool(prog.steps[prog.step_of[s]].fused)


@pytest.mark.parametrize("stored_anyway", [True, False])
def test_a_partial_reduction_of_the_inner_axis_joins_only_to_save_a_store(stored_anyway):
    """sum over the innermost axis adds into one value across the inner loop, which keeps the
    loop from vectorising: it joins the loop of its operand only when that saves storing the
    operand, not when another step reads the operand anyway (a ReLU's masked cotangent read by
    a bias gradient and a weight gradient)."""
    g = gc.Graph("inner_sum")
    x = g.input("x", shape=("N", 8))
    m = gc.where(x > 0, x * x, 0.0)  # light: a heavy op would not share its one thread
    total = gc.sum(m, axis=1)
    g.output("y", total * 2.0 + (gc.sum(m * x) if stored_anyway else 0.0))
    assert _sum_step_is_fused(g, "forward") is not stored_anyway
