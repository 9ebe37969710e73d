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
import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from graphc.ir.dag import operands, without_gc
from graphc.ir.shapes import ITEMSIZE, Shape, at_hint, dim_value, format_shape, shape_symbols
from graphc.ops.registry import REGISTRY
from graphc.passes.fuse import internal_values
from graphc.passes.liveness import Interval, liveness
from graphc.passes.schedule import Program

ALIGN = 64  # bytes; every slot starts on a cache line
DEFAULT_HINT = 256  # the size each symbolic dim is assumed to have when ranking choices


def value_bytes(shape: Shape, dtype: str, sizes: dict[str, int]) -> int:
    n = math.prod(dim_value(d, sizes) for d in shape) * ITEMSIZE[dtype]
    return -(-n // ALIGN) * ALIGN


def bytes_at(sizes: dict[str, int]) -> Callable[[Shape, str], int]:
    """`value_bytes` at `sizes`, remembered for each (shape, dtype): a program has thousands of
    values but few layouts, and the planner asks for each value's bytes many times."""
    known: dict[tuple[Shape, str], int] = {}

    def nbytes(shape: Shape, dtype: str) -> int:
        got = known.get((shape, dtype))
        if got is None:
            got = known[shape, dtype] = value_bytes(shape, dtype, sizes)
        return got

    return nbytes


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
        nbytes = bytes_at(sizes)
        return sum(max(nbytes(shape, dtype) for shape, dtype in s.layouts) for s in self.slots)

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
        if G._node[n]["op"] == "const":
            storage[n] = Storage("const", n)
        if n in storage:
            extra[name] = n  # an input, a constant or a value returned twice: copied out
        else:
            storage[n] = Storage("output", name)
    alias_of: dict[int, int] = {}
    for v in internal_values(prog):
        storage[v] = Storage("local", prog.step_of[v])
    nodes = G._node
    for s, reads in zip(prog.steps, prog._reads, strict=True):
        for u in reads:
            if nodes[u]["op"] == "const":
                storage[u] = Storage("const", u)
        if s.node not in storage and nodes[s.node]["op"] == "reshape":
            (src,) = operands(G, s.node)
            storage[s.node] = Storage("alias", src)
            alias_of[s.node] = src
    return storage, extra, alias_of


def can_overwrite(prog: Program, v: int, x: int) -> bool:
    """May v's step write v over x, which it reads (at the same index it writes v)?"""
    G = prog.graph.nx
    a, b = G._node[v], G._node[x]
    return REGISTRY[a["op"]].elementwise and a["shape"] == b["shape"] and a["dtype"] == b["dtype"]


Placement = Callable[..., tuple[list[list[int]], set[int]]]


def _by_schedule(prog, values, iv, nbytes, overwrite) -> tuple[list[list[int]], set[int]]:
    """In schedule order; a value takes an operand's slot in place, else the best-fitting free
    slot (a reference count and a free list, as CasADi's work vector), else a new slot.

    A slot is busy until the last read of its last member. Busy slots wait in a heap keyed by
    that step; free ones sit in `free[size]`, a heap of slot ids per slot size, with `sizes` the
    sorted sizes that have a free slot. Best fit -- the smallest free slot that holds the value,
    else the largest one (to grow), the lowest id among equals -- is then one bisection. Only
    values whose last read is the value's step (`dying`) can be written over in place."""
    slots: list[list[int]] = []
    slot_of: dict[int, int] = {}
    have: list[int] = []  # each slot's size: the bytes of its largest member
    busy: list[tuple[int, int, int]] = []  # (last read of the last member, slot, that member)
    free: dict[int, list[int]] = {}
    sizes: list[int] = []
    in_place: set[int] = set()
    dying_at, dying = None, []  # a step, and the arena values it reads last (operand order)
    reads = prog._reads
    for v in sorted(values, key=lambda v: (iv[v].start, v)):
        t = iv[v].start  # v's step: what it reads is prog.operands_of(v)
        if t != dying_at:
            dying_at, dying = t, [x for x in reads[t] if x in slot_of and iv[x].end == t]
        while busy and busy[0][0] < t:
            _, k, last = heapq.heappop(busy)
            if slots[k][-1] != last:
                continue  # the slot was taken in place since: its newer entry is in the heap
            if have[k] not in free:
                free[have[k]] = []
                bisect.insort(sizes, have[k])
            heapq.heappush(free[have[k]], k)
        chosen = None
        for x in dying:
            k = slot_of[x]
            if slots[k][-1] == x and overwrite(v, x):
                chosen = k
                in_place.add(v)
                break
        if chosen is None and sizes:  # the smallest size that holds v, else the largest
            i = min(bisect.bisect_left(sizes, nbytes[v]), len(sizes) - 1)
            chosen = heapq.heappop(free[sizes[i]])
            if not free[sizes[i]]:
                del free[sizes.pop(i)]
        if chosen is None:
            chosen = len(slots)
            slots.append([])
            have.append(0)
        slots[chosen].append(v)
        slot_of[v] = chosen
        have[chosen] = max(have[chosen], nbytes[v])
        heapq.heappush(busy, (iv[v].end, chosen, v))
    return slots, in_place


class _Occupancy:
    """Which slots have a member live at some step of a range of steps: bit masks (bit k for
    slot k) in a segment tree over the steps (node 1 is the root, node x has children 2x and
    2x + 1, and leaf `leaves + 1 + t` is step t, from WHOLE_CALL = -1 on).

    A member live over steps lo..hi is recorded in `cover` of the O(log T) nodes that tile
    lo..hi exactly, and in `touch` of those nodes and of every node on the paths from leaves lo
    and hi to the root (which are the nodes that hold part of lo..hi and more). A member meets
    a range s..e exactly when its slot's bit is in `touch` of a node tiling s..e or in `cover`
    of a node on the paths from leaves s and e. Recording and asking are O(log T) ORs of masks
    of one bit per slot (word-parallel, in C), where trying every slot was O(slots) calls."""

    def __init__(self, steps: int) -> None:
        self.leaves = 1 << (steps + 1).bit_length()  # room for steps -1..steps
        self.cover = [0] * (2 * self.leaves)
        self.touch = [0] * (2 * self.leaves)

    def add(self, k: int, lo: int, hi: int) -> None:
        """Slot k has a member live at steps lo..hi."""
        bit = 1 << k
        cover, touch = self.cover, self.touch
        a, b = self.leaves + 1 + lo, self.leaves + 2 + hi
        while a < b:  # the tiles
            if a & 1:
                cover[a] |= bit
                touch[a] |= bit
                a += 1
            if b & 1:
                b -= 1
                cover[b] |= bit
                touch[b] |= bit
            a >>= 1
            b >>= 1
        a, b = self.leaves + 1 + lo, self.leaves + 1 + hi
        while a != b:  # the paths
            touch[a] |= bit
            touch[b] |= bit
            a >>= 1
            b >>= 1
        while a:
            touch[a] |= bit
            a >>= 1

    def slots_meeting(self, lo: int, hi: int) -> int:
        """The mask of the slots with a member live at some step of lo..hi."""
        mask = 0
        cover, touch = self.cover, self.touch
        a, b = self.leaves + 1 + lo, self.leaves + 2 + hi
        while a < b:  # the tiles
            if a & 1:
                mask |= touch[a]
                a += 1
            if b & 1:
                b -= 1
                mask |= touch[b]
            a >>= 1
            b >>= 1
        a, b = self.leaves + 1 + lo, self.leaves + 1 + hi
        while a != b:  # the paths
            mask |= cover[a] | cover[b]
            a >>= 1
            b >>= 1
        while a:
            mask |= cover[a]
            a >>= 1
        return mask


def _by_size(prog, values, iv, nbytes, overwrite) -> tuple[list[list[int]], set[int]]:
    """Largest first; each value joins the slot with no overlapping member that grows least
    (best fit), as the size-ordered placement of XLA's heap simulator.

    Every slot already holds a value at least as large, so none grows: the choice is the lowest
    slot where the value fits. That is a slot where no member is live at any step of the
    value's interval (the lowest clear bit of `_Occupancy.slots_meeting`), or one where a member
    only touches it, ending at its start or starting at its end (a value written over an
    operand in place): `ends_at` and `starts_at` name those few slots, and `fits` checks them."""
    slots: list[list[int]] = []  # members of each slot, sorted by start (they are disjoint)
    starts: list[list[int]] = []
    occupancy = _Occupancy(len(prog.steps))
    ends_at: dict[int, list[int]] = {}  # step -> the slots with a member whose last read it is
    starts_at: dict[int, list[int]] = {}  # step -> the slots with a member it defines
    reads: dict[int, set[int]] = {}  # step -> what it reads (its values' operands)

    def in_place(p: int, q: int) -> bool:  # p written over its operand q at q's last read
        t = iv[p].start  # p's step: what it reads is prog.operands_of(p)
        if iv[q].end != t:
            return False
        if t not in reads:
            reads[t] = set(prog._reads[t])
        return q in reads[t] and overwrite(p, q)

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
        a = iv[v]
        meeting = occupancy.slots_meeting(a.start, a.end)
        best = (~meeting & (meeting + 1)).bit_length() - 1  # len(slots) if every slot meets v
        for k in (*ends_at.get(a.start, ()), *starts_at.get(a.end, ())):
            if k < best and fits(v, k):
                best = k
        if best == len(slots):
            slots.append([])
            starts.append([])
        i = bisect.bisect_left(starts[best], a.start)
        slots[best].insert(i, v)
        starts[best].insert(i, a.start)
        occupancy.add(best, a.start, a.end)
        ends_at.setdefault(a.end, []).append(best)
        starts_at.setdefault(a.start, []).append(best)
    written_over = set()
    for members in slots:
        for p, q in zip(members, members[1:], strict=False):
            if in_place(q, p):
                written_over.add(q)
    return slots, written_over


def _least_arena(prog, values, iv, nbytes, overwrite) -> int:
    """A bound no placement goes below (0 when there are too many sizes to work it out), from
    sets of values no two of which can share a slot: those live at a step t (defined at t or
    before, read at t or after), less any read last at t that a value defined at t may be
    written over; and those live from t to t + 1. For each size x, the arena has at least as
    many slots of x bytes or more as such a set has values of x bytes or more, so it is at
    least the sum over sizes of those counts times the step to the next size. When the
    schedule-order placement comes within 1/BEST_MARGIN of it, "best" does not try the
    size-order one."""
    sizes = sorted(set(nbytes[v] for v in values), reverse=True)
    if not sizes or len(sizes) > LEAST_ARENA_SIZES:
        return 0
    rank = {x: i for i, x in enumerate(sizes)}
    starts: dict[int, list[int]] = {}
    for v in values:
        starts.setdefault(iv[v].start, []).append(v)

    def sharable(v: int, t: int) -> bool:  # read last at t by a step that may write over it
        return v in prog._reads[t] and any(p != v and overwrite(p, v) for p in starts.get(t, ()))

    n, count = len(prog.steps) + 2, len(values)  # steps WHOLE_CALL = -1 .. len(steps)
    start = np.fromiter((iv[v].start + 1 for v in values), np.int64, count)
    end = np.fromiter((iv[v].end + 1 for v in values), np.int64, count)
    ranks = np.fromiter((rank[nbytes[v]] for v in values), np.int64, count)
    across = start < end
    shared = np.fromiter((a and sharable(v, iv[v].end) for v, a in zip(values, across.tolist(),
                          strict=True)), bool, count)  # fmt: skip

    def per_step(which: np.ndarray, at: np.ndarray) -> np.ndarray:
        """[rank k, step]: how many of `which` at each step have rank k or less."""
        flat = np.bincount(ranks[which] * n + at[which], minlength=len(sizes) * n)
        return flat.reshape(len(sizes), n).cumsum(axis=0)

    live = np.cumsum(per_step(across, start) - per_step(across, end), axis=1)  # t to t + 1
    at_t = per_step(np.ones(count, bool), start) - per_step(shared, end)
    at_t[:, 1:] += live[:, :-1]  # live at t: defined at t, or live from t - 1 to t
    most = np.maximum(at_t.max(axis=1), live.max(axis=1)).tolist()
    steps = [x - y for x, y in zip(sizes, [*sizes[1:], 0], strict=True)]
    return sum(c * d for c, d in zip(most, steps, strict=True))


LEAST_ARENA_SIZES = 16  # distinct value sizes up to which _least_arena is worked out
# "best" keeps the schedule-order placement without trying the size-order one (the slower of
# the two) when the first is within 1/BEST_MARGIN of _least_arena: no placement could save more
# than that fraction.
BEST_MARGIN = 1024


@without_gc
def plan_memory(prog: Program, strategy: str = "best", hint: int = DEFAULT_HINT) -> MemoryPlan:
    """Storage for every value of `prog`. `strategy` is "best" (the smaller of the two
    placements; the size-order one is not tried when the schedule-order one is within
    1/BEST_MARGIN of the least any could be), "schedule", "size", or "naive" (one slot per
    value, no sharing)."""
    G = prog.graph.nx
    storage, extra, alias_of = _fixed_storage(prog)
    iv = liveness(prog, alias_of)
    values = [n for s in prog.steps for n in s.nodes if n not in storage]
    nodes = G._node
    shapes = dict.fromkeys(nodes[v]["shape"] for v in values)
    sizes = at_hint(dict.fromkeys(d for shape in shapes for d in shape_symbols(shape)), hint)
    size_of = bytes_at(sizes)
    nbytes = {v: size_of(nodes[v]["shape"], nodes[v]["dtype"]) for v in values}

    def overwrite(v: int, x: int) -> bool:
        return x in nbytes and can_overwrite(prog, v, x)

    def arena(slots: list[list[int]]) -> int:
        return sum(max(nbytes[m] for m in members) for members in slots)

    placements: dict[str, Placement] = {"schedule": _by_schedule, "size": _by_size}
    if strategy == "naive":
        candidates = {"naive": ([[v] for v in values], set())}
    elif strategy in placements:
        candidates = {strategy: placements[strategy](prog, values, iv, nbytes, overwrite)}
    elif strategy == "best":
        candidates = {"schedule": _by_schedule(prog, values, iv, nbytes, overwrite)}
        least = _least_arena(prog, values, iv, nbytes, overwrite)
        if arena(candidates["schedule"][0]) > least + least // BEST_MARGIN:
            candidates["size"] = _by_size(prog, values, iv, nbytes, overwrite)
    else:
        raise ValueError(f"unknown memory strategy {strategy!r}")

    name = min(candidates, key=lambda k: (arena(candidates[k][0]), k != "schedule"))
    chosen, in_place = candidates[name]
    chosen = sorted(chosen, key=lambda members: min(iv[m].start for m in members))
    slots = []
    for k, members in enumerate(chosen):
        layouts = dict.fromkeys(
            (G._node[m]["shape"], G._node[m]["dtype"])
            for m in sorted(members, key=lambda m: -nbytes[m])
        )
        slots.append(Slot(k, tuple(layouts)))
        for m in members:
            storage[m] = Storage("arena", k)
    return MemoryPlan(storage, tuple(slots), extra, iv, frozenset(in_place), name)
