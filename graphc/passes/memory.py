"""`plan_memory`: where every value of a scheduled program lives during one call.

Each value is stored in one of:
  - its caller's input array (`input`), or the output array returned to the caller (`output`):
    these are live for the whole call and are never overwritten;
  - a module-level constant (`const`);
  - the bytes of another value, unchanged (`alias`: a reshape is the same bytes);
  - a scalar of a fused loop (`local`): a value only its own fused step reads;
  - a slot of the per-call arena (`arena`).
Values whose live intervals do not overlap share a slot. A slot's size is the largest of its
members' sizes, written as an expression over the symbolic dims (`max(d_N*16, 48)`) and
evaluated at call time, so one plan is valid for every batch size; sharing decisions are ranked
by bytes at a size hint (each symbol = `hint`). An elementwise op may write over an operand of
the same shape and dtype at that operand's last read (in place). Two placements are tried, in
schedule order with best fit (CasADi's work vector) and largest-first (as XLA's heap simulator),
and the smaller arena at the hint is kept.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from graphc.ir.graph import operands
from graphc.ir.shapes import Shape, format_shape
from graphc.ops.registry import REGISTRY
from graphc.passes.fuse import internal_values
from graphc.passes.liveness import Interval, liveness
from graphc.passes.schedule import Program

ALIGN = 64  # bytes; every slot starts on a cache line
ITEMSIZE = {"float64": 8, "float32": 4, "bool": 1}
DEFAULT_HINT = 256  # the size each symbolic dim is assumed to have when ranking choices


def value_bytes(shape: Shape, dtype: str, sizes: dict[str, int]) -> int:
    n = math.prod(d if isinstance(d, int) else sizes[d] for d in shape) * ITEMSIZE[dtype]
    return -(-n // ALIGN) * ALIGN


@dataclass(frozen=True)
class Storage:
    kind: str  # "input" | "output" | "const" | "alias" | "local" | "arena"
    ref: str | int  # input/output name, aliased value id, or slot id; the node id for consts
    # and the step index for locals


@dataclass(frozen=True)
class Slot:
    id: int
    layouts: tuple[tuple[Shape, str], ...]  # the distinct (shape, dtype) of its members

    def nbytes(self, sizes: dict[str, int]) -> int:
        """Bytes reserved for the slot (each layout rounded up to ALIGN) at `sizes`."""
        return max(value_bytes(shape, dtype, sizes) for shape, dtype in self.layouts)

    def describe(self) -> str:
        return " | ".join(f"{dtype}{format_shape(shape)}" for shape, dtype in self.layouts)


@dataclass(frozen=True)
class MemoryPlan:
    storage: dict[int, Storage]
    slots: tuple[Slot, ...]
    extra_outputs: dict[str, int] = field(default_factory=dict)  # output name -> value to copy
    intervals: dict[int, Interval] = field(default_factory=dict)
    in_place: frozenset[int] = frozenset()  # values written over an operand
    strategy: str = "naive"

    def arena_bytes(self, sizes: dict[str, int]) -> int:
        return sum(s.nbytes(sizes) for s in self.slots)

    def root(self, v: int) -> int:
        """The value whose storage `v` shares (itself unless it is an alias)."""
        while self.storage[v].kind == "alias":
            v = int(self.storage[v].ref)
        return v

    def arena_values(self) -> list[int]:
        return sorted(v for v, s in self.storage.items() if s.kind == "arena")


def _fixed_storage(prog: Program) -> tuple[dict[int, Storage], dict[str, int], dict[int, int]]:
    """Storage that is not the planner's choice: inputs, outputs, constants, aliases."""
    G = prog.graph.nx
    storage: dict[int, Storage] = {}
    for name, n in prog.inputs.items():
        storage[n] = Storage("input", name)
    extra: dict[str, int] = {}
    for name, n in prog.outputs.items():
        if G.nodes[n]["op"] == "const":
            storage[n] = Storage("const", n)
        if n in storage:
            extra[name] = n  # an input, a constant or a value returned twice: copied out
        else:
            storage[n] = Storage("output", name)
    alias_of: dict[int, int] = {}
    for v in internal_values(prog):
        storage[v] = Storage("local", prog.step_of[v])
    for t, s in enumerate(prog.steps):
        for u in prog.reads(t):
            if G.nodes[u]["op"] == "const":
                storage[u] = Storage("const", u)
        if s.node not in storage and G.nodes[s.node]["op"] == "reshape":
            (src,) = operands(G, s.node)
            storage[s.node] = Storage("alias", src)
            alias_of[s.node] = src
    return storage, extra, alias_of


def _can_overwrite(prog: Program, v: int, x: int) -> bool:
    """May v's step write v over x, which it reads (at the same index it writes v)?"""
    G = prog.graph.nx
    a, b = G.nodes[v], G.nodes[x]
    return REGISTRY[a["op"]].elementwise and a["shape"] == b["shape"] and a["dtype"] == b["dtype"]


Placement = Callable[..., tuple[list[list[int]], set[int]]]


def _by_schedule(prog, values, iv, nbytes, overwrite) -> tuple[list[list[int]], set[int]]:
    """In schedule order; a value takes an operand's slot in place, else the best-fitting free
    slot (a reference count and a free list, as CasADi's work vector), else a new slot."""
    slots: list[list[int]] = []
    slot_of: dict[int, int] = {}
    in_place: set[int] = set()
    for v in sorted(values, key=lambda v: (iv[v].start, v)):
        t = iv[v].start
        free = [k for k, members in enumerate(slots) if iv[members[-1]].end < t]
        for x in prog.operands_of(v):
            k = slot_of.get(x)
            if k is not None and slots[k][-1] == x and iv[x].end == t and overwrite(v, x):
                free, chosen = [], k
                in_place.add(v)
                break
        else:
            chosen = None
        if free:
            size = nbytes[v]
            have = {k: max(nbytes[m] for m in slots[k]) for k in free}
            # Best fit: the smallest free slot that holds v, else the largest one (to grow).
            fits = [k for k in free if have[k] >= size]
            chosen = min(fits, key=lambda k: (have[k], k)) if fits else max(free, key=have.get)
        if chosen is None:
            chosen = len(slots)
            slots.append([])
        slots[chosen].append(v)
        slot_of[v] = chosen
    return slots, in_place


def _by_size(prog, values, iv, nbytes, overwrite) -> tuple[list[list[int]], set[int]]:
    """Largest first; each value joins the slot with no overlapping member that grows least
    (best fit), as the size-ordered placement of XLA's heap simulator."""
    slots: list[list[int]] = []  # members of each slot, sorted by start (they are disjoint)
    starts: list[list[int]] = []
    size: list[int] = []

    def in_place(p: int, q: int) -> bool:  # p written over its operand q at q's last read
        return iv[q].end == iv[p].start and q in prog.operands_of(p) and overwrite(p, q)

    def fits(v: int, k: int) -> bool:
        a = iv[v]
        i = bisect.bisect_left(starts[k], a.start)
        before = slots[k][i - 1] if i > 0 else None
        after = slots[k][i] if i < len(slots[k]) else None
        if before is not None and iv[before].end >= a.start and not in_place(v, before):
            return False
        return (
            after is None
            or iv[after].start > a.end
            or (iv[after].start == a.end and in_place(after, v))
        )

    for v in sorted(values, key=lambda v: (-nbytes[v], iv[v].start, v)):
        best, best_cost = None, None
        for k in range(len(slots)):
            if fits(v, k):
                cost = (max(0, nbytes[v] - size[k]), k)
                if best_cost is None or cost < best_cost:
                    best, best_cost = k, cost
        if best is None:
            best = len(slots)
            slots.append([])
            starts.append([])
            size.append(0)
        i = bisect.bisect_left(starts[best], iv[v].start)
        slots[best].insert(i, v)
        starts[best].insert(i, iv[v].start)
        size[best] = max(size[best], nbytes[v])
    written_over = set()
    for members in slots:
        for p, q in zip(members, members[1:], strict=False):
            if in_place(q, p):
                written_over.add(q)
    return slots, written_over


def plan_memory(prog: Program, strategy: str = "best", hint: int = DEFAULT_HINT) -> MemoryPlan:
    """Storage for every value of `prog`. `strategy` is "best" (the smaller of the two
    placements), "schedule", "size", or "naive" (one slot per value, no sharing)."""
    G = prog.graph.nx
    storage, extra, alias_of = _fixed_storage(prog)
    iv = liveness(prog, alias_of)
    values = [n for s in prog.steps for n in s.nodes if n not in storage]
    symbols = {d for v in values for d in G.nodes[v]["shape"] if isinstance(d, str)}
    sizes = dict.fromkeys(symbols, hint)
    nbytes = {v: value_bytes(G.nodes[v]["shape"], G.nodes[v]["dtype"], sizes) for v in values}

    def overwrite(v: int, x: int) -> bool:
        return x in nbytes and _can_overwrite(prog, v, x)

    placements: dict[str, Placement] = {"schedule": _by_schedule, "size": _by_size}
    if strategy == "naive":
        candidates = {"naive": ([[v] for v in values], set())}
    elif strategy in placements:
        candidates = {strategy: placements[strategy](prog, values, iv, nbytes, overwrite)}
    elif strategy == "best":
        candidates = {k: f(prog, values, iv, nbytes, overwrite) for k, f in placements.items()}
    else:
        raise ValueError(f"unknown memory strategy {strategy!r}")

    def arena(slots: list[list[int]]) -> int:
        return sum(max(nbytes[m] for m in members) for members in slots)

    name = min(candidates, key=lambda k: (arena(candidates[k][0]), k != "schedule"))
    chosen, in_place = candidates[name]
    chosen = sorted(chosen, key=lambda members: min(iv[m].start for m in members))
    slots = []
    for k, members in enumerate(chosen):
        layouts = dict.fromkeys(
            (G.nodes[m]["shape"], G.nodes[m]["dtype"])
            for m in sorted(members, key=lambda m: -nbytes[m])
        )
        slots.append(Slot(k, tuple(layouts)))
        for m in members:
            storage[m] = Storage("arena", k)
    return MemoryPlan(storage, tuple(slots), extra, iv, frozenset(in_place), name)
