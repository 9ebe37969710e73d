"""The derivative of a loop: the VJP of `scan` (ops/scan.py) is a reverse scan over the VJP of
its body, reading values the forward loop saved at every step. A forward loop reading or
stacking its steps on another axis than 0 (`xs_axes`, `ys_axes`) has a reverse loop reading
those arrays, and the cotangents of its slices, on the same axes; residuals are stacked on
axis 0.

The body's VJP is built with `backprop` (passes/grad.py) from a cotangent input per result of
the body, and split by what each node depends on:

  - *per step* (primal): nodes that read a carry or a slice but no cotangent. Those the adjoint
    reads are the loop's residuals: the forward scan gets them as extra per-step results,
    stacked [T, ...] (a carry entering a step is one too), and the reverse scan reads them as
    slices, as it reads the forward loop's own slices `xs`;
  - *invariant*: constants and what only captured values give; the adjoint computes again
    what it needs of them (nothing invariant is stacked);
  - *adjoint*: what reads a cotangent. It is the reverse loop's body: its carries are the
    cotangents of the forward carries and, per captured value, the sum of its cotangents over
    the steps so far (added in the order the unrolled loop's gradient adds them, so the two
    agree to rounding); its per-step results are the cotangents of the slices.

The forward scan node is given its residuals in place (its results keep their indices; the new
ones follow), so the forward loop runs once, and a program that needs no gradient computes no
residuals (the lowering computes only the results a program reads). The reverse scan is an
ordinary scan node, so `grad` of it is the same rule again: second derivatives, `jvp` and
`hvp` need nothing more.
"""

from __future__ import annotations

from typing import Any

from graphc.ir.body import Body
from graphc.ir.dag import ancestors, describe, operands, topo_order
from graphc.ir.graph import Graph, Value
from graphc.ir.shapes import FLOAT_DTYPES
from graphc.ops.registry import REGISTRY
from graphc.ops.scan import xs_axis, ys_axis
from graphc.ops.shape import broadcast_to


def scan_vjp(
    dg: Graph,
    n: int,
    cts: dict[int, Value],
    args: list[Value],
    wanted: list[bool],
    params: dict[str, Any],
) -> list[Value | None]:
    """Cotangents of the operands of scan node `n` of `dg` from `cts` (result index -> its
    cotangent); `wanted[k]`: does operand k need one. Extends node n with its residuals."""
    body: Body = params["body"]
    nc, nxs = params["n_carry"], params["n_xs"]
    if params["strided"] or any(params.get("xs_chunks", ())):
        from graphc.errors import GraphError

        raise GraphError(
            f"{describe(dg.nx, n)}: a loop that keeps checkpoints or reads chunks of steps "
            "(made for a memory budget) has no derivative; differentiate the model first"
        )
    B = body.graph
    ins, outs = body.inputs, body.outputs
    G = B.nx
    floats = [G._node[u]["dtype"] in FLOAT_DTYPES for u in ins]
    act = _active_inputs(B, ins, outs, nc, [w and f for w, f in zip(wanted, floats, strict=True)])
    reach = _reach(B, {ins[k] for k in act})
    carries = [k for k in range(nc) if k in act]
    ys = [j for j in range(len(outs) - nc) if nc + j in cts and outs[nc + j] in reach]

    # The body's VJP: a cotangent input per active result, the gradients as outputs.
    V = B.copy()
    seeds: dict[int, Value] = {}
    ct_in: dict[str, int] = {}
    for k in carries:
        ct_in[f"c{k}"] = _seed(V, seeds, f"_ct_c{k}", outs[k])
    for j in ys:
        ct_in[f"y{j}"] = _seed(V, seeds, f"_ct_y{j}", outs[nc + j])
    from graphc.passes.grad import backprop

    targets = {f"_in{k}": ins[k] for k in sorted(act)}
    totals = backprop(V, seeds, targets, allow_unused=True, what="the loop's body")
    grads = {k: totals[f"_in{k}"].id for k in sorted(act)}
    V.nx.graph["outputs"] = {
        **{f"_out{i}": o for i, o in enumerate(outs)},
        **{f"_grad{k}": v for k, v in grads.items()},
    }
    from graphc.passes.simplify import simplify

    V = simplify(V)
    VG = V.nx
    v_outs = [VG.graph["outputs"][f"_out{i}"] for i in range(len(outs))]
    v_grads = {k: VG.graph["outputs"][f"_grad{k}"] for k in grads}
    v_ins = V.input_ids()
    body_ins = [v_ins[G._node[u]["name"]] for u in ins]
    cts_nodes = {name: v_ins[f"_ct_{name}"] for name in ct_in}

    # Split: adjoint (reads a cotangent), per step (reads a carry or slice), invariant.
    adjoint = _reach(V, set(cts_nodes.values()), differentiable=False)
    per_step = _reach(V, set(body_ins[: nc + nxs]), differentiable=False) - adjoint
    readers = [v for v in VG if v in adjoint] + list(v_grads.values())
    needed = {u for v in readers for u in (operands(VG, v) if v in adjoint else [v])}
    body_pos = {u: k for k, u in enumerate(body_ins)}
    kept, again = _residuals(VG, {u for u in needed if u in per_step}, per_step, body_pos)
    residual = sorted(kept)

    # The forward body, with a per-step result for each residual that is not a slice.
    stacked = [u for u in residual if not (nc <= body_pos.get(u, -1) < nc + nxs)]
    fwd = _forward_body(V, body_ins, v_outs, list(B.outputs), stacked, B.name)
    base = len(outs)
    dg.nx._node[n]["params"] = dict(params, body=Body(fwd))
    ny_old = len(outs) - nc
    index: dict[int, int] = {}  # residual node of V -> the forward scan's result holding it
    for i, u in enumerate(stacked):
        same = [j for j in range(ny_old) if v_outs[nc + j] == u]
        index[u] = nc + same[0] if same else base + i
    res_values = {u: _out(dg, n, index[u]) for u in stacked}

    # The reverse scan: carries = cotangents of the active carries, then a sum per captured
    # value; per step = cotangents of the results, residuals, slices; captured = invariants.
    cap = [k for k in sorted(act) if k >= nc + nxs]
    init = [cts[k] if k in cts else _zeros(dg, args[k]) for k in carries]
    init += [_zeros(dg, args[k]) for k in cap]
    T = params["length"][0]
    slices = [u for u in residual if nc <= body_pos.get(u, -1) < nc + nxs]
    xs = [cts[nc + j] for j in ys] + [res_values[u] for u in stacked]
    xs += [args[body_pos[u]] for u in slices]
    bwd, captured = _backward_body(
        V, adjoint | again, body_ins, nc, nxs, carries, cap, ys, cts_nodes, stacked, slices,
        v_grads, args, B.name,
    )  # fmt: skip
    operands_ = [*init, *xs, *captured]
    active_xs = [k for k in range(nc, nc + nxs) if k in act]
    # each per-step operand read along the axis it has its steps on; the slices' cotangents
    # stacked on their slices' axes
    xs_axes = [ys_axis(params, nc + j) for j in ys] + [ys_axis(params, index[u]) for u in stacked]
    xs_axes += [xs_axis(params, body_pos[u] - nc) for u in slices]
    ys_axes = [xs_axis(params, k - nc) for k in active_xs]
    axes = {"xs_axes": tuple(xs_axes), "ys_axes": tuple(ys_axes)} if any(xs_axes + ys_axes) else {}
    rev = dg.add(
        "scan", operands_,
        {"body": Body(bwd), "n_carry": len(init), "n_xs": len(xs),
         "reverse": not params["reverse"], "length": (T,), **axes},
    )  # fmt: skip
    got: list[Value | None] = [None] * len(args)
    for i, k in enumerate(carries):
        got[k] = _out(dg, rev.id, i)
    for i, k in enumerate(cap):
        got[k] = _out(dg, rev.id, len(carries) + i)
    for i, k in enumerate(active_xs):
        got[k] = _out(dg, rev.id, len(init) + i)
    return got


def _residuals(
    G: Any, needed: set[int], per_step: set[int], body_pos: dict[int, int]
) -> tuple[set[int], set[int]]:
    """The per-step values to stack, and those the reverse loop computes again from them: an
    elementwise value the adjoint reads is computed again when what it is computed from
    (through other elementwise values) is stacked anyway, or invariant. So an LSTM keeps its
    gates and the carries, not also the derivatives of its activations (1 - tanh(c)^2, ...),
    which cost one pass over the elements to compute again and a store and a load to keep."""
    kept, again = set(needed), set()
    for p in sorted(needed, reverse=True):
        if p in body_pos:
            continue
        todo, seen, ok = [p], set(), True
        while todo and ok:
            v = todo.pop()
            if v in seen:
                continue
            seen.add(v)
            if v != p and (v in kept or v in again or v not in per_step):
                continue
            ok = v not in body_pos and REGISTRY[G._node[v]["op"]].elementwise
            todo.extend(operands(G, v))
        if ok:
            kept.discard(p)
            again |= seen & per_step - kept
    return kept, again


def _seed(V: Graph, seeds: dict[int, Value], name: str, o: int) -> int:
    """A cotangent input `name` for result node `o` of the body, added to its seed."""
    a = V.nx.nodes[o]
    with V.at(a.get("loc")):
        c = V._leaf(name, a["shape"], a["dtype"], "data")
        seeds[o] = seeds[o] + c if o in seeds else c
    return c.id


def _zeros(g: Graph, like: Value) -> Value:
    return broadcast_to(g.const(0.0, dtype=like.dtype), like.shape)


def _out(g: Graph, n: int, k: int) -> Value:
    return g.add("scan_out", [Value(g, n)], {"index": k})


def _reach(g: Graph, sources: set[int], differentiable: bool = True) -> set[int]:
    """`sources` and the nodes that depend on them (through ops with a gradient rule for the
    operand, when `differentiable`)."""
    G = g.nx
    out = set(sources)
    for v in topo_order(G):
        if v in out or G._node[v]["op"] in ("input", "const"):
            continue
        args = operands(G, v)
        if differentiable:
            a = G._node[v]
            if a["dtype"] not in FLOAT_DTYPES and REGISTRY[a["op"]].multi_vjp is None:
                continue
            rules = REGISTRY[a["op"]].rules(len(args))
            if any(u in out and rules[p] is not None for p, u in enumerate(args)):
                out.add(v)
        elif any(u in out for u in args):
            out.add(v)
    return out


def _active_inputs(
    B: Graph, ins: list[int], outs: list[int], nc: int, wanted: list[bool]
) -> set[int]:
    """The body inputs (by position) a gradient flows through: the wanted ones, and each carry
    whose new value depends on an active input (its cotangent flows back step by step)."""
    G = B.nx
    act = {k for k, w in enumerate(wanted) if w}
    while True:
        reach = _reach(B, {ins[k] for k in act})
        more = {k for k in range(nc) if outs[k] in reach
                and G._node[ins[k]]["dtype"] in FLOAT_DTYPES} - act  # fmt: skip
        if not more:
            return act
        act |= more


def _copy_nodes(
    src: Graph, dst: Graph, nodes: list[int], known: dict[int, Value]
) -> dict[int, Value]:
    """Copy `nodes` of `src` (in topological order) into `dst`, reading `known` for operands
    that are not among them; returns every copied node's value in `dst`."""
    G = src.nx
    for v in nodes:
        a = G._node[v]
        with dst.at(a.get("loc")):
            if a["op"] == "const":
                known[v] = dst.const(a["value"], dtype=a["dtype"])
            else:
                known[v] = dst.add(a["op"], [known[u] for u in operands(G, v)], a["params"])
    return known


def _forward_body(
    V: Graph,
    body_ins: list[int],
    v_outs: list[int],
    names: list[str],
    stacked: list[int],
    name: str,
) -> Graph:
    """The forward loop's body: the body's inputs and results, then a result per residual."""
    G = V.nx
    fwd = Graph(name)
    known: dict[int, Value] = {}
    for u in body_ins:
        a = G._node[u]
        with fwd.at(a.get("loc")):
            known[u] = fwd._leaf(a["name"], a["shape"], a["dtype"], "data")
    need = ancestors(G, [*v_outs, *stacked]) - set(body_ins)
    _copy_nodes(V, fwd, [v for v in topo_order(G) if v in need], known)
    for o, label in zip(v_outs, names, strict=True):
        fwd.output(label, known[o])
    ny = len(names) - sum(1 for k in names if k.startswith("c"))
    for i, u in enumerate(stacked):
        fwd.output(f"y{ny + i}", known[u])
    return fwd


def _backward_body(
    V: Graph,
    adjoint: set[int],
    body_ins: list[int],
    nc: int,
    nxs: int,
    carries: list[int],
    cap: list[int],
    ys: list[int],
    cts_nodes: dict[str, int],
    stacked: list[int],
    slices: list[int],
    v_grads: dict[int, int],
    args: list[Value],
    name: str,
) -> tuple[Graph, list[Value]]:
    """The reverse loop's body, and the outer values it captures."""
    G = V.nx
    bwd = Graph(name)
    known: dict[int, Value] = {}

    def leaf(label: str, v: int, shape: tuple | None = None) -> Value:
        a = G._node[v]
        with bwd.at(a.get("loc")):
            return bwd._leaf(label, a["shape"] if shape is None else shape, a["dtype"], "data")

    # carries: cotangents of the carries, then the running sums of the captured values'
    for i, k in enumerate(carries):
        known[cts_nodes[f"c{k}"]] = leaf(f"c{i}", cts_nodes[f"c{k}"])
    acc = [leaf(f"c{len(carries) + i}", body_ins[k]) for i, k in enumerate(cap)]
    # per step: cotangents of the results, residuals, slices
    xs = [cts_nodes[f"y{j}"] for j in ys] + stacked + slices
    for i, u in enumerate(xs):
        known[u] = leaf(f"x{i}", u)
    # what the adjoint reads of the invariant part: computed again (captured values captured)
    need = set()
    for v in [*adjoint, *v_grads.values()]:
        for u in operands(G, v) if v in adjoint else [v]:
            if u not in adjoint and u not in known:
                need.add(u)
    invariant = ancestors(G, need) - set(known)
    captured: list[Value] = []
    pos = {u: k for k, u in enumerate(body_ins)}
    for u in sorted(invariant):
        if G._node[u]["op"] == "input":
            k = pos[u]
            assert k >= nc + nxs, "a carry or slice the adjoint reads must be a residual"
            known[u] = leaf(f"w{len(captured)}", u)
            captured.append(args[k])
    order = [v for v in topo_order(G) if (v in invariant or v in adjoint) and v not in known]
    _copy_nodes(V, bwd, order, known)
    for i, k in enumerate(carries):
        bwd.output(f"c{i}", known[v_grads[k]])
    for i, k in enumerate(cap):
        with bwd.at(G._node[body_ins[k]].get("loc")):  # the captured value's line
            bwd.output(f"c{len(carries) + i}", acc[i] + known[v_grads[k]])
    active_xs = [k for k in range(nc, nc + nxs) if k in v_grads]
    for i, k in enumerate(active_xs):
        bwd.output(f"y{i}", known[v_grads[k]])
    return bwd, captured
