"""An independent check of a memory plan: replay the schedule and watch every byte range.

It shares no code with the planner. From the program alone it works out when each value is last
read; then it walks the steps, tracking which value each arena slot holds, and fails if a step
reads a value whose slot now holds another, or writes over a value that is read later.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from graphc.errors import PlanError
from graphc.ir.dag import describe, operands, without_gc
from graphc.ir.shapes import ITEMSIZE, at_hint, dim_value, shape_symbols
from graphc.ops.registry import REGISTRY
from graphc.passes.memory import MemoryPlan, Slot
from graphc.passes.schedule import Program


def _roots(plan: MemoryPlan) -> Callable[[int], int]:
    """The value whose storage a value shares, following its aliases; every chain is walked
    once (the answers are remembered for each value on it)."""
    known: dict[int, int] = {}

    storage = plan.storage

    def root(v: int) -> int:
        r = known.get(v)
        if r is not None:
            return r
        if storage[v].kind != "alias":
            return v
        chain, seen = [], set()
        while v not in known and storage[v].kind == "alias":
            if v in seen:
                raise PlanError(f"v{v}: its aliases form a cycle")
            seen.add(v)
            chain.append(v)
            v = int(storage[v].ref)
        r = known.get(v, v)
        known.update(dict.fromkeys(chain, r))
        return r

    return root


@without_gc
def verify_plan(prog: Program, plan: MemoryPlan, sizes: tuple[int, ...] = (0, 1, 3, 1000)) -> None:
    """Raise PlanError if running `prog` with `plan` could read clobbered or missing data."""
    G = prog.graph.nx
    storage = plan.storage
    steps = [s.nodes for s in prog.steps]
    root = _roots(plan)
    # What each step reads from outside itself (a fused step's own values stay in its loop).
    reads = []
    for nodes in steps:
        if len(nodes) == 1:  # a node is not its own operand
            reads.append(operands(G, nodes[0]))
            continue
        mine = set(nodes)
        reads.append([u for n in nodes for u in operands(G, n) if u not in mine])
    writes = [
        [v for v in nodes if getattr(storage.get(v), "kind", None) != "local"] for nodes in steps
    ]

    def where(v: int) -> str:
        return describe(G, v)

    # Every value read or written has storage of the right kind; a value kept in a loop's scalar
    # is read by its own step only.
    outputs = set(prog.outputs.values())
    for t, nodes in enumerate(steps):
        for u in [*reads[t], *nodes]:
            if u not in storage:
                raise PlanError(f"step {t}: {where(u)} has no storage")
        for u in reads[t]:
            if storage[u].kind == "local":
                raise PlanError(f"step {t}: reads {where(u)}, a scalar of another step's loop")
        for v in nodes:
            if storage[v].kind == "local" and (len(nodes) == 1 or v in outputs):
                raise PlanError(f"step {t}: {where(v)} is kept in a loop scalar but is needed")
    for t, vs in enumerate(writes):
        for v in vs:
            kind = storage[v].kind
            if kind in ("input", "const"):
                raise PlanError(f"step {t}: {where(v)} would be written into an {kind}")
            if kind == "output" and prog.outputs.get(storage[v].ref) != v:
                raise PlanError(
                    f"step {t}: {where(v)} would be written into output "
                    f"{storage[v].ref!r}, which is another value"
                )
    for name, n in prog.inputs.items():
        if storage.get(n) != type(storage.get(n))("input", name):
            raise PlanError(f"input {name!r} ({where(n)}) is not stored in its argument")
    for name, n in prog.outputs.items():
        st = storage.get(n)
        if name not in plan.extra_outputs and (st is None or (st.kind, st.ref) != ("output", name)):
            raise PlanError(
                f"output {name!r} ({where(n)}) is neither computed into its array nor copied there"
            )

    # Slots are large enough for every member, at several sizes of every symbol.
    slot_of_id: dict[int | str, Slot] = {}
    for slot in plan.slots:
        slot_of_id.setdefault(slot.id, slot)  # the first slot with an id, if ids repeat
    symbols = {
        d
        for shape in dict.fromkeys(a.get("shape", ()) for a in G._node.values())
        for d in shape_symbols(shape)
    }
    envs = [at_hint(symbols, n) for n in sizes]
    # The bytes at each size, worked out once per layout and per slot's layouts (many values
    # and slots share them).
    needs: dict[tuple, list[int]] = {}
    haves: dict[tuple, list[int]] = {}
    for v, st in storage.items():
        if st.kind != "arena":
            continue
        if st.ref not in slot_of_id:
            raise PlanError(f"{where(v)} is in buf{st.ref}, which the plan does not have")
        a = G._node[v]
        layout = (a["shape"], a["dtype"])
        need_at = needs.get(layout)
        if need_at is None:
            need_at = needs[layout] = [
                math.prod(dim_value(d, env) for d in a["shape"]) * ITEMSIZE[a["dtype"]]
                for env in envs
            ]
        slot = slot_of_id[st.ref]
        have_at = haves.get(slot.layouts)
        if have_at is None:
            have_at = haves[slot.layouts] = [slot.nbytes(env) for env in envs]
        for n, need, have in zip(sizes, need_at, have_at, strict=True):
            if have < need:
                raise PlanError(
                    f"{where(v)} needs {need} bytes at size {n}, buf{st.ref} has {have}"
                )

    # Steps that may run at once (Step.beside) touch disjoint memory: neither writes where the
    # other reads or writes.
    def places(vs: list[int]) -> dict[tuple, int]:
        out = {}
        for v in vs:
            st = storage[root(v)]
            if st.kind not in ("local", "const"):
                out[(st.kind, st.ref)] = v
        return out

    for t, step in enumerate(prog.steps[:-1]):
        if not step.beside:
            continue
        for w, r in ((t, t + 1), (t + 1, t)):
            written, touched = places(writes[w]), places([*reads[r], *writes[r]])
            for key in written.keys() & touched.keys():
                raise PlanError(
                    f"steps {t} and {t + 1} may run at once, but step {w} writes "
                    f"{where(written[key])} where step {r} uses {where(touched[key])}"
                )

    # When is each (root) value last read?
    last_read: dict[int, int] = {}
    for t in range(len(steps)):
        for u in reads[t]:
            last_read[root(u)] = t
    for n in prog.outputs.values():
        last_read[root(n)] = len(steps)

    # Replay.
    holds: dict[int, int] = {}  # slot -> the root value whose bytes it holds
    written: set[int] = set()
    for t in range(len(steps)):
        read_roots = set()
        for u in reads[t]:
            r = root(u)
            read_roots.add(r)
            st = storage[r]
            if st.kind == "arena" and holds.get(int(st.ref)) != r:
                other = holds.get(int(st.ref))
                raise PlanError(
                    f"step {t}: {where(steps[t][-1])} reads {where(u)} from buf{st.ref}, but the "
                    + (
                        f"buffer now holds v{other}"
                        if other is not None
                        else "buffer was never written"
                    )
                )
            if st.kind in ("arena", "output") and r not in written and G._node[r]["op"] != "const":
                raise PlanError(
                    f"step {t}: {where(steps[t][-1])} reads {where(u)} before it is computed"
                )
        for v in writes[t]:
            st = storage[v]
            if st.kind == "arena":
                prev = holds.get(int(st.ref))
                if prev is not None and last_read.get(prev, -1) > t:
                    raise PlanError(
                        f"step {t}: {where(v)} overwrites v{prev} in buf{st.ref}, which "
                        f"is read again at step {last_read[prev]}"
                    )
                if prev is not None and last_read.get(prev, -1) == t:
                    # Only an elementwise result may replace an operand of its own shape that its
                    # step reads, at the same index (a fused loop loads before it stores).
                    a, b = G._node[v], G._node[prev]
                    reads_prev = prev in read_roots
                    same = a["shape"] == b["shape"] and a["dtype"] == b["dtype"]
                    if not (REGISTRY[a["op"]].elementwise and same and reads_prev):
                        raise PlanError(
                            f"step {t}: {where(v)} overwrites v{prev} in buf{st.ref} "
                            "while reading it, and is not an elementwise op of the "
                            "same shape that may work in place"
                        )
                holds[int(st.ref)] = v
            written.add(v)
