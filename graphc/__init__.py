"""graphc: a backpropagation compiler. Build a model as a graph, differentiate it, run it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx
import numpy as np

from graphc import (
    nn,  # layers and initialisers: gc.nn.dense, gc.nn.init_params, ...
    optim,  # optimisers: gc.optim.SGD, gc.optim.Adam
)
from graphc.errors import BuildError, GraphcError, GraphError, InputError, ShapeError
from graphc.interp import evaluate
from graphc.ir import Graph, Value, format_graph, verify
from graphc.ops.api import *  # noqa: F403  (the builder functions: gc.tanh, gc.sum, ...)
from graphc.ops.api import abs, all, any, max, min, pow, round, sum  # noqa: A004  (shadow builtins on purpose)
from graphc.passes import grad, grad_name, simplify


def compile(g, **kwargs):  # noqa: A001  (gc.compile, as the package's verb)
    """Build `g` and its gradient into a native module (see graphc.compiler.compile)."""
    from graphc.compiler import compile as compile_

    return compile_(g, **kwargs)


def draw(g, stage="graph", path=None, **kwargs):
    """Draw `g` ("graph") or its gradient ("grad") as SVG, PNG or DOT (see graphc.viz.drawing)."""
    from graphc.viz.drawing import draw as draw_

    return draw_(g, stage, path, **kwargs)


def load(path):
    """The most recently built module in a model directory such as `build/seed_net`."""
    from graphc.compiler import load as load_

    return load_(path)


__version__ = "0.1.0"


def value_and_grad(
    g: Graph | nx.MultiDiGraph,
    inputs: Mapping[str, Any],
    of: str,
    wrt: str | Iterable[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Interpreter convenience: (outputs of `g`, {wrt name: d(of)/d(wrt)})."""
    dg = simplify(grad(g, of=of, wrt=wrt))
    res = evaluate(dg, inputs)
    names = [k for k in dg.outputs if k.startswith(f"d{of}/d")]
    plain = {k: v for k, v in res.items() if k not in names}
    return plain, {k[len(f"d{of}/d") :]: res[k] for k in names}


__all__ = [
    "BuildError",
    "Graph",
    "compile",
    "draw",
    "load",
    "optim",
    "GraphError",
    "GraphcError",
    "InputError",
    "ShapeError",
    "Value",
    "evaluate",
    "format_graph",
    "grad",
    "grad_name",
    "simplify",
    "value_and_grad",
    "verify",
]
