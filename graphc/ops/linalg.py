"""Matrix products with NumPy `matmul` semantics: 1-D, 2-D and batched with broadcast batch dims."""

from __future__ import annotations

import numpy as np

from graphc.ir.graph import Value
from graphc.ir.shapes import ShapeMismatch, broadcast_shapes
from graphc.ops._build import apply, float_dtype
from graphc.ops.registry import OpDef, register
from graphc.ops.shape import reshape, swapaxes


def _infer_matmul(shapes, dtypes, params):
    a, b = shapes
    if not a or not b:
        raise ShapeMismatch("matmul needs operands with at least one dimension")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ShapeMismatch(f"inner dimensions {a2[-1]} and {b2[-2]} differ")
    batch = broadcast_shapes(a2[:-2], b2[:-2])
    out = (*batch, *([a2[-2]] if len(a) > 1 else []), *([b2[-1]] if len(b) > 1 else []))
    return out, float_dtype(dtypes, "matmul")


def _as_matrices(ct: Value, x: Value, y: Value) -> tuple[Value, Value, Value]:
    """Promote 1-D operands to matrices (k,) -> (1,k) / (k,1), and the cotangent to match."""
    x2 = reshape(x, (1, *x.shape)) if x.ndim == 1 else x
    y2 = reshape(y, (*y.shape, 1)) if y.ndim == 1 else y
    ct_shape = list(ct.shape)
    if x.ndim == 1:
        ct_shape.insert(len(ct_shape) - (y.ndim > 1), 1)
    if y.ndim == 1:
        ct_shape.append(1)
    return reshape(ct, tuple(ct_shape)), x2, y2


# With C = A @ B: dA = dC @ B^T and dB = A^T @ dC; batch dims are summed back by grad().
def _dx(ct, out, x, y):
    ct2, _, y2 = _as_matrices(ct, x, y)
    g = ct2 @ swapaxes(y2)
    return reshape(g, (*g.shape[:-2], g.shape[-1])) if x.ndim == 1 else g


def _dy(ct, out, x, y):
    ct2, x2, _ = _as_matrices(ct, x, y)
    g = swapaxes(x2) @ ct2
    return reshape(g, g.shape[:-1]) if y.ndim == 1 else g


register(OpDef("matmul", 2, _infer_matmul, np.matmul, (_dx, _dy),
               formula="d(A@B) = dA @ B + A @ dB"))  # fmt: skip


def matmul(x: Value, y: Value) -> Value:
    """`x @ y` with NumPy's rules."""
    return apply("matmul", x, y)
