"""graphc.nn: layer shapes, init records and statistics, gradients against finite differences,
forward semantics against PyTorch where it is installed, and compiled LSTM and attention."""

import math

import numpy as np
import pytest

import graphc as gc
from graphc.compiler import run_stages
from graphc.errors import GraphError, ShapeError
from graphc.gradcheck import check_grad
from graphc.nn import init_params, init_records


def perturbed(g, rng, scale=0.3, **data):
    """Initial params moved off their init (so zero biases and unit gains are exercised too),
    plus the data arrays given."""
    params = {k: v + scale * rng.standard_normal(v.shape) for k, v in init_params(g).items()}
    return params | data


def weighted_loss(g, out, rng):
    """loss = sum(out * R) with a random constant R: every output element gets its own weight,
    so a transposed or misplaced value changes the gradient."""
    shape = out.shape[1:] if isinstance(out.shape[0], str) else out.shape  # N: broadcast
    return g.output("loss", gc.sum(out * g.const(rng.standard_normal(shape))))


def assert_grad_ok(g, inputs, wrt=None, rtol=1e-6, atol=1e-8):
    report = check_grad(g, inputs, "loss", wrt, rtol=rtol, atol=atol)
    assert report.ok, str(report)


# ---- dense, records and initial values ---------------------------------------------------------
def test_dense_shapes_params_and_records():
    g = gc.Graph("m")
    x = g.input("x", shape=("N", 6))
    h = gc.nn.dense(x, 4, "fc1", activation="relu")
    y = gc.nn.dense(h, 3, "fc2", activation="tanh", bias=False)
    z = gc.nn.dense(y, 2, "fc3", init="he_normal")
    assert (h.shape, y.shape, z.shape) == (("N", 4), ("N", 3), ("N", 2))
    assert list(g.input_ids(role="param")) == ["fc1_w", "fc1_b", "fc2_w", "fc3_w", "fc3_b"]
    assert init_records(g) == {
        "fc1_w": ("he_normal", 6, 4),
        "fc1_b": ("zeros", 6, 4),
        "fc2_w": ("glorot_uniform", 4, 3),
        "fc3_w": ("he_normal", 3, 2),
        "fc3_b": ("zeros", 3, 2),
    }
    params = init_params(g)
    assert {k: v.shape for k, v in params.items()} == {
        "fc1_w": (6, 4),
        "fc1_b": (4,),
        "fc2_w": (4, 3),
        "fc3_w": (3, 2),
        "fc3_b": (2,),
    }
    assert all(v.dtype == np.float64 for v in params.values())


def test_dense_on_a_sequence_applies_to_the_last_axis():
    g = gc.Graph("m")
    x = g.input("x", shape=(2, 3, 5))
    g.output("y", gc.nn.dense(x, 4, "fc"))
    rng = np.random.default_rng(0)
    inputs = perturbed(g, rng, x=rng.standard_normal((2, 3, 5)))
    want = inputs["x"] @ inputs["fc_w"] + inputs["fc_b"]
    np.testing.assert_allclose(gc.evaluate(g, inputs)["y"], want, rtol=1e-14)


def test_glorot_and_he_statistics():
    g = gc.Graph("m")
    x = g.input("x", shape=("N", 400))
    h = gc.nn.dense(x, 300, "lin")  # glorot: U(-a, a), var 2 / (400 + 300)
    gc.nn.dense(h, 200, "rect", activation="relu")  # he: N(0, 2 / 300)
    p = init_params(g, seed=3)
    w = p["lin_w"]
    assert np.abs(w).max() <= math.sqrt(6 / 700)
    assert np.abs(w).max() > 0.99 * math.sqrt(6 / 700)
    assert abs(w.var() / (2 / 700) - 1) < 0.05 and abs(w.mean()) < 0.05 * w.std()
    w = p["rect_w"]
    assert abs(w.var() / (2 / 300) - 1) < 0.05 and abs(w.mean()) < 0.05 * w.std()
    # Gaussian tails: about 0.27 % of the draws lie beyond 3 sigma; a uniform has none.
    assert 0.001 < np.mean(np.abs(w) > 3 * math.sqrt(2 / 300)) < 0.005
    assert not p["lin_b"].any() and not p["rect_b"].any()


def test_conv_fans_follow_the_receptive_field():
    g = gc.Graph("m")
    x = g.input("x", shape=("N", 4, 8, 8))
    gc.nn.conv2d(x, 6, 3, "c", groups=2, activation="relu")
    assert init_records(g)["c_w"] == ("he_normal", 2 * 9, 3 * 9)
    assert init_params(g)["c_w"].shape == (6, 2, 3, 3)
    gc.nn.conv2d(x, 2, (1, 3), "d")
    assert init_records(g)["d_w"] == ("glorot_uniform", 4 * 3, 2 * 3)


def test_conv_layer_errors():
    g = gc.Graph("m")
    x = g.input("x", shape=("N", 4, 8, 8))
    with pytest.raises(ShapeError, match="groups=3"):
        gc.nn.conv2d(x, 6, 3, "c", groups=3)
    with pytest.raises(ShapeError, match=r"\[N, C, H, W\]"):
        gc.nn.conv2d(g.input("y", shape=("N", 8)), 6, 3, "c")
    with pytest.raises(GraphError, match="kernel"):
        gc.nn.conv2d(x, 6, (3, 0), "c")
    assert not g.input_ids(role="param")


def test_init_is_seeded_and_independent_of_other_layers():
    def build(extra):
        g = gc.Graph("m")
        x = g.input("x", shape=("N", 5))
        if extra:
            x = gc.nn.dense(x, 5, "first", activation="tanh")
        gc.nn.dense(x, 4, "fc", activation="relu")
        return g

    a, b = init_params(build(False), seed=7), init_params(build(False), seed=7)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = init_params(build(False), seed=8)
    assert not np.array_equal(a["fc_w"], c["fc_w"])
    d = init_params(build(True), seed=7)
    np.testing.assert_array_equal(d["fc_w"], a["fc_w"])
    assert not np.array_equal(d["first_w"][:4], d["fc_w"][:4])
    f32 = init_params(build(False), seed=7, dtype="float32")
    assert f32["fc_w"].dtype == np.float32
    np.testing.assert_array_equal(f32["fc_w"], a["fc_w"].astype(np.float32))


def test_recurrent_weights_are_orthogonal_per_gate():
    g = gc.Graph("m")
    x = g.input("x", shape=(2, 3))
    h = g.input("h", shape=(2, 5))
    c = g.input("c", shape=(2, 5))
    gc.nn.lstm_cell(x, h, c, "cell")
    w = init_params(g)["cell_w_hh"]
    assert w.shape == (5, 20)
    for k in range(4):
        block = w[:, 5 * k : 5 * (k + 1)]
        np.testing.assert_allclose(block.T @ block, np.eye(5), atol=1e-12)
    assert not np.allclose(w[:, :5], w[:, 5:10])
    assert init_records(g)["cell_w_ih"] == ("glorot_uniform", 3, 5)


def test_records_survive_copy_grad_simplify_json_and_compile_stages():
    g = gc.Graph("m")
    x = g.input("x", shape=("N", 3, 4))
    y = gc.nn.multi_head_attention(x, 2, "att", causal=True)
    g.output("loss", gc.sum(gc.nn.dense(y, 2, "out", activation="relu")))
    want = init_params(g, seed=5)
    assert len(want) == 10
    back = gc.Graph.from_json(g.to_json())
    assert init_records(back) == init_records(g)
    for h in (g.copy(), gc.grad(g, of="loss"), gc.simplify(g), back):
        got = init_params(h, seed=5)
        assert list(got) == list(want)
        assert all(np.array_equal(got[k], want[k]) for k in want)
    stages = run_stages(g, dtype="float32")
    assert init_records(stages.graph) == init_records(g)
    assert init_params(stages.graph, seed=5)["out_w"].dtype == np.float32


def test_init_errors():
    g = gc.Graph("m")
    x = g.input("x", shape=("N", 3))
    with pytest.raises(GraphError, match="init 'uniform' is not one of"):
        gc.nn.dense(x, 2, "fc", init="uniform")
    with pytest.raises(GraphError, match="activation 'swish'"):
        gc.nn.dense(x, 2, "fc", activation="swish")
    gc.nn.dense(x, 2, "fc")
    with pytest.raises(GraphError, match="already used"):
        gc.nn.dense(x, 2, "fc")
    with pytest.raises(GraphError, match="seed"):
        init_params(g, seed=-1)
    g.nx.nodes[g.input_ids()["fc_w"]]["init"] = ["bogus", 1, 1]
    with pytest.raises(GraphError, match="'bogus' is not one of"):
        init_params(g)


# ---- gradients of each layer against finite differences -----------------------------------------
@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid", "gelu"])
def test_dense_gradients(activation):
    rng = np.random.default_rng(1)
    g = gc.Graph("m")
    x = g.input("x", shape=(4, 3))
    weighted_loss(g, gc.nn.dense(x, 5, "fc", activation=activation), rng)
    assert_grad_ok(g, perturbed(g, rng, x=rng.standard_normal((4, 3))), wrt=["fc_w", "fc_b", "x"])


@pytest.mark.parametrize("causal", [False, True])
def test_attention_gradients(causal):
    rng = np.random.default_rng(2)
    g = gc.Graph("m")
    x = g.input("x", shape=(2, 4, 6))
    weighted_loss(g, gc.nn.multi_head_attention(x, 3, "att", causal=causal), rng)
    assert_grad_ok(g, perturbed(g, rng, x=rng.standard_normal((2, 4, 6))), wrt=None)
    assert_grad_ok(g, perturbed(g, rng, x=rng.standard_normal((2, 4, 6))), wrt="x")


def test_cross_attention_gradients():
    rng = np.random.default_rng(3)
    g = gc.Graph("m")
    x = g.input("x", shape=(2, 3, 4))
    mem = g.input("mem", shape=(2, 5, 6))
    y = gc.nn.multi_head_attention(x, 2, "att", kv=mem)
    assert y.shape == (2, 3, 4) and g["att_k_w"].shape == (6, 4)
    weighted_loss(g, y, rng)
    data = {"x": rng.standard_normal((2, 3, 4)), "mem": rng.standard_normal((2, 5, 6))}
    assert_grad_ok(g, perturbed(g, rng, **data), wrt=["att_q_w", "att_k_w", "att_v_b", "mem"])


def test_causal_attention_does_not_look_ahead():
    rng = np.random.default_rng(4)
    g = gc.Graph("m")
    x = g.input("x", shape=(2, 6, 4))
    g.output("y", gc.nn.multi_head_attention(x, 2, "att", causal=True))
    inputs = perturbed(g, rng, x=rng.standard_normal((2, 6, 4)))
    y = gc.evaluate(g, inputs)["y"]
    for t in range(6):
        later = inputs["x"].copy()
        later[:, t:] = rng.standard_normal(later[:, t:].shape)
        y2 = gc.evaluate(g, dict(inputs, x=later))["y"]
        np.testing.assert_array_equal(y2[:, :t], y[:, :t])
        assert not np.allclose(y2[:, t:], y[:, t:])


def test_attention_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    n, t, d, heads = 2, 5, 8, 4
    g = gc.Graph("m")
    x = g.input("x", shape=(n, t, d))
    g.output("y", gc.nn.multi_head_attention(x, heads, "att", causal=True))
    inputs = perturbed(g, rng, x=rng.standard_normal((n, t, d)))
    mha = torch.nn.MultiheadAttention(d, heads, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(
            torch.from_numpy(np.concatenate([inputs[f"att_{k}_w"].T for k in "qkv"]))
        )
        mha.in_proj_bias.copy_(
            torch.from_numpy(np.concatenate([inputs[f"att_{k}_b"] for k in "qkv"]))
        )
        mha.out_proj.weight.copy_(torch.from_numpy(inputs["att_o_w"].T))
        mha.out_proj.bias.copy_(torch.from_numpy(inputs["att_o_b"]))
        xt = torch.from_numpy(inputs["x"])
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        want, _ = mha(xt, xt, xt, attn_mask=mask, need_weights=False)
    np.testing.assert_allclose(gc.evaluate(g, inputs)["y"], want.numpy(), rtol=1e-12, atol=1e-14)


def test_attention_shape_errors():
    g = gc.Graph("m")
    with pytest.raises(ShapeError, match="heads=3"):
        gc.nn.multi_head_attention(g.input("x", shape=("N", 4, 8)), 3, "att")
    with pytest.raises(ShapeError, match=r"\[N, T, D\]"):
        gc.nn.multi_head_attention(g.input("y", shape=("N", 8)), 2, "att")
    with pytest.raises(ShapeError, match="causal mask needs fixed"):
        gc.nn.multi_head_attention(g.input("z", shape=("N", "T", 8)), 2, "att2", causal=True)


def test_positional_encoding():
    rng = np.random.default_rng(6)
    table = gc.nn.sinusoid(7, 5)
    assert table.shape == (7, 5)
    np.testing.assert_allclose(table[3, 2], math.sin(3 / 10000 ** (2 / 5)), rtol=1e-15)
    np.testing.assert_allclose(table[3, 3], math.cos(3 / 10000 ** (2 / 5)), rtol=1e-15)
    np.testing.assert_array_equal(table[0], [0, 1, 0, 1, 0])
    g = gc.Graph("m")
    x = g.input("x", shape=("N", 7, 5))
    g.output("y", gc.nn.positional_encoding(x))
    xv = rng.standard_normal((3, 7, 5))
    np.testing.assert_array_equal(gc.evaluate(g, {"x": xv})["y"], xv + table)


def test_flatten_then_dense_gradients():
    rng = np.random.default_rng(7)
    g = gc.Graph("m")
    x = g.input("x", shape=(3, 2, 2, 3))
    flat = gc.nn.flatten(x)
    assert flat.shape == (3, 12)
    assert gc.nn.flatten(gc.Graph("s").input("s", shape=("N", 2, 5))).shape == ("N", 10)
    weighted_loss(g, gc.nn.dense(flat, 4, "fc", activation="tanh"), rng)
    inputs = perturbed(g, rng, x=rng.standard_normal((3, 2, 2, 3)))
    assert_grad_ok(g, inputs, wrt=["fc_w", "x"])


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel=3),
        dict(kernel=(2, 3), stride=2, padding=1, activation="relu"),
        dict(kernel=3, padding=2, dilation=2, groups=2, activation="tanh"),
    ],
)
def test_conv2d_gradients(kw):
    rng = np.random.default_rng(8)
    g = gc.Graph("m")
    x = g.input("x", shape=(2, 4, 6, 5))
    y = gc.nn.conv2d(x, 6, name="conv", **kw)
    want = gc.conv2d(
        x,
        g["conv_w"],
        stride=kw.get("stride", 1),
        padding=kw.get("padding", 0),
        dilation=kw.get("dilation", 1),
        groups=kw.get("groups", 1),
    ).shape
    assert y.shape == want and g["conv_b"].shape == (6,)
    weighted_loss(g, y, rng)
    assert_grad_ok(g, perturbed(g, rng, x=rng.standard_normal((2, 4, 6, 5))), wrt=None)


def test_conv2d_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    g = gc.Graph("m")
    x = g.input("x", shape=(2, 4, 7, 6))
    g.output("y", gc.nn.conv2d(x, 6, 3, "conv", stride=2, padding=1, groups=2))
    inputs = perturbed(g, rng, x=rng.standard_normal((2, 4, 7, 6)))
    conv = torch.nn.functional.conv2d
    want = conv(
        *(torch.from_numpy(inputs[k]) for k in ("x", "conv_w", "conv_b")),
        stride=2,
        padding=1,
        groups=2,
    )
    np.testing.assert_allclose(gc.evaluate(g, inputs)["y"], want.numpy(), rtol=1e-12)


def test_embedding_gradients_and_lookup():
    rng = np.random.default_rng(10)
    g = gc.Graph("m")
    tokens = g.input("tokens", shape=("N", 4), dtype="int64")
    y = gc.nn.embedding(tokens, 7, 3, "emb")
    assert y.shape == ("N", 4, 3) and y.dtype == "float64"
    assert init_records(g) == {"emb_w": ("normal", 7, 3)}
    g.output("y", y)
    weighted_loss(g, gc.nn.dense(gc.nn.flatten(y), 2, "fc"), rng)
    toks = np.array([[0, 6, 2, 2], [5, 1, 0, 3]])
    inputs = perturbed(g, rng, tokens=toks)
    np.testing.assert_array_equal(gc.evaluate(g, inputs)["y"], inputs["emb_w"][toks])
    assert_grad_ok(g, inputs, wrt=["emb_w"])


def test_tied_output_layer_reuses_the_embedding_table():
    """unembed: logits = h @ emb_w.T with the table found from the embedding's output; the
    table's gradient adds its use as input and as output layer (finite differences)."""
    rng = np.random.default_rng(11)
    g = gc.Graph("m")
    tokens = g.input("tokens", shape=("N", 4), dtype="int64")
    e = gc.nn.embedding(tokens, 7, 3, "emb")
    logits = gc.nn.unembed(gc.tanh(gc.nn.position_embedding(e, "pos")), e)
    assert logits.shape == ("N", 4, 7)
    assert init_records(g) == {"emb_w": ("normal", 7, 3), "pos_w": ("normal", 4, 3)}
    g.output("logits", logits)
    weighted_loss(g, logits, rng)
    toks = np.array([[0, 6, 2, 2], [5, 1, 0, 3]])
    inputs = perturbed(g, rng, tokens=toks)
    h = np.tanh(inputs["emb_w"][toks] + inputs["pos_w"])
    np.testing.assert_allclose(gc.evaluate(g, inputs)["logits"], h @ inputs["emb_w"].T, 1e-14)
    assert_grad_ok(g, inputs, wrt=["emb_w", "pos_w"])


def test_tied_layer_and_position_errors():
    g = gc.Graph("m")
    x = g.input("x", shape=("N", 4, 3))
    with pytest.raises(GraphError, match="not the output of gc.nn.embedding"):
        gc.nn.unembed(x, x)
    with pytest.raises(ShapeError, match="fixed sizes for its last two axes"):
        gc.nn.position_embedding(g.input("s", shape=("N", "T", 3)), "pos")


def test_init_params_names_the_params_it_cannot_draw():
    g = gc.Graph("m")
    x = g.input("x", shape=("N", 3))
    bare = g.param("scale", shape=(2,))
    g.output("loss", gc.sum(gc.nn.dense(x, 2, "fc") * bare))
    with pytest.raises(GraphError, match="scale"):
        init_params(g)
    drawn = init_params(g, missing="skip")
    assert sorted(drawn) == ["fc_b", "fc_w"]
    with pytest.raises(GraphError, match="missing must be"):
        init_params(g, missing="zeros")


def test_layer_norm_gradients_and_values():
    rng = np.random.default_rng(11)
    g = gc.Graph("m")
    x = g.input("x", shape=(3, 2, 5))
    y = gc.nn.layer_norm(x, "ln", eps=1e-3)
    g.output("y", y)
    weighted_loss(g, y, rng)
    inputs = perturbed(g, rng, x=rng.standard_normal((3, 2, 5)))
    xv = inputs["x"]
    norm = (xv - xv.mean(-1, keepdims=True)) / np.sqrt(xv.var(-1, keepdims=True) + 1e-3)
    want = norm * inputs["ln_g"] + inputs["ln_b"]
    np.testing.assert_allclose(gc.evaluate(g, inputs)["y"], want, rtol=1e-12, atol=1e-14)
    assert_grad_ok(g, inputs, wrt=None)
    assert_grad_ok(g, inputs, wrt="x")
    p = init_params(g)
    np.testing.assert_array_equal(p["ln_g"], np.ones(5))
    np.testing.assert_array_equal(p["ln_b"], np.zeros(5))


@pytest.mark.parametrize("pre_norm", [True, False])
def test_transformer_block_gradients(pre_norm):
    rng = np.random.default_rng(12)
    g = gc.Graph("m")
    x = g.input("x", shape=(2, 3, 4))
    y = gc.nn.transformer_encoder_block(x, 2, 6, "blk", causal=True, pre_norm=pre_norm)
    assert y.shape == (2, 3, 4)
    weighted_loss(g, y, rng)
    inputs = perturbed(g, rng, x=rng.standard_normal((2, 3, 4)))
    assert_grad_ok(g, inputs, wrt=None, rtol=1e-5)
    assert_grad_ok(g, inputs, wrt="x", rtol=1e-5)


# ---- recurrent cells -------------------------------------------------------------------------
def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def lstm_reference(xs, p, name, hidden):
    """PyTorch's LSTM equations in NumPy, gate order i, f, g, o, from a zero state."""
    n = xs.shape[0]
    h = c = np.zeros((n, hidden))
    hs = []
    for t in range(xs.shape[1]):
        a = xs[:, t] @ p[f"{name}_w_ih"] + h @ p[f"{name}_w_hh"] + p[f"{name}_b"]
        i, f, gg, o = np.split(a, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
        h = _sigmoid(o) * np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1)


def test_lstm_cell_gradients_and_sharing():
    rng = np.random.default_rng(13)
    g = gc.Graph("m")
    x = g.input("x", shape=(2, 3))
    h0 = g.input("h0", shape=(2, 4))
    c0 = g.input("c0", shape=(2, 4))
    h, c = gc.nn.lstm_cell(x, h0, c0, "cell")
    h, c = gc.nn.lstm_cell(x * 0.5, h, c, "cell")  # the same params again
    assert list(g.input_ids(role="param")) == ["cell_w_ih", "cell_w_hh", "cell_b"]
    assert h.shape == c.shape == (2, 4)
    weighted_loss(g, gc.tanh(h) + c, rng)
    data = {k: rng.standard_normal(g[k].shape) for k in ("x", "h0", "c0")}
    assert_grad_ok(g, perturbed(g, rng, **data), wrt=["cell_w_ih", "cell_w_hh", "cell_b", "c0"])
    with pytest.raises(GraphError, match="cannot be shared"):
        gc.nn.lstm_cell(g.input("x2", shape=(2, 5)), h0, c0, "cell")


def test_gru_cell_gradients():
    rng = np.random.default_rng(14)
    g = gc.Graph("m")
    x = g.input("x", shape=(2, 3))
    h0 = g.input("h0", shape=(2, 4))
    weighted_loss(g, gc.nn.gru_cell(x, h0, "cell"), rng)
    data = {k: rng.standard_normal(g[k].shape) for k in ("x", "h0")}
    assert_grad_ok(g, perturbed(g, rng, **data), wrt=None)
    assert_grad_ok(g, perturbed(g, rng, **data), wrt="h0")


@pytest.mark.parametrize("layer", ["lstm", "gru"])
def test_unrolled_gradients(layer):
    rng = np.random.default_rng(15)
    g = gc.Graph("m")
    xs = g.input("xs", shape=(2, 4, 3))
    out = getattr(gc.nn, layer)(xs, 5, "rnn")
    assert out.shape == (2, 5)
    assert len(g.input_ids(role="param")) == (3 if layer == "lstm" else 4)
    weighted_loss(g, out, rng)
    assert_grad_ok(g, perturbed(g, rng, xs=rng.standard_normal((2, 4, 3))), wrt=None)


@pytest.mark.parametrize("layer", ["lstm", "gru"])
def test_return_sequences_gradients(layer):
    rng = np.random.default_rng(20)
    g = gc.Graph("m")
    xs = g.input("xs", shape=(2, 3, 2))
    seq = getattr(gc.nn, layer)(xs, 3, "rnn", return_sequences=True)
    assert seq.shape == (2, 3, 3)
    weighted_loss(g, seq, rng)
    inputs = perturbed(g, rng, xs=rng.standard_normal((2, 3, 2)))
    assert_grad_ok(g, inputs, wrt=None)
    assert_grad_ok(g, inputs, wrt="xs")


def test_lstm_matches_reference_equations():
    rng = np.random.default_rng(16)
    g = gc.Graph("m")
    xs = g.input("xs", shape=("N", 6, 3))
    g.output("h", gc.nn.lstm(xs, 4, "rnn"))
    inputs = perturbed(g, rng, xs=rng.standard_normal((2, 6, 3)))
    want = lstm_reference(inputs["xs"], inputs, "rnn", 4)
    np.testing.assert_allclose(gc.evaluate(g, inputs)["h"], want[:, -1], rtol=1e-13)


@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
def test_recurrent_layers_match_torch(layer):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(17)
    g = gc.Graph("m")
    xs = g.input("xs", shape=(3, 5, 2))
    g.output("hs", getattr(gc.nn, layer.lower())(xs, 4, "rnn", return_sequences=True))
    inputs = perturbed(g, rng, xs=rng.standard_normal((3, 5, 2)))
    net = getattr(torch.nn, layer)(2, 4, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(inputs["rnn_w_ih"].T))
        net.weight_hh_l0.copy_(torch.from_numpy(inputs["rnn_w_hh"].T))
        if layer == "LSTM":
            net.bias_ih_l0.copy_(torch.from_numpy(inputs["rnn_b"]))
            net.bias_hh_l0.zero_()
        else:
            net.bias_ih_l0.copy_(torch.from_numpy(inputs["rnn_b_ih"]))
            net.bias_hh_l0.copy_(torch.from_numpy(inputs["rnn_b_hh"]))
        want, _ = net(torch.from_numpy(inputs["xs"]))
    np.testing.assert_allclose(gc.evaluate(g, inputs)["hs"], want.numpy(), rtol=1e-12, atol=1e-14)


# ---- compiled: gradients equal the interpreter's and finite differences -----------------------
def _compiled_against_interpreter_and_fd(g, inputs, out_dir, fd_rtol=1e-6):
    cm = gc.compile(g, out_dir=out_dir)
    outs, grads = cm.value_and_grad(**inputs)
    want_outs, want = gc.value_and_grad(g, inputs, of="loss")
    np.testing.assert_allclose(outs["loss"], want_outs["loss"], rtol=1e-10)
    assert set(grads) == set(want) == set(init_records(g))
    # Entries that are zero analytically (the key bias: softmax ignores a shift shared by all
    # keys) are roundoff in both; they are judged against the largest gradient entry.
    atol = 1e-13 * max(np.abs(v).max() for v in want.values())
    for k in want:
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-10, atol=atol, err_msg=k)
    report = check_grad(g, inputs, "loss", rtol=fd_rtol, atol=1e-8)
    assert report.ok, str(report)
    for k, num in report.numerical.items():
        np.testing.assert_allclose(grads[k], num, rtol=fd_rtol, atol=1e-8, err_msg=k)


@pytest.mark.compiler
def test_compiled_causal_attention_block(tmp_path):
    rng = np.random.default_rng(18)
    g = gc.Graph("attn_block")
    x = g.input("x", shape=("N", 5, 6))
    y = gc.nn.transformer_encoder_block(x, 2, 8, "blk", causal=True)
    weighted_loss(g, gc.nn.dense(y, 3, "head", activation="tanh"), rng)
    inputs = perturbed(g, rng, x=rng.standard_normal((3, 5, 6)))
    _compiled_against_interpreter_and_fd(g, inputs, tmp_path, fd_rtol=1e-5)


@pytest.mark.compiler
def test_compiled_lstm_over_20_steps(tmp_path):
    rng = np.random.default_rng(19)
    g = gc.Graph("lstm20")
    xs = g.input("xs", shape=("N", 20, 3))
    h = gc.nn.lstm(xs, 4, "rnn")
    weighted_loss(g, gc.nn.dense(h, 2, "head"), rng)
    inputs = perturbed(g, rng, xs=rng.standard_normal((2, 20, 3)))
    _compiled_against_interpreter_and_fd(g, inputs, tmp_path)
