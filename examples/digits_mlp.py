"""An MLP on scikit-learn's 8x8 handwritten digits (bundled with scikit-learn: no download).

    python examples/digits_mlp.py [--epochs 40] [--plot curves.png] [--quick]

64 pixels -> 128 ReLU -> 64 ReLU -> 10 classes, softmax cross-entropy on integer labels, Adam,
compiled into one `train_step` that updates the params and Adam's state in place. Prints one
line per epoch and the held-out accuracy at the end (target: at least 97%).
Needs scikit-learn: pip install 'graphc[examples]'.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
from training import compile_model, finish, fit, need, options

import graphc as gc

TARGET = 0.97


def graph() -> gc.Graph:
    """The model, as `graphc compile examples/digits_mlp.py` builds it."""
    g = gc.Graph("digits_mlp")
    x = g.input("x", shape=("N", 64), dtype="float32")
    labels = g.input("labels", shape=("N",), dtype="int64")
    h = gc.nn.dense(x, 128, "fc1", activation="relu")
    h = gc.nn.dense(h, 64, "fc2", activation="relu")
    logits = gc.nn.dense(h, 10, "out")
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    g.output("logits", logits)
    return g


def load(seed: int) -> tuple[np.ndarray, ...]:
    """Train/test split (75/25, stratified) of the 1797 digits, pixels scaled to [0, 1]."""
    need("sklearn", "examples")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return tuple(train_test_split(x, y.astype(np.int64), test_size=0.25, random_state=seed,
                                  stratify=y))  # fmt: skip


def train(
    g: gc.Graph, args: argparse.Namespace, image_shape: tuple[int, ...], target: float
) -> int:
    """Train digits model `g` (inputs x of `image_shape` per example, int labels; outputs loss
    and logits) with Adam; returns the exit status: 0 if the test accuracy reaches `target`."""
    x_train, x_test, y_train, y_test = load(args.seed)
    x_train, x_test = (a.reshape(-1, *image_shape) for a in (x_train, x_test))
    cm, params, state = compile_model(g, gc.optim.Adam(lr=2e-3), args)

    def step(idx: np.ndarray) -> tuple[float, float]:
        out = cm.train_step(x=x_train[idx], labels=y_train[idx], **params, **state)
        return float(out["loss"]), float(np.mean(out["logits"].argmax(1) == y_train[idx]))

    def accuracy() -> float:
        logits = cm.forward(x=x_test, labels=y_test, **params)["logits"]
        return float(np.mean(logits.argmax(1) == y_test))

    rng = np.random.default_rng(args.seed)
    h = fit(step, accuracy, len(x_train), 32, args.epochs, rng, "test accuracy", args.quick)
    return finish(h, args, target)


def main(argv: Sequence[str] | None = None) -> int:
    args = options(__doc__.splitlines()[0], epochs=40, argv=argv)
    return train(graph(), args, (64,), TARGET)


if __name__ == "__main__":
    sys.exit(main())
