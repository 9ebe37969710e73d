"""Convolution and pooling: conv2d, its gradients, max and average pooling."""

from __future__ import annotations

from collections.abc import Callable

from graphc.codegen.records import Statement

LOWER: dict[str, Callable[..., list[Statement]]] = {}
KERNEL_TEMPLATE: dict[str, str] = {}
