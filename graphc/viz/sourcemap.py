"""Which lines of a generated module belong to which node: the one place that reads the source
comments code generation writes (DESIGN.md §5).

It relies on these conventions of the generated `.pyx` and on nothing else:
  - values are named `v<id>` and gradients `g<id of the node they differentiate>`;
  - each function's program is a C table opening with `gc_<function>_program[] = {<count>,`
    and closing with a line `};`; each of its steps is a C comment `/* ... */` listing the
    statements the step computes, one a line, `<name> = <op>(...)   [<model line>]`, after
    `adj: ` for a backward one, followed by the line of the step's row; a step that runs
    several kernels has the rows after the first, which have no comment, on the lines after
    that, up to the next comment or the table's end;
  - a row is `kernel, k, work, flags, ` then k operands: its first number is the kernel it
    calls, `_k<number>` when below the count of the module's own kernels, else the runtime's
    kernel at (number - that count) in `rt.link(gc_kernels, <count>, (<names>))`;
  - kernel `_k<N>` is the top-level function `cdef gc_kernel _k<N>(`, whose next line is its
    docstring, with its range functions `cdef gc_kernel _k<N>_<M>(` next to it; a function
    ends where the next line starting at column 0 does (blank lines at its end left out);
  - a module constant is a line `np.array(...),  # <name> [<model line>]` of `_CONSTS`.

A node's own lines are its statements (one per program step computing it) and their rows; a
kernel's lines are shared by the nodes of every step calling it, so they are kept apart.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

_NAME = r"[vg]\d+"
_PROGRAM = re.compile(r"\bgc_(\w+)_program\[\] = \{")
# `adj: g14 = mul(g16, v28)   [model.py:27]`; the op may carry `[params]`.
_STATEMENT = re.compile(rf"^(adj:\s*)?({_NAME}) = [A-Za-z_]\w*[\[(].*\[[^\]]*\]$")
_KERNEL = re.compile(r"^cdef gc_kernel _k(\d+)(_\d+)?\(")
_DOC = re.compile(r'^\s+"""(.*)"""\s*$')
_LINK = re.compile(r"^rt\.link\(gc_kernels, (\d+), (\(.*\))\)\s*$")
_CONST = re.compile(rf"^\s+np\.array\(.*\),\s+#\s*({_NAME}) \[[^\]]*\]\s*$")


def value_names(G: nx.MultiDiGraph) -> dict[str, int]:
    """The name the generated source gives each node -> its id: `g<k>` for the first node (by
    id) that is the gradient of node k, `v<id>` for every other."""
    names: dict[str, int] = {}
    for n in sorted(G.nodes):
        k = G.nodes[n].get("grad_of")
        name = f"g{k}" if isinstance(k, int) and f"g{k}" not in names else f"v{n}"
        names[name] = n
    return names


@dataclass
class KernelLines:
    """Kernel `number` of the module: `name` is `_k3` for the module's own, or the runtime's
    (`gemm_d`); `lines` its functions' lines (none for the runtime's); `doc` its docstring."""

    number: int
    name: str
    runtime: bool = False
    doc: str = ""
    lines: list[int] = field(default_factory=list)


@dataclass
class StepLines:
    """One step of a function's program: the statements of its comment (`names`, the nodes
    they compute, `statements` the line of each, `adj` whether each is backward), the lines of
    its rows, and the kernels they call. `index` counts the program's steps from 0."""

    function: str
    index: int
    names: list[str] = field(default_factory=list)
    nodes: list[int | None] = field(default_factory=list)  # None: a name no node has
    statements: list[int] = field(default_factory=list)
    adj: list[bool] = field(default_factory=list)
    comment: list[int] = field(default_factory=list)  # every line of the comment
    rows: list[int] = field(default_factory=list)
    kernels: list[int] = field(default_factory=list)

    @property
    def computed(self) -> list[int]:
        """The nodes its statements compute, in order."""
        return [n for n in self.nodes if n is not None]


@dataclass
class SourceMap:
    """`lines[i]`: the nodes line i (1-based) computes (a statement, a row, a constant);
    `nodes[n]`: those lines of node n; `backward`: the lines of `adj:` statements and the rows
    of steps wholly backward; `comments`: the steps' comment lines; `steps`: every program's
    steps in order; `kernels`: the kernels by number; `kernel_at[i]`: the kernel whose
    function holds line i; `unknown`: names the comments use that no node has (empty for a
    module made from the same graph)."""

    lines: dict[int, list[int]] = field(default_factory=dict)
    nodes: dict[int, list[int]] = field(default_factory=dict)
    backward: set[int] = field(default_factory=set)
    comments: set[int] = field(default_factory=set)
    steps: list[StepLines] = field(default_factory=list)
    kernels: dict[int, KernelLines] = field(default_factory=dict)
    kernel_at: dict[int, int] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    _of_node: dict[int, list[StepLines]] = field(default_factory=dict, repr=False)
    _of_kernel: dict[int, list[StepLines]] = field(default_factory=dict, repr=False)

    def add(self, line: int, node: int) -> None:
        if node not in self.lines.setdefault(line, []):
            self.lines[line].append(node)
            self.nodes.setdefault(node, []).append(line)

    def program(self, function: str) -> list[StepLines]:
        """The steps of `function`'s program, in order."""
        return [s for s in self.steps if s.function == function]

    def steps_of(self, node: int) -> list[StepLines]:
        """The steps computing `node`, in every program (more than one in a program that
        recomputes it)."""
        return self._of_node.get(node, [])

    def kernels_of(self, node: int) -> list[int]:
        """The kernels the steps computing `node` call."""
        return sorted({k for s in self.steps_of(node) for k in s.kernels})

    def callers(self, kernel: int) -> list[StepLines]:
        """The steps whose rows call `kernel`, in every program."""
        return self._of_kernel.get(kernel, [])

    def kernel_nodes(self, kernel: int) -> list[int]:
        """The nodes of every step calling `kernel`, each once, in the order of the source."""
        return list(dict.fromkeys(n for s in self.callers(kernel) for n in s.computed))


def aligned(prog: Any, steps: Sequence[StepLines]) -> dict[int, StepLines]:
    """Step number -> its step in the source, for the steps of schedule `prog` (a
    passes.schedule.Program) that have a row in `steps` (its function's program in the
    source): in order, a schedule step and a row computing the same nodes. A step without a
    row (a reshape sharing its operand's bytes) is left out."""
    out, j = {}, 0
    for k, s in enumerate(prog.steps):
        if j < len(steps) and steps[j].computed == list(s.nodes):
            out[k] = steps[j]
            j += 1
    return out


def _statement(text: str) -> tuple[str, bool] | None:
    """(name, backward) of a statement line of a step's comment, or None."""
    m = _STATEMENT.match(text.strip())
    return (m.group(2), bool(m.group(1))) if m else None


def _rows(cells: list[str]) -> list[int]:
    """The kernels of the whole rows at the start of `cells` (`kernel, k, work, flags, ` and k
    operands each), which are taken off it."""
    kernels = []
    while len(cells) >= 2 and cells[0].lstrip("-").isdigit() and cells[1].isdigit():
        if len(cells) < 4 + int(cells[1]):
            break
        kernels.append(int(cells[0]))
        del cells[: 4 + int(cells[1])]
    return kernels


def source_map(source: str, names: Mapping[str, int]) -> SourceMap:
    """Map the lines of the generated `source` to the nodes they compute and the kernels they
    run; `names` is `value_names` of the graph the source was generated from."""
    sm = SourceMap()
    lines = source.splitlines()

    def resolve(name: str) -> int | None:
        if name not in names:
            sm.unknown.add(name)
            return None
        return names[name]

    own, runtime = 0, ()
    kernel: int | None = None  # the kernel whose function is open
    last = 0  # the last line of it that is not blank
    function: str | None = None  # the program being read
    step: StepLines | None = None
    cells: list[str] = []  # the cells of `step`'s rows not yet read
    in_comment = False
    count: dict[str, int] = {}  # steps read per program

    def close_kernel() -> None:
        if kernel is not None:
            sm.kernels[kernel].lines += range(sm.kernels[kernel].lines[-1] + 1, last + 1)

    for i, text in enumerate(lines, start=1):
        stripped = text.strip()
        # ---- kernels: top-level functions, each to the last line before the next top level
        if text[:1] not in ("", " ", "\t") and kernel is not None:
            close_kernel()
            kernel = None
        if m := _KERNEL.match(text):
            kernel = int(m.group(1))
            k = sm.kernels.setdefault(kernel, KernelLines(kernel, f"_k{kernel}"))
            if not m.group(2) and i < len(lines) and (d := _DOC.match(lines[i])):
                k.doc = d.group(1)
            k.lines.append(i)
            last = i
            continue
        if kernel is not None:
            if stripped:
                last = i
            continue
        if m := _LINK.match(text):
            own = int(m.group(1))
            runtime = ast.literal_eval(m.group(2))
            continue
        if m := _CONST.match(text):
            if (n := resolve(m.group(1))) is not None:
                sm.add(i, n)
            continue
        # ---- programs
        if function is None:
            if m := _PROGRAM.search(text):
                function, step, cells = m.group(1), None, []
                count.setdefault(function, 0)
            continue
        if stripped == "};":
            function = None
            continue
        if stripped.startswith("/*") or in_comment:
            if not in_comment:
                step = StepLines(function, count[function])
                count[function] += 1
                sm.steps.append(step)
                stripped = stripped[2:]
            in_comment = not stripped.endswith("*/")
            stripped = stripped.removesuffix("*/")
            sm.comments.add(i)
            assert step is not None
            step.comment.append(i)
            if st := _statement(stripped):
                name, adj = st
                step.names.append(name)
                step.nodes.append(resolve(name))
                step.statements.append(i)
                step.adj.append(adj)
            continue
        if step is None or not stripped:
            continue
        step.rows.append(i)  # a line of the step's rows: the kernel of each row it ends
        cells += [c.strip() for c in stripped.split(",") if c.strip()]
        step.kernels += _rows(cells)
    if kernel is not None:
        close_kernel()
    for k in sorted({k for s in sm.steps for k in s.kernels} - set(sm.kernels)):
        name = runtime[k - own] if 0 <= k - own < len(runtime) else f"kernel {k}"
        sm.kernels[k] = KernelLines(k, name, runtime=k >= own)
    for k in sm.kernels.values():
        sm.kernel_at.update(dict.fromkeys(k.lines, k.number))
    for s in sm.steps:
        for line, n, adj in zip(s.statements, s.nodes, s.adj, strict=True):
            if n is not None:
                sm.add(line, n)
            if adj:
                sm.backward.add(line)
        for line in s.rows:
            for n in s.computed:
                sm.add(line, n)
            if s.adj and all(s.adj):
                sm.backward.add(line)
        for n in dict.fromkeys(s.computed):
            sm._of_node.setdefault(n, []).append(s)
        for k in dict.fromkeys(s.kernels):
            sm._of_kernel.setdefault(k, []).append(s)
    for n in sm.nodes:
        sm.nodes[n].sort()
    return sm
