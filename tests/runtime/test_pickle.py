"""A CompiledModule pickles as its graph and build options, so it can go to another process
(multiprocessing), where it is taken from the cache or built again; calling it is forward."""

from __future__ import annotations

import multiprocessing
import pickle
import shutil

import numpy as np
import pytest

import graphc as gc
from tests.models import seed_inputs, seed_net


def loss_of(args: tuple) -> float:
    m, inputs = args
    return float(m(**inputs)["loss"])


@pytest.mark.compiler
def test_pickle_round_trip_is_the_same_module(tmp_path) -> None:
    m = gc.compile(seed_net(), out_dir=tmp_path, optimizer=gc.optim.SGD(lr=0.1))
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.built.cache_hit and m2.built.key == m.built.key
    assert m2.source == m.source and m2.OPTIMIZER == m.OPTIMIZER
    assert m2(**seed_inputs())["loss"] == m.forward(**seed_inputs())["loss"]


@pytest.mark.compiler
def test_unpickling_rebuilds_a_module_whose_build_is_gone(tmp_path) -> None:
    m = gc.compile(seed_net(), out_dir=tmp_path / "b", dtype=np.float32)
    data = pickle.dumps(m)
    shutil.rmtree(tmp_path / "b")
    m2 = pickle.loads(data)
    assert not m2.built.cache_hit and m2.DTYPE == "float32"
    feed = {k: v.astype(np.float32) for k, v in seed_inputs().items()}
    np.testing.assert_array_equal(m2(**feed)["loss"], m(**feed)["loss"])


@pytest.mark.compiler
def test_a_loaded_module_pickles_as_its_path(tmp_path) -> None:
    gc.compile(seed_net(), out_dir=tmp_path)
    m = gc.load(tmp_path / "seed_net")
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.path == m.path and m2(**seed_inputs())["loss"] == m(**seed_inputs())["loss"]


@pytest.mark.compiler
@pytest.mark.parametrize("start", ["spawn", "forkserver"])
def test_multiprocessing_workers_run_the_module(tmp_path, start: str) -> None:
    m = gc.compile(seed_net(), out_dir=tmp_path)
    rng = np.random.default_rng(0)
    batches = [{k: rng.uniform(size=v.shape) for k, v in seed_inputs().items()} for _ in range(4)]
    with multiprocessing.get_context(start).Pool(2) as pool:
        got = pool.map(loss_of, [(m, b) for b in batches], chunksize=1)
    assert got == [loss_of((m, b)) for b in batches]
