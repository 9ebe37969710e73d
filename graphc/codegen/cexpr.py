"""Small helpers that spell dims, sizes, flat indices and literals as Cython expressions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from graphc.ir.shapes import Dim

# int32 and int64 as C's int and long long: 32 and 64 bits wherever NumPy builds
CTYPE = {
    "float64": "double",
    "float32": "float",
    "bool": "npy_bool",
    "int64": "long long",
    "int32": "int",
}
TYPENUM = {
    "float64": "NPY_FLOAT64",
    "float32": "NPY_FLOAT32",
    "bool": "NPY_BOOL",
    "int64": "NPY_INT64",
    "int32": "NPY_INT32",
}
SUFFIX = {"float64": "d", "float32": "s"}  # BLAS's letters: dgemm, sgemm


def dim(d: Dim) -> str:
    """A dimension: an int literal, or the variable holding a symbol's value (`d_N`)."""
    return str(d) if isinstance(d, int) else f"d_{d}"


def size(dims: Sequence[Dim]) -> str:
    """The product of `dims`, ints folded: `d_N*6`, or `1` when empty."""
    const = math.prod(d for d in dims if isinstance(d, int))
    syms = [dim(d) for d in dims if isinstance(d, str)]
    if const == 0:
        return "0"
    factors = syms + ([str(const)] if const != 1 or not syms else [])
    return "*".join(factors)


def _paren(expr: str) -> str:
    return f"({expr})" if "+" in expr else expr


def flat_index(dims: Sequence[Dim], idx: Sequence[str | None]) -> str:
    """Row-major flat index of a value with `dims`, indexed by `idx` (None: index 0)."""
    expr: str | None = None
    for d, i in zip(dims, idx, strict=True):
        if expr is not None and d != 1:
            expr = f"{_paren(expr)}*{dim(d)}"
        if i is not None and d != 1:
            expr = i if expr is None else f"{expr} + {i}"
    return expr or "0"


def literal(value: np.ndarray) -> str:
    """A scalar constant as a Cython literal that reads back to the same value, of its dtype."""
    v = value.reshape(()).item()
    if isinstance(v, bool):
        return "1" if v else "0"
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "(-INFINITY)"
    text = repr(float(v))
    if value.dtype == np.float32:  # keeps float32 arithmetic in float (and vectorised)
        return f"(<float>{text})"
    return f"({text})" if text.startswith("-") else text
