"""Input domains for generated test cases: functions (rng, shape) -> array, chosen so that
finite differences see a smooth function and comparisons see (or avoid) ties on purpose."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Gen = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def normal(scale: float = 1.0) -> Gen:
    return lambda rng, shape: scale * rng.standard_normal(shape)


def uniform(lo: float = 0.5, hi: float = 2.0) -> Gen:
    return lambda rng, shape: rng.uniform(lo, hi, shape)


positive = uniform  # the default range is positive: log, sqrt, a pow base


def nonzero(lo: float = 0.2, hi: float = 2.0) -> Gen:
    """Values at least `lo` away from 0 (the kink of relu, abs, and the pole of 1/x)."""
    return lambda rng, shape: rng.choice([-1.0, 1.0], shape) * rng.uniform(lo, hi, shape)


def grid(offset: float) -> Gen:
    """Values 0.2 k + offset: operands with offsets +0.05 and -0.05 never tie (gap >= 0.1)."""
    return lambda rng, shape: 0.2 * rng.integers(-5, 6, shape) + offset


def distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """All values different (gap 0.1), so a max has a single argmax."""
    n = math.prod(shape)
    return (rng.permutation(n) * 0.1 - 0.05 * n).reshape(shape)


def small_ints(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values in {-1, 0, 1, 2}: comparisons, maximum and max see ties."""
    return rng.integers(-1, 3, shape).astype(np.float64)


def fine_grid(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Multiples of 2^-10 in [-1, 1): exact in float32."""
    return rng.integers(-1024, 1024, shape) / 1024.0


def mask(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 2, shape).astype(bool)
