"""The builder functions users call (`gc.tanh(x)`), one per op, gathered from the op modules."""

from graphc.ops.conv import avg_pool2d, conv2d, max_pool2d  # noqa: F401
from graphc.ops.elementwise import (  # noqa: F401
    absolute,
    add,
    cast,
    div,
    equal,
    erf,
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
from graphc.ops.indexing import concat, one_hot, take  # noqa: F401
from graphc.ops.linalg import matmul  # noqa: F401
from graphc.ops.nn import (  # noqa: F401
    layer_norm,
    log_softmax,
    logsumexp,
    mse_loss,
    softmax,
    softmax_cross_entropy,
)
from graphc.ops.reduce import max, mean, size, sum  # noqa: F401
from graphc.ops.shape import broadcast_to, reshape, swapaxes, transpose  # noqa: F401

abs = absolute  # noqa: A001
pow = power  # noqa: A001
