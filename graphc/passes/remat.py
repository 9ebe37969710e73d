"""Checkpointing (rematerialisation): recompute chosen forward values in the backward pass
instead of keeping them alive from the forward pass until their backward use.

`rematerialize(g, backward_from, keep)` clones every forward value that the backward pass reads
and that is not in `keep`, along with the non-kept forward values it is computed from; backward
steps read the clones. A clone is the same op on the same operands, so the gradient is bit for
bit what it was. `choose_checkpoints` picks `keep` as Chen et al. (2016) do for chains: every
k-th saved value, with k from 1 (keep everything) up, until the plan fits the budget. A loop's
results are always kept: computing one again would run the whole loop again (a loop is
checkpointed inside, by passes/scan_remat.py).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from graphc.ir.dag import operands, topo_order
from graphc.ir.graph import Graph

KEPT_OPS = ("input", "const", "scan", "scan_out")  # never computed again


def saved_values(g: Graph, backward_from: int) -> list[int]:
    """Forward values read by backward steps, in forward order: what backprop keeps alive
    (and could compute again; a loop's results are not counted)."""
    G = g.nx
    return [
        n
        for n in topo_order(G)
        if n < backward_from
        and G.nodes[n]["op"] not in KEPT_OPS
        and any(v >= backward_from for v in G.successors(n))
    ]


def rematerialize(g: Graph, backward_from: int, keep: set[int]) -> tuple[Graph, int]:
    """A copy of `g` in which backward steps read recomputed clones of the saved forward values
    outside `keep`; returns it and the number of forward steps recomputed."""
    h = g.copy()
    G = h.nx
    clones: dict[int, int] = {}
    made: set[int] = set()  # clones.values(), for membership tests

    def clone(n: int) -> int:
        """The id of n's recomputed copy (n itself if it is kept, an input or a constant)."""
        stack = [n]
        while stack:  # iterative: chains may be long
            v = stack[-1]
            a = G.nodes[v]
            if v in clones or v in keep or a["op"] in KEPT_OPS or v >= backward_from:
                stack.pop()
                continue
            todo = [
                u
                for u in operands(G, v)
                if u not in clones and u not in keep and G.nodes[u]["op"] not in KEPT_OPS
            ]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            c = h._new_id()
            G.add_node(c, **{k: val for k, val in a.items() if k != "grad_of"})
            for port, u in enumerate(operands(G, v)):
                G.add_edge(clones.get(u, u), c, port=port)
            clones[v] = c
            made.add(c)
        return clones.get(n, n)

    for n in saved_values(g, backward_from):
        if n in keep:
            continue
        readers = [
            (v, d["port"])
            for _, v, d in G.out_edges(n, data=True)
            if v >= backward_from and v not in made
        ]
        c = clone(n)
        for v, port in readers:
            key = next(k for k, d in G.get_edge_data(n, v).items() if d["port"] == port)
            G.remove_edge(n, v, key)
            G.add_edge(c, v, port=port)
    return h, len(clones)


@dataclass(frozen=True)
class Checkpointing:
    """What checkpointing traded: arena bytes against forward steps computed again."""

    every: int  # keep every k-th saved value (1: keep all, no recomputation)
    kept: int
    saved: int
    recomputed_steps: int
    forward_steps: int
    arena_bytes: int
    unbudgeted_arena_bytes: int
    budget: int
    fits: bool
    loops: int = 0  # reverse loops run in segments from checkpoints (passes/scan_remat.py)

    def __str__(self) -> str:
        extra = self.recomputed_steps / max(self.forward_steps, 1)
        verdict = "" if self.fits else ", NOT met: this is the smallest found"
        loops = f"{self.loops} loops run in segments from checkpoints; " if self.loops else ""
        return (
            f"checkpointing: {loops}keep {self.kept} of {self.saved} saved forward values (every "
            f"{self.every}), recompute {self.recomputed_steps} forward steps (+{extra:.0%} "
            f"forward work); arena {self.unbudgeted_arena_bytes} -> {self.arena_bytes} bytes "
            f"(budget {self.budget}{verdict})"
        )


def choose_checkpoints(
    g: Graph,
    backward_from: int,
    budget: int,
    arena_of: Callable[[Graph], tuple[int, int]],
    final_of: Callable[[Graph], int],
    finalists: int = 3,
) -> tuple[Graph, Checkpointing]:
    """The graph with the least recomputation whose arena fits `budget` bytes. The search
    compares quick plans, `arena_of(graph)` -> (arena bytes, forward steps); when no candidate
    fits, the `finalists` smallest of them and `g` itself are planned for real (`final_of`)
    and the smallest of those is kept, so checkpointing never makes the arena larger."""
    saved = saved_values(g, backward_from)
    base, fwd_steps = arena_of(g)
    candidates = [(base, 1, g, 0, len(saved))]  # (quick arena, every, graph, recomputed, kept)
    if base > budget and saved:
        limit = max(2, math.isqrt(len(saved)) * 2)
        for every in range(2, limit + 1):
            keep = set(saved[every - 1 :: every])
            h, recomputed = rematerialize(g, backward_from, keep)
            candidates.append((arena_of(h)[0], every, h, recomputed, len(keep)))
            if candidates[-1][0] <= budget:
                break

    @functools.cache
    def final(k: int) -> int:  # candidate k's arena, planned for real
        return final_of(candidates[k][2])

    k = len(candidates) - 1
    if candidates[k][0] > budget:
        ranked = sorted(range(1, len(candidates)), key=lambda i: candidates[i][0])
        k = min([*ranked[:finalists], 0], key=lambda i: (final(i), candidates[i][3]))
    _, every, h, recomputed, kept = candidates[k]
    return h, Checkpointing(
        every, kept, len(saved), recomputed, fwd_steps, final(k), final(0), budget,
        final(k) <= budget,
    )  # fmt: skip
