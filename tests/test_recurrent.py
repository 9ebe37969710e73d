"""gc.nn.rnn, lstm and gru as loops (gc.scan): against the same layers unrolled, PyTorch's
nn.RNN/LSTM/GRU with copied weights (values and gradients), padded batches (`lengths`) against
each sequence alone, and one compiled module at several sequence lengths, 0 included."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ShapeError
from graphc.gradcheck import check_grad

LAYERS = ["rnn", "lstm", "gru"]
N, T, D, H = 3, 5, 2, 4


def model(layer: str, unroll: bool, steps: int | str = T, seq: bool = True, lengths: bool = False):
    g = gc.Graph("m")
    xs = g.input("xs", shape=("N", steps, D))
    lens = g.input("lengths", shape=("N",), dtype="int64") if lengths else None
    out = getattr(gc.nn, layer)(xs, H, "r", return_sequences=seq, unroll=unroll, lengths=lens)
    r = g.input("weights", shape=out.shape[1:])
    g.output("out", out)
    g.output("loss", gc.sum(gc.tanh(out) * r))
    return g


def feed(g: gc.Graph, steps: int = T, seed: int = 0, n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, node in g.input_ids().items():
        shape = tuple(
            {"N": n}.get(d, d) if isinstance(d, str) else d for d in g.nx.nodes[node]["shape"]
        )
        shape = tuple(steps if d == "T" else d for d in shape)
        out[name] = rng.normal(size=shape) * (0.6 if name.startswith("r_") else 1.0)
    if "lengths" in out:
        out["lengths"] = np.array([steps, 1, 0, 3, 2][:n], dtype=np.int64) % (steps + 1)
    return out


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("seq", [True, False])
def test_loop_equals_unrolled(layer: str, seq: bool) -> None:
    """Outputs and every gradient (params and input) to 1e-12 in float64."""
    loop, unrolled = model(layer, False, seq=seq), model(layer, True, seq=seq)
    inputs = feed(loop)
    wrt = [*loop.input_ids("param"), "xs"]
    a = gc.evaluate(gc.simplify(gc.grad(loop, "loss", wrt)), inputs)
    b = gc.evaluate(gc.simplify(gc.grad(unrolled, "loss", wrt)), inputs)
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("layer", LAYERS)
def test_padded_batch_equals_each_sequence_alone(layer: str) -> None:
    """With `lengths`, each sequence's outputs are its own run over its length, then zeros;
    the last h is the one at its end (a length of 0 keeps the zero state); looped and
    unrolled agree, gradients included."""
    g = model(layer, False, lengths=True)
    inputs = feed(g)
    got = gc.evaluate(g, inputs)["out"]
    for k, length in enumerate(inputs["lengths"]):
        want = np.zeros((T, H))
        if length:
            one = {**inputs, "xs": inputs["xs"][k : k + 1, :length]}
            del one["lengths"]
            short = model(layer, False, steps=int(length))
            want[:length] = gc.evaluate(short, {**one, "weights": inputs["weights"][:length]})[
                "out"
            ][0]
        np.testing.assert_allclose(got[k], want, rtol=1e-13, atol=1e-15)
    final = model(layer, False, seq=False, lengths=True)
    last = gc.evaluate(final, {**inputs, "weights": np.ones(H)})["out"]
    ends = np.maximum(inputs["lengths"] - 1, 0)
    expect = got[np.arange(N), ends] * (inputs["lengths"] > 0)[:, None]
    np.testing.assert_allclose(last, expect, rtol=1e-13, atol=1e-15)
    unrolled = model(layer, True, lengths=True)
    wrt = [*g.input_ids("param"), "xs"]
    a = gc.evaluate(gc.simplify(gc.grad(g, "loss", wrt)), inputs)
    b = gc.evaluate(gc.simplify(gc.grad(unrolled, "loss", wrt)), inputs)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("layer", LAYERS)
def test_gradients_match_finite_differences(layer: str) -> None:
    g = model(layer, False, steps="T", lengths=True)
    inputs = feed(g, steps=4, seed=3)
    res = check_grad(g, inputs, "loss", [*g.input_ids("param"), "xs"], rtol=1e-6, atol=1e-8)
    assert res.ok, str(res)


def test_lengths_are_checked() -> None:
    g = gc.Graph("m")
    xs = g.input("xs", shape=("N", 4, 2))
    with pytest.raises(ShapeError, match=r"lengths must be an int Value of shape \[N\]"):
        gc.nn.lstm(xs, 3, "r", lengths=g.input("bad", shape=("N",)))
    with pytest.raises(ShapeError, match="fixed T >= 1 and D to unroll"):
        gc.nn.gru(g.input("ys", shape=("N", "T", 2)), 3, "g", unroll=True)


# ---- PyTorch, with copied weights --------------------------------------------------------------
def _torch_net(torch, layer: str, p: dict[str, np.ndarray]):
    net = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[layer](
        D, H, batch_first=True, dtype=torch.float64
    )
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(p["r_w_ih"].T))
        net.weight_hh_l0.copy_(torch.from_numpy(p["r_w_hh"].T))
        if layer == "gru":
            net.bias_ih_l0.copy_(torch.from_numpy(p["r_b_ih"]))
            net.bias_hh_l0.copy_(torch.from_numpy(p["r_b_hh"]))
        else:  # one bias: PyTorch's two summed
            net.bias_ih_l0.copy_(torch.from_numpy(p["r_b"]))
            net.bias_hh_l0.zero_()
    return net


def _torch_grads(net, layer: str) -> dict[str, np.ndarray]:
    got = {"r_w_ih": net.weight_ih_l0.grad.numpy().T, "r_w_hh": net.weight_hh_l0.grad.numpy().T}
    if layer == "gru":
        got |= {"r_b_ih": net.bias_ih_l0.grad.numpy(), "r_b_hh": net.bias_hh_l0.grad.numpy()}
    else:
        got["r_b"] = net.bias_ih_l0.grad.numpy()
    return got


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("padded", [False, True])
def test_matches_torch_values_and_gradients(layer: str, padded: bool) -> None:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: nothing to compare")
    g = model(layer, False, steps="T", lengths=padded)
    inputs = feed(g, seed=5)
    net = _torch_net(torch, layer, inputs)
    xs = torch.from_numpy(inputs["xs"]).requires_grad_(True)
    if padded:  # sorted or not: enforce_sorted=False; a length of 0 is not allowed there
        lengths = np.maximum(inputs["lengths"], 1)
        inputs["lengths"] = lengths
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xs, torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
        )
        out, _ = net(packed)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    else:
        out, _ = net(xs)
    loss = (torch.tanh(out) * torch.from_numpy(inputs["weights"])).sum()
    loss.backward()
    wrt = [*g.input_ids("param"), "xs"]
    res = gc.evaluate(gc.simplify(gc.grad(g, "loss", wrt)), inputs)
    np.testing.assert_allclose(res["out"], out.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res["loss"], loss.item(), rtol=1e-12)
    for k, v in _torch_grads(net, layer).items():
        np.testing.assert_allclose(res[f"dloss/d{k}"], v, rtol=1e-11, atol=1e-13, err_msg=k)
    np.testing.assert_allclose(res["dloss/dxs"], xs.grad.numpy(), rtol=1e-11, atol=1e-13)


# ---- compiled: one build for every length ----------------------------------------------------
@pytest.mark.compiler
@pytest.mark.parametrize("layer", ["lstm", "gru"])
def test_compiled_any_length_from_one_build(layer: str, tmp_path) -> None:
    """T is a symbol: one module runs T = 6, 1 and 0 (and padded batches), equal to the
    interpreter and to the unrolled model's module at T = 6."""
    g = model(layer, False, steps="T", lengths=True)
    m = gc.compile(g, out_dir=tmp_path)
    for steps in (6, 1, 0):
        inputs = feed(g, steps=steps, seed=steps)
        outs, grads = m.value_and_grad(**inputs)
        want_outs, want = gc.value_and_grad(g, inputs, of="loss")
        assert outs["out"].shape == (N, steps, H)
        np.testing.assert_allclose(outs["out"], want_outs["out"], rtol=1e-12, atol=1e-14)
        for k in want:
            np.testing.assert_allclose(grads[k], want[k], rtol=1e-10, atol=1e-13, err_msg=k)
    unrolled = gc.compile(model(layer, True, steps=6, lengths=True), out_dir=tmp_path)
    inputs = feed(g, steps=6, seed=6)
    a, ga = m.value_and_grad(**inputs)
    b, gb = unrolled.value_and_grad(**inputs)
    np.testing.assert_allclose(a["out"], b["out"], rtol=1e-12, atol=1e-14)
    for k in ga:
        np.testing.assert_allclose(ga[k], gb[k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_buffers_of_a_loop_are_sized_at_call_time() -> None:
    """With T a symbol, the values the loop stacks are [T, ...] buffers whose size the call
    computes from T; the body's scratch is planned once, for one step, and holds no T: every
    step uses it again."""
    from graphc.compiler import run_stages

    st = run_stages(model("lstm", False, steps="T"), functions=["value_and_grad"])
    (f,) = [f for f in st.module.functions if f.name == "value_and_grad"]
    texts = [row.comment[0] for row in f.slots]
    body = [t for t in texts if t.endswith("(a loop's)")]
    outer = [t for t in texts if not t.endswith("(a loop's)")]
    assert body and not any("T" in t.split(":", 1)[1] for t in body)
    assert sum("[T," in t for t in outer) >= 2  # the stacked per-step values
