"""`simplify`: constant folding, algebraic identities, CSE by structural hashing, and DCE.

One pass over the topological order rebuilds the graph; every node goes through `emit`, which
folds, rewrites and hash-conses, so rewrites that create nodes are simplified too. Surviving nodes
keep their ids, so `v12` means the same value before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np

from graphc.ir.dag import add_node, ancestors, infer_node, operands, topo_order, without_gc
from graphc.ir.graph import Graph, as_graph
from graphc.ops.registry import REGISTRY

FOLD_LIMIT = 1 << 16  # largest constant (elements) that folding may create

# A rule sees the node being built and returns the id of an equivalent value, or None.
Rule = Callable[["_Builder", list[int], dict[str, Any]], int | None]
RULES: dict[str, list[Rule]] = {}


def rule(*ops: str) -> Callable[[Rule], Rule]:
    def add(fn: Rule) -> Rule:
        for op in ops:
            RULES.setdefault(op, []).append(fn)
        return fn

    return add


class _Builder:
    """The graph being rebuilt, with its hash-consing table."""

    def __init__(self, src: Graph) -> None:
        self.g = Graph.__new__(Graph)
        self.g.nx = nx.MultiDiGraph(name=src.name, outputs={})
        self.g._next_id = src._next_id
        self.g._loc = None
        self.G = self.g.nx
        self.table: dict[tuple, int] = {}
        self.uniform: dict[int, float | None] = {}  # const id -> its value if all elements agree

    def is_const(self, n: int, value: float | None = None) -> bool:
        a = self.G._node[n]
        if a["op"] != "const":
            return False
        if value is None:
            return True
        if n not in self.uniform:
            v = a["value"]
            same = v.size > 0 and bool(np.all(v == v.flat[0]))
            self.uniform[n] = v.flat[0].item() if same else None
        return self.uniform[n] == value

    def op(self, n: int) -> str:
        return self.G._node[n]["op"]

    def const(self, value: np.ndarray, loc: str, keep_id: int | None = None) -> int:
        value = np.array(value)
        value.flags.writeable = False
        key = ("const", value.dtype.name, value.shape, value.tobytes())
        if key not in self.table:
            n = keep_id if keep_id is not None else self._fresh()
            attrs = {"op": "const", "value": value, "shape": value.shape,
                     "dtype": value.dtype.name, "params": {}, "loc": loc}  # fmt: skip
            add_node(self.G, n, attrs)
            self.table[key] = n
        return self.table[key]

    def emit(
        self, op: str, args: list[int], params: dict[str, Any], loc: str,
        keep_id: int | None = None, typed: tuple | None = None,
    ) -> int:  # fmt: skip
        """The id of a node computing `op(args)`: folded, rewritten, shared or new. `typed`:
        its (shape, dtype) when known (a source node's: every rewrite keeps both)."""
        opdef = REGISTRY[op]
        params = opdef.full_params(params)
        for k in opdef.structured:  # a loop's body: simplified too
            params[k] = params[k].simplified
        key = (op, tuple(args), tuple(sorted(params.items())))
        if key in self.table:
            return self.table[key]
        n = keep_id if keep_id is not None else self._fresh()
        if typed:
            shape, dtype = typed
            attrs = {"op": op, "params": params, "loc": loc, "shape": shape, "dtype": dtype}
            add_node(self.G, n, attrs, args)
        else:
            add_node(self.G, n, {"op": op, "params": params, "loc": loc}, args)
            shape, dtype = infer_node(self.G, n, args)
            self.G._node[n].update(shape=shape, dtype=dtype)
        fresh_from = self.g._next_id
        replacement = self._fold(n, op, args, params, loc)
        for fn in RULES.get(op, ()) if replacement is None else ():
            r = fn(self, args, dict(params, _loc=loc))
            if r is not None and (self.G._node[r]["shape"], self.G._node[r]["dtype"]) == (
                shape,
                dtype,
            ):
                replacement = r
                break
        if replacement is not None:
            self.G.remove_node(n)
            if replacement >= fresh_from and keep_id is not None:
                return self._take_id(replacement, keep_id)  # keep the name v{keep_id}
            return replacement
        self.table[key] = n
        return n

    def _take_id(self, r: int, n: int) -> int:
        """Move node `r`, made just now and not yet used, to the free id `n`."""
        attrs = self.G._node[r]
        preds = [(u, d["port"]) for u, _, d in self.G.in_edges(r, data=True)]
        self.G.remove_node(r)
        self.G.add_node(n, **attrs)
        for u, port in preds:
            self.G.add_edge(u, n, port=port)
        for key, v in self.table.items():
            if v == r:
                self.table[key] = n
        return n

    def _fold(self, n: int, op: str, args: list[int], params: dict, loc: str) -> int | None:
        nodes = self.G._node
        if not args or not REGISTRY[op].fold:
            return None
        for u in args:
            if nodes[u]["op"] != "const":
                return None
        shape = nodes[n]["shape"]
        if (
            not all(isinstance(d, int) for d in shape)
            or np.prod(shape, dtype=np.int64) > FOLD_LIMIT
        ):
            return None
        with np.errstate(all="ignore"):
            value = REGISTRY[op].ref(*(self.G._node[u]["value"] for u in args), **params)
        return self.const(np.asarray(value, dtype=self.G._node[n]["dtype"]), loc)

    def _fresh(self) -> int:
        n = self.g._next_id
        self.g._next_id += 1
        return n


@without_gc
def simplify(g: Graph | nx.MultiDiGraph, settled: int = 0) -> Graph:
    """An equivalent graph with constants folded, identities applied, duplicates shared and
    dead nodes removed. Inputs are kept even when unused: they are the model's signature.
    Nodes with ids below `settled` are a simplified graph's already (the graph `grad` added
    to): kept as they are, and shared with the nodes after them that compute the same."""
    src = as_graph(g)
    b = _Builder(src)
    new: dict[int, int] = {}
    for n in topo_order(src.nx):
        a = src.nx._node[n]
        if a["op"] == "input":
            add_node(b.G, n, dict(a))
            new[n] = n
        elif a["op"] == "const":
            new[n] = b.const(a["value"], a["loc"], keep_id=n)
        elif n < settled:
            args = operands(src.nx, n)
            add_node(b.G, n, dict(a), args)
            b.table.setdefault((a["op"], tuple(args), tuple(sorted(a["params"].items()))), n)
            new[n] = n
        else:
            args = [new[u] for u in operands(src.nx, n)]
            typed = (a["shape"], a["dtype"]) if "dtype" in a else None
            new[n] = b.emit(a["op"], args, a["params"], a["loc"], keep_id=n, typed=typed)
            if new[n] == n and "grad_of" in a:  # a kept node keeps its label
                b.G._node[n]["grad_of"] = a["grad_of"]
    b.G.graph["outputs"] = {name: new[n] for name, n in src.outputs.items()}
    live = ancestors(b.G, b.G.graph["outputs"].values())
    b.G.remove_nodes_from(
        [n for n, a in list(b.G.nodes(data=True)) if n not in live and a["op"] != "input"]
    )
    return b.g


# ---- the identities -------------------------------------------------------------------------
# Each rule states its algebra; `emit` accepts a rewrite only if shape and dtype are unchanged,
# so `x * ones((3,))` with a scalar x is not mistaken for x.


@rule("add")
def _add_zero(b: _Builder, args, params):
    """x + 0 -> x;  0 + x -> x"""
    x, y = args
    return x if b.is_const(y, 0) else y if b.is_const(x, 0) else None


@rule("sub")
def _sub_zero(b: _Builder, args, params):
    """x - 0 -> x;  0 - x -> -x"""
    x, y = args
    if b.is_const(y, 0):
        return x
    return b.emit("neg", [y], {}, params["_loc"]) if b.is_const(x, 0) else None


@rule("mul")
def _mul_one(b: _Builder, args, params):
    """x * 1 -> x;  1 * x -> x;  x * -1 -> -x;  -1 * x -> -x"""
    x, y = args
    for a, c in ((x, y), (y, x)):
        if b.is_const(c, 1):
            return a
        if b.is_const(c, -1):
            return b.emit("neg", [a], {}, params["_loc"])
    return None


@rule("div")
def _div_one(b: _Builder, args, params):
    """x / 1 -> x"""
    return args[0] if b.is_const(args[1], 1) else None


@rule("pow")
def _pow_one(b: _Builder, args, params):
    """x ** 1 -> x"""
    return args[0] if b.is_const(args[1], 1) else None


@rule("neg")
def _neg_neg(b: _Builder, args, params):
    """-(-x) -> x"""
    (x,) = args
    return operands(b.G, x)[0] if b.op(x) == "neg" else None


@rule("transpose")
def _transpose(b: _Builder, args, params):
    """transpose(x, identity) -> x;  transpose(transpose(x, p), q) -> transpose(x, p[q])"""
    (x,) = args
    perm = params["perm"]
    if perm == tuple(range(len(perm))):
        return x
    if b.op(x) == "transpose":
        inner = b.G._node[x]["params"]["perm"]
        composed = tuple(inner[q] for q in perm)
        return b.emit("transpose", operands(b.G, x), {"perm": composed}, params["_loc"])
    return None


def _is_swap_last(b: _Builder, n: int) -> bool:
    a = b.G._node[n]
    k = len(a["shape"])
    return (
        a["op"] == "transpose" and k >= 2 and a["params"]["perm"] == (*range(k - 2), k - 1, k - 2)
    )


@rule("matmul")
def _matmul_of_transpose(b: _Builder, args, params):
    """matmul(swapaxes(a), b) -> matmul(a, b, transpose_a);  likewise for b (BLAS's transa/b)"""
    x, y = args
    flags = {"transpose_a": params["transpose_a"], "transpose_b": params["transpose_b"]}
    for i, (v, flag) in enumerate(((x, "transpose_a"), (y, "transpose_b"))):
        if _is_swap_last(b, v) and b.G._node[operands(b.G, v)[0]]["shape"] is not None:
            new = list(args)
            new[i] = operands(b.G, v)[0]
            return b.emit("matmul", new, dict(flags, **{flag: not flags[flag]}), params["_loc"])
    return None


@rule("reshape", "broadcast_to")
def _same_shape(b: _Builder, args, params):
    """reshape(x, x.shape) -> x;  broadcast_to(x, x.shape) -> x"""
    (x,) = args
    return x if b.G._node[x]["shape"] == params["shape"] else None


@rule("reshape")
def _reshape_reshape(b: _Builder, args, params):
    """reshape(reshape(x, s), t) -> reshape(x, t)"""
    (x,) = args
    if b.op(x) != "reshape":
        return None
    return b.emit("reshape", operands(b.G, x), {"shape": params["shape"]}, params["_loc"])


@rule("sum", "mean")
def _reduce_nothing(b: _Builder, args, params):
    """sum(x, axis=()) -> x;  mean(x, axis=()) -> x"""
    return args[0] if params["axis"] == () else None


@rule("where")
def _where_known(b: _Builder, args, params):
    """where(true, x, y) -> x;  where(false, x, y) -> y (a condition known now: pow's
    gradient asks whether a constant exponent is 0)"""
    c, x, y = args
    if b.G._node[c]["dtype"] != "bool":
        return None
    return x if b.is_const(c, True) else y if b.is_const(c, False) else None


@rule("cast")
def _cast_same(b: _Builder, args, params):
    """cast(x, x.dtype) -> x"""
    return args[0] if b.G._node[args[0]]["dtype"] == params["dtype"] else None


@rule("size")
def _size_static(b: _Builder, args, params):
    """size(x, axis) -> its value, when those dims of x are known ints"""
    a = b.G._node[args[0]]
    dims = [a["shape"][i] for i in params["axis"]]
    if not all(isinstance(d, int) for d in dims):
        return None
    return b.const(np.asarray(np.prod(dims, dtype=np.int64), dtype=a["dtype"]), params["_loc"])


@rule("size")
def _size_of_input(b: _Builder, args, params):
    """size(x, axis) -> size(input, axis') when an input has those dims (size reads only the
    shape, and an input is alive anyway: x need not be kept for it)"""
    if b.op(args[0]) == "input":
        return None
    dims = [b.G._node[args[0]]["shape"][i] for i in params["axis"]]
    for n, a in b.G.nodes(data=True):
        if a["op"] != "input" or a["dtype"] != b.G._node[args[0]]["dtype"]:
            continue
        free = list(enumerate(a["shape"]))
        axes = []
        for d in dims:
            k = next((k for k, (_, e) in enumerate(free) if e == d), None)
            if k is None:
                break
            axes.append(free.pop(k)[0])
        else:
            return b.emit("size", [n], {"axis": tuple(sorted(axes))}, params["_loc"])
    return None
