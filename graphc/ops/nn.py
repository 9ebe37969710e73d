"""Normalisations and losses: softmax, log_softmax and logsumexp (numerically stable),
layer_norm, MSE, cross-entropy."""

from __future__ import annotations

import numpy as np

from graphc.codegen.emit import Emit
from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import INT_DTYPES, ShapeMismatch, format_type, normalize_axes
from graphc.ops._build import apply, float_dtype
from graphc.ops.elementwise import exp, sqrt, where
from graphc.ops.reduce import _spread, axes_of, mean, sum
from graphc.ops.registry import OpDef, register
from graphc.ops.shape import reshape, transpose


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


def _rows(shape: tuple, axes: tuple) -> list[list]:
    """`shape` seen as [outer, length, inner] around the adjacent `axes`."""
    lo, hi = (axes[0], axes[-1] + 1) if axes else (len(shape), len(shape))
    return [list(shape[:lo]), list(shape[lo:hi]), list(shape[hi:])]


def _lower_softmax(e: Emit, n: int, args: list[int], params: dict, log: bool) -> None:
    rows = _rows(e.values.shape(args[0]), (params["axis"],))
    e.runtime(f"softmax_{e.suffix}", [args[0], n], [*rows, int(log)])


# d softmax: ds = s * (dy - sum(dy * s)) along the axis.
register(
    OpDef(
        "softmax",
        1,
        _infer_axis,
        _softmax_ref,
        (lambda ct, out, x, axis: out * (ct - sum(ct * out, axis, keepdims=True)),),
        params={"axis": -1},
        lower=lambda e, n, a, p: _lower_softmax(e, n, a, p, log=False),
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
        lower=lambda e, n, a, p: _lower_softmax(e, n, a, p, log=True),
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


def _infer_layer_norm(shapes, dtypes, params):
    (shape,) = shapes
    axis, eps = params["axis"], params["eps"]
    if not isinstance(axis, int) or not 0 <= axis < len(shape):
        raise ShapeMismatch(f"axis {axis!r} is not an axis of a {len(shape)}-d value")
    if not isinstance(eps, float) or not eps >= 0:
        raise ShapeMismatch(f"eps must be a float >= 0, got {eps!r}")
    return shape, float_dtype(dtypes, "layer_norm")


def _layer_norm_ref(x, axis, eps):
    d = x - np.mean(x, axis, keepdims=True)
    return d / np.sqrt(np.mean(d * d, axis, keepdims=True) + eps)


def _layer_norm_vjp(ct, out, x, axis, eps):
    # y = (x - mean(x)) r, r = 1/sqrt(var(x) + eps):  dx = r (dy - mean(dy) - y mean(dy y))
    d = x - mean(x, axis, keepdims=True)
    r = 1.0 / sqrt(mean(d * d, axis, keepdims=True) + eps)
    return r * (ct - mean(ct, axis, keepdims=True) - out * mean(ct * out, axis, keepdims=True))


register(
    OpDef(
        "layer_norm",
        1,
        _infer_layer_norm,
        _layer_norm_ref,
        (_layer_norm_vjp,),
        params={"axis": -1, "eps": 1e-5},
        lower=lambda e, n, a, p: e.runtime(
            f"layer_norm_{e.suffix}",
            [a[0], n],
            _rows(e.values.shape(a[0]), (p["axis"],)),
            [p["eps"]],
        ),  # fmt: skip
        formula="dx = r (dy - mean(dy) - y mean(dy y)), r = 1/sqrt(var(x) + eps)",
    )
)


def layer_norm(x: Value, axis: int = -1, eps: float = 1e-5) -> Value:
    """(x - mean) / sqrt(var + eps) along `axis` (no scale or shift: a layer adds those)."""
    return apply("layer_norm", x, axis=_one_axis("layer_norm", x, axis), eps=float(eps))


def _infer_logsumexp(shapes, dtypes, params):
    (shape,) = shapes
    axis = params["axis"]
    if not isinstance(axis, tuple) or normalize_axes(axis, len(shape)) != axis:
        raise ShapeMismatch(
            f"axis {axis!r} must be a sorted tuple of axes of a {len(shape)}-d value"
        )
    if axis and axis != tuple(range(axis[0], axis[-1] + 1)):
        raise ShapeMismatch(f"axis {axis!r} must be adjacent axes")
    dtype = float_dtype(dtypes, "logsumexp")
    if params["keepdims"]:
        return tuple(1 if i in axis else d for i, d in enumerate(shape)), dtype
    return tuple(d for i, d in enumerate(shape) if i not in axis), dtype


def _logsumexp_ref(x, axis, keepdims):
    top = np.max(x, axis, keepdims=True, initial=-np.inf)
    top = np.where(np.isfinite(top), top, 0)  # rows of -inf (or +inf, NaN) are not shifted
    out = np.log(np.sum(np.exp(x - top), axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis)


# d logsumexp(x) = exp(x - logsumexp(x)) dx = softmax(x) dx
register(
    OpDef(
        "logsumexp",
        1,
        _infer_logsumexp,
        _logsumexp_ref,
        (
            lambda ct, out, x, axis, keepdims: (
                _spread(ct, x, axis, keepdims) * exp(x - _spread(out, x, axis, keepdims))
            ),
        ),
        params={"axis": (), "keepdims": False},
        lower=lambda e, n, a, p: e.runtime(
            f"logsumexp_{e.suffix}", [a[0], n], _rows(e.values.shape(a[0]), p["axis"])
        ),
        formula="dx = dy exp(x - out)",
    )
)


def logsumexp(x: Value, axis: object = None, keepdims: bool = False) -> Value:
    """log(sum(exp(x))) over `axis` (None: all), shifted by the maximum so that it neither
    overflows nor underflows; rows of -inf give -inf, as scipy.special.logsumexp."""
    axes = axes_of("logsumexp", x, axis)
    if not axes or axes == tuple(range(axes[0], axes[-1] + 1)):
        return apply("logsumexp", x, axis=axes, keepdims=bool(keepdims))
    # axes apart: move them to the end, where they are adjacent
    kept = [i for i in range(x.ndim) if i not in axes]
    moved = transpose(x, (*kept, *axes))
    out = apply("logsumexp", moved, axis=tuple(range(len(kept), x.ndim)), keepdims=False)
    if keepdims:
        out = reshape(out, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
    return out


def mse_loss(pred: Value, target: Value) -> Value:
    """Mean squared error over all elements: mean((pred - target)^2)."""
    return mean((pred - target) ** 2)


def softmax_cross_entropy(logits: Value, labels: Value) -> Value:
    """Mean over the batch of -sum(labels * log_softmax(logits)) along the last axis. `labels`
    are one-hot or soft (floats, logits' shape), or class indices (ints, logits' shape
    without the last axis, each in 0..C-1)."""
    from graphc.ops.indexing import one_hot

    if isinstance(labels, Value) and labels.dtype in INT_DTYPES:
        if logits.ndim == 0 or labels.shape != logits.shape[:-1]:
            raise ShapeError(
                f"softmax_cross_entropy at {user_loc()}: class labels "
                f"{format_type(labels.shape, labels.dtype)} must have the shape of logits "
                f"{format_type(logits.shape, logits.dtype)} without its last axis"
            )
        hit = one_hot(labels, logits.shape[-1], dtype="bool")
        return -mean(sum(where(hit, log_softmax(logits, -1), 0.0), axis=-1))
    return -mean(sum(labels * log_softmax(logits, -1), axis=-1))
