"""Matrix products with NumPy `matmul` semantics: 1-D, 2-D and batched with broadcast batch dims.

`transpose_a` / `transpose_b` say that an operand is stored with its last two axes swapped, as
BLAS's transa/transb do: `simplify` folds `matmul(swapaxes(a), b)` into `matmul(a, b,
transpose_a=True)` so that no transposed copy is ever made. The builder never sets them.
"""

from __future__ import annotations

import numpy as np

from graphc.codegen.emit import Emit
from graphc.ir.graph import Value
from graphc.ir.shapes import ShapeMismatch, broadcast_shapes
from graphc.ops._build import apply, float_dtype
from graphc.ops.registry import OpDef, register
from graphc.ops.shape import reshape, swapaxes


def _swap_last(shape: tuple) -> tuple:
    return (*shape[:-2], shape[-1], shape[-2])


def _infer_matmul(shapes, dtypes, params):
    a, b = shapes
    if not a or not b:
        raise ShapeMismatch("matmul needs operands with at least one dimension")
    for flag, s in (("transpose_a", a), ("transpose_b", b)):
        if params[flag] and len(s) < 2:
            raise ShapeMismatch(f"{flag} needs an operand with at least two dimensions")
    a = _swap_last(a) if params["transpose_a"] else a
    b = _swap_last(b) if params["transpose_b"] else b
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ShapeMismatch(f"inner dimensions {a2[-1]} and {b2[-2]} differ")
    batch = broadcast_shapes(a2[:-2], b2[:-2])
    out = (*batch, *([a2[-2]] if len(a) > 1 else []), *([b2[-1]] if len(b) > 1 else []))
    return out, float_dtype(dtypes, "matmul")


def _ref(a, b, transpose_a, transpose_b):
    return np.matmul(
        np.swapaxes(a, -1, -2) if transpose_a else a, np.swapaxes(b, -1, -2) if transpose_b else b
    )


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


def _mm(a: Value, b: Value, transpose_a: bool = False, transpose_b: bool = False) -> Value:
    return apply("matmul", a, b, transpose_a=transpose_a, transpose_b=transpose_b)


# With C = op(A) @ op(B), op the stored layout: d op(A) = dC @ op(B)^T, d op(B) = op(A)^T @ dC.
# For operands stored transposed that is dA = op(B) @ dC^T and dB = dC^T @ op(A): each gradient
# is one product with layout flags, never a transposed copy. Batch dims are summed by grad().
def _dx(ct, out, x, y, transpose_a, transpose_b):
    if x.ndim >= 2 and y.ndim >= 2:
        if transpose_a:
            return _mm(y, ct, transpose_a=transpose_b, transpose_b=True)
        return _mm(ct, y, transpose_b=not transpose_b)
    # A 1-D operand: promote both to matrices, then return the gradient in x's stored layout.
    ye = swapaxes(y) if transpose_b else y
    ct2, _, y2 = _as_matrices(ct, x, ye)
    g = _mm(ct2, y2, transpose_b=True)
    if x.ndim == 1:
        return reshape(g, (*g.shape[:-2], g.shape[-1]))
    return swapaxes(g) if transpose_a else g


def _dy(ct, out, x, y, transpose_a, transpose_b):
    if y.ndim == 2 and x.ndim > 2 and not transpose_a:
        # a weight applied over leading axes ([..., K] @ [K, U]): one product over them all,
        # [K, ...] @ [..., U], not one per leading index summed afterwards
        x2, ct2 = reshape(x, (-1, x.shape[-1])), reshape(ct, (-1, ct.shape[-1]))
        return _mm(ct2, x2, transpose_a=True) if transpose_b else _mm(x2, ct2, transpose_a=True)
    if x.ndim >= 2 and y.ndim >= 2:
        if transpose_b:
            return _mm(ct, x, transpose_a=True, transpose_b=transpose_a)
        return _mm(x, ct, transpose_a=not transpose_a)
    xe = swapaxes(x) if transpose_a else x
    ct2, x2, _ = _as_matrices(ct, xe, y)
    g = _mm(x2, ct2, transpose_a=True)
    if y.ndim == 1:
        return reshape(g, g.shape[:-1])
    return swapaxes(g) if transpose_b else g


def _lower_matmul(e: Emit, n: int, args: list[int], params: dict) -> None:
    """One runtime `gemm` (BLAS, or a plain loop for tiny products) per element of the output's
    batch, each operand's batch axes of stride 0 where it is broadcast; or, for a 2-D b
    applied over a's leading axes, one gemm over all of them."""
    a, b = args
    shape = e.values.shape
    ta, tb = params["transpose_a"], params["transpose_b"]
    sa, sb = shape(a), shape(b)
    ea = (*sa[:-2], sa[-1], sa[-2]) if ta else sa
    eb = (*sb[:-2], sb[-1], sb[-2]) if tb else sb
    m = ea[-2] if len(ea) > 1 else 1
    k = ea[-1]
    n_ = eb[-1] if len(eb) > 1 else 1
    out_batch = shape(n)[: len(shape(n)) - (len(sa) > 1) - (len(sb) > 1)]

    def strides(batch: tuple) -> list[list]:
        """Each output batch axis's stride in `batch`'s matrices (0: broadcast)."""
        off = len(out_batch) - len(batch)
        return [[0] if j < off or batch[j - off] == 1 else list(batch[j - off + 1 :])
                for j in range(len(out_batch))]  # fmt: skip

    if len(sb) == 2 and not ta and len(sa) > 2 and tuple(sa[:-2]) == tuple(out_batch):
        # a weight applied over leading axes: a's rows over all of them are one matrix
        ints = [0, int(tb), [*out_batch, m], n_, k, 0]
        return e.runtime(f"gemm_{e.suffix}", [a, b, n], ints, work=None)
    batch = []
    for d, stride_a, stride_b in zip(out_batch, strides(sa[:-2]), strides(sb[:-2]), strict=True):
        batch += [d, stride_a, stride_b]
    ints = [int(ta), int(tb), m, n_, k, len(out_batch), *batch]
    e.runtime(f"gemm_{e.suffix}", [a, b, n], ints, work=None)  # BLAS shares its own work


register(
    OpDef(
        "matmul",
        2,
        _infer_matmul,
        _ref,
        (_dx, _dy),
        params={"transpose_a": False, "transpose_b": False},
        lower=_lower_matmul,
        formula="d(A@B) = dA @ B + A @ dB",
    )
)


def matmul(x: Value, y: Value) -> Value:
    """`x @ y` with NumPy's rules."""
    return apply("matmul", x, y)
