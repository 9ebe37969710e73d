"""Sums along the innermost axis advance several rows at a time (codegen/loops.py
`interleaved`) yet add each row's terms in order: the results equal a sum taken term by term,
bit for bit, for row counts that do and do not fill the blocks."""

import numpy as np
import pytest

import graphc as gc

pytestmark = pytest.mark.compiler


def in_order(terms: np.ndarray) -> np.ndarray:
    """Each row's sum, adding its terms first to last (NumPy's own sums are pairwise)."""
    acc = np.zeros(terms.shape[:-1], dtype=terms.dtype)
    for j in range(terms.shape[-1]):
        acc = acc + terms[..., j]
    return acc


@pytest.mark.parametrize("rows", [1, 5, 8, 13])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_row_sums_add_in_order(tmp_path, rows, dtype):
    g = gc.Graph("row_sums")
    x = g.input("x", shape=("N", rows, 37))
    w = g.input("w", shape=(37,))
    g.output("s", gc.sum(x * w, axis=-1))
    g.output("m", gc.mean(gc.tanh(x), axis=2, keepdims=True))
    m = gc.compile(g, out_dir=tmp_path, dtype=dtype)
    assert "rows at a time" in m.source
    rng = np.random.default_rng(rows)
    xs = rng.standard_normal((3, rows, 37)).astype(dtype)
    ws = rng.standard_normal(37).astype(dtype)
    out = m.forward(x=xs, w=ws)
    assert out["s"].tobytes() == in_order(xs * ws).tobytes()
    want = gc.evaluate(g, {"x": xs.astype(np.float64), "w": ws.astype(np.float64)})["m"]
    eps = np.finfo(dtype).eps  # the means cancel: their error is the terms' (|tanh| < 1)
    np.testing.assert_allclose(out["m"], want, rtol=0, atol=16 * eps)
