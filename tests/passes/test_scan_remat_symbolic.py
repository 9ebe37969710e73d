"""Sizes derived from a symbolic trip count T (ir/shapes.py), for checkpointing loops whose T
is a symbol: T // k, T mod k, ceil(T / k), and the sums and slices that put the steps of a
loop split every k together again."""

from __future__ import annotations

import pytest

import graphc as gc
from graphc.errors import GraphError
from graphc.ir.shapes import dim_value, fits, hinted, split_steps, steps_sum, tail_after


def test_derived_sizes() -> None:
    """T // k, T mod k, ceil(T / k), the whole segments and the tail of a loop run first to
    last (ceil(T / k) - 1, at least 0, and the rest), at every T; the sums and slices that
    put the steps together again."""
    for T in range(40):
        q, r, c, p, e = (dim_value(f"T__{x}5", {"T": T}) for x in "qrcpe")
        assert (q, r, c) == (T // 5, T % 5, -(-T // 5))
        assert 5 * p + e == T and 0 <= p <= max(c - 1, 0) and (e >= 1 or T == 0) and e <= 5
    assert hinted("2*N*T__q16", 256) == 2 * 256 * 16
    assert split_steps("T", 4, True) == ("T__q4", "T__q4", "T__r4")
    assert split_steps("T", 4, False) == ("T__c4", "T__p4", "T__e4")
    assert split_steps("B*T", 4, False) is None and split_steps("T__q4", 4, False) is None
    assert steps_sum(["4*T__q4", "T__r4"]) == "T" == steps_sum(["4*T__p4", "T__e4"])
    assert steps_sum(["4*T__q4", "T__e4"]) is None and steps_sum([2, 3]) == 5
    assert tail_after("4*T__p4", "T") == "T__e4" and tail_after("3*T__p4", "T") is None
    assert fits("T", "T__p4", 4) and fits("T__c4", "T__p4", 1) and not fits("T", "T__c4", 4)


def test_a_call_cannot_name_a_derived_size() -> None:
    g = gc.Graph("m")
    x = g.input("x", shape=("T__q5", 3))
    g.output("y", gc.sum(x))
    with pytest.raises(GraphError, match="kept for sizes graphc works out"):
        gc.compile(g, functions=["forward"])
