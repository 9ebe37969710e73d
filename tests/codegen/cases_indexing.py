"""Compiled-versus-interpreter models for slicing, concat, take, one_hot, layer_norm, gelu,
erf and logsumexp (merged into cases.MODELS)."""

from __future__ import annotations

from collections.abc import Callable

from tests.codegen.cases import Model

MODELS: dict[str, tuple[Callable[[str], Model], tuple[str, ...]]] = {}
