"""Small helpers shared by the op modules: finding the graph of the operands, adding a node."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.errors import GraphError
from graphc.ir.graph import Value
from graphc.ir.shapes import FLOAT_DTYPES, ShapeMismatch


def apply(op: str, *args: Any, **params: Any) -> Value:
    """Add `op(*args)` to the graph of the first Value among `args`."""
    for a in args:
        if isinstance(a, Value):
            return a.graph.add(op, args, params)
    raise GraphError(f"{op} needs at least one graphc Value operand, got {args!r}")


def float_dtype(dtypes: list[str], op: str) -> str:
    """The promoted float dtype of `dtypes`, or ShapeMismatch if one is not a float."""
    if all(d == dtypes[0] for d in dtypes) and dtypes[0] in FLOAT_DTYPES:
        return dtypes[0]
    for d in dtypes:
        if d not in FLOAT_DTYPES:
            raise ShapeMismatch(f"{op} needs float operands, got {d}")
    return np.result_type(*dtypes).name
