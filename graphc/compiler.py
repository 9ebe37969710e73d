"""The pipeline, stage by stage (DESIGN.md §1), and `compile`, which runs it end to end.

verify -> cast to dtype -> simplify -> grad -> simplify -> schedule -> fuse
       -> pair_independent -> plan_memory -> lower -> render -> build (cached) -> load
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

import graphc
from graphc.codegen.lower import lower
from graphc.codegen.render import render
from graphc.compiled import ABSENT, CompiledModule, load  # noqa: F401  (gc.compile's)
from graphc.errors import GraphError, InputError
from graphc.ir.dag import describe, freeze, without_gc
from graphc.ir.graph import Graph, as_graph
from graphc.ir.limits import check_size
from graphc.ir.serialize import to_json
from graphc.ir.shapes import FLOAT_DTYPES, derived, dtype_name, shape_symbols
from graphc.ir.verify import verify
from graphc.optim import Optimizer
from graphc.passes.concurrency import pair_independent
from graphc.passes.derivatives import hvp, hvp_name, jvp, tangent_name, vector_name
from graphc.passes.dtype import in_dtype, with_dtype
from graphc.passes.fuse import fuse
from graphc.passes.grad import grad, grad_name
from graphc.passes.memory import DEFAULT_HINT, MemoryPlan, plan_memory
from graphc.passes.remat import Checkpointing, choose_checkpoints
from graphc.passes.scan_remat import checkpoint_loops
from graphc.passes.schedule import Program, schedule
from graphc.passes.simplify import simplify
from graphc.passes.train import TrainGraph, check_in_place, train_graph
from graphc.passes.verify_plan import verify_plan
from graphc.runtime import shared
from graphc.runtime.build import DEFAULT_OPTIONS

STAGES = ("graph", "grad", "schedule", "plan", "pyx")


def _check_compilable(g: Graph) -> None:
    """What a model needs to become a module, beyond `verify`: something to compute, and no
    input called `out` (every compiled function takes `out=`, the arrays to fill)."""
    if not g.outputs:
        raise GraphError(
            f"graph {g.name!r} has no outputs; mark what to compute with g.output(name, value)"
        )
    if "out" in (ids := g.input_ids()):
        raise GraphError(
            f"{describe(g.nx, ids['out'])}: a compiled module's functions take out= (arrays "
            "to fill), so no input may be called 'out'; rename it"
        )


def default_of(g: Graph) -> str | None:
    """The output to differentiate: `loss` if there is one, else the only scalar output."""
    if "loss" in g.outputs:
        return "loss"
    scalars = [k for k, n in g.outputs.items() if g.nx.nodes[n]["shape"] == ()]
    return scalars[0] if len(scalars) == 1 else None


@dataclass
class Stages:
    """Everything the pipeline made for one model, stage by stage, for `--dump` and tests."""

    graph: Graph  # verified, in the requested dtype, simplified
    joint: Graph  # the graph with its gradient outputs, simplified
    of: str | None
    grads: dict[str, str]  # gradient output name -> wrt input name
    programs: dict[str, tuple[Program, MemoryPlan]] = field(default_factory=dict)
    source: str = ""
    module: Any = None  # the module's records (codegen/records.py), which the source renders
    size_hint: int = DEFAULT_HINT
    checkpointing: Checkpointing | None = None
    train: TrainGraph | None = None  # the training step's graph, with an optimizer

    def dump(self, stage: str) -> str:
        if stage == "graph":
            return str(self.graph)
        if stage == "grad":
            return str(self.joint) if self.train is None else str(self.train.graph)
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


@without_gc
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
    fusion: bool = True,
    optimizer: Optimizer | None = None,
    functions: Iterable[str] | None = None,
    build: Any = None,
    progress: Callable[[str], None] | None = None,
    allow_unused: bool = False,
) -> Stages:
    """Run the pure-Python stages, up to and including the rendered source, which names the
    runtime (runtime/shared.py) that a build with options `build` (a BuildOptions; default:
    gc.compile's) uses. `memory` picks the
    planner's strategy ("best", "schedule", "size", or "naive": one buffer per value); every
    plan is checked by the independent verifier before code is generated from it. With an
    `optimizer`, the module also has `train_step` (see passes/train.py). `functions` names
    the functions to emit (default: each of forward, value_and_grad, train_step that applies;
    jvp and hvp, the derivatives of passes/derivatives.py, only when named);
    leaving out one the caller does not need saves its share of the build time. A graph of
    PROGRESS_NODES nodes or more has each stage announced to `progress` as it starts; one of
    more than max_nodes() (ir/limits.py) is refused. `allow_unused`: a param (or `wrt` input)
    that `of` does not depend on through a differentiable path gets a gradient of zeros, as
    gc.grad's (else it is an error)."""
    g = as_graph(g)
    size = g.nx.number_of_nodes()
    check_size(g, size)
    say = progress if progress is not None and size >= PROGRESS_NODES else _quiet
    say(f"checking {size:,} nodes")
    verify(g)
    _check_compilable(g)
    dtype = dtype_name(dtype)
    same = dtype in FLOAT_DTYPES and in_dtype(g, dtype)
    say("simplifying")
    g = simplify(g if same else with_dtype(g, dtype))  # simplify makes a new graph
    of = of or default_of(g)
    functions = None if functions is None else _names(functions)
    if functions is not None and set(functions) == {"forward"}:  # no `of` needed: no gradient
        joint, grads = g, {}
    else:
        say(f"differentiating {g.nx.number_of_nodes():,} nodes")
        joint, grads = _differentiate(g, of, wrt, allow_unused)
    wanted = _functions(functions, g, grads, optimizer)
    st = Stages(g, joint, of, grads, size_hint=size_hint)
    backward_from = g._next_id  # nodes grad added have ids from here on
    say(f"scheduling and planning memory over {joint.nx.number_of_nodes():,} nodes")
    if "forward" in wanted:
        st.programs["forward"] = _schedule_and_plan(
            joint, list(g.outputs), backward_from, memory, size_hint, fusion
        )
    if grads and memory_budget is not None:
        joint, st.checkpointing = _checkpoint(
            joint, backward_from, memory, size_hint, memory_budget, fusion,
            loops=not {"jvp", "hvp"} & set(wanted),
        )  # fmt: skip
    if "value_and_grad" in wanted:
        st.programs["value_and_grad"] = _schedule_and_plan(
            joint, list(joint.outputs), backward_from, memory, size_hint, fusion
        )
    in_place: dict[str, str] = {}
    defaults: dict[str, float] = {}
    if "train_step" in wanted:
        train = train_graph(joint, grads, optimizer)
        st.train = train
        prog, plan = _schedule_and_plan(
            train.graph, list(train.graph.outputs), backward_from, memory, size_hint, fusion,
            update_from=train.updates_from,
        )  # fmt: skip
        check_in_place(prog, plan, train.in_place)
        st.programs["train_step"] = (prog, plan)
        joint, in_place, defaults = train.graph, train.in_place, train.hyper
    plain = {o: o for o in g.outputs}
    returns = {
        "forward": (plain,),
        "value_and_grad": (plain, {grad_name(of, w): w for w in grads.values()}),
        "train_step": (plain,),
    }
    for name in ("jvp", "hvp"):
        if name in wanted:
            joint, st.programs[name], returns[name] = _extend(
                name, joint, g, of, returns["value_and_grad"], backward_from, memory,
                size_hint, fusion,
            )  # fmt: skip
    steps = sum(len(prog.steps) for prog, _ in st.programs.values())
    say(f"lowering {steps:,} steps of {len(st.programs)} functions")
    module = lower(
        joint, st.programs, returns, _metadata(st, dtype), source_file, graphc.__version__,
        in_place, defaults, fusion=fusion,
    )  # fmt: skip
    say(f"writing the source of {len(module.kernels)} kernels")
    build = build or DEFAULT_OPTIONS
    st.module = module
    st.source = render(module, shared.source_key(build), asdict(build))
    return st


ONE_ORDER_NODES = 20_000  # a graph this large is scheduled in one order (see _schedule_and_plan)
PROGRESS_NODES = 2_000  # a graph this large has each stage announced (see run_stages)


def _quiet(msg: str) -> None:
    pass


FUNCTIONS = ("forward", "value_and_grad", "train_step", "jvp", "hvp")


def _extend(
    name: str,
    base: Graph,
    g: Graph,
    of: str | None,
    value_and_grad: tuple[dict[str, str], dict[str, str]],
    *plan_args: Any,
) -> tuple[Graph, tuple[Program, MemoryPlan], tuple[dict[str, str], ...]]:
    """`base` with the nodes of `jvp` or `hvp` (see passes/derivatives.py) added, that
    function's program (reading the model's inputs and the tangents or vectors), and the
    dicts it returns; `value_and_grad`: the dicts value_and_grad returns."""
    plain, grads = value_and_grad
    wrt = list(grads.values())
    if name == "jvp":
        ext = jvp(base, of=list(g.outputs), wrt=wrt)
        extra = {tangent_name(w): w for w in wrt}
        returns = (plain, {tangent_name(o): o for o in g.outputs})
    else:
        ext = hvp(base, of=of, wrt=wrt)
        extra = {vector_name(w): w for w in wrt}
        returns = (plain, grads, {hvp_name(of, w): w for w in wrt})
    outputs = [o for keys in returns for o in keys]
    inputs = [*g.input_ids(), *extra]
    return ext, _schedule_and_plan(ext, outputs, *plan_args, inputs=inputs), returns


def _functions(
    functions: Iterable[str] | None, g: Graph, grads: dict[str, str], optimizer: Any
) -> tuple[str, ...]:
    """The functions to emit: those asked for, each checked to apply, or all that apply."""
    apply = {"forward": True, "value_and_grad": bool(grads), "train_step": optimizer is not None,
             "jvp": bool(grads), "hvp": bool(grads)}  # fmt: skip
    if functions is None:  # jvp and hvp only when asked for
        return tuple(f for f in FUNCTIONS[:3] if apply[f])
    wanted = _names(functions)
    for f in wanted:
        if f not in FUNCTIONS:
            raise GraphError(f"functions: unknown function {f!r}; choose from {FUNCTIONS}")
        if not apply[f]:
            why = "an optimizer=" if f == "train_step" else "params to differentiate"
            raise GraphError(f"functions: {f} needs {why}, and graph {g.name!r} has none")
    if not wanted:
        raise GraphError("functions: name at least one function to emit")
    return wanted


def _names(functions: Iterable[str]) -> tuple[str, ...]:
    return (functions,) if isinstance(functions, str) else tuple(functions)


def _differentiate(
    g: Graph, of: str | None, wrt: str | Iterable[str] | None, allow_unused: bool = False
) -> tuple[Graph, dict[str, str]]:
    """The simplified graph with gradient outputs, and gradient output name -> wrt input name
    (`g` is simplified already); `g` itself and no gradients when there is nothing to
    differentiate."""
    params = [n for n in g.input_ids("param").values() if g.nx.nodes[n]["dtype"] in FLOAT_DTYPES]
    if (wrt is None and not params) or (
        wrt is not None and not isinstance(wrt, str) and not list(wrt)
    ):
        return g, {}  # nothing to differentiate (wrt=() asks for no gradient)
    if of is None:
        raise InputError(
            f"graph {g.name!r}: name the scalar output to differentiate (of=...); "
            f"outputs are {list(g.outputs)}"
        )
    joint = simplify(grad(g, of=of, wrt=wrt, allow_unused=allow_unused), settled=g.next_id)
    prefix = grad_name(of, "")
    return joint, {k: k[len(prefix) :] for k in joint.outputs if k not in g.outputs}


def _checkpoint(
    joint: Graph, backward_from: int, memory: str, size_hint: int, budget: int, fusion: bool,
    loops: bool = True,
) -> tuple[Graph, Checkpointing]:  # fmt: skip
    """Checkpoint `joint` to fit `budget`; the report quotes final plans, not the quick ones
    the search compares candidates with (see choose_checkpoints). Loops first (when `loops`:
    not for a module with jvp or hvp, which differentiate `joint` again, and a loop split into
    segments has no derivative): when the plan does not fit, each reverse loop runs in
    segments from the forward loop's checkpoints (passes/scan_remat.py; a symbolic trip count
    is split every ceil(sqrt(size_hint)) steps), if
    that makes the arena smaller; then the search over the values the backward pass reads."""
    outputs = list(joint.outputs)

    def quick_arena(h: Graph) -> tuple[int, int]:
        prog = schedule(h, outputs, backward_from, size_hint=size_hint)
        prog = fuse(prog) if fusion else prog
        plan = plan_memory(prog, "schedule", size_hint)
        return plan.arena_bytes(_hint_sizes(prog, size_hint)), sum(
            s.section == "forward" for s in prog.steps
        )

    def arena(h: Graph) -> int:
        prog, plan = _schedule_and_plan(h, outputs, backward_from, memory, size_hint, fusion)
        return plan.arena_bytes(_hint_sizes(prog, size_hint))

    split, before = 0, None
    if loops and any(a["op"] == "scan" for a in joint.nx.nodes.values()):
        before = arena(joint)
        if before > budget:
            h, split = checkpoint_loops(joint, backward_from, size_hint)
            if split and arena(h) < before:
                joint = h
            else:
                split = 0
    h, report = choose_checkpoints(joint, backward_from, budget, quick_arena, arena)
    if split:  # the arena it started from: the loops' own
        report = dataclasses.replace(report, loops=split, unbudgeted_arena_bytes=before)
    return h, report


def _metadata(st: Stages, dtype: str) -> dict[str, str]:
    """Module-level constants of the generated module, as Python literals (those of a
    function the module lacks left out: see compiled.ABSENT)."""
    g, wrt = st.graph, st.grads.values()
    meta = {
        "GRAPHC_VERSION": repr(graphc.__version__),
        "MODEL": repr(g.name),
        "DTYPE": repr(dtype),
        "INPUTS": repr(tuple(g.input_ids())),
        "OUTPUTS": repr(tuple(g.outputs)),
        "WRT": repr(tuple(st.grads.values())),
        "OF": repr(st.of),
        "SHAPES": repr({k: tuple(g.nx.nodes[n]["shape"]) for k, n in g.input_ids().items()}),
        "STATE": repr(_state(st)),
        "OPTIMIZER": repr(repr(st.train.optimizer) if st.train else None),
        "HYPERPARAMETERS": repr(st.train.hyper if st.train else {}),
        "TANGENTS": repr({tangent_name(w): w for w in wrt} if "jvp" in st.programs else {}),
        "VECTORS": repr({vector_name(w): w for w in wrt} if "hvp" in st.programs else {}),
        "PLAN": repr(
            {
                name: {"slots": len(plan.slots), "steps": len(prog.steps)}
                for name, (prog, plan) in st.programs.items()
            }
        ),
    }
    return {k: v for k, v in meta.items() if k not in ABSENT or v != repr(ABSENT[k])}


def _state(st: Stages) -> dict[str, str | None]:
    """The optimiser's state inputs of train_step: name -> the param it has the shape of, or
    None for a scalar."""
    if st.train is None:
        return {}
    opt = st.train.optimizer
    out = {f"{s}_{p}": p for p in st.grads.values() for s in opt.slots}
    return out | {s: None for s in opt.scalars}


def _hint_sizes(prog: Program, size_hint: int) -> dict[str, int]:
    """Every symbolic dim of the program at `size_hint`: the symbols its values' shapes name,
    and for a derived one (T__q16) its source instead, which dim_value works it out from (a
    split loop's values may name only derived ones)."""
    nodes = prog.graph.nx._node
    shapes = dict.fromkeys(nodes[n]["shape"] for s in prog.steps for n in s.nodes)
    sources = {}
    for d in {d for shape in shapes for d in shape_symbols(shape)}:
        while (of := derived(d)) is not None:
            d = of[0]
        sources[d] = size_hint
    return sources


def _schedule_and_plan(
    g: Graph,
    outputs: list[str],
    backward_from: int,
    memory: str,
    size_hint: int,
    fusion: bool,
    update_from: int | None = None,
    inputs: list[str] | None = None,
) -> tuple[Program, MemoryPlan]:
    """Schedule in node order and, unless planning is off, also for memory; fuse elementwise
    loops (when `fusion`); keep the pair whose planned arena is smaller at the size hint. A
    graph of ONE_ORDER_NODES nodes or more is scheduled for memory only: that order's arena
    was never the larger one for a gradient on the models measured (benchmarks.suite's), and
    the second schedule, fusion and plan were a fifth of such a graph's passes. Every
    plan is verified independently. `inputs`: the function's arguments, when not every input
    of `g`."""
    freeze(g)
    if memory == "naive":
        orders: tuple[str, ...] = ("id",)
    elif g.nx.number_of_nodes() >= ONE_ORDER_NODES:
        orders = ("memory",)
    else:
        orders = ("id", "memory")
    best: tuple[int, Program, MemoryPlan] | None = None
    tried = []
    for order in orders:
        prog = schedule(g, outputs, backward_from, order, size_hint, update_from)
        if prog.steps in tried:
            continue  # the same order again: the same program and plan
        tried.append(prog.steps)
        if inputs is not None:
            prog = dataclasses.replace(prog, inputs={k: prog.inputs[k] for k in inputs})
        prog = pair_independent(fuse(prog) if fusion else prog, size_hint)
        plan = plan_memory(prog, memory, size_hint)
        nbytes = plan.arena_bytes(_hint_sizes(prog, size_hint))
        if best is None or nbytes < best[0]:
            best = (nbytes, prog, plan)
    assert best is not None
    verify_plan(best[1], best[2])
    return best[1], best[2]


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
    fusion: bool = True,
    opt_level: int = 1,
    optimizer: Optimizer | None = None,
    functions: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    allow_unused: bool = False,
) -> CompiledModule:
    """Build `g` (and its gradient) into a native module, or fetch it from the cache (the
    keyword arguments are those of `run_stages`, and of `BuildOptions`).
    `opt_level` is the C compiler's -O level: 1 (the default) adds the loop optimisations of
    -O2 and builds about twice as fast; 0 builds huge graphs faster still, with slower loops.
    With an `optimizer` (graphc.optim.SGD, Adam), the module also has `train_step`: one call
    computes the gradients and updates the params and the optimiser's state in place.
    `functions` picks which of forward, value_and_grad, train_step, jvp and hvp to emit
    (default: the first three that apply; see passes/derivatives.py for the last two).
    `allow_unused=True` gives zeros for a param the loss does not depend on (through `sign`,
    a comparison, rounding ...), where the default is an error, as gc.grad's."""
    from graphc.runtime import BuildOptions, build_module, load_module, shared, translate
    from graphc.runtime.build import identify_compiler_soon

    options = BuildOptions(opt_level=opt_level)
    # Beside the passes: two short compiler runs for the cache key, and Cython's start-up in
    # its worker (stopped again if the module is cached; see runtime/translate.py).
    identify_compiler_soon(options)
    started = translate.start_soon()
    try:
        shared.ensure(options, progress)
        stages = run_stages(
            g,
            progress=progress,
            of=of,
            wrt=wrt,
            dtype=dtype,
            source_file=source_file,
            memory=memory,
            memory_budget=memory_budget,
            size_hint=size_hint,
            fusion=fusion,
            optimizer=optimizer,
            functions=functions,
            build=options,
            allow_unused=allow_unused,
        )
        name = stages.graph.name
        built = build_module(
            name, stages.source, out_dir=out_dir, options=shared.module_options(options),
            progress=progress,
            folder=name if dtype_name(dtype) == "float64" else f"{name}_{dtype_name(dtype)}",
        )  # fmt: skip
    finally:
        if started:
            translate.stop_unused()
    module = load_module(built)
    recipe = (to_json(as_graph(g).nx, indent=None), {
        "of": of, "wrt": wrt if wrt is None or isinstance(wrt, str) else tuple(wrt),
        "dtype": dtype, "out_dir": str(built.entry_dir.parent.parent), "source_file": source_file,
        "memory": memory, "memory_budget": memory_budget, "size_hint": size_hint,
        "fusion": fusion, "opt_level": opt_level, "optimizer": optimizer,
        "functions": functions if functions is None else tuple(functions),
        "allow_unused": allow_unused,
    })  # fmt: skip
    return CompiledModule(module, stages.source, built.entry_dir.parent, stages, built, recipe)
