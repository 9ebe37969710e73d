"""Ops: the registry (`registry.py`) and one module per family of ops.

`graphc.ops.api` imports every op module, which registers the ops; `import graphc` does that.
"""
