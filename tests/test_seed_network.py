"""The seed network reproduces the published values (shared/reference/seed_network.json)."""

import runpy

import numpy as np
import pytest

import graphc as gc
from tests.models import (
    REFERENCE_COPY,
    ROOT,
    SHARED_REFERENCE,
    seed_inputs,
    seed_net,
    seed_reference,
)

REF = seed_reference()
INPUTS = seed_inputs()
TOL = {"rtol": 1e-12, "atol": 1e-15}


def test_loss_matches_reference():
    out = gc.evaluate(seed_net(), INPUTS)
    np.testing.assert_allclose(out["loss"], REF["forward"]["loss"], **TOL)


@pytest.mark.parametrize("simplified", [False, True], ids=["raw", "simplified"])
def test_gradients_match_reference(simplified):
    dg = gc.grad(seed_net(), of="loss")
    if simplified:
        dg = gc.simplify(dg)
    out = gc.evaluate(dg, INPUTS)
    np.testing.assert_allclose(out["loss"], REF["forward"]["loss"], **TOL)
    for name in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(out[f"dloss/d{name}"], REF["gradients"][name], **TOL)


def test_value_and_grad_keys_by_param():
    outs, grads = gc.value_and_grad(seed_net(), INPUTS, of="loss")
    assert set(outs) == {"loss"}
    assert list(grads) == ["W1", "b1", "W2", "b2"]
    for name, got in grads.items():
        np.testing.assert_allclose(got, REF["gradients"][name], **TOL)


def test_example_builds_the_same_model_and_agrees():
    ns = runpy.run_path(str(ROOT / "examples" / "seed_network.py"))

    # The same model up to source lines: the printed graphs differ only in their comments.
    def strip(g):
        return [line.split("#")[0] for line in str(g).splitlines()]

    assert strip(ns["graph"]) == strip(seed_net())
    assert ns["main"]() == 0
    # the example's embedded copy is the published one
    assert ns["REFERENCE"]["loss"] == REF["forward"]["loss"]
    for name in ("W1", "b1", "W2", "b2"):
        np.testing.assert_array_equal(ns["REFERENCE"][name], REF["gradients"][name])


@pytest.mark.skipif(
    not SHARED_REFERENCE.is_file(), reason="no shared reference folder beside the project"
)
def test_the_projects_copy_of_the_reference_is_the_published_file():
    assert REFERENCE_COPY.read_bytes() == SHARED_REFERENCE.read_bytes()


def test_symbolic_batch_gives_per_row_mean():
    g = seed_net()
    rng = np.random.default_rng(0)
    big = dict(INPUTS, x=rng.uniform(size=(7, 3)), y=rng.uniform(size=(7, 2)))
    out = gc.evaluate(g, big)["loss"]
    rows = [
        gc.evaluate(g, dict(big, x=big["x"][i : i + 1], y=big["y"][i : i + 1]))["loss"]
        for i in range(7)
    ]
    np.testing.assert_allclose(out, np.mean(rows), rtol=1e-13)
