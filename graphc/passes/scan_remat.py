"""Checkpointing a loop (Chen et al. 2016, the sqrt(T) policy): instead of the per-step values a
reverse loop reads (its residuals, stacked [T, ...] by the forward loop: passes/scan_grad.py),
the forward loop keeps its carries every k-th step, k = ceil(sqrt(T)), and the backward pass
runs in segments of k steps, last first: each segment runs the forward body again from its
checkpoint, stacking its residuals for those k steps only, then runs the reverse body over
them. Memory: ceil(T / k) carries and one segment's residuals, instead of T steps'.

The reverse loop becomes a reverse loop over the segments whose body holds the two inner loops;
its carries (the cotangents, and the sums of the captured values' cotangents) pass from segment
to segment, so every addition happens in the order it did: the gradients are bit for bit the
same. The last T mod k steps are a segment of their own, before the others. A forward loop run
last to first (`reverse`) is split the same way, in blocks t k .. t k + k - 1 counted from
step 0 (so every array is still read k steps at a time where it is): it keeps the carry
entering steps k - 1, 2k - 1, ... (the step each block runs first), its backward loop runs the
segments first to last, and its last T mod k steps, which it runs first from its initial
carry, are the last segment. A symbolic trip count T is split every k = ceil(sqrt(size_hint))
steps, k fixed at build time: the checkpoints, whole segments and tail are then sizes each
call works out from T (ir/shapes.py, derived symbols), so one build runs every T with
ceil(T / k) checkpoints and at most k steps of residuals; a loop run first to last then has
ceil(T / k) - 1 whole segments and a tail of 1 to k steps (none when T = 0), entered from the
last checkpoint (a loop over the checkpoints finds it). A loop with its steps on an inner
axis (`xs_axes`, `ys_axes`: ops/scan.py) is cut along that axis: the loop over the segments
reads k steps of each per-step array at each trip, where they are (`xs_chunks`: [N, k, ...]
of [N, T, ...]), and the loops in its body read each segment on that axis again; no array is
copied whole or made time-major (the tail segment's steps are sliced), only the checkpoints
are stacked on axis 0. A per-step operand of the reverse loop computed elementwise from the
forward loop's results (the loss's cotangent of every step's h, 2 hs / size for a mean of
squares) is computed again in each segment from the results the segment computes again, as
the same elementwise ops over the same bits: the backward pass then holds no array of T
steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from graphc.ir.body import Body, Trace
from graphc.ir.dag import operands, without_gc
from graphc.ir.graph import TRACES, Graph, Value
from graphc.ir.shapes import dims_product, split_steps
from graphc.ops._build import apply
from graphc.ops.registry import REGISTRY
from graphc.ops.scan import results, xs_axis, ys_axis
from graphc.ops.shape import reshape
from graphc.ops.slicing import concat
from graphc.passes.memory import DEFAULT_HINT

MIN_STEPS = 4  # fewer steps: nothing to gain


@without_gc
def checkpoint_loops(g: Graph, backward_from: int, size_hint: int = DEFAULT_HINT,
                     ) -> tuple[Graph, int]:  # fmt: skip
    """A copy of `g` in which each reverse loop (id >= `backward_from`) reading the stacked
    residuals of a forward loop runs in segments from checkpoints; and the number of loops
    changed. A symbolic trip count is split every ceil(sqrt(`size_hint`)) steps."""
    h = g.copy()
    G = h.nx
    done = 0
    hinted_k = math.isqrt(max(size_hint, 1) - 1) + 1
    for b in sorted(n for n in G if n >= backward_from and G._node[n]["op"] == "scan"):
        pair = _forward_of(G, b, hinted_k)
        if pair is not None:
            _segment(h, pair, b, hinted_k)
            done += 1
    return h, done


def _forward_of(G: Any, b: int, hinted_k: int) -> int | None:
    """The forward scan whose stacked results reverse scan `b` reads, if it can be split."""
    p = G._node[b]["params"]
    found, axes = set(), set()
    for i, u in enumerate(operands(G, b)[p["n_carry"] : p["n_carry"] + p["n_xs"]]):
        if G._node[u]["op"] == "scan_out":
            s = operands(G, u)[0]
            found.add(s)
            axes.add(ys_axis(G._node[s]["params"], G._node[u]["params"]["index"]) - xs_axis(p, i))
    if len(found) != 1 or axes != {0}:
        return None  # one forward loop, each of its results read on the axis it stacks them on
    (s,) = found
    ps = G._node[s]["params"]
    T = ps["length"][0]
    if isinstance(T, int) and T < MIN_STEPS or ps["strided"] or p["length"][0] != T:
        return None
    if isinstance(T, str) and split_steps(T, hinted_k, ps["reverse"]) is None:
        return None  # a product of symbols ("B*T"), or too small a hint
    if p["reverse"] == ps["reverse"]:
        return None  # the backward loop runs the other way
    return s


def _segment(h: Graph, s: int, b: int, hinted_k: int) -> None:
    G = h.nx
    ps, pb = dict(G._node[s]["params"]), G._node[b]["params"]
    T = ps["length"][0]
    full: int | str
    tail: int | str
    if isinstance(T, int):
        k = math.isqrt(T - 1) + 1  # ceil(sqrt(T))
        full, tail = T // k, T % k
    else:  # sizes the call works out from T (ir/shapes.py: derived symbols)
        k = hinted_k
        _, full, tail = split_steps(T, k, ps["reverse"])  # type: ignore[misc]
    ncs, nxs = ps["n_carry"], ps["n_xs"]
    s_args = [Value(h, u) for u in operands(G, s)]
    s_xs, s_cap = s_args[ncs : ncs + nxs], s_args[ncs + nxs :]
    ncb, nxb = pb["n_carry"], pb["n_xs"]
    b_args = [Value(h, u) for u in operands(G, b)]
    b_init, b_xs, b_cap = b_args[:ncb], b_args[ncb : ncb + nxb], b_args[ncb + nxb :]
    # the axes the loops read their per-step operands on, and b stacks its results on
    s_axes = tuple(xs_axis(ps, i) for i in range(nxs))
    b_axes = tuple(xs_axis(pb, i) for i in range(nxb))
    b_ys = tuple(ys_axis(pb, j) for j in range(ncb, len(results(G, b))))
    s_ys = tuple(ys_axis(ps, j) for j in range(ncs, len(results(G, s))))
    # which of b's per-step operands are s's results: those the segments compute again
    from_s = {
        i: G._node[x.id]["params"]["index"]
        for i, x in enumerate(b_xs)
        if G._node[x.id]["op"] == "scan_out" and operands(G, x.id)[0] == s
    }
    # and those computed elementwise from s's results (a loss's cotangent of s's outputs):
    # computed again in each segment too, so the whole array is not kept for the backward pass
    derived = {i: nodes for i, x in enumerate(b_xs) if i not in from_s
               and (nodes := _elementwise_of(G, x.id, s, b_axes[i])) is not None}  # fmt: skip
    plain = [i for i in range(nxb) if i not in from_s and i not in derived]
    # the forward loop keeps each carry entering steps 0, k, 2k, ...: a result of its own
    body: Body = ps["body"]
    fwd = body.graph.copy()
    first = len(body.outputs)
    for j, u in enumerate(body.inputs[:ncs]):
        fwd.output(f"y{first - ncs + j}", Value(fwd, u))
    strided = tuple(range(first, first + ncs))
    G._node[s]["params"] = dict(ps, body=Body(fwd), strided=strided, every=k)
    rev = ps["reverse"]  # s runs last to first: its checkpoints enter steps k - 1, 2k - 1, ...
    loc = G._node[b]["loc"]
    with h.at(loc):
        ckpts = [h.add("scan_out", [Value(h, s)], {"index": j}) for j in strided]
        b_body: Body = pb["body"]
        s_body: Body = ps["body"]

        def step(
            carry: list[Value],
            start: list[Value],
            xs_seg: list[Value],
            plain_seg: list[Value],
            steps: int,
        ) -> tuple[list[Value], list[Value]]:
            """The forward body again over `steps` steps from checkpoint `start`, then the
            reverse body over them from `carry`."""
            again = _loop(s_body, start, xs_seg, s_cap, rev, steps, s_axes, s_ys)
            rest = iter(plain_seg)
            per_step = [again[1][from_s[i] - ncs] if i in from_s
                        else _rebuild(h, derived[i], again[1], ncs, b_axes[i], steps)
                        if i in derived else next(rest) for i in range(nxb)]  # fmt: skip
            return _loop(b_body, carry, per_step, b_cap, not rev, steps, b_axes, b_ys)

        tails: dict[tuple, Value] = {}  # each array's last steps, sliced once

        def last(x: Value, axis: int) -> Value:
            if (x.id, axis) not in tails:
                tails[x.id, axis] = _steps_from(x, axis, dims_product((full, k)))
            return tails[x.id, axis]

        def tail_segment(carry: list[Value]) -> tuple[list[Value], list[Value]]:
            """Steps full k .. T - 1: entered from the initial carry when s runs last to
            first, else from its last checkpoint."""
            start = s_args[:ncs] if rev else _last_rows(ckpts, s_args[:ncs], full)
            return step(
                carry, start, [last(x, a) for x, a in zip(s_xs, s_axes, strict=True)],
                [last(b_xs[i], b_axes[i]) for i in plain], tail,
            )  # fmt: skip

        carry, ys_tail = list(b_init), None
        if tail and not rev:  # b runs last to first: the last steps first
            carry, ys_tail = tail_segment(carry)
        # the whole segments, one per trip (full >= 1 when T is static: T >= MIN_STEPS, k <= T)
        c_seg = list(ckpts)  # the first `full`, one at a time ([1, ...]: a chunk of one)
        x_seg, p_seg = list(s_xs), [b_xs[i] for i in plain]
        nc, nx_ = len(c_seg), len(x_seg)

        def segment(c: list[Value], x: list[Value]) -> tuple[list[Value], list[Value]]:
            start = [reshape(v, v.shape[1:]) for v in x[:nc]]
            return step(c, start, x[nc : nc + nx_], x[nc + nx_ :], k)

        # trip t reads steps t k .. t k + k - 1 of each array, where they are
        axes = (0,) * nc + s_axes + tuple(b_axes[i] for i in plain)
        chunks = (1,) * nc + (k,) * (nx_ + len(p_seg))
        carry, ys = _traced_loop(segment, list(carry), [*c_seg, *x_seg, *p_seg], axes, chunks,
                                 b_ys, full, not rev)  # fmt: skip
        ys = [_merge(y, a) for y, a in zip(ys, b_ys, strict=True)]
        if tail and rev:  # b runs first to last: the last steps after the others
            carry, ys_tail = tail_segment(carry)
        if ys_tail is not None:
            ys = [concat([y, t], axis=a) for y, t, a in zip(ys, ys_tail, b_ys, strict=True)]
    # what read the reverse loop's results reads the segments'
    new = [*carry, *ys]
    for o in [v for v in list(G.successors(b)) if G._node[v]["op"] == "scan_out"]:
        value = new[G._node[o]["params"]["index"]]
        for _, v, key, d in list(G.out_edges(o, keys=True, data=True)):
            G.remove_edge(o, v, key)
            G.add_edge(value.id, v, port=d["port"])
        for name, n in list(G.graph["outputs"].items()):
            if n == o:
                G.graph["outputs"][name] = value.id


def _elementwise_of(G: Any, x: int, s: int, axis: int) -> list[int] | None:
    """The nodes computing `x` (steps on `axis`) elementwise from results of scan `s` stacked
    on that axis, those results first, in topological order; None unless every value with
    the steps that `x` is computed from is such a result or such a node (elementwise, or a
    broadcast_to of a value without them). Values without the steps (a scalar, a constant)
    are read as they are."""
    p, shape = G._node[s]["params"], G._node[x]["shape"]
    T = p["length"][0]
    if G._node[x]["op"] == "scan_out" or len(shape) <= axis or shape[axis] != T:
        return None
    leaves: list[int] = []
    order: list[int] = []
    seen: set[int] = set()

    def stepped(u: int) -> bool:
        """Has u the steps on `axis` (its axes aligned with x's at the right)?"""
        su = G._node[u]["shape"]
        at = axis - (len(shape) - len(su))
        return at >= 0 and su[at] == T

    def visit(v: int) -> bool:
        if v in seen:
            return True
        seen.add(v)
        a = G._node[v]
        if a["shape"] != shape:
            return False
        if a["op"] == "scan_out":
            j = a["params"]["index"]
            ok = operands(G, v)[0] == s and j >= p["n_carry"] and ys_axis(p, j) == axis
            (leaves if ok else order).append(v)
            return ok
        if a["op"] == "broadcast_to":
            ok = not stepped(operands(G, v)[0])
        else:
            op = REGISTRY.get(a["op"])  # None: an input or a constant
            ok = (
                op is not None
                and op.elementwise
                and all(visit(u) for u in operands(G, v) if stepped(u))
            )
        order.append(v)
        return ok

    return leaves + order if visit(x) else None


def _rebuild(h: Graph, nodes: list[int], again: list[Value], ncs: int, axis: int,
             steps: int) -> Value:  # fmt: skip
    """`nodes` (_elementwise_of) over one segment of `steps` steps: the results of s read
    from `again` (the segment's own), the values without the steps as they are."""
    G = h.nx
    made: dict[int, Value] = {}
    for v in nodes:
        a = G._node[v]
        if a["op"] == "scan_out":
            made[v] = again[a["params"]["index"] - ncs]
            continue
        params = dict(a["params"])
        if a["op"] == "broadcast_to":
            params["shape"] = (*a["shape"][:axis], steps, *a["shape"][axis + 1 :])
        args = [made.get(u, Value(h, u)) for u in operands(G, v)]
        made[v] = h.add(a["op"], args, params)
    return made[nodes[-1]]


def _merge(y: Value, axis: int) -> Value:
    """[..., full, k, ...] (on `axis`) -> [..., full * k, ...]."""
    sh = y.shape
    return reshape(y, (*sh[:axis], dims_product(sh[axis : axis + 2]), *sh[axis + 2 :]))


def _steps_from(x: Value, axis: int, start: int | str) -> Value:
    """The steps of `x` on `axis` from `start` on (a copy: the tail segment's, fewer than k
    or, with a symbolic T run first to last, at most k)."""
    starts = tuple(start if a == axis else 0 for a in range(len(x.shape)))
    return apply("slice", x, starts=starts, stops=x.shape, steps=(1,) * len(x.shape))


def _last_rows(ckpts: list[Value], init: list[Value], full: int | str) -> list[Value]:
    """Row `full` of each of `ckpts`, the carries entering the tail segment of a loop run
    first to last. With a symbolic T it is the last row (ir/shapes.py): a loop over the rows
    whose carry is the row it reads (the initial carries when there is no row: T = 0)."""
    if isinstance(full, int) or not ckpts:
        return [c[full] for c in ckpts]
    n = len(ckpts)
    carry, _ = _traced_loop(lambda c, x: (list(x), []), list(init), list(ckpts), (0,) * n,
                            (0,) * n, (), ckpts[0].shape[0], False)  # fmt: skip
    return carry


def _traced_loop(
    f: Callable[[list[Value], list[Value]], tuple[list[Value], list[Value]]],
    init: list[Value], xs: list[Value], xs_axes: tuple[int, ...], xs_chunks: tuple[int, ...],
    ys_axes: tuple[int, ...], steps: int, reverse: bool,
) -> tuple[list[Value], list[Value]]:  # fmt: skip
    """A scan node whose body is `f` traced (as gc.scan does), reading xs[i] on
    `xs_axes[i]` (`xs_chunks[i]` steps at a time, or one) and stacking its results on
    `ys_axes`: (final carries, stacked results)."""
    outer = (init or xs)[0].graph
    trace = Trace(outer)
    c_in = [trace.slot(f"c{i}", v.shape, v.dtype) for i, v in enumerate(init)]
    x_in = [trace.slot(f"x{i}", (*v.shape[:a], *((c,) if c else ()), *v.shape[a + 1 :]), v.dtype)
            for i, (v, a, c) in enumerate(zip(xs, xs_axes, xs_chunks, strict=True))]  # fmt: skip
    TRACES.append(trace)
    try:
        c_out, y_out = f(c_in, x_in)
    finally:
        TRACES.pop()
    for i, v in enumerate(c_out):
        trace.output(f"c{i}", v)
    for i, v in enumerate(y_out):
        trace.output(f"y{i}", v)
    node = outer.add("scan", [*init, *xs, *trace.captured], {
        "body": Body(trace.finish()), "n_carry": len(init), "n_xs": len(xs), "reverse": reverse,
        "length": (steps,), "xs_axes": xs_axes, "ys_axes": ys_axes, "xs_chunks": xs_chunks,
    })  # fmt: skip
    outs = [outer.add("scan_out", [node], {"index": j}) for j in range(len(c_out) + len(y_out))]
    return outs[: len(c_out)], outs[len(c_out) :]


def _loop(body: Body, init: list[Value], xs: list[Value], cap: list[Value], reverse: bool,
          steps: int, xs_axes: tuple[int, ...], ys_axes: tuple[int, ...],
          ) -> tuple[list[Value], list[Value]]:  # fmt: skip
    """A scan node running `body` (final carries, stacked results)."""
    g = init[0].graph if init else xs[0].graph
    node = g.add("scan", [*init, *xs, *cap], {
        "body": body, "n_carry": len(init), "n_xs": len(xs), "reverse": reverse,
        "length": (steps,), "xs_axes": xs_axes, "ys_axes": ys_axes,
    })  # fmt: skip
    count = len(results(g.nx, node.id))
    outs = [g.add("scan_out", [node], {"index": j}) for j in range(count)]
    return outs[: len(init)], outs[len(init) :]
