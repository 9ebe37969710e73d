"""Memory planning: liveness, sharing, in place, schedules, checkpointing, and the verifier."""

import dataclasses

import numpy as np
import pytest

import graphc as gc
from graphc.compiler import run_stages
from graphc.errors import PlanError
from graphc.passes import memory
from graphc.passes.fuse import fuse
from graphc.passes.liveness import WHOLE_CALL, liveness
from graphc.passes.memory import Storage, plan_memory
from graphc.passes.plan_report import default_sizes, plan_table, totals
from graphc.passes.remat import rematerialize, saved_values
from graphc.passes.schedule import schedule
from graphc.passes.verify_plan import verify_plan
from tests.models import mlp, seed_net


def chain(steps: int = 100, width: int = 16) -> gc.Graph:
    """A `steps`-step unrolled tanh chain (an RNN without input): what checkpointing is for."""
    g = gc.Graph("chain")
    x = g.input("x", shape=("N", width))
    w = g.param("w", shape=(width,))
    h = x
    for _ in range(steps):
        h = gc.tanh(h * w)
    g.output("loss", gc.sum(h))
    return g


def deep_mlp(layers: int = 6, width: int = 8) -> gc.Graph:
    g = gc.Graph("deep")
    h = g.input("x", shape=("N", width))
    for i in range(layers):
        h = gc.tanh(h @ g.param(f"W{i}", shape=(width, width)) + g.param(f"b{i}", shape=(width,)))
    g.output("loss", gc.mean(h * h))
    return g


def random_model(seed: int) -> gc.Graph:
    """A random DAG of elementwise ops, matmuls, reductions and reshapes, with fan-out."""
    rng = np.random.default_rng(seed)
    g = gc.Graph(f"rand{seed}")
    pool = [g.input("x", shape=("N", 4)), g.param("a", shape=(4,)), g.param("W", shape=(4, 4))]
    for _ in range(rng.integers(8, 30)):
        x = pool[rng.integers(len(pool))]
        y = pool[rng.integers(len(pool))]
        kind = rng.integers(6)
        if kind == 0 and x.shape[-1:] == y.shape[-1:] and (x.shape == y.shape or y.ndim == 1):
            v = x * y
        elif kind == 1:
            v = gc.tanh(x) + 1.0
        elif kind == 2 and x.ndim == 2 and y.shape == (4, 4):
            v = x @ y
        elif kind == 3 and x.ndim == 2:
            v = gc.sum(x, axis=1, keepdims=True) * x
        elif kind == 4 and x.shape == ("N", 4):
            v = gc.reshape(gc.reshape(x, ("N", 2, 2)), ("N", 4)) - x
        else:
            v = gc.sigmoid(x) * 2.0
        pool.append(v)
    uses_all = gc.sum(pool[0] * pool[1]) + gc.sum(pool[0] @ pool[2])
    g.output("loss", sum(gc.sum(v) for v in pool[3:][-5:]) + uses_all)
    return g


MODELS = {"seed": seed_net, "mlp": lambda: mlp(np.random.default_rng(0))[0], "deep": deep_mlp,
          "chain": lambda: chain(30), **{f"random{s}": (lambda s=s: random_model(s))
                                         for s in range(12)}}  # fmt: skip


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("strategy", ["best", "schedule", "size", "naive"])
@pytest.mark.parametrize("order", ["id", "memory"])
def test_every_plan_verifies(name, strategy, order):
    st = run_stages(MODELS[name]())
    joint = st.joint
    for outputs in (list(st.graph.outputs), list(joint.outputs)):
        prog = schedule(joint, outputs, st.graph._next_id, order=order)
        verify_plan(prog, plan_memory(prog, strategy))
        verify_plan(fuse(prog), plan_memory(fuse(prog), strategy))


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("fusion", [False, True])
def test_least_arena_bounds_every_placement(name, fusion):
    """The bound that lets "best" skip the size-order placement is below both placements
    (and meets the schedule's on the seed network), and "best" is never more than the
    margin above the smaller of the two."""
    st = run_stages(MODELS[name](), fusion=fusion)
    for prog, _ in st.programs.values():
        plans = {s: plan_memory(prog, s) for s in ("best", "schedule", "size")}
        sizes = default_sizes(prog, 64)
        arena = {s: plan.arena_bytes(sizes) for s, plan in plans.items()}
        storage, _, alias_of = memory._fixed_storage(prog)
        iv = liveness(prog, alias_of)
        values = [n for s in prog.steps for n in s.nodes if n not in storage]
        nodes = prog.graph.nx._node
        nbytes = {v: memory.value_bytes(nodes[v]["shape"], nodes[v]["dtype"], sizes)
                  for v in values}  # fmt: skip
        slots = {s: [[v for v in values if plans[s].storage[v].ref == k] for k in
                     range(len(plans[s].slots))] for s in ("schedule", "size")}  # fmt: skip

        def overwrite(v, x, prog=prog, nbytes=nbytes):  # as plan_memory's
            return x in nbytes and memory.can_overwrite(prog, v, x)

        least = memory._least_arena(prog, values, iv, nbytes, overwrite)
        for s in ("schedule", "size"):
            assert least <= sum(max(nbytes[m] for m in members) for members in slots[s])
        assert arena["best"] <= min(arena["schedule"], arena["size"]) * (1 + 1 / 1024)
    if name == "seed":
        assert least == arena["schedule"]


def plans(model, fusion=False):
    """The planned value_and_grad program; unfused unless asked, so that every elementwise op
    is a step of its own and the planner's choices are visible."""
    st = run_stages(model, fusion=fusion)
    return st.programs["value_and_grad"]


@pytest.mark.parametrize("name", ["seed", "mlp", "chain"])
def test_planned_arena_is_strictly_below_naive(name):
    model = chain(100) if name == "chain" else MODELS[name]()
    prog, plan = plans(model)
    for n in (1, 64, 4096):
        t = totals(prog, plan, default_sizes(prog, n))
        assert t.arena_bytes < t.naive_bytes
        assert t.live_peak_bytes <= t.arena_bytes
    assert plan.in_place  # elementwise ops write over operands


def test_liveness_of_a_small_program():
    g = gc.Graph("live")
    x = g.input("x", shape=(3,))
    a = gc.exp(x)  # step 0
    b = gc.tanh(a)  # step 1
    c = a * b  # step 2: last read of a and b
    g.output("y", gc.sum(c))  # step 3
    prog = schedule(g, ["y"])
    iv = liveness(prog)
    assert [s.node for s in prog.steps] == [a.id, b.id, c.id, g.outputs["y"]]
    assert (iv[x.id].start, iv[x.id].end) == (WHOLE_CALL, 4)
    assert (iv[a.id].start, iv[a.id].end) == (0, 2)
    assert (iv[b.id].start, iv[b.id].end) == (1, 2)
    assert (iv[c.id].start, iv[c.id].end) == (2, 3)
    assert iv[g.outputs["y"]].end == 4  # outputs live to the end of the call
    plan = plan_memory(prog)
    assert plan.storage[c.id].kind == "arena" and c.id in plan.in_place  # c over a (or b)
    assert len(plan.slots) == 2


def test_inputs_and_outputs_are_never_arena():
    prog, plan = plans(seed_net())
    for name, n in prog.inputs.items():
        assert plan.storage[n] == Storage("input", name)
    for name, n in prog.outputs.items():
        assert plan.storage[n] == Storage("output", name)


def test_fan_out_accumulation_is_in_place():
    g = gc.Graph("fan")
    x = g.param("x", shape=("N",))
    g.output("loss", gc.sum(gc.exp(x) * gc.tanh(x) * gc.sqrt(x)))  # x fans out three ways
    prog, plan = plans(g)
    adds = [s.node for s in prog.steps if prog.graph.nx.nodes[s.node]["op"] == "add"]
    # The last sum is written straight into the returned gradient; the others in place.
    in_arena = [a for a in adds if plan.storage[a].kind == "arena"]
    assert in_arena and all(a in plan.in_place for a in in_arena)
    assert all(plan.storage[a].kind in ("arena", "output") for a in adds)


# ---- the verifier rejects broken plans ---------------------------------------------------
def broken(kind):
    prog, plan = plans(seed_net())
    storage = dict(plan.storage)
    values = plan.arena_values()
    iv = plan.intervals
    if kind == "overlap":
        x = max(values, key=lambda v: iv[v].end - iv[v].start)
        y = next(v for v in values if iv[x].start + 1 < iv[v].start < iv[x].end)
        storage[y] = storage[x]
    elif kind == "write input":
        storage[values[0]] = Storage("input", "x")
    elif kind == "wrong output":
        storage[values[0]] = Storage("output", "loss")
    elif kind == "missing":
        del storage[values[0]]
    elif kind == "dangling slot":
        storage[values[0]] = Storage("arena", 999)
    elif kind == "small slot":
        small = dataclasses.replace(plan.slots[0], layouts=(((1,), "float64"),))
        return prog, dataclasses.replace(plan, slots=(small, *plan.slots[1:]))
    elif kind == "matmul in place":  # h = tanh(x) is last read by the product: still not in place
        g = gc.Graph("mm")
        h = gc.tanh(g.input("x", shape=("N", 3)))
        g.output("y", gc.sum(gc.exp(h @ g.param("W", shape=(3, 3)))))
        prog, plan = run_stages(g, fusion=False).programs["forward"]
        storage = dict(plan.storage)
        G = prog.graph.nx
        mm, a = next(
            (s.node, u) for s in prog.steps for u in G.predecessors(s.node)
            if G.nodes[s.node]["op"] == "matmul" and plan.storage[s.node].kind == "arena"
            and plan.storage[u].kind == "arena"
        )  # fmt: skip
        storage[mm] = storage[a]
    return prog, dataclasses.replace(plan, storage=storage)


@pytest.mark.parametrize("kind, pattern", [
    ("overlap", r"overwrites v\d+ in buf\d+, which is read again at step \d+"),
    ("write input", r"would be written into an input"),
    ("wrong output", r"would be written into output 'loss', which is another value"),
    ("missing", r"has no storage"),
    ("dangling slot", r"buf999, which the plan does not have"),
    ("small slot", r"needs \d+ bytes at size \d+, buf0 has \d+"),
    ("matmul in place", r"overwrites v\d+ .* while reading it, and is not an elementwise op"),
])  # fmt: skip
def test_verifier_rejects_a_broken_plan(kind, pattern):
    prog, plan = broken(kind)
    with pytest.raises(PlanError, match=pattern):
        verify_plan(prog, plan)


# ---- checkpointing ---------------------------------------------------------------------------
def test_rematerialize_keeps_the_arithmetic():
    st = run_stages(chain(12))
    joint, bf = st.joint, st.graph._next_id
    saved = saved_values(joint, bf)
    assert len(saved) == 12
    h, recomputed = rematerialize(joint, bf, set(saved[3::4]))
    assert recomputed > 0 and len(h) == len(joint) + recomputed
    gc.verify(h)
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=(5, 16)), "w": rng.normal(size=16)}
    a, b = gc.evaluate(joint, inputs), gc.evaluate(h, inputs)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_budget_lowers_the_arena_with_a_report():
    g = chain(100)
    base_prog, base_plan = plans(g)
    sizes = default_sizes(base_prog, 256)
    base = base_plan.arena_bytes(sizes)
    st = run_stages(g, memory_budget=base // 4, fusion=False)
    c = st.checkpointing
    prog, plan = st.programs["value_and_grad"]
    assert c.fits and plan.arena_bytes(sizes) <= base // 4
    assert c.unbudgeted_arena_bytes == base and c.recomputed_steps > 0
    assert "recompute" in str(c) and "forward work" in str(c)
    assert sum(s.section == "backward" for s in prog.steps) > sum(
        s.section == "backward" for s in base_prog.steps
    )


def test_unreachable_budget_says_so():
    st = run_stages(chain(20), memory_budget=1)
    assert not st.checkpointing.fits and "NOT met" in str(st.checkpointing)


def test_plan_table_shows_values_and_totals():
    prog, plan = plans(seed_net())
    text = plan_table(prog, plan, {"N": 256})
    assert "naive bytes (one buffer per value): 77952" in text
    assert "planned arena bytes:" in text and "in place" in text and "buf0" in text


# ---- compiled: bitwise identical with planning off, on, and with checkpointing ----------------
@pytest.mark.compiler
def test_compiled_results_are_bitwise_identical_across_plans(tmp_path):
    g = chain(12, width=8)
    rng = np.random.default_rng(1)
    inputs = {"x": rng.normal(size=(33, 8)), "w": rng.normal(size=8)}
    base = gc.compile(g, out_dir=tmp_path, memory="naive").value_and_grad(**inputs)
    prog, plan = plans(g)
    budget = plan.arena_bytes(default_sizes(prog, 256)) * 6 // 10  # reachable for 12 steps
    for kwargs in ({}, {"memory": "size"}, {"memory_budget": budget}):
        m = gc.compile(g, out_dir=tmp_path, **kwargs)
        outs, grads = m.value_and_grad(**inputs)
        assert outs["loss"].tobytes() == base[0]["loss"].tobytes()
        assert grads["w"].tobytes() == base[1]["w"].tobytes()
    assert m.stages.checkpointing.fits


def test_plot_memory_draws_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot is an optional extra: graphc[plot]")
    from graphc.passes.plan_report import plot_memory

    prog, plan = plans(chain(10))
    path = tmp_path / "mem.png"
    plot_memory(prog, plan, {"N": 64}, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
