"""`lower`: scheduled programs and their memory plans become a module's records (records.py):
each step's kernel (an op's lowering, next to its OpDef, or a fused loop, codegen/loops.py),
kernels that are the same up to their values and sizes kept once, and per function the tables
the runtime reads to check a call, lay out its memory and run the steps (codegen/tables.py)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from graphc.codegen.emit import Emit
from graphc.codegen.kir import Kernel, Lit, Repeat, Runtime, Step
from graphc.codegen.loops import fused
from graphc.codegen.records import Const, Module
from graphc.codegen.scan import LOOP, Extra, lower_loop
from graphc.codegen.tables import comment_text, derived_symbols, function_records
from graphc.ir.dag import operands
from graphc.ir.graph import Graph
from graphc.ir.printer import format_params
from graphc.ir.shapes import INT_DTYPES, shape_symbols
from graphc.ops.registry import REGISTRY
from graphc.passes.fuse import loop_op
from graphc.passes.memory import MemoryPlan
from graphc.passes.scan_steps import is_loop
from graphc.passes.schedule import Program


class Context:
    """Names and facts about the values of one graph, shared by every function of a module."""

    def __init__(self, g: Graph, prefix: str = "") -> None:
        self.g = g
        self.G = g.nx
        self.names: dict[int, str] = {}
        self._literals: dict[int, Lit | None] = {}
        self._described: dict[int, str] = {}
        taken: set[str] = set()
        attrs = self.G._node
        for n in sorted(attrs):
            a = attrs[n]
            grad_of = a.get("grad_of")
            name = f"g{grad_of}" if isinstance(grad_of, int) else f"v{n}"
            self.names[n] = prefix + (name if name not in taken else f"v{n}")
            taken.add(name if name not in taken else f"v{n}")

    def shape(self, n: int) -> tuple:
        return self.G._node[n]["shape"]

    def dtype(self, n: int) -> str:
        return self.G._node[n]["dtype"]

    def literal(self, n: int) -> Lit | None:
        """A one-element float or bool constant as a literal, when every step reading it can
        take one (loops over elements, reshape, max, size); else None: an array."""
        if n not in self._literals:
            a = self.G._node[n]
            inline = (
                a["op"] == "const"
                and a["value"].size == 1
                and a["dtype"] not in INT_DTYPES
                and all(
                    loop_op(self.G, s) or self.G._node[s]["op"] in ("reshape", "max", "size")
                    for s in self.G.successors(n)
                )
            )
            self._literals[n] = _literal(a["value"]) if inline else None
        return self._literals[n]

    def step_key(self, nodes: Sequence[int], stored: Sequence[bool]) -> tuple[tuple, list[int]]:
        """What the lowering of a step computing `nodes` (storing those `stored`) reads of the
        graph, with the values it reads from outside numbered in order of first use; and the
        step's values: `nodes`, then those it reads."""
        nodes_ = self.G._node
        values = list(nodes)
        number = {n: k for k, n in enumerate(nodes)}
        key = []
        for n, keep in zip(nodes, stored, strict=True):
            a = nodes_[n]
            args = []
            for u in operands(self.G, n):
                if u not in number:
                    number[u] = len(values)
                    values.append(u)
                    b = nodes_[u]
                    lit = self.literal(u) if b["op"] == "const" else None  # only a const can be
                    args.append((number[u], b["shape"], b["dtype"], lit))
                else:
                    args.append(number[u])
            params = a["params"]
            shown = repr(sorted(params.items())) if params else ""
            key.append((a["op"], shown, a["shape"], a["dtype"], keep, tuple(args)))
        return tuple(key), values

    def name(self, n: int) -> str:
        """`v12`, or `g12` for the gradient of node 12, with an input's name: `v0 'x'`."""
        a = self.G._node[n]
        return self.names[n] + (f" {a['name']!r}" if a["op"] == "input" else "")

    def describe(self, n: int) -> str:
        """`g13 = mul(g14, v30)   [model.py:14]`."""
        got = self._described.get(n)  # every function computing n describes it
        if got is not None:
            return got
        nodes = self.G._node
        a = nodes[n]
        params = format_params(a["op"], a["params"]) if a["params"] else ""
        shown = []
        for u in operands(self.G, n):
            lit = self.literal(u) if nodes[u]["op"] == "const" else None  # only a const can be
            shown.append(self.names[u] if lit is None else repr(lit.value))
        args = ", ".join(shown)
        call = f"{a['op']}[{params}]({args})" if params else f"{a['op']}({args})"
        got = self._described[n] = comment_text(
            f"{self.names[n]} = {call}   [{a.get('loc') or '?'}]"
        )
        return got


def _literal(value: np.ndarray) -> Lit:
    v = value.reshape(()).item()
    if isinstance(v, bool):
        return Lit(v, "bool")
    return Lit(float(v), "float32" if value.dtype == np.float32 else None)


def lower(
    g: Graph,
    programs: dict[str, tuple[Program, MemoryPlan]],
    returns: dict[str, tuple[dict[str, str], ...]],
    meta: dict[str, str],
    source_file: str,
    version: str,
    in_place: dict[str, str] | None = None,
    defaults: dict[str, float] | None = None,
    share: bool = True,
    fusion: bool = True,
) -> Module:
    """The module records: one Function per program, returning the dicts `returns` names for
    it (output name -> key). `in_place` (output -> input) names what train_step writes over
    its inputs; `defaults` the values of the arguments a call may leave out (train_step's
    hyperparameters, its last arguments). `share`: lower the steps that are the same up to
    their values once (the records are the same either way; tests compare). `fusion`: fuse
    the loops of loop bodies (those of the programs are fused already, or not)."""
    ctx = Context(g)
    symbols = sorted(
        {d for prog, _ in programs.values() for n in prog.inputs.values()
         for d in shape_symbols(ctx.shape(n))}
    )  # fmt: skip
    symbols += derived_symbols(ctx.G, symbols)  # a checkpointed loop's sizes, from its T
    consts: dict[Any, int] = {}  # node (or a loop body's constant) -> module constant
    memo: dict | None = {} if share else None
    extras = {name: Extra() for name in programs}
    lowered = {
        name: _steps(ctx, prog, plan, memo, extras[name], fusion)
        for name, (prog, plan) in programs.items()
    }
    kernels: dict[Kernel, int] = {}
    runtime: dict[str, int] = {}
    ids: dict[int, int] = {}  # id(step.kernel) -> its number (a shared kernel is hashed once)
    flat = [s for steps in lowered.values() for s in _flat(steps)]
    for step in flat:
        if isinstance(step.kernel, Kernel) and id(step.kernel) not in ids:
            ids[id(step.kernel)] = kernels.setdefault(step.kernel, len(kernels))
    if any(isinstance(s, Repeat) for steps in lowered.values() for s in steps):
        runtime[LOOP.name] = len(kernels)  # the module's loop: right after its own kernels
        ids[id(LOOP)] = len(kernels)
    for step in flat:
        if isinstance(step.kernel, Runtime) and id(step.kernel) not in ids:
            name = step.kernel.name
            ids[id(step.kernel)] = runtime.setdefault(name, len(kernels) + len(runtime))
    functions = tuple(
        function_records(ctx, name, prog, plan, returns[name], lowered[name], ids, symbols, consts,
                  (in_place or {}) if name == "train_step" else {}, defaults or {},
                  extras[name])
        for name, (prog, plan) in programs.items()
    )  # fmt: skip
    header = (
        f"{g.name}: generated by graphc {version} from {os.path.basename(source_file)}"
        " -- do not edit; compile it again.",
        "Below: the model's loops, each distinct one once; then each function's program, its",
        "steps in order with the nodes and model lines they compute (backward ones: `adj:`),",
        "which graphc's runtime (graphc_rt.h) runs after checking the arguments.",
    )
    return Module(
        name=g.name,
        header=tuple(comment_text(h) for h in header),
        meta=tuple(meta.items()),
        symbols=tuple(symbols),
        kernels=tuple(kernels),
        runtime=tuple(runtime),
        consts=tuple(_const(ctx, n, k, extras) for n, k in consts.items()),
        functions=functions,
    )


def _flat(steps: Sequence[Step | Repeat]) -> list[Step]:
    """`steps` with each loop's body's steps after it (in place of the loop)."""
    out: list[Step] = []
    for s in steps:
        out.extend(_flat(s.body) if isinstance(s, Repeat) else [s])
    return out


CONTINUED = ("(the step above, continued)",)  # the `what` of a step's second kernel and on


def _steps(
    ctx: Context,
    prog: Program,
    plan: MemoryPlan,
    memo: dict | None,
    extra: Extra,
    fusion: bool = True,
) -> list[Step | Repeat]:
    """The kernel-IR steps of `prog`, in order. Steps whose nodes are the same up to their
    values (`ctx.shape_key`) are lowered once, when `memo` (shared by the functions) is given:
    the same kernels bound to other values. A loop's step is a Repeat of its body's steps
    (codegen/scan.py), which adds its body's values to `extra`."""
    out: list[Step | Repeat] = []
    for step in prog.steps:
        G = ctx.G
        if is_loop(G, step):
            out.append(lower_loop(
                ctx, step, plan, extra,
                lambda c, p, pl, ex: _steps(c, p, pl, memo, ex, fusion), Context, fusion,
            ))  # fmt: skip
            continue
        loop = bool(step.fused) or loop_op(G, step.node)
        if not loop and plan.storage[step.node].kind == "alias":
            continue  # a reshape that shares its operand's bytes: nothing to compute
        stored = tuple([plan.storage[n].kind != "local" for n in step.nodes])
        key, values = ctx.step_key(step.nodes, stored)
        rebind = memo is not None and key in memo  # the memo's steps, bound to these values
        if not rebind:
            e = Emit(ctx, step.node)
            if loop:
                fused(e, step.nodes, {n for n, s in zip(step.nodes, stored, strict=True) if s})
            else:
                a = G._node[step.node]
                REGISTRY[a["op"]].lower(e, step.node, operands(G, step.node), a["params"])
            lowered = e.steps
            if memo is not None:
                at = {v: k for k, v in enumerate(values)}
                memo[key] = [replace(s, buffers=tuple(at[b] for b in s.buffers)) for s in lowered]
        else:
            lowered = memo[key]
        what = tuple(
            [
                ("adj: " if section == "backward" else "") + ctx.describe(n)
                for n, section in zip(step.nodes, step.sections_of_nodes(), strict=True)
            ]
        )
        assert len(lowered) == 1 or not step.beside, "a step run beside another is one kernel"
        for k, s in enumerate(lowered):  # (a Step made directly: dataclasses.replace costs 4x)
            out.append(Step(
                s.kernel, tuple(map(values.__getitem__, s.buffers)) if rebind else s.buffers,
                s.sizes, s.floats, what if k == 0 else CONTINUED, step.section, s.work,
                s.alone, step.beside,
            ))  # fmt: skip
    return out


def _const(ctx: Context, n: Any, k: int, extras: dict[str, Extra]) -> Const:
    if isinstance(n, int):
        a, name = ctx.G._node[n], ctx.names[n]
    else:  # a loop body's
        ex = next(e for e in extras.values() if n in e.consts)
        a, name = ex.consts[n], ex.names[n]
    kind = int if a["dtype"] in INT_DTYPES else float
    values = tuple(kind(x) for x in np.asarray(a["value"]).ravel())
    return Const(f"_c{k}", a["dtype"], tuple(a["shape"]), values,
                 comment_text(f"{name} [{a['loc']}]"))  # fmt: skip
