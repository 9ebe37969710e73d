"""The builder functions users call (`gc.tanh(x)`), one per op, gathered from the op modules."""

from typing import Any

from graphc.errors import ShapeError
from graphc.ir.dag import clean_loc
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import ShapeMismatch, format_shape, normalize_axes, normalize_shape
from graphc.ops import advanced as _advanced  # noqa: F401  (registers index, index_grad)
from graphc.ops import conv1d as _conv1d  # noqa: F401  (registers conv1d and its gradients)
from graphc.ops import conv3d as _conv3d  # noqa: F401  (registers conv3d and its gradients)
from graphc.ops import interpolate as _interpolate  # noqa: F401  (registers the resampling ops)
from graphc.ops import shape as _shape
from graphc.ops.activations import (  # noqa: F401
    celu,
    elu,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    logsigmoid,
    mish,
    relu6,
    selu,
    silu,
    softplus,
    softsign,
)
from graphc.ops.conv import conv2d  # noqa: F401
from graphc.ops.conv_nd import (  # noqa: F401
    conv1d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
)
from graphc.ops.cumulative import (  # noqa: F401
    cummax,
    cummin,
    cumprod,
    cumsum,
    linrec,
    logcumsumexp,
    shift,
)
from graphc.ops.einsum import einsum  # noqa: F401
from graphc.ops.elementwise import (  # noqa: F401
    absolute,
    add,
    cast,
    div,
    equal,
    erf,
    erfc,
    exp,
    gelu,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    maximum,
    minimum,
    mul,
    neg,
    not_equal,
    power,
    relu,
    sigmoid,
    sign,
    sqrt,
    sub,
    tanh,
    where,
)
from graphc.ops.gather import (  # noqa: F401
    gather,
    index_select,
    masked_fill,
    scatter,
    scatter_add,
    take_along_axis,
)
from graphc.ops.indexing import one_hot, take  # noqa: F401
from graphc.ops.integer import (  # noqa: F401
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
    left_shift,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    right_shift,
)
from graphc.ops.linalg import matmul  # noqa: F401
from graphc.ops.math import (  # noqa: F401
    acos,
    acosh,
    asin,
    asinh,
    atan,
    atan2,
    atanh,
    ceil,
    clamp,
    clip,
    copysign,
    cos,
    cosh,
    exp2,
    expm1,
    floor,
    floor_divide,
    fmod,
    log1p,
    log2,
    reciprocal,
    remainder,
    round,
    rsqrt,
    sin,
    sinh,
    square,
    tan,
    trunc,
)
from graphc.ops.nn import (  # noqa: F401
    layer_norm,
    log_softmax,
    logsumexp,
    mse_loss,
    softmax,
    softmax_cross_entropy,
)
from graphc.ops.pad import pad  # noqa: F401
from graphc.ops.pool_adaptive import (  # noqa: F401
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
)
from graphc.ops.pool_avg import (  # noqa: F401
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
)
from graphc.ops.pool_nd import (  # noqa: F401
    max_pool1d,
    max_pool2d,
    max_pool3d,
    max_unpool1d,
    max_unpool2d,
    max_unpool3d,
)
from graphc.ops.reduce import max, mean, size, sum  # noqa: F401
from graphc.ops.reductions import all, any, argmax, argmin, min, prod  # noqa: F401
from graphc.ops.resample import interpolate  # noqa: F401
from graphc.ops.scan import scan  # noqa: F401
from graphc.ops.slicing import concat  # noqa: F401
from graphc.ops.sort import argsort, sort, topk  # noqa: F401
from graphc.ops.statistics import norm, std, var  # noqa: F401

abs = absolute  # noqa: A001
pow = power  # noqa: A001


# The shape functions check their arguments here, where a bad one is a ShapeError naming the
# caller's line (the op modules' own checks name no line, and an axis out of range would
# otherwise wrap around or raise IndexError).
def _checked(x: Any, what: str, check: Any) -> None:
    if not isinstance(x, Value):
        return  # the op says what it needs
    try:
        check()
    except (ShapeMismatch, TypeError, ValueError) as e:
        loc = x.graph._loc or clean_loc(user_loc())  # as the builder records it
        where = f"{what} of v{x.id} {format_shape(x.shape)} at {loc}"
        raise ShapeError(f"{where}: {e}") from None


def reshape(x: Value, shape: Any) -> Value:
    """`x` with a new shape of the same size; one entry may be -1, symbols are allowed."""
    target = (shape,) if isinstance(shape, int) else shape
    _checked(x, "reshape", lambda: _shape.resolve_reshape(x.shape, tuple(target)))
    return _shape.reshape(x, shape)


def broadcast_to(x: Value, shape: Any) -> Value:
    """`x` broadcast to `shape` by NumPy's rules."""
    _checked(x, "broadcast_to", lambda: normalize_shape(shape))
    return _shape.broadcast_to(x, shape)


def transpose(x: Value, perm: Any = None) -> Value:
    """Permute the axes of `x` (reverse them when `perm` is None), as `np.transpose`."""
    if perm is not None:
        _checked(x, "transpose", lambda: _axes(perm, x.ndim, all_of_them=True))
    return _shape.transpose(x, perm)


def swapaxes(x: Value, a: int = -2, b: int = -1) -> Value:
    """`x` with axes `a` and `b` swapped, as `np.swapaxes`."""
    _checked(x, "swapaxes", lambda: _axes((a, b), x.ndim, all_of_them=False))
    return _shape.swapaxes(x, a, b)


def _axes(axes: Any, ndim: int, all_of_them: bool) -> None:
    if isinstance(axes, (int, str)) or not hasattr(axes, "__iter__"):
        raise ShapeMismatch(f"axes {axes!r} must be a sequence of ints")
    axes = tuple(axes)
    for a in axes:
        normalize_axes(a, ndim)  # an int, in range
    if all_of_them and sorted(a % ndim for a in axes) != list(range(ndim)):
        raise ShapeMismatch(f"axes {axes!r} are not a permutation of the {ndim} axes")
