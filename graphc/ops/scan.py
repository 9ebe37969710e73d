"""Loops in the graph: `scan` runs a body graph once per step, carrying a state from step to
step, and `scan_out` reads one of its results.

    carry, ys = gc.scan(f, init, xs, reverse=False)

`f(carry, x) -> (new carry, y)` is traced once into a body (ir/body.py). The scan node's
operands are the initial carries, the per-step operands `xs` (sliced along axis 0) and the
values of the enclosing graph the body reads (captured); its params hold the body, the counts
`n_carry` and `n_xs`, `reverse`, and `length`, the trip count T as a one-element shape (an int,
or a symbol bound at call time like any size). Its value is the tuple of its results, which
only `scan_out[index=k]` reads: result k < n_carry is the final carry k, the others are the
per-step results stacked along a new axis 0, [T, ...]. Step t reads slice t of each xs and
writes slice t of each stacked result; a reverse scan runs t = T-1 down to 0. `xs_axes` and
`ys_axes` move the steps off axis 0: xs k is sliced along axis `xs_axes[k]`, and stacked
result j (counted from the first stacked one) holds the steps on axis `ys_axes[j]`; an entry
left out is 0 (a batch-first sequence [N, T, ...] is read and written in place, with no
time-major copy: codegen/scan.py). An entry c > 0 of `xs_chunks` makes step t read steps
t c to t c + c - 1 of xs k, the axis kept ([..., c, ...]), from an array with at least T c
steps (the loop over a checkpointed loop's segments). The results in `strided` keep only the
step each block of k steps (k = `every`; blocks t k .. t k + k - 1; a static T; on axis 0)
runs first: steps 0, k, 2k, ..., ceil(T / k) of them, or in a reverse scan k - 1, 2k - 1,
..., T // k of them; row i holds block i's. They are the loop's checkpoints (both made by
passes/scan_remat.py).

The derivative is a reverse scan over the body's VJP (passes/scan_grad.py); the memory plan and
the code are in passes/scan_steps.py and codegen/scan.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.errors import GraphError, ShapeError
from graphc.ir.body import Body, Trace, check_body
from graphc.ir.dag import operands
from graphc.ir.graph import TRACES, Graph, Value
from graphc.ir.shapes import (
    FLOAT_DTYPES,
    ShapeMismatch,
    bind_shape,
    fits,
    format_type,
    is_symbol,
    split_steps,
)
from graphc.ops.registry import VARIADIC, OpDef, register


# ---- the signature ----------------------------------------------------------------------------
def trip_count(G: Any, n: int) -> int | str:
    """T of scan node n: an int or a symbol."""
    return G._node[n]["params"]["length"][0]


def xs_axis(p: dict[str, Any], k: int) -> int:
    """The axis along which a scan with params `p` slices its per-step operand xs[k]."""
    axes = p.get("xs_axes", ())
    return axes[k] if k < len(axes) else 0


def xs_chunk(p: dict[str, Any], k: int) -> int:
    """The steps each trip of a scan with params `p` reads of xs[k], its axis kept, or 0: one
    step, its axis dropped."""
    chunks = p.get("xs_chunks", ())
    return chunks[k] if k < len(chunks) else 0


def ys_axis(p: dict[str, Any], j: int) -> int:
    """The axis on which a scan with params `p` stacks its result j (0 for a carry)."""
    axes, nc = p.get("ys_axes", ()), p["n_carry"]
    return axes[j - nc] if 0 <= j - nc < len(axes) else 0


def stacked_shape(step: tuple, T: int | str, axis: int) -> tuple:
    """The shape of `step`-shaped slices stacked on `axis`."""
    return (*step[:axis], T, *step[axis:])


def results(G: Any, n: int) -> list[tuple[tuple, str]]:
    """(shape, dtype) of each result of scan node n: final carries, then stacked results (a
    strided one holds a step of each block of k: see kept_steps)."""
    p = G._node[n]["params"]
    body: Body = p["body"]
    T = p["length"][0]
    out = body.types(body.outputs)
    kept = kept_steps(T, p["every"], p["reverse"]) if p["strided"] else T
    return [t if j < p["n_carry"] else
            (stacked_shape(t[0], kept if j in p["strided"] else T, ys_axis(p, j)), t[1])
            for j, t in enumerate(out)]  # fmt: skip


def kept_steps(T: int | str, k: int, reverse: bool) -> int | str:
    """The rows of a strided result: one per block of k steps the loop enters at the block's
    first step in its running order (steps 0, k, ...; in a reverse loop k - 1, 2k - 1, ...:
    its last T mod k steps, run first, are no whole block); a symbol derived from a symbolic
    T (ir/shapes.py)."""
    if isinstance(T, str):
        split = split_steps(T, k, reverse)
        if split is None:
            raise ShapeMismatch(f"a strided result needs a static trip count or a symbol, not {T}")
        return split[0]
    return T // k if reverse else -(-T // k)


def _infer_scan(G: Any, n: int, ops: list[int]) -> tuple[tuple, str]:
    p = G._node[n]["params"]
    body, nc, nx_ = p["body"], p["n_carry"], p["n_xs"]
    length = p["length"]
    if not (isinstance(length, tuple) and len(length) == 1):
        raise ShapeMismatch(f"length must be a 1-tuple holding T, got {length!r}")
    (T,) = length
    if not (is_symbol(T) or (isinstance(T, int) and not isinstance(T, bool) and T >= 0)):
        raise ShapeMismatch(f"the trip count T={T!r} must be an int >= 0 or a symbol")
    ins = body.types(body.inputs)
    outs = body.types(body.outputs)
    if not (isinstance(nc, int) and isinstance(nx_, int) and 0 <= nc and 0 <= nx_):
        raise ShapeMismatch("n_carry and n_xs must be ints >= 0")
    if len(ins) != len(ops) or nc + nx_ > len(ops):
        raise ShapeMismatch(
            f"the body has {len(ins)} inputs, the scan {len(ops)} operands "
            f"({nc} carries, {nx_} per-step, the rest captured)"
        )
    if len(outs) < nc or not outs:
        raise ShapeMismatch(f"the body has {len(outs)} outputs: it must return the {nc} carries "
                            "first (and a scan needs at least one result)")  # fmt: skip
    _check_axes(p, nx_, len(outs) - nc, [len(t[0]) for t in outs[nc:]],
                [len(G._node[u]["shape"]) for u in ops[nc : nc + nx_]])  # fmt: skip
    nodes = G._node
    for k, (u, (shape, dtype)) in enumerate(zip(ops, ins, strict=True)):
        have, got = nodes[u]["shape"], nodes[u]["dtype"]
        if nc <= k < nc + nx_:
            what, a = f"xs[{k - nc}]", xs_axis(p, k - nc)
            if not have:
                raise ShapeMismatch(f"{what} (v{u}) is a scalar: a per-step operand has the "
                                    "steps on an axis")  # fmt: skip
            c = xs_chunk(p, k - nc)
            if c and not fits(have[a], T, c):
                raise ShapeMismatch(
                    f"{what} (v{u}) has {have[a]} steps on axis {a} ({format_type(have, got)}): "
                    f"the scan reads {c} steps at each of its {T} trips"
                )
            if not c and have[a] != T:
                raise ShapeMismatch(
                    f"{what} (v{u}) has {have[a]} steps on axis {a} ({format_type(have, got)}), "
                    f"the scan {T}"
                )
            have = (*have[:a], c, *have[a + 1 :]) if c else have[:a] + have[a + 1 :]
        else:
            what = f"carry[{k}]" if k < nc else f"captured value {k - nc - nx_} (v{u})"
        if (have, got) != (shape, dtype):
            raise ShapeMismatch(f"{what} is {format_type(have, got)}, the body takes "
                                f"{format_type(shape, dtype)}")  # fmt: skip
    strided, every = p["strided"], p["every"]
    if not (isinstance(every, int) and every >= 1 and isinstance(strided, tuple)):
        raise ShapeMismatch(f"every={every!r} must be an int >= 1 and strided a tuple")
    for j in strided:
        if not (isinstance(j, int) and nc <= j < len(outs)):
            raise ShapeMismatch(f"strided result {j!r} is not a per-step result")
        if ys_axis(p, j):
            raise ShapeMismatch(f"strided result {j} must keep its steps on axis 0")
        if not isinstance(T, int):
            kept_steps(T, every, p["reverse"])  # a plain symbol
    for k in range(nc):
        if outs[k] != ins[k]:
            raise ShapeMismatch(
                f"carry[{k}] changes type: it enters the body as {format_type(*ins[k])} and "
                f"leaves it as {format_type(*outs[k])}; a carry keeps its shape and dtype"
            )
    return (), outs[0][1]


def _check_axes(p: dict, nx_: int, ny: int, y_ranks: list[int], x_ranks: list[int]) -> None:
    """xs_axes: an axis of each xs (or fewer entries); ys_axes: an axis of each stacked result
    (a slice's axes and one more), or fewer."""
    chunks = p.get("xs_chunks", ())
    if not (
        isinstance(chunks, tuple)
        and len(chunks) <= nx_
        and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in chunks)
    ):
        raise ShapeMismatch(f"xs_chunks={chunks!r} must be a tuple of at most {nx_} ints >= 0")
    for key, count, ranks, extra in (("xs_axes", nx_, x_ranks, 0), ("ys_axes", ny, y_ranks, 1)):
        axes = p.get(key, ())
        if not isinstance(axes, tuple) or len(axes) > count:
            raise ShapeMismatch(f"{key}={axes!r} must be a tuple of at most {count} axes")
        for a, rank in zip(axes, ranks, strict=False):
            ok = isinstance(a, int) and not isinstance(a, bool)
            if not (ok and 0 <= a < max(rank + extra, 1)):
                raise ShapeMismatch(f"{key}={axes!r}: {a!r} is not an axis of a {rank + extra}-d "
                                    "stack")  # fmt: skip


def _infer_scan_out(G: Any, n: int, ops: list[int]) -> tuple[tuple, str]:
    (s,) = ops
    if G._node[s].get("op") != "scan":
        raise ShapeMismatch(f"scan_out reads a scan's results, v{s} is a {G._node[s].get('op')}")
    k = G._node[n]["params"]["index"]
    res = results(G, s)
    if not (isinstance(k, int) and 0 <= k < len(res)):
        raise ShapeMismatch(f"index {k!r} is not one of the scan's {len(res)} results")
    return res[k]


def _check_param(key: str, value: object) -> str | None:
    return check_body(key, value)


# ---- the reference: the loop, run by the interpreter --------------------------------------------
def _run(*arrays: np.ndarray, body: Body, n_carry: int, n_xs: int, reverse: bool,
         length: tuple, strided: tuple = (), every: int = 1, xs_axes: tuple = (),
         ys_axes: tuple = (), xs_chunks: tuple = ()) -> tuple:  # fmt: skip
    from graphc.interp import execute

    G = body.graph.nx
    (T,) = length
    ins, outs = body.inputs, body.outputs
    carries = list(arrays[:n_carry])
    p = {"n_carry": n_carry, "xs_axes": xs_axes, "ys_axes": ys_axes, "xs_chunks": xs_chunks}
    xs = [np.moveaxis(x, xs_axis(p, k), 0) for k, x in enumerate(arrays[n_carry : n_carry + n_xs])]
    x_shapes = [x.shape[1:] for x in xs]
    for k, x in enumerate(xs):
        if c := xs_chunk(p, k):  # step t: steps t c .. t c + c - 1, the axis where it was
            a = xs_axis(p, k)
            x_shapes[k] = (*x.shape[1 : a + 1], c, *x.shape[a + 1 :])
            xs[k] = [np.moveaxis(x[t * c : t * c + c], 0, a) for t in range(T)]
    fixed = dict(zip(ins[n_carry + n_xs :], arrays[n_carry + n_xs :], strict=True))
    symbols: dict[str, int] = {}  # the body's symbols, bound by its inputs' shapes
    shapes = [np.shape(a) for a in carries] + x_shapes
    shapes += [np.shape(a) for a in fixed.values()]
    for u, shape in zip(ins, shapes, strict=True):
        for d, got in zip(G._node[u]["shape"], shape, strict=True):
            if isinstance(d, str):
                symbols.setdefault(d, got)
    order = _order(body)
    ys: list[list[np.ndarray]] = [[] for _ in outs[n_carry:]]
    keep = set(outs)
    for t in range(T - 1, -1, -1) if reverse else range(T):
        values: dict[int, Any] = dict(fixed)
        values.update(zip(ins[:n_carry], carries, strict=True))
        values.update(zip(ins[n_carry : n_carry + n_xs], (x[t] for x in xs), strict=True))
        execute(G, order, values, symbols, keep)
        carries = [values[o] for o in outs[:n_carry]]
        for k, o in enumerate(outs[n_carry:]):
            ys[k].append(values[o])
    stacked = []
    for k, o in enumerate(outs[n_carry:]):
        a = G._node[o]
        if reverse:
            ys[k].reverse()
        shape = (T, *bind_shape(a["shape"], symbols))
        stacked.append(np.stack(ys[k]) if ys[k] else np.zeros(shape, dtype=a["dtype"]))
        if n_carry + k in strided:  # steps 0, every, 2 every, ... (every - 1, ... reversed)
            first = every - 1 if reverse else 0
            stacked[-1] = np.ascontiguousarray(stacked[-1][first::every])
        else:  # a view, as np.transpose's of a time-major stack (the same sums follow)
            stacked[-1] = np.moveaxis(stacked[-1], 0, ys_axis(p, n_carry + k))
    return (*(np.array(c, dtype=G._node[o]["dtype"]) for c, o in zip(carries, outs, strict=False)),
            *stacked)  # fmt: skip


_ORDERS: dict[str, list[int]] = {}


def _order(body: Body) -> list[int]:
    """The body's nodes in topological order (every node: its outputs need them, or not)."""
    from graphc.ir.dag import topo_order

    if body.key not in _ORDERS:
        _ORDERS[body.key] = topo_order(body.graph.nx)
    return _ORDERS[body.key]


def _no_rule(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("scan and scan_out are differentiated together (passes/scan_grad.py)")


def _scan_vjp(*args: Any, **kwargs: Any) -> list:
    from graphc.passes.scan_grad import scan_vjp

    return scan_vjp(*args, **kwargs)


register(
    OpDef(
        "scan",
        VARIADIC,
        lambda shapes, dtypes, params: ((), "float64"),  # see infer_graph
        _run,
        (_no_rule,),
        params={
            "body": None,
            "n_carry": 0,
            "n_xs": 0,
            "reverse": False,
            "length": (0,),
            "strided": (),
            "every": 1,
            "xs_axes": (),
            "ys_axes": (),
            "xs_chunks": (),
        },  # fmt: skip
        shape_params=("length",),
        infer_graph=_infer_scan,
        structured=("body",),
        check_param=_check_param,
        fold=False,
        multi_vjp=_scan_vjp,
        formula="d scan = a reverse scan over the body's VJP (passes/scan_grad.py)",
    )
)
register(
    OpDef(
        "scan_out",
        1,
        lambda shapes, dtypes, params: ((), "float64"),  # see infer_graph
        lambda results, index: results[index],
        (_no_rule,),
        params={"index": 0},
        infer_graph=_infer_scan_out,
        fold=False,
        formula="read with the scan: see scan",
    )
)


# ---- the builder ------------------------------------------------------------------------------
Tree = Any  # a Value (or a number), None, or a tuple, list or dict of trees


def _flatten(tree: Tree, what: str) -> tuple[list[Any], Any]:
    """The leaves of `tree` in order and its structure, for _unflatten."""
    if isinstance(tree, tuple | list):
        parts = [_flatten(x, f"{what}[{k}]") for k, x in enumerate(tree)]
        return [v for leaves, _ in parts for v in leaves], (type(tree), [s for _, s in parts])
    if isinstance(tree, dict):
        parts = [_flatten(tree[k], f"{what}[{k!r}]") for k in tree]
        return [v for leaves, _ in parts for v in leaves], (dict, list(tree), [s for _, s in parts])
    if tree is None:
        return [], None
    return [tree], "leaf"


def _unflatten(spec: Any, leaves: list[Any]) -> Tree:
    it = iter(leaves)

    def build(s: Any) -> Tree:
        if s is None:
            return None
        if s == "leaf":
            return next(it)
        if s[0] is dict:
            return {k: build(x) for k, x in zip(s[1], s[2], strict=True)}
        return s[0](build(x) for x in s[1])

    return build(spec)


def _where(loc: str) -> str:
    return f"gc.scan at {loc}"


def scan(
    f: Callable[[Tree, Tree], tuple[Tree, Tree]],
    init: Tree,
    xs: Tree = None,
    reverse: bool = False,
    length: int | str | None = None,
    axis: int = 0,
) -> tuple[Tree, Tree]:
    """Run `f(carry, x) -> (carry, y)` over the steps of `xs` (sliced along axis 0), starting
    from the carry `init`: returns the last carry and every step's y stacked along a new axis
    0 ([T, ...]), as `jax.lax.scan`. `init` and `xs` are Values or tuples, lists or dicts of
    them (`xs` may be None with `length=` the number of steps, an int or a symbol); `f`
    returns the new carry in the structure of `init` (each of the same shape and dtype) and a
    y of any such structure (or None). `f` is called once, to trace its body: values of the
    model it uses are read by every step (their gradients summed over the steps). With
    `reverse`, step T-1 runs first (y still stacked by step). With `axis`, the steps are on
    that axis of every xs leaf and y is stacked on it (`axis=1`: batch-first sequences
    [N, T, ...]), read and written where they are, with no time-major copy."""
    from graphc.ir.dag import clean_loc
    from graphc.ir.loc import user_loc

    loc = clean_loc(user_loc())
    init_leaves, init_spec = _flatten(init, "init")
    xs_leaves, xs_spec = _flatten(xs, "xs")
    values = [v for v in (*init_leaves, *xs_leaves) if isinstance(v, Value)]
    if TRACES:
        outer: Graph = TRACES[-1]
    elif values:
        outer = values[0].graph
    else:
        raise GraphError(f"{_where(loc)}: init and xs hold no graphc Value to loop over")
    with outer.at(loc):
        init_leaves = [_value(outer, v, f"init leaf {k}", loc) for k, v in enumerate(init_leaves)]
        xs_leaves = [_value(outer, v, f"xs leaf {k}", loc) for k, v in enumerate(xs_leaves)]
    if not (isinstance(axis, int | np.integer) and int(axis) >= 0):
        raise GraphError(f"{_where(loc)}: axis={axis!r} must be an int >= 0")
    axis = int(axis)
    T = _trip_count(xs_leaves, length, loc, axis)
    body = Trace(outer)
    carry_in = [body.slot(f"c{k}", v.shape, v.dtype) for k, v in enumerate(init_leaves)]
    x_in = [body.slot(f"x{k}", v.shape[:axis] + v.shape[axis + 1 :], v.dtype)
            for k, v in enumerate(xs_leaves)]  # fmt: skip
    TRACES.append(body)
    try:
        got = f(_unflatten(init_spec, carry_in), _unflatten(xs_spec, x_in))
    finally:
        TRACES.pop()
    if not isinstance(got, tuple | list) or len(got) != 2:
        raise GraphError(f"{_where(loc)}: f must return a pair (new carry, y), it returned "
                         f"{type(got).__name__}")  # fmt: skip
    new_carry, y = got
    try:
        carry_leaves, carry_spec = _flatten(new_carry, "carry")
    except (TypeError, ValueError):
        carry_spec = object()
    if carry_spec != init_spec:
        raise GraphError(f"{_where(loc)}: f returned a carry of another structure than init "
                         f"({_describe(new_carry)} for {_describe(init)})")  # fmt: skip
    y_leaves, y_spec = _flatten(y, "y")
    with body.at(loc):
        carry_out = [_value(body, v, f"carry leaf {k}", loc) for k, v in enumerate(carry_leaves)]
        y_out = [_value(body, v, f"y leaf {k}", loc) for k, v in enumerate(y_leaves)]
    for k, (a, b) in enumerate(zip(carry_in, carry_out, strict=True)):
        if (a.shape, a.dtype) != (b.shape, b.dtype):
            raise ShapeError(
                f"{_where(loc)}: carry leaf {k} changes type: init is "
                f"{format_type(a.shape, a.dtype)}, f returned {format_type(b.shape, b.dtype)}; "
                "a carry keeps its shape and dtype from step to step"
            )
    if not carry_out and not y_out:
        raise GraphError(f"{_where(loc)}: the loop has no result (no carry and y is None)")
    for k, v in enumerate(y_out):
        if v.ndim < axis:
            raise ShapeError(f"{_where(loc)}: y leaf {k} (v{v.id}, "
                             f"{format_type(v.shape, v.dtype)}) has no axis {axis} to stack "
                             "the steps on")  # fmt: skip
    for k, v in enumerate(carry_out):
        body.output(f"c{k}", v)
    for k, v in enumerate(y_out):
        body.output(f"y{k}", v)
    params = {"body": Body(body.finish()), "n_carry": len(init_leaves), "n_xs": len(xs_leaves),
              "reverse": bool(reverse), "length": (T,)}  # fmt: skip
    if axis:
        params.update(xs_axes=(axis,) * len(xs_leaves), ys_axes=(axis,) * len(y_out))
    with outer.at(loc):
        node = outer.add("scan", [*init_leaves, *xs_leaves, *body.captured], params)
        count = len(carry_out) + len(y_out)
        outs = [outer.add("scan_out", [node], {"index": k}) for k in range(count)]
    return _unflatten(init_spec, outs[: len(carry_out)]), _unflatten(y_spec, outs[len(carry_out) :])


def _describe(tree: Tree) -> str:
    if isinstance(tree, Value):
        return "a Value"
    if isinstance(tree, tuple | list | dict):
        return f"a {type(tree).__name__} of {len(tree)}"
    return type(tree).__name__


def _value(g: Graph, v: Any, what: str, loc: str) -> Value:
    """Leaf `v` as a Value of `g` (a number becomes a constant)."""
    if isinstance(v, Value):
        return v if v.graph is g or not isinstance(g, Trace) else g.capture(v)
    try:
        arr = np.asarray(v)
    except Exception:  # noqa: BLE001  (anything NumPy cannot read is the error below)
        arr = np.asarray(None)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise GraphError(f"{_where(loc)}: {what} is {type(v).__name__}, not a graphc Value or "
                         "a number")  # fmt: skip
    keep = arr.dtype.kind == "f" and arr.dtype.name in FLOAT_DTYPES
    return g.const(arr, dtype=arr.dtype.name if keep else "float64")


def _trip_count(xs: list[Value], length: int | str | None, loc: str, axis: int = 0) -> int | str:
    if length is not None and not (
        is_symbol(length) or (isinstance(length, int | np.integer) and int(length) >= 0)
    ):
        raise GraphError(f"{_where(loc)}: length={length!r} must be an int >= 0 or a symbol")
    if length is not None and not isinstance(length, str):
        length = int(length)
    if not xs:
        if length is None:
            raise GraphError(f"{_where(loc)}: with no xs, give length= (the number of steps)")
        return length
    for k, x in enumerate(xs):
        if x.ndim <= axis:
            shown = format_type(x.shape, x.dtype)
            what = f"({shown}) has no axis {axis}" if x.shape else "is a scalar"
            raise ShapeError(f"{_where(loc)}: xs leaf {k} (v{x.id}) {what}; each xs has the "
                             f"steps on axis {axis}")  # fmt: skip
    T = xs[0].shape[axis]
    for k, x in enumerate(xs[1:], 1):
        if x.shape[axis] != T:
            raise ShapeError(
                f"{_where(loc)}: xs leaf {k} (v{x.id}, {format_type(x.shape, x.dtype)}) has "
                f"{x.shape[axis]} steps on axis {axis}, xs leaf 0 has {T}"
            )
    if length is not None and length != T:
        raise ShapeError(f"{_where(loc)}: length={length!r}, but xs have {T} steps")
    return T


def scan_node(G: Any, n: int) -> int:
    """The scan whose result scan_out node n reads."""
    return operands(G, n)[0]
