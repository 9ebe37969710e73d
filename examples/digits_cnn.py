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

from digits_mlp import train
from training import options

import graphc as gc

TARGET = 0.98


def graph() -> gc.Graph:
    """The model, as `graphc compile examples/digits_cnn.py` builds it."""
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


def main(argv: Sequence[str] | None = None) -> int:
    args = options(__doc__.splitlines()[0], epochs=30, argv=argv)
    return train(graph(), args, (1, 8, 8), TARGET)


if __name__ == "__main__":
    sys.exit(main())
