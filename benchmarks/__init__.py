"""Benchmarks for graphc's compiled modules; run one with `python -m benchmarks.<name>`."""
