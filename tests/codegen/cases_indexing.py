"""Compiled-versus-interpreter models for slicing, concat, take, one_hot, layer_norm, gelu,
erf, erfc and logsumexp (merged into cases.MODELS).

Int inputs (indices, labels) are fed as ints: `IntModel.feed` keeps their dtype, where
`Model.feed` would make every non-bool input a float. Their domains give indices valid at every
size in cases.SIZES: `K` is at least 1, so -1 and 0 index any axis of size K.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping

import numpy as np
import scipy.special

import graphc as gc
from graphc.ir.graph import Value
from graphc.ir.shapes import INT_DTYPES, bind_shape
from graphc.ops.indexing import take_grad
from tests.codegen.cases import NAN, SPECIAL_ROWS, In, Model, fixed
from tests.domains import Gen, normal


class IntModel(Model):
    def feed(self, sizes: Mapping[str, int], dtype: str = "float64") -> dict[str, np.ndarray]:
        """As Model.feed, with int inputs kept ints."""
        rng = np.random.default_rng(zlib.crc32(f"{self.name}{sorted(sizes.items())}".encode()))
        out = {}
        for name, spec in self.specs.items():
            arr = spec.gen(rng, bind_shape(spec.shape, sizes))
            keep = spec.dtype == "bool" or spec.dtype in INT_DTYPES
            out[name] = np.asarray(arr, dtype=spec.dtype if keep else dtype)
        return out


def ints(lo: int, hi: int) -> Gen:
    return lambda rng, shape: rng.integers(lo, hi, shape)


TOKENS = ints(-7, 7)  # rows of a table of 7, negative ones counting from the end
CLASSES = ints(0, 4)
ROW = ints(-1, 1)  # valid for an axis of any size >= 1
WIDE = normal(3.0)
INF = math.inf
SPECIAL = fixed([NAN, INF, -INF, 0.0, -0.0, 40.0, -40.0, 1e-300, -6.0, 0.5])
TABLE = In((7, 4))
TOK = In(("N", 3), TOKENS, False, "int64")


def _slice_grad(c: Value, shape: tuple, starts: tuple, stops: tuple, steps: tuple) -> Value:
    return c.graph.add(
        "slice_grad", [c], {"starts": starts, "stops": stops, "steps": steps, "shape": shape}
    )


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * scipy.special.erfc(-x / math.sqrt(2.0))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def add_take(m: Model, full: bool) -> None:
    m.case("take[E|tokens]", "take", gc.take, TABLE, TOK)
    m.case("take[N,5|i32 2,2;axis=1]", "take", lambda x, i: gc.take(x, i, axis=1), In(("N", 5)),
           In((2, 2), ints(-5, 5), False, "int32"))  # fmt: skip
    m.case("take_grad[N,3,4|tokens]", "take_grad", lambda c, t: take_grad(c, t, (7, 4)),
           In(("N", 3, 4)), TOK)  # fmt: skip
    if not full:
        return
    m.case("take[K,3|N]", "take", gc.take, In(("K", 3)), In(("N",), ROW, False, "int64"))
    m.case("take[3,N|const]", "take", lambda x: gc.take(x, [2, 0, -1, 2]), In((3, "N")))
    m.case("take[E|tokens[:,1:]]", "take", lambda E, t: gc.take(E, t[:, 1:]), TABLE, TOK)
    m.case("take[E|concat(i64,i32)]", "concat",
           lambda E, t, u: gc.take(E, gc.concat([t, u], 1)), TABLE, TOK,
           In(("N", 2), TOKENS, False, "int32"))  # fmt: skip
    m.case("take[E,0-d]", "take", gc.take, TABLE, In((), TOKENS, False, "int64"))
    m.case("cast[tokens]*x", "cast", lambda t, x: gc.cast(t, "float64") * x, TOK, In(("N", 3)))
    m.case("take[E|tokens].T", "take", lambda E, t: gc.take(E, t.T), TABLE, TOK)


def add_one_hot(m: Model, full: bool) -> None:
    labels = In(("N",), CLASSES, False, "int64")
    m.case("one_hot[labels]*x", "one_hot", lambda t, x: gc.one_hot(t, 4) * x, labels,
           In(("N", 4)))  # fmt: skip
    m.case("cross_entropy[labels]", "one_hot", lambda z, t: gc.softmax_cross_entropy(z, t),
           In(("N", 4), WIDE), labels)  # fmt: skip
    if full:
        m.case("one_hot[bool]", "one_hot", lambda t: gc.one_hot(t, 4, dtype="bool"),
               In((2, "N"), CLASSES, False, "int32"),
               numpy=lambda t: t[..., None] == np.arange(4))  # fmt: skip


SLICES: list[tuple[str, Callable[[Value], Value], tuple]] = [
    ("[:,1:3]", lambda x: x[:, 1:3], ("N", 4)),
    ("[::-1,::2]", lambda x: x[::-1, ::2], (3, 5)),
    ("[:,-1]", lambda x: x[:, -1], ("N", 3, 2)),
    ("[2]", lambda x: x[2], (4, "N")),
    ("[None,...,1:]", lambda x: x[None, ..., 1:], ("N", 3)),
    ("[:,3:1]", lambda x: x[:, 3:1], ("N", 4)),
    ("[-2:,::-2,1]", lambda x: x[-2:, ::-2, 1], (3, 5, 2)),
]


def add_slices(m: Model, slices: list) -> None:
    for label, fn, s in slices:
        m.case(f"slice{label}", "slice", fn, In(s))
    m.case("slice_grad[N,5;(0,1,2)]", "slice_grad",
           lambda c: _slice_grad(c, ("N", 5), (0, 1), ("N", 5), (1, 2)), In(("N", 2)))  # fmt: skip


def add_concat(m: Model, full: bool) -> None:
    m.case("concat[N,2|N,3|N,1;1]", "concat", lambda *xs: gc.concat(xs, 1), In(("N", 2)),
           In(("N", 3)), In(("N", 1)))  # fmt: skip
    if full:
        m.case("concat[2,N|1,N;0]", "concat", lambda x, y: gc.concat([x, y]), In((2, "N")),
               In((1, "N")))  # fmt: skip
        m.case("concat[x,tanh(x)]", "concat", lambda x: gc.concat([x, gc.tanh(x)], -1),
               In(("N", 3)))  # fmt: skip


def add_norms(m: Model, full: bool) -> None:
    m.case("layer_norm[N,5]", "layer_norm", gc.layer_norm, In(("N", 5), WIDE))
    m.case("logsumexp[N,4;axis=1]", "logsumexp", lambda x: gc.logsumexp(x, 1), In(("N", 4)))
    m.case("erf[N,3]", "erf", gc.erf, In(("N", 3)))
    m.case("erfc[N,3]", "erfc", gc.erfc, In(("N", 3), WIDE))
    m.case("gelu[N,3]", "gelu", gc.gelu, In(("N", 3), WIDE))
    m.case("gelu[N,3;tanh]", "gelu", lambda x: gc.gelu(x, "tanh"), In(("N", 3), WIDE))
    if not full:
        return
    m.case("layer_norm[2,N,3;axis=1]", "layer_norm", lambda x: gc.layer_norm(x, 1),
           In((2, "N", 3)))  # fmt: skip
    m.case("layer_norm[K,4;eps=0.5]", "layer_norm", lambda x: gc.layer_norm(x, eps=0.5),
           In(("K", 4)))  # fmt: skip
    m.case("layer_norm[4,1]", "layer_norm", gc.layer_norm, In((4, 1)))
    m.case("logsumexp[2,3,4;axis=(0,2)]", "logsumexp", lambda x: gc.logsumexp(x, (0, 2)),
           In((2, 3, 4)))  # fmt: skip
    m.case("logsumexp[N,3;axis=None]", "logsumexp", gc.logsumexp, In(("N", 3)))
    m.case("logsumexp[2,N,3;axis=1,keepdims]", "logsumexp",
           lambda x: gc.logsumexp(x, 1, keepdims=True), In((2, "N", 3)))  # fmt: skip
    m.case("logsumexp[2,3;huge]", "logsumexp", lambda x: gc.logsumexp(x, 1),
           In((2, 3), normal(300.0)))  # fmt: skip
    m.case("logsumexp[special]", "logsumexp", lambda x: gc.logsumexp(x, 1),
           In((4, 4), SPECIAL_ROWS, grad=False),
           numpy=lambda x: scipy.special.logsumexp(x, 1))  # fmt: skip
    for label, op, fn, ref in [
        ("erf", "erf", gc.erf, scipy.special.erf),
        ("erfc", "erfc", gc.erfc, scipy.special.erfc),
        ("gelu", "gelu", gc.gelu, _gelu),
        ("gelu;tanh", "gelu", lambda x: gc.gelu(x, "tanh"), _gelu_tanh),
    ]:
        m.case(f"{label}[special]", op, fn, In((10,), SPECIAL, grad=False), numpy=ref)


def indexing_model(name: str) -> Model:
    """take (from int inputs, slices and concats of them, constants), one_hot, cross-entropy
    with class labels, slices, concat; int values as outputs."""
    m = IntModel(name)
    add_take(m, full=True)
    add_one_hot(m, full=True)
    add_slices(m, SLICES)
    add_concat(m, full=True)
    t = m.input(TOK)
    m.output("tokens[:,::-2]", t[:, ::-2], weighted=False)
    m.output("concat(tokens,tokens;1)", gc.concat([t, t], 1), weighted=False)
    return m.finish()


def norms_model(name: str) -> Model:
    """layer_norm, logsumexp, erf, erfc and gelu, with special values checked against NumPy."""
    m = IntModel(name)
    add_norms(m, full=True)
    return m.finish()


def indexing_f32_model(name: str) -> Model:
    """Every op of the family once, for the float32 build."""
    m = IntModel(name)
    add_take(m, full=False)
    add_one_hot(m, full=False)
    add_slices(m, SLICES[:3])
    add_concat(m, full=False)
    add_norms(m, full=False)
    return m.finish()


MODELS: dict[str, tuple[Callable[[str], Model], tuple[str, ...]]] = {
    "indexing": (indexing_model, ("float64",)),
    "norms": (norms_model, ("float64",)),
    "indexing_f32": (indexing_f32_model, ("float32",)),
}
