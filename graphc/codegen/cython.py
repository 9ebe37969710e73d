"""The Cython renderer: kernel IR (codegen/kir.py) as Cython functions, and a module's records
as the text of its `.pyx` (through templates/module.pyx.j2, which only lays them out).

A kernel becomes `cdef gc_kernel _kN(const gc_args* x)`, its operands taken from the step's
operands (`x.v[x.a[k]]`), and each `Parallel` a range function `_kN_M(ctx, lo, hi)` that the
runtime runs on one thread or shares among several. Expressions are fully parenthesised, so C
evaluates every operation in the order of the kernel IR's tree: the bits do not depend on how
C would have grouped an unparenthesised expression.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from types import SimpleNamespace

import numpy as np

from graphc.codegen import kir
from graphc.codegen.kir import INDEX, Expr, Kernel, Stmt, called
from graphc.codegen.literals import Data, python
from graphc.codegen.records import Function, Module, Row
from graphc.codegen.scan import LOOP
from graphc.ir.shapes import DTYPES

CTYPE = {
    "float64": "double",
    "float32": "float",
    "bool": "unsigned char",
    "int64": "long long",
    "int32": "int",
    "int16": "short",
    "int8": "signed char",
    "uint8": "unsigned char",
    "uint64": "unsigned long long",  # wrapping arithmetic of int64 (ops/integer.py)
    "uint32": "unsigned int",
    INDEX: "Py_ssize_t",
}
# the rest are called as they are named
FUNCTION = {"first": "gc_first", "end": "gc_end", "pairwise_leaf": "gc_pairwise_leaf",
            "pairwise_joins": "gc_pairwise_joins"}  # fmt: skip
KIND = {k: f"GC_{k.upper()}" for k in ("arg", "out", "slot", "const", "alias")}
FLAG = {"alone": "GC_ALONE", "beside": "GC_BESIDE"}
INDENT = "    "


def literal(lit: kir.Lit) -> str:
    """A literal that reads back to the same value, of its dtype (float32 literals keep
    float32 arithmetic in float, and so vectorised)."""
    v = lit.value
    if isinstance(v, bool) or lit.dtype == "bool":
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v) if v >= 0 else f"({v})"
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "(-INFINITY)"
    text = repr(float(v))
    if lit.dtype == "float32":
        return f"(<float>{text})"
    return f"({text})" if text.startswith("-") else text


# `and` and `or` of two truth values as bitwise ops of bints, both sides evaluated (kir.BINARY):
# Cython's short-circuit forms compile to jumps that kept gcc from vectorising the loop (clip
# ran 8x, logsigmoid 6x and a max over an axis 2x slower).
LOGICAL = {"and": "&", "or": "|"}


def expr(e: Expr) -> str:
    """Cython for expression `e`."""
    if isinstance(e, kir.Lit):
        return literal(e)
    if isinstance(e, kir.Var):
        return e.name
    if isinstance(e, kir.Size):
        return f"z{e.k}"
    if isinstance(e, kir.Flt):
        return f"f{e.k}"
    if isinstance(e, kir.Load):
        return f"{ref(e.ref)}[{expr(e.at)}]"
    if isinstance(e, kir.Bin):
        return f"({expr(e.a)} {LOGICAL.get(e.op, e.op)} {expr(e.b)})"
    if isinstance(e, kir.Neg):
        return f"(-{expr(e.a)})"
    if isinstance(e, kir.Call):
        return f"{FUNCTION.get(e.fn, e.fn)}({', '.join(expr(a) for a in e.args)})"
    if isinstance(e, kir.Select):
        return f"({expr(e.a)} if {expr(e.cond)} else {expr(e.b)})"
    if isinstance(e, kir.Cast):
        return f"(<{CTYPE[e.dtype]}>{expr(e.a)})"
    raise TypeError(f"not an expression: {e!r}")


def ref(r: kir.Ref) -> str:
    return f"b{r.k}" if isinstance(r, kir.Buf) else r.name


def _lines(stmts: Iterable[Stmt], depth: int, named: Callable) -> Iterator[str]:
    """The lines of `stmts`; each Parallel becomes a call of a range function, named by
    `named(parallel)`."""
    pad = INDENT * depth
    for s in stmts:
        if isinstance(s, kir.Assign):
            target = s.target
            left = target.name if isinstance(target, kir.Var) else (
                f"{ref(target.ref)}[{expr(target.at)}]"
            )  # fmt: skip
            yield f"{pad}{left} = {expr(s.value)}"
        elif isinstance(s, kir.Loop):
            bounds = [expr(s.stop)] if s.start == kir.Lit(0) and s.step is None else (
                [expr(s.start), expr(s.stop)] + ([expr(s.step)] if s.step is not None else [])
            )  # fmt: skip
            yield f"{pad}for {s.var.name} in range({', '.join(bounds)}):"
            yield from _lines(s.body, depth + 1, named)
        elif isinstance(s, kir.If):
            yield f"{pad}if {expr(s.cond)}:"
            yield from _lines(s.body, depth + 1, named)
        elif isinstance(s, kir.Fail):
            yield f"{pad}gc_fail(x, {expr(s.value)}, {expr(s.bound)})"
        elif isinstance(s, kir.Parallel):
            args = ", ".join(expr(a) for a in (s.extent, s.chunk, s.work))
            yield f"{pad}rt.parallel({named(s)}, x, {args})"
        elif isinstance(s, kir.Reduce):
            sums = f"r_{s.var.name}"
            suffix = "s" if s.sums[0].dtype == "float32" else "d"
            yield f"{pad}rt.reduce_{suffix}({named(s)}, x, {expr(s.extent)}, {len(s.sums)}, {sums})"
            for k, v in enumerate(s.sums):
                yield f"{pad}{v.name} = {sums}[{k}]"
        else:
            raise TypeError(f"not a statement: {s!r}")


def _walk(stmts: Iterable[Stmt]) -> Iterator[Stmt | Expr]:
    """Every statement and expression of `stmts`, not entering Parallel bodies."""
    for s in stmts:
        yield s
        if isinstance(s, kir.Assign):
            if isinstance(s.target, kir.Store):
                yield s.target.ref  # type: ignore[misc]
                yield from _exprs(s.target.at)
            else:
                yield s.target
            yield from _exprs(s.value)
        elif isinstance(s, kir.Loop):
            yield s.var
            for e in (s.start, s.stop, s.step):
                if e is not None:
                    yield from _exprs(e)
            yield from _walk(s.body)
        elif isinstance(s, kir.If):
            yield from _exprs(s.cond)
            yield from _walk(s.body)
        elif isinstance(s, kir.Fail):
            yield from _exprs(s.value)
            yield from _exprs(s.bound)
        elif isinstance(s, kir.Parallel):
            for e in (s.extent, s.chunk, s.work):
                yield from _exprs(e)
        elif isinstance(s, kir.Reduce):
            yield from _exprs(s.extent)
            yield from s.sums


def _exprs(e: Expr) -> Iterator[Expr]:
    yield e
    if isinstance(e, kir.Load):
        yield e.ref  # type: ignore[misc]
        yield from _exprs(e.at)
    elif isinstance(e, kir.Bin):
        yield from _exprs(e.a)
        yield from _exprs(e.b)
    elif isinstance(e, kir.Neg | kir.Cast):
        yield from _exprs(e.a)
    elif isinstance(e, kir.Call):
        for a in e.args:
            yield from _exprs(a)
    elif isinstance(e, kir.Select):
        for a in (e.cond, e.a, e.b):
            yield from _exprs(a)


def _function(
    name: str, doc: str, kernel: Kernel, stmts: tuple[Stmt, ...],
    loop: kir.Parallel | kir.Reduce | None, named: Callable,
) -> str:  # fmt: skip
    """A Cython function of `kernel` running `stmts`: the kernel itself, or the function of
    the Parallel or Reduce `loop` whose body they are (a range of its iterations, or a block
    of its elements and their terms)."""
    nodes = list(_walk(stmts))
    terms: list[str] = []
    if isinstance(loop, kir.Reduce):  # each sum's terms at s[k * GC_BLOCK + i - lo]
        nodes += [n for t in loop.terms for n in _exprs(t)]
        terms = [f"s[{f'{k} * GC_BLOCK + ' if k else ''}{loop.var.name} - lo] = {expr(t)}"
                 for k, t in enumerate(loop.terms)]  # fmt: skip
    if loop is not None:
        nodes.append(loop.var)
    bufs = sorted({n.k for n in nodes if isinstance(n, kir.Buf)})
    sizes = sorted({n.k for n in nodes if isinstance(n, kir.Size)})
    floats = sorted({n.k for n in nodes if isinstance(n, kir.Flt)})
    scratch = {n.name: n for n in nodes if isinstance(n, kir.Scratch)}
    reduced = list({id(n): n for n in nodes if isinstance(n, kir.Reduce)}.values())
    local: dict[str, str] = {}
    for n in nodes:
        if isinstance(n, kir.Var):
            local.setdefault(n.name, n.dtype)
    if loop is None:
        head = [f"cdef gc_kernel {name}(const gc_args* x) noexcept nogil:", f'{INDENT}"""{doc}"""']
        body = list(_lines(stmts, 1, named))
    else:
        extra = f", {CTYPE[loop.sums[0].dtype]}* s" if terms else ""  # type: ignore[union-attr]
        head = [
            f"cdef gc_kernel {name}(const gc_args* x, Py_ssize_t lo, Py_ssize_t hi{extra}) "
            f"noexcept nogil:  # {doc}",
        ]
        body = [f"{INDENT}for {loop.var.name} in range(lo, hi):", *_lines(stmts, 2, named)]
        body += [INDENT * 2 + t for t in terms]
    decls = []
    nb = len(kernel.buffers)
    for k in bufs:
        ctype = CTYPE[kernel.buffers[k]]
        const = "" if k in kernel.writes else "const "
        decls.append(f"{INDENT}cdef {const}{ctype}* b{k} = <{const}{ctype}*>x.v[x.a[{k}]]")
    for k in sizes:
        decls.append(f"{INDENT}cdef Py_ssize_t z{k} = x.z[x.a[{nb + k}]]")
    for k in floats:
        decls.append(f"{INDENT}cdef double f{k} = x.f[x.a[{nb + kernel.sizes + k}]]")
    by_type: dict[str, list[str]] = {}
    for v, dtype in local.items():
        by_type.setdefault(CTYPE[dtype], []).append(v)
    for ctype in sorted(by_type):
        decls.append(f"{INDENT}cdef {ctype} {', '.join(sorted(by_type[ctype]))}")
    for s in scratch.values():
        decls.append(f"{INDENT}cdef {CTYPE[s.dtype]} {s.name}[{s.n}]")
    for r in reduced:
        decls.append(f"{INDENT}cdef {CTYPE[r.sums[0].dtype]} r_{r.var.name}[{len(r.sums)}]")
    return "\n".join([*head, *decls, *body])


def kernel_source(k: int, kernel: Kernel) -> str:
    """The Cython of the module's kernel number `k`: `_kk`, after the range functions of its
    parallel loops, `_kk_1`, `_kk_2`, ..."""
    queue: list[tuple[str, kir.Parallel | kir.Reduce]] = []

    def named(p: kir.Parallel | kir.Reduce) -> str:
        queue.append((f"_k{k}_{len(queue) + 1}", p))
        return queue[-1][0]

    texts = [_function(f"_k{k}", kernel.doc, kernel, kernel.body, None, named)]
    for name, p in queue:  # grows while it runs: a parallel loop inside a parallel loop
        doc = f"_k{k}'s loop, from lo to hi" + (
            ", and each element's terms" if isinstance(p, kir.Reduce) else ""
        )
        texts.append(_function(name, doc, kernel, p.body, p, named))
    return "\n\n".join(reversed(texts))


# ---- tables -----------------------------------------------------------------------------------
TYPENUM = {d: np.dtype(d).num for d in DTYPES}


def cell(c: int | float | str) -> str:
    if isinstance(c, int):
        return str(c)
    if isinstance(c, float):
        return literal(kir.Lit(c))
    if c in TYPENUM:
        return str(TYPENUM[c])
    if c in KIND:
        return KIND[c]
    return " | ".join(FLAG[f] for f in c.split("|"))


def declare(ctype: str, name: str, rows: tuple[Row, ...], count: int, width: int = 92) -> list:
    """The C lines declaring table `name`: `count`, then `rows`; rows with a comment on lines
    of their own after it, the others as many entries a line as fit."""
    cells = [str(count)]
    lines: list[str] = []
    head = f"static const {ctype} {name}[] = {{"
    if not any(r.comment for r in rows):
        cells += [cell(c) for r in rows for c in r.cells]
        one = f"{head}{', '.join(cells)}}};"
        if len(one) <= width:
            return [one]
    lines.append(head + f"{count},")
    run = ""
    for r in rows:
        # (an int, as most cells are, written without a call: a program has a row per step)
        text = ", ".join([str(c) if type(c) is int else cell(c) for c in r.cells]) + ","
        if r.comment:
            if run:
                lines.append(INDENT + run.strip())
                run = ""
            notes = [c.replace("*/", "* /") for c in r.comment]
            lines += [f"{INDENT}/* {notes[0]}", *(f"{INDENT}   {n}" for n in notes[1:])]
            lines[-1] += " */"
            lines.append(INDENT + text)
        elif len(run) + len(text) + 1 > width - len(INDENT):
            lines.append(INDENT + run.strip())
            run = text
        else:
            run += " " + text
    if run:
        lines.append(INDENT + run.strip())
    return [*lines, "};"]


def program_listing(source: str, function: str) -> list[tuple[str, ...]]:
    """The statements of each row of `function`'s program in a module's `source`, as `declare`
    writes them (every row of a program has its comment: lower gives each one)."""
    head = f"static const int32_t gc_{function}_program[] = {{"
    start = source.index(head) + len(head)
    table = source[start : source.index("};", start)]
    return [
        tuple(line.strip() for line in block.splitlines())
        for block in re.findall(r"/\* (.*?) \*/", table, re.S)
    ]


def _grouped(tables: list[tuple[str, str, tuple[Row, ...]]], width: int = 92) -> list[str]:
    """The C lines declaring `tables` (ctype, name, rows), each led by its number of rows,
    those of one type in one declaration, as many entries a line as fit."""
    lines = []
    for ctype in dict.fromkeys(c for c, _, _ in tables):
        items = []
        for c, name, rows in tables:
            if c == ctype:
                cells = [str(len(rows)), *(cell(x) for r in rows for x in r.cells)]
                items.append(f"{name}[] = {{{', '.join(cells)}}}")
        line = f"static const {ctype}"
        for k, item in enumerate(items):
            sep = "," if k < len(items) - 1 else ";"
            if len(line) + len(item) + 2 > width:
                lines.append(line)
                line = INDENT
            line += f" {item}{sep}"
        lines.append(line)
    return lines


def _wrapped(head: str, items: list[str], tail: str, width: int = 96) -> list[str]:
    """`head`, `items` separated by commas, `tail`, in lines of at most `width`."""
    lines, line = [], head
    for k, item in enumerate(items):
        text = item + ("," if k < len(items) - 1 else tail)
        if len(line) + len(text) + 1 > width:
            lines.append(line.rstrip())
            line = INDENT
        line += text if line in (head, INDENT) else " " + text
    return [*lines, line]


def _function_view(f: Function, data: Data) -> SimpleNamespace:
    """What module.pyx.j2 lays out for function `f`: its C tables, each led by its number of
    rows (the program's by its number of entries), and the Python data of its messages."""
    floats = tuple(Row((x,)) for x in f.floats)
    counted = [
        ("long long", "args", f.args),
        ("int64_t", "products", f.products),
        ("int32_t", "written", tuple(Row((k,)) for k in f.written)),
        ("int32_t", "outs", f.outs),
        ("int64_t", "sizes", f.sizes),
        ("double", "floats", floats),
        ("int32_t", "slots", f.slots),
        ("int32_t", "values", f.values),
        ("int32_t", "copies", f.copies),
        ("int64_t", "index", f.index),
        ("int32_t", "nonempty", f.nonempty),
    ]
    entries = sum(len(r.cells) for r in f.program)
    tables = _grouped([(c, f"gc_{f.name}_{name}", rows) for c, name, rows in counted])
    tables += declare("int32_t", f"gc_{f.name}_program", f.program, entries)
    defaults = ["None" if d is None else f"np.array({d[1]!r}, dtype=np.{d[0]})" for d in f.defaults]
    return SimpleNamespace(
        name=f.name,
        title=f"# ---- {f.name} ".ljust(96, "-"),
        doc=f.doc,
        tables=tables,
        nparts=f.nparts,
        names=data.python(f.names),
        defaults="(" + "".join(d + ", " for d in defaults) + ")",
        spec=data.python(f.spec),
        outspec=data.python(f.outspec),
        out_keys=data.python(f.keys),
        checks=data.python(f.checks),
        symbols=data.python(f.symbols),
    )


# A module whose loops call these is built with GC_PRE (graphc/runtime/build.py says why)
ERF = frozenset(("erf", "erfc", "erff", "erfcf"))


def module_view(m: Module, runtime_key: str, runtime_options: dict) -> SimpleNamespace:
    """What templates/module.pyx.j2 lays out for module `m`, built against the runtime
    `runtime_key` (made with `runtime_options`, should it have to be built again)."""
    data = Data()
    # the module's own kernels, then its loop trampoline (graphc_rt.h scan), which the
    # lowering numbers first among the runtime's (codegen/scan.py LOOP), then the runtime's
    own = [f"_k{k}" for k in range(len(m.kernels))]
    loop = LOOP.name in m.runtime
    if loop:
        assert m.runtime[0] == LOOP.name, "the loop is numbered right after the module's kernels"
        own.append("_loop")
    linked = tuple(name for name in m.runtime if name != LOOP.name)
    view = SimpleNamespace(
        header=m.header,
        meta=[(k, data.value(v)) for k, v in m.meta],
        symbols=python(m.symbols),
        runtime_key=repr(runtime_key),
        runtime_options=python(runtime_options),
        consts=[
            SimpleNamespace(
                elements=data.elements(c.values),
                dtype=c.dtype,
                shape=python(c.shape),
                comment=c.comment,
            )
            for c in m.consts
        ],  # fmt: skip
        kernels=[kernel_source(k, kernel) for k, kernel in enumerate(m.kernels)],
        kernel_table=_wrapped(f"gc_kernels[:{len(own)}] = [", own, "]") if own else [],
        numpy=bool(m.consts) or any(d is not None for f in m.functions for d in f.defaults),
        pre=any(ERF & called(k.body) for k in m.kernels),  # see graphc/runtime/build.py
        runtime=m.runtime,
        loop=loop,
        linked=linked,
        first_linked=len(own),
        nkernels=max(1, len(m.kernels) + len(m.runtime)),
        functions=[_function_view(f, data) for f in m.functions],
    )
    view.data = data.lines() if data.values else []
    return view
