"""The public convolutions other than conv2d's own, built from the conv1d, conv2d and conv3d ops
(their gradients are those ops'): conv1d and conv3d (the op of that name, plus a bias), and the
transposed convolutions conv_transpose1d, conv_transpose2d and conv_transpose3d (the input
gradient op of conv1d, conv2d or conv3d, with output_padding choosing among the input sizes a
stride maps to the same output). Layouts, geometry and bias as PyTorch's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc


def _fail(op: str, msg: str) -> ShapeError:
    return ShapeError(f"{op} at {user_loc()}: {msg}")


def _tuple(op: str, name: str, v: Any, k: int, least: int) -> tuple[int, ...]:
    vals = (v,) * k if isinstance(v, int | np.integer) else tuple(v)
    if len(vals) != k or not all(
        isinstance(a, int | np.integer) and not isinstance(a, bool) and a >= least for a in vals
    ):
        raise _fail(op, f"{name} must be an int >= {least} or {k} of them, got {v!r}")
    return tuple(int(a) for a in vals)


def _operands(op: str, k: int, x: Any, w: Any) -> None:
    """x and w must be Values with k + 2 dimensions; the error names the one that is not."""
    for name, v in (("x", x), ("w", w)):
        if not isinstance(v, Value):
            raise _fail(op, f"{name} must be a graphc Value, got {type(v).__name__}")
        if v.ndim != k + 2:
            raise _fail(op, f"{name} must have {k + 2} dimensions, got shape {v.shape}")


def _with_bias(op: str, y: Value, bias: Value | None, k: int) -> Value:
    from graphc.ops.shape import reshape

    if bias is None:
        return y
    if not isinstance(bias, Value) or bias.shape != (y.shape[1],):
        got = bias.shape if isinstance(bias, Value) else type(bias).__name__
        raise _fail(op, f"bias must be a Value of shape ({y.shape[1]},), one per output "
                    f"channel, got {got}")  # fmt: skip
    return y + reshape(bias, (y.shape[1], *([1] * k)))


def conv(x: Value, w: Value, k: int, stride=1, padding=0, dilation=1, groups: int = 1) -> Value:
    """A k-d convolution (k = 1, 2, 3) of x [N, C_in, *spatial] with w [C_out, C_in/groups,
    *kernel], zero padding, as PyTorch's conv{k}d without bias."""
    from graphc.ops.conv import conv2d
    from graphc.ops.conv1d import conv1d as conv1d_op
    from graphc.ops.conv3d import conv3d as conv3d_op

    op = f"conv{k}d"
    _operands(op, k, x, w)
    stride, padding, dilation = (
        _tuple(op, n, v, k, lo)
        for n, v, lo in (("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1))
    )
    if k == 2:
        return conv2d(x, w, stride, padding, dilation, groups)
    if k == 1:
        return conv1d_op(x, w, stride, padding, dilation, groups)
    return conv3d_op(x, w, stride, padding, dilation, groups)


def conv1d(
    x: Value, w: Value, bias: Value | None = None, stride=1, padding=0, dilation=1, groups: int = 1
) -> Value:
    """1-d convolution of x [N, C_in, L] with w [C_out, C_in/groups, K], as PyTorch's: the
    conv1d op (ops/conv1d.py) and a bias."""
    return _with_bias("conv1d", conv(x, w, 1, stride, padding, dilation, groups), bias, 1)


def conv3d(
    x: Value, w: Value, bias: Value | None = None, stride=1, padding=0, dilation=1, groups: int = 1
) -> Value:
    """3-d convolution of x [N, C_in, D, H, W] with w [C_out, C_in/groups, KD, KH, KW], as
    PyTorch's: the conv3d op (ops/conv3d.py) and a bias."""
    return _with_bias("conv3d", conv(x, w, 3, stride, padding, dilation, groups), bias, 3)


def conv_transpose(
    x: Value, w: Value, k: int, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1
) -> Value:
    """The transposed convolution of x [N, C_in, *spatial] with w [C_in, C_out/groups,
    *kernel], as PyTorch's conv_transpose{k}d without bias: the gradient of a conv{k}d in
    its input, whose size is (n - 1) stride - 2 padding + dilation (k - 1) + output_padding
    + 1 per axis."""
    from graphc.ops.conv import conv2d_grad_input
    from graphc.ops.conv1d import conv1d_grad_input
    from graphc.ops.conv3d import conv3d_grad_input

    op = f"conv_transpose{k}d"
    if k not in (1, 2, 3):
        raise _fail(op, "transposed convolutions are 1-d, 2-d or 3-d")
    _operands(op, k, x, w)
    s, p, d = (
        _tuple(op, n, v, k, lo)
        for n, v, lo in (("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1))
    )
    op_ = _tuple(op, "output_padding", output_padding, k, 0)
    if any(q >= max(si, di) for q, si, di in zip(op_, s, d, strict=True)):
        raise _fail(op, f"output_padding {op_} must be smaller than stride or dilation")
    if any(not isinstance(v, int) for v in x.shape[2:]):
        raise _fail(op, "only the batch of x may be symbolic")
    size = tuple(
        (n - 1) * si - 2 * pi + di * (kk - 1) + qi + 1
        for n, si, pi, di, kk, qi in zip(x.shape[2:], s, p, d, w.shape[2:], op_, strict=True)
    )
    if min(size) < 1:
        raise _fail(op, f"the output would have size {size}")
    if k == 2:
        return conv2d_grad_input(x, w, size, s, p, d, groups)
    if k == 3:
        return conv3d_grad_input(x, w, size, s, p, d, groups)
    return conv1d_grad_input(x, w, size, s, p, d, groups)


def conv_transpose1d(
    x: Value,
    w: Value,
    bias: Value | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    groups: int = 1,
    dilation=1,
) -> Value:
    """Transposed 1-d convolution of x [N, C_in, L] with w [C_in, C_out/groups, K], as
    PyTorch's conv_transpose1d: conv1d_grad_input, whose gradients are conv1d's."""
    y = conv_transpose(x, w, 1, stride, padding, output_padding, groups, dilation)
    return _with_bias("conv_transpose1d", y, bias, 1)


def conv_transpose2d(
    x: Value,
    w: Value,
    bias: Value | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    groups: int = 1,
    dilation=1,
) -> Value:
    """Transposed 2-d convolution of x [N, C_in, H, W] with w [C_in, C_out/groups, KH, KW],
    as PyTorch's conv_transpose2d."""
    y = conv_transpose(x, w, 2, stride, padding, output_padding, groups, dilation)
    return _with_bias("conv_transpose2d", y, bias, 2)


def conv_transpose3d(
    x: Value,
    w: Value,
    bias: Value | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    groups: int = 1,
    dilation=1,
) -> Value:
    """Transposed 3-d convolution of x [N, C_in, D, H, W] with w [C_in, C_out/groups, KD, KH,
    KW], as PyTorch's conv_transpose3d: conv3d_grad_input, whose gradients are conv3d's."""
    y = conv_transpose(x, w, 3, stride, padding, output_padding, groups, dilation)
    return _with_bias("conv_transpose3d", y, bias, 3)
