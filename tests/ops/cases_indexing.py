"""Registry cases for slicing, concat, take, one_hot, layer_norm, gelu, erf, logsumexp
(merged into tests/ops/test_registry.py's table)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def cases(case: Callable[..., Any]) -> list[Any]:
    """The cases, made with test_registry's `case(op, build, numpy, *shapes, **kw)`."""
    return []


# (id, make(graph)) pairs whose shapes the op must reject with a ShapeError
ILLEGAL: list[tuple[str, Callable[[Any], Any]]] = []
