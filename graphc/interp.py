"""The NumPy reference interpreter: runs any valid graph through each op's `ref`."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx
import numpy as np

from graphc.errors import InputError
from graphc.ir.dag import describe, operands, topo_order, without_gc
from graphc.ir.graph import Graph, as_graph
from graphc.ir.shapes import bind_shape, format_shape, is_symbol
from graphc.ops.registry import REGISTRY
from graphc.runtime.calls import convert, dtype_problem, product_problem


def bind_inputs(
    g: Graph, inputs: Mapping[str, Any]
) -> tuple[dict[int, np.ndarray], dict[str, int]]:
    """Check `inputs` against the graph's declared inputs; return node -> array and symbol -> size.

    Raises InputError naming the input, what was expected, what was given, and the model line
    that declared it."""
    declared = g.input_ids()

    def line(name: str) -> str:
        return g.nx.nodes[declared[name]].get("loc") or "?"

    missing = [k for k in declared if k not in inputs]
    unknown = [k for k in inputs if k not in declared]
    if missing:
        where = ", ".join(f"{k} (declared at {line(k)})" for k in missing)
        raise InputError(f"missing input{'s' * (len(missing) > 1)} {where}; "
                         f"graph {g.name!r} takes {', '.join(declared)}")  # fmt: skip
    if unknown:
        raise InputError(
            f"unknown input{'s' * (len(unknown) > 1)} {', '.join(unknown)} "
            f"(graph {g.name!r} takes {', '.join(declared)})"
        )
    values: dict[int, np.ndarray] = {}
    symbols: dict[str, int] = {}
    bound_by: dict[str, str] = {}
    products: list[tuple[str, int, str, int]] = []  # (input, axis, "B*T", size): checked last
    for name, n in declared.items():
        dtype = g.nx.nodes[n]["dtype"]
        if inputs[name] is None:
            raise InputError(f"input {name!r} is None; pass an array of {dtype} "
                             f"(declared at {line(name)})")  # fmt: skip
        try:
            arr = convert(name, inputs[name], dtype)  # the rule of compiled modules
        except (TypeError, ValueError, MemoryError) as e:
            problem = str(e)
        else:
            problem = dtype_problem(name, arr, dtype) or _check_shape(
                g.nx.nodes[n]["shape"], arr, symbols, bound_by, name, products
            )
        if problem:
            raise InputError(f"input {name!r}: {problem} (declared at {line(name)})")
        values[n] = arr
    bound = {k: (v, bound_by[k]) for k, v in symbols.items()}
    for name, axis, d, got in products:
        problem = product_problem(d, got, bound)
        if problem:
            raise InputError(f"input {name!r}: axis {axis} is {problem} (declared at {line(name)})")
    return values, symbols


def _check_shape(
    want: tuple, arr: np.ndarray, symbols: dict, bound_by: dict, name: str, products: list
) -> str:
    """What is wrong with the shape of `arr` as an input of shape `want` ('' if nothing);
    binds the symbols it is the first to name, and adds its product axes to `products`."""
    if arr.ndim != len(want):
        return f"expected {len(want)} dimensions {format_shape(want)}, got shape {arr.shape}"
    for axis, (d, got) in enumerate(zip(want, arr.shape, strict=True)):
        if isinstance(d, int) and d != got:
            return (
                f"expected shape {format_shape(want)}, got {arr.shape} (axis {axis} should be {d})"
            )
        if isinstance(d, str) and not is_symbol(d):
            products.append((name, axis, d, got))
        elif isinstance(d, str):
            if d in symbols and symbols[d] != got:
                return f"axis {axis} is {d}={got}, but {bound_by[d]!r} bound {d}={symbols[d]}"
            symbols.setdefault(d, got)
            bound_by.setdefault(d, name)
    return ""


@without_gc
def evaluate(
    g: Graph | nx.MultiDiGraph, inputs: Mapping[str, Any], outputs: Iterable[str] | None = None
) -> dict[str, np.ndarray]:
    """Run the model with NumPy; return {output name: array} for `outputs` (default: all)."""
    g = as_graph(g)
    G = g.nx
    wanted = list(g.outputs) if outputs is None else list(outputs)
    for name in wanted:
        if name not in g.outputs:
            raise InputError(f"graph {g.name!r} has no output {name!r}; it has {list(g.outputs)}")
    values, symbols = bind_inputs(g, inputs)
    targets = {g.outputs[name] for name in wanted}
    needed = set(targets).union(*(nx.ancestors(G, t) for t in targets))
    order = [n for n in topo_order(G) if n in needed]
    execute(G, order, values, symbols, targets)
    return {name: np.array(values[g.outputs[name]]) for name in wanted}


def execute(
    G: nx.MultiDiGraph,
    order: list[int],
    values: dict[int, Any],
    symbols: Mapping[str, int],
    keep: set[int],
) -> None:
    """Compute the nodes of `order` (a topological order holding every node they need) into
    `values`, which holds the inputs; values no later node reads are dropped, except `keep`.
    A loop's result is a tuple of arrays (see ops/scan.py)."""
    nodes = G._node
    listed = set(order)
    uses = {n: sum(1 for v in G._succ[n] if v in listed) for n in order}
    # IEEE results without warnings, as compiled code gives them (mean of nothing is NaN).
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for n in order:
            attrs = nodes[n]
            if attrs["op"] == "const":
                values[n] = attrs["value"]
                continue
            if attrs["op"] == "input":
                continue
            op = REGISTRY[attrs["op"]]
            args = operands(G, n)
            params = dict(attrs["params"])
            try:
                for key in op.shape_params:
                    params[key] = bind_shape(params[key], symbols)
            except KeyError as e:
                raise InputError(
                    f"{describe(G, n)}: symbol {e.args[0]} is not bound by any input"
                ) from None
            try:
                out = op.ref(*(values[u] for u in args), **params)
            except (ValueError, ArithmeticError) as e:
                raise InputError(f"{describe(G, n)} cannot run on these inputs: {e}") from None
            values[n] = out if isinstance(out, tuple) else np.asarray(out, dtype=attrs["dtype"])
            for u in set(args):
                if u in uses:
                    uses[u] -= 1
                    if uses[u] == 0 and u not in keep:
                        del values[u]
