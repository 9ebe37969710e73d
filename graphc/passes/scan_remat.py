"""Checkpointing a loop (Chen et al. 2016, the sqrt(T) policy): instead of the per-step values a
reverse loop reads (its residuals, stacked [T, ...] by the forward loop: passes/scan_grad.py),
the forward loop keeps its carries every k-th step, k = ceil(sqrt(T)), and the backward pass
runs in segments of k steps, last first: each segment runs the forward body again from its
checkpoint, stacking its residuals for those k steps only, then runs the reverse body over
them. Memory: ceil(T / k) carries and one segment's residuals, instead of T steps'.

The reverse loop becomes a reverse loop over the segments whose body holds the two inner loops;
its carries (the cotangents, and the sums of the captured values' cotangents) pass from segment
to segment, so every addition happens in the order it did: the gradients are bit for bit the
same. The last T mod k steps are a segment of their own, before the others. Trip counts must be
static (a symbolic T keeps its loop as it was). A loop with its steps on an inner axis is made
time-major first (passes/scan_axes.py).
"""

from __future__ import annotations

import math
from typing import Any

from graphc.ir.body import Body
from graphc.ir.graph import Graph, Value, operands, without_gc
from graphc.ops.scan import results
from graphc.ops.scan import scan as scan_
from graphc.ops.shape import reshape
from graphc.ops.slicing import concat
from graphc.passes.scan_axes import time_major

MIN_STEPS = 4  # fewer steps: nothing to gain


@without_gc
def checkpoint_loops(g: Graph, backward_from: int) -> tuple[Graph, int]:
    """A copy of `g` in which each reverse loop (id >= `backward_from`) reading the stacked
    residuals of a forward loop with a static trip count runs in segments from checkpoints;
    and the number of loops changed."""
    h = g.copy()
    G = h.nx
    done = 0
    for b in sorted(n for n in G if n >= backward_from and G._node[n]["op"] == "scan"):
        pair = _forward_of(G, b)
        if pair is not None:
            time_major(h, pair)  # segments are cut along axis 0
            time_major(h, b)
            _segment(h, pair, b)
            done += 1
    return h, done


def _forward_of(G: Any, b: int) -> int | None:
    """The forward scan whose stacked results reverse scan `b` reads, if it can be split."""
    p = G._node[b]["params"]
    found = set()
    for u in operands(G, b)[p["n_carry"] : p["n_carry"] + p["n_xs"]]:
        if G._node[u]["op"] == "scan_out":
            found.add(operands(G, u)[0])
    if len(found) != 1:
        return None
    (s,) = found
    ps = G._node[s]["params"]
    T = ps["length"][0]
    if not isinstance(T, int) or T < MIN_STEPS or ps["strided"] or p["length"][0] != T:
        return None
    if p["reverse"] == ps["reverse"] or ps["reverse"]:
        return None  # a forward loop run first to last, its reverse loop last to first
    return s


def _segment(h: Graph, s: int, b: int) -> None:
    G = h.nx
    ps, pb = dict(G._node[s]["params"]), G._node[b]["params"]
    T = ps["length"][0]
    k = math.isqrt(T - 1) + 1  # ceil(sqrt(T))
    full, tail = T // k, T % k
    ncs, nxs = ps["n_carry"], ps["n_xs"]
    s_args = [Value(h, u) for u in operands(G, s)]
    s_xs, s_cap = s_args[ncs : ncs + nxs], s_args[ncs + nxs :]
    ncb, nxb = pb["n_carry"], pb["n_xs"]
    b_args = [Value(h, u) for u in operands(G, b)]
    b_init, b_xs, b_cap = b_args[:ncb], b_args[ncb : ncb + nxb], b_args[ncb + nxb :]
    # which of b's per-step operands are s's results: those the segments compute again
    from_s = {
        i: G._node[x.id]["params"]["index"]
        for i, x in enumerate(b_xs)
        if G._node[x.id]["op"] == "scan_out" and operands(G, x.id)[0] == s
    }
    # the forward loop keeps each carry entering steps 0, k, 2k, ...: a result of its own
    body: Body = ps["body"]
    fwd = body.graph.copy()
    first = len(body.outputs)
    for j, u in enumerate(body.inputs[:ncs]):
        fwd.output(f"y{first - ncs + j}", Value(fwd, u))
    strided = tuple(range(first, first + ncs))
    G._node[s]["params"] = dict(ps, body=Body(fwd), strided=strided, every=k)
    loc = G._node[b]["loc"]
    with h.at(loc):
        ckpts = [h.add("scan_out", [Value(h, s)], {"index": j}) for j in strided]
        b_body: Body = pb["body"]
        s_body: Body = ps["body"]

        def step(carry: list[Value], x: tuple, steps: int) -> tuple[list[Value], list[Value]]:
            """The forward body again over `steps` steps from checkpoint x[0], then the
            reverse body over them from `carry`."""
            start, xs_seg, plain = x
            again = _loop(s_body, start, xs_seg, s_cap, False, steps)
            per_step = [again[1][from_s[i] - ncs] if i in from_s else plain[i]
                        for i in range(nxb)]  # fmt: skip
            out = _loop(b_body, carry, per_step, b_cap, True, steps)
            return out[0], out[1]

        carry, ys_tail = list(b_init), None
        lo = full * k
        if tail:  # the last steps first: a segment of their own
            start = [c[full] for c in ckpts]
            xs_seg = [x[lo:] for x in s_xs]
            plain = {i: x[lo:] for i, x in enumerate(b_xs) if i not in from_s}
            carry, ys_tail = step(carry, (start, xs_seg, plain), tail)
        if full:
            seg_xs = (
                [c[:full] if tail or full * k < c.shape[0] else c for c in ckpts],
                [_split(x, full, k) for x in s_xs],
                {i: _split(x, full, k) for i, x in enumerate(b_xs) if i not in from_s},
            )

            def segment(c: list[Value], x: tuple) -> tuple[list[Value], list[Value]]:
                return step(list(c), x, k)

            carry, ys = scan_(segment, list(carry), seg_xs, reverse=True)
            ys = [reshape(y, (full * k, *y.shape[2:])) for y in ys]
            if ys_tail is not None:
                ys = [concat([a, t], axis=0) for a, t in zip(ys, ys_tail, strict=True)]
        else:
            ys = ys_tail
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


def _split(x: Value, full: int, k: int) -> Value:
    """The first full * k steps of x as [full, k, ...]."""
    head = x[: full * k] if x.shape[0] != full * k else x
    return reshape(head, (full, k, *x.shape[1:]))


def _loop(body: Body, init: list[Value], xs: list[Value], cap: list[Value], reverse: bool,
          steps: int) -> tuple[list[Value], list[Value]]:  # fmt: skip
    """A scan node running `body` (final carries, stacked results)."""
    g = init[0].graph if init else xs[0].graph
    node = g.add("scan", [*init, *xs, *cap], {
        "body": body, "n_carry": len(init), "n_xs": len(xs), "reverse": reverse,
        "length": (steps,),
    })  # fmt: skip
    count = len(results(g.nx, node.id))
    outs = [g.add("scan_out", [node], {"index": j}) for j in range(count)]
    return outs[: len(init)], outs[len(init) :]
