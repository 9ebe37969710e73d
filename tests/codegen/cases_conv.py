"""Compiled-versus-interpreter models for conv2d, its gradient ops and pooling
(merged into cases.MODELS).

Pooling is over H and W only, so a batch N of 0 is fine for every op here: the outputs and
gradients are then empty, and a weight's gradient is zero. Inputs of max pooling whose
argmax decides where gradients go are data, not params (they get no gradient); ties and
special values (NaN, infinities) there are checked against NumPy's max too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import graphc as gc
from graphc.ir.graph import Value
from graphc.ops.conv import conv2d_grad_input, conv2d_grad_weight
from graphc.ops.pool import avg_pool2d_grad, max_pool2d_gather, max_pool2d_grad
from tests.codegen.cases import In, Model, fixed
from tests.domains import distinct, small_ints

NAN, INF = math.nan, math.inf

# (label, x shape, w shape, conv2d keywords): each param alone and together, non-square
# kernels, depthwise; x is a param, so every conv also runs conv2d_grad_input and _weight.
CONV: list[tuple[str, tuple, tuple, dict[str, Any]]] = [
    ("3x3", ("N", 3, 6, 6), (4, 3, 3, 3), {}),
    ("stride=2", ("N", 2, 7, 6), (3, 2, 2, 3), {"stride": 2}),
    ("padding=(1,2)", ("N", 2, 5, 4), (2, 2, 3, 3), {"padding": (1, 2)}),
    ("dilation=2", ("N", 1, 7, 7), (2, 1, 3, 2), {"dilation": 2}),
    ("groups=2", ("N", 4, 5, 5), (6, 2, 3, 3), {"groups": 2, "padding": 1}),
    ("s,p,d", ("N", 3, 8, 7), (5, 3, 3, 2), {"stride": (2, 3), "padding": (2, 1),
                                              "dilation": (1, 2)}),
    ("depthwise", ("N", 3, 6, 5), (3, 1, 3, 3), {"groups": 3, "stride": (1, 2), "padding": 1}),
    ("1x1", ("N", 5, 3, 4), (6, 5, 1, 1), {}),
    ("4x4,stride", ("N", 4, 7, 7), (4, 4, 3, 2), {"stride": (1, 2), "padding": 1}),  # 4 at once
    ("wide", (2, 2, 3, 70), (5, 2, 2, 3), {"padding": (0, 1)}),  # a row longer than a block
    # im2col tiles and BLAS (graphc/ops/conv.py: tiling): 36 and 576 taps (then in channel chunks)
    ("blas", ("N", 4, 6, 5), (16, 4, 3, 3), {"padding": 1}),
    ("blas,s,p,d,g", ("N", 8, 7, 8), (32, 4, 3, 3), {"stride": (2, 1), "padding": (1, 2),
                                                      "dilation": (1, 2), "groups": 2}),
    ("blas,chunks", ("N", 64, 4, 5), (16, 64, 3, 3), {"padding": 1, "stride": (1, 2)}),
]  # fmt: skip
# (label, x shape, pooling keywords)
POOL: list[tuple[str, tuple, dict[str, Any]]] = [
    ("2x2", ("N", 2, 6, 6), {"kernel": 2}),
    ("overlap", ("N", 2, 7, 6), {"kernel": (3, 2), "stride": 1}),
    ("overlap,padding", ("N", 3, 5, 5), {"kernel": 3, "stride": 2, "padding": 1}),
    ("nonsquare", ("N", 2, 6, 7), {"kernel": (2, 3), "stride": (2, 1), "padding": (1, 1)}),
    ("ragged", (2, 1, 7, 7), {"kernel": 3, "stride": 2}),
    ("wide", (1, 2, 4, 140), {"kernel": 2, "stride": 1}),  # more windows in a row than a block
]
# Planes of NaN, infinities and ties for max pooling with 2x2 windows, stride 1.
SPECIAL = fixed(
    [
        [[NAN, 1, 2, NAN], [0, NAN, 2, 2], [-INF, -INF, 5, 2], [-INF, -INF, -INF, 1]],
        [[INF, INF, 1, 1], [INF, 3, 1, 1], [-INF, 0, 0, -0.0], [-INF, -INF, 0, 0]],
    ]
)


def _geometry(x: tuple, w: tuple, kw: dict) -> tuple[tuple, tuple]:
    """(conv2d's output shape, x's spatial size) for the keywords `kw`."""

    def pair(v: Any) -> tuple:
        return (v, v) if isinstance(v, int) else tuple(v)

    s, p, d = (pair(kw.get(k, dflt)) for k, dflt in (("stride", 1), ("padding", 0),
                                                       ("dilation", 1)))  # fmt: skip
    out = [(x[2 + a] + 2 * p[a] - d[a] * (w[2 + a] - 1) - 1) // s[a] + 1 for a in (0, 1)]
    return (x[0], w[0], *out), x[2:]


def _pooled(x: tuple, kw: dict) -> tuple:
    k = kw["kernel"] if isinstance(kw["kernel"], tuple) else (kw["kernel"],) * 2
    s = kw.get("stride", k)
    s = s if isinstance(s, tuple) else (s, s)
    p = kw.get("padding", 0)
    p = p if isinstance(p, tuple) else (p, p)
    return (*x[:2], *[(x[2 + a] + 2 * p[a] - k[a]) // s[a] + 1 for a in (0, 1)])


def public(kw: dict) -> dict:
    """Pooling keywords as the public functions take them (PyTorch's kernel_size)."""
    return {("kernel_size" if k == "kernel" else k): v for k, v in kw.items()}


def add_conv(m: Model, table: list[tuple[str, tuple, tuple, dict]]) -> None:
    for label, xs, ws, kw in table:
        ys, size = _geometry(xs, ws, kw)
        m.case(
            f"conv2d[{label}]", "conv2d", lambda x, w, kw=kw: gc.conv2d(x, w, **kw), In(xs), In(ws)
        )
        m.case(
            f"conv2d_grad_input[{label}]",
            "conv2d_grad_input",
            lambda ct, w, kw=kw, s=size: conv2d_grad_input(ct, w, s, **kw),
            In(ys),
            In(ws),
        )
        m.case(
            f"conv2d_grad_weight[{label}]",
            "conv2d_grad_weight",
            lambda x, ct, kw=kw, k=ws[2:]: conv2d_grad_weight(x, ct, k, **kw),
            In(xs),
            In(ys),
        )


def add_pool(m: Model, table: list[tuple[str, tuple, dict]], ties: bool = True) -> None:
    for label, xs, kw in table:
        ys = _pooled(xs, kw)
        m.case(
            f"max_pool2d[{label}]",
            "max_pool2d",
            lambda x, kw=kw: gc.max_pool2d(x, **public(kw)),
            In(xs, distinct),
        )
        m.case(
            f"avg_pool2d[{label}]",
            "avg_pool2d",
            lambda x, kw=kw: gc.avg_pool2d(x, **public(kw)),
            In(xs),
        )
        m.case(
            f"avg_pool2d_grad[{label}]",
            "avg_pool2d_grad",
            lambda ct, kw=kw, s=xs[2:]: avg_pool2d_grad(ct, s, **kw),
            In(ys),
        )
        for gen, tag in [(distinct, ""), *([(small_ints, ",ties")] if ties else [])]:
            m.case(
                f"max_pool2d_grad[{label}{tag}]",
                "max_pool2d_grad",
                lambda ct, x, kw=kw: max_pool2d_grad(ct, x, **kw),
                In(ys),
                In(xs, gen, grad=False),
            )
            m.case(f"max_pool2d_gather[{label}{tag}]", "max_pool2d_gather",
                   lambda v, x, kw=kw: max_pool2d_gather(v, x, **kw),
                   In(xs), In(xs, gen, grad=False))  # fmt: skip


def _cnn(x: Value, w1: Value, b1: Value, w2: Value) -> Value:
    """conv, bias, ReLU, max pool, depthwise conv, average pool: a small network."""
    h = gc.relu(gc.conv2d(x, w1, padding=1) + gc.reshape(b1, (4, 1, 1)))
    h = gc.max_pool2d(h, 2)
    return gc.avg_pool2d(gc.conv2d(h, w2, groups=4, padding=1), 2, stride=1)


def _np_max_pool_2x2_stride_1(x: np.ndarray) -> np.ndarray:
    """np.max over each 2x2 window (stride 1)."""
    h, w = x.shape[2:]
    win = [x[:, :, i : h - 1 + i, j : w - 1 + j] for i in (0, 1) for j in (0, 1)]
    return np.max(np.stack(win), axis=0)


def add_special(m: Model) -> None:
    """Max pooling over NaN, infinities, signed zeros and ties, against np.max too; the
    gradients routed through it are compared with the interpreter's."""
    x = In((1, 2, 4, 4), SPECIAL, grad=False)
    m.case("max_pool2d[special]", "max_pool2d", lambda x: gc.max_pool2d(x, 2, stride=1), x,
           numpy=_np_max_pool_2x2_stride_1)  # fmt: skip
    m.case(
        "max_pool2d_grad[special]",
        "max_pool2d_grad",
        lambda ct, x: max_pool2d_grad(ct, x, 2, stride=1),
        In((1, 2, 3, 3)),
        x,
    )
    m.case("max_pool2d_gather[special]", "max_pool2d_gather",
           lambda v, x: max_pool2d_gather(v, x, 2, stride=1), In((1, 2, 4, 4)), x)  # fmt: skip


def conv_model(name: str) -> Model:
    """Every conv and pooling op over several geometries, and a small network."""
    m = Model(name)
    add_conv(m, CONV)
    add_pool(m, POOL)
    add_special(m)
    m.case("cnn", "conv2d", _cnn, In(("N", 2, 8, 8)), In((4, 2, 3, 3)), In((4,)),
           In((4, 1, 3, 3)))  # fmt: skip
    return m.finish()


def conv_f32_model(name: str) -> Model:
    """Every op of the family once or twice, for the float32 build."""
    m = Model(name)
    add_conv(m, [CONV[0], CONV[5], CONV[6], CONV[8]])
    add_pool(m, [POOL[1], POOL[3]], ties=False)
    add_special(m)
    return m.finish()


MODELS: dict[str, tuple[Callable[[str], Model], tuple[str, ...]]] = {
    "conv": (conv_model, ("float64",)),
    "conv_f32": (conv_f32_model, ("float32",)),
}
