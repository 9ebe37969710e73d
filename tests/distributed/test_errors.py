"""Bad input to DataParallel gets a clear graphc error naming what is wrong, never a hang; a
worker whose build differs from the client's is refused; graphc itself never imports Dask."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import graphc as gc
from tests.distributed.conftest import SKIP_REASON
from tests.models import ROOT, mlp, seed_net


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)  # fmt: skip


def test_graphc_never_imports_dask() -> None:
    p = _python(
        "import sys, graphc, graphc.distributed, graphc.distributed.batch\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_without_dask_the_error_says_what_to_install() -> None:
    p = _python(
        "import sys; sys.modules['distributed'] = None\nfrom graphc.distributed import DataParallel"
    )
    assert p.returncode != 0
    assert "ImportError: graphc.distributed.DataParallel needs Dask's distributed" in p.stderr
    assert "pip install 'graphc[distributed]'" in p.stderr


pytest.importorskip("distributed", reason=SKIP_REASON)
from graphc.distributed import DataParallel, worker  # noqa: E402


def _batch_norm() -> gc.Graph:
    g = gc.Graph("bn")
    x, W = g.input("x", shape=("N", 3)), g.param("W", shape=(3,))
    h = x * W
    g.output("loss", gc.mean((h - gc.mean(h, axis=0)) ** 2))
    return g


def test_a_model_that_does_not_split_is_refused_before_anything_is_built(client, tmp_path):
    with pytest.raises(gc.GraphError, match=r"\(sub\) .*reduction over the batch"):
        DataParallel(_batch_norm(), client, build_dir=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"check_build": "exact"}, "check_build must be 'key' or 'source'"),
        ({"timeout": 0}, "timeout must be a number of seconds > 0"),
        ({"wrt": ["x"]}, r"wrt \['x'\]: data-parallel training differentiates params only"),
    ],
)
def test_bad_options(client, build_dir, kwargs, why) -> None:
    with pytest.raises(gc.GraphError, match=why):
        DataParallel(seed_net(), client, build_dir=build_dir, **kwargs)


@pytest.fixture(scope="module")
def dp(client, build_dir):
    g = mlp(np.random.default_rng(0))[0]
    with DataParallel(g, client, optimizer=gc.optim.SGD(lr=0.1), build_dir=build_dir) as d:
        yield d


@pytest.fixture
def args() -> tuple[dict, dict]:
    _, inputs = mlp(np.random.default_rng(0))
    params = {k: inputs[k] for k in ("W1", "b1", "W2")}
    return params, {"x": inputs["x"], "t": inputs["t"]}


@pytest.mark.compiler
@pytest.mark.parametrize(
    ("change", "error", "why"),
    [
        (lambda p, d: p.pop("W2"), gc.InputError, r"param arrays is missing \['W2'\]"),
        (lambda p, d: d.update(z=d["x"]), gc.InputError, r"data arrays got unknown \['z'\]"),
        (lambda p, d: d.update(t=d["t"][:-1]), gc.InputError, r"disagree .* \{'x': 6, 't': 5\}"),
        (lambda p, d: d.update(x=d["x"][:0], t=d["t"][:0]), gc.InputError, "batch is empty"),
        (lambda p, d: d.update(x=1.0), gc.InputError, "data input 'x' must be an array"),
        (
            lambda p, d: d.update(x=d["x"].astype(np.float32)),
            TypeError,
            "value_and_grad\\(\\): argument 'x': expected a float64 array, got float32",
        ),
        (
            lambda p, d: p.update(W1=p["W1"].T.copy()),
            ValueError,
            r"argument 'W1': expected shape \(4, 5\), got \(5, 4\)",
        ),
    ],
)
def test_bad_arrays_in_a_step(dp, args, change, error, why) -> None:
    params, data = args
    state = dp.init_state(params)
    change(params, data)
    steps = dp.step
    with pytest.raises(error, match=why):
        dp.train_step(params, state, **data)
    assert dp.step == steps and not dp.events  # refused, not retried


@pytest.mark.compiler
def test_bad_calls(dp, args, client, build_dir) -> None:
    params, data = args
    with pytest.raises(gc.InputError, match="function must be 'forward' or 'value_and_grad'"):
        dp.map_batches("train_step", params, **data)
    with pytest.raises(gc.InputError, match="batch_size must be an int > 0"):
        dp.map_batches("forward", params, batch_size=0, **data)
    with DataParallel(seed_net(), client, build_dir=build_dir) as plain:
        with pytest.raises(gc.GraphError, match="train_step needs an optimizer"):
            plain.train_step({}, {}, x=np.zeros((1, 3)), y=np.zeros((1, 2)))
        with pytest.raises(gc.GraphError, match="nothing to save yet"):
            plain.save(build_dir / "never.npz")


@pytest.mark.compiler
def test_a_worker_build_with_another_key_is_refused_naming_what_differs(dp, build_dir) -> None:
    spec = dict(dp._plugin.spec)
    inputs = dict(spec["key_inputs"])
    inputs["numpy"], inputs["cc_command"] = "0.0-other", ["cc", "-O3"]
    bad = spec | {"key": "0" * 64, "key_inputs": inputs}
    with pytest.raises(gc.BuildError, match="another cache key than the client's") as e:
        worker._build(bad)
    assert "  numpy: worker " in str(e.value) and "client '0.0-other'" in str(e.value)
    assert "cc_command" in str(e.value) and "check_build='source'" in str(e.value)
    # Comparing the generated source only: another compiler or CPU is fine ...
    assert worker._build(bad | {"check_build": "source"}).built.key == dp.key
    # ... another source is not.
    inputs["source_sha256"] = "f" * 64
    with pytest.raises(gc.BuildError, match="another generated source"):
        worker._build(bad | {"check_build": "source", "key_inputs": inputs})
