"""The checks a generated module makes of the indices it is given (`index_checks`).

Indices that come from int inputs and constants through ops that only move elements (see
ops/indexing.py) are known when a call begins: the runtime checks, before anything runs, that
the elements of the int arguments (and constants) each such step's indices come from are in
range, in one vectorised pass each. When one is not, Python computes the step's indices and
says which one is out of range, if any is (a slice may have dropped the bad element). Indices
the model computes are checked by the kernels that read them (ops/indexing.computed)."""

from __future__ import annotations

from typing import Any

from graphc.codegen.kir import SizeExpr
from graphc.codegen.records import Row
from graphc.errors import ShapeError
from graphc.ir.dag import ancestors, describe
from graphc.ir.shapes import dim_symbols, shape_symbols
from graphc.ops.indexing import computed, constant_index_problem, index_source, index_use


def index_checks(v: Any, inputs: dict[str, int], t: Any) -> tuple[tuple[Row, ...], tuple]:
    """The index checks of a function taking `inputs` (name -> node), as rows (the size the
    indices must be below, 1 when negative ones count from the end, the leaves, then per
    leaf an argument's position or -1 and a constant's least and greatest element; sizes
    numbered by the function's tables `t`) and, per row, (uses, the arguments read) for the
    message. Indices from constants alone with a known bound are checked now."""
    G = v.G
    position = {n: k for k, n in enumerate(inputs.values())}
    bound_symbols = {d for n in inputs.values() for d in shape_symbols(G._node[n]["shape"])}
    groups: dict[tuple, list] = {}  # (leaves, wraps, size) -> the uses it checks
    seen = set()  # take_grad reads the indices its take does
    for n in sorted(G.nodes):
        use = index_use(G, n)
        if use is None or use[:3] in seen:
            continue
        seen.add(use[:3])
        idx, wraps, size, bound = use
        if computed(G, idx):
            continue  # the step checks them itself
        leaves = [u for u in sorted(ancestors(G, [idx])) if G._node[u]["op"] in ("input", "const")]
        args = [u for u in leaves if G._node[u]["op"] == "input"]
        if any(u not in position for u in args) or not (
            isinstance(size, int) or set(dim_symbols(size)) <= bound_symbols
        ):
            continue  # this function does not run the step
        if not args and isinstance(size, int):  # constants (verify checks them too)
            problem = constant_index_problem(G, n)
            if problem:
                raise ShapeError(f"{describe(G, n)}: {problem}")
            continue
        checked = tuple(
            (position[u],) if G._node[u]["op"] == "input"
            else (-1, int(G._node[u]["value"].min()), int(G._node[u]["value"].max()))
            for u in leaves
            if G._node[u]["op"] == "input" or G._node[u]["value"].size
        )  # fmt: skip
        if checked:
            key = (checked, wraps, size)
            names = tuple(G._node[u]["name"] for u in args)
            groups.setdefault(key, []).append((n, bound, index_source(G, idx), names))
    rows, data = [], []
    for (checked, wraps, size), uses in groups.items():
        what = [describe(G, u[0]) for u in uses]
        cells = [c for leaf in checked for c in leaf]
        comment = "".join(c if c.isprintable() else "?" for c in ", ".join(what))
        rows.append(
            Row((t.size(SizeExpr.of([size])), int(wraps), len(checked), *cells), (comment,))
        )
        names = tuple(sorted({a for *_, args in uses for a in args}))
        data.append((tuple(zip(what, (u[1] for u in uses), (u[2] for u in uses), strict=True)),
                     names))  # fmt: skip
    return tuple(rows), tuple(data)
