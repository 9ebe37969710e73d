"""Every derivative from `grad`: forward mode (`jvp`), Hessian-vector products (`hvp`),
Jacobians and Hessians. Each is a graph transformation built from reverse mode alone, so each
op's derivative lives in one place, its VJP rule (DESIGN.md §3), and the results go through
the same optimiser, memory planner and code generator as any graph.

Forward mode by linearity (the "double backward" construction): a VJP, u -> J^T u, is linear
in the cotangent u, so <J^T u, t> = <u, J t> and J t is the gradient of <J^T u, t> with
respect to u. Differentiating twice builds a graph whose J t part reads only t and the forward
values: every term of J^T u is linear in u, so u drops out and simplify removes the first
reverse pass. What is left costs about one more forward pass (benchmarks.derivatives).

A Hessian-vector product is reverse over reverse (the gradient of <grad f, v>) by default,
or forward over reverse (`mode="forward"`, the JVP of the gradient); both are exact."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from graphc.errors import GraphError
from graphc.ir.dag import operands, topo_order
from graphc.ir.graph import Graph, Value, as_graph
from graphc.ir.shapes import FLOAT_DTYPES
from graphc.ops import api
from graphc.passes.grad import _select_wrt, grad, grad_name
from graphc.passes.simplify import simplify


def tangent_name(name: str) -> str:
    """The input holding the tangent of input `name`, or the output holding the directional
    derivative of output `name`: `x_dot`, `loss_dot`."""
    return f"{name}_dot"


def vector_name(name: str) -> str:
    """The input holding the vector v that multiplies the Hessian, for the block of input
    `name`: `W1_v`."""
    return f"{name}_v"


def hvp_name(of: str, w: str) -> str:
    """The output holding (the Hessian of `of`) times v, for the block of input `w`."""
    return f"hvp({of},{w})"


def _names(of: str | Iterable[str] | None, g: Graph) -> list[str]:
    names = [n for n in g.outputs if g.nx.nodes[g.outputs[n]]["dtype"] in FLOAT_DTYPES]
    names = names if of is None else [of] if isinstance(of, str) else list(of)
    for name in names:
        if name not in g.outputs:
            raise GraphError(f"{name!r} is not an output of graph {g.name!r}: {list(g.outputs)}")
    return names


def _fresh(g: Graph, base: str) -> str:
    """An input or output name of `g` starting with `base` that is not taken yet."""
    taken = set(g.input_ids()) | set(g.outputs)
    k = 0
    while f"{base}{k}" in taken:
        k += 1
    return f"{base}{k}"


def _like(g: Graph, name: str, n: int, role: str = "data") -> Value:
    """A new input `name` of node n's shape and dtype."""
    a = g.nx.nodes[n]
    return g._leaf(name, a["shape"], a["dtype"], role)


def _dot(pairs: list[tuple[Value, Value]]) -> Value:
    """sum over the pairs of sum(a * b), a scalar."""
    total = None
    for a, b in pairs:
        term = api.sum(a * b)
        total = term if total is None else total + term
    return total


def _finish(g: Graph, outputs: dict[str, int], drop: Iterable[str] = ()) -> Graph:
    """`g` with exactly `outputs`, simplified, without the inputs in `drop` (which must then be
    unused)."""
    h = g.copy()
    h.nx.graph["outputs"] = dict(outputs)
    h = simplify(h)
    ids = h.input_ids()
    for name in drop:
        n = ids[name]
        if h.nx.out_degree(n):
            raise GraphError(f"internal: the derivative still reads {name!r}")
        h.nx.remove_node(n)
    return h


def _linear_in(g: Graph, of: list[str], wrt: dict[str, int]) -> tuple[Graph, dict[str, str]]:
    """`g` plus a cotangent input per output in `of` and the output `s` = sum of <o, u_o>, then
    its gradient: the VJPs J^T u (one output per wrt input). Returns the graph and the
    cotangent input of each output."""
    h = g.copy()
    cots = {}
    for o in of:
        cots[o] = _fresh(h, "_cotangent")
        _like(h, cots[o], h.outputs[o])
    s = _fresh(h, "_vjp")
    h.output(s, _dot([(h[o], h[c]) for o, c in cots.items()]))
    return grad(h, of=s, wrt=list(wrt), allow_unused=True), {"of": s, **cots}


def jvp(
    g: Graph,
    of: str | Iterable[str] | None = None,
    wrt: str | Iterable[str] | None = None,
    tangents: dict[str, str] | None = None,
) -> Graph:
    """A new graph with the outputs of `g` plus, for each output o in `of` (default: every
    float output), its directional derivative `tangent_name(o)` = J_o t, where t is the tangent
    of the inputs `wrt` (default: the params), given as inputs named `tangents[w]` (default
    `tangent_name(w)`) of each w's shape."""
    g = as_graph(g)
    outs = _names(of, g)
    targets = _select_wrt(g, wrt)
    tangents = {w: (tangents or {}).get(w, tangent_name(w)) for w in targets}
    for o in outs:
        if tangent_name(o) in g.outputs:
            raise GraphError(f"graph {g.name!r} already has an output {tangent_name(o)!r}")
    h, names = _linear_in(g, outs, targets)
    t_in = {w: _like(h, t, targets[w]) for w, t in tangents.items()}
    r = _fresh(h, "_jvp")
    h.output(r, _dot([(h[grad_name(names["of"], w)], t_in[w]) for w in targets]))
    cots = {o: names[o] for o in outs}
    d = grad(h, of=r, wrt=list(cots.values()), allow_unused=True)
    result = dict(g.outputs)
    result |= {tangent_name(o): d.outputs[grad_name(r, c)] for o, c in cots.items()}
    return _finish(d, result, drop=cots.values())


def hvp(
    g: Graph,
    of: str,
    wrt: str | Iterable[str] | None = None,
    vectors: dict[str, str] | None = None,
    mode: str = "reverse",
) -> Graph:
    """A new graph with the outputs of `g`, the gradient of `of` (outputs `grad_name(of, w)`)
    and, for each w in `wrt` (default: the params), the block `hvp_name(of, w)` of H v, where
    H is the Hessian of `of` and v is given as inputs `vectors[w]` (default `vector_name(w)`).
    `mode`: "reverse" (reverse over reverse) or "forward" (forward over reverse)."""
    g = as_graph(g)
    targets = _select_wrt(g, wrt)
    vectors = {w: (vectors or {}).get(w, vector_name(w)) for w in targets}
    grads = {w: grad_name(of, w) for w in targets}
    have = all(name in g.outputs for name in grads.values())  # e.g. a compiler's joint graph
    d = g.copy() if have else grad(g, of=of, wrt=list(targets))
    if mode == "reverse":
        v_in = {w: _like(d, v, targets[w]) for w, v in vectors.items()}
        r = _fresh(d, "_hvp")
        d.output(r, _dot([(d[grads[w]], v_in[w]) for w in targets]))
        dd = grad(d, of=r, wrt=list(targets), allow_unused=True)
        blocks = {hvp_name(of, w): dd.outputs[grad_name(r, w)] for w in targets}
        return _finish(dd, {k: dd.outputs[k] for k in d.outputs if k != r} | blocks)
    if mode == "forward":
        f = jvp(d, of=list(grads.values()), wrt=list(targets), tangents=vectors)
        blocks = {hvp_name(of, w): f.outputs[tangent_name(grads[w])] for w in targets}
        kept = {k: n for k, n in f.outputs.items() if k in d.outputs}
        return _finish(f, kept | blocks)
    raise GraphError(f"hvp: mode must be 'reverse' or 'forward', got {mode!r}")


def _static_size(g: Graph, n: int, what: str) -> int:
    shape = g.nx.nodes[n]["shape"]
    if not all(isinstance(d, int) for d in shape):
        raise GraphError(
            f"{what} has the symbolic shape {shape}: a Jacobian needs static shapes; build the "
            "model with fixed sizes"
        )
    return math.prod(shape)


def _instantiate(target: Graph, src: Graph, out: int, bind: dict[int, int]) -> int:
    """Copy into `target` the nodes of `src` that `out` needs, reading `bind[n]` (a node of
    target) wherever src reads its node n; inputs of src are bound by name to target's. The
    id of out's copy."""
    G, T = src.nx, target.nx
    ids = target.input_ids()
    need = {out}
    stack = [out]
    while stack:
        for u in operands(G, stack.pop()):
            if u not in need and u not in bind:
                need.add(u)
                stack.append(u)
    new = dict(bind)
    for n in topo_order(G):
        if n not in need or n in new:
            continue
        a = G.nodes[n]
        if a["op"] == "input":
            new[n] = ids[a["name"]]
            continue
        m = target._new_id()
        T.add_node(m, **{k: v for k, v in a.items() if k != "grad_of"})
        for port, u in enumerate(operands(G, n)):
            T.add_edge(new[u], m, port=port)
        new[n] = m
    return new[out]


def jacobian(g: Graph, of: str | Iterable[str], wrt: str | Iterable[str] | None = None) -> Graph:
    """A new graph with the outputs of `g` plus the Jacobian block `grad_name(o, w)` of shape
    o.shape + w.shape for each output o in `of` and input w in `wrt` (default: the params);
    shapes must be static. Forward mode (one JVP per input element) when the inputs have fewer
    elements than the outputs, else reverse mode (one VJP per output element): the graph's
    `nx.graph["jacobian"]` says which, and how many passes."""
    g = as_graph(g)
    outs = _names(of, g)
    targets = _select_wrt(g, wrt)
    n_in = {w: _static_size(g, n, f"input {w!r}") for w, n in targets.items()}
    n_out = {o: _static_size(g, g.outputs[o], f"output {o!r}") for o in outs}
    forward = sum(n_in.values()) < sum(n_out.values())
    h = g.copy()
    if forward:  # a column of every block per input element: t = that basis vector
        base = jvp(g, of=outs, wrt=list(targets))
        seeds = {w: (base.input_ids()[tangent_name(w)], targets[w], n_in[w]) for w in targets}
        read = lambda w: [((o, w), base.outputs[tangent_name(o)], (n_out[o], 1)) for o in outs]
    else:  # a row of every block per output element: the cotangent = that basis vector
        base, names = _linear_in(g, outs, targets)
        seeds = {o: (base.input_ids()[names[o]], g.outputs[o], n_out[o]) for o in outs}
        of = names["of"]
        read = lambda o: [((o, w), base.outputs[grad_name(of, w)], (1, n_in[w])) for w in targets]
    parts = _basis_passes(h, g, base, seeds, read)
    blocks: dict[str, int] = {}
    for o in outs:
        for w in targets:
            got = parts[(o, w)]
            joined = got[0] if len(got) == 1 else api.concat(got, axis=1 if forward else 0)
            shape = (*g.nx.nodes[g.outputs[o]]["shape"], *g.nx.nodes[targets[w]]["shape"])
            blocks[grad_name(o, w)] = api.reshape(joined, shape).id
    passes = sum(n_in.values()) if forward else sum(n_out.values())
    result = _finish(h, {**g.outputs, **blocks})
    result.nx.graph["jacobian"] = {"mode": "forward" if forward else "reverse", "passes": passes}
    return result


def _basis_passes(
    h: Graph,
    g: Graph,
    base: Graph,
    seeds: dict[str, tuple[int, int, int]],
    read: Callable[[str], list[tuple[tuple[str, str], int, tuple[int, int]]]],
) -> dict[tuple[str, str], list[Value]]:
    """One copy of linear `base` in `h` per element k of each seed s: base's seed inputs
    (`seeds`: name -> (its input in base, the node of g with its shape and dtype, its size))
    bound to constants, the k-th basis vector for s and zero for the others. Each copy's
    outputs `read(s)` -> (key, output in base, shape) are reshaped and listed under key, in
    order of k."""
    got: dict[tuple[str, str], list[Value]] = {}
    for s, (_, _, size) in seeds.items():
        for k in range(size):
            bind = {}
            for t, (seed, node, n) in seeds.items():
                e = np.zeros(n)
                if t == s:
                    e[k] = 1.0
                a = g.nx.nodes[node]
                bind[seed] = h.const(e.reshape(a["shape"]), a["dtype"]).id
            for key, out, shape in read(s):
                value = Value(h, _instantiate(h, base, out, bind))
                got.setdefault(key, []).append(api.reshape(value, shape))
    return got


def hessian(g: Graph, of: str, wrt: str | Iterable[str] | None = None) -> Graph:
    """A new graph with the outputs of `g` plus each block `grad_name(grad_name(of, u), w)` of
    the Hessian of `of` (shape u.shape + w.shape) for u, w in `wrt` (default: the params): the
    Jacobian of the gradient, so meant for small parameter sets (one pass per element)."""
    g = as_graph(g)
    targets = _select_wrt(g, wrt)
    d = grad(g, of=of, wrt=list(targets))
    return jacobian(d, of=[grad_name(of, w) for w in targets], wrt=list(targets))
