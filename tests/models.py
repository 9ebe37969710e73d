"""Small models shared by the tests."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import graphc as gc

ROOT = Path(__file__).resolve().parent.parent
SHARED_REFERENCE = ROOT.parent / "shared" / "reference" / "seed_network.json"
REFERENCE_COPY = ROOT / "tests" / "reference" / "seed_network.json"

# For tests that build modules themselves rather than through gc.compile.
NEEDS_CC = pytest.mark.skipif(
    not (os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")),
    reason="needs a C compiler",
)


def seed_net() -> gc.Graph:
    """The seed network of examples/seed_network.py, built here independently."""
    g = gc.Graph("seed_net")
    x = g.input("x", shape=("N", 3))
    y = g.input("y", shape=("N", 2))
    W1 = g.param("W1", shape=(2, 3))
    b1 = g.param("b1", shape=(2,))
    W2 = g.param("W2", shape=(2, 2))
    b2 = g.param("b2", shape=(1,))
    a1 = gc.sigmoid(x @ W1.T + b1)
    y_hat = gc.sigmoid(a1 @ W2.T + b2)
    g.output("loss", gc.mean((y_hat - y) ** 2))
    return g


def seed_reference() -> dict:
    """The published seed-network values: the shared reference file where it is present (a
    checkout beside the project's shared folder), else the project's copy of it
    (tests/reference/, which a test checks against the file)."""
    path = SHARED_REFERENCE if SHARED_REFERENCE.is_file() else REFERENCE_COPY
    return json.loads(path.read_text())


def seed_inputs() -> dict[str, np.ndarray]:
    """The published seed-network inputs as float64 arrays."""
    return {k: np.array(v, dtype=np.float64) for k, v in seed_reference()["inputs"].items()}


def elementwise_chain() -> gc.Graph:
    """The elementwise benchmark: every op of the forward and backward pass is elementwise."""
    g = gc.Graph("ew_chain")
    x, a, b = (g.param(k, shape=("N",)) for k in "xab")
    g.output("loss", gc.sum(gc.tanh(x * a + b) * gc.sigmoid(x) - gc.exp(-x * x)))
    return g


def two_towers(width: int = 256) -> gc.Graph:
    """Two independent softmax kernels, each a mid-sized step on one thread."""
    g = gc.Graph("two_towers")
    x, y = g.input("x", shape=("N", width)), g.input("y", shape=("N", width))
    a, c = g.param("a", shape=(width,)), g.param("c", shape=(width,))
    g.output("loss", gc.sum(gc.softmax(x) * a) + gc.sum(gc.log_softmax(y) * c))
    return g


def mlp(rng: np.random.Generator, hidden: int = 5) -> tuple[gc.Graph, dict]:
    """A two-layer tanh MLP with softmax cross-entropy, and inputs for it."""
    g = gc.Graph("mlp")
    x = g.input("x", shape=("N", 4))
    t = g.input("t", shape=("N", 3))
    W1 = g.param("W1", shape=(4, hidden))
    b1 = g.param("b1", shape=(hidden,))
    W2 = g.param("W2", shape=(hidden, 3))
    h = gc.tanh(x @ W1 + b1)
    g.output("loss", gc.softmax_cross_entropy(h @ W2, t))
    inputs = {
        "x": rng.normal(size=(6, 4)),
        "t": np.eye(3)[rng.integers(0, 3, 6)],
        "W1": rng.normal(size=(4, hidden)),
        "b1": rng.normal(size=(hidden,)),
        "W2": rng.normal(size=(hidden, 3)),
    }
    return g, inputs


def central_diff(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences in float64, f a scalar function of the array x."""
    x = np.array(x, dtype=np.float64)
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        hi = f(x)
        x[i] = old - eps
        lo = f(x)
        x[i] = old
        out[i] = (hi - lo) / (2 * eps)
    return out
