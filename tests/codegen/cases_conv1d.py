"""Compiled-versus-interpreter models for conv1d and its gradient ops (merged into
cases.MODELS). Convolution is along L only, so a batch N of 0 is fine: the outputs and the
input's gradient are then empty, and a weight's gradient is zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import graphc as gc
from graphc.ops.conv1d import conv1d, conv1d_grad_input, conv1d_grad_weight
from tests.codegen.cases import In, Model

# (label, x shape, w shape, conv1d keywords): each param alone and together, depthwise, a row
# longer than a block, both kinds of kernel; x is a param, so every conv also runs
# conv1d_grad_input and conv1d_grad_weight.
CONV1: list[tuple[str, tuple, tuple, dict[str, Any]]] = [
    ("k3", ("N", 2, 9), (3, 2, 3), {}),
    ("stride", ("N", 2, 11), (5, 2, 2), {"stride": 3}),
    ("padding", ("N", 3, 4), (4, 3, 3), {"padding": 2}),
    ("dilation", ("N", 1, 9), (2, 1, 3), {"dilation": 3}),
    ("s,p,d,g", ("N", 4, 10), (6, 2, 3), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}),
    ("depthwise", ("N", 3, 8), (3, 1, 3), {"groups": 3, "padding": 1, "stride": 2}),
    ("wide", (2, 2, 150), (4, 2, 3), {"padding": 1}),  # a row past a block
    # im2col tiles and BLAS (graphc/ops/conv.py: tiling): 32 and 96 taps
    ("blas", ("N", 8, 12), (16, 8, 4), {"padding": 1}),
    ("blas,s,p,d,g", ("N", 64, 13), (32, 32, 3), {"stride": 2, "padding": 2, "dilation": 2,
                                                   "groups": 2}),
]  # fmt: skip


def _out(xs: tuple, ws: tuple, kw: dict) -> tuple:
    s, p, d = (kw.get(k, dflt) for k, dflt in (("stride", 1), ("padding", 0), ("dilation", 1)))
    return (xs[0], ws[0], (xs[2] + 2 * p - d * (ws[2] - 1) - 1) // s + 1)


def add_conv1d(m: Model, table: list[tuple[str, tuple, tuple, dict]]) -> None:
    for label, xs, ws, kw in table:
        ys = _out(xs, ws, kw)
        m.case(f"conv1d[{label}]", "conv1d", lambda x, w, kw=kw: conv1d(x, w, **kw), In(xs),
               In(ws))  # fmt: skip
        m.case(f"conv1d_grad_input[{label}]", "conv1d_grad_input",
               lambda ct, w, kw=kw, s=xs[2:]: conv1d_grad_input(ct, w, s, **kw), In(ys),
               In(ws))  # fmt: skip
        m.case(f"conv1d_grad_weight[{label}]", "conv1d_grad_weight",
               lambda x, ct, kw=kw, k=ws[2:]: conv1d_grad_weight(x, ct, k, **kw), In(xs),
               In(ys))  # fmt: skip


def _public(m: Model) -> None:
    """The public conv1d with a bias, and conv_transpose1d with every option."""
    m.case("conv1d[public,bias]", "conv1d",
           lambda x, w, b: gc.relu(gc.conv1d(x, w, b, padding=1)),
           In(("N", 2, 7)), In((4, 2, 3)), In((4,)))  # fmt: skip
    m.case("conv_transpose1d[s,p,op,g,d]", "conv1d_grad_input",
           lambda x, w, b: gc.conv_transpose1d(x, w, b, stride=3, padding=1, output_padding=2,
                                               groups=2, dilation=2),
           In(("N", 4, 5)), In((4, 3, 3)), In((6,)))  # fmt: skip


def conv1d_model(name: str) -> Model:
    m = Model(name)
    add_conv1d(m, CONV1)
    _public(m)
    return m.finish()


def conv1d_f32_model(name: str) -> Model:
    m = Model(name)
    # (direct loops only: float32 through BLAS is judged against the largest magnitude, in
    # tests/ops/test_conv1d.py, as conv2d's is in test_conv.py)
    add_conv1d(m, [CONV1[0], CONV1[4], CONV1[5]])
    _public(m)
    return m.finish()


MODELS: dict[str, tuple[Callable[[str], Model], tuple[str, ...]]] = {
    "conv1d": (conv1d_model, ("float64",)),
    "conv1d_f32": (conv1d_f32_model, ("float32",)),
}
