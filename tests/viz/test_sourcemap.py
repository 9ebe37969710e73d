"""The source map: which lines of the generated source belong to which node, from the comment
conventions alone (`# v12 = tanh(v11)   [model.py:14]`, `adj:`, `fused loop: ... stored`)."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.compiler import run_stages
from graphc.viz.sourcemap import source_map, value_names
from tests.models import mlp, seed_net

SOURCE = '''\
cdef void _f_loop1(const void* p, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """fused loop: 2 ops, v3 stored: the iterations lo to hi of its outer loop"""
    for i in range(lo, hi):
        v2_ = (x[i] + 1.0)  # v2 = add(v0, 1.0)   [m.py:3]
        v3_ = tanh(v2_)  # v3 = tanh(v2)   [m.py:4]
        v3[i] = v3_


cdef void _f_forward(const _b* b) noexcept nogil:
    # v4 = matmul[transpose_b=True](v3, v1)   [m.py:5]
    _gemm_d(0, 1, n, 2, 3, v3, v1, v4)
    _gemm_more(v4)
    # fused loop: 2 ops, v3 stored
    _parallel(_f_loop1, b, n)
    # adj: g4 = mul(g5, v4)   [m.py:6]
    g4[0] = g5[0] * v4[0]

    # adj: fused loop: 2 ops, v9, g3 stored
    for i in range(n):
        v9_ = (1.0 - v3[i])  # v9 = sub(1.0, v3)   [m.py:4]
        g3[i] = v9_ * g4[0]  # g3 = mul(v9, g4)   [m.py:4]
        v9[i] = v9_
    return
    # v77 = exp(v4)   [m.py:9]
'''
NAMES = {"v0": 0, "v1": 1, "v2": 2, "v3": 3, "v4": 4, "g5": 8, "g4": 7, "g3": 10, "v9": 9}


def at(text: str) -> int:
    """The (1-based) number of the line of SOURCE holding `text`."""
    (i,) = [k for k, line in enumerate(SOURCE.splitlines(), start=1) if text in line]
    return i


def test_hand_written_source():
    sm = source_map(SOURCE, NAMES)
    assert sm.nodes[2] == [at("v2_ = ")]
    loop_doc, loop_call = at('"""fused loop'), at("_parallel(")
    header = at("# fused loop: 2 ops, v3 stored")
    assert sm.nodes[3] == [loop_doc, at("v3_ = tanh"), header, loop_call]
    # a comment alone on its line covers the lines after it, to a blank line or a comment
    assert sm.nodes[4] == [at("# v4 = matmul"), at("_gemm_d("), at("_gemm_more(")]
    assert sm.nodes[7] == [at("# adj: g4"), at("g4[0] = g5[0]")]
    fused = [at("# adj: fused loop"), at("for i in range(n)")]
    assert sm.nodes[9] == [*fused, at("v9_ = (1.0"), at("v9[i] = v9_"), at("return")]
    assert sm.nodes[10] == [*fused, at("g3[i] = "), at("v9[i] = v9_"), at("return")]
    assert sm.lines[at("v9[i] = v9_")] == [9, 10]
    assert sm.backward == {at("# adj: g4"), at("g4[0] = g5[0]"), *fused, at("v9_ = (1.0"),
                           at("g3[i] = "), at("v9[i] = v9_"), at("return")}  # fmt: skip
    assert at("v3[i] = v3_") not in sm.lines  # after trailing comments, not a block: no node
    assert sm.unknown == {"v77"}  # named in a comment, but no node has that name


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


def check_real(source: str, G, programs) -> None:
    """Every computed node has lines, each line's node is named on it or on the comment that
    heads its block, and `adj:` lines are the backward ones."""
    names = value_names(G)
    name_of = {n: k for k, n in names.items()}
    sm = source_map(source, names)
    assert not sm.unknown
    lines = source.splitlines()
    for prog, plan in programs:
        for s in prog.steps:
            for n in s.nodes:
                if plan.storage[n].kind == "alias":
                    continue  # a reshape sharing its operand's bytes: nothing to run
                got = sm.nodes.get(n, [])
                assert got, f"no line for {name_of[n]} ({G.nodes[n]['op']})"
                said = [lines[i - 1] for i in got]
                op = G.nodes[n]["op"]
                assert any(f"{name_of[n]} = {op}" in t or "fused loop" in t for t in said)
    for i, text in enumerate(lines, start=1):
        if "# adj:" in text:
            assert i in sm.backward
        if i in sm.backward:
            k = i
            while "adj:" not in lines[k - 1]:  # its block's head says adj:
                k -= 1
                assert k > 0 and lines[k - 1].strip(), f"line {i} is not in an adj: block"


@pytest.mark.parametrize("model", ["seed", "mlp"])
def test_real_generated_source(model):
    g = seed_net() if model == "seed" else mlp(np.random.default_rng(0))[0]
    st = run_stages(g)
    big = max((p.graph for p, _ in st.programs.values()), key=len)
    check_real(st.source, big.nx, list(st.programs.values()))


@pytest.mark.compiler
def test_a_compiled_modules_source(tmp_path):
    m = gc.compile(seed_net(), out_dir=tmp_path)
    progs = list(m.stages.programs.values())
    big = max((p.graph for p, _ in progs), key=len)
    check_real(m.source, big.nx, progs)
    assert m.source == (m.path / "seed_net.pyx").read_text()
