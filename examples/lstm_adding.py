"""The adding problem (Hochreiter & Schmidhuber, 1997) at sequence length 50, with an LSTM.

    python examples/lstm_adding.py [--epochs 8] [--plot curves.png] [--quick]

Each sequence has 50 steps of (value in [0, 1], marker); two steps are marked, one in each half,
and the target is the sum of their values. Always answering 1 scores a mean squared error of
about 0.17; the target is a test MSE of at most 0.01. An LSTM (hidden 32) unrolled over the 50
steps reads the sequence, a dense layer answers; Adam, compiled into one `train_step`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from training import compile_model, finish, fit, options

import graphc as gc

T, HIDDEN, TARGET = 50, 32, 0.01


def adding(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n sequences [n, T, 2] and their targets [n, 1]."""
    values = rng.uniform(0.0, 1.0, (n, T))
    first = rng.integers(0, T // 2, n)
    second = rng.integers(T // 2, T, n)
    marks = np.zeros((n, T))
    marks[np.arange(n), first] = marks[np.arange(n), second] = 1.0
    x = np.stack([values, marks], axis=-1).astype(np.float32)
    y = (values[np.arange(n), first] + values[np.arange(n), second]).astype(np.float32)
    return x, y[:, None]


def graph() -> gc.Graph:
    """The model, as `graphc compile examples/lstm_adding.py` builds it."""
    g = gc.Graph("lstm_adding")
    x = g.input("x", shape=("N", T, 2), dtype="float32")
    y = g.input("y", shape=("N", 1), dtype="float32")
    h = gc.nn.lstm(x, HIDDEN, "lstm")
    pred = gc.nn.dense(h, 1, "out")
    g.output("loss", gc.mse_loss(pred, y))
    return g


def main(argv: Sequence[str] | None = None) -> int:
    args = options(__doc__.splitlines()[0], epochs=8, argv=argv)
    rng = np.random.default_rng(args.seed)
    x_train, y_train = adding(20000, rng)
    x_test, y_test = adding(2000, rng)
    g = graph()
    cm, params, state = compile_model(g, gc.optim.Adam(lr=3e-3), args)

    def step(idx: np.ndarray) -> tuple[float, None]:
        out = cm.train_step(x=x_train[idx], y=y_train[idx], **params, **state)
        return float(out["loss"]), None

    def test_mse() -> float:
        return float(cm.forward(x=x_test, y=y_test, **params)["loss"])

    h = fit(step, test_mse, len(x_train), 64, args.epochs, rng, "test MSE", args.quick)
    return finish(h, args, TARGET, higher_is_better=False)


if __name__ == "__main__":
    sys.exit(main())
