"""Each op's value and gradient against PyTorch's own, on the values where conventions show:
zeros of both signs, ties, infinities, NaN, empty axes, the kinks of the activations.

One table: for every row, graphc's interpreter and PyTorch (float64, CPU) compute the same
outputs from the same inputs, and the gradient of sum(out * r) for fixed weights r; values,
index outputs and gradients must agree (NaN where PyTorch has NaN). Skipped, with the reason,
where PyTorch is not installed; tests/ops/test_conventions.py holds the same conventions
written out, for machines without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import graphc as gc

torch = pytest.importorskip("torch", reason="PyTorch is not installed: no parity to check")
F = torch.nn.functional

NAN, INF = np.nan, np.inf
# The edge values of an elementwise op: signed zeros, the kinks at +-1 of the hard
# activations, large values where exponentials saturate, infinities and NaN.
EDGE = np.array([0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.5, -3.0, 30.0, -30.0, INF, -INF, NAN])
UNIT = np.array([0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 0.999, -0.25, 2.0, INF, NAN])  # asin, atanh
TIES = np.array([[1.0, 3.0, 3.0, -1.0], [2.0, 2.0, 2.0, 2.0], [0.0, -0.0, -1.0, 0.0]])
SPECIAL_ROWS = np.array([[NAN, 1.0, 2.0, 3.0], [INF, 1.0, 2.0, INF], [-INF, -INF, 0.0, 1.0],
                         [0.0, -0.0, 0.0, -0.0]])  # fmt: skip
R = np.random.default_rng(20)


def normal(*shape: int) -> np.ndarray:
    return R.standard_normal(shape)


def distinct(*shape: int) -> np.ndarray:
    n = int(np.prod(shape))
    return (R.permutation(n) * 0.1 - 0.05 * n).reshape(shape)


@dataclass(frozen=True)
class Row:
    label: str
    ours: Callable[..., Any]  # over graphc Values: a Value or a tuple of them
    theirs: Callable[..., Any]  # over tensors: a tensor or a tuple of them
    inputs: tuple[np.ndarray, ...]
    grad: tuple[int, ...] | None = None  # inputs with a gradient (None: every float one)


ROWS: list[Row] = []


def row(label: str, ours: Callable, theirs: Callable, *inputs: Any, grad=None) -> None:
    ROWS.append(Row(label, ours, theirs, tuple(np.asarray(a) for a in inputs), grad))


# ---- elementwise ------------------------------------------------------------------------------
UNARY = {
    "neg": (gc.neg, torch.neg, EDGE),
    "exp": (gc.exp, torch.exp, EDGE),
    "log": (gc.log, torch.log, EDGE),
    "sqrt": (gc.sqrt, torch.sqrt, EDGE),
    "tanh": (gc.tanh, torch.tanh, EDGE),
    "sigmoid": (gc.sigmoid, torch.sigmoid, EDGE),
    "relu": (gc.relu, torch.relu, EDGE),
    "abs": (gc.abs, torch.abs, EDGE),
    "sign": (gc.sign, torch.sign, EDGE),
    "erf": (gc.erf, torch.erf, EDGE),
    "gelu": (gc.gelu, F.gelu, EDGE),
    "gelu_tanh": (lambda x: gc.gelu(x, approximate="tanh"),
                  lambda x: F.gelu(x, approximate="tanh"), EDGE),
    "sin": (gc.sin, torch.sin, EDGE),
    "cos": (gc.cos, torch.cos, EDGE),
    "tan": (gc.tan, torch.tan, EDGE),
    "asin": (gc.asin, torch.asin, UNIT),
    "acos": (gc.acos, torch.acos, UNIT),
    "atan": (gc.atan, torch.atan, EDGE),
    "sinh": (gc.sinh, torch.sinh, EDGE),
    "cosh": (gc.cosh, torch.cosh, EDGE),
    "asinh": (gc.asinh, torch.asinh, EDGE),
    "acosh": (gc.acosh, torch.acosh, EDGE),
    "atanh": (gc.atanh, torch.atanh, UNIT),
    "floor": (gc.floor, torch.floor, EDGE),
    "ceil": (gc.ceil, torch.ceil, EDGE),
    "round": (gc.round, torch.round, np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49, INF, NAN])),
    "trunc": (gc.trunc, torch.trunc, EDGE),
    "log1p": (gc.log1p, torch.log1p, EDGE),
    "expm1": (gc.expm1, torch.expm1, EDGE),
    "log2": (gc.log2, torch.log2, EDGE),
    "exp2": (gc.exp2, torch.exp2, EDGE),
    "reciprocal": (gc.reciprocal, torch.reciprocal, EDGE),
    "rsqrt": (gc.rsqrt, torch.rsqrt, EDGE),
    "square": (gc.square, torch.square, EDGE),
    "softplus": (gc.softplus, F.softplus, EDGE),
    "softplus_beta": (lambda x: gc.softplus(x, beta=2.0, threshold=5.0),
                      lambda x: F.softplus(x, beta=2.0, threshold=5.0), EDGE),
    "silu": (gc.silu, F.silu, EDGE),
    "mish": (gc.mish, F.mish, EDGE),
    "elu": (gc.elu, F.elu, EDGE),
    "selu": (gc.selu, F.selu, EDGE),
    "celu": (lambda x: gc.celu(x, 1.5), lambda x: F.celu(x, 1.5), EDGE),
    "leaky_relu": (lambda x: gc.leaky_relu(x, 0.1), lambda x: F.leaky_relu(x, 0.1), EDGE),
    "hardtanh": (gc.hardtanh, F.hardtanh, EDGE),
    "relu6": (gc.relu6, F.relu6, np.array([0.0, -0.0, 6.0, 3.0, 7.0, -1.0, INF, -INF, NAN])),
    "hardsigmoid": (gc.hardsigmoid, F.hardsigmoid, np.array([-3.0, 3.0, 0.0, 1.0, -4.0, 4.0,
                                                             INF, NAN])),
    # (no NaN: PyTorch's own derivative there depends on the tensor's length, 1 or NaN)
    "hardswish": (gc.hardswish, F.hardswish, np.array([-3.0, 3.0, 0.0, 1.0, -4.0, 4.0, INF,
                                                       -2.9, 2.9])),
    "logsigmoid": (gc.logsigmoid, F.logsigmoid, EDGE),
    "softsign": (gc.softsign, F.softsign, EDGE),
}  # fmt: skip
for _name, (_ours, _theirs, _x) in UNARY.items():
    row(_name, _ours, _theirs, _x)

A = np.array([0.0, -0.0, 0.0, 2.0, -1.5, 3.0, 3.0, INF, -INF, NAN, 1.0, 0.0, 2.0, -2.0])
B = np.array([0.0, 0.0, -0.0, 2.0, 0.5, -3.0, 3.0, 1.0, INF, 1.0, NAN, 1.5, -0.0, 0.3])
BINARY = {
    "add": (gc.add, torch.add),
    "sub": (gc.sub, torch.sub),
    "mul": (gc.mul, torch.mul),
    "div": (gc.div, torch.div),
    "pow": (gc.pow, torch.pow),
    "maximum": (gc.maximum, torch.maximum),
    "minimum": (gc.minimum, torch.minimum),
    "atan2": (gc.atan2, torch.atan2),
    "copysign": (gc.copysign, torch.copysign),
    "fmod": (gc.fmod, torch.fmod),
    "remainder": (gc.remainder, torch.remainder),
}
for _name, (_ours, _theirs) in BINARY.items():
    row(_name, _ours, _theirs, A, B)
row("floor_divide", gc.floor_divide, torch.floor_divide, A, B, grad=())
for _name, _ours, _theirs in [("less", gc.less, torch.lt), ("greater_equal", gc.greater_equal,
                                                              torch.ge),
                              ("equal", gc.equal, torch.eq), ("not_equal", gc.not_equal,
                                                               torch.ne)]:  # fmt: skip
    row(_name, _ours, _theirs, A, B)
row("pow[0**y]", lambda y: gc.pow(0.0, y), lambda y: torch.pow(0.0, y),
    np.array([0.0, 0.5, 2.0, -1.0]))  # fmt: skip
row("pow[x**0,0.3,2]", lambda x: x**0.0 + x**0.3 + x**2.0, lambda x: x**0.0 + x**0.3 + x**2.0,
    np.array([0.0, 1.0, 2.0]))  # fmt: skip
CLIP_X = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, NAN, INF])
row("clip", lambda x: gc.clip(x, -1.0, 1.0), lambda x: torch.clamp(x, -1.0, 1.0), CLIP_X)
row("clip[tensors]", gc.clip, torch.clamp, CLIP_X, np.full(7, -1.0), np.array([1.0] * 6 + [2.0]))
row("clip[lo>hi]", lambda x: gc.clip(x, 1.0, 0.0), lambda x: torch.clamp(x, 1.0, 0.0), CLIP_X)
row("where", lambda c, x, y: gc.where(c > 0, x, y), lambda c, x, y: torch.where(c > 0, x, y),
    A, B, A[::-1].copy(), grad=(1, 2))  # fmt: skip

# ---- integers and booleans (no gradient) -----------------------------------------------------
IA = np.array([7, -7, 7, -7, 0, 5, -128, 127, 3, -1], np.int64)
IB = np.array([2, 2, -2, -2, 3, 1, 3, 2, 4, 5], np.int64)
I8 = np.array([100, -100, 127, -128, 5], np.int8)
for _label, _ours, _theirs, _ins in [
    ("int add,mul", lambda a, b: a * b + a, lambda a, b: a * b + a, (IA, IB)),
    ("int8 wraps", lambda a: a + a, lambda a: a + a, (I8,)),
    ("int floor_divide", gc.floor_divide, torch.floor_divide, (IA, IB)),
    ("int remainder", gc.remainder, torch.remainder, (IA, IB)),
    ("int pow", gc.pow, torch.pow, (IA, np.abs(IB))),
    ("int bitwise", lambda a, b: gc.bitwise_xor(gc.bitwise_and(a, b), gc.bitwise_or(a, b)),
     lambda a, b: (a & b) ^ (a | b), (IA, IB)),
    ("int bitwise_not", gc.bitwise_not, torch.bitwise_not, (IA,)),
    ("int shifts", lambda a, b: gc.left_shift(a, b) + gc.right_shift(a, b),
     lambda a, b: (a << b) + (a >> b), (IA, IB)),
    ("int compare", lambda a, b: gc.logical_xor(a < b, gc.equal(a, b)),
     lambda a, b: torch.logical_xor(a < b, a == b), (IA, IB)),
    ("logical", lambda a, b: gc.logical_or(gc.logical_and(a, b), gc.logical_not(a)),
     lambda a, b: torch.logical_or(torch.logical_and(a, b), torch.logical_not(a)), (IA, IB)),
    ("where int", lambda a, b: gc.where(a > b, a, b), lambda a, b: torch.where(a > b, a, b),
     (IA, IB)),
    ("cast float->int", lambda x: gc.cast(x, "int32"), lambda x: x.to(torch.int32),
     (np.array([2.7, -2.7, 0.5, -0.5, 1e9, -0.0]),)),
    ("cast int->bool->float", lambda a: gc.cast(gc.cast(a, "bool"), "float64"),
     lambda a: a.to(torch.bool).to(torch.float64), (IA,)),
    ("cast int8->uint8", lambda a: gc.cast(a, "uint8"), lambda a: a.to(torch.uint8), (I8,)),
]:  # fmt: skip
    ROWS.append(Row(_label, _ours, _theirs, _ins, ()))

# ---- reductions, softmax, statistics --------------------------------------------------------
for _label, _ours, _theirs, _x in [
    ("sum[empty]", lambda x: gc.sum(x, 0), lambda x: x.sum(0), np.zeros((0, 3))),
    ("mean[empty]", lambda x: gc.mean(x, 0), lambda x: x.mean(0), np.zeros((0, 3))),
    ("prod[empty]", lambda x: gc.prod(x, 0), lambda x: x.prod(0), np.zeros((0, 3))),
    ("prod[zeros]", lambda x: gc.prod(x, 1), lambda x: x.prod(1),
     np.array([[1.0, 0.0, 2.0, 3.0], [0.0, 0.0, 2.0, 1.0], [1.5, -2.0, 0.5, 4.0]])),
    ("max[ties]", lambda x: gc.max(x, 1), lambda x: torch.amax(x, 1), TIES),
    ("min[ties]", lambda x: gc.min(x, 1), lambda x: torch.amin(x, 1), TIES),
    ("max[all,ties]", gc.max, torch.amax, TIES),
    ("max[special]", lambda x: gc.max(x, 1), lambda x: torch.amax(x, 1), SPECIAL_ROWS),
    ("sum[special]", lambda x: gc.sum(x, 1), lambda x: x.sum(1), SPECIAL_ROWS),
    ("logsumexp[special]", lambda x: gc.logsumexp(x, 1), lambda x: torch.logsumexp(x, 1),
     SPECIAL_ROWS),
    ("softmax[special]", lambda x: gc.softmax(x, 1), lambda x: torch.softmax(x, 1),
     SPECIAL_ROWS),
    ("log_softmax[special]", lambda x: gc.log_softmax(x, 1),
     lambda x: torch.log_softmax(x, 1), SPECIAL_ROWS),
    ("var", lambda x: gc.var(x, 1), lambda x: torch.var(x, 1), TIES),
    ("var[c=0]", lambda x: gc.var(x, 0, correction=0), lambda x: torch.var(x, 0, correction=0),
     TIES),
    ("std[ties]", lambda x: gc.std(x, 1), lambda x: torch.std(x, 1), TIES),
    ("std[one]", lambda x: gc.std(x, 1), lambda x: torch.std(x, 1), np.ones((2, 1))),
    ("norm[zeros]", lambda x: gc.norm(x, axis=1), lambda x: torch.linalg.vector_norm(x, dim=1),
     np.array([[0.0, 0.0, 0.0], [3.0, -4.0, 0.0]])),
    ("norm[p=1]", lambda x: gc.norm(x, 1, axis=1),
     lambda x: torch.linalg.vector_norm(x, 1, dim=1), np.array([[0.0, -0.0, 1.0],
                                                                [3.0, -4.0, 0.0]])),
    ("norm[p=3]", lambda x: gc.norm(x, 3), lambda x: torch.linalg.vector_norm(x, 3),
     np.array([0.0, 1.0, -2.0])),
    ("norm[p=inf]", lambda x: gc.norm(x, INF, axis=1),
     lambda x: torch.linalg.vector_norm(x, INF, dim=1), TIES),
    ("layer_norm", gc.layer_norm, lambda x: F.layer_norm(x, (4,)), TIES),
]:  # fmt: skip
    row(_label, _ours, _theirs, _x)
for _label, _ours, _theirs, _x in [
    ("argmax[ties]", lambda x: gc.argmax(x, 1), lambda x: torch.argmax(x, 1), TIES),
    ("argmin[ties]", lambda x: gc.argmin(x, 1), lambda x: torch.argmin(x, 1), TIES),
    ("argmax[special]", lambda x: gc.argmax(x, 1), lambda x: torch.argmax(x, 1), SPECIAL_ROWS),
    ("any", lambda x: gc.any(x > 0, 1), lambda x: torch.any(x > 0, 1), SPECIAL_ROWS),
    ("all[empty]", lambda x: gc.all(x > 0, 0), lambda x: torch.all(x > 0, 0), np.zeros((0, 2))),
]:  # fmt: skip
    row(_label, _ours, _theirs, _x, grad=())

# ---- scans ------------------------------------------------------------------------------------
CUM = np.array([[1.0, 0.0, 2.0, -1.0, 3.0], [2.0, 2.0, -0.0, 2.0, 1.0], [0.5, NAN, 1.0, 4.0, 0.0]])
for _label, _ours, _theirs, _x in [
    ("cumsum", lambda x: gc.cumsum(x, 1), lambda x: torch.cumsum(x, 1), CUM),
    ("cumprod[zeros]", lambda x: gc.cumprod(x, 1), lambda x: torch.cumprod(x, 1), CUM[:2]),
    ("cumprod[rev]", lambda x: gc.cumprod(x, 1, reverse=True),
     lambda x: torch.cumprod(x.flip(1), 1).flip(1), CUM[:2]),
    ("cummax", lambda x: gc.cummax(x, 1), lambda x: tuple(torch.cummax(x, 1)), CUM),
    ("cummin", lambda x: gc.cummin(x, 1), lambda x: tuple(torch.cummin(x, 1)), CUM),
    ("logcumsumexp", lambda x: gc.logcumsumexp(x, 1), lambda x: torch.logcumsumexp(x, 1),
     np.array([[-INF, -INF, 0.0, 1.0], [INF, 1.0, -INF, 2.0], [0.0, 1.0, 2.0, 3.0]])),
]:  # fmt: skip
    row(_label, _ours, _theirs, _x)

# ---- gathers, scatters, sorting, einsum -------------------------------------------------------
IDX = np.array([[0, 2, 1, 0], [2, 2, 0, 1]])
T = lambda a: torch.as_tensor(a)  # noqa: E731
for _label, _ours, _theirs, _ins, _grad in [
    ("gather", lambda x: gc.gather(x, 0, IDX), lambda x: torch.gather(x, 0, T(IDX)),
     (normal(3, 4),), None),
    ("scatter_add", lambda x, s: gc.scatter_add(x, 0, IDX, s),
     lambda x, s: torch.scatter_add(x, 0, T(IDX), s), (normal(3, 4), normal(2, 4)), None),
    ("scatter", lambda x, s: gc.scatter(x, 0, np.array([[0, 2, 1, 0]]), s),
     lambda x, s: torch.scatter(x, 0, T([[0, 2, 1, 0]]), s), (normal(3, 4), normal(1, 4)), None),
    ("index_select", lambda x: gc.index_select(x, 1, np.array([2, 0, 2])),
     lambda x: torch.index_select(x, 1, T([2, 0, 2])), (normal(3, 4),), None),
    ("x[i,j]", lambda x: x[np.array([0, 2, 2]), np.array([1, 1, 3])],
     lambda x: x[T([0, 2, 2]), T([1, 1, 3])], (normal(3, 4),), None),
    ("masked_fill", lambda x, m: gc.masked_fill(x, m > 0, -INF),
     lambda x, m: x.masked_fill(m > 0, -INF), (normal(3, 4), normal(3, 4)), (0,)),
    ("sort[ties]", lambda x: gc.sort(x, 1), lambda x: tuple(torch.sort(x, dim=1, stable=True)),
     (TIES,), None),
    ("sort[desc,special]", lambda x: gc.sort(x, 1, descending=True),
     lambda x: tuple(torch.sort(x, dim=1, descending=True, stable=True)), (SPECIAL_ROWS,), None),
    ("topk", lambda x: gc.topk(x, 2), lambda x: tuple(torch.topk(x, 2)), (distinct(3, 5),), None),
    ("einsum[bij,bjk]", lambda a, b: gc.einsum("bij,bjk->bik", a, b),
     lambda a, b: torch.einsum("bij,bjk->bik", a, b), (normal(2, 3, 4), normal(2, 4, 2)), None),
    ("einsum[ii->i]", lambda a: gc.einsum("ii->i", a), lambda a: torch.einsum("ii->i", a),
     (normal(3, 3),), None),
]:  # fmt: skip
    ROWS.append(Row(_label, _ours, _theirs, _ins, _grad))

# ---- shapes, products, losses ----------------------------------------------------------------
LABELS = np.array([2, 0, 1, 2])
for _label, _ours, _theirs, _ins, _grad in [
    ("matmul[batched]", gc.matmul, torch.matmul, (normal(2, 1, 3, 4), normal(3, 4, 2)), None),
    ("matmul[1d]", gc.matmul, torch.matmul, (normal(4), normal(2, 4, 3)), None),
    ("transpose,reshape", lambda x: gc.reshape(gc.transpose(x, (2, 0, 1)), (4, -1)),
     lambda x: x.permute(2, 0, 1).reshape(4, -1), (normal(2, 3, 4),), None),
    ("slicing", lambda x: x[:, 1:3] * 2.0 + x[::-1, -1:] - x[None, 0, ::2].sum(),
     lambda x: x[:, 1:3] * 2.0 + x.flip(0)[:, -1:] - x[None, 0, ::2].sum(),
     (normal(3, 4),), None),
    ("concat", lambda a, b: gc.concat([a, b, a], 1), lambda a, b: torch.cat([a, b, a], 1),
     (normal(2, 3), normal(2, 1)), None),
    ("take[embedding]", lambda w, i: gc.take(w, i), lambda w, i: F.embedding(i, w),
     (normal(4, 3), np.array([[1, 3], [1, 0]])), (0,)),
    ("one_hot", lambda i: gc.one_hot(i, 4), lambda i: F.one_hot(i, 4).double(),
     (np.array([0, 3, 1, 1]),), ()),
    ("mse_loss", gc.mse_loss, F.mse_loss, (normal(3, 4), normal(3, 4)), None),
    ("softmax_cross_entropy[int labels]", gc.softmax_cross_entropy, F.cross_entropy,
     (normal(4, 3), LABELS), (0,)),
    ("softmax_cross_entropy[soft labels]", gc.softmax_cross_entropy, F.cross_entropy,
     (normal(4, 3), np.eye(3)[LABELS] * 0.7 + 0.1), None),
    ("logsumexp[empty]", lambda x: gc.logsumexp(x, 1), lambda x: torch.logsumexp(x, 1),
     (np.zeros((2, 0)),), None),
]:  # fmt: skip
    ROWS.append(Row(_label, _ours, _theirs, _ins, _grad))

# ---- padding, convolution, pooling, interpolation ------------------------------------------
for _mode in ("constant", "reflect", "replicate", "circular"):
    row(f"pad[{_mode}]", lambda x, m=_mode: gc.pad(x, (1, 2, 2, 0), mode=m),
        lambda x, m=_mode: F.pad(x, (1, 2, 2, 0), mode=m), normal(2, 3, 4, 5))  # fmt: skip
row("pad[value,crop]", lambda x: gc.pad(x, (-1, 2), value=1.5),
    lambda x: F.pad(x, (-1, 2), value=1.5), normal(2, 3, 5))  # fmt: skip
X4, X3, X5 = normal(2, 4, 7, 8), normal(2, 4, 9), normal(2, 2, 5, 6, 5)
for _label, _ours, _theirs, _ins in [
    ("conv1d", lambda x, w, b: gc.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2),
     lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2),
     (X3, normal(6, 2, 3), normal(6))),
    ("conv3d", lambda x, w: gc.conv3d(x, w, stride=(2, 1, 2), padding=(1, 0, 1)),
     lambda x, w: F.conv3d(x, w, stride=(2, 1, 2), padding=(1, 0, 1)),
     (X5, normal(3, 2, 2, 3, 2))),
    ("conv3d[b,d,g]", lambda x, w, b: gc.conv3d(x, w, b, stride=(1, 2, 1), padding=(0, 1, 2),
                                                dilation=(2, 1, 2), groups=2),
     lambda x, w, b: F.conv3d(x, w, b, stride=(1, 2, 1), padding=(0, 1, 2), dilation=(2, 1, 2),
                              groups=2),
     (X5, normal(4, 1, 2, 3, 2), normal(4))),
    ("conv_transpose3d", lambda x, w, b: gc.conv_transpose3d(
        x, w, b, stride=(2, 1, 3), padding=(1, 0, 1), output_padding=(1, 0, 2), groups=2,
        dilation=(1, 2, 1)),
     lambda x, w, b: F.conv_transpose3d(x, w, b, stride=(2, 1, 3), padding=(1, 0, 1),
                                        output_padding=(1, 0, 2), groups=2, dilation=(1, 2, 1)),
     (X5, normal(2, 3, 3, 2, 2), normal(6))),
    ("conv_transpose2d", lambda x, w, b: gc.conv_transpose2d(
        x, w, b, stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2,
        dilation=(1, 2)),
     lambda x, w, b: F.conv_transpose2d(x, w, b, stride=(2, 3), padding=(1, 0),
                                        output_padding=(1, 2), groups=2, dilation=(1, 2)),
     (normal(2, 4, 4, 5), normal(4, 3, 3, 2), normal(6))),
    ("conv_transpose1d", lambda x, w: gc.conv_transpose1d(x, w, stride=2, output_padding=1),
     lambda x, w: F.conv_transpose1d(x, w, stride=2, output_padding=1),
     (X3, normal(4, 3, 3))),
    ("conv1d[s,p,d,g=4]", lambda x, w: gc.conv1d(x, w, stride=3, padding=2, dilation=3, groups=4),
     lambda x, w: F.conv1d(x, w, stride=3, padding=2, dilation=3, groups=4),
     (X3, normal(8, 1, 2))),
    ("conv_transpose1d[b,s,p,op,g,d]", lambda x, w, b: gc.conv_transpose1d(
        x, w, b, stride=3, padding=2, output_padding=2, groups=2, dilation=2),
     lambda x, w, b: F.conv_transpose1d(x, w, b, stride=3, padding=2, output_padding=2,
                                        groups=2, dilation=2),
     (X3, normal(4, 3, 3), normal(6))),
    ("max_pool2d[d,ceil]", lambda x: gc.max_pool2d(x, 3, 2, 1, 2, True, True),
     lambda x: F.max_pool2d(x, 3, 2, 1, 2, True, True), (X4,)),
    ("max_pool2d[ties]", lambda x: gc.max_pool2d(x, 2, 1, ceil_mode=True, return_indices=True),
     lambda x: F.max_pool2d(x, 2, 1, ceil_mode=True, return_indices=True),
     (np.round(X4),)),
    ("max_pool2d[nan]", lambda x: gc.max_pool2d(x, 2, 1), lambda x: F.max_pool2d(x, 2, 1),
     (np.where(X4 > 0.5, NAN, X4),)),
    ("max_pool1d", lambda x: gc.max_pool1d(x, 3, 2, 1, ceil_mode=True, return_indices=True),
     lambda x: F.max_pool1d(x, 3, 2, 1, ceil_mode=True, return_indices=True), (X3,)),
    ("max_pool3d", lambda x: gc.max_pool3d(x, 2, (2, 1, 2), 1, return_indices=True),
     lambda x: F.max_pool3d(x, 2, (2, 1, 2), 1, return_indices=True), (X5,)),
    ("max_unpool2d", lambda x: gc.max_unpool2d(*gc.max_pool2d(x, 2, 1, return_indices=True), 2,
                                               1, output_size=(7, 8)),
     lambda x: F.max_unpool2d(*F.max_pool2d(x, 2, 1, return_indices=True), 2, 1,
                              output_size=(7, 8)), (X4,)),
    ("avg_pool2d[ceil,no pad]", lambda x: gc.avg_pool2d(x, 3, 2, 1, True, False),
     lambda x: F.avg_pool2d(x, 3, 2, 1, True, False), (X4,)),
    ("avg_pool2d[divisor]", lambda x: gc.avg_pool2d(x, 2, divisor_override=3),
     lambda x: F.avg_pool2d(x, 2, divisor_override=3), (X4,)),
    ("avg_pool1d", lambda x: gc.avg_pool1d(x, 3, 2, 1, True, True),
     lambda x: F.avg_pool1d(x, 3, 2, 1, True, True), (X3,)),
    ("avg_pool3d", lambda x: gc.avg_pool3d(x, 2, (2, 1, 2), 1, True, False),
     lambda x: F.avg_pool3d(x, 2, (2, 1, 2), 1, True, False), (X5,)),
    ("adaptive_avg_pool2d", lambda x: gc.adaptive_avg_pool2d(x, (3, 5)),
     lambda x: F.adaptive_avg_pool2d(x, (3, 5)), (X4,)),
    ("adaptive_avg_pool1d", lambda x: gc.adaptive_avg_pool1d(x, 4),
     lambda x: F.adaptive_avg_pool1d(x, 4), (X3,)),
    ("adaptive_avg_pool3d", lambda x: gc.adaptive_avg_pool3d(x, (2, 4, 3)),
     lambda x: F.adaptive_avg_pool3d(x, (2, 4, 3)), (X5,)),
]:  # fmt: skip
    ROWS.append(Row(_label, _ours, _theirs, _ins))
# Pooling's edges: ceil_mode windows past the padding, cells no window holds (stride larger
# than the kernel), count_include_pad False, a negative divisor_override, adaptive windows that
# overlap or grow, max_unpool with repeated indices (PyTorch leaves their order undefined; on
# the CPU in float64 the last wins, as graphc's) and output_size.
UNPOOL_IDX = np.array([[[[3, 0], [3, 1]], [[15, 15], [0, 4]], [[5, 6], [9, 10]]],
                       [[[0, 0], [0, 0]], [[1, 2], [3, 4]], [[12, 13], [14, 15]]]])  # fmt: skip
for _label, _ours, _theirs, _ins in [
    ("avg_pool2d[ceil,past padding]", lambda x: gc.avg_pool2d(x, 4, 3, 2, True, True),
     lambda x: F.avg_pool2d(x, 4, 3, 2, True, True), (X4,)),
    ("avg_pool1d[ceil,past padding,no pad]", lambda x: gc.avg_pool1d(x, 4, 3, 2, True, False),
     lambda x: F.avg_pool1d(x, 4, 3, 2, True, False), (X3,)),
    ("avg_pool2d[stride>kernel]", lambda x: gc.avg_pool2d(x, 2, 3, 1, True, False),
     lambda x: F.avg_pool2d(x, 2, 3, 1, True, False), (X4,)),
    ("avg_pool3d[no pad,divisor<0]",
     lambda x: gc.avg_pool3d(x, (2, 3, 2), 1, (1, 1, 0), False, False, -5),
     lambda x: F.avg_pool3d(x, (2, 3, 2), 1, (1, 1, 0), False, False, -5), (X5,)),
    ("avg_pool3d[ceil,divisor]", lambda x: gc.avg_pool3d(x, 3, 2, 1, True, True, 4),
     lambda x: F.avg_pool3d(x, 3, 2, 1, True, True, 4), (X5,)),
    ("adaptive_avg_pool2d[grow]", lambda x: gc.adaptive_avg_pool2d(x, (9, 11)),
     lambda x: F.adaptive_avg_pool2d(x, (9, 11)), (X4,)),
    ("adaptive_avg_pool1d[9->5]", lambda x: gc.adaptive_avg_pool1d(x, 5),
     lambda x: F.adaptive_avg_pool1d(x, 5), (X3,)),
    ("adaptive_avg_pool3d[overlap]", lambda x: gc.adaptive_avg_pool3d(x, (3, 4, 4)),
     lambda x: F.adaptive_avg_pool3d(x, (3, 4, 4)), (X5,)),
    ("max_unpool2d[repeated]", lambda x, i: gc.max_unpool2d(x, i, 2),
     lambda x, i: F.max_unpool2d(x, i, 2), (normal(2, 3, 2, 2), UNPOOL_IDX)),
    ("max_unpool1d[output_size]", lambda x, i: gc.max_unpool1d(x, i, 2, output_size=(9,)),
     lambda x, i: F.max_unpool1d(x, i, 2, output_size=(9,)),
     (normal(2, 3, 4), np.array([[[1, 2, 5, 8]] * 3] * 2))),
    ("max_unpool3d", lambda x: gc.max_unpool3d(*gc.max_pool3d(x, 2, return_indices=True), 2),
     lambda x: F.max_unpool3d(*F.max_pool3d(x, 2, return_indices=True), 2),
     (distinct(2, 2, 4, 6, 4),)),
]:  # fmt: skip
    ROWS.append(Row(_label, _ours, _theirs, _ins))
for _mode, _x, _kw in [
    ("nearest", X4, {"size": (11, 5)}),
    ("nearest", X4, {"scale_factor": (2.3, 0.6)}),
    ("nearest-exact", X4, {"size": (11, 5)}),
    ("linear", X3, {"size": 14, "align_corners": False}),
    ("linear", X3, {"scale_factor": 1.7, "align_corners": True}),
    ("bilinear", X4, {"size": (11, 5), "align_corners": False}),
    ("bilinear", X4, {"size": (3, 13), "align_corners": True}),
    ("bilinear", X4, {"scale_factor": 1.5}),
    ("trilinear", X5, {"size": (7, 3, 8), "align_corners": False}),
    ("trilinear", X5, {"size": (7, 3, 8), "align_corners": True}),
    ("area", X4, {"size": (3, 5)}),
    # cells' boundaries: sources at exactly k + 0.5 (nearest-exact), even ratios
    ("nearest-exact", X4, {"size": (14, 4)}),
    ("nearest-exact", X4, {"scale_factor": 0.5}),
    ("nearest", X5, {"scale_factor": (1.5, 0.5, 2.2)}),
    # downsampling, non-integer scale factors, an axis kept with a scale factor (copied)
    ("linear", X3, {"size": 4, "align_corners": False}),
    ("bilinear", X4, {"size": (3, 5), "align_corners": True}),
    ("bilinear", X4, {"size": (3, 5), "align_corners": False}),
    ("bilinear", X4, {"scale_factor": (1.7, 0.45)}),
    ("bilinear", X4, {"scale_factor": (1.05, 2.0)}),
    ("trilinear", X5, {"scale_factor": (1.3, 0.7, 2.2), "align_corners": True}),
    # axes of size 1, to and from
    ("linear", X3, {"size": 1, "align_corners": True}),
    ("linear", X3, {"size": 1, "align_corners": False}),
    ("bilinear", normal(2, 3, 1, 5), {"size": (4, 7)}),
    ("bilinear", normal(2, 3, 1, 5), {"size": (4, 7), "align_corners": True}),
    ("nearest", normal(2, 3, 1, 5), {"size": (3, 2)}),
]:
    row(f"interpolate[{_mode},{','.join(f'{k}={v}' for k, v in _kw.items())}]".replace(" ", ""),
        lambda x, m=_mode, kw=_kw: gc.interpolate(x, mode=m, **kw),
        lambda x, m=_mode, kw=_kw: F.interpolate(x, mode=m, **kw), _x)  # fmt: skip


# ---- running a row both ways ------------------------------------------------------------------
def _tuple(v: Any) -> tuple:
    return tuple(v) if isinstance(v, tuple | list) else (v,)


def _weights(shapes: list[tuple]) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.standard_normal(s) + 2.0 for s in shapes]  # away from 0: no gradient lost


def _grad_inputs(r: Row) -> tuple[int, ...]:
    if r.grad is not None:
        return r.grad
    return tuple(k for k, a in enumerate(r.inputs) if a.dtype.kind == "f")


def run_graphc(r: Row) -> tuple[list[np.ndarray], list[np.ndarray]]:
    g = gc.Graph("parity")
    wrt = _grad_inputs(r)
    xs = [(g.param if k in wrt else g.input)(f"x{k}", shape=a.shape, dtype=str(a.dtype))
          for k, a in enumerate(r.inputs)]  # fmt: skip
    outs = _tuple(r.ours(*xs))
    for k, o in enumerate(outs):
        g.output(f"y{k}", o)
    floats = [o for o in outs if o.dtype.startswith("float")]
    feed = {f"x{k}": a for k, a in enumerate(r.inputs)}
    if not wrt or not floats:
        res = gc.evaluate(g, feed)
        return [res[f"y{k}"] for k in range(len(outs))], []
    terms = [gc.sum(o * w) for o, w in zip(floats, _weights([o.shape for o in floats]),
                                            strict=True)]  # fmt: skip
    loss = terms[0]
    for t in terms[1:]:
        loss = loss + t
    g.output("loss", loss)
    names = [f"x{k}" for k in wrt]  # zeros where there is no gradient, as PyTorch's
    res = gc.evaluate(gc.grad(g, "loss", names, allow_unused=True), feed)
    return ([res[f"y{k}"] for k in range(len(outs))],
            [res[gc.grad_name("loss", n)] for n in names])  # fmt: skip


def run_torch(r: Row) -> tuple[list[np.ndarray], list[np.ndarray]]:
    wrt = _grad_inputs(r)
    ts = [torch.tensor(a, requires_grad=k in wrt) for k, a in enumerate(r.inputs)]
    outs = _tuple(r.theirs(*ts))
    values = [o.detach().numpy() for o in outs]
    floats = [o for o in outs if o.dtype.is_floating_point]
    if not wrt or not floats:
        return values, []
    w = _weights([tuple(o.shape) for o in floats])
    loss = sum((o * torch.tensor(wk)).sum() for o, wk in zip(floats, w, strict=True))
    grads = torch.autograd.grad(loss, [ts[k] for k in wrt], allow_unused=True)
    return values, [np.zeros(r.inputs[k].shape) if d is None else d.numpy()
                    for k, d in zip(wrt, grads, strict=True)]  # fmt: skip


# PyTorch's vectorised hardsigmoid multiplies by 1/6 rounded to float32.
RTOL = {"hardsigmoid": 1e-7}


@pytest.mark.parametrize("r", ROWS, ids=[r.label for r in ROWS])
def test_matches_pytorch(r: Row) -> None:
    ours, ours_grads = run_graphc(r)
    with np.errstate(all="ignore"):
        theirs, their_grads = run_torch(r)
    assert len(ours) == len(theirs)
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.shape == b.shape, f"output {k}: shape {a.shape}, PyTorch's {b.shape}"
        if b.dtype.kind in "biu":
            np.testing.assert_array_equal(a, b, err_msg=f"output {k}")
        else:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, equal_nan=True,
                                       err_msg=f"output {k}")  # fmt: skip
            zeros = (a == 0) & (b == 0)  # and the sign of a zero
            np.testing.assert_array_equal(np.signbit(a[zeros]), np.signbit(b[zeros]),
                                          err_msg=f"signs of the zeros of output {k}")  # fmt: skip
    rtol = RTOL.get(r.label, 1e-10)
    for k, (a, b) in zip(_grad_inputs(r), zip(ours_grads, their_grads, strict=True), strict=False):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12, equal_nan=True,
                                   err_msg=f"gradient of input {k}")  # fmt: skip


@pytest.mark.parametrize("bad", [16, -1])
def test_max_unpool_index_outside_the_plane_is_an_error_in_both(bad: int) -> None:
    x, idx = normal(1, 1, 2, 2), np.array([[[[0, 1], [bad, 2]]]])
    with pytest.raises(RuntimeError, match=f"invalid max index: {bad}"):
        F.max_unpool2d(torch.tensor(x), torch.tensor(idx), 2)
    g = gc.Graph("unpool")
    i = g.input("i", shape=idx.shape, dtype="int64")
    g.output("y", gc.max_unpool2d(g.input("x", shape=x.shape), i, 2))
    with pytest.raises(gc.InputError, match=f"max_unpool.*index {bad} .*out of bounds"):
        gc.evaluate(g, {"x": x, "i": idx})
