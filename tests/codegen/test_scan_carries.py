"""Where a compiled loop keeps its carries (codegen/scan.py): a new carry the body may write
over the one it reads (the sums of the weights' gradients in a reverse loop: `acc + x`) is
kept in one buffer, the final one, from trip to trip; a carry the body reads after writing the
new one (a carry stacked for the backward pass is copied out last) takes turns in two. The
values are checked against the interpreter by the compiled cases (tests/codegen/cases_scan.py)
and tests/test_recurrent.py."""

from __future__ import annotations

import graphc as gc
from graphc.codegen.kir import Repeat
from graphc.codegen.lower import Context, _steps
from graphc.codegen.scan import Extra
from graphc.compiler import run_stages


def _loops(layer: str) -> list[Repeat]:
    g = gc.Graph("m")
    x = g.input("x", shape=("N", "T", 3))
    hs = getattr(gc.nn, layer)(x, 4, "r", return_sequences=True)
    g.output("loss", gc.mean(hs * hs))
    st = run_stages(g, functions=("value_and_grad",))
    prog, plan = st.programs["value_and_grad"]
    steps = _steps(Context(prog.graph), prog, plan, {}, Extra())
    return [s for s in steps if isinstance(s, Repeat)]


def _carries(loop: Repeat) -> list[tuple]:
    return [b.refs for b in loop.binds if b.kind == "carry_in"]


def test_the_sums_of_the_weights_gradients_stay_in_one_buffer() -> None:
    forward, backward = _loops("lstm")
    assert not forward.reverse and backward.reverse
    # h and c are stacked for the backward pass: copied out after the new ones are written
    assert all(ping != pong for _, ping, pong in _carries(forward))
    # cotangents of h and c, then the sums for w_ih, w_hh and b: each of the sums in place
    refs = _carries(backward)
    assert len(refs) == 5
    assert all(ping == pong for _, ping, pong in refs[2:])
    finals = {b.refs[0] for b in backward.binds if b.kind == "carry_out"}
    assert all(ping in finals for _, ping, _ in refs[2:])


def test_every_layer_adds_its_weights_gradients_in_place() -> None:
    for layer in ("rnn", "gru"):
        _, backward = _loops(layer)
        assert sum(ping == pong for _, ping, pong in _carries(backward)) >= 3, layer
