"""Parameter initialisers: the record a layer leaves on each param node, and `init_params`.

A record is the node attribute `init = (scheme, fan_in, fan_out)` on a param leaf: plain
strings and ints, so it survives `Graph.copy`, `grad`, `simplify` and the compiler's copies
(which keep a leaf's attributes) and JSON (which turns the tuple into a list; both are read).

Schemes, for a param of shape `shape`:

- `glorot_uniform`: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), variance 2 / (fan_in +
  fan_out) (Glorot & Bengio 2010): tanh, sigmoid and linear layers, attention projections, the
  input weights of recurrent cells.
- `he_normal`: N(0, 2 / fan_in) (He et al. 2015): ReLU and GELU layers.
- `orthogonal`: a [H, k*H] weight made of k independent random orthogonal H x H blocks (one per
  gate; Saxe et al. 2014), any other 2-d shape semi-orthogonal: recurrent weights.
- `normal`: N(0, 1), as PyTorch's `nn.Embedding`: embedding tables.
- `zeros`: biases. `ones`: the gains of normalisations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np

from graphc.errors import GraphError
from graphc.ir.dag import describe
from graphc.ir.graph import Graph, Value
from graphc.ir.shapes import FLOAT_DTYPES

SCHEMES = ("glorot_uniform", "he_normal", "orthogonal", "normal", "zeros", "ones")
Record = tuple[str, int, int]


def check_scheme(scheme: Any, where: str) -> str:
    """`scheme` if it names an initialiser, else a GraphError saying which ones do."""
    if scheme not in SCHEMES:
        raise GraphError(f"{where}: init {scheme!r} is not one of {', '.join(SCHEMES)}")
    return scheme


def param(
    g: Graph,
    name: str,
    shape: Sequence[int],
    dtype: str,
    init: Record,
    share: bool = False,
) -> Value:
    """A new param of `g` carrying the init record `init`. With `share`, an existing param of
    that name is returned instead, provided its shape, dtype and record agree."""
    check_scheme(init[0], f"param {name!r}")
    init = (init[0], int(init[1]), int(init[2]))
    if share and name in (ids := g.input_ids()):
        n = ids[name]
        a = g.nx.nodes[n]
        have = (a.get("role"), a["shape"], a["dtype"], _record(a))
        if have != ("param", tuple(shape), dtype, init):
            raise GraphError(
                f"{describe(g.nx, n)} cannot be shared as param {name!r} of shape "
                f"{tuple(shape)}, {dtype}, init {init}: it is a {a.get('role')} of shape "
                f"{a['shape']}, {a['dtype']}, init {_record(a)}"
            )
        return Value(g, n)
    v = g.param(name, shape, dtype)
    v.attrs["init"] = init
    return v


def _record(attrs: dict) -> Record | None:
    rec = attrs.get("init")
    if rec is None:
        return None
    if not isinstance(rec, (list, tuple)) or len(rec) != 3:
        raise GraphError(
            f"param {attrs.get('name')!r}: init record {rec!r} is not (scheme, fan_in, fan_out)"
        )
    scheme, fan_in, fan_out = rec
    check_scheme(scheme, f"param {attrs.get('name')!r}")
    return scheme, int(fan_in), int(fan_out)


def init_records(g: Graph | nx.MultiDiGraph) -> dict[str, Record]:
    """Param name -> (scheme, fan_in, fan_out) for every param of `g` that has a record."""
    G = g.nx if isinstance(g, Graph) else g
    out = {}
    for _, a in sorted(G.nodes(data=True), key=lambda na: na[0]):
        if a.get("op") == "input" and a.get("role") == "param" and "init" in a:
            out[a["name"]] = _record(a)
    return out


def param_rng(seed: int, name: str) -> np.random.Generator:
    """The generator for param `name`: seeded by `seed` and the name alone, so adding a layer
    never changes the initial values of the others."""
    digest = hashlib.sha256(name.encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng([int(seed), *words])


def draw(scheme: str, shape: tuple[int, ...], fan_in: int, fan_out: int, rng) -> np.ndarray:
    """A float64 array of `shape` drawn from `scheme` (see the module docstring)."""
    if scheme == "zeros":
        return np.zeros(shape)
    if scheme == "ones":
        return np.ones(shape)
    if scheme == "normal":
        return rng.standard_normal(shape)
    if scheme == "glorot_uniform":
        a = np.sqrt(6.0 / max(fan_in + fan_out, 1))
        return rng.uniform(-a, a, shape)
    if scheme == "he_normal":
        return rng.standard_normal(shape) * np.sqrt(2.0 / max(fan_in, 1))
    if scheme == "orthogonal":
        return _orthogonal(shape, rng)
    raise GraphError(f"unknown init scheme {scheme!r}")


def _haar(rows: int, cols: int, rng) -> np.ndarray:
    """A random rows x cols matrix with orthonormal columns (rows >= cols), uniformly
    distributed: QR of a Gaussian matrix with the signs of R's diagonal moved into Q."""
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def _orthogonal(shape: tuple[int, ...], rng) -> np.ndarray:
    if len(shape) != 2:
        raise GraphError(f"orthogonal init needs a 2-d param, got shape {shape}")
    rows, cols = shape
    if rows and cols % rows == 0:  # k square blocks side by side, one per gate
        return np.concatenate([_haar(rows, rows, rng) for _ in range(cols // rows)], axis=1)
    return _haar(rows, cols, rng) if rows >= cols else _haar(cols, rows, rng).T


def init_params(
    g: Graph | nx.MultiDiGraph, seed: int = 0, dtype: str | None = None, missing: str = "error"
) -> dict[str, np.ndarray]:
    """Initial arrays for every param of `g`, in param order, each of the param's shape and of
    `dtype` (default: the param's own dtype), drawn as the layer that made it recorded.
    Deterministic: the same graph and seed always give the same arrays, whatever other params
    the graph holds. A param without a record (made with `g.param`, not by a gc.nn layer) is
    an error naming it, or with `missing="skip"` left out, for the caller to give."""
    G = g.nx if isinstance(g, Graph) else g
    if dtype is not None and dtype not in FLOAT_DTYPES:
        raise GraphError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GraphError(f"seed must be a non-negative int, got {seed!r}")
    if missing not in ("error", "skip"):
        raise GraphError(f"missing must be 'error' or 'skip', got {missing!r}")
    bare = [describe(G, n) for n, a in sorted(G.nodes(data=True), key=lambda na: na[0])
            if a.get("op") == "input" and a.get("role") == "param" and "init" not in a]  # fmt: skip
    if bare and missing == "error":
        raise GraphError(
            f"init_params: {len(bare)} param{'s' * (len(bare) > 1)} without an initialiser "
            f"(made with g.param, not by a gc.nn layer): {'; '.join(bare)}; give their arrays "
            "yourself, and init_params(g, missing='skip') draws the others"
        )
    out = {}
    for n, a in sorted(G.nodes(data=True), key=lambda na: na[0]):
        if a.get("op") != "input" or a.get("role") != "param" or "init" not in a:
            continue
        scheme, fan_in, fan_out = _record(a)
        shape = tuple(a["shape"])
        if not all(isinstance(d, int) for d in shape):
            raise GraphError(f"{describe(G, n)}: cannot initialise a param of symbolic shape")
        arr = draw(scheme, shape, fan_in, fan_out, param_rng(seed, a["name"]))
        out[a["name"]] = arr.astype(dtype or a["dtype"])
    return out
