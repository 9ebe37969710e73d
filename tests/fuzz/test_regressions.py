"""Regression tests: each is a failure the fuzz tests (test_fuzz.py) found, shrunk to a small
model and written out by hand. Those that still fail because of a bug in graphc are strict
xfails whose reason says what is wrong; each turns into a failure once the bug is fixed, and
then its mark comes off.

Calls into compiled modules run in a child process (checks.isolated), since some of these
bugs read through a wild pointer and may crash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graphc as gc
from graphc.compiler import run_stages
from graphc.ops._build import apply
from tests.fuzz.checks import aliases_set_too_early, compare_all, isolated, model_scales


def value_and_grad(m: Any, feed: dict[str, np.ndarray]) -> tuple[dict, dict]:
    return m.value_and_grad(**feed)


def compiled_problems(
    m: Any, g: gc.Graph, feed: dict[str, np.ndarray], rtol: float = 1e-9
) -> list[str]:
    """How module m's outputs and gradients differ from the interpreter's."""
    outs, grads = isolated(value_and_grad, m, feed)
    want_outs, want_grads = gc.value_and_grad(g, feed, of="loss")
    scales = model_scales(want_outs, want_grads)
    return compare_all("output", outs, want_outs, rtol, scales) + compare_all(
        "gradient", grads, want_grads, rtol, scales
    )


# ---- checkpointing ------------------------------------------------------------------------------
def recomputed_through_a_reshape() -> gc.Graph:
    """h @ w with h 1-d: its gradient in w reads h through a reshape to [1, 3]. The max comes
    first, so that with every second saved value kept, h is recomputed in the backward pass."""
    g = gc.Graph("ck_reshape")
    p0 = g.param("p0", shape=())
    p1 = g.param("p1", shape=(3,))
    top = gc.max(p1, axis=0, keepdims=True)
    x = g.input("x", shape=(3,))
    w = g.param("w", shape=(3, 1))
    h = gc.where(x >= -0.3, p1, p0)
    g.output("loss", gc.sum(h @ w) + gc.sum(top))
    return g


@pytest.mark.compiler
def test_checkpointing_a_value_read_through_a_reshape(tmp_path: Path) -> None:
    """The reshape view of the recomputed h must get its pointer after h's clone has its own.
    (It came first, `b.v17 = b.v43` before `b.v43 = ...`: the gradient in w was read through
    an uninitialised pointer, garbage or a crash.)"""
    g = recomputed_through_a_reshape()
    rng = np.random.default_rng(0)
    feed = {"p0": np.array(0.5), "p1": rng.uniform(0.5, 2.0, 3), "x": rng.normal(size=3),
            "w": rng.normal(size=(3, 1))}  # fmt: skip
    m = gc.compile(g, out_dir=tmp_path, memory_budget=1, functions=["value_and_grad"])
    assert m.stages.checkpointing.recomputed_steps > 0  # the case needs recomputation
    assert not aliases_set_too_early(m.source)
    problems = compiled_problems(m, g, feed)
    assert not problems, "\n".join(problems)


def chain_beside_data() -> gc.Graph:
    """A chain of erf/tanh steps over [N, 2] (what checkpointing recomputes) beside sums over
    data of [N, 2, 3, 6] that take most of the arena."""
    g = gc.Graph("ck_arena")
    p = g.param("p", shape=("N", 2))
    labels = g.input("labels", shape=("N",), dtype="int64")
    x = g.input("x", shape=("N", 2, 3, 6))
    box = {"starts": (0, 0, 1, 0), "stops": ("N", 2, 2, 2), "steps": (1, 1, 1, 2)}
    part = apply("slice_grad", apply("slice", x, **box), shape=("N", 2, 3, 6), **box)
    doubled = gc.concat([x, x], axis=-3)
    w = g.param("w", shape=(2,))
    h = gc.one_hot(labels, 2) * p
    h = gc.tanh(gc.erf(h * w) * w)
    h = gc.tanh(gc.erf(h * w)) * w
    h = gc.tanh(h) * w * w
    g.output("loss", gc.sum(h) + gc.sum(doubled) + gc.sum(part))
    return g


def test_checkpointing_never_grows_the_arena() -> None:
    """With a budget it cannot meet, checkpointing keeps "the smallest found": never a plan
    larger than no checkpointing at all, which is one of the candidates. It used to rank its
    candidates by quick plans only and keep the smallest of those, whose final plan was larger
    than the unbudgeted one here (189056 bytes against 188544; every=5 gives 155968)."""
    c = run_stages(chain_beside_data(), memory_budget=1, functions=["value_and_grad"]).checkpointing
    assert c.arena_bytes <= c.unbudgeted_arena_bytes, str(c)
