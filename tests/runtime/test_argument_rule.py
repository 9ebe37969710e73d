"""One rule for what an argument may be, in compiled modules and the interpreter alike
(graphc.runtime.calls.convert): arrays of the input's dtype (any integers for an int input),
Python numbers and lists converted when they hold the kind of number the input takes."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


def model() -> gc.Graph:
    g = gc.Graph("rule")
    x = g.input("x", shape=("N", 3))
    idx = g.input("idx", shape=("N",), dtype="int64")
    mask = g.input("mask", shape=("N", 3), dtype="bool")
    s = g.input("s")
    W = g.param("W", shape=(4, 3))
    g.output("out", gc.sum(gc.take(W, idx) * x) * s + gc.sum(gc.where(mask, x, 0.0)))
    return g


GOOD = {
    "x": np.arange(6.0).reshape(2, 3),
    "idx": np.array([3, 1]),
    "mask": np.array([[True, False, True]] * 2),
    "s": np.array(0.5),
    "W": np.arange(12.0).reshape(4, 3) / 7,
}
TAKEN = {
    "x as a list of ints": ("x", [[0, 1, 2], [3, 4, 5]]),
    "idx as int32": ("idx", np.array([3, 1], np.int32)),
    "idx as uint8": ("idx", np.array([3, 1], np.uint8)),
    "idx as a list": ("idx", [3, 1]),
    "mask as a list of bools": ("mask", [[True, False, True]] * 2),
    "s as a Python float": ("s", 0.5),
    "s as a NumPy float64": ("s", np.float64(0.5)),
}
REFUSED = {
    "x as float32": ("x", GOOD["x"].astype(np.float32)),
    "x as int64": ("x", GOOD["x"].astype(np.int64)),
    "x as a list of bools": ("x", [[True, False, True]] * 2),
    "idx as floats": ("idx", np.array([3.0, 1.0])),
    "idx as a list of floats": ("idx", [3.0, 1.0]),
    "idx as bools": ("idx", np.array([True, False])),
    "mask as ints": ("mask", np.ones((2, 3), np.int64)),
    "s as a NumPy float32": ("s", np.float32(0.5)),
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory):
    return gc.compile(model(), out_dir=tmp_path_factory.mktemp("rule"))


@pytest.mark.compiler
@pytest.mark.parametrize("case", sorted(TAKEN))
def test_what_one_takes_the_other_takes_with_the_same_result(compiled, case: str) -> None:
    name, value = TAKEN[case]
    inputs = dict(GOOD, **{name: value})
    want = gc.evaluate(model(), GOOD)["out"]
    assert gc.evaluate(model(), inputs)["out"] == want
    assert compiled.forward(**inputs)["out"] == want


@pytest.mark.compiler
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_one_refuses_the_other_refuses_for_the_same_reason(compiled, case: str) -> None:
    name, value = REFUSED[case]
    inputs = dict(GOOD, **{name: value})
    with pytest.raises(gc.InputError) as interp:
        gc.evaluate(model(), inputs)
    with pytest.raises(TypeError) as module:
        compiled.forward(**inputs)
    reason = str(module.value).removeprefix(f"forward(): argument {name!r}: ")
    assert reason.startswith("expected ") and reason in str(interp.value)


@pytest.mark.compiler
def test_a_max_over_an_axis_empty_at_this_call_is_refused_as_by_the_interpreter(tmp_path):
    g = gc.Graph("maxes")
    x = g.input("x", shape=("N", 3))
    g.output("m", gc.max(x, axis=0))
    m = gc.compile(g, out_dir=tmp_path)
    empty = {"x": np.zeros((0, 3))}
    with pytest.raises(gc.InputError, match="max"):
        gc.evaluate(g, empty)
    with pytest.raises(gc.InputError, match=r"forward\(\): v1 = max\[axis=\(0,\)\]\(v0\)   \["
                       r".*\]: max over an axis of size 0 has no value"):  # fmt: skip
        m.forward(**empty)
    ok = {"x": np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]])}
    np.testing.assert_array_equal(m.forward(**ok)["m"], gc.evaluate(g, ok)["m"])
