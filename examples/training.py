"""What the training examples share: their command line, shuffled batches, the loop that prints
progress (epoch, loss, accuracy, examples/s) and the training-curve plot.

Each example builds its model with graphc.nn, compiles it with an optimiser into a module with
`train_step`, and hands this loop a function that runs one step on a batch.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import graphc as gc

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"


def options(
    description: str, epochs: int, argv: Sequence[str] | None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:  # fmt: skip
    """The common options: --epochs, --seed, --plot FILE.png, --quick (a smoke run), and an
    example's own (`extra` adds them)."""
    p = argparse.ArgumentParser(description=description)
    if extra is not None:
        extra(p)
    p.add_argument("--epochs", type=int, default=epochs, help=f"passes over the data ({epochs})")
    p.add_argument("--seed", type=int, default=0, help="seed of the data split and the params")
    p.add_argument("--plot", metavar="FILE.png", help="write loss/accuracy curves (matplotlib)")
    p.add_argument(
        "--quick", action="store_true", help="a smoke run: a few steps, no accuracy target"
    )
    p.add_argument("--build-dir", "--out", dest="out", default=str(BUILD), metavar="DIR",
                   help="where the compiled module is cached (default: build/)")  # fmt: skip
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 1
    return args


def compile_model(
    g: gc.Graph, optimizer: gc.optim.Optimizer, args: argparse.Namespace
) -> tuple[Any, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The model compiled in float32 with `train_step` (and `forward` for evaluation; no
    `value_and_grad`, which training does not call), its initial params and optimiser state."""
    cm = gc.compile(g, optimizer=optimizer, dtype="float32", out_dir=args.out,
                    functions=("forward", "train_step"))  # fmt: skip
    params = gc.nn.init_params(g, seed=args.seed, dtype="float32")
    return cm, params, cm.init_state(params)


def need(module: str, extra: str) -> None:
    """Exit with how to install an optional dependency when it is missing."""
    try:
        __import__(module)
    except ImportError:
        sys.exit(f"this example needs {module}: pip install 'graphc[{extra}]' (or pip install "
                 f"{'scikit-learn' if module == 'sklearn' else module})")  # fmt: skip


def batches(n: int, size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Indices of one shuffled pass over n examples, `size` at a time (the last may be short)."""
    order = rng.permutation(n)
    for start in range(0, n, size):
        yield order[start : start + size]


def warmup_cosine(peak: float, warmup: int, total: int) -> Callable[[int], float]:
    """The learning rate of step k: a linear warm-up from 0 to `peak` over `warmup` steps,
    then a cosine decay to 0 at step `total` (the schedule of most Transformer recipes)."""

    def lr(k: int) -> float:
        if k < warmup:
            return peak * (k + 1) / warmup
        done = min(1.0, (k - warmup) / max(1, total - warmup))
        return 0.5 * peak * (1.0 + math.cos(math.pi * done))

    return lr


@dataclass
class History:
    metric: str  # the held-out metric's name, e.g. "test accuracy"
    epochs: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    train: list[float] = field(default_factory=list)  # training accuracy (or None)
    held_out: list[float] = field(default_factory=list)
    at: list[float] = field(default_factory=list)  # each step, in epochs (1.5: half way on)
    step_loss: list[float] = field(default_factory=list)  # each step's training loss


def fit(
    step: Callable[[np.ndarray], tuple[float, float | None]],
    held_out: Callable[[], float],
    n: int,
    batch: int,
    epochs: int,
    rng: np.random.Generator,
    metric: str,
    quick: bool = False,
) -> History:
    """Run `epochs` passes; `step(indices)` trains on one batch and returns (loss, accuracy or
    None); `held_out()` gives the metric after each epoch. Prints one line per epoch, and in a
    terminal a progress bar with the batch loss and examples/s during it (when tqdm is
    installed: the `examples` extra)."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    h = History(metric)
    for epoch in range(1, epochs + 1):
        t0, seen, losses, accs = time.perf_counter(), 0, [], []
        bar = None if tqdm is None else tqdm(
            total=n, desc=f"epoch {epoch}", unit=" examples", unit_scale=True, leave=False,
            disable=None,  # only in a terminal
        )  # fmt: skip
        for k, idx in enumerate(batches(n, batch, rng)):
            loss, acc = step(idx)
            h.at.append(epoch - 1 + (seen + len(idx)) / n)
            h.step_loss.append(loss)
            losses.append(loss * len(idx))
            accs.append(None if acc is None else acc * len(idx))
            seen += len(idx)
            if bar is not None:
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                bar.update(len(idx))
            if quick and k == 4:
                break
        if bar is not None:
            bar.close()
        rate = seen / (time.perf_counter() - t0)
        h.epochs.append(epoch)
        h.loss.append(sum(losses) / seen)
        h.train.append(None if None in accs else sum(accs) / seen)  # type: ignore[arg-type]
        h.held_out.append(held_out())
        train = "" if h.train[-1] is None else f"  train acc {h.train[-1]:.4f}"
        print(f"epoch {epoch:3d}  loss {h.loss[-1]:.4f}{train}  {metric} {h.held_out[-1]:.4f}"
              f"  {rate:,.0f} examples/s", flush=True)  # fmt: skip
    return h


def plot(h: History, path: str) -> None:
    """Loss and accuracy curves side by side, written to `path`."""
    need("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(h.at, h.step_loss, lw=0.6, alpha=0.5, label="each step")
    a.plot(h.epochs, h.loss, marker="o", label="epoch mean")
    a.set(xlabel="epoch", ylabel="training loss", yscale="log", title="loss")
    a.legend()
    if any(t is not None for t in h.train):
        b.plot(h.epochs, h.train, marker="o", label="train accuracy")
    b.plot(h.epochs, h.held_out, marker="o", label=h.metric)
    b.set(xlabel="epoch", title="accuracy" if any(t is not None for t in h.train) else h.metric)
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def finish(
    h: History, args: argparse.Namespace, target: float, higher_is_better: bool = True
) -> int:
    """Plot the curves if asked (--plot), print the final held-out metric against its target;
    returns the exit status: 0 when the target is reached (or on a --quick smoke run)."""
    if args.plot:
        plot(h, args.plot)
    final = h.held_out[-1]
    met = final >= target if higher_is_better else final <= target
    goal = f"{'>=' if higher_is_better else '<='} {target}"
    status = "(smoke run: no target)" if args.quick else ("reached" if met else "MISSED")
    print(f"final {h.metric}: {final:.4f}  target {goal}: {status}")
    return 0 if met or args.quick else 1
