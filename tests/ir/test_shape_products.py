"""Products of symbols in shapes ("B*T"): a symbolic batch flattens and comes back, in the
interpreter and compiled, with gradients, through JSON, and in the argument checks."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.gradcheck import check_grad
from graphc.ir.shapes import (
    ShapeMismatch,
    bind_shape,
    dims_product,
    monomial,
    normalize_shape,
    resolve_reshape,
)


def test_a_product_has_one_canonical_form() -> None:
    assert normalize_shape(("T*B", "2*B*3", "N", 4)) == ("B*T", "6*B", "N", 4)
    assert monomial("4*B*T*B") == (4, ("B", "B", "T"))
    assert dims_product(["B", 4, "T", 2]) == "8*B*T" and dims_product([3, 2]) == 6
    assert normalize_shape(("0*N",)) == (0,)
    assert bind_shape(("B*T", "2*B", 5), {"B": 3, "T": 7}) == (21, 6, 5)
    for bad in ("B+T", "B**2", "2.5*B", "*B", "B*", ""):
        with pytest.raises(ShapeMismatch, match="product of them and an int"):
            normalize_shape((bad,))


@pytest.mark.parametrize(
    "src, target, want",
    [
        (("B", 32, 64), (-1, 64), ("32*B", 64)),
        (("B", "T", 8), (-1, 8), ("B*T", 8)),
        (("B*T", 8), ("B", "T", 8), ("B", "T", 8)),
        (("B*T", 8), ("B", -1), ("B", "8*T")),
        (("4*B", 6), (-1, "B"), (24, "B")),
    ],
)
def test_reshape_infers_and_checks_products(src, target, want) -> None:
    assert resolve_reshape(src, target) == want


@pytest.mark.parametrize(
    "src, target, why",
    [
        (("B", 3), (-1, 2), "cannot infer -1"),  # 3*B / 2 is not exact
        (("B", "T"), (-1, "N"), "cannot infer -1"),
        (("B", "T"), ("B*N",), "sizes differ"),
    ],
)
def test_reshape_refuses_what_is_not_exact(src, target, why) -> None:
    with pytest.raises(ShapeMismatch, match=why):
        resolve_reshape(src, target)


def dense_over_time() -> gc.Graph:
    """A dense layer on [B, T, D] as one [B*T, D] @ [D, U] product, and back."""
    g = gc.Graph("over_time")
    x = g.input("x", shape=("B", "T", 4))
    y = g.input("y", shape=("B", "T", 3))
    W = g.param("W", shape=(4, 3))
    flat = x.reshape(-1, 4)
    assert flat.shape == ("B*T", 4)
    h = gc.tanh(flat @ W).reshape("B", "T", 3)
    g.output("loss", gc.mean((h - y) ** 2))
    return g


def inputs(b: int, t: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(b, t, 4)), "y": rng.normal(size=(b, t, 3)),
            "W": rng.normal(size=(4, 3))}  # fmt: skip


def test_a_flattened_batch_prints_and_reads_back_from_json() -> None:
    g = dense_over_time()
    assert "f64[B*T,4] = reshape[shape=('B*T', 4)]" in str(g)
    back = gc.Graph.from_json(g.to_json())
    assert str(back) == str(g)
    got = gc.evaluate(back, inputs(2, 5))["loss"]
    assert got == gc.evaluate(g, inputs(2, 5))["loss"]


def test_gradients_through_a_flattened_batch_match_finite_differences() -> None:
    report = check_grad(dense_over_time(), inputs(2, 3), of="loss", wrt=["W", "x"])
    assert report.ok, report


@pytest.mark.compiler
def test_the_compiled_module_takes_any_batch_and_sequence_length(tmp_path) -> None:
    g = dense_over_time()
    m = gc.compile(g, out_dir=tmp_path)
    for b, t in ((2, 5), (1, 1), (3, 0), (0, 4)):
        outs, grads = m.value_and_grad(**inputs(b, t))
        want_outs, want_grads = gc.value_and_grad(g, inputs(b, t), of="loss")
        np.testing.assert_allclose(outs["loss"], want_outs["loss"], rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(grads["W"], want_grads["W"], rtol=1e-10, atol=1e-15)


def product_input() -> gc.Graph:
    g = gc.Graph("tokens_flat")
    x = g.input("x", shape=("B*T", 4))  # the caller flattened it already
    y = g.input("y", shape=("B", "T"))
    w = g.param("w", shape=(4,))
    g.output("loss", gc.sum(((x @ w).reshape("B", "T") - y) ** 2))
    return g


@pytest.mark.compiler
def test_an_input_axis_that_is_a_product_is_checked_against_its_factors(tmp_path) -> None:
    g = product_input()
    rng = np.random.default_rng(1)
    good = {"x": rng.normal(size=(6, 4)), "y": rng.normal(size=(2, 3)), "w": rng.normal(size=4)}
    m = gc.compile(g, out_dir=tmp_path)
    assert m.forward(**good)["loss"] == pytest.approx(gc.evaluate(g, good)["loss"], rel=1e-12)
    bad = good | {"x": rng.normal(size=(5, 4))}
    why = r"axis 0 is B\*T=5, but 'y' has B=2, T=3: B\*T=6"
    with pytest.raises(gc.InputError, match=why):
        gc.evaluate(g, bad)
    with pytest.raises(ValueError, match=r"forward\(\): argument 'x': " + why):
        m.forward(**bad)
    assert m.forward(**good)["loss"] == m.forward(**good)["loss"]  # the module is fine after


def test_an_input_product_of_symbols_no_input_gives_is_refused() -> None:
    g = gc.Graph("unbound")
    x = g.input("x", shape=("B*T", 4))
    g.output("s", gc.sum(x))
    with pytest.raises(gc.GraphError, match=r"axis B\*T is a product of B, T, which no input"):
        gc.verify(g)
