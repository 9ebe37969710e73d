"""The op registry: one `OpDef` per op holds everything graphc knows about it (DESIGN.md §3)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# infer(shapes, dtypes, params) -> (shape, dtype); raises ShapeMismatch with a message.
InferFn = Callable[[list[tuple], list[str], Mapping[str, Any]], tuple[tuple, str]]
# One rule per operand: rule(ct, out, *operands, **params) -> cotangent Value, or None when the
# operand gets no gradient. Rules build nodes with the builder, so the adjoint graph is plain IR.
VjpRule = Callable[..., Any] | None
VARIADIC = -1  # the arity of an op taking one or more operands (concat)


@dataclass(frozen=True)
class OpDef:
    """Everything about one op, side by side."""

    name: str
    arity: int  # or VARIADIC: then `vjp` is one rule, called with `port=i` for operand i
    infer: InferFn
    ref: Callable[..., Any]  # the NumPy reference semantics: ref(*arrays, **params)
    vjp: tuple[VjpRule, ...]  # one rule per operand
    params: Mapping[str, Any] = field(default_factory=dict)  # allowed parameters and defaults
    shape_params: tuple[str, ...] = ()  # params holding shapes that may name symbols
    elementwise: bool = False
    # Elementwise ops: the scalar rule, scalar(*operands, **params) -> a kernel-IR expression
    # (codegen/kir.py) of the operands' expressions, which codegen/loops.py fuses into loops.
    scalar: Callable[..., Any] | None = None
    # The scalar rule also takes `dtypes=(the result's, then each operand's)`: ops on ints and
    # floats alike, whose expressions differ by type (ops/_dtypes.py).
    typed: bool = False
    # Other ops: lower(emit, node, operands, params) adds the node's steps to `emit`
    # (codegen/emit.py): kernels it builds, or runtime kernels it calls.
    lower: Callable[..., None] | None = None
    formula: str = ""  # the derivative, for people reading the registry and the generated code
    # Ops whose value depends on more than their operands' shapes (a loop's results, ops/scan.py):
    # infer_graph(G, n, operands) -> (shape, dtype) is used instead of `infer` when given.
    infer_graph: Callable[..., tuple[tuple, str]] | None = None
    # Params holding more than plain literals (a loop body, a graph): check_param(key, value) ->
    # a problem or None replaces the literal check for them.
    structured: tuple[str, ...] = ()
    check_param: Callable[[str, Any], str | None] | None = None
    fold: bool = True  # may simplify fold it when its operands are constants?
    # A tuple-valued op (a loop) whose results are read by projections: multi_vjp(graph, node,
    # {result index: cotangent}, operands, wanted, params) -> a cotangent (or None) per operand,
    # called by grad in place of the per-operand rules.
    multi_vjp: Callable[..., list] | None = None

    def __post_init__(self) -> None:
        rules = 1 if self.arity == VARIADIC else self.arity
        assert len(self.vjp) == rules, f"{self.name}: one vjp rule per operand"

    @property
    def differentiable(self) -> bool:
        return any(rule is not None for rule in self.vjp)

    def takes(self, n: int) -> bool:
        """Can the op have `n` operands?"""
        return n >= 1 if self.arity == VARIADIC else n == self.arity

    @property
    def arity_text(self) -> str:
        return "one or more" if self.arity == VARIADIC else str(self.arity)

    def rules(self, n: int) -> tuple[VjpRule, ...]:
        """The vjp rule of each of the op's `n` operands."""
        if self.arity != VARIADIC:
            return self.vjp
        (rule,) = self.vjp
        return tuple(None if rule is None else functools.partial(rule, port=i) for i in range(n))

    def param_problem(self, key: str, value: Any) -> str | None:
        """Why `value` cannot be parameter `key` of this op, or None."""
        from graphc.ir.shapes import param_problem

        if key in self.structured and self.check_param is not None:
            return self.check_param(key, value)
        return param_problem(value, self.params[key])

    def full_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """`params` with defaults filled in; unknown names raise KeyError naming them."""
        if not params:
            return dict(self.params)
        params = dict(params)
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise KeyError(f"op {self.name} takes no parameter {', '.join(map(repr, unknown))}")
        return {**self.params, **params}


REGISTRY: dict[str, OpDef] = {}
LEAF_OPS = ("input", "const")


def register(op: OpDef) -> OpDef:
    if op.name in REGISTRY or op.name in LEAF_OPS:
        raise ValueError(f"op {op.name!r} is registered twice")
    REGISTRY[op.name] = op
    return op


def structured(op: str) -> tuple[str, ...]:
    """The params of `op` holding more than literals (a loop's body); () for a leaf."""
    opdef = REGISTRY.get(op)
    return () if opdef is None else opdef.structured


def get_op(name: str) -> OpDef:
    return REGISTRY[name]
