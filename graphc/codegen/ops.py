"""The lowering table: for every op that is not a loop over elements, the function writing its
code, the kernel template its code calls and its work, gathered from the family modules."""

from __future__ import annotations

from graphc.codegen import cexpr, conv, indexing, kernels
from graphc.codegen.kernels import Values
from graphc.codegen.records import Statement

LOWER = {**kernels.LOWER, **conv.LOWER, **indexing.LOWER}
# The helper each op's code calls, rendered once per dtype from templates/kernels/.
KERNEL_TEMPLATE = {**kernels.KERNEL_TEMPLATE, **conv.KERNEL_TEMPLATE, **indexing.KERNEL_TEMPLATE}
# Multiply-adds, as a C expression, where the elements read and written misjudge them; None:
# the step calls BLAS, which shares its work among its own threads. The kernels of these ops
# (conv and pooling) share large work among the module's threads; the others run on one.
WORK = {**kernels.WORK, **conv.WORK}
THREADED = frozenset(conv.WORK)


def lower_op(v: Values, n: int, op: str, args: list[int], params: dict) -> list[Statement]:
    """The code of a step that is not a loop over elements (those are lowered by `fused`)."""
    if op not in LOWER:
        raise NotImplementedError(f"no code generation for op {op!r}")
    return LOWER[op](v, n, args, params)


def op_work(v: Values, n: int, op: str, args: list[int], params: dict) -> tuple[str | None, bool]:
    """About how many operations the step computing `n` does (a C expression), or None when
    it uses threads of its own (BLAS); and whether its kernel shares large work among the
    module's threads."""
    if op in WORK:
        return WORK[op](v, n, args, params), op in THREADED
    return "+".join(cexpr.size(v.shape(u)) for u in (n, *args)), False
