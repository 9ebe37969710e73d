"""Compiled-versus-interpreter models for conv3d and its gradient ops (merged into
cases.MODELS). Convolution is over D, H and W only, so a batch N of 0 is fine: the outputs and
the input's gradient are then empty, and a weight's gradient is zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import graphc as gc
from graphc.ops.conv3d import conv3d, conv3d_grad_input, conv3d_grad_weight
from tests.codegen.cases import In, Model

# (label, x shape, w shape, conv3d keywords): each param alone and together, non-cubic kernels,
# depthwise, four output channels at once and the rest, both kinds of kernel; x is a param, so
# every conv also runs conv3d_grad_input and conv3d_grad_weight.
CONV3: list[tuple[str, tuple, tuple, dict[str, Any]]] = [
    ("2x2x2", ("N", 2, 4, 4, 3), (3, 2, 2, 2, 2), {}),
    ("stride", ("N", 2, 5, 4, 6), (5, 2, 2, 3, 2), {"stride": (2, 1, 2)}),
    ("padding", ("N", 2, 3, 4, 3), (4, 2, 3, 2, 2), {"padding": (1, 0, 2)}),
    ("dilation", ("N", 1, 5, 4, 5), (2, 1, 2, 2, 2), {"dilation": (2, 1, 2)}),
    ("s,p,d,g", ("N", 4, 5, 4, 5), (6, 2, 2, 3, 2), {"stride": (2, 1, 2), "padding": (1, 0, 1),
                                                      "dilation": (2, 1, 1), "groups": 2}),
    ("depthwise", ("N", 3, 3, 4, 5), (3, 1, 3, 3, 3), {"groups": 3, "padding": 1,
                                                        "stride": (1, 1, 2)}),
    ("1x1x1", ("N", 5, 2, 3, 4), (9, 5, 1, 1, 1), {}),
    ("wide", (2, 2, 2, 2, 70), (4, 2, 1, 2, 3), {"padding": (0, 0, 1)}),  # a row past a block
    # im2col tiles and BLAS (graphc/ops/conv.py: tiling): 32, 48 and 768 taps (then in chunks)
    ("blas", ("N", 4, 3, 4, 5), (16, 4, 2, 2, 2), {"padding": 1}),
    ("blas,s,p,d,g", ("N", 8, 4, 5, 4), (32, 4, 2, 3, 2), {"stride": (1, 2, 1),
                                                            "padding": (1, 0, 1),
                                                            "dilation": (2, 1, 1), "groups": 2}),
    ("blas,chunks", ("N", 64, 2, 3, 4), (16, 64, 2, 2, 3), {"padding": (0, 1, 1),
                                                             "stride": (1, 1, 2)}),
]  # fmt: skip


def _shapes(xs: tuple, ws: tuple, kw: dict) -> tuple[tuple, tuple]:
    """(conv3d's output shape, x's spatial size) for the keywords `kw`."""

    def triple(v: Any) -> tuple:
        return (v,) * 3 if isinstance(v, int) else tuple(v)

    s, p, d = (triple(kw.get(k, dflt)) for k, dflt in (("stride", 1), ("padding", 0),
                                                         ("dilation", 1)))  # fmt: skip
    out = [(xs[2 + a] + 2 * p[a] - d[a] * (ws[2 + a] - 1) - 1) // s[a] + 1 for a in range(3)]
    return (xs[0], ws[0], *out), xs[2:]


def add_conv3d(m: Model, table: list[tuple[str, tuple, tuple, dict]]) -> None:
    for label, xs, ws, kw in table:
        ys, size = _shapes(xs, ws, kw)
        m.case(f"conv3d[{label}]", "conv3d", lambda x, w, kw=kw: conv3d(x, w, **kw), In(xs),
               In(ws))  # fmt: skip
        m.case(f"conv3d_grad_input[{label}]", "conv3d_grad_input",
               lambda ct, w, kw=kw, s=size: conv3d_grad_input(ct, w, s, **kw), In(ys),
               In(ws))  # fmt: skip
        m.case(f"conv3d_grad_weight[{label}]", "conv3d_grad_weight",
               lambda x, ct, kw=kw, k=ws[2:]: conv3d_grad_weight(x, ct, k, **kw), In(xs),
               In(ys))  # fmt: skip


def _public(m: Model) -> None:
    """The public conv3d with a bias, and conv_transpose3d with every option."""
    m.case("conv3d[public,bias]", "conv3d",
           lambda x, w, b: gc.relu(gc.conv3d(x, w, b, padding=1)),
           In(("N", 2, 3, 3, 4)), In((4, 2, 2, 3, 2)), In((4,)))  # fmt: skip
    m.case("conv_transpose3d[s,p,op,g,d]", "conv3d_grad_input",
           lambda x, w, b: gc.conv_transpose3d(x, w, b, stride=(2, 1, 2), padding=(1, 0, 0),
                                               output_padding=(1, 0, 1), groups=2,
                                               dilation=(1, 2, 1)),
           In(("N", 4, 2, 3, 2)), In((4, 3, 2, 2, 2)), In((6,)))  # fmt: skip


def conv3d_model(name: str) -> Model:
    m = Model(name)
    add_conv3d(m, CONV3)
    _public(m)
    return m.finish()


def conv3d_f32_model(name: str) -> Model:
    m = Model(name)
    # (direct loops only: float32 through BLAS is judged against the largest magnitude, in
    # tests/ops/test_conv3d.py, as conv2d's is in test_conv.py)
    add_conv3d(m, [CONV3[0], CONV3[4], CONV3[5]])
    _public(m)
    return m.finish()


MODELS: dict[str, tuple[Callable[[str], Model], tuple[str, ...]]] = {
    "conv3d": (conv3d_model, ("float64",)),
    "conv3d_f32": (conv3d_f32_model, ("float32",)),
}
