"""pair_independent: which steps may run at once, and that the memory plan keeps them apart."""

import dataclasses

import pytest

from graphc.compiler import run_stages
from graphc.errors import PlanError
from graphc.passes.concurrency import pair_independent, pairs
from graphc.passes.fuse import fuse
from graphc.passes.liveness import liveness
from graphc.passes.memory import Storage, plan_memory
from graphc.passes.schedule import schedule
from graphc.passes.verify_plan import verify_plan
from tests.models import two_towers
from tests.passes.test_memory import MODELS


def paired(model, hint=1000, least=0, program="value_and_grad"):
    """A program of `model`, fused, with every pair the pass finds (`least` 0: any size)."""
    st = run_stages(model)
    prog, _ = st.programs[program]
    base = schedule(prog.graph, list(prog.outputs), st.graph._next_id, order="memory")
    return pair_independent(fuse(base), hint, least)


def test_independent_softmaxes_are_paired_and_get_disjoint_memory():
    prog, plan = run_stages(two_towers()).programs["forward"]
    G = prog.graph.nx
    ((t, u),) = pairs(prog)
    assert [G.nodes[prog.steps[k].node]["op"] for k in (t, u)] == ["softmax", "log_softmax"]
    out_t, out_u = prog.steps[t].node, prog.steps[u].node
    assert plan.storage[out_t] != plan.storage[out_u]
    iv = liveness(prog)
    assert iv[out_t].start == iv[out_u].start == t  # both live from the pair's start
    for v in prog.reads(t):  # what the first reads stays live while the second runs
        assert iv[v].end >= u


def test_small_steps_are_not_paired():
    prog, _ = run_stages(two_towers(width=8)).programs["forward"]
    assert pairs(prog) == []  # 8 columns at the size hint: too little to hand over


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("strategy", ["best", "schedule", "size"])
def test_every_plan_with_pairs_verifies(name, strategy):
    prog = paired(MODELS[name]())
    for t, u in pairs(prog):
        made_between = {n for k in range(t, u) for n in prog.steps[k].nodes}
        assert not made_between & set(prog.reads(u)), "the second step needs the first"
    verify_plan(prog, plan_memory(prog, strategy))


def test_the_pass_finds_pairs_in_the_test_models():
    assert sum(len(pairs(paired(m()))) for m in MODELS.values()) >= 10


def test_verifier_refuses_paired_steps_that_share_memory():
    prog = paired(two_towers())
    plan = plan_memory(prog)
    (t, u), *_ = pairs(prog)
    first, second = prog.steps[t].node, prog.steps[u].node
    storage = dict(plan.storage)
    storage[second] = storage[first]  # as if the second wrote over the first's result
    bad = dataclasses.replace(plan, storage=storage)
    with pytest.raises(PlanError, match="may run at once"):
        verify_plan(prog, bad)
    assert isinstance(storage[first], Storage)


def test_optimiser_updates_are_never_paired():
    import graphc as gc

    st = run_stages(MODELS["mlp"](), optimizer=gc.optim.Adam())
    prog, _ = st.programs["train_step"]
    again = pair_independent(prog, 10**6, least=0)
    assert all(not s.beside for s in again.steps if s.section == "update")
    assert any(s.section == "update" for s in again.steps)
