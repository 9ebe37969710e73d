"""The records `lower` makes for a renderer: a module's distinct kernels (kernel IR), its
constants, and per function the tables the runtime reads (graphc_rt.h's gc_function) and the
Python data beside them. Table rows hold ints and a few named constants (dtype names, value
kinds), which each renderer spells its own way. Nothing here computes."""

from __future__ import annotations

from dataclasses import dataclass

from graphc.codegen.kir import Kernel


@dataclass(frozen=True)
class Row:
    """One row of a table: its entries (ints, or names: a dtype, a value kind) and a comment
    for people (one line each)."""

    cells: tuple[int | str, ...]
    comment: tuple[str, ...] = ()


@dataclass(frozen=True)
class Function:
    """One function of a module (forward, value_and_grad, ...): its tables, in the order and
    layout graphc_rt.h documents for gc_function, and the Python data of its messages."""

    name: str
    doc: str
    nparts: int  # the dicts it returns (1: one dict, not a tuple)
    args: tuple[Row, ...]  # per argument: dtype, rank, a size per axis (-1 - s: symbol s)
    products: tuple[Row, ...]  # per product axis ("B*T"): its symbol, coef, n, the symbols
    written: tuple[int, ...]  # the arguments it writes over
    outs: tuple[Row, ...]  # per output: dtype, rank, part, a size (index) per axis
    sizes: tuple[Row, ...]  # coef, div, n, the symbols
    floats: tuple[float, ...]
    slots: tuple[Row, ...]  # layouts, then (size, itemsize) per layout
    values: tuple[Row, ...]  # kind, ref
    copies: tuple[Row, ...]  # output, value, size, itemsize
    index: tuple[Row, ...]  # size, wraps, leaves, then per leaf an argument or -1, min, max
    nonempty: tuple[Row, ...]  # a size
    program: tuple[Row, ...]  # kernel, operands, work, flags, then the operands
    names: tuple[str, ...]  # the arguments'
    defaults: tuple[str | None, ...]  # per argument: None, or a dtype's name and a value
    spec: tuple  # each argument's (name, dtype, shape as people write it, sizes, integer)
    outspec: tuple  # each output's (part, key, dtype, rank)
    keys: tuple[str, ...]  # each output's key
    checks: tuple  # per index check (uses, the arguments read); per nonempty size a message
    symbols: tuple[str, ...]  # the module's symbols, then the product axes of its arguments


@dataclass(frozen=True)
class Const:
    name: str
    dtype: str
    shape: tuple
    values: tuple  # the elements, flat (floats, or ints for int constants)
    comment: str


@dataclass(frozen=True)
class Module:
    name: str
    header: tuple[str, ...]
    meta: tuple[tuple[str, str], ...]  # module-level NAME = Python literal
    symbols: tuple[str, ...]  # the symbolic sizes, in the order the tables number them
    kernels: tuple[Kernel, ...]  # the module's own, numbered from 0
    runtime: tuple[str, ...]  # the runtime's it calls, numbered after the module's own
    consts: tuple[Const, ...]
    functions: tuple[Function, ...]
