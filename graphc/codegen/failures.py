"""Which steps of a program can stop a call: those whose kernel checks an index the model
computed (kir.Fail), with what each computes, for the error a failed call raises
(runtime/calls.step_error)."""

from __future__ import annotations

from collections.abc import Sequence

from graphc.codegen.kir import Kernel, Repeat, Step, fails

# Runtime kernels that report indices they cannot use (none yet: every runtime kernel either
# reads no index or is given checked ones).
FAILING_RUNTIME: frozenset[str] = frozenset()


def failing_steps(steps: Sequence[Step | Repeat]) -> dict[int, str]:
    """Step number -> the statement it computes, for every step that can fail (a loop's
    step when a step of its body can)."""
    out: dict[int, str] = {}
    said = ""
    for k, s in enumerate(steps):
        said = s.what[0] if s.what else said  # a lowering's later steps compute its node too
        if _can_fail(s):
            out[k] = said
    return out


def _can_fail(s: Step | Repeat) -> bool:
    if isinstance(s, Repeat):
        return any(_can_fail(b) for b in s.body)
    kernel = s.kernel
    return fails(kernel.body) if isinstance(kernel, Kernel) else kernel.name in FAILING_RUNTIME
