"""The Graph wrapper over a networkx MultiDiGraph (schema: DESIGN.md §2; read and written at the
networkx level by ir/dag.py) and the Value handle."""

from __future__ import annotations

import contextlib
import difflib
import keyword
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np

from graphc.errors import GraphError, ShapeError
from graphc.ir.dag import add_node, clean_loc, copy_graph, describe, infer_node
from graphc.ir.loc import user_loc
from graphc.ir.shapes import (
    DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    Shape,
    ShapeMismatch,
    dtype_name,
    format_type,
    is_symbol,
    normalize_shape,
)
from graphc.ops.registry import REGISTRY

# Graphs being traced as loop bodies (gc.scan), innermost last: a node whose operands include
# a value of one of them is added to the innermost such body (see ir/body.py).
TRACES: list[Graph] = []


def _here() -> str:
    return clean_loc(user_loc())


def graph_name_problem(name: object) -> str | None:
    """Why `name` cannot name a graph (and so its module), or None."""
    if not is_symbol(name) or keyword.iskeyword(name):
        return "must be an ASCII Python identifier (it names the compiled module)"
    if name in ("cython", "builtins") or (name.startswith("__") and name.endswith("__")):
        return "is a name Cython keeps for itself; choose another"
    return None


def unknown_op(op: object) -> str:
    """`unknown op 'tanhh'; did you mean 'tanh'?`"""
    close = difflib.get_close_matches(op, REGISTRY, n=1) if isinstance(op, str) else []
    return f"unknown op {op!r}" + (f"; did you mean {close[0]!r}?" if close else "")


class Graph:
    """A model under construction: `g.nx` is the MultiDiGraph, the methods are sugar over it."""

    def __init__(self, name: str = "model") -> None:
        problem = graph_name_problem(name)
        if problem:
            raise GraphError(f"graph name {name!r} {problem}")
        self.nx = nx.MultiDiGraph(name=name, outputs={})
        self._next_id = 0
        self._loc: str | None = None

    # ---- construction -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.nx.graph["name"]

    def input(self, name: str, shape: Sequence[Any] = (), dtype: str = "float64") -> Value:
        """A data input, bound at call time."""
        return self._leaf(name, shape, dtype, "data")

    def param(self, name: str, shape: Sequence[Any] = (), dtype: str = "float64") -> Value:
        """A parameter: an input that `grad` differentiates with respect to by default."""
        return self._leaf(name, shape, dtype, "param")

    def _leaf(
        self, name: str, shape: Sequence[Any], dtype: str, role: str,
        taken: Mapping[str, int] | None = None,
    ) -> Value:  # fmt: skip
        """A new input. `taken`: the graph's inputs (name -> id), when the caller keeps them
        (a pass adding thousands of inputs: finding them costs a walk over every node)."""
        loc = self._loc or _here()
        if not is_symbol(name) or keyword.iskeyword(name):
            raise GraphError(f"{role} name {name!r} at {loc} must be an ASCII Python identifier")
        if name in (ids := self.input_ids() if taken is None else taken):
            raise GraphError(
                f"{role} name {name!r} at {loc} is already used by {describe(self.nx, ids[name])}"
                "; give each input its own name"
            )
        dtype = dtype_name(dtype)
        if dtype not in DTYPES:
            raise GraphError(f"{role} {name!r} at {loc}: dtype {dtype!r} is not one of {DTYPES}")
        try:
            shape = normalize_shape(shape)
        except ShapeMismatch as e:
            raise ShapeError(f"{role} {name!r} at {loc}: {e}") from None
        n = self._new_id()
        self.nx.add_node(
            n, op="input", role=role, name=name, shape=shape, dtype=dtype, params={}, loc=loc
        )
        return Value(self, n)

    def const(self, value: Any, dtype: str | None = None) -> Value:
        """A constant array; Python scalars and integer arrays default to float64 (indices
        ask for an int dtype)."""
        arr = np.asarray(value)
        dtype = dtype_name(dtype)
        if dtype is None:
            keep = arr.dtype.kind in "fb" and arr.dtype.name in DTYPES
            dtype = arr.dtype.name if keep else "float64"
        arr = np.array(arr, dtype=dtype, copy=True)
        arr.flags.writeable = False
        n = self._new_id()
        attrs = {"op": "const", "value": arr, "shape": arr.shape, "dtype": dtype, "params": {},
                 "loc": self._loc or _here()}  # fmt: skip
        add_node(self.nx, n, attrs)
        return Value(self, n)

    def add(self, op: str, args: Sequence[Any], params: Mapping[str, Any] | None = None) -> Value:
        """Add a node applying `op` to `args` (Values of this graph, scalars or arrays)."""
        if TRACES:  # an operand of a loop body being traced: the node belongs to that body
            inner = next((t for t in reversed(TRACES) for a in args
                          if isinstance(a, Value) and a.graph is t), None)  # fmt: skip
            if inner is not None and inner is not self:
                return inner.add(op, args, params)
        loc = self._loc or _here()
        if not isinstance(op, str) or op not in REGISTRY:
            raise GraphError(f"{unknown_op(op)} (at {loc})")
        opdef = REGISTRY[op]
        if not opdef.takes(len(args)):
            raise GraphError(f"{op} at {loc} takes {opdef.arity_text} operands, got {len(args)}")
        try:
            params = opdef.full_params(params)
        except KeyError as e:
            raise GraphError(f"{op} at {loc}: {e.args[0]}") from None
        for key, value in params.items():
            problem = opdef.param_problem(key, value)
            if problem:
                raise GraphError(f"{op} at {loc}: parameter {key}={value!r} {problem}")
        ids = self._operand_ids(args, loc)
        nodes = self.nx._node
        if opdef.infer_graph is not None:  # inferred from the operand nodes: add it first
            n = self._new_id()
            add_node(self.nx, n, {"op": op, "params": params, "loc": loc}, ids)
            try:
                shape, dtype = infer_node(self.nx, n, ids)
            except BaseException:
                self.nx.remove_node(n)
                self._next_id -= 1
                raise
            self.nx._node[n].update(shape=tuple(shape), dtype=dtype)
            return Value(self, n)
        try:
            shape, dtype = opdef.infer(
                [nodes[u]["shape"] for u in ids], [nodes[u]["dtype"] for u in ids], params
            )
            shape = normalize_shape(shape)  # within the limits on rank and size
        except ShapeMismatch:  # add it only to name it in the error, then take it out again
            n = self._new_id()
            self.nx.add_node(n, op=op, params=params, loc=loc)
            for port, u in enumerate(ids):
                self.nx.add_edge(u, n, port=port)
            try:
                infer_node(self.nx, n, ids)
            finally:
                self.nx.remove_node(n)
                self._next_id -= 1
        n = self._new_id()
        attrs = {"op": op, "params": params, "loc": loc, "shape": tuple(shape), "dtype": dtype}
        add_node(self.nx, n, attrs, ids)
        return Value(self, n)

    def _operand_ids(self, args: Sequence[Any], loc: str) -> list[int]:
        ids = [a.id for a in args if isinstance(a, Value) and a.graph is self]
        if len(ids) == len(args):
            return ids  # the common case: no numbers to make constants of
        float_dtypes = [a.dtype for a in args if isinstance(a, Value) and a.dtype in FLOAT_DTYPES]
        like = float_dtypes[0] if float_dtypes else "float64"
        # Among ints, a number takes the dtype of the value it meets (`i + 1` stays an int8)
        int_dtypes = [a.dtype for a in args if isinstance(a, Value) and a.dtype in INT_DTYPES]
        int_like = like if float_dtypes or not int_dtypes else int_dtypes[0]
        ids = []
        for a in args:
            if isinstance(a, Value):
                if a.graph is not self:
                    raise GraphError(
                        f"operand v{a.id} at {loc} belongs to graph {a.graph.name!r}, "
                        f"not {self.name!r}"
                    )
                ids.append(a.id)
            else:
                arr = np.asarray(a)
                if arr.dtype == object or arr.dtype.kind not in "biuf":
                    raise GraphError(f"operand {a!r} at {loc} is not a number or numeric array")
                keep = arr.dtype.kind == "f" and arr.ndim > 0 and arr.dtype.name in FLOAT_DTYPES
                if arr.dtype.kind in "iu" and int_like != like:
                    own = arr.ndim and arr.dtype.name in INT_DTYPES  # an array keeps its dtype
                    dtype = arr.dtype.name if own else int_like
                    ids.append(self.const(_fitted(arr, dtype, loc), dtype=dtype).id)
                    continue
                ids.append(self.const(arr, dtype=arr.dtype.name if keep else like).id)
        return ids

    def _new_id(self) -> int:
        n = self._next_id
        self._next_id += 1
        return n

    @contextlib.contextmanager
    def at(self, loc: str | None) -> Iterator[None]:
        """Nodes made inside this block record `loc` (used by passes that build on a graph)."""
        saved, self._loc = self._loc, (clean_loc(str(loc)) if loc else None)
        try:
            yield
        finally:
            self._loc = saved

    def output(self, name: str, value: Value) -> Value:
        """Mark `value` as the model output called `name`."""
        if not isinstance(name, str) or not name or not name.isprintable():
            raise GraphError(
                f"output name {name!r} at {_here()} must be a non-empty printable string"
            )
        if not isinstance(value, Value) or value.graph is not self:
            what = f"graph {value.graph.name!r}" if isinstance(value, Value) else repr(value)
            raise GraphError(
                f"output {name!r} at {_here()} must be a value of graph {self.name!r}, got {what}"
            )
        if name in self.nx.graph["outputs"]:
            n = self.nx.graph["outputs"][name]
            raise GraphError(
                f"output name {name!r} at {_here()} is already used by {describe(self.nx, n)}; "
                "give each output its own name"
            )
        self.nx.graph["outputs"][name] = value.id
        return value

    # ---- reading ------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Value:
        """The output, or failing that the input, called `name`."""
        if name in self.nx.graph["outputs"]:
            return Value(self, self.nx.graph["outputs"][name])
        if name in (ids := self.input_ids()):
            return Value(self, ids[name])
        raise KeyError(f"graph {self.name!r} has no output or input named {name!r}")

    @property
    def outputs(self) -> dict[str, int]:
        return dict(self.nx.graph["outputs"])

    def input_ids(self, role: str | None = None) -> dict[str, int]:
        """Input name -> node id, in declaration (id) order; `role` filters data/param."""
        found = [
            (n, d)
            for n, d in self.nx._node.items()
            if d.get("op") == "input" and (role is None or d.get("role") == role)
        ]
        return {d["name"]: n for n, d in sorted(found, key=lambda nd: nd[0])}

    @property
    def next_id(self) -> int:
        """The id the next node will get: the nodes a pass adds to a copy of this graph (the
        adjoint nodes `grad` adds, say) have ids from here on."""
        return self._next_id

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def __repr__(self) -> str:
        return f"<graphc.Graph {self.name!r}: {len(self)} nodes, outputs {list(self.outputs)}>"

    def __str__(self) -> str:
        from graphc.ir.printer import format_graph

        return format_graph(self)

    def _repr_svg_(self) -> str:
        """The graph drawn, for Jupyter (large graphs collapsed into layers; see graphc.viz)."""
        from graphc.viz.notebook import graph_svg

        return graph_svg(self)

    def _repr_html_(self) -> str:
        from graphc.viz.notebook import graph_html

        return graph_html(self)

    # ---- conversion ---------------------------------------------------------------------
    def copy(self) -> Graph:
        g = Graph.__new__(Graph)
        g.nx = copy_graph(self.nx)
        g.nx.graph["outputs"] = dict(self.nx.graph["outputs"])
        g._next_id = self._next_id
        g._loc = None
        return g

    @classmethod
    def from_networkx(cls, G: nx.Graph) -> Graph:
        """Adopt a hand-built networkx graph that follows the schema; verifies it first."""
        from graphc.ir.verify import verify

        if not isinstance(G, nx.MultiDiGraph):
            raise GraphError(f"a model must be a networkx.MultiDiGraph, got {type(G).__name__}")
        H = G.copy()
        H.graph.setdefault("name", "model")
        H.graph.setdefault("outputs", {})
        verify(H, fill=True)
        g = cls.__new__(cls)
        g.nx = H
        g._next_id = max(H.nodes, default=-1) + 1
        g._loc = None
        return g

    def to_json(self) -> str:
        from graphc.ir.serialize import to_json

        return to_json(self.nx)

    @classmethod
    def from_json(cls, text: str) -> Graph:
        from graphc.ir.serialize import from_json

        return cls.from_networkx(from_json(text))


def _fitted(arr: np.ndarray, dtype: str, loc: str) -> np.ndarray:
    """Integer `arr` as a constant of `dtype`, or a GraphError when a value does not fit."""
    info = np.iinfo(dtype)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise GraphError(f"operand {arr.tolist()!r} at {loc} does not fit {dtype}; cast the value")
    return arr


def as_graph(g: Graph | nx.MultiDiGraph) -> Graph:
    """Accept a Graph or a plain networkx graph everywhere a model is expected."""
    if isinstance(g, Graph):
        return g
    return Graph.from_networkx(g)


class Value:
    """A handle on one node of a Graph; its operators add nodes (the builder)."""

    __slots__ = ("graph", "id")
    __array_ufunc__ = None  # make `ndarray + Value` defer to Value.__radd__

    def __init__(self, graph: Graph, id: int) -> None:
        self.graph = graph
        self.id = id

    @property
    def attrs(self) -> dict[str, Any]:
        return self.graph.nx._node[self.id]

    @property
    def shape(self) -> Shape:
        return self.attrs["shape"]

    @property
    def dtype(self) -> str:
        return self.attrs["dtype"]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def op(self) -> str:
        return self.attrs["op"]

    def __repr__(self) -> str:
        return f"<v{self.id}:{format_type(self.shape, self.dtype)} = {self.op}>"

    def __bool__(self) -> bool:
        raise TypeError("a graphc Value has no truth value while the graph is built; use gc.where")

    def __getitem__(self, key: Any) -> Value:
        """Basic indexing as NumPy's: ints, slices, `...` and None (see ops/slicing.py)."""
        from graphc.ops.slicing import getitem

        return getitem(self, key)

    def __iter__(self) -> Iterator[Value]:
        raise TypeError("a graphc Value cannot be iterated; index it (x[0]) instead")

    def _op(self, op: str, *args: Any, **params: Any) -> Value:
        return self.graph.add(op, args, params)

    def __add__(self, o: Any) -> Value:
        return self._op("add", self, o)  # noqa: E704

    def __radd__(self, o: Any) -> Value:
        return self._op("add", o, self)  # noqa: E704

    def __sub__(self, o: Any) -> Value:
        return self._op("sub", self, o)  # noqa: E704

    def __rsub__(self, o: Any) -> Value:
        return self._op("sub", o, self)  # noqa: E704

    def __mul__(self, o: Any) -> Value:
        return self._op("mul", self, o)  # noqa: E704

    def __rmul__(self, o: Any) -> Value:
        return self._op("mul", o, self)  # noqa: E704

    def __truediv__(self, o: Any) -> Value:
        return self._op("div", self, o)  # noqa: E704

    def __rtruediv__(self, o: Any) -> Value:
        return self._op("div", o, self)  # noqa: E704

    def __pow__(self, o: Any) -> Value:
        return self._op("pow", self, o)  # noqa: E704

    def __rpow__(self, o: Any) -> Value:
        return self._op("pow", o, self)  # noqa: E704

    def __floordiv__(self, o: Any) -> Value:
        return self._op("floor_divide", self, o)  # noqa: E704

    def __rfloordiv__(self, o: Any) -> Value:
        return self._op("floor_divide", o, self)  # noqa: E704

    def __mod__(self, o: Any) -> Value:
        return self._op("remainder", self, o)  # noqa: E704

    def __rmod__(self, o: Any) -> Value:
        return self._op("remainder", o, self)  # noqa: E704

    def __and__(self, o: Any) -> Value:
        return self._op("bitwise_and", self, o)  # noqa: E704

    def __rand__(self, o: Any) -> Value:
        return self._op("bitwise_and", o, self)  # noqa: E704

    def __or__(self, o: Any) -> Value:
        return self._op("bitwise_or", self, o)  # noqa: E704

    def __ror__(self, o: Any) -> Value:
        return self._op("bitwise_or", o, self)  # noqa: E704

    def __xor__(self, o: Any) -> Value:
        return self._op("bitwise_xor", self, o)  # noqa: E704

    def __rxor__(self, o: Any) -> Value:
        return self._op("bitwise_xor", o, self)  # noqa: E704

    def __invert__(self) -> Value:
        return self._op("bitwise_not", self)  # noqa: E704

    def __lshift__(self, o: Any) -> Value:
        return self._op("left_shift", self, o)  # noqa: E704

    def __rlshift__(self, o: Any) -> Value:
        return self._op("left_shift", o, self)  # noqa: E704

    def __rshift__(self, o: Any) -> Value:
        return self._op("right_shift", self, o)  # noqa: E704

    def __rrshift__(self, o: Any) -> Value:
        return self._op("right_shift", o, self)  # noqa: E704

    def __matmul__(self, o: Any) -> Value:
        return self._op("matmul", self, o)  # noqa: E704

    def __rmatmul__(self, o: Any) -> Value:
        return self._op("matmul", o, self)  # noqa: E704

    def __neg__(self) -> Value:
        return self._op("neg", self)  # noqa: E704

    def __pos__(self) -> Value:
        return self  # noqa: E704

    def __lt__(self, o: Any) -> Value:
        return self._op("less", self, o)  # noqa: E704

    def __le__(self, o: Any) -> Value:
        return self._op("less_equal", self, o)  # noqa: E704

    def __gt__(self, o: Any) -> Value:
        return self._op("greater", self, o)  # noqa: E704

    def __ge__(self, o: Any) -> Value:
        return self._op("greater_equal", self, o)  # noqa: E704

    @property
    def T(self) -> Value:
        """All axes reversed, as NumPy's `.T`."""
        return self._op("transpose", self, perm=tuple(reversed(range(self.ndim))))

    def transpose(self, *perm: int) -> Value:
        from graphc.ops.api import transpose

        return transpose(self, perm[0] if len(perm) == 1 else (perm or None))

    def reshape(self, *shape: Any) -> Value:
        from graphc.ops.api import reshape

        return reshape(self, shape[0] if len(shape) == 1 else shape)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Value:
        from graphc.ops.api import sum as sum_

        return sum_(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Value:
        from graphc.ops.api import mean

        return mean(self, axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Value:
        from graphc.ops.api import max as max_

        return max_(self, axis, keepdims)
