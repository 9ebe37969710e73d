"""DataParallel on a two-worker LocalCluster in this process: the same answers as one process.

References are independent of the code under test: the module gc.compile builds, run on the
whole batch with the optimiser's NumPy update, and the NumPy interpreter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import graphc as gc
from tests.distributed.conftest import SKIP_REASON, WORKERS
from tests.models import mlp, seed_net

pytest.importorskip("distributed", reason=SKIP_REASON)
da = pytest.importorskip("dask.array", reason=SKIP_REASON)

from graphc.distributed import DataParallel  # noqa: E402

pytestmark = pytest.mark.compiler
N = 101  # odd: the two shards differ by one row
STEPS = 20


def _batch(seed: int = 1, n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, 4)), "t": np.eye(3)[rng.integers(0, 3, n)]}


def _params(g: gc.Graph) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    return {k: rng.normal(size=v.shape) for k, v in mlp(rng)[1].items() if k in ("W1", "b1", "W2")}


def _relative(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(b[k]))) for k in b)


def _train(dp: DataParallel, params: dict, batches: list[dict], **kw: Any) -> tuple[list, dict]:
    state = dp.init_state(params)
    losses = []
    for b in batches:
        loss, params, state = dp.train_step(params, state, **b, **kw)
        losses.append(loss)
    return losses, params


def _reference(g, opt, params, batches, build_dir) -> tuple[list, dict]:
    """Full-batch training in this process: compiled value_and_grad and opt.step."""
    m = gc.compile(g, out_dir=build_dir)
    params = {k: v.copy() for k, v in params.items()}
    state = opt.init(params)
    losses = []
    for b in batches:
        outs, grads = m.value_and_grad(**b, **params)
        opt.step(params, grads, state)
        losses.append(float(outs["loss"]))
    return losses, params


@pytest.fixture(scope="module")
def model() -> gc.Graph:
    return mlp(np.random.default_rng(0))[0]


@pytest.mark.parametrize(
    "opt",
    [gc.optim.Adam(lr=1e-2), gc.optim.SGD(lr=0.1, momentum=0.9, nesterov=True)],
    ids=["adam", "sgd-nesterov"],
)
def test_twenty_steps_equal_single_process_training(client, build_dir, model, opt) -> None:
    batches = [_batch(seed) for seed in range(STEPS)]
    params = _params(model)
    with DataParallel(model, client, optimizer=opt, build_dir=build_dir, timeout=120) as dp:
        losses, trained = _train(dp, params, batches)
        rows = [t.rows for t in dp.timings]
    want_losses, want = _reference(model, opt, params, batches, build_dir)
    assert _relative(trained, want) < 1e-12
    np.testing.assert_allclose(losses, want_losses, rtol=1e-12)
    assert _relative(trained, params) > 1e-3  # it did train
    assert all(sorted(r) == [50, 51] for r in rows)  # one shard per worker, one row apart
    assert dp.step == STEPS


def test_two_runs_are_bit_for_bit_equal(client, build_dir, model) -> None:
    batches = [_batch(seed) for seed in range(8)]
    runs = []
    for _ in range(2):
        dp = DataParallel(model, client, optimizer=gc.optim.Adam(lr=1e-2), build_dir=build_dir)
        with dp:
            runs.append(_train(dp, _params(model), batches))
    (loss_a, a), (loss_b, b) = runs
    assert loss_a == loss_b
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_the_gradient_is_the_interpreters(client, build_dir) -> None:
    """map_batches('value_and_grad') on more shards than workers against the interpreter."""
    g = seed_net()
    rng = np.random.default_rng(3)
    data = {"x": rng.normal(size=(37, 3)), "y": rng.uniform(size=(37, 2))}
    params = {"W1": rng.normal(size=(2, 3)), "b1": rng.normal(size=2),
              "W2": rng.normal(size=(2, 2)), "b2": rng.normal(size=1)}  # fmt: skip
    want_outs, want_grads = gc.value_and_grad(g, data | params, of="loss")
    with DataParallel(g, client, build_dir=build_dir) as dp:
        outs, grads = dp.map_batches("value_and_grad", params, batch_size=5, **data)
    np.testing.assert_allclose(outs["loss"], want_outs["loss"], rtol=1e-12)
    assert _relative(grads, want_grads) < 1e-12


def test_a_sum_loss_with_replicated_input_adds_shards_unweighted(client, build_dir) -> None:
    g = gc.Graph("sum_loss")
    x, scale = g.input("x", shape=("N", 4)), g.input("scale", shape=(2,))
    W = g.param("W", shape=(4, 2))
    g.output("loss", gc.sum(gc.tanh(x @ W) * scale))
    rng = np.random.default_rng(4)
    data = {"x": rng.normal(size=(9, 4)), "scale": np.array([0.5, -2.0])}
    params = {"W": rng.normal(size=(4, 2))}
    opt = gc.optim.SGD(lr=0.01)
    with DataParallel(g, client, optimizer=opt, build_dir=build_dir) as dp:
        assert dp.plan.loss == "sum" and dp.plan.replicated == ("scale",)
        losses, trained = _train(dp, params, [data] * 3)
    want_losses, want = _reference(g, opt, params, [data] * 3, build_dir)
    assert _relative(trained, want) < 1e-12
    np.testing.assert_allclose(losses, want_losses, rtol=1e-12)


def test_dask_arrays_are_used_where_they_are(client, build_dir, model, monkeypatch) -> None:
    """A batch held on the workers: one shard per chunk, and the step never brings the data
    to the client (computing or converting a dask array there fails during the step)."""
    b = _batch()
    xd = client.persist(da.from_array(b["x"], chunks=(40, 4)))
    td = client.persist(da.from_array(b["t"], chunks=(40, 3)))
    params = _params(model)
    opt = gc.optim.Adam(lr=1e-2)

    def no_round_trip(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the batch was brought to the client")

    with DataParallel(model, client, optimizer=opt, build_dir=build_dir) as dp:
        state = dp.init_state(params)
        with monkeypatch.context() as m:
            for name in ("__array__", "compute"):
                m.setattr(da.Array, name, no_round_trip)
            loss, trained, _ = dp.train_step(params, state, x=xd, t=td)
        timing = dp.timings[-1]
    assert timing.rows == [40, 40, 21]  # one shard per chunk
    assert timing.bytes["batch from the client"] == 0
    want_losses, want = _reference(model, opt, params, [b], build_dir)
    assert _relative(trained, want) < 1e-12
    assert loss == pytest.approx(want_losses[0], rel=1e-12)


def test_dask_arrays_chunked_differently_are_refused(client, build_dir, model) -> None:
    b = _batch()
    xd, td = da.from_array(b["x"], chunks=(40, 4)), da.from_array(b["t"], chunks=(50, 3))
    with DataParallel(model, client, optimizer=gc.optim.SGD(), build_dir=build_dir) as dp:
        params = _params(model)
        with pytest.raises(gc.InputError, match="chunked differently along the batch axis"):
            dp.train_step(params, dp.init_state(params), x=xd, t=td)


@pytest.fixture(scope="module")
def logits_model() -> gc.Graph:
    g = gc.Graph("logits_mlp")
    x, y = g.input("x", shape=("N", 4)), g.input("y", shape=("N",), dtype="int64")
    logits = gc.nn.dense(gc.nn.dense(x, 8, "h", activation="tanh"), 3, "out")
    g.output("loss", gc.softmax_cross_entropy(logits, y))
    g.output("logits", logits)
    return g


def test_map_batches_forward_numpy_and_dask(client, build_dir, logits_model) -> None:
    g = logits_model
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(57, 4)), rng.integers(0, 3, 57)
    params = gc.nn.init_params(g, seed=1)
    want = gc.evaluate(g, {"x": x, "y": y, **params})
    with DataParallel(g, client, build_dir=build_dir) as dp:
        numpy_out = dp.map_batches("forward", params, batch_size=10, x=x, y=y)
        xd, yd = da.from_array(x, chunks=20), da.from_array(y, chunks=20)
        dask_out = dp.map_batches("forward", params, x=xd, y=yd)
    assert isinstance(numpy_out["logits"], np.ndarray)
    np.testing.assert_allclose(numpy_out["logits"], want["logits"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(numpy_out["loss"], want["loss"], rtol=1e-12)
    assert isinstance(dask_out["logits"], da.Array)  # per-example outputs stay on the workers
    assert dask_out["logits"].chunks == ((20, 20, 17), (3,))
    np.testing.assert_allclose(dask_out["logits"].compute(), want["logits"], rtol=1e-12,
                               atol=1e-14)  # fmt: skip
    np.testing.assert_allclose(dask_out["loss"], want["loss"], rtol=1e-12)


def test_every_worker_built_the_clients_key(client, build_dir, model) -> None:
    with DataParallel(model, client, build_dir=build_dir) as dp:
        assert len(dp.builds) == WORKERS
        assert {b["key"] for b in dp.builds.values()} == {dp.key}
        assert dp.key == dp.module.built.key


def test_two_data_parallels_of_one_model_are_independent(client, build_dir, model) -> None:
    params, batch = _params(model), _batch()
    first = DataParallel(model, client, optimizer=gc.optim.SGD(lr=0.1), build_dir=build_dir)
    with DataParallel(model, client, optimizer=gc.optim.SGD(lr=0.1), build_dir=build_dir) as dp:
        first.close()  # removes its own model from the workers, not the other's
        _, after, _ = dp.train_step(params, dp.init_state(params), **batch)
    assert _relative(after, params) > 0
    with pytest.raises(gc.BuildError, match="has no graphc model with key"):
        first.train_step(params, first.init_state(params), **batch)


def test_params_outside_wrt_stay_as_they_are(client, build_dir, model) -> None:
    params, batches = _params(model), [_batch(seed) for seed in range(3)]
    opt = gc.optim.Adam(lr=1e-2)
    with DataParallel(model, client, optimizer=opt, wrt=["W1"], build_dir=build_dir) as dp:
        _, trained = _train(dp, params, batches)
        assert set(dp.state) == {"m_W1", "v_W1", "step"}
    m = gc.compile(model, wrt=["W1"], out_dir=build_dir)
    want, state = {"W1": params["W1"].copy()}, opt.init({"W1": params["W1"]})
    for b in batches:
        opt.step(want, m.value_and_grad(**b, **params | want)[1], state)
    assert _relative({"W1": trained["W1"]}, want) < 1e-12
    assert all(np.array_equal(trained[k], params[k]) for k in ("b1", "W2"))
