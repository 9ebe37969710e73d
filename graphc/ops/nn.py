"""Normalisations and losses: softmax, log_softmax (numerically stable), MSE, cross-entropy."""

from __future__ import annotations

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.shapes import ShapeMismatch
from graphc.ops._build import apply, float_dtype
from graphc.ops.elementwise import exp
from graphc.ops.reduce import axes_of, mean, sum
from graphc.ops.registry import OpDef, register


def _infer_axis(shapes, dtypes, params):
    (shape,) = shapes
    axis = params["axis"]
    if not isinstance(axis, int) or not 0 <= axis < len(shape):
        raise ShapeMismatch(f"axis {axis!r} is not an axis of a {len(shape)}-d value")
    return shape, float_dtype(dtypes, "softmax")


def _softmax_ref(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax_ref(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


# d softmax: ds = s * (dy - sum(dy * s)) along the axis.
register(
    OpDef(
        "softmax",
        1,
        _infer_axis,
        _softmax_ref,
        (lambda ct, out, x, axis: out * (ct - sum(ct * out, axis, keepdims=True)),),
        params={"axis": -1},
        formula="ds = s * (dy - sum(dy * s))",
    )
)
# d log_softmax: dx = dy - softmax(x) * sum(dy) along the axis; softmax(x) = exp(out).
register(
    OpDef(
        "log_softmax",
        1,
        _infer_axis,
        _log_softmax_ref,
        (lambda ct, out, x, axis: ct - exp(out) * sum(ct, axis, keepdims=True),),
        params={"axis": -1},
        formula="dx = dy - exp(out) * sum(dy)",
    )
)


def _one_axis(op: str, x: Value, axis: int) -> int:
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise ShapeError(f"{op}: axis must be one int, got {axis!r}")
    return axes_of(op, x, axis)[0]


def softmax(x: Value, axis: int = -1) -> Value:
    """exp(x) / sum(exp(x)) along `axis`, computed without overflow."""
    return apply("softmax", x, axis=_one_axis("softmax", x, axis))


def log_softmax(x: Value, axis: int = -1) -> Value:
    """x - logsumexp(x) along `axis`, computed without overflow."""
    return apply("log_softmax", x, axis=_one_axis("log_softmax", x, axis))


def mse_loss(pred: Value, target: Value) -> Value:
    """Mean squared error over all elements: mean((pred - target)^2)."""
    return mean((pred - target) ** 2)


def softmax_cross_entropy(logits: Value, labels_onehot: Value) -> Value:
    """Mean over the batch of -sum(labels * log_softmax(logits)) along the last axis."""
    return -mean(sum(labels_onehot * log_softmax(logits, -1), axis=-1))
