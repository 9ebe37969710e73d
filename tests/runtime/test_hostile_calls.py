"""Hostile calls into a compiled module: every bad argument raises a clear error naming it,
every unusual but valid one computes what the interpreter does, and nothing crashes.

The module is built once; the whole table runs in one `python -X faulthandler` subprocess
(`run_all`, one JSON line per case), so a segfault fails the cases it reached instead of
killing pytest, and faulthandler's traceback says where.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import graphc as gc
from tests.models import ROOT

pytestmark = pytest.mark.compiler
FUNCTIONS = ("forward", "value_and_grad", "train_step")
OPTIMIZER = gc.optim.SGD(lr=0.1, momentum=0.9)
HUGE = 2**40


def model() -> gc.Graph:
    """Two symbols that only meet in an internal [N, M] value (so arrays with an axis of size
    0 can make it as large as they like), an int index, a bool mask, a 0-d param, and an
    elementwise output through exp, log and sigmoid."""
    g = gc.Graph("hostile_calls")
    x = g.input("x", shape=("N", "K"))
    W = g.param("W", shape=("K", "M"))
    c = g.param("c")
    idx = g.input("idx", shape=("B",), dtype="int64")
    mask = g.input("mask", shape=("B",), dtype="bool")
    E = g.param("E", shape=(4, 2))
    h = gc.tanh(x @ W + c)
    r = gc.where(mask, gc.sum(gc.take(E, idx), axis=1), 0.0)
    g.output("loss", gc.sum(h * h) + gc.sum(r))
    g.output("z", gc.exp(x) - gc.log(x * x) + gc.sigmoid(x))
    return g


def inputs() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "x": rng.normal(size=(5, 3)),
        "W": rng.normal(size=(3, 2)),
        "c": np.array(0.3),
        "idx": np.array([0, 3, 1, -1, 3]),
        "mask": np.array([True, False, True, True, False]),
        "E": rng.normal(size=(4, 2)),
    }


def state(m: Any, params: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.zeros_like(np.asarray(params[p], dtype=float)) for k, p in m.STATE.items()}


def read_only(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.flags.writeable = False
    return a


def misaligned(a: np.ndarray) -> np.ndarray:
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    b = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    b[...] = a
    return b


def zero_strided(dtype: Any, shape: tuple) -> np.ndarray:
    """An array declaring `shape` over one element of memory."""
    return as_strided(np.zeros(1, dtype=dtype), shape=shape, strides=(0,) * len(shape))


def sizes(n: int, m: int) -> dict[str, np.ndarray]:
    """x and W of no elements whose declared sizes make N = n and M = m."""
    return {"x": np.empty((n, 0)), "W": np.empty((0, m))}


# ---- the table ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Raises:
    error: str  # the exception's type name
    text: str  # a part of its message


SAME = "same"  # computes what the interpreter computes (train_step: what NumPy's step does)
R = Raises
F, V, T = FUNCTIONS


@dataclass(frozen=True)
class Case:
    fn: str
    change: Callable[[dict, Any], dict]  # (the base inputs, the module) -> keyword arguments
    expect: Raises | str
    positional: bool = False  # pass the arguments by position, in declaration order
    out: Callable[[Any, dict], Any] | None = None  # (module, kwargs) -> out=


def given(**changes: Any) -> Callable[[dict, Any], dict]:
    return lambda a, m: {**a, **changes}


def edit(fn: Callable[[dict], dict]) -> Callable[[dict, Any], dict]:
    return lambda a, m: fn(dict(a))


def train(**changes: Any) -> Callable[[dict, Any], dict]:
    """train_step's arguments (params, data and zero optimiser state), with `changes`."""
    return lambda a, m: {**a, **changes, **state(m, {**a, **changes})}


def nan_inf(a: dict) -> dict:
    x = a["x"].copy()
    x[0] = [np.nan, np.inf, -np.inf]
    x[1, 0] = 0.0
    x[2, 1] = -0.0
    return dict(a, x=x)


CASES: dict[str, Case] = {
    # ---- dtypes
    "x int64": Case(
        F,
        edit(lambda a: dict(a, x=a["x"].astype(np.int64))),
        R("TypeError", "argument 'x': expected a float64 array, got int64"),
    ),
    "x complex": Case(
        F,
        edit(lambda a: dict(a, x=a["x"] + 0j)),
        R("TypeError", "argument 'x': expected a float64 array, got complex128"),
    ),
    "x object": Case(
        F,
        edit(lambda a: dict(a, x=a["x"].astype(object))),
        R("TypeError", "argument 'x': expected a float64 array, got object"),
    ),
    "x bool": Case(
        V,
        edit(lambda a: dict(a, x=a["x"] > 0)),
        R("TypeError", "argument 'x': expected a float64 array, got bool"),
    ),
    "x float16": Case(
        F,
        edit(lambda a: dict(a, x=a["x"].astype(np.float16))),
        R("TypeError", "argument 'x': expected a float64 array, got float16"),
    ),
    "x float32": Case(
        V,
        edit(lambda a: dict(a, x=a["x"].astype(np.float32))),
        R("TypeError", "argument 'x': expected a float64 array, got float32"),
    ),
    "x big-endian": Case(
        F,
        edit(lambda a: dict(a, x=a["x"].astype(">f8"))),
        R("ValueError", "argument 'x' must be aligned and in native byte order"),
    ),
    "x misaligned": Case(
        F,
        edit(lambda a: dict(a, x=misaligned(a["x"]))),
        R("ValueError", "argument 'x' must be aligned and in native byte order"),
    ),
    "idx float": Case(
        F,
        edit(lambda a: dict(a, idx=a["idx"].astype(float))),
        R("TypeError", "argument 'idx': expected an int64 array, got float64; convert it with"),
    ),
    "idx bool": Case(
        F,
        edit(lambda a: dict(a, idx=a["idx"] > 0)),
        R("TypeError", "argument 'idx': expected an int64 array, got bool; convert it with"),
    ),
    "idx int32 is converted": Case(V, edit(lambda a: dict(a, idx=a["idx"].astype(np.int32))), SAME),
    "idx uint64 too big": Case(
        F,
        given(idx=np.array([2**63, 0, 0, 0, 0], dtype=np.uint64)),
        R("ValueError", "argument 'idx': values from 0 to 9223372036854775808 do not fit int64"),
    ),
    "idx out of range": Case(
        F,
        given(idx=np.array([0, 4, 1, 2, 3])),
        R("InputError", "v9 (take) at test_hostile_calls.py:"),
    ),
    "idx negative out of range": Case(
        F,
        given(idx=np.array([0, 1, -5, 2, 3])),
        R("InputError", "index -5 (at (2,) of the indices) is out of bounds"),
    ),
    "mask int": Case(
        F,
        edit(lambda a: dict(a, mask=a["mask"].astype(np.int64))),
        R("TypeError", "argument 'mask': expected a bool array, got int64"),
    ),
    "mask float": Case(
        T,
        train(mask=np.ones(5)),
        R("TypeError", "argument 'mask': expected a bool array, got float64"),
    ),
    # ---- ranks and sizes
    "x 1-d": Case(
        F,
        edit(lambda a: dict(a, x=a["x"].ravel())),
        R("ValueError", "argument 'x': expected 2 dimensions (N, K), got shape (15,)"),
    ),
    "x 3-d": Case(
        V,
        edit(lambda a: dict(a, x=a["x"][None])),
        R("ValueError", "argument 'x': expected 2 dimensions (N, K), got shape (1, 5, 3)"),
    ),
    "c 1-d": Case(
        F,
        given(c=np.array([0.3])),
        R("ValueError", "argument 'c': expected 0 dimensions (), got shape (1,)"),
    ),
    "E transposed": Case(
        F,
        edit(lambda a: dict(a, E=a["E"].T.copy())),
        R("ValueError", "argument 'E': expected shape (4, 2), got (2, 4)"),
    ),
    "W disagrees on K": Case(
        F, given(W=np.ones((4, 2))), R("ValueError", "argument 'W': axis 0 is K=4, but 'x' has K=3")
    ),
    "mask disagrees on B": Case(
        F,
        given(mask=np.ones(4, bool)),
        R("ValueError", "argument 'mask': axis 0 is B=4, but 'idx' has B=5"),
    ),
    # ---- layouts
    "x strided view": Case(
        F,
        given(x=np.ones((5, 6))[:, ::2]),
        R("ValueError", "argument 'x' must be C-contiguous; pass np.ascontiguousarray(x)"),
    ),
    "x negative strides": Case(
        F,
        edit(lambda a: dict(a, x=a["x"][::-1])),
        R("ValueError", "argument 'x' must be C-contiguous"),
    ),
    "W Fortran order": Case(
        V,
        edit(lambda a: dict(a, W=np.asfortranarray(a["W"]))),
        R("ValueError", "argument 'W' must be C-contiguous"),
    ),
    "idx negative strides": Case(V, edit(lambda a: dict(a, idx=a["idx"][::-1])), SAME),
    "idx strided view": Case(F, given(idx=np.array([0, 9, 3, 9, 1, 9, 2, 9, 3, 9])[::2]), SAME),
    "read-only inputs": Case(V, edit(lambda a: {k: read_only(v) for k, v in a.items()}), SAME),
    # ---- aliasing
    "one array as x and W": Case(V, edit(lambda a: _same_x_w(a)), SAME),
    "x and W overlap": Case(F, edit(lambda a: _overlapping_x_w(a)), SAME),
    "out is an input": Case(
        F,
        given(),
        R("ValueError", "out['z'] shares memory with an input"),
        out=lambda m, kw: {"loss": np.zeros(()), "z": kw["x"]},
    ),
    "out overlaps an input": Case(
        F,
        edit(lambda a: dict(a, x=_base()[:5])),
        R("ValueError", "out['z'] shares memory with an input"),
        out=lambda m, kw: {"loss": np.zeros(()), "z": kw["x"].base[3:8]},
    ),
    "train: param is its state": Case(
        T,
        lambda a, m: {**a, **state(m, a), "velocity_W": a["W"]},
        R("ValueError", "argument 'W' is updated in place and shares memory with 'velocity_W'"),
    ),
    "train: param is data": Case(
        T,
        lambda a, m: _train_x_is_w(a, m),
        R("ValueError", "argument 'W' is updated in place and shares memory with 'x'"),
    ),
    "train: read-only param": Case(
        T,
        lambda a, m: {**a, **state(m, a), "W": read_only(a["W"])},
        R("ValueError", "argument 'W' is updated in place, so it must be a writeable NumPy array"),
    ),
    "train: param as a list": Case(
        T,
        lambda a, m: {**a, **state(m, a), "E": a["E"].tolist()},
        R("ValueError", "argument 'E' is updated in place, so it must be a writeable NumPy array"),
    ),
    "train: read-only data": Case(
        T, lambda a, m: {**a, **state(m, a), "x": read_only(a["x"])}, SAME
    ),
    "train": Case(T, train(), SAME),
    "forward with a module's params read-only": Case(
        F, edit(lambda a: dict(a, W=read_only(a["W"]), c=0.3)), SAME
    ),
    # ---- NaN and infinities (IEEE 754 through exp, log, sigmoid, tanh, matmul and where)
    "NaN and inf in x": Case(F, edit(nan_inf), SAME),
    "NaN and inf in x, gradients": Case(V, edit(nan_inf), SAME),
    "inf c": Case(V, given(c=np.array(np.inf)), SAME),
    "NaN in rows the mask drops": Case(
        F, edit(lambda a: dict(a, E=np.where(np.arange(4)[:, None] == 3, np.nan, a["E"]))), SAME
    ),
    # ---- zero sizes
    "N = 0": Case(V, given(x=np.zeros((0, 3))), SAME),
    "B = 0": Case(V, given(idx=np.zeros(0, np.int64), mask=np.zeros(0, bool)), SAME),
    "K = 0": Case(V, given(x=np.zeros((5, 0)), W=np.zeros((0, 2))), SAME),
    "all sizes 0": Case(
        T,
        train(
            x=np.zeros((0, 0)),
            W=np.zeros((0, 0)),
            idx=np.zeros(0, np.int64),
            mask=np.zeros(0, bool),
        ),
        SAME,
    ),
    # ---- huge sizes: zero strides, and sizes whose product overflows
    "x of 2**40 rows over one element": Case(
        F,
        given(x=zero_strided(float, (HUGE, 3))),
        R("ValueError", "argument 'x' must be C-contiguous"),
    ),
    # 2**53 bytes: more than any address space holds, so no allocation of it ever succeeds
    "idx of 2**50 values over one element": Case(
        F,
        given(idx=zero_strided(np.int64, (2**50,)), mask=zero_strided(bool, (2**50,))),
        R(
            "MemoryError",
            "argument 'idx': no memory for a contiguous copy of its 1125899906842624 values",
        ),
    ),
    "N*M = 2**80": Case(
        F,
        given(**sizes(HUGE, HUGE)),
        R(
            "MemoryError",
            "forward(): with B=5, K=0, M=1099511627776, N=1099511627776 this call would need"
            " more than 2**62 bytes",
        ),
    ),
    "N*M*8 = 2**65": Case(
        V,
        given(**sizes(2**31, 2**31)),
        R(
            "MemoryError",
            "value_and_grad(): with B=5, K=0, M=2147483648, N=2147483648 this call would need"
            " more than 2**62 bytes",
        ),
    ),
    "N*M*8 = 2**65, train": Case(
        T,
        train(**sizes(2**31, 2**31)),
        R("MemoryError", "train_step(): with B=5, K=0, M=2147483648, N=2147483648"),
    ),
    "N*M*8 = 2**57": Case(
        F,
        given(**sizes(2**27, 2**27)),
        R("MemoryError", "forward(): cannot allocate 1441151880758"),
    ),
    # ---- names and kinds of argument
    "missing argument": Case(
        F,
        edit(lambda a: {k: v for k, v in a.items() if k != "E"}),
        R("TypeError", "forward() is missing argument E"),
    ),
    "unknown argument": Case(
        V,
        given(y=np.ones(2)),
        R(
            "TypeError",
            "value_and_grad() got an unknown argument 'y'; "
            "it takes ('x', 'W', 'c', 'idx', 'mask', 'E')",
        ),
    ),
    "misspelt argument": Case(
        F,
        edit(lambda a: {("X" if k == "x" else k): v for k, v in a.items()}),
        R("TypeError", "forward() got an unknown argument 'X'"),
    ),
    "state argument missing": Case(
        T,
        given(),
        R("TypeError", "train_step() is missing arguments velocity_W, velocity_c, velocity_E"),
    ),
    "x None": Case(
        F,
        given(x=None),
        R("TypeError", "argument 'x' is None; pass a float64 array of shape (N, K)"),
    ),
    "idx None": Case(
        F,
        given(idx=None),
        R("TypeError", "argument 'idx' is None; pass an int64 array of shape (B,)"),
    ),
    "None by position": Case(
        F,
        given(E=None),
        R("TypeError", "argument 'E' is None; pass a float64 array of shape (4, 2)"),
        positional=True,
    ),
    "by position": Case(V, given(), SAME, positional=True),
    "x a list": Case(F, edit(lambda a: dict(a, x=a["x"].tolist())), SAME),
    "idx a list": Case(V, given(idx=[0, 1, 2, 3, -4]), SAME),
    "c a float": Case(V, given(c=0.3), SAME),
    "c a bool": Case(
        F,
        given(c=True),
        R("TypeError", "argument 'c': expected a float64 array, got bool from a bool"),
    ),
    "x a list of bools": Case(
        F,
        given(x=[[True, False, True]]),
        R("TypeError", "argument 'x': expected a float64 array, got bool from a list"),
    ),
    "x a ragged list": Case(
        F,
        given(x=[[1.0, 2.0], [3.0]]),
        R("TypeError", "argument 'x': a list that is not an array of numbers"),
    ),
    "x a string": Case(
        F,
        given(x="1.0"),
        R("TypeError", "argument 'x': expected a float64 array, got <U3 from a str"),
    ),
    "x a dict": Case(
        F,
        given(x={"a": 1.0}),
        R("TypeError", "argument 'x': expected a float64 array, got object from a dict"),
    ),
    "mask a scalar": Case(
        F,
        given(mask=True),
        R("ValueError", "argument 'mask': expected 1 dimensions (B,), got shape ()"),
    ),
    # ---- out=
    "out": Case(F, given(), SAME, out=lambda m, kw: {"loss": np.zeros(()), "z": np.zeros((5, 3))}),
    "out pair": Case(
        V,
        given(),
        SAME,
        out=lambda m, kw: tuple(
            {k: np.zeros_like(v) for k, v in p.items()} for p in m.value_and_grad(**kw)
        ),
    ),
    "out with an unknown key": Case(
        F,
        given(),
        R(
            "ValueError",
            "forward(): out= has ['zz'], which forward does not return; it returns ['loss', 'z']",
        ),
        out=lambda m, kw: dict(m.forward(**kw), zz=np.zeros(3)),
    ),
    "out grads with an unknown key": Case(
        V,
        given(),
        R("ValueError", "out[1] has ['b'], which value_and_grad does not return"),
        out=lambda m, kw: (lambda o, g: (o, dict(g, b=np.zeros(2))))(*m.value_and_grad(**kw)),
    ),
    "out missing a key": Case(
        F,
        given(),
        R("TypeError", "out= must be a dict like the one forward returns, with an array for 'z'"),
        out=lambda m, kw: {"loss": np.zeros(())},
    ),
    "out of the wrong shape": Case(
        F,
        given(),
        R("ValueError", "out['z'] must be a float64 array of shape (5, 3), got float64 (3, 5)"),
        out=lambda m, kw: {"loss": np.zeros(()), "z": np.zeros((3, 5))},
    ),
    "out of the wrong dtype": Case(
        F,
        given(),
        R("ValueError", "out['z'] must be a float64 array of shape (5, 3), got float32 (5, 3)"),
        out=lambda m, kw: {"loss": np.zeros(()), "z": np.zeros((5, 3), np.float32)},
    ),
    "out read-only": Case(
        F,
        given(),
        R("ValueError", "out['z'] must be C-contiguous, aligned, writeable"),
        out=lambda m, kw: {"loss": np.zeros(()), "z": read_only(np.zeros((5, 3)))},
    ),
    "out a list": Case(
        F,
        given(),
        R("TypeError", "out['z'] must be a NumPy array, got list"),
        out=lambda m, kw: {"loss": np.zeros(()), "z": np.zeros((5, 3)).tolist()},
    ),
    "out arrays overlap": Case(
        F,
        given(),
        R("ValueError", "out['z'] and out['loss'] share memory"),
        out=lambda m, kw: (lambda z: {"loss": z[0, :1].reshape(()), "z": z})(np.zeros((5, 3))),
    ),
    "out not a dict": Case(
        F,
        given(),
        R("TypeError", "out= must be a dict like the one forward returns"),
        out=lambda m, kw: [np.zeros(()), np.zeros((5, 3))],
    ),
    "out a dict for a pair": Case(
        V,
        given(),
        R("TypeError", "out= must be a pair of dicts (outputs, grads)"),
        out=lambda m, kw: m.forward(**kw),
    ),
}


def _base() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(8, 3))


def _same_x_w(a: dict) -> dict:
    """x (N, K) and W (K, M) as the one array (N = K = M = 3)."""
    s = np.random.default_rng(2).normal(size=(3, 3))
    return dict(a, x=s, W=s)


def _overlapping_x_w(a: dict) -> dict:
    base = np.random.default_rng(3).normal(size=(5, 3))
    return dict(a, x=base[:3], W=base[1:4])  # N = K = M = 3, rows 1 and 2 shared


def _train_x_is_w(a: dict, m: Any) -> dict:
    s = np.random.default_rng(4).normal(size=(3, 3))
    kw = dict(a, x=s, W=s)
    return {**kw, **state(m, kw)}


# ---- running the table (in the subprocess) -----------------------------------------------------
def _arrays(kw: dict) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in kw.items()}


def _check_same(m: Any, fn: str, kw: dict, before: dict, result: Any) -> str:
    """ "ok", or how `result` differs from the interpreter's (NumPy's step for train_step)."""
    g = model()
    data = {k: before[k] for k in m.INPUTS}
    want_outs, want_grads = gc.value_and_grad(g, data, of="loss", wrt=["W", "c", "E"])
    if fn == "forward":
        pairs = [(result, want_outs)]
    elif fn == "value_and_grad":
        pairs = [(result[0], want_outs), (result[1], want_grads)]
    else:
        params = {p: before[p].copy() for p in ("W", "c", "E")}
        opt_state = {k: before[k].copy() for k in m.STATE}
        OPTIMIZER.step(params, want_grads, opt_state)
        updated = {k: np.asarray(kw[k]) for k in (*params, *opt_state)}
        pairs = [(result, want_outs), (updated, params | opt_state)]
    for got, want in pairs:
        if set(got) != set(want):
            return f"keys {sorted(got)}, expected {sorted(want)}"
        for k in want:
            try:
                np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-14, equal_nan=True)
            except AssertionError as e:
                return f"{k}: {e}"
    return "ok"


def run_case(m: Any, name: str) -> dict[str, Any]:
    case = CASES[name]
    kw = case.change(inputs(), m)
    before = _arrays(kw) if case.expect == SAME else {}
    fn = getattr(m, case.fn)
    out = case.out(m, kw) if case.out else None
    extra = {} if out is None else {"out": out}
    try:
        if case.positional:
            names = m.INPUTS + (tuple(m.STATE) if case.fn == "train_step" else ())
            result = fn(*[kw[k] for k in names], **extra)
        else:
            result = fn(**kw, **extra)
    except Exception as e:
        return {"case": name, "raised": type(e).__name__, "message": str(e)}
    check = _check_same(m, case.fn, kw, before, result) if case.expect == SAME else "not checked"
    if out is not None and check == "ok":
        parts = result if isinstance(result, tuple) else (result,)
        outs = out if isinstance(out, tuple) else (out,)
        if any(p[k] is not o[k] for p, o in zip(parts, outs, strict=True) for k in o):
            check = "the result is not the out= arrays"
    return {"case": name, "raised": None, "message": "", "check": check}


def run_all(so_path: str) -> None:
    """Load the module at `so_path` and print one JSON line per case."""
    spec = importlib.util.spec_from_file_location("hostile_calls", so_path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    for name in CASES:
        print(f"# {name}", file=sys.stderr, flush=True)  # where faulthandler's report falls
        try:
            row = run_case(m, name)
        except Exception as e:  # the case's own set-up failed
            row = {"case": name, "raised": f"set-up {type(e).__name__}", "message": str(e)}
        print(json.dumps(row), flush=True)


# ---- the tests ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return gc.compile(
        model(), out_dir=tmp_path_factory.mktemp("hostile"), optimizer=OPTIMIZER,
        functions=FUNCTIONS,
    )  # fmt: skip


@pytest.fixture(scope="module")
def results(built) -> dict[str, Any]:
    code = "import sys; from tests.runtime.test_hostile_calls import run_all; run_all(sys.argv[1])"
    r = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", code, str(built.built.so_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    found = {}
    for line in r.stdout.splitlines():
        row = json.loads(line)
        found[row["case"]] = row
    return {"cases": found, "returncode": r.returncode, "stderr": r.stderr[-3000:]}


def test_the_table_ran_to_the_end_without_crashing(results):
    assert results["returncode"] == 0, results["stderr"]
    assert list(results["cases"]) == list(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_call(results, name):
    row = results["cases"].get(name)
    assert row is not None, (
        f"no result: the subprocess died (exit {results['returncode']}) at or before this "
        f"case:\n{results['stderr']}"
    )
    expect = CASES[name].expect
    if expect == SAME:
        assert row["raised"] is None, f"{row['raised']}: {row['message']}"
        assert row["check"] == "ok"
    else:
        assert (row["raised"], expect.text in row["message"]) == (expect.error, True), row
        fn = CASES[name].fn
        assert row["message"].startswith(fn) or f"{fn}()" in row["message"], row


def test_the_module_names_its_functions(built):
    assert built.INPUTS == ("x", "W", "c", "idx", "mask", "E")
    assert built.STATE == {"velocity_W": "W", "velocity_c": "c", "velocity_E": "E"}
