"""The lowering table: for every op that is not a loop over elements, the function writing its
code and the kernel template its code calls, gathered from the family modules."""

from __future__ import annotations

from graphc.codegen import conv, indexing, kernels
from graphc.codegen.kernels import Values
from graphc.codegen.records import Statement

LOWER = {**kernels.LOWER, **conv.LOWER, **indexing.LOWER}
# The helper each op's code calls, rendered once per dtype from templates/kernels/.
KERNEL_TEMPLATE = {**kernels.KERNEL_TEMPLATE, **conv.KERNEL_TEMPLATE, **indexing.KERNEL_TEMPLATE}


def lower_op(v: Values, n: int, op: str, args: list[int], params: dict) -> list[Statement]:
    """The code of a step that is not a loop over elements (those are lowered by `fused`)."""
    if op not in LOWER:
        raise NotImplementedError(f"no code generation for op {op!r}")
    return LOWER[op](v, n, args, params)
