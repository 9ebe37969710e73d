"""Compiled-versus-interpreter models for the elementwise functions and activations
(graphc/ops/math.py, activations.py), merged into cases.MODELS: every op over a batch and under
broadcasting, with its gradient, and over NaN, infinities, signed zeros and large values
against NumPy's own functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

import graphc as gc
from tests.codegen.cases import NAN, In, Model, fixed
from tests.domains import Gen, grid, nonzero, normal, uniform

INF = math.inf
# Special values (and a few beyond which the functions change their formula)
SPECIAL = fixed([NAN, INF, -INF, 0.0, -0.0, 40.0, -40.0, 1e-300, -6.0, 0.5, 1.0, -1.0, 3.0,
                 -3.0, 2.5, 750.0, -750.0, 0.3, 1e-20, 30.0])  # fmt: skip
SPECIAL_B = fixed([1.0, -2.0, INF, -0.0, 0.0, 3.0, -3.0, NAN, 2.0, -0.25, 0.0, INF, -INF,
                   -1.5, 1.0, 7.0, -7.0, 0.1, -1e-20, 4.0])  # fmt: skip
NORMAL3 = normal(3.0)
UNIT = uniform(-0.9, 0.9)
ABOVE1 = uniform(1.2, 4.0)
POS = uniform(0.2, 4.0)
NONZERO = nonzero(0.1, 3.0)
DIVISOR = nonzero(0.5, 2.0)


def SPREAD(rng: np.random.Generator, shape: tuple) -> np.ndarray:  # noqa: N802
    """0.8 k + 0.1 for k in -6..6: both sides of the kinks at -3 and 3, never on them."""
    return 0.8 * rng.integers(-6, 7, shape) + 0.1


X, LO, HI = grid(0.05), grid(-0.05), grid(0.12)


def _remainder(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    mod = np.fmod(x, y)
    return np.where((mod != 0) & ((y < 0) != (mod < 0)), mod + y, mod)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.where(x > 20.0, x, np.log1p(np.exp(x)))


# (op, builder, domain, NumPy function over the special values or None, has a gradient)
UNARY: list[tuple[str, Callable, Gen, Callable | None, bool]] = [
    ("sin", gc.sin, NORMAL3, np.sin, True),
    ("cos", gc.cos, NORMAL3, np.cos, True),
    ("tan", gc.tan, UNIT, np.tan, True),
    ("asin", gc.asin, UNIT, np.arcsin, True),
    ("acos", gc.acos, UNIT, np.arccos, True),
    ("atan", gc.atan, NORMAL3, np.arctan, True),
    ("sinh", gc.sinh, normal(2.0), np.sinh, True),
    ("cosh", gc.cosh, normal(2.0), np.cosh, True),
    ("asinh", gc.asinh, NORMAL3, np.arcsinh, True),
    ("acosh", gc.acosh, ABOVE1, np.arccosh, True),
    ("atanh", gc.atanh, UNIT, np.arctanh, True),
    ("expm1", gc.expm1, normal(), np.expm1, True),
    ("log1p", gc.log1p, POS, np.log1p, True),
    ("log2", gc.log2, POS, np.log2, True),
    ("exp2", gc.exp2, normal(2.0), np.exp2, True),
    ("reciprocal", gc.reciprocal, NONZERO, np.reciprocal, True),
    ("rsqrt", gc.rsqrt, POS, lambda x: 1.0 / np.sqrt(x), True),
    ("square", gc.square, normal(), np.square, True),
    ("floor", gc.floor, NORMAL3, np.floor, False),
    ("ceil", gc.ceil, NORMAL3, np.ceil, False),
    ("trunc", gc.trunc, NORMAL3, np.trunc, False),
    ("round", gc.round, NORMAL3, np.rint, False),
    ("softplus", gc.softplus, NORMAL3, _softplus, True),
    ("silu", gc.silu, NORMAL3, lambda x: x / (1.0 + np.exp(-x)), True),
    ("mish", gc.mish, NORMAL3, lambda x: x * np.tanh(np.log1p(np.exp(x))), True),
    ("elu", gc.elu, NONZERO, lambda x: np.where(x > 0, x, np.expm1(x)), True),
    ("leaky_relu", gc.leaky_relu, NONZERO, lambda x: np.where(x > 0, x, x * 0.01), True),
    ("hardtanh", gc.hardtanh, X, lambda x: np.minimum(np.maximum(x, -1.0), 1.0), True),
    ("hardsigmoid", gc.hardsigmoid, SPREAD,
     lambda x: np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0, True),
    ("hardswish", gc.hardswish, SPREAD,
     lambda x: x * np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0, True),
    ("logsigmoid", gc.logsigmoid, NORMAL3,
     lambda x: np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x))), True),
    ("softsign", gc.softsign, NONZERO, lambda x: x / (1.0 + np.abs(x)), True),
]  # fmt: skip
BINARY: list[tuple[str, Callable, tuple[Gen, Gen], Callable, tuple[bool, bool]]] = [
    ("atan2", gc.atan2, (NONZERO, NONZERO), np.arctan2, (True, True)),
    ("copysign", gc.copysign, (NONZERO, NONZERO), np.copysign, (True, False)),
    ("fmod", gc.fmod, (NORMAL3, DIVISOR), np.fmod, (True, True)),
    ("remainder", gc.remainder, (NORMAL3, DIVISOR), _remainder, (True, True)),
    ("floor_divide", gc.floor_divide, (NORMAL3, DIVISOR), np.floor_divide, (False, False)),
]
SHAPES = [("N", 3), (2, 1, 3), ()]
PAIRS = [(("N", 3), (3,)), ((2, 1, 3), ("N", 1)), ((), ("N", 3))]


def add_unary(m: Model, every: int = 1, special: bool = True) -> None:
    for k, (op, fn, gen, ref, grad) in enumerate(UNARY):
        if k % every:
            continue
        s = SHAPES[k % len(SHAPES)]
        m.case(f"{op}[{','.join(map(str, s))}]", op, fn, In(s, gen, grad=grad))
        if special:
            m.case(f"{op}[special]", op, fn, In((20,), SPECIAL, grad=False), numpy=ref)


def add_binary(m: Model, special: bool = True) -> None:
    for k, (op, fn, (gx, gy), ref, grads) in enumerate(BINARY):
        sx, sy = PAIRS[k % len(PAIRS)]
        m.case(f"{op}[{sx}|{sy}]", op, fn, In(sx, gx, grads[0]), In(sy, gy, grads[1]))
        if special:
            m.case(f"{op}[special]", op, fn, In((20,), SPECIAL, grad=False),
                   In((20,), SPECIAL_B, grad=False), numpy=ref)  # fmt: skip


def add_conventions(m: Model) -> None:
    """Clip with bounds as values and numbers; activations with parameters; x ** y at the
    points where PyTorch's conventions decide (their gradients against the interpreter's)."""
    m.case("clip[x|lo|hi]", "clip", gc.clip, In(("N", 3), X), In((3,), LO), In((), HI))
    m.case("clip[x,-0.45,0.55]", "clip", lambda x: gc.clip(x, -0.45, 0.55), In(("N", 3), X))
    m.case("clip[special]", "clip", lambda x, y: gc.clip(x, -1.0, y),
           In((20,), SPECIAL, grad=False), In((20,), SPECIAL_B, grad=False),
           numpy=lambda x, y: np.minimum(np.maximum(x, -1.0), y))  # fmt: skip
    m.case(
        "softplus[beta=2,threshold=3]",
        "softplus",
        lambda x: gc.softplus(x, beta=2.0, threshold=3.0),
        In(("N", 3), NORMAL3),
    )
    m.case("selu", "elu", gc.selu, In(("N", 3), NONZERO))
    m.case("celu[2]", "elu", lambda x: gc.celu(x, 2.0), In(("N", 3), NONZERO))
    m.case("relu6", "hardtanh", gc.relu6, In((4,), fixed(np.linspace(-2.3, 7.7, 4))))
    m.case("pow[at 0]", "pow", lambda x, y: x**y,
           In((6,), fixed([0.0, 0.0, 0.0, 0.0, 2.0, 0.0])),
           In((6,), fixed([0.0, 0.3, 2.0, -1.5, 0.0, 1.0])))  # fmt: skip


def math_model(name: str) -> Model:
    m = Model(name)
    add_unary(m)
    add_binary(m)
    add_conventions(m)
    return m.finish()


def math_f32_model(name: str) -> Model:
    m = Model(name)
    add_unary(m, every=1, special=False)
    add_binary(m, special=False)
    m.case("clip[x|lo|hi]", "clip", gc.clip, In(("N", 3), X), In((3,), LO), In((), HI))
    return m.finish()


MODELS: dict[str, tuple[Callable[[str], Model], tuple[str, ...]]] = {
    "math": (math_model, ("float64",)),
    "math_f32": (math_f32_model, ("float32",)),
}
