"""Registry cases for slicing, concat, take, one_hot, layer_norm, gelu, erf, erfc, logsumexp
(merged into tests/ops/test_registry.py's table).

Indices here are constants of the graph: the table's inputs are all differentiated or checked
for having no gradient, and an int input has none to check. Int inputs are covered by
tests/ops/test_indexing.py and by the compiled models (tests/codegen/cases_indexing.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.special

import graphc as gc
from graphc.ops.indexing import take_grad
from tests.domains import fine_grid, normal

F32 = ("float32",)
_erf = np.vectorize(math.erf, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))).astype(x.dtype)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _layer_norm(x: np.ndarray, axis: int, eps: float = 1e-5) -> np.ndarray:
    mu = x.mean(axis=axis, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=axis, keepdims=True) + eps)


def _scatter_add(ct: np.ndarray, idx: np.ndarray, shape: tuple, axis: int) -> np.ndarray:
    """Zeros of `shape` with each slice of ct added where take would have read it."""
    out = np.zeros(shape, dtype=ct.dtype)
    for pos in np.ndindex(idx.shape):  # a plain loop: independent of np.add.at
        j = idx[pos] % shape[axis]
        src = (slice(None),) * axis + pos
        dst = (slice(None),) * axis + (j,)
        out[dst] += ct[src]
    return out


def _const(v: gc.Value, values: Any) -> gc.Value:
    return v.graph.const(np.asarray(values), dtype="int64")


IDX = np.array([0, 4, -1, 2, 4])  # with a repeat and a negative index
IDX2 = np.array([[1, -2], [0, 1]])


def _slice_case(case, key, shape, bind=None, label=None, **kw):
    op = kw.pop("op", "slice")
    return case(op, lambda x: x[key], lambda x: x[key], shape, bind=bind or {},
                composite=op != "slice", label=label, **kw)  # fmt: skip


def _box(shape: tuple, key: tuple) -> dict:
    starts, stops, steps = zip(*(k.indices(d) for k, d in zip(key, shape, strict=True)),
                               strict=True)  # fmt: skip
    return {"starts": starts, "stops": stops, "steps": steps}


def _slice_grad(c: gc.Value, shape: tuple, key: tuple) -> gc.Value:
    return c.graph.add("slice_grad", [c], {**_box(shape, key), "shape": shape})


def _slice_grad_np(c: np.ndarray, shape: tuple, key: tuple) -> np.ndarray:
    out = np.zeros(shape, dtype=c.dtype)
    out[key] = c
    return out


def cases(case: Callable[..., Any]) -> list[Any]:
    """The cases, made with test_registry's `case(op, build, numpy, *shapes, **kw)`."""
    out = []
    # take: rows, a middle axis with a 2-d index, a symbolic batch, 0-d and empty indices
    out += [
        case("take", lambda x: gc.take(x, IDX), lambda x: np.take(x, IDX, 0), (5, 3),
             label="rows"),
        case("take", lambda x: gc.take(x, IDX2, axis=1), lambda x: np.take(x, IDX2, 1),
             (2, 3, 4), label="axis=1"),
        case("take", lambda x: gc.take(x, IDX2, axis=-1), lambda x: np.take(x, IDX2, -1),
             ("N", 3), bind={"N": 2}, label="axis=-1"),
        case("take", lambda x: gc.take(x, [0, -1]), lambda x: np.take(x, [0, -1], 0),
             ("N", 3), bind={"N": 2}, label="symbolic"),
        case("take", lambda x: gc.take(x, 2), lambda x: np.take(x, 2, 0), (5, 3), label="0-d"),
        case("take", lambda x: gc.take(x, np.zeros(0, int)), lambda x: x[:0], (5, 3),
             label="empty"),
        case("take", lambda x: gc.take(x, IDX), lambda x: np.take(x, IDX, 0), (5, 3),
             dtypes=F32, label="rows"),
    ]  # fmt: skip
    # take_grad: the scatter-add, repeats added up
    out += [
        case("take_grad", lambda c: take_grad(c, IDX, (5, 3)),
             lambda c: _scatter_add(c, IDX, (5, 3), 0), (5, 3), label="rows"),
        case("take_grad", lambda c: take_grad(c, IDX2, (2, 3, 4), axis=1),
             lambda c: _scatter_add(c, IDX2, (2, 3, 4), 1), (2, 2, 2, 4), label="axis=1"),
        case("take_grad", lambda c: take_grad(c, IDX, (5, 3)),
             lambda c: _scatter_add(c, IDX, (5, 3), 0), (5, 3), dtypes=F32, label="rows"),
    ]  # fmt: skip
    # one_hot: its input gets no gradient (it has no float input at all); as floats, a mask
    out += [
        case("one_hot", lambda x: gc.one_hot(_const(x, [2, 0, 3]), 4, dtype="bool"),
             lambda x: np.arange(4) == np.array([2, 0, 3])[:, None], (3,), label="bool"),
        case("one_hot", lambda x: gc.one_hot(_const(x, IDX2 % 3), 3) * x,
             lambda x: np.eye(3)[IDX2 % 3] * x, (2, 2, 3), no_grad=(), composite=True,
             label="*x"),
        case("one_hot", lambda x: gc.one_hot(_const(x, [1, 0]), 3, dtype="float32") * x,
             lambda x: np.eye(3, dtype=np.float32)[[1, 0]] * x, (2, 3), dtypes=F32,
             no_grad=(), composite=True, label="*x"),
    ]  # fmt: skip
    # slice: NumPy's basic indexing forms
    s = np.s_
    out += [
        _slice_case(case, s[1:3], (5, 4), label="[1:3]"),
        _slice_case(case, s[:, ::2], (3, 5), label="[:,::2]"),
        _slice_case(case, s[::-1], (4, 3), label="[::-1]"),
        _slice_case(case, s[::-2, 1:], (5, 3), label="[::-2,1:]"),
        _slice_case(case, s[3:1], (5, 4), label="[3:1]"),
        _slice_case(case, s[:, 1:4:2], ("N", 5), bind={"N": 2}, label="[:,1:4:2]"),
        _slice_case(case, s[..., -1], ("N", 3, 2), bind={"N": 2}, op="reshape", label="[...,-1]"),
        _slice_case(case, s[:, -1], ("N", 3, 2), bind={"N": 3}, op="reshape", label="[:,-1]"),
        _slice_case(case, s[2], (4, 3), op="reshape", label="[2]"),
        _slice_case(case, s[None, 1:, None], (3, 2), op="reshape", label="[None,1:,None]"),
        _slice_case(case, s[-2:, ::-1], (3, 4), dtypes=F32, label="[-2:,::-1]"),
    ]
    # slice_grad: the cotangent placed into zeros
    for key, shape, ct, dtypes in [
        (s[1:3, :], (5, 4), (2, 4), ()),
        (s[::-2, 1:], (5, 3), (3, 2), ()),
        (s[:, ::2], (3, 5), (3, 3), ()),
        (s[1:3, :], (5, 4), (2, 4), F32),
    ]:
        out.append(case("slice_grad", lambda c, k=key, sh=shape: _slice_grad(c, sh, k),
                        lambda c, k=key, sh=shape: _slice_grad_np(c, sh, k), ct, dtypes=dtypes,
                        label=f"{shape}{key}".replace(" ", "")))  # fmt: skip
    # concat
    cat = lambda axis: (lambda *xs: gc.concat(xs, axis), lambda *xs: np.concatenate(xs, axis))
    out += [
        case("concat", *cat(0), (2, 3), (4, 3)),
        case("concat", *cat(-1), (2, 3), (2, 1), (2, 2)),
        case("concat", *cat(1), ("N", 2), ("N", 3), bind={"N": 2}),
        case("concat", *cat(0), (0, 3), (2, 3)),
        case("concat", lambda x: gc.concat([x, x * 2.0], 1),
             lambda x: np.concatenate([x, x * 2.0], 1), (2, 3), label="x,2x"),
        case("concat", *cat(0), (2, 3), (1, 3), dtypes=("float32", "float64")),
        case("concat", *cat(1), (2, 3), (2, 2), dtypes=F32 * 2),
    ]  # fmt: skip
    # layer_norm
    for shape, axis, bind, eps in [((3, 5), -1, {}, 1e-5), ((2, 3, 4), 1, {}, 1e-5),
                                   (("N", 4), -1, {"N": 2}, 1e-5), ((3, 4), 0, {}, 0.5),
                                   ((3, 1), -1, {}, 1e-5)]:  # fmt: skip
        out.append(case("layer_norm", lambda x, a=axis, e=eps: gc.layer_norm(x, a, e),
                        lambda x, a=axis, e=eps: _layer_norm(x, a, e), shape, bind=bind,
                        label=f"axis={axis},eps={eps}"))  # fmt: skip
    out.append(case("layer_norm", gc.layer_norm, lambda x: _layer_norm(x, -1), (3, 5),
                    dtypes=F32))  # fmt: skip
    # erf and gelu, both forms
    for shape, bind in [((3, 4), {}), ((), {}), (("N", 3), {"N": 2})]:
        out += [
            case("erf", gc.erf, _erf, shape, bind=bind, domain=(normal(1.5),)),
            case("erfc", gc.erfc, _erfc, shape, bind=bind, domain=(normal(1.5),)),
            case("gelu", gc.gelu, _gelu, shape, bind=bind, domain=(normal(2.0),),
                 label="none"),
            case("gelu", lambda x: gc.gelu(x, "tanh"), _gelu_tanh, shape, bind=bind,
                 domain=(normal(2.0),), label="tanh"),
        ]  # fmt: skip
    out += [
        case("erf", gc.erf, lambda x: _erf(x).astype(np.float32), (3, 4), dtypes=F32),
        case("erfc", gc.erfc, lambda x: _erfc(x).astype(np.float32), (3, 4), dtypes=F32),
        case("gelu", gc.gelu, _gelu, (3, 4), dtypes=F32, label="none"),
        case("gelu", lambda x: gc.gelu(x, "tanh"), _gelu_tanh, (3, 4), dtypes=F32,
             label="tanh"),
    ]  # fmt: skip
    # logsumexp: adjacent axes are one op; axes apart are moved together first
    for shape, axis, keep, bind, op in [
        ((3, 4), None, False, {}, "logsumexp"),
        ((3, 4), 1, False, {}, "logsumexp"),
        ((3, 4), 0, True, {}, "logsumexp"),
        ((2, 3, 4), (1, 2), False, {}, "logsumexp"),
        ((2, 3, 4), (0, 2), False, {}, "logsumexp"),
        ((2, 3, 4), (0, 2), True, {}, "reshape"),
        ((3, 4), (), False, {}, "logsumexp"),
        (("N", 3), 1, False, {"N": 2}, "logsumexp"),
        (("N", 3), 0, False, {"N": 0}, "logsumexp"),
    ]:
        label = f"axis={axis}{',keepdims' if keep else ''}".replace(" ", "")
        out.append(case(op, lambda x, a=axis, k=keep: gc.logsumexp(x, a, k),
                        lambda x, a=axis, k=keep: scipy.special.logsumexp(x, a, keepdims=k),
                        shape, bind=bind, composite=op != "logsumexp", label=label))  # fmt: skip
    out += [
        case("logsumexp", lambda x: gc.logsumexp(x, 1), lambda x: scipy.special.logsumexp(x, 1),
             (3, 4), dtypes=F32, label="axis=1"),
        case("logsumexp", lambda x: gc.logsumexp(x, 0),
             lambda x: scipy.special.logsumexp(x, 0), (3, 4), domain=(normal(300.0),),
             label="large"),
    ]  # fmt: skip
    # cross-entropy with class labels (ints) instead of one-hot rows
    labels = np.array([2, 0, 1, 2])
    xent = lambda z: -np.mean(np.take_along_axis(scipy.special.log_softmax(z, -1),
                                                 labels[:, None], -1))  # fmt: skip
    out += [
        case("softmax_cross_entropy",
             lambda z: gc.softmax_cross_entropy(z, _const(z, labels)), xent, (4, 3),
             domain=(normal(2.0),), composite=True, label="class-labels"),
        case("softmax_cross_entropy",
             lambda z: gc.softmax_cross_entropy(z, _const(z, labels)), xent, (4, 3),
             dtypes=F32, domain=(fine_grid,), composite=True, label="class-labels"),
    ]  # fmt: skip
    return out


def _int_input(g: gc.Graph, shape: tuple = (3,)) -> gc.Value:
    return g.input("i", shape=shape, dtype="int64")


# (id, make(graph)) pairs whose shapes the op must reject with a ShapeError
ILLEGAL: list[tuple[str, Callable[[Any], Any]]] = [
    ("take-float-index", lambda g: gc.take(g.param("x", shape=(4, 2)), g.param("i", shape=(3,)))),
    ("take-axis", lambda g: gc.take(g.param("x", shape=(4, 2)), _int_input(g), axis=2)),
    ("take-const-range", lambda g: gc.take(g.param("x", shape=(4, 2)), [0, 4])),
    ("take-const-negative", lambda g: gc.take(g.param("x", shape=(4, 2)), [-5])),
    ("take-int-table", lambda g: gc.take(_int_input(g, (4,)), [0])),
    ("one_hot-float", lambda g: gc.one_hot(g.param("x", shape=(3,)), 4)),
    ("one_hot-const-range", lambda g: gc.one_hot(g.const(np.array([0, 4]), "int64"), 4)),
    ("one_hot-const-negative", lambda g: gc.one_hot(g.const(np.array([-1]), "int64"), 4)),
    ("one_hot-depth", lambda g: gc.one_hot(_int_input(g), -1)),
    ("one_hot-symbolic-depth", lambda g: gc.one_hot(_int_input(g), "N")),
    ("concat-shapes", lambda g: gc.concat([g.param("x", shape=(2, 3)),
                                           g.param("y", shape=(2, 4))], 0)),
    ("concat-rank", lambda g: gc.concat([g.param("x", shape=(2, 3)), g.param("y", shape=(3,))])),
    ("concat-symbolic-axis", lambda g: gc.concat([g.param("x", shape=("N", 3)),
                                                  g.param("y", shape=("N", 3))], 0)),
    ("concat-kinds", lambda g: gc.concat([g.param("x", shape=(3,)), _int_input(g)])),
    ("concat-axis", lambda g: gc.concat([g.param("x", shape=(3,))], 1)),
    ("getitem-range", lambda g: g.param("x", shape=(3, 2))[3]),
    ("getitem-negative", lambda g: g.param("x", shape=(3, 2))[:, -3]),
    ("getitem-too-many", lambda g: g.param("x", shape=(3, 2))[0, 0, 0]),
    ("getitem-two-ellipses", lambda g: g.param("x", shape=(3, 2))[..., 0, ...]),
    ("getitem-step-0", lambda g: g.param("x", shape=(3, 2))[::0]),
    ("getitem-symbolic-int", lambda g: g.param("x", shape=("N", 2))[0]),
    ("getitem-symbolic-bounded", lambda g: g.param("x", shape=("N", 2))[1:]),
    ("getitem-float-array", lambda g: g.param("x", shape=(3, 2))[np.array([0.5, 1.0])]),
    ("getitem-mask", lambda g: g.param("x", shape=(3, 2))[g.param("m", shape=(3, 2)) > 0]),
    ("getitem-list-range", lambda g: g.param("x", shape=(3, 2))[[0, 3]]),
    ("getitem-bool", lambda g: g.param("x", shape=(3, 2))[True]),
    ("layer_norm-axis", lambda g: gc.layer_norm(g.param("x", shape=(3, 2)), axis=2)),
    ("layer_norm-eps", lambda g: gc.layer_norm(g.param("x", shape=(3, 2)), eps=-1.0)),
    ("layer_norm-int", lambda g: gc.layer_norm(_int_input(g))),
    ("logsumexp-axis", lambda g: gc.logsumexp(g.param("x", shape=(3, 2)), axis=2)),
    ("gelu-approximate", lambda g: gc.gelu(g.param("x", shape=(3,)), "fast")),
    ("erf-bool", lambda g: gc.erf(g.param("x", shape=(3,)) > 0)),
    ("erf-int", lambda g: gc.erf(_int_input(g))),
    ("erfc-bool", lambda g: gc.erfc(g.param("x", shape=(3,)) > 0)),
    ("tanh-int", lambda g: gc.tanh(_int_input(g))),
    ("cross_entropy-labels", lambda g: gc.softmax_cross_entropy(g.param("z", shape=(4, 3)),
                                                                _int_input(g, (3,)))),
]  # fmt: skip
