"""Compiled-versus-interpreter models for the pooling ops of their own (merged into
cases.MODELS): avg_pool and avg_pool_grad with every option on 1 to 3 axes, adaptive_avg_pool
and its gradient op with windows that divide, overlap and grow, and max_unpool from max
pooling's indices and from constant ones. Each op's operand is a param, so each gradient op
also runs as the other's VJP; the batch N may be 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import graphc as gc
from graphc.ops._build import apply
from tests.codegen.cases import In, Model
from tests.domains import distinct
from tests.ops.cases_pool import avg_kw, pooled_shape

# (label, x shape, avg_pool params)
AVG = [
    ("2d[ceil,no-pad]", ("N", 2, 7, 8), avg_kw(2, 3, 2, 1, ceil=True, include_pad=False)),
    ("2d[divisor]", ("N", 2, 5, 6), avg_kw(2, 2, divisor=3)),
    ("2d[plain]", ("N", 3, 6, 5), avg_kw(2, 3, 1, 1)),
    ("1d[ceil,past-padding]", ("N", 3, 6), avg_kw(1, 4, 3, 2, ceil=True)),
    ("1d[no-pad]", ("N", 3, 9), avg_kw(1, 3, 2, 1, include_pad=False)),
    ("3d[s,p,ceil]", ("N", 2, 5, 4, 5), avg_kw(3, 2, (2, 1, 2), 1, ceil=True)),
    ("3d[no-pad,divisor]", ("N", 2, 4, 4, 4),
     avg_kw(3, (2, 3, 2), None, (1, 1, 0), include_pad=False, divisor=-5)),
]  # fmt: skip
# (x shape, output sizes)
ADAPTIVE = [(("N", 2, 7, 8), (3, 5)), (("N", 3, 7), (4,)), (("N", 2, 5, 4, 6), (2, 4, 4)),
            (("N", 1, 3, 4), (6, 1))]  # fmt: skip
PLACES = np.stack([np.random.default_rng(k).permutation(30)[:6] for k in range(4)])


def add_avg(m: Model) -> None:
    for label, xs, kw in AVG:
        m.case(f"avg_pool[{label}]", "avg_pool", lambda x, kw=kw: apply("avg_pool", x, **kw),
               In(xs))  # fmt: skip
        m.case(f"avg_pool_grad[{label}]", "avg_pool_grad",
               lambda ct, kw=kw, s=xs[2:]: apply("avg_pool_grad", ct, size=s, **kw),
               In(pooled_shape(xs, kw)))  # fmt: skip


def add_adaptive(m: Model) -> None:
    for xs, sizes in ADAPTIVE:
        label = ",".join(map(str, sizes))
        m.case(f"adaptive_avg_pool[{label}]", "adaptive_avg_pool",
               lambda x, s=sizes: apply("adaptive_avg_pool", x, sizes=s), In(xs))  # fmt: skip
        m.case(f"adaptive_avg_pool_grad[{label}]", "adaptive_avg_pool_grad",
               lambda ct, s=xs[2:]: apply("adaptive_avg_pool_grad", ct, size=s),
               In((*xs[:2], *sizes)))  # fmt: skip


def add_unpool(m: Model) -> None:
    m.case("max_unpool[3d]", "max_unpool",
           lambda x: gc.max_unpool3d(*gc.max_pool3d(x, 2, return_indices=True), 2),
           In(("N", 2, 4, 4, 6), distinct))  # fmt: skip
    m.case("max_unpool[2d,padding,size]", "max_unpool",
           lambda x: gc.max_unpool2d(*gc.max_pool2d(x, 3, 2, 1, return_indices=True), 3, 2, 1,
                                     output_size=(7, 8)),
           In(("N", 2, 7, 8), distinct))  # fmt: skip
    idx = PLACES.reshape(2, 2, 2, 3)
    m.case("max_unpool[const]", "max_unpool",
           lambda x: apply("max_unpool", x, x.graph.const(idx, "int64"), size=(3, 10)),
           In((2, 2, 2, 3)))  # fmt: skip


def pool_model(name: str) -> Model:
    m = Model(name)
    add_avg(m)
    add_adaptive(m)
    add_unpool(m)
    return m.finish()


MODELS: dict[str, tuple[Callable[[str], Model], tuple[str, ...]]] = {
    "pool": (pool_model, ("float64", "float32")),
}
