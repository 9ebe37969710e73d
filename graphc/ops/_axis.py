"""Loops that ops along an axis or over several axes share (scans, arg-reductions, products,
statistics): a value seen as [outer, n, inner] around one axis, and the nest of a reduction,
each output position then each element reduced into it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from graphc.codegen.emit import KernelBuilder, flat_index, loop_nest
from graphc.codegen.kir import INDEX, Expr, Lit, Loop, Stmt, Var
from graphc.ir.shapes import Dim


class AxisView:
    """A value of `shape` seen as [outer, n, inner] around `axis` (None: the flattened value,
    [1, size, 1]): extents as kernel expressions, and the flat index of (o, k, i)."""

    def __init__(self, kb: KernelBuilder, shape: Sequence[Dim], axis: int | None) -> None:
        if axis is None:
            self.outer, self.n, self.inner = Lit(1), kb.extent(shape), Lit(1)
        else:
            self.outer = kb.extent(shape[:axis])
            self.n = kb.dim(shape[axis])
            self.inner = kb.extent(shape[axis + 1 :])

    def at(self, o: Expr, k: Expr, i: Expr) -> Expr:
        row = k if self.outer == Lit(1) else o * self.n + k
        return row if self.inner == Lit(1) else row * self.inner + i

    def kept(self, o: Expr, i: Expr) -> Expr:
        """The flat index of (o, i) in the reduced value [outer, inner]."""
        return o if self.inner == Lit(1) else (i if self.outer == Lit(1) else o * self.inner + i)


def loops(heads: Sequence[tuple[str, Expr]], body: Callable[..., list[Stmt]]) -> list[Stmt]:
    """Nested loops over (name, extent) pairs, outermost first, around body(*vars); an extent
    of 1 is no loop (its variable is 0)."""
    names = [Var(name, INDEX) if ext != Lit(1) else Lit(0) for name, ext in heads]
    stmts = body(*names)
    for var, (_, ext) in reversed(list(zip(names, heads, strict=True))):
        if isinstance(var, Var):
            stmts = [Loop(var, Lit(0), ext, tuple(stmts))]
    return stmts


def reduce_loops(
    kb: KernelBuilder,
    shape: Sequence[Dim],
    axes: Sequence[int],
    body: Callable[[Expr, Callable[[Callable[[Expr], list[Stmt]]], list[Stmt]]], list[Stmt]],
) -> list[Stmt]:
    """For each position of the reduced value (`axes` kept as 1s), body(at_out, inner), where
    inner(fn) loops fn(at_x) over the elements reduced into it, in row-major order."""
    kept = tuple(1 if k in axes else d for k, d in enumerate(shape))
    red = tuple(d if k in axes else 1 for k, d in enumerate(shape))

    def outer(idx_kept: list) -> list[Stmt]:
        def inner(fn: Callable[[Expr], list[Stmt]]) -> list[Stmt]:
            def at(idx_red: list) -> list[Stmt]:
                pairs = enumerate(zip(idx_kept, idx_red, strict=True))
                idx = [r if k in axes else q for k, (q, r) in pairs]
                return fn(flat_index(kb, shape, idx))

            return loop_nest(kb, red, at, prefix="j")

        return body(flat_index(kb, kept, idx_kept), inner)

    return loop_nest(kb, kept, outer)
