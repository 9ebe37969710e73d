"""Reverse-mode differentiation as a graph transformation: the adjoint graph is ordinary IR."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from graphc.errors import GraphError, ShapeError
from graphc.ir.dag import ancestors, describe, operands, topo_order, without_gc
from graphc.ir.graph import Graph, Value, as_graph
from graphc.ir.shapes import FLOAT_DTYPES, can_broadcast_to, format_type
from graphc.ops.elementwise import cast
from graphc.ops.reduce import sum as reduce_sum
from graphc.ops.registry import REGISTRY
from graphc.ops.shape import broadcast_to, reshape
from graphc.ops.slicing import concat


def grad_name(of: str, wrt: str) -> str:
    """The output name under which `grad` stores d(of)/d(wrt)."""
    return f"d{of}/d{wrt}"


def unbroadcast(ct: Value, shape: tuple) -> Value:
    """Sum `ct` over the axes that broadcasting added or stretched, so it has `shape`.

    The one place where broadcast gradients are reduced (DESIGN.md §3)."""
    if ct.shape == shape:
        return ct
    if not can_broadcast_to(shape, ct.shape):  # a VJP rule's bug: never paper over it
        raise GraphError(
            f"internal error: the gradient of {describe(ct.graph.nx, ct.id)} has shape "
            f"{ct.shape}, which cannot be summed to its operand's shape {shape}"
        )
    lead = ct.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and ct.shape[lead + i] != 1
    )
    out = reduce_sum(ct, axes, keepdims=False) if axes else ct
    return out if out.shape == shape else reshape(out, shape)


def _select_wrt(g: Graph, wrt: str | Iterable[str] | None) -> dict[str, int]:
    inputs = g.input_ids()
    if wrt is None:
        chosen = {
            k: n
            for k, n in g.input_ids(role="param").items()
            if g.nx.nodes[n]["dtype"] in FLOAT_DTYPES
        }
        if not chosen:
            raise GraphError(f"graph {g.name!r} has no params; name the inputs to differentiate")
        return chosen
    names = [wrt] if isinstance(wrt, str) else list(wrt)
    for name in names:
        if name not in inputs:
            raise GraphError(
                f"wrt {name!r} is not an input of graph {g.name!r}; inputs are {', '.join(inputs)}"
            )
    for name in names:
        if g.nx.nodes[inputs[name]]["dtype"] not in FLOAT_DTYPES:
            raise GraphError(
                f"wrt {name!r} is a {g.nx.nodes[inputs[name]]['dtype']} input: "
                "only float inputs have gradients"
            )
    return {name: inputs[name] for name in names}


@without_gc
def grad(
    g: Graph | nx.MultiDiGraph,
    of: str,
    wrt: str | Iterable[str] | None = None,
    allow_unused: bool = False,
) -> Graph:
    """A new graph with the outputs of `g` plus d(of)/d(w) for each `w` in `wrt` (default: the
    params), named `grad_name(of, w)`. `of` must be a scalar output."""
    g = as_graph(g)
    if of not in g.outputs:
        raise GraphError(f"of={of!r} is not an output of graph {g.name!r}: {list(g.outputs)}")
    dg = g.copy()
    G = dg.nx
    root = dg.outputs[of]
    if G._node[root]["shape"] != ():
        a = G._node[root]
        raise ShapeError(
            f"of={of!r} must be a scalar to differentiate, but {describe(G, root)} is "
            f"{format_type(a['shape'], a['dtype'])}; reduce it first, e.g. with gc.sum"
        )
    targets = _select_wrt(dg, wrt)
    outputs = dg.outputs
    for name in targets:
        out = grad_name(of, name)
        if out in outputs:
            raise GraphError(f"graph {g.name!r} already has an output named {out!r}")

    first_new = dg.next_id
    with dg.at(G._node[root]["loc"]):
        seed = dg.const(1.0, dtype=G._node[root]["dtype"])
    totals = backprop(dg, {root: seed}, targets, allow_unused, f"{of!r}", first_new)
    for name, total in totals.items():
        dg.output(grad_name(of, name), total)
    return dg


def backprop(
    dg: Graph,
    seeds: dict[int, Value],
    targets: dict[str, int],
    allow_unused: bool = False,
    what: str = "the output",
    first_new: int | None = None,
) -> dict[str, Value]:
    """Add to `dg` the adjoint nodes carrying the cotangents `seeds` (node -> its cotangent)
    back to the inputs `targets` (name -> node); return each target's total cotangent.
    A tuple-valued node (a loop) gets the cotangents of its projections together, and its
    op's `multi_vjp` gives its operands' (see OpDef). Nodes from id `first_new` on (default:
    those added here) are labelled with the node they are the cotangent of."""
    G = dg.nx
    # Forward sweep: which nodes depend differentiably on some wrt input.
    reaches_root = ancestors(G, seeds)
    topo = [n for n in topo_order(G) if n in reaches_root]
    active = set(targets.values())
    for n in topo:
        op = G._node[n]["op"]
        if n in active or op in ("input", "const"):
            continue
        opdef = REGISTRY[op]
        if G._node[n]["dtype"] not in FLOAT_DTYPES and opdef.multi_vjp is None:
            continue
        args = operands(G, n)
        rules = opdef.rules(len(args))
        if any(u in active and rules[p] is not None for p, u in enumerate(args)):
            active.add(n)

    # Reverse sweep: one loop; a value's cotangents, one per use, are added as they come (so each
    # is freed early), except slices put back in place, which wait until the value is reached.
    first_new = dg._next_id if first_new is None else first_new
    cts: dict[int, list[Value]] = {n: [c] for n, c in seeds.items()}
    parts: dict[int, dict[int, Value]] = {}  # a tuple's projections' cotangents, by index
    for n in reversed(topo):
        if n not in active or G._node[n]["op"] in ("input", "const"):
            continue
        attrs = G._node[n]
        op = REGISTRY[attrs["op"]]
        if op.multi_vjp is not None:  # a loop: its results' cotangents together
            if n not in parts:
                continue
            dg._loc = attrs["loc"]
            args = [Value(dg, u) for u in operands(G, n)]
            wanted = [u.id in active for u in args]
            got = op.multi_vjp(dg, n, parts.pop(n), args, wanted, attrs["params"])
            for u, c, want in zip(args, got, wanted, strict=True):
                if c is not None and want:
                    _collect(cts.setdefault(u.id, []), cast(unbroadcast(c, u.shape), u.dtype))
            continue
        if n not in cts:
            continue
        dg._loc = attrs["loc"]  # adjoint nodes are attributed to the line of their forward node
        ct = _total(cts[n])
        args = [Value(dg, u) for u in operands(G, n)]
        if len(args) == 1 and _multi(G._node[args[0].id]["op"]):
            parts.setdefault(args[0].id, {})[attrs["params"]["index"]] = ct  # a projection
            _label(G, ct.id, n, first_new)
            del cts[n]
            continue
        for u, rule in zip(args, op.rules(len(args)), strict=True):
            if rule is None or u.id not in active:
                continue
            c = rule(ct, Value(dg, n), *args, **attrs["params"])
            _collect(cts.setdefault(u.id, []), cast(unbroadcast(c, u.shape), u.dtype))
        _label(G, ct.id, n, first_new)
        if n not in seeds:
            del cts[n]  # no longer needed: every consumer of n came earlier in this loop

    dg._loc = None
    totals = {}
    for name, n in targets.items():
        if n not in cts:
            if not allow_unused:
                raise GraphError(
                    f"{what} does not depend on {name!r} (through a differentiable "
                    "path); pass allow_unused=True to get zeros"
                )
            a = G._node[n]
            with dg.at(a["loc"]):
                cts[n] = [broadcast_to(dg.const(0.0, dtype=a["dtype"]), a["shape"])]
        with dg.at(G._node[n]["loc"]):
            total = _total(cts[n])
        _label(G, total.id, n, first_new)
        totals[name] = total
    return totals


def _multi(op: str) -> bool:
    """Is `op` tuple-valued (a loop), its results read by projections (scan_out)?"""
    return op in REGISTRY and REGISTRY[op].multi_vjp is not None


def _collect(got: list[Value], c: Value) -> None:
    """Add cotangent `c` to those of its value so far: to the running sum at once, or, for a
    slice put back in place, to the pieces `_total` may join into one concatenation."""
    if c.op == "slice_grad":
        got.append(c)
    elif got and got[0].op != "slice_grad":
        got[0] = got[0] + c
    else:
        got.insert(0, c)


def _total(cts: list[Value]) -> Value:
    """The sum of a value's cotangents, in the order they came. Those that each put a slice of
    it in its place among zeros (`slice_grad`, one per use of a slice) and together tile it
    along one axis become one concatenation instead of a sum of mostly-zero arrays: what the
    gates of a recurrent cell, split by slicing, get."""
    pieces = [c for c in cts if c.op == "slice_grad"]
    tiled = _tiling(pieces)
    if tiled is not None:
        axis, parts = tiled
        cts = [concat(parts, axis=axis), *(c for c in cts if c.op != "slice_grad")]
    total = cts[0]
    for c in cts[1:]:
        total = total + c
    return total


def _tiling(pieces: list[Value]) -> tuple[int, list[Value]] | None:
    """(axis, the pieces' cotangents in order along it) when the pieces' slices tile their
    common shape along one axis: unit steps, whole along every other axis, no gap or overlap."""
    if len(pieces) < 2:
        return None
    params = [c.attrs["params"] for c in pieces]
    shape = params[0]["shape"]
    if any(p["shape"] != shape or any(s != 1 for s in p["steps"]) for p in params):
        return None
    spans = [tuple(zip(p["starts"], p["stops"], strict=True)) for p in params]
    cut = [k for k in range(len(shape)) if len({s[k] for s in spans}) > 1]
    if len(cut) != 1:
        return None
    (axis,) = cut
    if any(s[k] != (0, shape[k]) for s in spans for k in range(len(shape)) if k != axis):
        return None
    order = sorted(range(len(pieces)), key=lambda i: spans[i][axis])
    end = 0
    for i in order:
        start, stop = spans[i][axis]
        if start != end:
            return None
        end = stop
    if end != shape[axis]:
        return None
    G = pieces[0].graph
    return axis, [Value(G, operands(G.nx, pieces[i].id)[0]) for i in order]


def _label(G: nx.MultiDiGraph, ct: int, n: int, first_new: int) -> None:
    """Record on a cotangent node made by grad that it is d(of)/d(v{n}), so generated code can
    call it g{n}. Nodes of the forward graph keep their own names."""
    if ct >= first_new:
        G._node[ct].setdefault("grad_of", n)
