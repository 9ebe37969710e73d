"""The source map: which lines of the generated source belong to which node and which kernel,
from the conventions of its programs' comments alone; checked on a hand-written source and,
on real modules, against the graph, the programs graphc's passes made, and the module records
(codegen/records.py) the source was rendered from."""

from __future__ import annotations

import re

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.cython import kernel_source
from graphc.compiler import run_stages
from graphc.ir.dag import operands
from graphc.passes.fuse import loop_op
from graphc.viz.sourcemap import aligned, source_map, value_names
from tests.models import mlp, seed_net

SOURCE = '''\
_CONSTS = (
    np.array([1.0, 2.0], dtype=np.float64).reshape((2,)),  # v5 [m.py:2]
)


cdef gc_kernel _k0_1(const gc_args* x, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:  # _k0's loop
    cdef const double* b0 = <const double*>x.v[x.a[0]]
    for i0 in range(lo, hi):
        b1[i0] = tanh(b0[i0] + 1.0)

cdef gc_kernel _k0(const gc_args* x) noexcept nogil:
    """2 ops (add, tanh) over [N], its outer loop shared among threads"""
    rt.parallel(_k0_1, x, z0, 1, z0)


cdef gc_kernel _k1(const gc_args* x) noexcept nogil:
    """b0 = b1, element by element"""
    b0[0] = b1[0]


# the kernels the programs' steps name by number: the module's own, then the runtime's
cdef gc_kernel_fn gc_kernels[4]
gc_kernels[:2] = [_k0, _k1]
rt.link(gc_kernels, 2, ('gemm_d', 'softmax_d'))


# ---- forward ---------------------------------------------------------------------------------
cdef extern from *:
    """
    static const int32_t gc_forward_program[] = {14,
        /* v2 = add(v0, 1.0)   [m.py:3]
           v3 = tanh(v2)   [m.py:4] */
        0, 2, 0, 0, 0, 1,
        /* v4 = matmul[transpose_b=True](v3, v1)   [m.py:5] */
        2, 3, -1, GC_ALONE, 1, 2, 3,
    };
    """

# ---- value_and_grad --------------------------------------------------------------------------
cdef extern from *:
    """
    static const int32_t gc_value_and_grad_program[] = {40,
        /* v2 = add(v0, 1.0)   [m.py:3]
           v3 = tanh(v2)   [m.py:4] */
        0, 2, 0, 0, 0, 1,
        /* v4 = softmax(v3)   [m.py:5]
           adj: g4 = mul(g5, v77)   [m.py:6] */
        3, 2, -1, GC_ALONE | GC_BESIDE, 1, 2,
        1, 2, 0, 0, 3, 4, 2, 3, -1, GC_ALONE,
        1, 2, 3,
        /* adj: v9 = sub(1.0, v3)   [m.py:4]
           adj: g3 = mul(v9, g4)   [m.py:4]
           adj: v77 = exp(v4)   [m.py:9] */
        0, 2, 0, 0, 5, 6,
    };
    """
'''
NAMES = {"v0": 0, "v1": 1, "v2": 2, "v3": 3, "v4": 4, "v5": 5, "g5": 8, "g4": 7, "g3": 10,
         "v9": 9}  # fmt: skip


def at(text: str, after: str = "") -> int:
    """The (1-based) number of the line of SOURCE holding `text` (the first after the line
    holding `after`)."""
    lines = SOURCE.splitlines()
    start = next(k for k, line in enumerate(lines, start=1) if after in line) if after else 0
    return next(k for k, line in enumerate(lines, start=1) if k > start and text in line)


def span(first: str, last: str) -> list[int]:
    return list(range(at(first), at(last, first) + 1))


def test_hand_written_source():
    sm = source_map(SOURCE, NAMES)
    # kernels: the module's own with their range functions, then the runtime's by rt.link
    assert sorted(sm.kernels) == [0, 1, 2, 3]
    k0 = sm.kernels[0]
    assert (k0.name, k0.runtime, k0.doc[:7]) == ("_k0", False, "2 ops (")
    assert k0.lines == span("cdef gc_kernel _k0_1(", "b1[i0] = tanh") + span(
        "cdef gc_kernel _k0(", "rt.parallel(_k0_1"
    )  # the blank lines between its functions and after it are not its
    assert sm.kernels[1].lines == span("cdef gc_kernel _k1(", "b0[0] = b1[0]")
    assert [(sm.kernels[k].name, sm.kernels[k].runtime, sm.kernels[k].lines) for k in (2, 3)] == [
        ("gemm_d", True, []),
        ("softmax_d", True, []),
    ]
    assert sm.kernel_at[at("for i0 in range")] == 0 and at("rt.link(") not in sm.kernel_at
    # steps: one per comment, its statements and the rows after it (here a step of 3 rows)
    fwd, vg = sm.program("forward"), sm.program("value_and_grad")
    assert [(s.index, s.computed, s.kernels) for s in fwd] == [(0, [2, 3], [0]), (1, [4], [2])]
    assert [(s.computed, s.kernels) for s in vg] == [([2, 3], [0]), ([4, 7], [3, 1, 2]),
                                                     ([9, 10], [0])]  # fmt: skip
    step = vg[1]
    assert step.names == ["v4", "g4"] and step.adj == [False, True]
    assert step.statements == [at("v4 = softmax"), at("adj: g4 = mul")]
    assert step.rows == [at("3, 2, -1, GC_ALONE | GC_BESIDE"), at("1, 2, 0, 0, 3, 4"),
                         at("1, 2, 3,", "1, 2, 0, 0, 3, 4")]  # fmt: skip
    # a node: its statement in each program and the rows under it; a constant: its line
    first = at("/* v2 = add", "gc_value_and_grad_program")
    assert sm.nodes[2] == [at("/* v2 = add"), at("0, 2, 0, 0, 0, 1"), first,
                           at("0, 2, 0, 0, 0, 1", "gc_value_and_grad_program")]  # fmt: skip
    assert sm.nodes[5] == [at("# v5 [m.py:2]")]
    assert sm.lines[at("0, 2, 0, 0, 0, 1")] == [2, 3]
    assert sm.backward == {at("adj: g4 = mul"), at("adj: v9 = sub"), at("adj: g3 = mul"),
                           at("adj: v77 = exp"), at("0, 2, 0, 0, 5, 6")}  # fmt: skip
    assert at("/* v4 = softmax") in sm.comments and at("m.py:5] */") in sm.comments
    # shared kernels: _k0 runs in three steps; its nodes are theirs
    assert [(s.function, s.index) for s in sm.callers(0)] == [
        ("forward", 0),
        ("value_and_grad", 0),
        ("value_and_grad", 2),
    ]
    assert sm.kernel_nodes(0) == [2, 3, 9, 10] and sm.kernels_of(3) == [0]
    assert sm.kernels_of(4) == [1, 2, 3]  # in forward by gemm_d, in value_and_grad by three
    assert sm.unknown == {"v77"}  # named in a comment, but no node has that name
    assert vg[2].names == ["v9", "g3", "v77"] and vg[2].nodes == [9, 10, None]


def test_value_names_follow_the_generated_sources_rule():
    g = gc.Graph("names")
    x = g.param("x", shape=(2,))
    y = gc.tanh(x)
    g.output("loss", gc.sum(y * y))
    dg = gc.grad(g, of="loss")
    names = value_names(dg.nx)
    for n, a in dg.nx.nodes(data=True):
        k = a.get("grad_of")
        firsts = [m for m, b in dg.nx.nodes(data=True) if b.get("grad_of") == k]
        want = f"g{k}" if k is not None and n == min(firsts) else f"v{n}"
        assert names[want] == n
    assert len(names) == len(dg)


def has_row(G, step, plan) -> bool:
    """Whether a scheduled step has a row in the program: all but a reshape sharing its
    operand's bytes (codegen/lower.py)."""
    return bool(step.fused) or loop_op(G, step.node) or plan.storage[step.node].kind != "alias"


def row_kernels(st, fn: str) -> dict[int, list[str]]:
    """Step number in the schedule of `fn` -> the names of the kernels its rows call, from the
    module records: a step that runs is its row with a comment and the rows after it without
    one; `_k<n>` for the module's own kernels, the runtime's name for the rest."""
    prog, plan = st.programs[fn]
    G = max((p.graph for p, _ in st.programs.values()), key=len).nx
    called: list[list[int]] = []
    for row in next(f for f in st.module.functions if f.name == fn).program:
        if row.comment:
            called.append([])
        called[-1].append(row.cells[0])
    own = len(st.module.kernels)
    runs = [k for k, s in enumerate(prog.steps) if has_row(G, s, plan)]
    assert len(runs) == len(called)
    return {
        k: [f"_k{x}" if x < own else st.module.runtime[x - own] for x in ks]
        for k, ks in zip(runs, called, strict=True)
    }


def check_real(st) -> None:
    """The map of `st.source` against the graph, the programs and the module records."""
    big = max((p.graph for p, _ in st.programs.values()), key=len)
    G = big.nx
    names = value_names(G)
    name_of = {n: k for k, n in names.items()}
    sm = source_map(st.source, names)
    assert not sm.unknown
    lines = st.source.splitlines()
    records = {f.name: f for f in st.module.functions}
    own = len(st.module.kernels)
    number = {}
    for fn, (prog, plan) in st.programs.items():
        steps = [s for s in prog.steps if has_row(G, s, plan)]
        rows = aligned(prog, sm.program(fn))
        # every step that runs has its row, in order, its statements its nodes
        assert [s.computed for s in sm.program(fn)] == [list(s.nodes) for s in steps]
        assert len(rows) == len(steps)
        number.update({id(r): (fn, k) for k, r in rows.items()})
        # the kernels each row calls, as the records have them: a step is its row with a
        # comment and the rows after it without one
        called: list[list[int]] = []
        for row in records[fn].program:
            if row.comment:
                called.append([])
            called[-1].append(row.cells[0])
        assert [s.kernels for s in sm.program(fn)] == called
        for k, r in rows.items():
            s = prog.steps[k]
            for n, line, adj, section in zip(
                r.nodes, r.statements, r.adj, s.sections_of_nodes(), strict=True
            ):
                a = G.nodes[n]
                text = lines[line - 1]
                assert f"{name_of[n]} = {a['op']}" in text and f"[{a.get('loc') or '?'}]" in text
                args = [name_of[u] for u in operands(G, n) if G.nodes[u]["op"] != "const"]
                assert all(re.search(rf"\b{u}\b", text) for u in args)
                assert adj == (section == "backward") == (line in sm.backward)
                assert line in sm.nodes[n]
            for line in r.rows:  # a row's cells: the kernel, its operands' count, ...
                assert sm.lines[line] == list(s.nodes)
    # each node's lines: its statements and their rows, nothing else
    for n, got in sm.nodes.items():
        want = [x for s in sm.steps_of(n) for x in (s.statements[s.nodes.index(n)], *s.rows)]
        if G.nodes[n]["op"] == "const":
            want += [i for i in got if f"# {name_of[n]} [" in lines[i - 1]]
        assert got == sorted(want), name_of[n]
    # the kernels: the module's own are their rendered functions; the rest the runtime's
    for k, kern in sm.kernels.items():
        if k < own:
            text = kernel_source(k, st.module.kernels[k])
            want = [t.rstrip() for t in text.splitlines() if t.strip()]
            assert [lines[i - 1] for i in kern.lines] == want
            assert kern.doc == st.module.kernels[k].doc and not kern.runtime
        else:
            assert kern.runtime and kern.name == st.module.runtime[k - own] and not kern.lines
        # a kernel's nodes: those of every scheduled step whose row calls it
        want = []
        for fn, (prog, _) in st.programs.items():
            for j, r in aligned(prog, sm.program(fn)).items():
                if k in r.kernels:
                    want += list(prog.steps[j].nodes)
        assert sm.kernel_nodes(k) == list(dict.fromkeys(want))
    assert set(sm.kernels) == set(range(own + len(st.module.runtime)))


@pytest.mark.parametrize("model", ["seed", "mlp", "train", "checkpointed", "const"])
def test_real_generated_source(model):
    from tests.viz.test_groups import chain

    if model == "seed":
        st = run_stages(seed_net())
    elif model == "mlp":
        st = run_stages(mlp(np.random.default_rng(0))[0])
    elif model == "train":
        st = run_stages(mlp(np.random.default_rng(0))[0], optimizer=gc.optim.Adam(lr=0.01))
    elif model == "checkpointed":  # forward steps computed again in the backward pass
        st = run_stages(chain(20), memory_budget=1, size_hint=4096)
        assert st.checkpointing is not None and st.checkpointing.recomputed_steps > 0
    else:  # an array constant: a line of _CONSTS
        g = gc.Graph("c")
        x = g.param("x", shape=(3,))
        g.output("loss", gc.sum(gc.tanh(x * np.array([1.0, 2.0, 3.0]))))
        st = run_stages(g)
    check_real(st)


def test_kernels_are_shared_by_the_steps_computing_the_same_loop():
    from tests.viz.test_groups import chain

    st = run_stages(chain(20), functions=("value_and_grad",))
    sm = source_map(st.source, value_names(st.programs["value_and_grad"][0].graph.nx))
    shared = {k: sm.callers(k) for k in sm.kernels if len(sm.callers(k)) > 1}
    assert shared  # the chain's layers are alike: their loops are one kernel
    G = st.programs["value_and_grad"][0].graph.nx
    for k, steps in shared.items():  # the same ops, in the same order
        assert len({tuple(G.nodes[n]["op"] for n in s.computed) for s in steps}) == 1, k


@pytest.mark.compiler
def test_a_compiled_modules_source(tmp_path):
    m = gc.compile(seed_net(), out_dir=tmp_path)
    check_real(m.stages)
    assert m.source == (m.path / "seed_net.pyx").read_text()
