"""Liveness over a scheduled program: for each value, the step that defines it and the last
step that reads it (through aliases: a reshape's readers keep the bytes it shares alive). Two
steps that may run at once (`Step.beside`) count as one span: the values either defines live
from its first step, and the values either reads until its second."""

from __future__ import annotations

from dataclasses import dataclass

from graphc.passes.schedule import Program

WHOLE_CALL = -1  # `start` of inputs and constants: live before the first step


@dataclass(frozen=True)
class Interval:
    start: int  # defining step, or WHOLE_CALL
    end: int  # last reading step (>= start); len(steps) for outputs: live after the last step


def liveness(prog: Program, alias_of: dict[int, int] | None = None) -> dict[int, Interval]:
    """Live interval of every value the program defines or reads. `alias_of` maps a value that
    shares another's bytes to that value; reads of the alias count as reads of its root."""
    alias_of = alias_of or {}

    def root(v: int) -> int:
        while v in alias_of:
            v = alias_of[v]
        return v

    start: dict[int, int] = {}
    end: dict[int, int] = {}
    steps = prog.steps
    reads = prog._reads
    for t, step in enumerate(steps):
        born = t - 1 if t and steps[t - 1].beside else t
        used = t + 1 if step.beside else t
        for n in step.nodes:
            if n not in start:
                start[n] = born
            if n not in end:
                end[n] = used
        for u in reads[t]:
            if u not in start:
                start[u] = WHOLE_CALL
            e = end.get(u)
            if e is None or e < used:
                end[u] = used
            if u in alias_of:
                r = root(u)
                e = end.get(r)
                if e is None or e < used:
                    end[r] = used
    last = len(steps)
    for n in prog.outputs.values():
        start.setdefault(n, WHOLE_CALL)
        end[n] = last
        end[root(n)] = last
    for n in prog.inputs.values():
        start[n] = WHOLE_CALL
        end[n] = last
    # An alias lives as long as its root (the root may be read after the alias's last read).
    for v in alias_of:
        end[root(v)] = max(end[root(v)], end.get(v, start.get(v, 0)))
    return {v: Interval(start[v], end[v]) for v in start}
