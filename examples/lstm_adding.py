"""The adding problem (Hochreiter & Schmidhuber, 1997) at sequence length 50, with an LSTM.

    python examples/lstm_adding.py [--epochs 8] [--long-epochs 2] [--plot curves.png] [--quick]

Each sequence has T steps of (value in [0, 1], marker); two steps are marked, one in each half,
and the target is the sum of their values. Always answering 1 scores a mean squared error of
about 0.17; the target is a test MSE of at most 0.01 at T = 50. An LSTM (hidden 32) reads the
sequence, a dense layer answers; Adam, compiled into one `train_step`. The LSTM is a loop over
the steps (gc.scan), and T is a symbol like the batch size N: the module is built once, in
seconds, for every length. After the run at T = 50, a second run trains the same model on
sequences of 200 steps (--long-epochs passes) with the same build.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
from training import compile_model, finish, fit, options

import graphc as gc

T, LONG, HIDDEN, TARGET = 50, 200, 32, 0.01


def adding(n: int, rng: np.random.Generator, T: int = T) -> tuple[np.ndarray, np.ndarray]:
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
    x = g.input("x", shape=("N", "T", 2), dtype="float32")  # any batch, any length
    y = g.input("y", shape=("N", 1), dtype="float32")
    h = gc.nn.lstm(x, HIDDEN, "lstm")
    pred = gc.nn.dense(h, 1, "out")
    g.output("loss", gc.mse_loss(pred, y))
    return g


def main(argv: Sequence[str] | None = None) -> int:
    args = options(__doc__.splitlines()[0], epochs=8, argv=argv, extra=_long_epochs)
    rng = np.random.default_rng(args.seed)
    x_train, y_train = adding(20000, rng)
    x_test, y_test = adding(2000, rng)
    g = graph()
    t0 = time.perf_counter()
    cm, params, state = compile_model(g, gc.optim.Adam(lr=3e-3), args)
    print(f"built (or fetched) in {time.perf_counter() - t0:.2f} s: one module for every T")

    def trainer(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], tuple[float, None]]:
        def step(idx: np.ndarray) -> tuple[float, None]:
            out = cm.train_step(x=x[idx], y=y[idx], **params, **state)
            return float(out["loss"]), None

        return step

    def test_mse(x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
        return lambda: float(cm.forward(x=x, y=y, **params)["loss"])

    h = fit(trainer(x_train, y_train), test_mse(x_test, y_test), len(x_train), 64, args.epochs,
            rng, "test MSE", args.quick)  # fmt: skip
    # The second run: sequences four times as long, the same module (T is bound per call).
    x_long, y_long = adding(5000, rng, LONG)
    x_long_test, y_long_test = adding(1000, rng, LONG)
    print(f"T = {LONG}, same build: test MSE {test_mse(x_long_test, y_long_test)():.4f} before "
          "training on it")  # fmt: skip
    epochs = 1 if args.quick else args.long_epochs
    long = fit(trainer(x_long, y_long), test_mse(x_long_test, y_long_test), len(x_long), 64,
               epochs, rng, f"T={LONG} test MSE", args.quick)  # fmt: skip
    print(f"final T={LONG} test MSE: {long.held_out[-1]:.4f}")
    return finish(h, args, TARGET, higher_is_better=False)


def _long_epochs(p: argparse.ArgumentParser) -> None:
    what = f"passes over sequences of {LONG} steps after the run at {T} (2)"
    p.add_argument("--long-epochs", type=int, default=2, help=what)


if __name__ == "__main__":
    sys.exit(main())
