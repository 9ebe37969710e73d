"""Compiled-versus-interpreter models for the reductions, statistics and scans (min, prod,
argmax, argmin, any, all, var, std, norm, cumsum, cumprod, logcumsumexp, linrec, shift,
cummax, cummin) and for the gathers, scatters, advanced indexing, sorting and einsum, merged
into cases.MODELS; special values (NaN, infinities, ties, zeros) against NumPy too. Int index
inputs are fed as ints (cases_indexing.IntModel).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import graphc as gc
from graphc.ops._build import apply
from graphc.ops.cumulative import linrec, shift
from tests.codegen.cases import NAN, SPECIAL_ROWS, In, Model, fixed
from tests.codegen.cases_indexing import IntModel, ints
from tests.domains import distinct, normal, small_ints

INF = np.inf
K3 = In(("K", 3), distinct)  # K is never 0: extremes and argmax over it have a value
WITH_ZEROS = fixed([[1.5, 0.0, -2.0, 0.5], [0.0, 0.0, 3.0, 1.0], [2.0, -1.0, 0.5, 0.25]])
TIES = fixed([[1.0, 3.0, 3.0, NAN, 2.0], [0.0, -1.0, 0.0, 5.0, 5.0], [2.0, 2.0, 1.0, 0.0, NAN]])
LSE = fixed([[-INF, -INF, 0.0, 1.0], [INF, 1.0, -INF, 2.0], [NAN, 0.0, 1.0, 2.0],
             [-1e300, 1e300, -INF, 0.0]])  # fmt: skip


def add_reductions(m: Model) -> None:
    x = In(("N", 4))
    for label, op, fn, ins in [
        ("min[K,3;1]", "min", lambda v: gc.min(v, 1), (K3,)),
        ("min[2,3,4;(0,2)]", "min", lambda v: gc.min(v, (0, 2), keepdims=True),
         (In((2, 3, 4), distinct),)),
        ("prod[N,4;1]", "prod", lambda v: gc.prod(v, 1), (x,)),
        ("prod[zeros;0]", "prod", lambda v: gc.prod(v, 0), (In((3, 4), WITH_ZEROS),)),
        ("prod[2,3,N;all]", "prod", gc.prod, (In((2, 3, "N")),)),
        ("argmax[K,3;1]", "argmax", lambda v: gc.argmax(v, 1), (K3,)),
        ("argmin[K,3]", "argmin", gc.argmin, (K3,)),
        ("any[N,4;0]", "any", lambda v: gc.any(v > 0.5, 0), (x,)),
        ("all[N,4;1]", "all", lambda v: gc.all(v, 1, keepdims=True),
         (In(("N", 4), small_ints, grad=False),)),
        ("var[N,4;1]", "var", lambda v: gc.var(v, 1), (x,)),
        ("var[N,4;0,c=0]", "var", lambda v: gc.var(v, 0, correction=0), (x,)),
        ("std[N,4;all]", "std", gc.std, (x,)),
        ("norm[N,4;1]", "norm", lambda v: gc.norm(v, axis=1), (x,)),
        ("norm[N,4;p=3]", "norm", lambda v: gc.norm(v, 3), (x,)),
        ("norm[N,4;p=1.5,0]", "norm", lambda v: gc.norm(v, 1.5, axis=0), (x,)),
    ]:  # fmt: skip
        m.case(label, op, fn, *ins)


def add_scans(m: Model) -> None:
    x = In(("N", 4))
    for label, op, fn, ins in [
        ("cumsum[N,4;1]", "cumsum", lambda v: gc.cumsum(v, 1), (x,)),
        ("cumsum[N,4;0,rev]", "cumsum", lambda v: gc.cumsum(v, 0, reverse=True), (x,)),
        ("cumprod[N,4;1]", "cumprod", lambda v: gc.cumprod(v, 1), (x,)),
        ("cumprod[zeros;1,rev]", "cumprod", lambda v: gc.cumprod(v, 1, reverse=True),
         (In((3, 4), WITH_ZEROS),)),
        ("logcumsumexp[N,4;1]", "logcumsumexp", lambda v: gc.logcumsumexp(v, 1), (x,)),
        ("logcumsumexp[2,N;1,rev]", "logcumsumexp", lambda v: gc.logcumsumexp(v, 1, True),
         (In((2, "N")),)),
        ("linrec[N,4;1]", "linrec", lambda a, b: linrec(a, b, 1), (In(("N", 4), normal(0.5)), x)),
        ("shift[N,4;1,2]", "shift", lambda v: shift(v, 1, 2, 0.5), (x,)),
        ("shift[N,4;0,-1]", "shift", lambda v: shift(v, 0, -1), (x,)),
        ("cummax[N,4;1]", "cumarg", lambda v: gc.cummax(v, 1)[0], (In(("N", 4), distinct),)),
        ("cummin[N,4;0]", "cumarg", lambda v: gc.cummin(v, 0)[0], (In(("N", 4), distinct),)),
    ]:  # fmt: skip
        m.case(label, op, fn, *ins)


def add_reduction_specials(m: Model) -> None:
    """NaN, infinities, ties, zeros: against NumPy's own functions too."""
    ties = In((3, 5), TIES, grad=False)
    rows = In((4, 4), SPECIAL_ROWS, grad=False)
    lse = In((4, 4), LSE, grad=False)
    for label, op, fn, ins, ref in [
        ("min[special]", "min", lambda v: gc.min(v, 1), (rows,), lambda v: np.min(v, 1)),
        ("prod[special]", "prod", lambda v: gc.prod(v, 1), (rows,), lambda v: np.prod(v, 1)),
        ("argmax[special]", "argmax", lambda v: gc.argmax(v, 1), (ties,),
         lambda v: np.argmax(v, 1)),
        ("argmin[special]", "argmin", lambda v: gc.argmin(v, 1), (rows,),
         lambda v: np.argmin(v, 1)),
        ("any[special]", "any", lambda v: gc.any(v, 1), (rows,), lambda v: np.any(v, 1)),
        ("cumsum[special]", "cumsum", lambda v: gc.cumsum(v, 1), (rows,),
         lambda v: np.cumsum(v, 1)),
        ("logcumsumexp[special]", "logcumsumexp", lambda v: gc.logcumsumexp(v, 1), (lse,),
         lambda v: np.logaddexp.accumulate(v, 1)),
        ("cummax[special]", "cumarg", lambda v: gc.cummax(v, 1)[1], (ties,), None),
        ("cummin[special]", "cumarg", lambda v: gc.cummin(v, 1)[1], (ties,), None),
        ("var[special]", "var", lambda v: gc.var(v, 1), (rows,), lambda v: np.var(v, 1, ddof=1)),
        ("norm[special]", "norm", lambda v: gc.norm(v, axis=1), (rows,),
         lambda v: np.sqrt(np.sum(v * v, 1))),
    ]:  # fmt: skip
        m.case(label, op, fn, *ins, numpy=ref)


def reductions_model(name: str) -> Model:
    m = Model(name)
    add_reductions(m)
    add_scans(m)
    add_reduction_specials(m)
    return m.finish()


def reductions_f32_model(name: str) -> Model:
    m = Model(name)
    add_reductions(m)
    add_scans(m)
    return m.finish()


# ---- gathers, scatters, indexing, sorting, einsum ------------------------------------------------
ROW = ints(-3, 3)  # valid for an axis of 3


def add_gathers(m: Model) -> None:
    x = In(("N", 3))
    i = In(("N", 3), ROW, False, "int64")
    j = In((2,), ints(-3, 3), False, "int32")
    for label, op, fn, ins in [
        ("gather[N,3;1]", "gather", lambda v, k: gc.gather(v, 1, k), (x, i)),
        ("gather[K,3;0,const]", "gather",
         lambda v: gc.gather(v, 0, np.array([[0, 0, 0]])), (In(("K", 3)),)),
        ("scatter_add[3,3;1]", "scatter_add", lambda v, k, s: gc.scatter_add(v, 1, k, s),
         (In(("N", 3)), i, In(("N", 3)))),
        ("scatter[4,3;1,const]", "scatter",
         lambda v, s: gc.scatter(v, 1, np.array([[2, 0], [1, 2], [0, 1], [1, 0]]), s),
         (In((4, 3)), In((4, 2)))),
        ("x[j]", "take", lambda v, k: v[:, k], (x, j)),
        ("x[i,j]", "index", lambda v, k: v[k, gc.cast(k, "int64") + 1], (In((3, 4)), j)),
        ("x[:,i,j]", "index", lambda v, k: v[:, k, np.array([1, 0])], (In(("N", 3, 2)), j)),
        ("index_grad[3,2]", "index_grad",
         lambda c, k: apply("index_grad", c, k, c.graph.const(np.array([1, 0]), "int64"),
                            shape=(3, 2), axis=0), (In((2,)), j)),
        ("index_select", "take", lambda v: gc.index_select(v, 1, [2, 0, 2]), (x,)),
        ("masked_fill", "where", lambda v: gc.masked_fill(v, v > 0.0, 0.5), (x,)),
        ("sort[N,3;1]", "argsort", lambda v: gc.sort(v, 1)[0], (In(("N", 3), distinct),)),
        ("sort[K,3;0,desc]", "argsort", lambda v: gc.sort(v, 0, descending=True)[0],
         (In(("K", 3), distinct),)),
        ("topk[N,5;2]", "argsort", lambda v: gc.topk(v, 2)[0], (In(("N", 5), distinct),)),
        ("einsum[bij,bjk]", "matmul", lambda a, b: gc.einsum("bij,bjk->bik", a, b),
         (In(("N", 2, 3)), In(("N", 3, 2)))),
        ("einsum[ii,i]", "index", lambda a, b: gc.einsum("ii,i->i", a, b),
         (In((3, 3)), In((3,)))),
    ]:  # fmt: skip
        m.case(label, op, fn, *ins)


def add_gather_specials(m: Model) -> None:
    ties = In((3, 5), TIES, grad=False)
    m.case("argsort[special]", "argsort", lambda v: gc.argsort(v, 1), ties,
           numpy=lambda v: np.argsort(v, 1, kind="stable"))  # fmt: skip
    m.case("argsort[special,desc]", "argsort", lambda v: gc.argsort(v, 1, descending=True), ties)
    m.case("argsort[int8]", "argsort", lambda v: gc.argsort(v, 0),
           In((6,), fixed([3, -128, 127, 3, 0, -1]), False, "int8"),
           numpy=lambda v: np.argsort(v, kind="stable"))  # fmt: skip


def gathers_model(name: str) -> Model:
    m = IntModel(name)
    add_gathers(m)
    add_gather_specials(m)
    return m.finish()


def gathers_f32_model(name: str) -> Model:
    m = IntModel(name)
    add_gathers(m)
    return m.finish()


MODELS: dict[str, tuple[Callable[[str], Model], tuple[str, ...]]] = {
    "reductions": (reductions_model, ("float64",)),
    "reductions_f32": (reductions_f32_model, ("float32",)),
    "gathers": (gathers_model, ("float64",)),
    "gathers_f32": (gathers_f32_model, ("float32",)),
}
