"""Registry cases for the elementwise functions of graphc/ops/math.py and the activations of
graphc/ops/activations.py (merged into tests/ops/test_registry.py's table).

The NumPy formulas are written from the functions' definitions (PyTorch's, for the
activations), not from the ops' `ref`: the activations through their textbook forms, rounding
and remainders element by element in Python's own arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import graphc as gc
from tests.domains import Gen, grid, nonzero, normal, uniform

F32 = ("float32",)


def _elementwise(fn: Callable[..., float]) -> Callable[..., np.ndarray]:
    """`fn` of Python floats applied element by element (broadcast), in the operands' dtype."""

    def run(*xs: np.ndarray) -> np.ndarray:
        dtype = np.result_type(*xs)
        bs = np.broadcast_arrays(*xs)
        out = [fn(*(float(b.flat[i]) for b in bs)) for i in range(bs[0].size)]
        return np.asarray(out, dtype=dtype).reshape(bs[0].shape)

    return run


def _py_remainder(x: float, y: float) -> float:
    """PyTorch's remainder: the sign of the divisor; a zero keeps fmod's sign."""
    r = math.fmod(x, y)
    return r + y if r != 0 and (r < 0) != (y < 0) else r


def _py_floor_divide(x: float, y: float) -> float:
    return float(math.floor(x / y)) if y != 0 else x / y


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.where(beta * x > threshold, x, np.log(1.0 + np.exp(beta * x)) / beta)


def _elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    return np.where(x > 0, x, alpha * (np.exp(x) - 1.0))


def spread(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """0.8 k + 0.1 for k in -6..6: both sides of -3 and 3 (hardsigmoid's kinks), never on them."""
    return 0.8 * rng.integers(-6, 7, shape) + 0.1


SELU = (1.6732632423543772848170429916717, 1.0507009873554804934193349852946)

# (op, builder, NumPy formula, domain, has a gradient)
UNARY: list[tuple[str, Callable, Callable, Gen, bool]] = [
    ("sin", gc.sin, np.sin, normal(3.0), True),
    ("cos", gc.cos, np.cos, normal(3.0), True),
    ("tan", gc.tan, lambda x: np.sin(x) / np.cos(x), uniform(-1.4, 1.4), True),
    ("asin", gc.asin, np.arcsin, uniform(-0.9, 0.9), True),
    ("acos", gc.acos, np.arccos, uniform(-0.9, 0.9), True),
    ("atan", gc.atan, np.arctan, normal(3.0), True),
    ("sinh", gc.sinh, lambda x: (np.exp(x) - np.exp(-x)) / 2, normal(2.0), True),
    ("cosh", gc.cosh, lambda x: (np.exp(x) + np.exp(-x)) / 2, normal(2.0), True),
    ("asinh", gc.asinh, lambda x: np.log(x + np.sqrt(x * x + 1)), normal(3.0), True),
    ("acosh", gc.acosh, lambda x: np.log(x + np.sqrt(x * x - 1)), uniform(1.2, 4.0), True),
    ("atanh", gc.atanh, lambda x: 0.5 * np.log((1 + x) / (1 - x)), uniform(-0.9, 0.9), True),
    ("expm1", gc.expm1, lambda x: np.exp(x) - 1, normal(), True),
    ("log1p", gc.log1p, lambda x: np.log(1 + x), uniform(-0.8, 3.0), True),
    ("log2", gc.log2, lambda x: np.log(x) / np.log(2.0), uniform(0.2, 5.0), True),
    ("exp2", gc.exp2, lambda x: np.exp(x * np.log(2.0)), normal(2.0), True),
    ("reciprocal", gc.reciprocal, lambda x: 1 / x, nonzero(), True),
    ("rsqrt", gc.rsqrt, lambda x: 1 / np.sqrt(x), uniform(0.2, 4.0), True),
    ("square", gc.square, lambda x: x * x, normal(), True),
    ("floor", gc.floor, _elementwise(math.floor), normal(3.0), False),
    ("ceil", gc.ceil, _elementwise(math.ceil), normal(3.0), False),
    ("trunc", gc.trunc, _elementwise(math.trunc), normal(3.0), False),
    ("round", gc.round, _elementwise(round), normal(3.0), False),  # Python's: half to even
    # activations, away from their kinks (the conventions there: test_conventions.py)
    ("softplus", gc.softplus, _softplus, normal(3.0), True),
    ("silu", gc.silu, lambda x: x * _sigmoid(x), normal(3.0), True),
    ("mish", gc.mish, lambda x: x * np.tanh(np.log(1 + np.exp(x))), normal(3.0), True),
    ("elu", gc.elu, _elu, nonzero(0.1, 3.0), True),
    ("leaky_relu", gc.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), nonzero(0.1, 3.0),
     True),
    ("hardtanh", gc.hardtanh, lambda x: np.clip(x, -1.0, 1.0), grid(0.05), True),
    ("hardsigmoid", gc.hardsigmoid, lambda x: np.clip(x / 6 + 0.5, 0.0, 1.0), spread, True),
    ("hardswish", gc.hardswish, lambda x: x * np.clip(x + 3, 0, 6) / 6, spread, True),
    ("logsigmoid", gc.logsigmoid, lambda x: np.log(_sigmoid(x)), normal(3.0), True),
    ("softsign", gc.softsign, lambda x: x / (1 + np.abs(x)), nonzero(0.1, 3.0), True),
]  # fmt: skip

# (op, builder, NumPy formula, domains, no_grad)
BINARY: list[tuple[str, Callable, Callable, tuple[Gen, ...], tuple[int, ...]]] = [
    ("atan2", gc.atan2, np.arctan2, (nonzero(), nonzero()), ()),
    ("copysign", gc.copysign, lambda x, y: np.abs(x) * np.sign(y), (nonzero(), nonzero()), (1,)),
    ("fmod", gc.fmod, _elementwise(math.fmod), (normal(3.0), nonzero(0.5, 2.0)), ()),
    ("remainder", gc.remainder, _elementwise(_py_remainder), (normal(3.0), nonzero(0.5, 2.0)),
     ()),
    ("floor_divide", gc.floor_divide, _elementwise(_py_floor_divide),
     (normal(3.0), nonzero(0.5, 2.0)), (0, 1)),
]  # fmt: skip

SHAPES = [((3, 4), {}), (("N", 3), {"N": 2}), ((), {}), (("N", 3), {"N": 0})]
BROADCAST = [((3, 4), (4,), {}), (("N", 1), (1, 3), {"N": 2}), ((), (2, 3), {})]


def _same(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """`fn` computed in float64, its result rounded to the operands' dtype (a formula in
    float32 would lose digits the ops keep)."""
    return lambda *xs: np.asarray(
        fn(*(np.asarray(x, np.float64) for x in xs)), dtype=np.result_type(*xs)
    )


def cases(case: Callable[..., Any]) -> list[Any]:
    """The cases, made with test_registry's `case(op, build, numpy, *shapes, **kw)`."""
    out = []
    for k, (op, build, ref, dom, grad) in enumerate(UNARY):
        ref = _same(ref)
        no_grad = None if grad else (0,)
        for s, bind in SHAPES[: 2 + k % 3]:
            out.append(case(op, build, ref, s, bind=bind, domain=(dom,), no_grad=no_grad))
        out.append(case(op, build, ref, (2, 3), dtypes=F32, domain=(dom,), no_grad=no_grad))
    for op, build, ref, doms, no_grad in BINARY:
        ref = _same(ref)
        for s0, s1, bind in BROADCAST:
            out.append(case(op, build, ref, s0, s1, bind=bind, domain=doms, no_grad=no_grad))
        out.append(case(op, build, ref, (2, 3), (3,), dtypes=F32 * 2, domain=doms,
                        no_grad=no_grad))  # fmt: skip
    out += [
        # parameters
        case("softplus", lambda x: gc.softplus(x, beta=2.0, threshold=3.0),
             lambda x: _softplus(x, 2.0, 3.0), (3, 4), domain=(nonzero(0.1, 3.0),),
             label="beta=2,threshold=3"),
        case("elu", lambda x: gc.elu(x, 0.5), lambda x: _elu(x, 0.5), (3, 4),
             domain=(nonzero(0.1, 3.0),), label="alpha=0.5"),
        case("elu", gc.selu, lambda x: SELU[1] * _elu(x, SELU[0]), (3, 4),
             domain=(nonzero(0.1, 3.0),), label="selu"),
        case("elu", lambda x: gc.celu(x, 2.0),
             lambda x: np.maximum(0, x) + np.minimum(0, 2.0 * (np.exp(x / 2.0) - 1)), (3, 4),
             domain=(nonzero(0.1, 3.0),), label="celu"),
        case("leaky_relu", lambda x: gc.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
             (3, 4), domain=(nonzero(0.1, 3.0),), label="0.2"),
        case("hardtanh", gc.relu6, lambda x: np.clip(x, 0.0, 6.0), (3, 4),
             domain=(lambda rng, s: 2.0 * spread(rng, s) + 3.1,), label="relu6"),
        # clip: bounds as values and as numbers, on grids that never tie
        case("clip", gc.clip, lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), (3, 4),
             (4,), (3, 1), domain=(grid(0.05), grid(-0.05), grid(0.12))),
        case("clip", lambda x: gc.clip(x, -0.45, 0.55), lambda x: np.clip(x, -0.45, 0.55),
             ("N", 3), bind={"N": 2}, domain=(grid(0.05),), label="numbers"),
        case("clip", lambda x: gc.clip(x, hi=0.55), lambda x: np.minimum(x, 0.55), (3, 4),
             domain=(grid(0.05),), label="hi"),
        case("clip", lambda x, lo: gc.clamp(x, lo), np.maximum, (3, 4), (), dtypes=F32 * 2,
             domain=(grid(0.05), grid(-0.05)), label="clamp"),
        # x ** y itself, with both operands differentiated, on a positive base
        case("pow", lambda x: gc.pow(x, 0.3), lambda x: x**0.3, (3, 4),
             domain=(uniform(0.5, 2.0),), label="x**0.3"),
    ]  # fmt: skip
    return out


# (id, make(graph)) pairs the ops must reject with a ShapeError
ILLEGAL: list[tuple[str, Callable[[Any], Any]]] = [
    ("sin-bool", lambda g: gc.sin(g.param("x", shape=(3,)) > 0)),
    ("atan2-shapes", lambda g: gc.atan2(g.param("x", shape=(3,)), g.param("y", shape=(4,)))),
    ("softplus-beta", lambda g: gc.softplus(g.param("x", shape=(3,)), beta="two")),
]
