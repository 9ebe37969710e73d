"""The pipeline, stage by stage (DESIGN.md §1), and `compile`, which runs it end to end.

verify -> cast to dtype -> simplify -> grad -> simplify -> schedule -> plan_memory
       -> lower -> render -> build (cached) -> load
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

import graphc
from graphc.codegen.lower import lower
from graphc.codegen.render import render
from graphc.errors import GraphError, InputError
from graphc.ir.graph import Graph, as_graph
from graphc.ir.shapes import FLOAT_DTYPES
from graphc.ir.verify import verify
from graphc.passes.grad import grad, grad_name
from graphc.passes.memory import DEFAULT_HINT, MemoryPlan, plan_memory
from graphc.passes.remat import Checkpointing, choose_checkpoints
from graphc.passes.schedule import Program, schedule
from graphc.passes.simplify import simplify
from graphc.passes.verify_plan import verify_plan

STAGES = ("graph", "grad", "schedule", "plan", "pyx")


def default_of(g: Graph) -> str | None:
    """The output to differentiate: `loss` if there is one, else the only scalar output."""
    if "loss" in g.outputs:
        return "loss"
    scalars = [k for k, n in g.outputs.items() if g.nx.nodes[n]["shape"] == ()]
    return scalars[0] if len(scalars) == 1 else None


def with_dtype(g: Graph, dtype: str) -> Graph:
    """`g` with every float input, constant and cast in `dtype` (shapes and dtypes re-inferred)."""
    if dtype not in FLOAT_DTYPES:
        raise GraphError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
    H = g.nx.copy()
    H.graph["outputs"] = dict(g.outputs)
    for _, a in H.nodes(data=True):
        if a["op"] == "input" and a["dtype"] in FLOAT_DTYPES:
            a["dtype"] = dtype
        elif a["op"] == "const" and a["dtype"] in FLOAT_DTYPES:
            a["value"] = np.asarray(a["value"], dtype=dtype)
            a["value"].flags.writeable = False
            a["dtype"] = dtype
        elif a["op"] not in ("input", "const"):
            if a["op"] == "cast" and a["params"]["dtype"] in FLOAT_DTYPES:
                a["params"] = dict(a["params"], dtype=dtype)
            a.pop("shape", None)
            a.pop("dtype", None)
    return Graph.from_networkx(H)


@dataclass
class Stages:
    """Everything the pipeline made for one model, stage by stage, for `--dump` and tests."""

    graph: Graph  # verified, in the requested dtype, simplified
    joint: Graph  # the graph with its gradient outputs, simplified
    of: str | None
    grads: dict[str, str]  # gradient output name -> wrt input name
    programs: dict[str, tuple[Program, MemoryPlan]] = field(default_factory=dict)
    source: str = ""
    size_hint: int = DEFAULT_HINT
    checkpointing: Checkpointing | None = None

    def dump(self, stage: str) -> str:
        if stage == "graph":
            return str(self.graph)
        if stage == "grad":
            return str(self.joint)
        if stage == "schedule":
            return "\n\n".join(f"{name}:\n{prog}" for name, (prog, _) in self.programs.items())
        if stage == "plan":
            from graphc.passes.plan_report import default_sizes, plan_table

            return "\n\n".join(
                f"{name}:\n{plan_table(prog, plan, default_sizes(prog, self.size_hint))}"
                for name, (prog, plan) in self.programs.items()
            )
        if stage == "pyx":
            return self.source
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")


def run_stages(
    g: Graph | nx.MultiDiGraph,
    *,
    of: str | None = None,
    wrt: str | Iterable[str] | None = None,
    dtype: str = "float64",
    source_file: str = "<graph>",
    memory: str = "best",
    size_hint: int = DEFAULT_HINT,
    memory_budget: int | None = None,
) -> Stages:
    """Run the pure-Python stages, up to and including the rendered source. `memory` picks the
    planner's strategy ("best", "schedule", "size", or "naive": one buffer per value); every
    plan is checked by the independent verifier before code is generated from it."""
    g = as_graph(g)
    verify(g)
    g = simplify(with_dtype(g, dtype))
    of = of or default_of(g)
    params = {k for k, n in g.input_ids("param").items() if g.nx.nodes[n]["dtype"] in FLOAT_DTYPES}
    if of is None and (wrt is not None or params):
        raise InputError(
            f"graph {g.name!r}: name the scalar output to differentiate (of=...); "
            f"outputs are {list(g.outputs)}"
        )
    if of is not None and (wrt is not None or params):
        joint = simplify(grad(g, of=of, wrt=wrt))
        grads = {k: k[len(f"d{of}/d") :] for k in joint.outputs if k not in g.outputs}
        assert all(grad_name(of, w) == k for k, w in grads.items())
    else:
        joint, grads = g, {}
    st = Stages(g, joint, of, grads, size_hint=size_hint)
    st.programs["forward"] = _schedule_and_plan(
        joint, list(g.outputs), g._next_id, memory, size_hint
    )
    if grads:
        outputs = list(joint.outputs)
        program = joint
        if memory_budget is not None:

            def arena_of(h: Graph) -> tuple[int, int]:  # a quick plan, to compare candidates
                prog = schedule(h, outputs, g._next_id, size_hint=size_hint)
                plan = plan_memory(prog, "schedule", size_hint)
                sizes = _hint_sizes(prog, size_hint)
                return plan.arena_bytes(sizes), sum(s.section == "forward" for s in prog.steps)

            program, st.checkpointing = choose_checkpoints(
                joint, g._next_id, memory_budget, arena_of
            )
        st.programs["value_and_grad"] = _schedule_and_plan(
            program, outputs, g._next_id, memory, size_hint
        )
        if st.checkpointing is not None:  # quote the final plans, not the quick search's
            prog, plan = st.programs["value_and_grad"]
            sizes = _hint_sizes(prog, size_hint)
            unbudgeted = _schedule_and_plan(joint, outputs, g._next_id, memory, size_hint)[1]
            st.checkpointing = dataclasses.replace(
                st.checkpointing,
                arena_bytes=plan.arena_bytes(sizes),
                unbudgeted_arena_bytes=unbudgeted.arena_bytes(sizes),
                fits=plan.arena_bytes(sizes) <= memory_budget,
            )
        joint = program
    meta = {
        "GRAPHC_VERSION": repr(graphc.__version__),
        "MODEL": repr(g.name),
        "DTYPE": repr(dtype),
        "INPUTS": repr(tuple(g.input_ids())),
        "OUTPUTS": repr(tuple(g.outputs)),
        "WRT": repr(tuple(grads.values())),
        "OF": repr(of),
        "SHAPES": repr({k: tuple(g.nx.nodes[n]["shape"]) for k, n in g.input_ids().items()}),
        "PLAN": repr(
            {
                name: {"slots": len(plan.slots), "steps": len(prog.steps)}
                for name, (prog, plan) in st.programs.items()
            }
        ),
    }
    module = lower(joint, st.programs, grads, meta, source_file, graphc.__version__)
    st.source = render(module)
    return st


def _hint_sizes(prog: Program, size_hint: int) -> dict[str, int]:
    G = prog.graph.nx
    return {
        d: size_hint for s in prog.steps for d in G.nodes[s.node]["shape"] if isinstance(d, str)
    }


def _schedule_and_plan(
    g: Graph, outputs: list[str], backward_from: int, memory: str, size_hint: int
) -> tuple[Program, MemoryPlan]:
    """Schedule in node order and, unless planning is off, also for memory; keep the pair whose
    planned arena is smaller at the size hint. Every plan is verified independently."""
    orders = ("id",) if memory == "naive" else ("id", "memory")
    best = None
    for order in orders:
        prog = schedule(g, outputs, backward_from, order=order, size_hint=size_hint)
        plan = plan_memory(prog, memory, size_hint)
        verify_plan(prog, plan)
        sizes = {
            d: size_hint
            for s in prog.steps
            for d in g.nx.nodes[s.node]["shape"]
            if isinstance(d, str)
        }
        if best is None or plan.arena_bytes(sizes) < best[0]:
            best = (plan.arena_bytes(sizes), prog, plan)
    return best[1], best[2]


class CompiledModule:
    """A built model: `forward` and `value_and_grad` are the extension module's own functions
    (no wrapper on the call path); `source` is the generated Cython; `stages` what made it."""

    def __init__(
        self, module: Any, source: str, path: Path, stages: Stages | None = None, built: Any = None
    ) -> None:
        self.module = module
        self.source = source
        self.path = path
        self.stages = stages
        self.built = built
        self.forward: Callable[..., dict] = module.forward
        if hasattr(module, "value_and_grad"):
            self.value_and_grad: Callable[..., tuple[dict, dict]] = module.value_and_grad

    def __getattr__(self, name: str) -> Any:  # INPUTS, OUTPUTS, WRT, SHAPES, DTYPE, PLAN, ...
        return getattr(self.module, name)

    def __repr__(self) -> str:
        return f"<graphc.CompiledModule {self.module.MODEL!r} from {self.path}>"


def compile(
    g: Graph | nx.MultiDiGraph,
    *,
    of: str | None = None,
    wrt: str | Iterable[str] | None = None,
    dtype: str = "float64",
    out_dir: str | Path | None = None,
    source_file: str = "<graph>",
    memory: str = "best",
    memory_budget: int | None = None,
    size_hint: int = DEFAULT_HINT,
    progress: Callable[[str], None] | None = None,
) -> CompiledModule:
    """Build `g` (and its gradient) into a native module, or fetch it from the cache."""
    from graphc.runtime import build_module, load_module

    t0 = time.perf_counter()
    stages = run_stages(
        g,
        of=of,
        wrt=wrt,
        dtype=dtype,
        source_file=source_file,
        memory=memory,
        memory_budget=memory_budget,
        size_hint=size_hint,
    )
    built = build_module(stages.graph.name, stages.source, out_dir=out_dir, progress=progress)
    module = load_module(built)
    cm = CompiledModule(module, stages.source, built.entry_dir.parent, stages, built)
    cm.seconds = time.perf_counter() - t0
    return cm


def load(path: str | Path) -> CompiledModule:
    """The most recently built module in a model directory such as `build/seed_net`."""
    from graphc.runtime import load as load_built

    path = Path(path)
    module = load_built(path)
    pyx = path / f"{path.name}.pyx"
    return CompiledModule(module, pyx.read_text() if pyx.is_file() else "", path)
