"""A 2-layer Transformer encoder learns to reverse sequences of 10 tokens over a vocabulary of 16.

    python examples/transformer_reverse.py [--epochs 3] [--plot curves.png] [--quick]

Token embeddings plus sinusoidal positions, two pre-norm encoder blocks (4 heads, width 64,
feed-forward 128), a dense layer to the 16 classes at every position; softmax cross-entropy
against the reversed sequence, Adam, compiled into one `train_step`, its learning rate warmed
up then decayed along a cosine (passed to each step: `train_step(..., lr=...)`, no rebuild).
Target: at least 99% of the tokens of held-out sequences right.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from training import compile_model, finish, fit, options, warmup_cosine

import graphc as gc

LENGTH, VOCAB, WIDTH, HEADS, FF, TARGET = 10, 16, 64, 4, 128, 0.99
BATCH, PEAK_LR = 64, 2e-3


def graph() -> gc.Graph:
    """The model, as `graphc compile examples/transformer_reverse.py` builds it."""
    g = gc.Graph("transformer_reverse")
    tokens = g.input("tokens", shape=("N", LENGTH), dtype="int64")
    target = g.input("target", shape=("N", LENGTH), dtype="int64")
    h = gc.nn.positional_encoding(gc.nn.embedding(tokens, VOCAB, WIDTH, "embed"))
    h = gc.nn.transformer_encoder_block(h, HEADS, FF, "block1")
    h = gc.nn.transformer_encoder_block(h, HEADS, FF, "block2")
    logits = gc.nn.dense(gc.nn.layer_norm(h, "ln_out"), VOCAB, "out")  # [N, LENGTH, VOCAB]
    g.output("loss", gc.softmax_cross_entropy(logits, target))
    g.output("logits", logits)
    return g


def main(argv: Sequence[str] | None = None) -> int:
    args = options(__doc__.splitlines()[0], epochs=3, argv=argv)
    rng = np.random.default_rng(args.seed)
    x_train = rng.integers(0, VOCAB, (40000, LENGTH))
    x_test = rng.integers(0, VOCAB, (2000, LENGTH))
    y_train, y_test = x_train[:, ::-1].copy(), x_test[:, ::-1].copy()
    g = graph()
    cm, params, state = compile_model(g, gc.optim.Adam(lr=PEAK_LR), args)
    steps = args.epochs * -(-len(x_train) // BATCH)
    lr = warmup_cosine(PEAK_LR, warmup=steps // 20, total=steps)
    done = [0]

    def step(idx: np.ndarray) -> tuple[float, float]:
        out = cm.train_step(tokens=x_train[idx], target=y_train[idx], **params, **state,
                            lr=lr(done[0]))  # fmt: skip
        done[0] += 1
        return float(out["loss"]), float(np.mean(out["logits"].argmax(-1) == y_train[idx]))

    def accuracy() -> float:
        logits = cm.forward(tokens=x_test, target=y_test, **params)["logits"]
        return float(np.mean(logits.argmax(-1) == y_test))

    h = fit(step, accuracy, len(x_train), BATCH, args.epochs, rng, "test token accuracy",
            args.quick)  # fmt: skip
    return finish(h, args, TARGET)


if __name__ == "__main__":
    sys.exit(main())
