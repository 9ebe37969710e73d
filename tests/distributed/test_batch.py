"""Which models split into shards of their batch, decided from the graph (no Dask needed).

Every model the analysis accepts is also checked numerically: its loss, outputs and gradients
computed by the NumPy interpreter on shards of a batch and combined as the analysis says equal
the interpreter's on the whole batch. Every model it refuses is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import graphc as gc
from graphc.distributed.batch import Kind, analyse
from graphc.distributed.shards import combine_grads, combine_outputs, split_rows
from tests.models import mlp, seed_net

N = 13


def _data(g: gc.Graph, rng: np.random.Generator, n: int = N) -> dict[str, np.ndarray]:
    """Random inputs for every input of `g`, with `n` rows on the batch axis."""
    out = {}
    for name, node in g.input_ids().items():
        a = g.nx.nodes[node]
        shape = tuple(n if isinstance(d, str) else d for d in a["shape"])
        if a["dtype"].startswith("int"):
            out[name] = rng.integers(0, 4, shape).astype(a["dtype"])
        else:
            out[name] = rng.normal(size=shape)
    return out


def _linear(loss: Callable[[gc.Value, gc.Graph], gc.Value], name: str) -> Callable[[], gc.Graph]:
    """A model x [N,3] @ W [3,2] -> h, with the loss `loss(h, g)`."""

    def build() -> gc.Graph:
        g = gc.Graph(name)
        x = g.input("x", shape=("N", 3))
        W = g.param("W", shape=(3, 2))
        g.output("loss", loss(x @ W, g))
        return g

    build.__name__ = name
    return build


def _embedding() -> gc.Graph:
    g = gc.Graph("embedding")
    idx = g.input("idx", shape=("N",), dtype="int64")
    E = g.param("E", shape=(4, 3))
    g.output("loss", gc.mean(gc.tanh(gc.take(E, idx)) ** 2))
    return g


def _replicated_mask() -> gc.Graph:
    g = gc.Graph("masked")
    x = g.input("x", shape=("N", 3))
    mask = g.input("mask", shape=(3,))  # no batch axis: every shard gets all of it
    W = g.param("W", shape=(3,))
    g.output("loss", gc.mean(gc.sigmoid(x * mask * W)))
    return g


def _transposed() -> gc.Graph:
    g = gc.Graph("transposed")
    x = g.input("x", shape=("N", 3))
    W = g.param("W", shape=(2, 3))
    h = gc.softmax(W @ x.T, axis=0)  # [2, N]: the batch axis second, normalised over axis 0
    g.output("loss", gc.mean(h * h))
    g.output("h", h)
    return g


def _images() -> gc.Graph:
    g = gc.Graph("images")
    x = g.input("x", shape=("N", 1, 4, 4))
    y = g.input("y", shape=("N",), dtype="int64")
    h = gc.nn.conv2d(x, 2, 3, "conv", padding=1, activation="relu")
    h = gc.max_pool2d(h, 2)
    h = gc.layer_norm(gc.reshape(h, ("N", 8)))
    g.output("loss", gc.softmax_cross_entropy(gc.nn.dense(h, 4, "out"), y))
    return g


def _volumes() -> gc.Graph:
    """conv3d (an op of its own, as conv2d) keeps the examples apart."""
    g = gc.Graph("volumes")
    x = g.input("x", shape=("N", 2, 3, 4, 3))
    w, b = g.param("w", shape=(3, 2, 2, 2, 2)), g.param("b", shape=(3,))
    h = gc.relu(gc.conv3d(x, w, b, padding=(0, 1, 0)))
    g.output("loss", gc.mean(gc.sum(h * h, axis=(1, 2, 3, 4))))
    return g


def _pooled() -> gc.Graph:
    """Average, adaptive pooling and max_unpool (ops of their own) keep the examples apart."""
    g = gc.Graph("pooled")
    x = g.input("x", shape=("N", 2, 4, 4, 4))
    i = g.input("i", shape=("N", 2, 2, 2, 2), dtype="int64")  # places in planes of 4 x 4 x 4
    w = g.param("w", shape=(2, 1, 1, 1))
    h = gc.avg_pool3d(x * w, 2, 1, 1, ceil_mode=True, count_include_pad=False)
    h = gc.adaptive_avg_pool3d(h, (2, 2, 2))
    u = gc.max_unpool3d(h * h, i, 2)
    g.output("loss", gc.mean(gc.sum(u * x, axis=(1, 2, 3, 4))))
    return g


def _sequences() -> gc.Graph:
    """conv1d and the resampling ops (ops of their own) keep the examples apart."""
    g = gc.Graph("sequences")
    x = g.input("x", shape=("N", 2, 7))
    w, b = g.param("w", shape=(4, 1, 3)), g.param("b", shape=(4,))
    h = gc.interpolate(gc.tanh(gc.conv1d(x, w, b, padding=1, groups=2)), size=11, mode="linear")
    h = gc.interpolate(h, scale_factor=0.6, mode="nearest")
    g.output("loss", gc.mean(gc.sum(h * h, axis=(1, 2))))
    return g


def _two_means() -> gc.Graph:
    g = gc.Graph("two_means")
    x = g.input("x", shape=("N", 3))
    W = g.param("W", shape=(3,))
    a = gc.mean(gc.exp(x * W))
    b = gc.mean(gc.tanh(x @ W), axis=0)
    g.output("loss", 0.5 * a - b / 3.0 + 0.01 * gc.sum(W * W))  # a constant term: fine
    g.output("a", a)
    return g


ACCEPTED = {
    "seed_net": (seed_net, "mean"),
    "mlp": (lambda: mlp(np.random.default_rng(0))[0], "mean"),
    "sum_loss": (_linear(lambda h, g: gc.sum(h * h), "sum_loss"), "sum"),
    "sum_over_count": (
        _linear(lambda h, g: gc.sum(h * h) / gc.size(h, 0), "sum_over_count"),
        "mean",
    ),
    "gram": (_linear(lambda h, g: gc.sum(h.T @ h), "gram"), "sum"),
    "embedding": (_embedding, "mean"),
    "replicated_mask": (_replicated_mask, "mean"),
    "transposed": (_transposed, "mean"),
    "images": (_images, "mean"),
    "volumes": (_volumes, "mean"),
    "pooled": (_pooled, "mean"),
    "sequences": (_sequences, "mean"),
    "two_means_and_l2": (_two_means, "mean"),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_models_add_up_over_shards(name: str) -> None:
    build, loss = ACCEPTED[name]
    g = build()
    plan = analyse(g)
    assert plan.loss == loss
    rng = np.random.default_rng(1)
    data = _data(g, rng)
    full_outs, full_grads = gc.value_and_grad(g, data, of="loss")
    for k in (1, 2, 3, 5):
        ranges = split_rows(N, k)
        parts = []
        for a, b in ranges:
            shard = {n: v[a:b] if n in plan.batched else v for n, v in data.items()}
            parts.append(gc.value_and_grad(g, shard, of="loss"))
        rows = [b - a for a, b in ranges]
        outs = combine_outputs(plan, [p[0] for p in parts], rows)
        grads = combine_grads(plan, [p[1] for p in parts], rows)
        for key, want in full_outs.items():
            np.testing.assert_allclose(outs[key], want, rtol=1e-12, atol=1e-13, err_msg=key)
        for key, want in full_grads.items():
            np.testing.assert_allclose(grads[key], want, rtol=1e-12, atol=1e-13, err_msg=key)


def test_the_plan_names_the_inputs_and_the_outputs_kinds() -> None:
    plan = analyse(_transposed())
    assert (plan.symbol, plan.batched, plan.replicated, plan.params) == ("N", ("x",), (), ("W",))
    assert plan.outputs == {"loss": Kind("mean"), "h": Kind("rows", 1)}
    plan = analyse(_replicated_mask())
    assert plan.batched == ("x",) and plan.replicated == ("mask",)


def _model(body: Callable[[gc.Graph], gc.Value], name: str = "m") -> gc.Graph:
    g = gc.Graph(name)
    g.output("loss", body(g))
    return g


def _x(g: gc.Graph) -> gc.Value:
    return g.input("x", shape=("N", 3))


def _w(g: gc.Graph, shape: tuple = (3,)) -> gc.Value:
    return g.param("W", shape=shape)


REFUSED = {
    "batch_norm": (
        lambda g: gc.mean((lambda h: (h - gc.mean(h, axis=0)) ** 2)(_x(g) * _w(g))),
        "combines per-example values with a reduction over the batch",
    ),
    "max_over_batch": (lambda g: gc.max(_x(g) @ _w(g)), "max over the batch axis"),
    "log_of_mean": (lambda g: gc.log(gc.mean(gc.exp(_x(g) @ _w(g)))), "log of a mean"),
    "sum_plus_constant": (
        lambda g: (lambda W: gc.sum(_x(g) @ W) + gc.sum(W * W))(_w(g)),
        "does not depend on the batch to a sum",
    ),
    "mean_plus_sum": (
        lambda g: (lambda h: gc.mean(h) + gc.sum(h))(_x(g) @ _w(g)),
        "adds reductions of different kinds",
    ),
    "product_of_means": (
        lambda g: (lambda h: gc.mean(h) * gc.mean(h * h))(_x(g) @ _w(g)),
        "multiplies or divides reductions",
    ),
    "pairwise": (
        lambda g: (lambda h: gc.sum(h @ h.T))(_x(g) @ _w(g, (3, 2))),
        "mixes examples",
    ),
    "softmax_over_batch": (
        lambda g: gc.sum(gc.softmax(_x(g) @ _w(g), axis=0)),
        "normalises over the batch axis",
    ),
    "reshape_mixing": (
        lambda g: gc.mean(gc.reshape(_x(g) * _w(g), (3, "N"))),
        "mixes the batch axis with others",
    ),
    "take_across_examples": (
        lambda g: gc.mean(gc.take(_x(g) * _w(g), g.const(np.array([0, 1]), "int64"), axis=0)),
        "take picks rows across examples",
    ),
    "per_example_loss": (lambda g: gc.sum(_x(g) * _w(g), axis=1), "is per example"),
    "loss_without_data": (
        lambda g: (_x(g), (lambda W: gc.sum(W * W))(_w(g)))[1],
        "does not depend on the batch",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_models_say_why(name: str) -> None:
    body, why = REFUSED[name]
    g = _model(body, name)
    with pytest.raises(gc.GraphError, match=why):
        analyse(g)


def test_the_refusal_names_the_node_and_the_line() -> None:
    g = _model(REFUSED["batch_norm"][0])
    with pytest.raises(gc.GraphError, match=r"^v\d+ \(sub\) at .*test_batch\.py:\d+: "):
        analyse(g)


@pytest.mark.parametrize(
    ("build", "why"),
    [
        (lambda g: g.param("P", shape=("N",)), "param 'P' has the batch axis 'N'"),
        (lambda g: g.input("z", shape=(3, "N")), "must have the batch axis 'N' first"),
        (lambda g: g.input("z", shape=("M", 3)), "different symbols .* batch='N'"),
    ],
)
def test_inputs_that_do_not_fit_the_batch_axis(build, why: str) -> None:
    g = gc.Graph("m")
    x = _x(g)
    extra = build(g)
    g.output("loss", gc.mean(x) + gc.mean(extra))
    with pytest.raises(gc.GraphError, match=why):
        analyse(g)


def test_a_named_batch_symbol_and_no_batch_at_all() -> None:
    g = gc.Graph("m")
    x, z = g.input("x", shape=("N", 3)), g.input("z", shape=("M", 3))
    W = g.param("W", shape=(3,))
    g.output("loss", gc.mean(x @ W) + gc.mean(z @ W))
    plan = analyse(g, batch="N")  # z, without N, goes whole to every shard
    assert (plan.batched, plan.replicated, plan.loss) == (("x",), ("z",), "mean")
    assert analyse(g, batch="M").batched == ("z",)
    g = gc.Graph("static")
    x, W = g.input("x", shape=(4, 3)), g.param("W", shape=(3,))
    g.output("loss", gc.mean(x @ W))
    with pytest.raises(gc.GraphError, match="no data input has a symbolic size first"):
        analyse(g)
    with pytest.raises(gc.GraphError, match="name the scalar loss"):
        analyse(_transposed(), of="nope")
