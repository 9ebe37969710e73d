"""The generated module is made of bounded functions: each program runs as parts of at most
PART_STEPS steps, and each loop that may use threads is one range function. So no function
that Cython or the C compiler sees grows with the model."""

import re

import numpy as np

import graphc as gc
from graphc.codegen.lower import PART_STEPS
from graphc.compiler import run_stages


def long_chain(blocks: int) -> gc.Graph:
    g = gc.Graph("long_chain")
    h = g.input("x", shape=("N", 4))
    w = g.param("w", shape=(4,))
    W = g.param("W", shape=(4, 4))
    for i in range(blocks):
        h = gc.tanh(h * w)
        if i % 3 == 2:
            h = gc.matmul(h, W)
    g.output("loss", gc.sum(h))
    return g


def functions(source: str) -> dict[str, list[str]]:
    """Each top-level kernel (`cdef gc_kernel`) and `def` function of the source, with its lines."""
    out, name = {}, None
    for line in source.splitlines():
        m = re.match(r"(?:cdef gc_kernel|def) (\w+)\(", line)
        if m:
            name = m.group(1)
            out[name] = []
        elif line and not line[0].isspace():
            name = None
        elif name:
            out[name].append(line)
    return out


def test_programs_are_cut_into_bounded_parts():
    source = run_stages(long_chain(60)).source
    fns = functions(source)
    parts = [n for n in fns if re.fullmatch(r"_value_and_grad_(forward|backward)(_\d+)?", n)]
    assert len(parts) >= 4  # the chain needs several parts per section
    for name in parts:
        steps = [ln for ln in fns[name] if re.match(r"    # ", ln)]  # one comment per step
        assert 0 < len(steps) <= PART_STEPS, name
    calls = re.findall(r"^        (_value_and_grad_\w+)\(&b\)$", source, re.M)
    assert calls == parts  # every part runs, once, in order
    for name in (n for n in fns if "_loop" in n):
        assert "for " in "\n".join(fns[name]) and f"_parallel({name}, b," in source


def test_a_program_of_many_parts_computes_what_the_interpreter_does(tmp_path):
    g = long_chain(60)
    m = gc.compile(g, out_dir=tmp_path)
    rng = np.random.default_rng(0)
    feed = {
        "x": rng.normal(size=(5, 4)),
        "w": rng.normal(size=4),
        "W": rng.normal(size=(4, 4)) / 2,
    }
    outs, grads = m.value_and_grad(**feed)
    want_outs, want_grads = gc.value_and_grad(g, feed, of="loss")
    np.testing.assert_allclose(outs["loss"], want_outs["loss"], rtol=1e-12)
    for k in ("w", "W"):
        np.testing.assert_allclose(grads[k], want_grads[k], rtol=1e-10, atol=1e-12)
    # and against central differences of the interpreter's loss, for w
    eps = 1e-6
    for j in range(4):
        hi, lo = dict(feed, w=feed["w"].copy()), dict(feed, w=feed["w"].copy())
        hi["w"][j] += eps
        lo["w"][j] -= eps
        fd = (gc.evaluate(g, hi)["loss"] - gc.evaluate(g, lo)["loss"]) / (2 * eps)
        np.testing.assert_allclose(grads["w"][j], fd, rtol=1e-6, atol=1e-8)
