"""`plan_memory`: where every value of a scheduled program lives during one call.

The plan is data. Each value is stored in one of:
  - its caller's input array (`input`), or the output array returned to the caller (`output`);
  - a module-level constant (`const`);
  - the bytes of another value, unchanged (`alias`: a reshape is the same bytes);
  - a slot of the per-call arena (`arena`), whose size is a product of dims (symbols allowed)
    and whose byte offset is fixed by slot order at call time.
The planner here gives every arena value its own slot; liveness-based reuse fills the same
structure with fewer, shared slots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from graphc.ir.shapes import Shape, format_shape
from graphc.passes.schedule import Program

ALIGN = 64  # bytes; every slot starts on a cache line
ITEMSIZE = {"float64": 8, "float32": 4, "bool": 1}


@dataclass(frozen=True)
class Storage:
    kind: str  # "input" | "output" | "const" | "alias" | "arena"
    ref: str | int  # input/output name, aliased value id, or slot id; the node id for consts


@dataclass(frozen=True)
class Slot:
    id: int
    shape: Shape  # element count is the product; symbols are bound at call time
    dtype: str

    @property
    def itemsize(self) -> int:
        return ITEMSIZE[self.dtype]

    def nbytes(self, sizes: dict[str, int]) -> int:
        """Bytes reserved for the slot (rounded up to ALIGN) when the symbols take `sizes`."""
        n = math.prod(d if isinstance(d, int) else sizes[d] for d in self.shape) * self.itemsize
        return -(-n // ALIGN) * ALIGN


@dataclass(frozen=True)
class MemoryPlan:
    storage: dict[int, Storage]
    slots: tuple[Slot, ...]
    extra_outputs: dict[str, int] = field(default_factory=dict)  # output name -> value to copy

    def arena_bytes(self, sizes: dict[str, int]) -> int:
        return sum(s.nbytes(sizes) for s in self.slots)

    def root(self, v: int) -> int:
        """The value whose storage `v` shares (itself unless it is an alias)."""
        while self.storage[v].kind == "alias":
            v = int(self.storage[v].ref)
        return v

    def summary(self, values: dict[int, tuple[Shape, str]], sizes: dict[str, int]) -> dict:
        """Naive bytes (one buffer per arena value) against the planned arena, at `sizes`."""
        naive = sum(
            Slot(0, shape, dtype).nbytes(sizes)
            for v, (shape, dtype) in values.items()
            if self.storage[v].kind == "arena"
        )
        return {
            "slots": len(self.slots),
            "naive_bytes": naive,
            "arena_bytes": self.arena_bytes(sizes),
            "sizes": dict(sizes),
        }

    def __str__(self) -> str:
        rows = [f"{'value':>8}  storage"]
        for v, s in sorted(self.storage.items()):
            where = f"buf{s.ref}" if s.kind == "arena" else f"{s.kind} {s.ref}"
            rows.append(f"{'v' + str(v):>8}  {where}")
        rows += [f"buf{s.id}: {s.dtype}{format_shape(s.shape)}" for s in self.slots]
        return "\n".join(rows)


def plan_memory(prog: Program) -> MemoryPlan:
    """One arena slot per computed value; outputs written in place; reshapes alias."""
    G = prog.graph.nx
    storage: dict[int, Storage] = {}
    for name, n in prog.inputs.items():
        storage[n] = Storage("input", name)
    extra: dict[str, int] = {}
    for name, n in prog.outputs.items():
        if n in storage or G.nodes[n]["op"] == "const":
            extra[name] = n  # an input, a constant or a value returned twice: copied out
        else:
            storage[n] = Storage("output", name)
    slots: list[Slot] = []
    for n in {u for s in prog.steps for u in G.predecessors(s.node)}:
        if G.nodes[n]["op"] == "const":
            storage[n] = Storage("const", n)
    for s in prog.steps:
        a = G.nodes[s.node]
        if s.node in storage:
            continue
        if a["op"] == "reshape":
            (src,) = G.predecessors(s.node)
            storage[s.node] = Storage("alias", src)
            continue
        storage[s.node] = Storage("arena", len(slots))
        slots.append(Slot(len(slots), a["shape"], a["dtype"]))
    return MemoryPlan(storage, tuple(slots), extra)
