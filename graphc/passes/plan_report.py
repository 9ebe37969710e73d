"""The memory plan made visible: a table, totals, live bytes over the schedule, and a plot."""

from __future__ import annotations

from dataclasses import dataclass

from graphc.ir.shapes import derived, format_type, shape_symbols
from graphc.passes.memory import MemoryPlan, value_bytes
from graphc.passes.schedule import Program


@dataclass(frozen=True)
class PlanTotals:
    sizes: dict[str, int]
    naive_bytes: int  # one buffer per value computed (in the arena or a fused loop's scalar)
    arena_bytes: int  # the planned arena
    live_peak_bytes: int  # the most bytes of arena values live at one step (a floor)
    slots: int
    values: int
    in_place: int

    @property
    def ratio(self) -> float:
        return self.arena_bytes / self.naive_bytes if self.naive_bytes else 1.0


def _symbols(prog: Program) -> set[str]:
    G = prog.graph.nx
    return {d for n in G for d in shape_symbols(G.nodes[n].get("shape", ()))}


def live_bytes(prog: Program, plan: MemoryPlan, sizes: dict[str, int]) -> list[int]:
    """Bytes of arena values live at each step (a value written in place over an operand
    shares its bytes at that step, so it counts from the step after)."""
    G = prog.graph.nx
    timeline = [0] * len(prog.steps)
    for v in plan.arena_values():
        iv, a = plan.intervals[v], G.nodes[v]
        nbytes = value_bytes(a["shape"], a["dtype"], sizes)
        first = max(iv.start, 0) + (v in plan.in_place)
        for t in range(first, min(iv.end, len(prog.steps) - 1) + 1):
            timeline[t] += nbytes
    return timeline


def totals(prog: Program, plan: MemoryPlan, sizes: dict[str, int]) -> PlanTotals:
    G = prog.graph.nx
    values = plan.arena_values()
    computed = [v for v, s in plan.storage.items() if s.kind in ("arena", "local")]
    naive = sum(value_bytes(G.nodes[v]["shape"], G.nodes[v]["dtype"], sizes) for v in computed)
    timeline = live_bytes(prog, plan, sizes)
    return PlanTotals(
        dict(sizes),
        naive,
        plan.arena_bytes(sizes),
        max(timeline, default=0),
        len(plan.slots),
        len(values),
        len(plan.in_place),
    )


def default_sizes(prog: Program, size: int) -> dict[str, int]:
    return dict.fromkeys(sorted(x for x in _symbols(prog) if not derived(x)), size)


def plan_table(prog: Program, plan: MemoryPlan, sizes: dict[str, int]) -> str:
    """One row per value (node, type, bytes, storage, offset, live interval), then totals."""
    G = prog.graph.nx
    offsets, at = {}, 0
    for s in plan.slots:
        offsets[s.id] = at
        at += s.nbytes(sizes)
    rows = [
        f"{'value':>7}  {'op':<14} {'type':<18} {'bytes':>10}  {'storage':<12} {'offset':>10}  live"
    ]
    order = prog.step_of
    for v in sorted(plan.storage, key=lambda v: (order.get(v, -1), v)):
        a, st = G.nodes[v], plan.storage[v]
        iv = plan.intervals.get(v)
        where = {"arena": f"buf{st.ref}", "alias": f"= v{st.ref}"}.get(st.kind, st.kind)
        offset = str(offsets[int(st.ref)]) if st.kind == "arena" else ""
        live = "" if iv is None else f"[{'in' if iv.start < 0 else iv.start}, {iv.end}]"
        flag = " in place" if v in plan.in_place else ""
        nbytes = value_bytes(a["shape"], a["dtype"], sizes)
        rows.append(
            f"{'v' + str(v):>7}  {a['op']:<14} {format_type(a['shape'], a['dtype']):<18} "
            f"{nbytes:>10}  {where:<12} {offset:>10}  {live}{flag}"
        )
    t = totals(prog, plan, sizes)
    at_sizes = ", ".join(f"{k}={v}" for k, v in sizes.items()) or "static shapes"
    rows += [
        "",
        f"at {at_sizes}: {t.values} values in {t.slots} buffers ({t.in_place} in place); "
        f"strategy {plan.strategy}",
        f"naive bytes (one buffer per value): {t.naive_bytes}",
        f"planned arena bytes:                {t.arena_bytes}  ({t.ratio:.2f} x naive)",
        f"live peak bytes (lower bound):      {t.live_peak_bytes}",
    ]
    return "\n".join(rows)


def plot_memory(prog: Program, plan: MemoryPlan, sizes: dict[str, int], path: str) -> None:
    """Live bytes over the schedule, forward and backward shaded apart (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("--plot-memory needs matplotlib: pip install 'graphc[plot]'") from e
    timeline = live_bytes(prog, plan, sizes)
    t = totals(prog, plan, sizes)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    steps = range(len(timeline))
    ax.step(
        steps,
        [b / 1024 for b in timeline],
        where="mid",
        color="black",
        lw=1.2,
        label="live arena bytes",
    )
    for section, color in (("forward", "tab:blue"), ("backward", "tab:orange")):
        idx = [k for k, s in enumerate(prog.steps) if s.section == section]
        if idx:
            ax.axvspan(idx[0] - 0.5, idx[-1] + 0.5, color=color, alpha=0.15, label=section)
    ax.axhline(t.arena_bytes / 1024, color="tab:green", ls="--", label="planned arena")
    ax.plot([], [], " ", label=f"naive (no reuse): {t.naive_bytes / 1024:.0f} KiB")
    ax.set_ylim(0, max(t.arena_bytes, 1) / 1024 * 1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("KiB")
    at_sizes = ", ".join(f"{k}={v}" for k, v in sizes.items())
    ax.set_title(
        f"{prog.graph.name}: memory over the schedule" + (f" ({at_sizes})" if at_sizes else "")
    )
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
