"""Registry cases for gather, scatter, scatter_add, index and index_grad (advanced indexing),
argsort, and what is built on them (sort, topk, index_select, masked_fill, einsum), merged into
tests/ops/test_registry.py's table. Indices are constants of the graph; the NumPy formulas are
NumPy's own (take_along_axis, fancy indexing, np.sort, np.einsum) or plain loops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import graphc as gc
from graphc.ops._build import apply
from tests.domains import distinct, small_ints

F32 = ("float32",)
I2 = np.array([[0, 2, 1, 0], [2, -1, 0, 1]])  # for an axis of 3: a negative index and repeats
U2 = np.array([[0, 1, 2, 1], [2, 0, 1, 0]])  # unique along axis 0 within each column
ROWS = np.array([2, 0, -1])


def _scatter(x: np.ndarray, idx: np.ndarray, src: np.ndarray, axis: int, add: bool):
    out = x.copy()
    for pos in np.ndindex(idx.shape):
        dst = list(pos)
        dst[axis] = idx[pos] % x.shape[axis]
        if add:
            out[tuple(dst)] += src[pos]
        else:
            out[tuple(dst)] = src[pos]
    return out


def _index_grad(ct: np.ndarray, shape: tuple, key: tuple) -> np.ndarray:
    out = np.zeros(shape, ct.dtype)
    np.add.at(out, key, ct)
    return out


def cases(case: Callable[..., Any]) -> list[Any]:
    """The cases, made with test_registry's `case(op, build, numpy, *shapes, **kw)`."""
    take = np.take_along_axis
    out = [
        case("gather", lambda x: gc.gather(x, 0, I2), lambda x: take(x, I2 % 3, 0), (3, 4),
             label="axis=0"),
        case("gather", lambda x: gc.gather(x, 1, I2[:, :2]), lambda x: take(x[:2], I2[:, :2], 1),
             (3, 3), label="smaller"),
        case("gather", lambda x: gc.gather(x, 0, np.array([[1, 0, 2], [0, 0, 1]])),
             lambda x: take(x, np.array([[1, 0, 2], [0, 0, 1]]), 0), ("N", 3), bind={"N": 3},
             label="symbolic"),
        case("gather", lambda x: gc.gather(x, 0, I2), lambda x: take(x, I2 % 3, 0), (3, 4),
             dtypes=F32, label="f32"),
        case("scatter", lambda x, s: gc.scatter(x, 0, U2, s),
             lambda x, s: _scatter(x, U2, s, 0, False), (3, 4), (2, 4), label="unique"),
        case("scatter", lambda x: gc.scatter(x, 1, np.array([[0], [2]]), 0.5),
             lambda x: _scatter(x, np.array([[0], [2]]), np.full((2, 1), 0.5), 1, False), (2, 3),
             label="number"),
        case("scatter_add", lambda x, s: gc.scatter_add(x, 0, I2, s),
             lambda x, s: _scatter(x, I2, s, 0, True), (3, 4), (2, 4), label="repeats"),
        case("scatter_add", lambda x, s: gc.scatter_add(x, 0, I2, s),
             lambda x, s: _scatter(x, I2, s, 0, True), (3, 4), (2, 4), dtypes=F32 * 2,
             label="f32"),
        # advanced indexing: one array (take), several (index), mixed with slices and ints
        case("index", lambda x: x[ROWS, np.array([1, 0, 3])], lambda x: x[ROWS, [1, 0, 3]],
             (3, 4), label="x[i,j]"),
        case("index", lambda x: x[:, np.array([[0], [2]]), np.array([1, 0])],
             lambda x: x[:, [[0], [2]], [1, 0]], (2, 3, 2), label="x[:,i,j]"),
        case("index", lambda x: x[1:, 0, np.array([2, -1])], lambda x: x[1:, 0, [2, -1]],
             (3, 2, 4), label="x[1:,0,j]"),
        case("index", lambda x: x[np.array([0, 2]), :, np.array([1, 1])],
             lambda x: x[[0, 2], :, [1, 1]], (3, 2, 2), label="apart"),
        case("index", lambda x: x[np.array([0, 1]), np.array([2, 2])],
             lambda x: x[[0, 1], [2, 2]], ("N", 3), bind={"N": 2}, dtypes=F32, label="f32"),
        case("index_grad",
             lambda c: apply("index_grad", c, *_consts(c, ROWS, [1, 0, 3]), shape=(3, 4), axis=0),
             lambda c: _index_grad(c, (3, 4), (ROWS, [1, 0, 3])), (3,)),
        case("take", lambda x: x[np.array([2, 0, 2])], lambda x: x[[2, 0, 2]], (3, 4),
             label="x[i]"),
        case("take", lambda x: gc.index_select(x, 1, [3, 1]), lambda x: x[:, [3, 1]], (3, 4),
             label="index_select"),
        case("where", lambda x: gc.masked_fill(x, x > 0.5, -1.0),
             lambda x: np.where(x > 0.5, -1.0, x), (3, 4), label="masked_fill"),
        # sorting: values through a gather; ties keep their order
        case("argsort", lambda x: gc.argsort(x, 1), lambda x: np.argsort(x, 1, kind="stable"),
             (3, 5), domain=(small_ints,), label="ties"),
        case("argsort", lambda x: gc.argsort(x, 0, descending=True),
             lambda x: np.argsort(-x, 0, kind="stable"), ("N", 2), bind={"N": 4},
             domain=(small_ints,), label="descending"),
        case("sort", lambda x: gc.sort(x, 1)[0], lambda x: np.sort(x, 1), (3, 5),
             domain=(distinct,), composite=True),
        case("sort", lambda x: gc.sort(x, 0, descending=True)[0], lambda x: -np.sort(-x, 0),
             ("N", 3), bind={"N": 3}, domain=(distinct,), composite=True, label="descending"),
        case("topk", lambda x: gc.topk(x, 2)[0], lambda x: -np.sort(-x, -1)[:, :2], (3, 5),
             domain=(distinct,), composite=True),
        case("topk", lambda x: gc.topk(x, 3, axis=0, largest=False)[0],
             lambda x: np.sort(x, 0)[:3], (4, 2), domain=(distinct,), composite=True,
             label="smallest"),
    ]  # fmt: skip
    for spec, shapes in [("ij,jk->ik", [(2, 3), (3, 4)]), ("ii->i", [(3, 3)]),
                         ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]), ("...i,...i", [(2, 3), (3,)]),
                         ("i,j->ij", [(3,), (2,)]), ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 2)]),
                         ("Ni,ij->Nj", [("N", 3), (3, 2)])]:  # fmt: skip
        spec_np = spec.replace("N", "n")
        out.append(case("einsum", lambda *xs, s=spec_np: gc.einsum(s, *xs),
                        lambda *xs, s=spec_np: np.einsum(s, *xs), *shapes, bind={"N": 2},
                        composite=True, label=spec_np))  # fmt: skip
    return out


def _consts(v: gc.Value, *arrays: Any) -> list[gc.Value]:
    return [v.graph.const(np.asarray(a), dtype="int64") for a in arrays]


# (id, make(graph)) pairs the ops must reject with a ShapeError
ILLEGAL: list[tuple[str, Callable[[Any], Any]]] = [
    ("gather-rank", lambda g: gc.gather(g.param("x", shape=(3, 4)), 0, np.array([0, 1]))),
    ("gather-out-of-range", lambda g: gc.gather(g.param("x", shape=(3, 4)), 0, np.full((1, 4), 3))),
    ("gather-float-index",
     lambda g: gc.gather(g.param("x", shape=(3,)), 0, g.param("i", shape=(3,)))),
    ("scatter-src",
     lambda g: gc.scatter(g.param("x", shape=(3, 4)), 0, U2, g.param("s", shape=(2, 3)))),
    ("index-mask", lambda g: g.param("x", shape=(3,))[np.array([True, False, True])]),
    ("index-out-of-range", lambda g: g.param("x", shape=(3, 4))[[0, 3], [1, 1]]),
    ("topk-k", lambda g: gc.topk(g.param("x", shape=(3,)), 4)),
    ("einsum-spec", lambda g: gc.einsum("ij,jk", g.param("x", shape=(2, 3)))),
    ("einsum-sizes", lambda g: gc.einsum("ij,jk", g.param("x", shape=(2, 3)),
                                         g.param("y", shape=(4, 2)))),
]  # fmt: skip
