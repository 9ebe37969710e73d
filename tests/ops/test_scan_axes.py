"""gc.scan with its steps on an inner axis (`axis=`, the params `xs_axes` and `ys_axes`): the
same values and derivatives, bit for bit, as the loop over time-major copies of its arrays;
gradients against finite differences; JSON; the errors of the builder."""

from __future__ import annotations

import json

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ShapeError
from graphc.gradcheck import check_grad
from graphc.passes.derivatives import hvp, jvp
from tests.ops.test_scan import WRT, H, N, _lstm_cell, lstm_inputs

T = 4


def model(batch_first: bool, reverse: bool = False, steps: int | str = T) -> gc.Graph:
    """The LSTM-like loop of test_scan over xs [N, T, D]: along axis 1 when `batch_first`,
    else over its time-major copy, stacking its results time-major and moving them back."""
    g = gc.Graph("lstm")
    xs = g.input("xs", shape=("N", steps, 2))
    h0 = g.input("h0", shape=("N", H))
    c0 = g.param("c0", shape=("N", H))
    W = g.param("W", shape=(2, 4 * H))
    U = g.param("U", shape=(H, 4 * H))
    b = g.param("b", shape=(4 * H,))
    cell = _lstm_cell(W, U, b)
    init = {"h": h0, "c": c0}
    if batch_first:
        s, (hs, zs) = gc.scan(cell, init, xs, reverse=reverse, axis=1)
    else:
        s, (hs, zs) = gc.scan(cell, init, gc.transpose(xs, (1, 0, 2)), reverse=reverse)
        hs, zs = gc.transpose(hs, (1, 0, 2)), gc.transpose(zs, (1, 0))
    g.output("hs", hs)
    g.output("loss", gc.sum(hs * hs) + gc.sum(s["c"]) * 0.5 + gc.sum(zs * zs))
    return g


def inputs(steps: int = T) -> dict[str, np.ndarray]:
    inp = lstm_inputs(steps)
    return {**inp, "xs": np.ascontiguousarray(inp["xs"].transpose(1, 0, 2))}


def _same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("reverse", [False, True])
def test_values_and_gradients_equal_the_time_major_loop(reverse: bool) -> None:
    inp = inputs()
    wrt = [*WRT, "xs"]
    got = gc.evaluate(gc.simplify(gc.grad(model(True, reverse), "loss", wrt)), inp)
    want = gc.evaluate(gc.simplify(gc.grad(model(False, reverse), "loss", wrt)), inp)
    assert got["hs"].shape == (N, T, H) and got["dloss/dxs"].shape == (N, T, 2)
    _same(got, want)


def test_the_reverse_loop_reads_along_the_same_axes() -> None:
    """The backward loop reads the cotangent of hs and the slices of xs along axis 1, its
    residuals along axis 0, and stacks the cotangents of xs on axis 1."""
    joint = gc.simplify(gc.grad(model(True), "loss", [*WRT, "xs"]))
    G = joint.nx
    loops = sorted(n for n in G if G._node[n]["op"] == "scan")
    forward, backward = (G._node[n]["params"] for n in loops)
    assert forward["xs_axes"] == (1,) and forward["ys_axes"][:2] == (1, 1)
    assert sorted(set(backward["xs_axes"])) == [0, 1] and backward["ys_axes"] == (1,)


def test_gradients_match_finite_differences() -> None:
    res = check_grad(model(True, steps=3), inputs(3), "loss", [*WRT, "xs"], rtol=1e-6, atol=1e-8)
    assert res.ok, str(res)


@pytest.mark.parametrize("reverse", [False, True])
def test_second_order_and_forward_mode(reverse: bool) -> None:
    """hvp (a loop over the body's VJP's VJP, reading along the same axes) and jvp."""
    inp = inputs(3)
    loop, plain = model(True, reverse, 3), model(False, reverse, 3)
    rng = np.random.default_rng(7)
    params = ["c0", "W", "U", "b"]
    vs = {f"{p}_v": rng.normal(size=inp[p].shape) for p in params}
    ts = {f"{p}_dot": rng.normal(size=inp[p].shape) for p in params}
    for make, extra in ((hvp, vs), (jvp, ts)):
        _same(gc.evaluate(make(loop, "loss"), {**inp, **extra}),
              gc.evaluate(make(plain, "loss"), {**inp, **extra}))  # fmt: skip


def test_json_round_trip_keeps_the_axes() -> None:
    g = gc.simplify(gc.grad(model(True), "loss", WRT))
    text = g.to_json()
    back = gc.Graph.from_json(text)
    assert back.to_json() == text and str(back) == str(g)
    assert "ys_axes" in json.dumps(json.loads(text))
    _same(gc.evaluate(back, inputs()), gc.evaluate(g, inputs()))


def test_axes_the_arrays_lack_are_refused() -> None:
    g = gc.Graph("m")
    xs = g.input("xs", shape=(3, 4))
    h = g.input("h", shape=(3,))
    with pytest.raises(ShapeError, match="xs leaf 0 .* has no axis 2"):
        gc.scan(lambda c, x: (c, c), h, xs, axis=2)
    with pytest.raises(ShapeError, match="y leaf 0 .* has no axis 1 to stack the steps on"):
        gc.scan(lambda c, x: (c, gc.sum(x)), h, xs, axis=1)
    with pytest.raises(ShapeError, match="has 3 steps on axis 1, xs leaf 0 has 4"):
        gc.scan(lambda c, x: (c, c), h, (xs, g.input("ys", shape=(3, 3))), axis=1)


def test_checkpointed_segments_keep_their_axes_bit_for_bit() -> None:
    """A memory budget cuts the loops into segments along the steps' own axis: no
    time-major copy (no transpose), the loops still read along axis 1, and the same values
    and gradients (more in tests/passes/test_scan_remat_axes.py)."""
    from graphc.compiler import _differentiate
    from graphc.passes.scan_remat import checkpoint_loops

    g = gc.simplify(model(True, steps=9))
    joint, _ = _differentiate(g, "loss", [*WRT, "xs"])
    h, loops = checkpoint_loops(joint, g._next_id)
    assert loops == 1
    G = h.nx
    assert not any(G._node[n]["op"] == "transpose" for n in G)
    assert all(1 in G._node[n]["params"]["xs_axes"] for n in G if G._node[n]["op"] == "scan")
    _same(gc.evaluate(h, inputs(9)), gc.evaluate(joint, inputs(9)))
