"""Compiled-versus-interpreter models for conv2d, its gradient ops and pooling
(merged into cases.MODELS)."""

from __future__ import annotations

from collections.abc import Callable

from tests.codegen.cases import Model

MODELS: dict[str, tuple[Callable[[str], Model], tuple[str, ...]]] = {}
