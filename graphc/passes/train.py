"""`train_graph`: a graph with its gradients becomes one training step, as ordinary IR.

The optimiser's state arrays become inputs; the updated parameters and state become outputs,
each written back over the input it replaces (`TrainGraph.in_place`), and the gradient outputs
are dropped: nothing but the model's own outputs goes back to Python. The optimiser's
hyperparameters become scalar inputs too, the last ones, whose defaults are the optimiser's
values (`TrainGraph.hyper`): `train_step(..., lr=1e-4)` sets a step's learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphc.errors import GraphError
from graphc.ir.graph import Graph, Value
from graphc.ops.elementwise import sqrt
from graphc.optim import Optimizer
from graphc.passes.fuse import REDUCTIONS, domain, loop_op
from graphc.passes.memory import MemoryPlan
from graphc.passes.schedule import Program


@dataclass
class TrainGraph:
    graph: Graph
    optimizer: Optimizer
    updates_from: int  # the update nodes have ids from here on
    in_place: dict[str, str]  # output name -> the input it overwrites
    state: list[str]  # the optimiser's state inputs, in the order train_step takes them
    hyper: dict[str, float]  # the hyperparameter inputs (after the state) and their defaults


def updated_name(name: str) -> str:
    """The output holding the new value of input `name`."""
    return f"{name}'"


def train_graph(joint: Graph, grads: dict[str, str], optimizer: Optimizer) -> TrainGraph:
    """`joint` (the model with gradient outputs; `grads`: gradient output -> parameter) with
    the optimiser's update of every parameter in `grads` and of its state."""
    if not isinstance(optimizer, Optimizer):
        raise GraphError(f"optimizer must be a graphc.optim optimiser, got {optimizer!r}")
    if not grads:
        raise GraphError("a training step needs parameters to update: the model has none")
    tg = joint.copy()
    start = tg._next_id
    inputs = tg.input_ids()
    params = {p: Value(tg, inputs[p]) for p in grads.values()}
    names = optimizer.state_names(params)
    hyper = optimizer.hyperparameters
    clash = [n for n in (*names, *hyper) if n in inputs]
    if clash:
        raise GraphError(
            f"the optimiser's input{'s' * (len(clash) > 1)} {', '.join(clash)} "
            f"would clash with the model's input{'s' * (len(clash) > 1)} of that name: "
            "rename them"
        )
    dtype = next(iter(params.values())).dtype
    in_place: dict[str, str] = {}
    taken = dict(inputs)  # the inputs so far, kept here: a model has thousands of params

    def new_input(name: str, shape: tuple, dtype: str) -> Value:
        v = tg._leaf(name, shape, dtype, "data", taken)
        taken[name] = v.id
        return v

    with tg.at("optimizer"):
        slots = {
            (s, p): new_input(f"{s}_{p}", v.shape, v.dtype)
            for p, v in params.items()
            for s in optimizer.slots
        }
        scalars = {s: new_input(s, (), dtype) for s in optimizer.scalars}
        h = {k: new_input(k, (), dtype) for k in hyper}
        shared = optimizer.advance(dict(scalars), sqrt, h)
        for s in optimizer.scalars:
            in_place[_output(tg, s, shared[s])] = s
        for grad_out, p in grads.items():
            g = tg[grad_out]
            new, new_slots = optimizer.rule(
                params[p], g, {s: slots[s, p] for s in optimizer.slots}, shared, sqrt, h
            )
            in_place[_output(tg, p, new)] = p
            for s, v in new_slots.items():
                in_place[_output(tg, f"{s}_{p}", v)] = f"{s}_{p}"
    for grad_out in grads:
        del tg.nx.graph["outputs"][grad_out]
    return TrainGraph(tg, optimizer, start, in_place, names, hyper)


def _output(tg: Graph, name: str, value: Value) -> str:
    """Mark `value` as the new value of input `name`; returns the output's name."""
    out = updated_name(name)
    tg.output(out, value)
    return out


def check_in_place(prog: Program, plan: MemoryPlan, in_place: dict[str, str]) -> None:
    """Make sure the program may compute each output of `in_place` straight into the input it
    replaces: the output has storage of its own, and every step that reads the input (or a
    value sharing its bytes) runs before the step writing the output, or is that step and reads
    it element by element at the index it writes. The update section comes last, so this
    holds by construction; a program that breaks it is refused, never run."""
    G = prog.graph.nx
    last_read: dict[int, int] = {}
    for t in range(len(prog.steps)):
        for u in prog.reads(t):
            last_read[plan.root(u)] = t
    copied = {plan.root(v) for v in plan.extra_outputs.values()}
    for out, name in in_place.items():
        o, i = prog.outputs[out], prog.inputs[name]
        st = plan.storage[o]
        t = prog.step_of.get(o)
        step = prog.steps[t] if t is not None else None
        same_loop = (
            step is not None
            and loop_op(G, o)
            and G.nodes[o]["op"] not in REDUCTIONS
            and G.nodes[i]["shape"] == domain(G, step.nodes)
        )
        read = last_read.get(i, -1)
        if (
            st.kind != "output"
            or st.ref != out
            or i in copied
            or t is None
            or read > t
            or (read == t and not same_loop)
        ):
            raise GraphError(
                f"internal error: train_step cannot write {out!r} over input {name!r} "
                f"(storage {st.kind}, written by step {t}, input last read by step {read})"
            )
