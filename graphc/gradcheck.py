"""Comparing arrays, and checking gradients against central finite differences.

One rule decides whether an array `a` agrees with a reference `b`, for `graphc compile
--check`, `graphc check` and the tests alike:

    max |a - b| <= atol + rtol * max |b|

over the whole array (NaN agrees with NaN, an infinity with the same infinity, nothing else with
either). It judges each array by its own scale, so an entry whose true value is 0 (the gradient
of a bias that cancels out, say) is compared with the array's largest entries, not with itself.
`TOLERANCE` gives the rule's tolerances for results computed in each dtype.

Finite differences run on the float64 version of the model (whatever the model's own dtype),
with a step `h = eps * max(1, |x|)` per element; `check_grad` compares a model's gradients,
computed in its own dtype by the interpreter, with them. A difference quotient carries the
rounding errors of the two evaluations of f divided by 2h, so `check_grad` adds
ROUNDOFF_ULPS * 2^-52 * |f| / eps to its `atol`: a loss of 10^4 cannot be differenced to 1e-8.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import networkx as nx
import numpy as np

from graphc.errors import GraphError, ShapeError
from graphc.interp import evaluate
from graphc.ir.dag import describe
from graphc.ir.graph import Graph, as_graph
from graphc.ir.shapes import FLOAT_DTYPES, format_type
from graphc.passes import grad, grad_name, simplify
from graphc.passes.dtype import with_dtype

__all__ = [
    "Comparison",
    "GradCheck",
    "TOLERANCE",
    "Tolerance",
    "check_grad",
    "compare",
    "numerical_grad",
]


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


# Results computed in a dtype agree with a reference when within these (see the module doc).
TOLERANCE = {"float64": Tolerance(1e-9, 1e-12), "float32": Tolerance(1e-4, 1e-6)}
# Gradients against central finite differences in float64.
FD_TOLERANCE = Tolerance(1e-6, 1e-8)
FD_EPS = 6e-6  # about the cube root of float64's machine epsilon: the best central step
ROUNDOFF_ULPS = 64  # the rounding error of one evaluation of f, in units of |f|'s last place


@dataclass(frozen=True)
class Comparison:
    """How array `name` compares with its reference under the rule of the module doc: the
    largest difference, the reference's largest magnitude (`scale`), and where the worst
    element is, with both values there."""

    name: str
    shape: tuple[int, ...]
    rtol: float
    atol: float
    max_abs_error: float  # max |a - b|; inf where NaNs or infinities disagree
    scale: float  # max |b| over the finite entries
    worst: tuple[int, ...] | None = None  # the index of the largest difference
    got: float = 0.0  # a and b there
    want: float = 0.0

    @property
    def limit(self) -> float:
        return self.atol + self.rtol * self.scale

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= self.limit

    @property
    def ratio(self) -> float:
        """max |a - b| as a multiple of what the rule allows (at most 1 when `ok`)."""
        return self.max_abs_error / self.limit if self.limit > 0 else float(not self.ok) * np.inf

    def __str__(self) -> str:
        rule = f"{self.atol:g} + {self.rtol:g} * {self.scale:.3g}"
        if self.ok:
            return f"{self.name}: ok (max |a-b| {self.max_abs_error:.2e} <= {rule})"
        at = "[" + ", ".join(map(str, self.worst or ())) + "]"
        return (
            f"{self.name}: MISMATCH at {at}: got {self.got!r}, expected {self.want!r} "
            f"(max |a-b| {self.max_abs_error:.2e} > {rule})"
        )


def compare(name: str, got: Any, want: Any, tol: Tolerance) -> Comparison:
    """`got` against the reference `want` (see the module doc)."""
    a = np.asarray(got, dtype=np.float64)
    b = np.asarray(want, dtype=np.float64)
    if a.shape != b.shape:
        raise ShapeError(f"{name}: got shape {a.shape}, the reference has {b.shape}")
    if a.size == 0:
        return Comparison(name, b.shape, tol.rtol, tol.atol, 0.0, 0.0)
    with np.errstate(all="ignore"):
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        diff = np.where(same, 0.0, np.abs(a - b))
    diff = np.where(np.isnan(diff), np.inf, diff)
    finite = np.abs(b[np.isfinite(b)])
    k = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return Comparison(
        name,
        b.shape,
        tol.rtol,
        tol.atol,
        float(diff[k]),
        float(finite.max(initial=0.0)),
        tuple(int(i) for i in k),
        float(a[k]),
        float(b[k]),
    )


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
    eps: float = FD_EPS,
    elements: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Central finite differences of scalar output `of` of the float64 version of `g`, for each
    `wrt` input (default: the params), with a step of `eps * max(1, |x|)` per element.
    `elements` (input -> flat indices) limits the differences to those elements; the others
    are NaN."""
    g = with_dtype(as_graph(g), "float64")
    names = _wrt_names(g, of, wrt)
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    ids = g.input_ids()
    feed = {
        k: np.asarray(v, np.float64) if g.nx.nodes[ids[k]]["dtype"] == "float64" else v
        for k, v in inputs.items()
        if k in ids
    }

    def f() -> float:
        return float(evaluate(g, feed, outputs=[of])[of])

    grads: dict[str, np.ndarray] = {}
    for name in names:
        if name not in feed:
            raise GraphError(f"input {name!r} has no value to differentiate at")
        x = np.array(feed[name], dtype=np.float64)  # a private copy, perturbed in place
        flat = x.reshape(-1)
        out = np.full(x.shape, np.nan if elements is not None else 0.0)
        out_flat = out.reshape(-1)
        feed[name] = x
        which = range(flat.size) if elements is None else elements.get(name, ())
        for i in which:
            x0 = flat[i]
            h = eps * max(1.0, abs(x0))
            hi, lo = x0 + h, x0 - h
            flat[i] = hi
            f_hi = f()
            flat[i] = lo
            f_lo = f()
            flat[i] = x0
            out_flat[i] = (f_hi - f_lo) / (hi - lo)
        feed[name] = np.asarray(inputs[name], np.float64)
        grads[name] = out
    return grads


@dataclass(frozen=True)
class GradCheck:
    """The result of `check_grad`: a `Comparison` per differentiated input, of the analytic
    gradient (at the checked elements) against the finite differences."""

    of: str
    eps: float
    inputs: dict[str, Comparison]
    analytic: dict[str, np.ndarray]
    numerical: dict[str, np.ndarray]  # NaN at elements not checked

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.inputs.values())

    @property
    def max_error(self) -> float:
        """The largest difference as a multiple of what the rule allows (at most 1 when `ok`)."""
        return max((c.ratio for c in self.inputs.values()), default=0.0)

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        lines = [f"gradient check of {self.of!r} against central differences: {verdict}"]
        lines += [f"  {c}" for c in self.inputs.values()]
        return "\n".join(lines)


def check_grad(
    g: Graph | nx.MultiDiGraph,
    inputs: Mapping[str, Any],
    of: str,
    wrt: str | Iterable[str] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    eps: float = FD_EPS,
    *,
    allow_unused: bool = False,
    samples: int | None = None,
    seed: int = 0,
) -> GradCheck:
    """Compare `simplify(grad(g))` evaluated at `inputs` (in `g`'s own dtype) with
    `numerical_grad`. Tolerances default to FD_TOLERANCE, or TOLERANCE of `g`'s dtype when that
    is looser. `samples`: check at most that many elements of each input (drawn with `seed`);
    None checks every element."""
    g = as_graph(g)
    names = _wrt_names(g, of, wrt)
    dtypes = [g.nx.nodes[g.input_ids()[n]]["dtype"] for n in names]
    loosest = max((TOLERANCE[d] for d in dtypes), key=lambda t: t.rtol, default=FD_TOLERANCE)
    tol = Tolerance(
        rtol if rtol is not None else max(FD_TOLERANCE.rtol, loosest.rtol),
        atol if atol is not None else max(FD_TOLERANCE.atol, loosest.atol),
    )
    dg = simplify(grad(g, of=of, wrt=names, allow_unused=allow_unused))
    res = evaluate(dg, inputs, outputs=[of, *(grad_name(of, name) for name in names)])
    analytic = {name: res[grad_name(of, name)] for name in names}
    with np.errstate(all="ignore"):
        noise = ROUNDOFF_ULPS * np.finfo(np.float64).eps * abs(float(res[of])) / eps
    tol = Tolerance(tol.rtol, tol.atol + (noise if np.isfinite(noise) else 0.0))
    elements = None
    if samples is not None:
        rng = np.random.default_rng(seed)
        elements = {}
        for name in names:
            size = int(np.size(inputs[name]))
            elements[name] = (
                np.arange(size) if size <= samples else rng.choice(size, samples, replace=False)
            )
    numerical = numerical_grad(g, inputs, of, names, eps, elements)
    checks = {}
    for name in names:
        a = np.asarray(analytic[name], dtype=np.float64)
        n = numerical[name]
        if elements is not None:
            a, n = a.reshape(-1)[elements[name]], n.reshape(-1)[elements[name]]
        checks[name] = compare(name, a, n, tol)
        if elements is not None and checks[name].worst is not None:  # name the element itself
            k = int(elements[name][checks[name].worst[0]])
            worst = tuple(int(i) for i in np.unravel_index(k, np.shape(analytic[name])))
            checks[name] = replace(checks[name], worst=worst, shape=np.shape(analytic[name]))
    return GradCheck(of, eps, checks, analytic, numerical)
