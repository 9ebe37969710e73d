"""A model's value_and_grad compiled without and with memory_budget=, and the two compared bit
for bit: what the tests of checkpointed loops (passes/scan_remat.py) each check."""

from pathlib import Path
from typing import Any

import numpy as np

import graphc as gc


def plain_and_budgeted(g: gc.Graph, out: Path, loops: int = 1, **kw: Any) -> tuple[Any, Any]:
    """`g`'s value_and_grad built without a budget and with memory_budget=1 (into folders of
    `out`; `kw` for both), the second splitting `loops` loops."""
    kw = {"functions": ["value_and_grad"], **kw}
    plain = gc.compile(g, out_dir=out / "plain", **kw)
    budget = gc.compile(g, out_dir=out / "budget", memory_budget=1, **kw)
    assert budget.stages.checkpointing.loops == loops
    return plain, budget


def same_steps(plain: Any, budget: Any, what: str = "", **inputs: np.ndarray) -> dict:
    """Both modules' value_and_grad on `inputs`: the loss and every gradient bit for bit; the
    gradients."""
    (a, ga), (b, gb) = plain.value_and_grad(**inputs), budget.value_and_grad(**inputs)
    np.testing.assert_array_equal(a["loss"], b["loss"], err_msg=what)
    assert ga.keys() == gb.keys(), what
    for key in ga:
        np.testing.assert_array_equal(ga[key], gb[key], err_msg=f"{what} {key}")
    return gb
