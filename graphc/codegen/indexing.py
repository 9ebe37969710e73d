"""Indexing, slicing, concatenation, gathers and the normalisations that need a kernel."""

from __future__ import annotations

from collections.abc import Callable

from graphc.codegen.records import Statement

LOWER: dict[str, Callable[..., list[Statement]]] = {}
KERNEL_TEMPLATE: dict[str, str] = {}
