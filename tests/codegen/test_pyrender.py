"""The kernel IR is neutral: the same records rendered as Python over NumPy (codegen/pyrender.py)
run as the Cython module does, on every model of the compiled-op tests."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.codegen.pyrender import PyModule
from graphc.compiler import run_stages
from tests.codegen.test_compiled_ops import VALUE_KEYS, key_id, model
from tests.models import mlp, seed_inputs, seed_net

SIZES = {"N": 2, "K": 2}  # small: the Python backend loops element by element


def _both(g: gc.Graph, dtype: str, tmp_path) -> tuple[PyModule, object]:
    st = run_stages(g, dtype=dtype)
    return PyModule(st.module), gc.compile(g, dtype=dtype, out_dir=tmp_path)


def _agree(got: dict, want: dict, dtype: str) -> None:
    assert got.keys() == want.keys()
    tol = 1e-10 if dtype == "float64" else 1e-4
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=tol, atol=tol, equal_nan=True, err_msg=k)
        assert np.asarray(got[k]).dtype == np.asarray(want[k]).dtype, k


# The float32 models run through the same renderer as the float64 ones (the Python backend
# computes in NumPy's float32 either way), and the spatial model's Python loops take seconds
# (conv covers its kernels): slow, to keep the default run short.
PY_KEYS = [pytest.param(k, marks=pytest.mark.slow) if k[1] == "float32" or k[0] == "spatial"
           else k for k in VALUE_KEYS]  # fmt: skip


@pytest.mark.compiler
@pytest.mark.parametrize("key", PY_KEYS, ids=key_id)
def test_the_python_backend_runs_what_the_module_runs(key, tmp_path) -> None:
    name, dtype = key
    m = model(name, dtype)
    py, native = _both(m.graph_in(dtype), dtype, tmp_path)
    feed = m.feed(SIZES, dtype)
    _agree(py.forward(**feed), native.forward(**feed), dtype)
    if hasattr(native, "value_and_grad"):
        outs, grads = py.value_and_grad(**feed)
        want_outs, want_grads = native.value_and_grad(**feed)
        _agree(outs, want_outs, dtype)
        _agree(grads, want_grads, dtype)


@pytest.mark.compiler
def test_the_python_backend_reads_the_same_tables(tmp_path) -> None:
    """Its source holds the same kernels, one function each, as the module's."""
    py, native = _both(seed_net(), "float64", tmp_path)
    assert py.source.count("\ndef _k") == native.source.count("\ncdef gc_kernel _k") - sum(
        native.source.count(f"_k{k}_") > 0 for k in range(len(py.module.kernels))
    )
    outs, grads = py.value_and_grad(**seed_inputs())
    _agree(outs, native.value_and_grad(**seed_inputs())[0], "float64")


def test_the_python_backend_needs_no_compiler() -> None:
    g, inputs = mlp(np.random.default_rng(3))
    py = PyModule(run_stages(g).module)
    want_outs, want_grads = gc.value_and_grad(g, inputs, of="loss")
    outs, grads = py.value_and_grad(**inputs)
    _agree(outs, want_outs, "float64")
    _agree(grads, want_grads, "float64")
