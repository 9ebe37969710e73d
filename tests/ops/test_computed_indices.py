"""Indices the model computes (int arithmetic, casts, argmax, sort order ...) cannot be checked
when a call begins: the kernels that read them check each one, and a call that meets one out of
range raises an InputError naming the step, in the native module and the Python renderer
alike, where the interpreter names the node. Nothing is read outside an array first."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.pyrender import PyModule
from graphc.compiler import run_stages


def _model() -> gc.Graph:
    g = gc.Graph("computed_idx")
    table = g.param("table", shape=(5, 3))
    t = g.input("t", shape=("N",), dtype="int64")
    x = g.input("x", shape=("N", 4))
    rows = gc.take(table, t * 2 - 1)  # t in 0..2 reads rows -1, 1, 3
    labels = gc.one_hot(t + 1, 4)  # t in -1..2
    g.output("loss", gc.sum(rows) + gc.sum(labels * x))
    return g


GOOD = {"table": np.arange(15.0).reshape(5, 3), "t": np.array([0, 1, 2]), "x": np.ones((3, 4))}


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    g = _model()
    native = gc.compile(g, out_dir=tmp_path_factory.mktemp("computed"))
    return g, native, PyModule(run_stages(g).module)


@pytest.mark.compiler
def test_indices_in_range_run(modules) -> None:
    g, native, py = modules
    want_outs, want_grads = gc.value_and_grad(g, GOOD, of="loss")
    for m in (native, py):
        outs, grads = m.value_and_grad(**GOOD)
        np.testing.assert_allclose(outs["loss"], want_outs["loss"])
        np.testing.assert_allclose(grads["table"], want_grads["table"])


@pytest.mark.compiler
@pytest.mark.parametrize(
    "t, index, size, op",
    [([0, 3, 1], 4, 4, "one_hot"), ([-2, 0, 0], -1, 4, "one_hot"), ([0, 1, 5], 6, 4, "one_hot")],
)
def test_an_index_out_of_range_stops_the_call(modules, t, index, size, op) -> None:
    g, native, py = modules
    bad = dict(GOOD, t=np.array(t))
    pattern = rf"value_and_grad\(\): v\d+ = {op}.*: index {index} is out of bounds for an axis "
    pattern += rf"of size {size}$"
    for m in (native, py):
        with pytest.raises(gc.InputError, match=pattern):
            m.value_and_grad(**bad)
    with pytest.raises(gc.InputError, match="cannot run on these inputs: index"):
        gc.value_and_grad(g, bad, of="loss")
    np.testing.assert_allclose(native.value_and_grad(**GOOD)[0]["loss"], 84.0)  # still usable


@pytest.mark.compiler
def test_a_computed_take_index_out_of_range(tmp_path) -> None:
    g = gc.Graph("computed_take")
    table = g.param("table", shape=(5, 3))
    t = g.input("t", shape=("N",), dtype="int32")
    g.output("loss", gc.sum(gc.take(table, t * 3)))
    m = gc.compile(g, out_dir=tmp_path)
    got = m.forward(table=GOOD["table"], t=np.array([1, -1], np.int32))["loss"]
    np.testing.assert_allclose(got, 9 + 10 + 11 + 6 + 7 + 8)  # rows 3 and -3 (that is 2)
    with pytest.raises(gc.InputError, match=r"v\d+ = take.*: index 6 is out of bounds .* size 5"):
        m.forward(table=GOOD["table"], t=np.array([1, 2], np.int32))
