"""Where a call's time goes: each step of a compiled function's program, timed over repeated
calls by graphc's runtime, with the statements it computes and their model lines
(`CompiledModule.profile`, `graphc compile --profile`)."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from graphc.codegen.cython import program_listing


@dataclass(frozen=True)
class Step:
    index: int  # the row of the program, from 0
    seconds: float  # per call
    statements: tuple[str, ...]  # `v12 = tanh(v11)   [model.py:14]`, as in the source

    @property
    def lines(self) -> tuple[str, ...]:
        """The model lines of its statements, each once."""
        return tuple(dict.fromkeys(_line(s) for s in self.statements if _line(s)))

    @property
    def ops(self) -> str:
        """Its ops, as `matmul` or `softmax+mul+sub` (a fused loop)."""
        names = [m.group(1) for s in self.statements if (m := _OP.search(s))]
        return "+".join(dict.fromkeys(names)) or "?"


_OP = re.compile(r"= (\w+)[\[(]")
_LINE = re.compile(r"\[([^\[\]]*:\d+)\]$")


def _line(statement: str) -> str:
    m = _LINE.search(statement)
    return m.group(1) if m else ""


@dataclass(frozen=True)
class Profile:
    """The steps of one function's program, timed: `steps` in program order; `total` the
    seconds of a whole call (outside the steps too: checks, memory, results)."""

    function: str
    calls: int
    total: float
    steps: tuple[Step, ...]

    def by_line(self) -> list[tuple[str, float]]:
        """Seconds per call of each model line, the largest first (a step of several lines
        counts for each, split evenly)."""
        out: dict[str, float] = defaultdict(float)
        for s in self.steps:
            for line in s.lines or ("?",):
                out[line] += s.seconds / max(len(s.lines), 1)
        return sorted(out.items(), key=lambda kv: -kv[1])

    def table(self, top: int = 20) -> str:
        """The `top` steps taking the most time, and the model lines, as text."""
        in_steps = sum(s.seconds for s in self.steps)
        head = (
            f"{self.function}: {self.total * 1e6:,.1f} µs per call (mean of {self.calls}), "
            f"{in_steps * 1e6:,.1f} µs in its {len(self.steps)} steps"
        )
        rows = [f"{'µs':>10} {'%':>5}  step  ops / statements"]
        for s in sorted(self.steps, key=lambda s: -s.seconds)[:top]:
            share = 100 * s.seconds / self.total if self.total else 0.0
            first = s.statements[0] if s.statements else "?"
            more = f" (+{len(s.statements) - 1} more)" if len(s.statements) > 1 else ""
            step = f"{s.index:4d}  {s.ops}: {first}{more}"
            rows.append(f"{s.seconds * 1e6:10.1f} {share:5.1f}  {step}")
        lines = [f"{'µs':>10} {'%':>5}  model line"]
        for line, sec in self.by_line()[:top]:
            share = 100 * sec / self.total if self.total else 0.0
            lines.append(f"{sec * 1e6:10.1f} {share:5.1f}  {line}")
        return "\n".join([head, "", *rows, "", *lines])

    def __str__(self) -> str:
        return self.table()


def profile(compiled: Any, function: str, args: tuple, kwargs: dict, repeat: int) -> Profile:
    """Run `function` of the CompiledModule `compiled` `repeat` times (after one call to warm
    it) and time each step of its program (see Profile)."""
    module = compiled.module
    if function not in getattr(module, "FUNCTIONS", {}):
        have = sorted(getattr(module, "FUNCTIONS", {}))
        raise ValueError(f"profile: the module has no function {function!r}; it has {have}")
    if not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"profile: repeat must be a positive int, got {repeat!r}")
    run = module._rt.profile
    capsule = module.FUNCTIONS[function]
    run(capsule, args, kwargs, 1)  # warm: caches, the output block, the threads
    t0 = time.perf_counter()
    _, seconds = run(capsule, args, kwargs, repeat)
    total = (time.perf_counter() - t0) / repeat
    listing = program_listing(compiled.source, function)
    if len(listing) != len(seconds):
        raise RuntimeError(
            f"profile: {function}'s source lists {len(listing)} steps, its program has "
            f"{len(seconds)}: the source is not this module's"
        )
    steps = tuple(
        Step(k, sec / repeat, listing[k]) for k, sec in enumerate(seconds)
    )  # fmt: skip
    return Profile(function, repeat, total, steps)
