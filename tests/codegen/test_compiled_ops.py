"""Compiled modules agree with the NumPy interpreter, for every op in the registry.

The cases (tests/codegen/cases.py) are grouped into a few models, each built once per dtype
(two builds at a time, in threads: the C compiler runs outside the GIL). Every model is run at
several sizes of its symbolic dims, the empty batch included, with that one build; `forward`
and `value_and_grad` are compared with `gc.evaluate` / `gc.value_and_grad` on the same graph in
the same dtype: to rtol 1e-12 in float64 and 1e-5 in float32, outputs and gradients alike, NaN
where the interpreter has NaN.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.compiler import CompiledModule, run_stages
from graphc.ops.registry import REGISTRY
from tests.codegen.cases import MODELS, SIZES, WEIRD_NAME, Model, forward_only_model

TOL = {"float64": {"rtol": 1e-12, "atol": 1e-14}, "float32": {"rtol": 1e-5, "atol": 1e-6}}
SHORT = {"float64": "f64", "float32": "f32"}

Key = tuple[str, str]  # (model name, dtype)
VALUE_KEYS: list[Key] = [
    (name, dtype) for name, (_, dtypes) in MODELS.items() if name != "const_outputs"
    for dtype in dtypes
]  # fmt: skip
FORWARD_ONLY: Key = ("forward_only", "float64")
CONST_OUTPUTS: Key = ("const_outputs", "float64")


@functools.cache
def model(name: str, dtype: str) -> Model:
    make = forward_only_model if name == "forward_only" else MODELS[name][0]
    return make(f"ops_{name}_{SHORT[dtype]}")


NUMPY_KEYS = [k for k in VALUE_KEYS if any(c.numpy is not None for c in model(*k).cases)]


def key_id(key: Key) -> str:
    return f"{key[0]}-{SHORT[key[1]]}"


def sizes_id(sizes: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sizes.items())


# ---- building: every module the selected tests need, two at a time ----------------------------
@pytest.fixture(scope="module")
def builds(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[Key], CompiledModule]]:
    out_dir = tmp_path_factory.mktemp("compiled_ops")
    pool = ThreadPoolExecutor(max_workers=2)
    futures: dict[Key, Future[CompiledModule]] = {}

    def start(key: Key) -> Future[CompiledModule]:
        if key not in futures:
            futures[key] = pool.submit(_compile, key, out_dir)
        return futures[key]

    here = request.module.__file__
    wanted = {_build_key(item) for item in request.session.items if str(item.path) == here}
    for key in sorted(wanted - {None}, key=lambda k: -len(model(*k).g)):  # the biggest first
        start(key)
    yield lambda key: start(key).result()
    pool.shutdown(wait=True, cancel_futures=True)


def _build_key(item: pytest.Item) -> Key | None:
    """The (model, dtype) a collected test builds, from its `key` parameter."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("key") if callspec is not None else None


def _compile(key: Key, out_dir: Path) -> CompiledModule:
    name, dtype = key
    return gc.compile(model(name, dtype).g, dtype=dtype, out_dir=out_dir)


# ---- comparing --------------------------------------------------------------------------------
def mismatches(what: str, got: np.ndarray, want: np.ndarray, dtype: str) -> list[str]:
    """Why `got` is not `want` (empty if it is): dtype, shape, or the worst elements."""
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape:
        return [f"{what}: got {got.dtype}{got.shape}, want {want.dtype}{want.shape}"]
    if want.dtype == bool or want.dtype.kind in "iu":  # ints and bools: exactly
        bad = got != want
    else:
        tol = TOL[dtype]
        g, w = got.astype(np.float64), want.astype(np.float64)
        with np.errstate(invalid="ignore"):
            close = np.abs(g - w) <= tol["atol"] + tol["rtol"] * np.abs(w)
        same_special = (np.isnan(g) & np.isnan(w)) | ((g == w) & np.isinf(w))
        bad = ~(close | same_special)
    if not bad.any():
        return []
    idx = [tuple(int(i) for i in ix) for ix in np.argwhere(bad)[:3]]
    shown = ", ".join(f"{ix}: got {got[ix]!r}, want {want[ix]!r}" for ix in idx)
    return [f"{what}: {int(bad.sum())} of {bad.size} elements differ; {shown}"]


def compare_all(m: Model, got: dict, want: dict, dtype: str, kind: str) -> list[str]:
    problems = []
    if set(got) != set(want):
        problems.append(f"{kind} names: got {sorted(got)}, want {sorted(want)}")
    for name in sorted(set(got) & set(want)):
        what = f"{kind} {name!r}"
        if kind == "gradient":
            what += f" (read by {', '.join(m.users(name)) or 'no case'})"
        problems += mismatches(what, got[name], want[name], dtype)
    return problems


# ---- every case of every model, at every size, with one build per model and dtype ------------
@pytest.mark.compiler
@pytest.mark.parametrize("sizes", SIZES, ids=sizes_id)
@pytest.mark.parametrize("key", VALUE_KEYS, ids=key_id)
def test_compiled_agrees_with_interpreter(builds, key: Key, sizes: dict[str, int]) -> None:
    name, dtype = key
    m, cm = model(name, dtype), builds(key)
    feed = m.feed(sizes, dtype)
    want_outs, want_grads = gc.value_and_grad(m.graph_in(dtype), feed, of="loss")
    outs, grads = cm.value_and_grad(**feed)
    fwd = cm.forward(**feed)
    problems = compare_all(m, outs, want_outs, dtype, "output")
    problems += compare_all(m, fwd, want_outs, dtype, "forward output")
    problems += compare_all(m, grads, want_grads, dtype, "gradient")
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems)


@pytest.mark.compiler
@pytest.mark.parametrize("key", NUMPY_KEYS, ids=key_id)
def test_outputs_have_numpy_semantics(builds, key: Key) -> None:
    """Cases with a NumPy formula (NaN, infinities, signed zeros, casts to bool) give what
    NumPy gives, not only what the interpreter gives."""
    name, dtype = key
    m = model(name, dtype)
    checked = [c for c in m.cases if c.numpy is not None]
    feed = m.feed(SIZES[0], dtype)
    outs = builds(key).forward(**feed)
    problems = []
    with np.errstate(all="ignore"):
        for c in checked:
            want = np.asarray(c.numpy(*(feed[n] for n in c.inputs)))
            problems += mismatches(f"output {c.label!r}", outs[c.label], want, dtype)
    assert not problems, "\n".join(problems)


# ---- the case table covers the registry ------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_registered_op_is_compiled(dtype: str) -> None:
    """Every op of the registry has a case, and survives `simplify` into the compiled program
    (forward or backward) of some model, in each dtype; so do all four matmul layouts."""
    names = [k for k, d in VALUE_KEYS if d == dtype]
    cased = {c.op for n in names for c in model(n, dtype).cases}
    assert set(REGISTRY) - cased == set(), "ops without a case"
    compiled, layouts = set(), set()
    for n in names:
        G = run_stages(model(n, dtype).g, dtype=dtype).joint.nx
        for _, a in G.nodes(data=True):
            compiled.add(a["op"])
            if a["op"] == "matmul":
                layouts.add((a["params"]["transpose_a"], a["params"]["transpose_b"]))
    assert set(REGISTRY) - compiled == set(), "ops that never reach the generated code"
    assert layouts == {(False, False), (True, False), (False, True), (True, True)}


# ---- empty batches ---------------------------------------------------------------------------
EMPTY = next(s for s in SIZES if s["N"] == 0)


@pytest.mark.compiler
@pytest.mark.parametrize("key", [("reduce", "float64")], ids=key_id)
def test_reductions_over_an_empty_batch(builds, key: Key) -> None:
    """A sum over no elements is 0 and a mean NaN, in both the module and the interpreter."""
    m = model(*key)
    outs, grads = builds(key).value_and_grad(**m.feed(EMPTY))
    np.testing.assert_array_equal(outs["sum[N,3;axis=0]"], np.zeros(3))
    np.testing.assert_array_equal(outs["sum[N,3;axis=None]"], 0.0)
    np.testing.assert_array_equal(outs["sum[N,3;axis=1,keepdims]"], np.zeros((0, 1)))
    assert np.isnan(outs["mean[N,3;axis=0]"]).all() and outs["mean[N,3;axis=0]"].shape == (3,)
    assert np.isnan(outs["mean[N,3;axis=None]"])
    assert np.isnan(outs["loss"])  # the NaN means are part of the loss
    assert all(g.size == 0 for k, g in grads.items() if m.specs[k].shape[:1] == ("N",))


@pytest.mark.compiler
@pytest.mark.parametrize("key", [("matmul", "float64")], ids=key_id)
def test_matmul_over_an_empty_inner_dim(builds, key: Key) -> None:
    """x.T @ y with x, y of N rows sums over N: zeros when N = 0, and no rows when N = 0 is
    an outer dim."""
    m = model(*key)
    outs = builds(key).forward(**m.feed(EMPTY))
    np.testing.assert_array_equal(outs["matmul[x.T@y]"], np.zeros((3, 4)))
    np.testing.assert_array_equal(outs["matmul[x.T@w.T]"], np.zeros((3, 4)))
    assert outs["matmul[2d@2d]"].shape == (0, 4)


# ---- outputs that are not computed by a step of their own ------------------------------------
@pytest.mark.compiler
@pytest.mark.parametrize("key", [("structured", "float64")], ids=key_id)
def test_outputs_that_are_inputs_or_repeated(builds, key: Key) -> None:
    """An input returned as an output, twice, and a value returned under three names (one
    with quotes, braces and a backslash): equal values in separate arrays, so that writing
    into one changes nothing else."""
    m, cm = model(*key), builds(key)
    feed = m.feed(SIZES[0])
    x = feed["x"].copy()
    outs, grads = cm.value_and_grad(**feed)
    a, b = outs["out=input"], outs["out=input(again)"]
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, x)
    np.testing.assert_allclose(outs["out=tanh"], np.tanh(x), rtol=1e-15, atol=1e-15)
    np.testing.assert_array_equal(outs["out=tanh(again)"], outs["out=tanh"])
    np.testing.assert_array_equal(outs[WEIRD_NAME], outs["out=tanh"])
    np.testing.assert_array_equal(outs["out=reshape(tanh)"], outs["out=tanh"].reshape(3, -1))
    arrays = [feed["x"], a, b, outs["out=tanh"], outs["out=tanh(again)"], outs[WEIRD_NAME]]
    for i, p in enumerate(arrays):
        for q in arrays[i + 1 :]:
            assert not np.shares_memory(p, q)
    a[...] = 7.0
    np.testing.assert_array_equal(feed["x"], x)
    np.testing.assert_array_equal(cm.forward(**feed)["out=input"], x)


@pytest.mark.compiler
@pytest.mark.parametrize("key", [CONST_OUTPUTS], ids=key_id)
def test_constant_outputs(builds, key: Key) -> None:
    """Constants returned as outputs (also one a step reads, and a size `simplify` folds),
    from `forward` and `value_and_grad`, as fresh arrays on every call."""
    m, cm = model(*key), builds(key)
    for sizes in SIZES:
        feed = m.feed(sizes)
        want_outs, want_grads = gc.value_and_grad(m.g, feed, of="loss")
        outs, grads = cm.value_and_grad(**feed)
        problems = compare_all(m, outs, want_outs, "float64", "output")
        problems += compare_all(m, cm.forward(**feed), want_outs, "float64", "forward output")
        problems += compare_all(m, grads, want_grads, "float64", "gradient")
        assert not problems, "\n".join(problems)
    feed = m.feed(SIZES[0])
    outs = cm.forward(**feed)
    np.testing.assert_array_equal(outs["c_array"], np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(outs["c_scalar"], 2.5)
    np.testing.assert_array_equal(outs["c_special"], [[1.0, -2.0], [np.nan, np.inf]])
    np.testing.assert_array_equal(outs["size_folded"], 8.0)
    outs["c_array"][...] = 0.0
    outs["c_read"][...] = 0.0
    again = cm.forward(**feed)
    np.testing.assert_array_equal(again["c_array"], np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(again["c_read"], [0.5, -2.0, 4.0])
    np.testing.assert_array_equal(again["y"], outs["y"])


# ---- a model with nothing to differentiate ---------------------------------------------------
@pytest.mark.compiler
@pytest.mark.parametrize("key", [FORWARD_ONLY], ids=key_id)
def test_forward_only_model(builds, key: Key) -> None:
    """No params and no `wrt`: the module has `forward` and no `value_and_grad`; inputs
    returned as outputs, values returned twice and reshaped values come back right at every
    size, the empty batch included (a sum over it is 0, a mean NaN)."""
    m, cm = model(*key), builds(key)
    assert not hasattr(cm, "value_and_grad") and not hasattr(cm.module, "value_and_grad")
    assert cm.WRT == () and set(cm.PLAN) == {"forward"}
    assert cm.stages is not None and cm.stages.grads == {}
    for sizes in SIZES:
        feed = m.feed(sizes)
        outs = cm.forward(**feed)
        problems = compare_all(m, outs, gc.evaluate(m.g, feed), "float64", "output")
        assert not problems, "\n".join(problems)
        assert not np.shares_memory(outs["x"], feed["x"])
        assert not np.shares_memory(outs["x"], outs["x_again"])
        assert not np.shares_memory(outs["h"], outs["h_again"])
    outs = cm.forward(**m.feed(EMPTY))
    np.testing.assert_array_equal(outs["sum"], np.zeros(3))
    assert np.isnan(outs["mean"]).all()
    assert outs["loss"] == 0.0
