"""A small CNN on scikit-learn's 8x8 handwritten digits, as 1x8x8 images (no download).

    python examples/digits_cnn.py [--epochs 30] [--plot curves.png] [--quick]

conv 3x3 (16, padding 1) ReLU -> 2x2 max-pool -> conv 3x3 (32, padding 1) ReLU -> 2x2 max-pool
-> dense 64 ReLU -> 10 classes; softmax cross-entropy on integer labels; Adam, compiled into
one `train_step`. Prints one line per epoch and the held-out accuracy at the end (target: at
least 98%). Needs scikit-learn: pip install 'graphc[examples]'.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from digits_mlp import load
from training import compile_model, fit, options, plot, report

import graphc as gc

TARGET = 0.98


def build() -> gc.Graph:
    g = gc.Graph("digits_cnn")
    x = g.input("x", shape=("N", 1, 8, 8), dtype="float32")
    labels = g.input("labels", shape=("N",), dtype="int64")
    h = gc.nn.conv2d(x, 16, 3, "conv1", padding=1, activation="relu")
    h = gc.max_pool2d(h, 2)  # [N, 16, 4, 4]
    h = gc.nn.conv2d(h, 32, 3, "conv2", padding=1, activation="relu")
    h = gc.max_pool2d(h, 2)  # [N, 32, 2, 2]
    h = gc.nn.dense(gc.nn.flatten(h), 64, "fc", activation="relu")
    logits = gc.nn.dense(h, 10, "out")
    g.output("loss", gc.softmax_cross_entropy(logits, labels))
    g.output("logits", logits)
    return g


def main(argv: Sequence[str] | None = None) -> float:
    args = options(__doc__.splitlines()[0], epochs=30, argv=argv)
    x_train, x_test, y_train, y_test = load(args.seed)
    x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
    g = build()
    cm, params, state = compile_model(g, gc.optim.Adam(lr=2e-3), args)

    def step(idx: np.ndarray) -> tuple[float, float]:
        out = cm.train_step(x=x_train[idx], labels=y_train[idx], **params, **state)
        return float(out["loss"]), float(np.mean(out["logits"].argmax(1) == y_train[idx]))

    def accuracy() -> float:
        logits = cm.forward(x=x_test, labels=y_test, **params)["logits"]
        return float(np.mean(logits.argmax(1) == y_test))

    rng = np.random.default_rng(args.seed)
    h = fit(step, accuracy, len(x_train), 32, args.epochs, rng, "test accuracy", args.quick)
    if args.plot:
        plot(h, args.plot)
    return report(h, TARGET, quick=args.quick)


if __name__ == "__main__":
    sys.exit(0 if main() >= TARGET or "--quick" in sys.argv else 1)
