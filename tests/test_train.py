"""Optimisers and the compiled training step.

The NumPy optimiser (`opt.step`) driven by `value_and_grad` is the reference: `train_step`, one
call that computes the gradients and updates params and state in place, must give the same
params and state after several steps. The NumPy rules themselves are checked against the
textbook formulas written out here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GraphError
from graphc.optim import SGD, Adam
from graphc.passes.memory import plan_memory
from graphc.passes.schedule import schedule
from graphc.passes.train import check_in_place, train_graph, updated_name

OPTIMIZERS = [
    Adam(lr=0.01, weight_decay=0.01),
    SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    SGD(lr=0.1),
]


def mlp() -> gc.Graph:
    g = gc.Graph("train_mlp")
    x, y = g.input("x", shape=("N", 5)), g.input("y", shape=("N", 3))
    W1, b1 = g.param("W1", shape=(5, 8)), g.param("b1", shape=(8,))
    W2, b2 = g.param("W2", shape=(8, 3)), g.param("b2", shape=(3,))
    logits = gc.tanh(x @ W1 + b1) @ W2 + b2
    g.output("loss", gc.softmax_cross_entropy(logits, y))
    g.output("logits", logits)
    return g


def data(seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    params = {
        "W1": rng.standard_normal((5, 8)),
        "b1": 0.1 * rng.standard_normal(8),
        "W2": rng.standard_normal((8, 3)),
        "b2": np.zeros(3),
    }
    batch = {"x": rng.standard_normal((7, 5)), "y": np.eye(3)[rng.integers(0, 3, 7)]}
    return params, batch


def copy(d: dict) -> dict:
    return {k: v.copy() for k, v in d.items()}


# ---- the NumPy rules against the textbook formulas ---------------------------------------------
def test_adam_matches_its_formula() -> None:
    rng = np.random.default_rng(1)
    p, grads = {"w": rng.standard_normal(4)}, [rng.standard_normal(4) for _ in range(3)]
    opt = Adam(lr=0.1, beta1=0.8, beta2=0.9, eps=1e-6)
    state = opt.init(p)
    w, m, v = p["w"].copy(), np.zeros(4), np.zeros(4)
    for t, g in enumerate(grads, 1):
        opt.step(p, {"w": g}, state)
        m = 0.8 * m + 0.2 * g
        v = 0.9 * v + 0.1 * g * g
        w = w - 0.1 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.9**t)) + 1e-6)
    np.testing.assert_allclose(p["w"], w, rtol=1e-13)
    np.testing.assert_allclose(state["m_w"], m, rtol=1e-13)
    assert state["step"] == 3.0


def test_sgd_matches_its_formula() -> None:
    rng = np.random.default_rng(2)
    p, grads = {"w": rng.standard_normal(4)}, [rng.standard_normal(4) for _ in range(3)]
    opt = SGD(lr=0.5, momentum=0.5, weight_decay=0.1)
    state = opt.init(p)
    w, b = p["w"].copy(), np.zeros(4)
    for g in grads:
        opt.step(p, {"w": g}, state)
        b = 0.5 * b + (g + 0.1 * w)
        w = w - 0.5 * b
    np.testing.assert_allclose(p["w"], w, rtol=1e-14)
    np.testing.assert_allclose(state["velocity_w"], b, rtol=1e-14)


@pytest.mark.parametrize("bad", [dict(lr=-1.0), dict(momentum=-0.5), dict(lr="0.1")])
def test_bad_sgd_hyperparameters(bad: dict) -> None:
    with pytest.raises(GraphError, match=next(iter(bad))):
        SGD(**bad)


def test_bad_adam_hyperparameters() -> None:
    with pytest.raises(GraphError, match="beta2"):
        Adam(beta2=1.0)


# ---- the training graph, run by the interpreter -------------------------------------------------
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_train_graph_matches_numpy_optimizer(opt) -> None:
    g = mlp()
    joint = gc.grad(g, "loss")
    grads = {gc.grad_name("loss", p): p for p in ("W1", "b1", "W2", "b2")}
    tg = train_graph(joint, grads, opt)
    assert set(tg.graph.outputs) == {"loss", "logits", *tg.in_place}  # no gradients
    params, batch = data()
    state = opt.init(params)
    assert list(state) == tg.state
    ref_p, ref_s = copy(params), copy(state)
    assert tg.hyper == opt.hyperparameters
    for k in range(3):
        lr = opt.lr / (k + 1)  # a schedule: each step's learning rate is an input
        hyper = {**tg.hyper, "lr": lr}
        outs = gc.evaluate(tg.graph, {**batch, **params, **state, **hyper})
        _, dg = gc.value_and_grad(g, {**batch, **ref_p}, of="loss")
        opt.step(ref_p, dg, ref_s, lr=lr)
        for out, name in tg.in_place.items():
            target = params if name in params else state
            target[name] = outs[out]
    for name in ref_p:
        np.testing.assert_allclose(params[name], ref_p[name], rtol=1e-12, atol=1e-15)
    for name in ref_s:
        np.testing.assert_allclose(state[name], ref_s[name], rtol=1e-12, atol=1e-15)


def test_state_names_must_not_clash() -> None:
    g = mlp()
    g.input("m_W1", shape=(5, 8))
    with pytest.raises(GraphError, match="m_W1"):
        train_graph(gc.grad(g, "loss"), {gc.grad_name("loss", "W1"): "W1"}, Adam())


def test_a_program_that_reads_a_param_after_its_update_is_refused() -> None:
    """Had W2's update run before the last step that reads W2 (dx = dy @ W2.T), it would
    read the new W2: the in-place check refuses such a program."""
    g = mlp()
    grads = {gc.grad_name("loss", p): p for p in ("W1", "W2")}
    tg = train_graph(gc.grad(g, "loss"), grads, SGD(lr=0.1))
    G, w2 = tg.graph.nx, tg.graph.input_ids()["W2"]
    prog = schedule(tg.graph, list(tg.graph.outputs), g._next_id, update_from=tg.updates_from)
    update = tuple(s for s in prog.steps if s.section == "update")
    rest = [s for s in prog.steps if s.section != "update"]
    last = max(k for k, s in enumerate(rest) if w2 in G.predecessors(s.node))
    bad = dataclasses.replace(prog, steps=(*rest[:last], *update, *rest[last:]))
    with pytest.raises(GraphError, match="'W2'"):
        check_in_place(bad, plan_memory(bad, "naive"), {updated_name("W2"): "W2"})
    check_in_place(prog, plan_memory(prog, "naive"), {updated_name("W2"): "W2"})


# ---- the compiled training step ----------------------------------------------------------------
@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("train")
    return {repr(o): gc.compile(mlp(), optimizer=o, out_dir=out) for o in OPTIMIZERS}


@pytest.mark.compiler
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_train_step_equals_numpy_optimizer(modules: dict, opt) -> None:
    """Five steps of train_step give the params and state that five NumPy optimiser steps
    driven by value_and_grad give (to 1e-12 in float64), and return the model's outputs
    before each step."""
    cm = modules[repr(opt)]
    params, batch = data()
    ref_p = copy(params)
    state, ref_s = cm.init_state(params), opt.init(ref_p)
    assert set(state) == set(ref_s)
    for _ in range(5):
        before = cm.forward(**batch, **params)
        outs = cm.train_step(**batch, **params, **state)
        assert set(outs) == {"loss", "logits"}
        np.testing.assert_allclose(outs["loss"], before["loss"], rtol=1e-13)
        _, grads = cm.value_and_grad(**batch, **ref_p)
        opt.step(ref_p, grads, ref_s)
    for name in ref_p:
        np.testing.assert_allclose(params[name], ref_p[name], rtol=1e-12, atol=1e-15)
    for name in ref_s:
        np.testing.assert_allclose(state[name], ref_s[name], rtol=1e-12, atol=1e-15)


@pytest.mark.compiler
def test_train_step_updates_in_place_with_no_copies(modules: dict) -> None:
    """The update loops write over the param and state arrays (no gradient array returned,
    no copy back): the generated source takes their pointers from the arguments."""
    cm = modules[repr(OPTIMIZERS[0])]
    src = cm.source[cm.source.index("train_step = _rt.function(") :]
    assert "memcpy" not in src.split("return")[0]
    assert "dloss/d" not in src.split("return")[-1]
    params, batch = data()
    ids = {k: id(v) for k, v in params.items()}
    w1 = params["W1"]
    before = w1.copy()
    cm.train_step(**batch, **params, **cm.init_state(params))
    assert {k: id(v) for k, v in params.items()} == ids
    assert not np.array_equal(w1, before)


@pytest.mark.compiler
def test_train_step_refuses_read_only_and_shared_arrays(modules: dict) -> None:
    cm = modules[repr(OPTIMIZERS[0])]
    params, batch = data()
    state = cm.init_state(params)
    frozen = copy(params)
    frozen["W2"].flags.writeable = False
    with pytest.raises(ValueError, match="'W2' is updated in place"):
        cm.train_step(**batch, **frozen, **state)
    shared = dict(state, v_W1=state["m_W1"])
    with pytest.raises(ValueError, match="share"):
        cm.train_step(**batch, **params, **shared)
    with pytest.raises(ValueError, match="share"):
        cm.train_step(**batch, **dict(params, b1=state["m_b1"]), **state)
    np.testing.assert_array_equal(state["m_W1"], 0.0)  # nothing ran


@pytest.mark.compiler
def test_train_step_in_float32(tmp_path) -> None:
    opt = Adam(lr=0.01)
    cm = gc.compile(mlp(), optimizer=opt, dtype="float32", out_dir=tmp_path)
    params, batch = data()
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    b32 = {k: v.astype(np.float32) for k, v in batch.items()}
    ref = copy(p32)
    state, ref_s = cm.init_state(p32), opt.init(ref)
    assert all(v.dtype == np.float32 for v in state.values())
    for _ in range(3):
        cm.train_step(**b32, **p32, **state)
        _, grads = cm.value_and_grad(**b32, **ref)
        opt.step(ref, grads, ref_s)
    for name in ref:
        np.testing.assert_allclose(p32[name], ref[name], rtol=1e-5, atol=1e-6)


@pytest.mark.compiler
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_hyperparameters_are_arguments_of_each_step(modules: dict, opt, monkeypatch) -> None:
    """A warm-up and decay of the learning rate (and, for Adam, a changed beta1) passed at
    each call equal the NumPy optimiser given the same values; left out, they are the
    optimiser's own. Binding them runs in the module's C, not in graphc's Python."""
    cm = modules[repr(opt)]
    assert cm.HYPERPARAMETERS == opt.hyperparameters
    params, batch = data()
    ref_p = copy(params)
    state, ref_s = cm.init_state(params), opt.init(ref_p)
    from graphc.runtime import calls

    monkeypatch.setattr(calls, "bind", lambda *a: pytest.fail(f"bound in Python: {a[0]}"))
    for k, lr in enumerate([opt.lr / 4, opt.lr / 2, opt.lr, opt.lr * 0.7, None]):
        hyper = {} if lr is None else {"lr": lr}
        if isinstance(opt, Adam) and k == 2:
            hyper["beta1"] = 0.5
        cm.train_step(**batch, **params, **state, **hyper)
        _, grads = cm.value_and_grad(**batch, **ref_p)
        opt.step(ref_p, grads, ref_s, **hyper)
    for name in ref_p:
        np.testing.assert_allclose(params[name], ref_p[name], rtol=1e-12, atol=1e-15)
    # by position: the hyperparameters come last, in the order HYPERPARAMETERS lists them
    positional = [*batch.values(), *params.values(), *state.values()]
    cm.train_step(*positional, *[v / 2 for v in cm.HYPERPARAMETERS.values()][:1])
    opt.step(ref_p, cm.value_and_grad(**batch, **ref_p)[1], ref_s, lr=opt.lr / 2)
    for name in ref_p:
        np.testing.assert_allclose(params[name], ref_p[name], rtol=1e-12, atol=1e-15)


@pytest.mark.compiler
def test_an_unknown_hyperparameter_is_refused(modules: dict) -> None:
    cm = modules[repr(OPTIMIZERS[2])]  # plain SGD: lr only
    params, batch = data()
    with pytest.raises(TypeError, match="unknown argument 'momentum'"):
        cm.train_step(**batch, **params, lr=0.1, momentum=0.9)
    with pytest.raises(gc.InputError, match="takes no hyperparameter 'momentum'"):
        OPTIMIZERS[2].step(params, params, {}, momentum=0.9)
