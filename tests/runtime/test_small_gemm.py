"""Matrix products of at most _GEMM_SMALL multiply-adds (templates/runtime/runtime.pyx.j2) whose
op(b) fits GC_SMALL_GEMM_B elements as rows of whole vectors run as graphc's own loop
(graphc_rt.h gc_small_gemm), not BLAS: each element the sum of its terms added in order from 0,
one rounding per operation, for every pair of transpose flags, widths that are and are not
whole vectors, batched products shared among threads, and empty ones. The others (a row times
a large matrix, larger products) are BLAS's: within rounding of the same sums."""

import numpy as np
import pytest

import graphc as gc
from tests.bits import same_bits

pytestmark = pytest.mark.compiler

SHAPES = [  # (m, n, k): op(a) is [m, k], op(b) [k, n]
    (1, 1, 1), (3, 5, 7), (10, 10, 16), (10, 16, 10), (4, 17, 9), (13, 8, 33), (32, 32, 16),
    (5, 3, 0), (0, 4, 4), (2, 1030, 2), (1, 160, 100), (40, 40, 40), (2, 100, 20),
]  # fmt: skip
SMALL, B = 16384, 2048  # _GEMM_SMALL, GC_SMALL_GEMM_B
WIDTH = {"float64": 8, "float32": 16}  # a vector's elements


def _small(m: int, n: int, k: int, dtype: str) -> bool:
    w = WIDTH[dtype]
    return m * n * k <= SMALL and k * -(-n // w) * w <= B


def _ordered(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b (batched), each element's terms added in order from 0 in a's dtype."""
    c = np.zeros(a.shape[:-1] + b.shape[-1:], a.dtype)
    for p in range(a.shape[-1]):
        c = (c + a[..., :, p : p + 1] * b[..., p : p + 1, :]).astype(a.dtype)
    return c


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_small_products_add_their_terms_in_order(dtype, tmp_path):
    g = gc.Graph("small_gemm")
    rng = np.random.default_rng(3)
    inputs, wanted = {}, {}
    for s, (m, n, k) in enumerate(SHAPES):
        for ta in (False, True):
            for tb in (False, True):
                a = rng.standard_normal((3, k, m) if ta else (3, m, k)).astype(dtype)
                b = rng.standard_normal((3, n, k) if tb else (3, k, n)).astype(dtype)
                name = f"s{s}_{int(ta)}{int(tb)}"
                inputs[name + "a"], inputs[name + "b"] = a, b
                x = g.input(name + "a", shape=("B", *a.shape[1:]), dtype=dtype)
                y = g.input(name + "b", shape=("B", *b.shape[1:]), dtype=dtype)
                x = gc.transpose(x, (0, 2, 1)) if ta else x
                y = gc.transpose(y, (0, 2, 1)) if tb else y
                g.output(name, x @ y)
                op_a = a.transpose(0, 2, 1) if ta else a
                op_b = b.transpose(0, 2, 1) if tb else b
                wanted[name] = (op_a, op_b, _small(m, n, k, dtype))
    m = gc.compile(g, dtype=dtype, out_dir=tmp_path, functions=("forward",))
    got = m.forward(**inputs)
    for name, (op_a, op_b, small) in wanted.items():
        if small:
            same_bits(got[name], _ordered(op_a, op_b), name)
        else:
            tol = 1e-12 if dtype == "float64" else 1e-4
            np.testing.assert_allclose(got[name], op_a @ op_b, rtol=tol, atol=tol, err_msg=name)
    assert any(not small for *_, small in wanted.values())  # BLAS's products are checked too
