"""The plain records `lower` produces and the templates loop over. Nothing here computes."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class LoopHead:
    indent: str
    var: str
    extent: str


@dataclass(frozen=True)
class Statement:
    """One step of the program: a comment mapping it to the model, loop heads, body lines."""

    comment: str
    heads: tuple[LoopHead, ...]
    body: tuple[str, ...]  # each line already indented below the heads


@dataclass(frozen=True)
class Part:
    """A generated C function of one program: either a run of at most PART_STEPS statements of
    one section (`(b)`), or (`(b, lo, hi)`, `ranged`) the body of one loop over a range of its
    outer index, which `_parallel` runs on one or more threads, or a step that `_concurrent`
    runs beside another. Either reads the buffers it
    uses from the program's struct of pointers `b`. No function the compilers see grows with
    the model."""

    name: str  # e.g. _value_and_grad_2, _value_and_grad_loop7
    title: str  # e.g. "backward (1 of 3)"
    ranged: bool
    uses: frozenset[str]  # names its statements use; with_fields picks the struct fields
    loop_vars: str
    scalars: tuple[tuple[str, str], ...]  # (ctype, "v3_, v4_"): the fused loops' scalars
    statements: tuple[Statement, ...]
    pointers: tuple[Pointer, ...] = ()  # the struct fields it reads, as locals of the same name

    def with_fields(self, fields: dict[str, tuple[int, Pointer]]) -> Part:
        """With `pointers`: the fields (name -> position in the struct, field) it uses, in
        struct order."""
        used = sorted(fields[name] for name in self.uses & fields.keys())
        return replace(self, pointers=tuple(p for _, p in used))


@dataclass(frozen=True)
class DimCheck:
    axis: int
    expected: str  # a C expression: an int literal or a bound symbol's field (`got.d_N`)
    binds: str | None  # the symbol field this axis binds, when it is the first to name it
    symbol: str | None  # the symbol's name, for messages
    binder: str | None  # the argument that bound the symbol, for messages


@dataclass(frozen=True)
class IndexCheck:
    """Indices steps read, which come from int arguments (or constants) through ops that only
    move elements: `fails` (C) is true when some element of those sources is out of [lo, hi);
    then `calls.index_error` computes each step's indices from its `uses` and says which one
    is out of range, if any is (a slice may have dropped the bad element)."""

    comment: str  # the steps, for people
    fails: str  # C condition over the arguments' data
    lo: str  # C expressions (`-got.d_T`, `0`, ...)
    hi: str
    uses: str  # Python literals: ((step, range in words with "{}" for hi, source), ...),
    arrays: str  # the arguments read ({"tokens": a_tokens}),
    symbols: str  # and the sizes of the symbols ({"N": got.d_N})


@dataclass(frozen=True)
class Arg:
    name: str
    literal: str  # the name as a Python string literal
    pos: int
    var: str  # the ndarray variable
    field: str  # its data pointer's field in the _Inputs struct
    ctype: str
    typenum: str
    dtype: str
    shape: str  # as people write it: "(N, 3)"
    ndim: int
    dims: tuple[DimCheck, ...]
    expected: str  # each axis's size or (symbol, its bound size, binder): a Python tuple
    integer: bool = False  # an int argument: any integer array is converted to its dtype
    index_checks: tuple[IndexCheck, ...] = ()  # made after every argument is checked


@dataclass(frozen=True)
class Check:
    """The argument checks of the functions that take `args`: `_check{suffix}` (and its
    `_Inputs{suffix}` struct, ...); the suffix is empty for the model's own inputs."""

    suffix: str
    args: tuple[Arg, ...]
    arg_names: str  # a Python tuple literal
    spec: str  # Python literal: each argument's (name, dtype, shape, sizes, integer)
    table: tuple[str, ...]  # rows of the C table gc_check_args reads, one per argument
    defaults: tuple[str | None, ...] = ()  # each argument's default (Python) or None


@dataclass(frozen=True)
class Out:
    name: str  # the output's name in the graph
    key: str  # the key it is returned under
    group: int  # which of the returned dicts holds it
    part: int  # where `out=` holds it: -1 (a function returning one dict), else `group`
    key_literal: str  # the key as a Python string literal
    dtype: str
    var: str  # the ndarray variable
    typenum: str
    ndim: int
    dims: tuple[str, ...]  # C expressions
    at: str  # its byte offset in the call's output block (C expression)


@dataclass(frozen=True)
class Pointer:
    name: str
    ctype: str
    init: str  # C expression giving its address


@dataclass(frozen=True)
class SlotOffset:
    name: str  # e.g. off_buf3
    start: str  # previous offset expression
    nbytes: str  # bytes of this slot, before alignment
    comment: str


@dataclass(frozen=True)
class Function:
    name: str  # "forward", "value_and_grad" or "train_step"
    doc: str
    check: str  # the suffix of its argument check (see Check)
    written: tuple[int, ...]  # the positions of the arguments it writes over (train_step)
    outs: tuple[Out, ...]
    outs_end: str  # bytes of the output block
    slots: tuple[SlotOffset, ...]
    partials_at: str | None  # where the full reductions' per-chunk sums start in the arena
    arena_end: str
    pointers: tuple[Pointer, ...]  # the fields of the struct `_<name>_buffers`
    parts: tuple[Part, ...]
    copies: tuple[Statement, ...]  # outputs that are inputs, constants or repeated
    returns: str  # the Python expression returned
    outs_spec: str  # Python literal: each output's (part, key, dtype, rank), for out=


@dataclass(frozen=True)
class Const:
    name: str
    ctype: str
    dtype: str
    shape: str
    values: str  # a Python list literal
    comment: str


@dataclass(frozen=True)
class Module:
    name: str
    header: tuple[str, ...]
    meta: tuple[tuple[str, str], ...]  # module-level NAME = python literal
    kernels: tuple[tuple[str, str, str], ...]  # (template, ctype, suffix)
    consts: tuple[Const, ...]
    functions: tuple[Function, ...]
    checks: tuple[Check, ...]  # the first checks the model's inputs (forward, value_and_grad)
    symbols: tuple[str, ...]  # the variables holding symbolic dims (`d_N`)
    parallel_min: int  # loops over fewer elements run on the calling thread
    concurrent_min: int  # independent steps with less work run one after the other
