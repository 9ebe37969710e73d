"""`lower` (codegen/lower.py): kernels that are the same are one kernel, however many steps run
them, and lowering each distinct step once gives the records lowering every step gives."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import graphc as gc
import graphc.compiler
from graphc.codegen.lower import lower
from graphc.codegen.pyrender import PyModule
from graphc.compiler import run_stages
from graphc.passes.fuse import MAX_OPS
from tests.codegen.test_compiled_ops import VALUE_KEYS, model
from tests.models import mlp, seed_net


def chain(steps: int, own_params: bool = False) -> gc.Graph:
    """`steps` blocks h = tanh(h * w) and loss = sum(h): one w (4,) with a matmul by W after
    every fourth block, or a scalar param w_i per block and nothing else."""
    g = gc.Graph(f"chain{steps}")
    h = g.input("x", shape=("N", 4))
    if own_params:
        for i in range(steps):
            h = gc.tanh(h * g.param(f"w{i}", shape=()))
    else:
        w, W = g.param("w", shape=(4,)), g.param("W", shape=(4, 4))
        for i in range(steps):
            h = gc.tanh(h * w)
            h = gc.matmul(h, W) if i % 4 == 3 else h
    g.output("loss", gc.sum(h))
    return g


def _without_sharing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graphc.compiler, "lower", functools.partial(lower, share=False))


MODELS = {
    "seed": lambda: (seed_net(), {}),
    "mlp_adam": lambda: (mlp(np.random.default_rng(0))[0], {"optimizer": gc.optim.Adam()}),
    "chain": lambda: (chain(24), {}),
    "own_params": lambda: (chain(3 * MAX_OPS, own_params=True), {"dtype": "float32"}),
    **{
        f"{n}_{d}": (lambda n=n, d=d: (model(n, d).graph_in(d), {"dtype": d}))
        for n, d in VALUE_KEYS
    },
}


@pytest.mark.parametrize("name", MODELS)
def test_lowering_each_distinct_step_once_gives_the_same_records(name, monkeypatch) -> None:
    g, kw = MODELS[name]()
    shared = run_stages(g, **kw).module
    _without_sharing(monkeypatch)
    assert run_stages(g, **kw).module == shared


def test_a_longer_chain_has_the_same_kernels() -> None:
    """The C grows with the distinct kernels: ten times the blocks, not one kernel more."""
    short, long = run_stages(chain(40)).module, run_stages(chain(400)).module
    assert long.kernels == short.kernels
    assert len(long.functions[1].program) > 9 * len(short.functions[1].program)


def test_a_long_elementwise_run_is_cut_into_loops_of_the_same_kernel() -> None:
    steps = 5 * MAX_OPS
    module = run_stages(chain(steps, own_params=True)).module
    fused_ops = [len(r.comment) for f in module.functions for r in f.program]
    assert max(fused_ops) <= MAX_OPS
    assert len(module.kernels) <= 12  # first, middle, last loops of each function
    program = module.functions[0].program  # forward: x -> 2 * steps ops -> sum
    assert len(program) == -(-(2 * steps + 1) // MAX_OPS)
    assert len({row.cells[0] for row in program[1:-1]}) == 1  # the middle loops: one kernel


def test_a_cut_loop_computes_what_the_interpreter_does() -> None:
    g = chain(MAX_OPS + 5, own_params=True)
    rng = np.random.default_rng(5)
    inputs = {"x": rng.normal(size=(3, 4)) * 0.5}
    inputs |= {k: np.array(rng.normal() * 0.9 + 0.1) for k in g.input_ids("param")}
    outs, grads = PyModule(run_stages(g).module).value_and_grad(**inputs)
    want_outs, want_grads = gc.value_and_grad(g, inputs, of="loss")
    np.testing.assert_allclose(outs["loss"], want_outs["loss"], rtol=1e-12)
    for k in want_grads:
        np.testing.assert_allclose(grads[k], want_grads[k], rtol=1e-10, atol=1e-14, err_msg=k)


@pytest.mark.compiler
def test_a_module_of_many_arguments_reads_its_long_literals_at_import(tmp_path) -> None:
    """Their specs go to one base64 string (codegen/literals.py Data) read at import."""
    g = chain(400, own_params=True)
    m = gc.compile(g, out_dir=tmp_path)
    assert "_D = loads(b64decode(gc_data))" in m.source
    assert m.INPUTS == tuple(g.input_ids()) and m.SHAPES["w399"] == () and m.WRT[-1] == "w399"
    rng = np.random.default_rng(2)
    inputs = {"x": rng.normal(size=(2, 4))} | {f"w{i}": np.array(0.9) for i in range(400)}
    outs, grads = m.value_and_grad(**inputs)
    want_outs, want_grads = gc.value_and_grad(g, inputs, of="loss")
    np.testing.assert_allclose(outs["loss"], want_outs["loss"], rtol=1e-12)
    np.testing.assert_allclose(grads["w123"], want_grads["w123"], rtol=1e-10)
    with pytest.raises(
        ValueError, match=r"argument 'w7': expected 0 dimensions \(\), got shape \(1,\)"
    ):
        m.forward(**(inputs | {"w7": np.ones(1)}))


@pytest.mark.compiler
def test_a_large_constant_is_read_at_import_not_built_by_code(tmp_path) -> None:
    """Its elements go to the data string too: as a list literal in the source, gcc took
    seconds over the code Cython writes to build it (a GPT's causal mask)."""
    mask = np.triu(np.full((64, 64), -1e30), 1) + np.arange(64) / 7  # not one value repeated
    g = gc.Graph("masked")
    x = g.input("x", shape=("N", 64, 64))
    g.output("loss", gc.sum(gc.softmax(x + g.const(mask), axis=-1) ** 2))
    m = gc.compile(g, wrt=["x"], out_dir=tmp_path)
    assert "np.array(_D[" in m.source and "-1e+30, -1e+30" not in m.source
    inputs = {"x": np.random.default_rng(4).normal(size=(2, 64, 64))}
    outs, grads = m.value_and_grad(**inputs)
    want_outs, want_grads = gc.value_and_grad(g, inputs, of="loss", wrt=["x"])
    np.testing.assert_allclose(outs["loss"], want_outs["loss"], rtol=1e-12)
    np.testing.assert_allclose(grads["x"], want_grads["x"], rtol=1e-10, atol=1e-15)


def test_called_names_every_function_a_kernel_calls() -> None:
    from graphc.codegen import kir

    i = kir.Var("i", kir.INDEX)
    x = kir.Load(kir.Buf(0), i)
    y = kir.select(x > 0, kir.exp(x), -kir.call("erf", x))
    t = kir.Cast("float32", kir.tanh(kir.log(x)))
    body = (
        kir.Loop(i, kir.Lit(0), kir.Size(0), (kir.Assign(kir.Store(kir.Buf(1), i), y),)),
        kir.If(x < 0, (kir.Assign(kir.Var("t", "float32"), t),)),
    )
    assert kir.called(body) == {"exp", "erf", "tanh", "log"}
    assert kir.called(x + 1.0) == set()


def test_and_and_or_are_rendered_without_jumps() -> None:
    """Cython's short-circuit `and`/`or` compile to jumps that keep gcc from vectorising a
    loop (clip was 8x slower): the loops of clip and of a max over an axis combine their
    comparisons bitwise, and still compute what the interpreter does (test_compiled_ops)."""
    g = gc.Graph("logical")
    x = g.input("x", shape=("N", 4))
    g.output("loss", gc.sum(gc.clip(x, -0.5, 0.5)) + gc.sum(gc.max(x, axis=1)))
    source = run_stages(g, wrt="x").source
    loops = [line for line in source.splitlines() if line.startswith("        t")]
    assert any(" | " in line for line in loops)
    assert not any(" or " in line or " and " in line for line in loops)


def _lane_loops(stmts) -> list:
    """The loops of `stmts` (at any depth) whose bodies are loops of a constant trip count
    only: loops over lanes."""
    from graphc.codegen import kir

    found = []
    for s in kir.walk(tuple(stmts)):
        if (
            isinstance(s, kir.Loop)
            and s.body
            and all(
                isinstance(b, kir.Loop) and isinstance(b.stop, kir.Lit) and b.start == kir.Lit(0)
                for b in s.body
            )
        ):
            found.append(s)
    return found


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_max_and_min_along_rows_run_in_vector_lanes(dtype) -> None:
    """A max or min over the last axes is not one chain of selects through the row (each
    element's waiting for the one before: gcc vectorised nothing, and the loop ran 8x slower
    than PyTorch's) but independent lanes, each a loop of a constant number of elements
    kept in an array of the kernel, and the select in it a plain comparison, which the C
    compiler turns into one max or min instruction; NaN is a flag of its own beside it."""
    from graphc.codegen import kir

    g = gc.Graph("extremes")
    x = g.input("x", shape=("N", 100))
    g.output("hi", gc.max(x, axis=1))
    g.output("lo", gc.min(gc.reshape(x, ("N", 4, 25)), axis=(1, 2)))
    kernels = [k for k in run_stages(g, dtype=dtype).module.kernels
               if "max(" in k.doc or "min(" in k.doc]  # fmt: skip
    assert len(kernels) == 2
    for k in kernels:
        (hot,) = [loop for loop in _lane_loops(k.body) if loop.step is not None]
        for lanes in hot.body:
            width = lanes.stop.value
            assert width * np.dtype(dtype).itemsize == 32, "one AVX2 vector per array"
            targets = [s.target for s in lanes.body if isinstance(s.target, kir.Store)]
            assert targets and all(isinstance(t.ref, kir.Scratch) for t in targets)
            selects = [e for e in kir.walk(lanes.body) if isinstance(e, kir.Select)]
            assert len(selects) == 1 and selects[0].cond.op in ("<", ">")
