"""Which models split over shards of a batch: the batch axis, traced through the graph.

Data-parallel training gives each worker some rows of the batch and adds up what they return.
That is the full batch's answer only when every example is computed on its own and the loss is
a mean or a sum over the examples. `analyse` decides this from the graph alone: it gives each
value one of these kinds, op by op in topological order, and refuses the model (GraphError
naming the node, its line and why) as soon as one does not fit.

- `const`: does not depend on the batch (params, constants, data inputs without the batch axis).
- `rows` at axis k: axis k is the batch axis, and each row depends on its own example only.
- `mean` / `sum`: an affine function, with batch-independent coefficients, of means (or sums)
  over the batch of per-example values. A shard's `mean` value weighted by its share of the
  rows, summed over shards, is the full batch's value; so is a shard's `sum` value summed
  unweighted, which is why a `sum` may not have a constant added (it would count once per shard).
- `count`: the number of examples times a constant (`gc.size` over the batch axis), which
  turns a `sum` into a `mean` when it divides one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from graphc.errors import GraphError
from graphc.ir import Graph, as_graph, describe, operands, verify
from graphc.ops.registry import REGISTRY

REDUCED = ("mean", "sum", "count")


@dataclass(frozen=True)
class Kind:
    """How a value depends on the batch (see the module docstring)."""

    tag: str  # "const" | "rows" | "mean" | "sum" | "count"
    axis: int | None = None  # the batch axis of a `rows` value


CONST = Kind("const")


@dataclass(frozen=True)
class BatchPlan:
    """What a data-parallel run needs to know about a model."""

    symbol: str  # the symbolic size of the batch axis, e.g. "N"
    batched: tuple[str, ...]  # data inputs whose axis 0 is the batch: split into shards
    replicated: tuple[str, ...]  # data inputs without it: every shard gets all of them
    params: tuple[str, ...]
    of: str  # the loss
    loss: str  # "mean" or "sum": how shard losses and gradients combine
    outputs: dict[str, Kind] = field(default_factory=dict)

    def weight(self, kind: Kind, rows: int, total: int) -> float:
        """The factor of a shard with `rows` of the batch's `total` rows, for a value of `kind`."""
        return rows / total if kind.tag == "mean" else 1.0


def default_of(g: Graph) -> str | None:
    """The output to differentiate, as gc.compile picks it: `loss`, else the only scalar."""
    if "loss" in g.outputs:
        return "loss"
    scalars = [k for k, n in g.outputs.items() if g.nx.nodes[n]["shape"] == ()]
    return scalars[0] if len(scalars) == 1 else None


def analyse(
    g: Graph | nx.MultiDiGraph, of: str | None = None, batch: str | None = None
) -> BatchPlan:
    """The batch axis of `g`, its inputs by role and how its loss `of` combines over shards;
    a GraphError saying why when the model does not split into independent examples."""
    g = as_graph(g)
    verify(g)
    G = g.nx
    of = of or default_of(g)
    if of is None or of not in g.outputs:
        raise GraphError(
            f"graph {g.name!r}: name the scalar loss to train (of=...); outputs are "
            f"{list(g.outputs)}"
        )
    symbol = batch or _batch_symbol(g)
    kinds: dict[int, Kind] = {}
    batched, replicated, params = [], [], []
    for n in nx.lexicographical_topological_sort(G):
        a = G.nodes[n]
        if a["op"] == "input":
            kinds[n] = _input_kind(G, n, symbol)
            role = "param" if a.get("role") == "param" else "data"
            names = params if role == "param" else batched if kinds[n].tag == "rows" else replicated
            names.append(a["name"])
        elif a["op"] == "const":
            kinds[n] = CONST
        else:
            kinds[n] = _node_kind(G, n, [kinds[u] for u in operands(G, n)], symbol)
    if not batched:
        raise GraphError(
            f"graph {g.name!r}: no data input has the batch axis {symbol!r} first, so there "
            "is nothing to split into shards"
        )
    loss_node = g.outputs[of]
    loss = kinds[loss_node]
    if loss.tag not in ("mean", "sum"):
        why = {
            "const": "does not depend on the batch",
            "rows": "is per example, not a reduction over the batch",
            "count": "only counts the examples",
        }[loss.tag]
        raise GraphError(
            f"{describe(G, loss_node)}: the loss {of!r} {why}; data-parallel training needs a "
            f"mean or a sum over the batch axis {symbol!r} of per-example terms"
        )
    outputs = {k: kinds[n] for k, n in g.outputs.items()}
    return BatchPlan(symbol, tuple(batched), tuple(replicated), tuple(params), of, loss.tag,
                     outputs)  # fmt: skip


def _batch_symbol(g: Graph) -> str:
    """The symbol that starts the shape of the data inputs."""
    firsts: dict[str, list[str]] = {}
    for name, n in g.input_ids("data").items():
        shape = g.nx.nodes[n]["shape"]
        if shape and isinstance(shape[0], str):
            firsts.setdefault(shape[0], []).append(name)
    if len(firsts) == 1:
        return next(iter(firsts))
    if not firsts:
        raise GraphError(
            f"graph {g.name!r}: no data input has a symbolic size first (such as 'N' in "
            "shape=('N', 3)); data-parallel training splits the batch along that axis"
        )
    listed = "; ".join(f"{s!r} first in {', '.join(names)}" for s, names in firsts.items())
    raise GraphError(
        f"graph {g.name!r}: data inputs start with different symbols ({listed}); name the "
        "batch axis with batch='N'"
    )


def _input_kind(G: nx.MultiDiGraph, n: int, symbol: str) -> Kind:
    a = G.nodes[n]
    shape = tuple(a["shape"])
    if symbol not in shape:
        return CONST
    if a.get("role") == "param":
        raise GraphError(
            f"{describe(G, n)}: param {a['name']!r} has the batch axis {symbol!r} in its shape "
            f"{shape}; params are shared by all examples"
        )
    if shape.index(symbol) != 0 or shape.count(symbol) > 1:
        raise GraphError(
            f"{describe(G, n)}: data input {a['name']!r} of shape {shape} must have the batch "
            f"axis {symbol!r} first and only there (shards are rows of axis 0)"
        )
    return Kind("rows", 0)


def _refuse(G: nx.MultiDiGraph, n: int, why: str) -> GraphError:
    return GraphError(
        f"{describe(G, n)}: {why}, so the batch cannot be split into shards whose results "
        "add up to the full batch's (data-parallel training needs each example computed on "
        "its own, and a loss that is a mean or a sum over the examples)"
    )


def _node_kind(G: nx.MultiDiGraph, n: int, ops: list[Kind], symbol: str) -> Kind:
    if G.nodes[n]["op"] == "size":  # a count of elements: depends on the shape only
        (k,) = ops
        return (
            Kind("count") if k.tag == "rows" and k.axis in G.nodes[n]["params"]["axis"] else CONST
        )
    if all(k.tag == "const" for k in ops):
        kind = CONST
        if symbol in G.nodes[n]["shape"]:  # a constant spread over the batch (broadcast_to)
            kind = _rows_of_shape(G, n, symbol)
    else:
        a = G.nodes[n]
        rows = [k for k in ops if k.tag == "rows"]
        if rows and len(rows) < sum(k.tag != "const" for k in ops):
            raise _refuse(
                G, n, f"{a['op']} combines per-example values with a reduction over the batch "
                "(as batch normalisation does)"
            )  # fmt: skip
        rule = _rows_rule if rows else _reduced_rule
        kind = rule(G, n, a["op"], a["params"], ops)
    if kind.tag == "rows":
        shape = G.nodes[n]["shape"]
        assert shape[kind.axis] == symbol, (n, shape, kind)
        if list(shape).count(symbol) > 1:
            raise _refuse(G, n, f"its shape {shape} pairs every example with every other")
    return kind


def _rows_of_shape(G: nx.MultiDiGraph, n: int, symbol: str) -> Kind:
    shape = list(G.nodes[n]["shape"])
    if shape.count(symbol) > 1:
        raise _refuse(G, n, f"its shape {tuple(shape)} has the batch axis twice")
    return Kind("rows", shape.index(symbol))


# ---- values with a batch axis -----------------------------------------------------------------
def _rows_rule(G: nx.MultiDiGraph, n: int, op: str, p: Mapping[str, Any], ops: list[Kind]) -> Kind:
    """The kind of op `n` with at least one `rows` operand (the others `const`)."""
    shapes = [tuple(G.nodes[u]["shape"]) for u in operands(G, n)]
    out = tuple(G.nodes[n]["shape"])
    if REGISTRY[op].elementwise or op == "concat":
        axes = {len(out) - len(s) + k.axis for s, k in zip(shapes, ops, strict=True)
                if k.tag == "rows"}  # fmt: skip
        if len(axes) > 1:
            raise _refuse(G, n, f"{op} lines up the batch axes of its operands differently")
        (axis,) = axes
        if op == "concat" and p["axis"] == axis:
            raise _refuse(G, n, "concat joins values along the batch axis")
        return Kind("rows", axis)
    (k, *_) = [k for k in ops if k.tag == "rows"]
    if op in ("sum", "mean", "max", "logsumexp"):
        axes = p["axis"]
        if k.axis in axes:
            if op in ("sum", "mean"):
                return Kind(op)
            raise _refuse(G, n, f"{op} over the batch axis is not a mean or a sum of examples")
        return Kind("rows", k.axis if p["keepdims"] else k.axis - sum(a < k.axis for a in axes))
    if op in ("softmax", "log_softmax", "layer_norm"):
        if p["axis"] == k.axis:
            raise _refuse(G, n, f"{op} normalises over the batch axis")
        return k
    resampling = ("interpolate_nearest", "interpolate_linear")
    pools = ("max_pool2d", "avg_pool2d", "avg_pool", "adaptive_avg_pool", "max_unpool")
    if op in ("slice", "one_hot", *pools, *resampling):
        return k  # slices take a symbolic axis whole; pools, resampling and one_hot keep axis 0
    if op in ("conv1d", "conv2d", "conv3d"):
        if ops[1].tag != "const" or k.axis != 0:
            raise _refuse(G, n, f"{op} needs the batch axis first in its input and "
                          "weights that do not depend on the batch")  # fmt: skip
        return k
    if op == "transpose":
        return Kind("rows", p["perm"].index(k.axis))
    if op == "broadcast_to":
        return Kind("rows", k.axis + len(out) - len(shapes[0]))
    if op == "reshape":
        return _reshape_rows(G, n, shapes[0], out, k.axis)
    if op == "take":
        return _take_rows(G, n, shapes, ops, p["axis"])
    if op == "matmul":
        return _matmul_kind(G, n, shapes, ops, out, p)
    raise _refuse(G, n, f"data-parallel training does not know how {op} treats the batch axis")


def _reshape_rows(G: nx.MultiDiGraph, n: int, before: tuple, after: tuple, axis: int) -> Kind:
    """A reshape keeps examples apart when the batch axis stays whole, with the same number of
    elements in front of it (so each example's elements stay together and in order)."""
    symbol = before[axis]
    if after.count(symbol) == 1:
        b = after.index(symbol)
        head, new_head = before[:axis], after[:b]
        if all(isinstance(d, int) for d in (*head, *new_head)):
            if math.prod(head) == math.prod(new_head):
                return Kind("rows", b)
    raise _refuse(G, n, f"the reshape of {before} to {after} mixes the batch axis with others")


def _take_rows(G: nx.MultiDiGraph, n: int, shapes: list, ops: list[Kind], axis: int) -> Kind:
    x, idx = ops
    if x.tag == "rows" and idx.tag == "const" and axis != x.axis:
        return Kind("rows", x.axis if x.axis < axis else x.axis + len(shapes[1]) - 1)
    if x.tag == "const" and idx.tag == "rows":  # an embedding lookup per example
        return Kind("rows", axis + idx.axis)
    raise _refuse(G, n, "take picks rows across examples")


def _matmul_axis(k: Kind, nd: int, swapped: bool, first: bool, nbatch: int, other: int) -> Any:
    """Where a matmul operand's batch axis goes: ("out", axis of the product) or "inner" when it
    is the contracted axis. `nd`: the operand's rank, `other`: the other operand's rank."""
    a = k.axis
    if swapped and a >= nd - 2:
        a = 2 * nd - 3 - a  # the axis in the layout the product reads (last two swapped)
    if nd == 1 or a == nd - (1 if first else 2):
        return "inner"
    if a < nd - 2:  # a broadcast batch axis of the product
        return ("out", nbatch - (nd - 2) + a)
    # the rows of the first operand or the columns of the second
    return ("out", nbatch if first else nbatch + (other > 1))


def _matmul_kind(G, n, shapes, ops, out, p) -> Kind:
    na, nb = len(shapes[0]), len(shapes[1])
    nbatch = len(out) - (na > 1) - (nb > 1)
    where = [
        None if k.tag == "const" else _matmul_axis(k, nd, p[f], first, nbatch, other)
        for k, nd, f, first, other in zip(
            ops, (na, nb), ("transpose_a", "transpose_b"), (True, False), (nb, na), strict=True
        )
    ]
    if where[0] == where[1] == "inner":
        return Kind("sum")  # sum over the examples of a product per example
    places = {w for w in where if w is not None}
    if len(places) == 1 and "inner" not in places:
        return Kind("rows", places.pop()[1])
    raise _refuse(G, n, "the matrix product mixes examples")


# ---- reductions over the batch ----------------------------------------------------------------
_LINEAR = ("reshape", "broadcast_to", "transpose", "slice", "sum", "mean", "cast", "neg")
_AFFINE = ("add", "sub", "concat")


def _reduced_rule(
    G: nx.MultiDiGraph, n: int, op: str, p: Mapping[str, Any], ops: list[Kind]
) -> Kind:
    """The kind of op `n` whose operands are reductions over the batch or constants: only
    affine maps with batch-independent coefficients keep a mean a mean (a sum a sum)."""
    reduced = [k for k in ops if k.tag != "const"]
    tags = {k.tag for k in reduced}
    if op in _LINEAR:
        return reduced[0]
    if op in _AFFINE or (op == "where" and ops[0].tag == "const"):
        if len(tags) > 1:
            raise _refuse(G, n, f"{op} adds reductions of different kinds ({sorted(tags)})")
        (tag,) = tags
        if tag != "mean" and any(k.tag == "const" for k in ops[1 if op == "where" else 0 :]):
            raise _refuse(G, n, f"{op} adds a term that does not depend on the batch to a "
                          f"{tag} over it (each shard would add it once)")  # fmt: skip
        return Kind(tag)
    if op in ("mul", "matmul") and len(reduced) == 1:
        return reduced[0]
    if op == "div" and ops[1].tag == "const":
        return ops[0]
    if op == "div" and (ops[0].tag, ops[1].tag) == ("sum", "count"):
        return Kind("mean")
    if op in ("mul", "matmul", "div"):
        raise _refuse(G, n, f"{op} multiplies or divides reductions over the batch")
    tag = reduced[0].tag
    raise _refuse(G, n, f"{op} of a {tag} over the batch is not a {tag} of examples (only "
                  "sums, differences and constant factors of one are)")  # fmt: skip
