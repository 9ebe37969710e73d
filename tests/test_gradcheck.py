"""The one comparison rule (graphc.gradcheck.compare) and the checks built on it: `graphc
check`, `graphc compile --check`."""

from __future__ import annotations

import types

import numpy as np
import pytest

import graphc as gc
from graphc.cli import check_compiled, random_inputs
from graphc.errors import ShapeError
from graphc.gradcheck import TOLERANCE, Tolerance, check_grad, compare
from tests.models import mlp, seed_net

TOL = Tolerance(rtol=1e-6, atol=1e-9)


def test_an_entry_whose_true_value_is_zero_is_judged_by_the_array_scale() -> None:
    want = np.array([2.0, 0.0, -1.0])
    got = want + np.array([1e-7, 1e-7, 0.0])  # 1e-7 off the exact zero: elementwise, infinitely
    c = compare("b", got, want, TOL)
    assert c.ok and c.scale == 2.0 and c.limit == pytest.approx(1e-9 + 2e-6)


def test_an_all_zero_reference_is_judged_by_atol() -> None:
    assert compare("g", np.full(3, 1e-10), np.zeros(3), TOL).ok
    assert not compare("g", np.full(3, 1e-8), np.zeros(3), TOL).ok


def test_a_failure_names_the_array_the_worst_element_and_both_values() -> None:
    want = np.arange(6.0).reshape(2, 3)
    got = want.copy()
    got[1, 2] = 5.5
    c = compare("W1", got, want, TOL)
    assert not c.ok and c.worst == (1, 2) and (c.got, c.want) == (5.5, 5.0)
    assert str(c).startswith("W1: MISMATCH at [1, 2]: got 5.5, expected 5.0")


def test_nan_and_infinities_agree_only_with_themselves() -> None:
    want = np.array([np.nan, np.inf, -np.inf, 1.0])
    assert compare("v", want.copy(), want, TOL).ok
    for k, bad in ((0, 1.0), (1, -np.inf), (3, np.nan)):
        got = want.copy()
        got[k] = bad
        c = compare("v", got, want, TOL)
        assert not c.ok and c.worst == (k,) and c.max_abs_error == np.inf


def test_shapes_must_agree() -> None:
    with pytest.raises(ShapeError, match="got shape"):
        compare("v", np.zeros(3), np.zeros(4), TOL)


def test_check_grad_differences_the_float64_model_of_a_float32_one() -> None:
    from graphc.passes.dtype import with_dtype

    g = with_dtype(seed_net(), "float32")
    inputs = random_inputs(g, 4, 0)
    res = check_grad(g, inputs, "loss")
    assert res.ok, str(res)
    # the analytic gradient is the float32 model's; the tolerance is float32's
    assert res.analytic["W1"].dtype == np.float32
    assert res.inputs["W1"].rtol == TOLERANCE["float32"].rtol


def test_check_grad_samples_elements_and_names_the_element() -> None:
    g, inputs = mlp(np.random.default_rng(0), hidden=40)
    res = check_grad(g, inputs, "loss", samples=5, seed=3)
    assert res.ok, str(res)
    assert np.count_nonzero(~np.isnan(res.numerical["W1"])) == 5  # 160 elements, 5 differenced
    assert np.count_nonzero(~np.isnan(res.numerical["b1"])) == 5


def _module(g: gc.Graph, wrong: float) -> types.SimpleNamespace:
    """A stand-in for a compiled module that runs the interpreter, its loss off by `wrong`."""

    def forward(**inputs):
        outs = gc.evaluate(g, inputs)
        return {k: v + wrong for k, v in outs.items()}

    def value_and_grad(**inputs):
        outs, grads = gc.value_and_grad(g, inputs, of="loss")
        return outs, {k: v + (wrong if k == "b1" else 0) for k, v in grads.items()}

    return types.SimpleNamespace(
        forward=forward, value_and_grad=value_and_grad, WRT=("W1", "b1", "W2", "b2"), OF="loss"
    )


def test_compile_check_verdict_and_lines_agree() -> None:
    g = seed_net()
    ok, report = check_compiled(_module(g, 0.0), g, "float64", 3, 0)
    assert ok and report.count(": ok (worst at") == 2 and "FAILED" not in report
    ok, report = check_compiled(_module(g, 1e-3), g, "float64", 3, 0)
    assert not ok
    lines = report.splitlines()
    assert lines[0].startswith("check: outputs and gradients agree with the interpreter")
    assert lines[0].endswith(")") and ": FAILED (worst at" in lines[0]
    assert any(ln.startswith("  loss: MISMATCH at []") for ln in lines)
    assert any(ln.startswith("  dloss/db1: MISMATCH at [") for ln in lines)
