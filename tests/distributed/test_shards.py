"""Shards of a batch and the order their results are added in."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphc.distributed.shards import split_rows, tree


@given(st.integers(1, 10_000), st.integers(1, 64))
def test_split_rows_covers_the_batch_in_near_equal_shards(n: int, k: int) -> None:
    ranges = split_rows(n, k)
    assert len(ranges) == min(n, k)
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    sizes = [b - a for a, b in ranges]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1, "a"),
        (2, "(a+b)"),
        (3, "((a+b)+c)"),
        (5, "(((a+b)+(c+d))+e)"),
        (6, "(((a+b)+(c+d))+(e+f))"),
    ],
)
def test_tree_adds_neighbours_level_by_level(count: int, expected: str) -> None:
    assert tree(list("abcdef"[:count]), lambda x, y: f"({x}+{y})") == expected


def test_tree_is_the_same_sum_every_time_and_close_to_the_exact_one() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=1000) * 10.0 ** rng.integers(-8, 8) for _ in range(7)]
    first = tree(parts, lambda a, b: a + b)
    again = tree([p.copy() for p in parts], lambda a, b: a + b)
    assert np.array_equal(first, again)
    exact = np.sum(np.stack(parts).astype(np.longdouble), axis=0)
    assert np.allclose(first, exact.astype(np.float64), rtol=1e-12, atol=1e-12)


def test_tree_refuses_nothing() -> None:
    with pytest.raises(ValueError, match="nothing to add up"):
        tree([], lambda a, b: a + b)
