"""Gradient checking: analytic gradients from `grad` against central finite differences.

The error measure, per element of a gradient, with `a` the analytic and `n` the numerical value:

    error = |a - n| / max(atol, rtol * |n|)

An input passes when its largest error is at most 1, that is `|a - n| <= max(atol, rtol * |n|)`
everywhere: a relative error of at most `rtol`, judged absolutely (against `atol`) for entries so
close to zero that a relative error means nothing. A NaN or infinity in either gradient fails.

Finite differences run in float64 on the inputs, but each evaluation runs at the graph's own
precision: for a float32 graph pass a larger `eps` (about 1e-3) and looser tolerances.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from graphc.errors import GraphError, ShapeError
from graphc.interp import evaluate
from graphc.ir.graph import Graph, as_graph, describe
from graphc.ir.shapes import FLOAT_DTYPES, format_type
from graphc.passes import grad, grad_name, simplify

__all__ = ["GradCheck", "InputCheck", "check_grad", "numerical_grad"]


def _wrt_names(g: Graph, of: str, wrt: str | Iterable[str] | None) -> list[str]:
    """The inputs to differentiate (default: the params), after checking `of` and `wrt`."""
    if of not in g.outputs:
        raise GraphError(f"of={of!r} is not an output of graph {g.name!r}: {list(g.outputs)}")
    node = g.nx.nodes[g.outputs[of]]
    if node["shape"] != ():
        raise ShapeError(
            f"of={of!r} must be a scalar to differentiate, but {describe(g.nx, g.outputs[of])} "
            f"is {format_type(node['shape'], node['dtype'])}"
        )
    inputs = g.input_ids()
    if wrt is None:
        names = list(g.input_ids(role="param"))
        if not names:
            raise GraphError(f"graph {g.name!r} has no params; name the inputs to differentiate")
    else:
        names = [wrt] if isinstance(wrt, str) else list(wrt)
    for name in names:
        if name not in inputs:
            raise GraphError(
                f"wrt {name!r} is not an input of graph {g.name!r}; inputs are {', '.join(inputs)}"
            )
        dtype = g.nx.nodes[inputs[name]]["dtype"]
        if dtype not in FLOAT_DTYPES:
            raise GraphError(f"wrt {name!r} is {dtype}: only float inputs have gradients")
    return names


def numerical_grad(
    g: Graph | nx.MultiDiGraph,
    inputs: Mapping[str, Any],
    of: str,
    wrt: str | Iterable[str] | None = None,
    eps: float = 1e-6,
) -> dict[str, np.ndarray]:
    """Central finite differences of scalar output `of` for each `wrt` input (default: params)."""
    g = as_graph(g)
    names = _wrt_names(g, of, wrt)
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    ids = g.input_ids()
    feed = {k: np.asarray(v) for k, v in inputs.items()}

    def f() -> float:
        return float(evaluate(g, feed, outputs=[of])[of])

    grads: dict[str, np.ndarray] = {}
    for name in names:
        if name not in feed:
            raise GraphError(f"input {name!r} has no value to differentiate at")
        dtype = np.dtype(g.nx.nodes[ids[name]]["dtype"])
        x = np.array(feed[name], dtype=np.float64)  # a private copy, perturbed in place
        flat = x.reshape(-1)
        out = np.zeros(x.shape, dtype=np.float64)
        out_flat = out.reshape(-1)
        feed[name] = x
        for i in range(flat.size):
            x0 = flat[i]
            # The step actually taken once the input is rounded to its declared dtype.
            hi, lo = (float(np.asarray(x0 + s, dtype=dtype)) for s in (eps, -eps))
            if hi == lo:
                raise ValueError(f"eps={eps:g} is below the resolution of {dtype} at {x0:g}")
            flat[i] = hi
            f_hi = f()
            flat[i] = lo
            f_lo = f()
            flat[i] = x0
            out_flat[i] = (f_hi - f_lo) / (hi - lo)
        feed[name] = inputs[name]
        grads[name] = out
    return grads


@dataclass(frozen=True)
class InputCheck:
    """The comparison for one input: largest absolute, relative and normalised error."""

    name: str
    shape: tuple[int, ...]
    max_abs_error: float  # max |a - n|
    max_rel_error: float  # max |a - n| / max(|a|, |n|): 0 where both are 0
    max_error: float  # max |a - n| / max(atol, rtol * |n|): the measure that decides `ok`

    @property
    def ok(self) -> bool:
        """True when every element is within tolerance."""
        return self.max_error <= 1.0


@dataclass(frozen=True)
class GradCheck:
    """The result of `check_grad`: one `InputCheck` per differentiated input."""

    of: str
    rtol: float
    atol: float
    eps: float
    inputs: dict[str, InputCheck]
    analytic: dict[str, np.ndarray]
    numerical: dict[str, np.ndarray]

    @property
    def ok(self) -> bool:
        """True when every input passes."""
        return all(c.ok for c in self.inputs.values())

    @property
    def max_error(self) -> float:
        """The largest normalised error over all inputs (at most 1 when `ok`)."""
        return max((c.max_error for c in self.inputs.values()), default=0.0)

    def __str__(self) -> str:
        head = f"gradient check of {self.of!r} (rtol={self.rtol:g}, atol={self.atol:g}, "
        lines = [head + f"eps={self.eps:g}): {'ok' if self.ok else 'FAILED'}"]
        width = max((len(n) for n in self.inputs), default=0)
        for c in self.inputs.values():
            lines.append(
                f"  {c.name:<{width}}  {'ok  ' if c.ok else 'FAIL'}  abs {c.max_abs_error:.3e}"
                f"  rel {c.max_rel_error:.3e}  error {c.max_error:.3g}  shape {c.shape}"
            )
        return "\n".join(lines)


def _compare(name: str, a: np.ndarray, n: np.ndarray, rtol: float, atol: float) -> InputCheck:
    """Element-wise errors of analytic `a` against numerical `n`, reduced to their maxima."""
    a = np.asarray(a, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if a.shape != n.shape:
        raise ShapeError(f"gradient of {name!r} has shape {a.shape}, the input has {n.shape}")
    if a.size == 0:
        return InputCheck(name, n.shape, 0.0, 0.0, 0.0)
    with np.errstate(all="ignore"):
        diff = np.abs(a - n)
        scale = np.maximum(np.abs(a), np.abs(n))
        rel = np.where(diff == 0, 0.0, diff / scale)
        err = np.where(diff == 0, 0.0, diff / np.maximum(atol, rtol * np.abs(n)))
    bad = ~(np.isfinite(a) & np.isfinite(n))
    diff, rel, err = (np.where(bad, np.inf, v) for v in (diff, rel, err))
    return InputCheck(name, n.shape, float(diff.max()), float(rel.max()), float(err.max()))


def check_grad(
    g: Graph | nx.MultiDiGraph,
    inputs: Mapping[str, Any],
    of: str,
    wrt: str | Iterable[str] | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    eps: float = 1e-6,
    *,
    allow_unused: bool = False,
) -> GradCheck:
    """Compare `simplify(grad(g))` evaluated at `inputs` with `numerical_grad`; see module doc."""
    g = as_graph(g)
    names = _wrt_names(g, of, wrt)
    dg = simplify(grad(g, of=of, wrt=names, allow_unused=allow_unused))
    res = evaluate(dg, inputs, outputs=[grad_name(of, name) for name in names])
    analytic = {name: res[grad_name(of, name)] for name in names}
    numerical = numerical_grad(g, inputs, of, names, eps)
    checks = {name: _compare(name, analytic[name], numerical[name], rtol, atol) for name in names}
    return GradCheck(of, rtol, atol, eps, checks, analytic, numerical)
