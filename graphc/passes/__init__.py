"""Passes: functions from graph to graph (grad, simplify) in pipeline order."""

from graphc.passes.grad import grad, grad_name, unbroadcast  # noqa: F401
from graphc.passes.simplify import simplify  # noqa: F401
