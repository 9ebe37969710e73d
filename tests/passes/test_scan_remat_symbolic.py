"""Checkpointing loops whose trip count T is a symbol (passes/scan_remat.py): k is fixed at build
time from size_hint (k = ceil(sqrt(hint))), and the checkpoints, whole segments and tail are
sizes a call works out from T (ir/shapes.py: derived symbols). One build runs every T, 0
included, with values and gradients bit for bit those without a budget; the plan's peak grows
like T / k + k beyond the sequence the loss reads."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.pyrender import PyModule
from graphc.compiler import run_stages
from graphc.errors import GraphError
from graphc.ir.shapes import at_hint, dim_value, fits, hinted, split_steps, steps_sum, tail_after
from graphc.ops.scan import results
from graphc.passes.memory import value_bytes
from graphc.passes.plan_report import live_bytes
from graphc.passes.scan_remat import checkpoint_loops
from tests.ops.test_scan import WRT, lstm_inputs, lstm_model
from tests.passes.budget_helpers import plain_and_budgeted, same_steps
from tests.passes.test_scan_remat import _forward_scans, _joint
from tests.passes.test_scan_remat_axes import _lstm, inputs, model

STEPS = [0, 1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 30]  # k = 4: 0, 1, k - 1, k, k + 1, ...


def test_derived_sizes() -> None:
    """T // k, T mod k, ceil(T / k), the whole segments and the tail of a loop run first to
    last (ceil(T / k) - 1, at least 0, and the rest), at every T; the sums and slices that
    put the steps together again."""
    for T in range(40):
        q, r, c, p, e = (dim_value(f"T__{x}5", {"T": T}) for x in "qrcpe")
        assert (q, r, c) == (T // 5, T % 5, -(-T // 5))
        assert 5 * p + e == T and 0 <= p <= max(c - 1, 0) and (e >= 1 or T == 0) and e <= 5
    assert hinted("2*N*T__q16", 256) == 2 * 256 * 16
    assert at_hint({"N", "T__q16", "T__e16"}, 40) == {"N": 40, "T__q16": 2, "T__e16": 8}
    assert split_steps("T", 4, True) == ("T__q4", "T__q4", "T__r4")
    assert split_steps("T", 4, False) == ("T__c4", "T__p4", "T__e4")
    assert split_steps("B*T", 4, False) is None and split_steps("T__q4", 4, False) is None
    assert steps_sum(["4*T__q4", "T__r4"]) == "T" == steps_sum(["4*T__p4", "T__e4"])
    assert steps_sum(["4*T__q4", "T__e4"]) is None and steps_sum([2, 3]) == 5
    assert tail_after("4*T__p4", "T") == "T__e4" and tail_after("3*T__p4", "T") is None
    assert fits("T", "T__p4", 4) and fits("T__c4", "T__p4", 1) and not fits("T", "T__c4", 4)


def test_a_call_cannot_name_a_derived_size() -> None:
    g = gc.Graph("m")
    x = g.input("x", shape=("T__q5", 3))
    g.output("y", gc.sum(x))
    with pytest.raises(GraphError, match="kept for sizes graphc works out"):
        gc.compile(g, functions=["forward"])


@pytest.mark.parametrize("reverse", [False, True])
def test_interpreted_segments_bit_for_bit(reverse: bool) -> None:
    """One graph for every T: T // k checkpoints when the loop runs last to first, else
    ceil(T / k); every output equal to the unsplit graph's bit for bit, time-major or with
    the steps on axis 1."""
    for g, make, wrt in ((lstm_model(False, reverse=reverse, steps="T"), lstm_inputs, WRT),
                         (model(True, reverse, "T"), inputs, [*WRT, "V", "us"])):  # fmt: skip
        joint, backward_from = _joint(g, wrt)
        h, loops = checkpoint_loops(joint, backward_from, size_hint=16)
        assert loops == 1
        (s,) = _forward_scans(h, backward_from)
        p = h.nx._node[s]["params"]
        assert p["every"] == 4
        for j in p["strided"]:
            assert results(h.nx, s)[j][0][0] == ("T__q4" if reverse else "T__c4")
        for T in STEPS:
            inp = make(T)
            a, b = gc.evaluate(joint, inp), gc.evaluate(h, inp)
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"T={T} {key}")


@pytest.mark.compiler
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reverse", [False, True])
def test_compiled_one_build_every_length(tmp_path, reverse: bool, dtype: str) -> None:
    """memory_budget= splits the loop of a symbolic T (size_hint 16: k = 4); one build runs
    T = 0, 1, k - 1, k, k + 1 and more, each giving the values and gradients of the module
    without a budget bit for bit; the Python backend works the sizes out as the runtime does."""
    g = lstm_model(False, reverse=reverse, steps="T")
    kw = {"wrt": WRT, "dtype": dtype, "size_hint": 16}
    plain, budget = plain_and_budgeted(g, tmp_path, **kw)
    py = PyModule(run_stages(g, memory_budget=1, functions=["value_and_grad"], **kw).module)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for T in STEPS:
        inp = {key: v.astype(dtype) for key, v in lstm_inputs(T, seed=3).items()}
        gb = same_steps(plain, budget, f"T={T}", **inp)
        _, gp = py.value_and_grad(**inp)
        for key in gb:
            np.testing.assert_allclose(gp[key], gb[key], rtol=tol, atol=tol, err_msg=f"{T} {key}")


@pytest.mark.compiler
def test_compiled_batch_first_lstm(tmp_path) -> None:
    """gc.nn.lstm over x [N, T, 3], T bound at call time: bit for bit at every T."""
    g = _lstm("T")
    params = gc.nn.init_params(g, seed=0, dtype="float32")
    plain, budget = plain_and_budgeted(g, tmp_path, dtype="float32", size_hint=25)  # k = 5
    for T in (0, 1, 4, 5, 6, 11, 23):
        xs = np.random.default_rng(T).normal(size=(4, T, 3)).astype(np.float32)
        same_steps(plain, budget, f"T={T}", x=xs, **params)


@pytest.mark.compiler
def test_compiled_lstm_whose_loss_reads_only_its_last_state(tmp_path) -> None:
    """examples/lstm_adding.py's model: only the last state leaves the loop, so once it is
    split no value of the program has T in its shape, only T's derived sizes (the planner
    used to look T up among those and fail). Bit for bit at every T."""
    g = gc.Graph("last_state")
    x = g.input("x", shape=("N", "T", 2), dtype="float32")
    y = g.input("y", shape=("N", 1), dtype="float32")
    g.output("loss", gc.mse_loss(gc.nn.dense(gc.nn.lstm(x, 8, "lstm"), 1, "out"), y))
    params = gc.nn.init_params(g, seed=0, dtype="float32")
    plain, budget = plain_and_budgeted(g, tmp_path, dtype="float32", size_hint=16)  # k = 4
    rng = np.random.default_rng(0)
    for T in (0, 1, 3, 4, 5, 9):
        xs = rng.normal(size=(3, T, 2)).astype(np.float32)
        ys = rng.normal(size=(3, 1)).astype(np.float32)
        same_steps(plain, budget, f"T={T}", x=xs, y=ys, **params)


@pytest.mark.parametrize("reverse", [False, True])
def test_budgeted_plan_of_a_symbolic_T_keeps_little(reverse: bool) -> None:
    """gc.nn.lstm over x [64, T, 128] (hidden 128), float32, memory_budget=1 and the default
    hint (k = 16): at every T, the one plan's peak of live bytes is at most the checkpoints
    (2 ceil(T / k) [N, H], or 2 (T // k) run last to first), hs [N, T, H] (the loss reads it),
    the weights' gradients and what does not grow with T: one segment's stacked values (6 k
    [N, H]), a copy of the tail's steps of x and of hs's cotangent, and a few [N, H]. Without
    a budget it holds 6 T [N, H] more."""
    g = _lstm("T", 128, 128, reverse)
    only = ("value_and_grad",)
    st = run_stages(g, dtype="float32", functions=only, memory_budget=1)
    assert st.checkpointing.loops == 1
    prog, plan = st.programs["value_and_grad"]
    prog0, plan0 = run_stages(g, dtype="float32", functions=only).programs["value_and_grad"]
    d, k = 64 * 128 * 4, 16  # d: one [N, H]
    params = g.input_ids("param").values()
    grads = sum(value_bytes(g.nx._node[n]["shape"], "float32", {}) for n in params)
    for T in [*range(0, 40), 200, 1000, 5000]:
        sizes = {"N": 64, "T": T}
        ckpts = 2 * (T // k if reverse else -(-T // k)) * d
        peak = max(live_bytes(prog, plan, sizes))
        assert peak <= ckpts + T * d + grads + 8 * k * d + 4 * d, (T, peak / d)
        if T >= 200:
            assert max(live_bytes(prog0, plan0, sizes)) >= peak + 5 * T * d
