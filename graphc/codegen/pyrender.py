"""The Python renderer: a module's records (kernel IR and tables) as plain Python over NumPy
arrays, which a small runner executes as the runtime runs a native module: the same tables,
the same arena with its shared slots, the same steps in the same order.

It is slow (a Python loop per element) and meant for tests: it agrees with the Cython module,
which shows that the kernel IR and the tables carry everything a backend needs, and nothing
that is Cython's. Scalars are NumPy's, so arithmetic is IEEE's (no exception on x / 0); the
runtime's kernels (products, convolutions, ...) are NumPy references of their operands.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from graphc.codegen import kir
from graphc.codegen.kir import Expr, Kernel, Stmt
from graphc.codegen.records import Function, Module

INDENT = "    "
BLOCK = CHUNKS = 64  # the runtime's GC_BLOCK and GC_CHUNKS
SCALAR = {"float64": "np.float64", "float32": "np.float32", "bool": "np.bool_",
          "int64": "np.int64", "int32": "np.int32", "int16": "np.int16", "int8": "np.int8",
          "uint8": "np.uint8", "uint64": "np.uint64", "uint32": "np.uint32",
          kir.INDEX: "int"}  # fmt: skip
FUNCTION = {"exp": "np.exp", "log": "np.log", "tanh": "np.tanh", "sqrt": "np.sqrt",
            "erf": "_erf", "erfc": "_erfc", "fabs": "np.abs", "pow": "np.power", "min": "min",
            "max": "max", "first": "_first", "end": "_end", "expm1": "np.expm1",
            "log1p": "np.log1p", "log2": "np.log2", "exp2": "np.exp2", "sin": "np.sin",
            "cos": "np.cos", "tan": "np.tan", "asin": "np.arcsin", "acos": "np.arccos",
            "atan": "np.arctan", "atan2": "np.arctan2", "sinh": "np.sinh", "cosh": "np.cosh",
            "asinh": "np.arcsinh", "acosh": "np.arccosh", "atanh": "np.arctanh",
            "floor": "np.floor", "ceil": "np.ceil", "trunc": "np.trunc", "rint": "np.rint",
            "copysign": "np.copysign", "fmod": "np.fmod", "ifloordiv": "_ifloordiv",
            "imod": "_imod", "ipow": "_ipow", "expf": "np.exp", "sqrtf": "np.sqrt", "erff": "_erf",
            "erfcf": "_erfc", "fmodf": "np.fmod", "powf": "np.power",
            "pairwise_leaf": "_pairwise_leaf", "pairwise_joins": "_pairwise_joins"}  # fmt: skip
BINARY = {"and": "and", "or": "or", "//": "//"}
COMPARE = frozenset(("<", "<=", ">", ">=", "==", "!="))


def expr(e: Expr) -> str:
    if isinstance(e, kir.Lit):
        if isinstance(e.value, bool) or e.dtype == "bool":
            return repr(bool(e.value))
        if isinstance(e.value, int):
            return repr(e.value)
        x = float(e.value)
        text = repr(x) if math.isfinite(x) else repr(str(x))  # np.float64('-inf')
        return f"{SCALAR[e.dtype or 'float64']}({text})"
    if isinstance(e, kir.Var):
        return e.name
    if isinstance(e, kir.Size):
        return f"z{e.k}"
    if isinstance(e, kir.Flt):
        return f"f{e.k}"
    if isinstance(e, kir.Load):
        return f"{_ref(e.ref)}[{expr(e.at)}]"
    if isinstance(e, kir.Bin):
        text = f"({expr(e.a)} {BINARY.get(e.op, e.op)} {expr(e.b)})"
        return f"int{text}" if e.op in COMPARE else text  # an int, as C's comparisons give
    if isinstance(e, kir.Neg):
        return f"(-{expr(e.a)})"
    if isinstance(e, kir.Call):
        return f"{FUNCTION[e.fn]}({', '.join(expr(a) for a in e.args)})"
    if isinstance(e, kir.Select):
        return f"({expr(e.a)} if {expr(e.cond)} else {expr(e.b)})"
    if isinstance(e, kir.Cast):
        return f"{SCALAR[e.dtype]}({expr(e.a)})"
    raise TypeError(f"not an expression: {e!r}")


def _ref(r: kir.Ref) -> str:
    return f"b{r.k}" if isinstance(r, kir.Buf) else r.name


def _lines(stmts: Iterable[Stmt], depth: int, named: Callable) -> Iterator[str]:
    pad = INDENT * depth
    for s in stmts:
        if isinstance(s, kir.Assign):
            t = s.target
            left = t.name if isinstance(t, kir.Var) else f"{_ref(t.ref)}[{expr(t.at)}]"
            value = expr(s.value)
            if isinstance(t, kir.Var) and t.dtype != kir.INDEX:  # a C local of its type
                value = f"{SCALAR[t.dtype]}({value})"
            yield f"{pad}{left} = {value}"
        elif isinstance(s, kir.Loop):
            step = f", {expr(s.step)}" if s.step is not None else ""
            yield f"{pad}for {s.var.name} in range({expr(s.start)}, {expr(s.stop)}{step}):"
            yield from _lines(s.body, depth + 1, named)
        elif isinstance(s, kir.If):
            yield f"{pad}if {expr(s.cond)}:"
            yield from _lines(s.body, depth + 1, named)
        elif isinstance(s, kir.Fail):
            yield f"{pad}_fail({expr(s.value)}, {expr(s.bound)})"
        elif isinstance(s, kir.Parallel):  # one thread: the whole range at once
            yield f"{pad}{named(s)}(0, {expr(s.extent)})"
        elif isinstance(s, kir.Reduce):
            dtype = s.sums[0].dtype
            sums = ", ".join(v.name for v in s.sums)
            call = f"_reduce({named(s)}, {expr(s.extent)}, {len(s.sums)}, {SCALAR[dtype]})"
            yield f"{pad}{sums}, = {call}"
        else:
            raise TypeError(f"not a statement: {s!r}")


def _arrays(stmts: Any, depth: int) -> list[str]:
    """The arrays local to a kernel (kir.Scratch) that `stmts` use, made."""
    arrays = {n.name: n for n in kir.walk(stmts) if isinstance(n, kir.Scratch)}
    return [f"{INDENT * depth}{a.name} = np.zeros({a.n}, {SCALAR[a.dtype]})"
            for a in arrays.values()]  # fmt: skip


def kernel_source(k: int, kernel: Kernel) -> str:
    """Python function `_kk(v, z, f, a)`, its parallel loops and reductions' blocks nested."""
    out = [f"def _k{k}(v, z, f, a):", f'{INDENT}"""{kernel.doc}"""']
    nb = len(kernel.buffers)
    out += [f"{INDENT}b{j} = _flat(v[a[{j}]], {t!r})" for j, t in enumerate(kernel.buffers)]
    out += [f"{INDENT}z{j} = z[a[{nb + j}]]" for j in range(kernel.sizes)]
    out += [f"{INDENT}f{j} = f[a[{nb + kernel.sizes + j}]]" for j in range(kernel.floats)]
    nested: list[str] = []

    def named(p: kir.Parallel | kir.Reduce) -> str:
        name = f"_loop{len(nested)}"
        if isinstance(p, kir.Parallel):
            head = [f"def {name}(lo, hi):", *_arrays(p.body, 1),
                    f"{INDENT}for {p.var.name} in range(lo, hi):"]  # fmt: skip
            body = list(_lines(p.body, 2, named))
        else:  # a block of elements: each one's body, and its terms
            head = [f"def {name}(lo, hi):", f"{INDENT}terms = []",
                    f"{INDENT}for {p.var.name} in range(lo, hi):"]  # fmt: skip
            body = list(_lines(p.body, 2, named))
            body.append(f"{INDENT * 2}terms.append(({''.join(expr(t) + ', ' for t in p.terms)}))")
            body.append(f"{INDENT}return terms")
        nested.extend(INDENT + line for line in (*head, *body, ""))
        return name

    body = _arrays(kernel.body, 1) + list(_lines(kernel.body, 1, named))
    return "\n".join([*out, *nested, *body])


def _reduce(block: Callable, n: int, nsums: int, scalar: Callable) -> list:
    """The sums of a Reduce in the runtime's order (templates/runtime/runtime.pyx.j2)."""
    chunk = max(((n + CHUNKS - 1) // CHUNKS + BLOCK - 1) // BLOCK, 1) * BLOCK
    sums = [scalar(0)] * nsums
    partials = []
    for lo in range(0, n, chunk):
        acc = [scalar(0)] * nsums
        for blk in range(lo, min(lo + chunk, n), BLOCK):
            for terms in block(blk, min(blk + BLOCK, lo + chunk, n)):
                acc = [scalar(a + t) for a, t in zip(acc, terms, strict=True)]
        partials.append(acc)
    for p in partials:
        sums = [scalar(s + x) for s, x in zip(sums, p, strict=True)]
    return sums


def _first(off: int, s: int, n_out: int) -> int:
    t = 0 if off >= 0 else (-off + s - 1) // s
    return min(t, n_out)


def _end(off: int, s: int, n_in: int, n_out: int) -> int:
    t = 0 if n_in - off <= 0 else (n_in - off + s - 1) // s
    return min(t, n_out)


def _pairwise_leaf(n: int, at: int) -> int:
    """graphc_rt.h's gc_pairwise_leaf."""
    lo = 0
    while n > 128:
        half = n // 2 - n // 2 % 8
        lo, n = (lo, half) if at < lo + half else (lo + half, n - half)
    return n


def _pairwise_joins(n: int, at: int) -> int:
    """graphc_rt.h's gc_pairwise_joins."""
    lo = joins = 0
    while n > 128:
        half = n // 2 - n // 2 % 8
        if at < lo + half:
            n, joins = half, 0
        else:
            lo, n, joins = lo + half, n - half, joins + 1
    return joins


class StepFailure(Exception):
    """A kernel's Fail (kir.Fail): the index and the size of its axis."""


def _fail(value: Any, bound: Any) -> None:
    raise StepFailure(int(value), int(bound))


def _wrap64(v: int) -> np.int64:
    return np.int64((v + 2**63) % 2**64 - 2**63)


def _ifloordiv(a: Any, b: Any) -> np.int64:
    """graphc_math.h's gc_ifloordiv: Python's a // b, 0 for b = 0, wrapping."""
    a, b = int(a), int(b)
    return np.int64(0) if b == 0 else _wrap64(a // b)


def _imod(a: Any, b: Any) -> np.int64:
    a, b = int(a), int(b)
    return np.int64(0) if b == 0 else _wrap64(a % b)


def _ipow(a: Any, b: Any) -> np.int64:
    a, b = int(a), int(b)
    if b < 0:
        return np.int64(1 if a == 1 else (-1 if b % 2 else 1) if a == -1 else 0)
    return _wrap64(pow(a, b, 2**64))


def _erf(x: Any) -> Any:
    return type(x)(math.erf(x))


def _erfc(x: Any) -> Any:
    return type(x)(math.erfc(x))


def render(module: Module) -> str:
    """The Python source of `module`'s kernels: `KERNELS`, its own then the runtime's names."""
    parts = ["import numpy as np", "from graphc.codegen.pyrender import _end, _erf, _erfc, "
             "_fail, _first, _ifloordiv, _imod, _ipow, _pairwise_joins, _pairwise_leaf, _reduce",
             "from graphc.codegen.pysteps import _flat", ""]  # fmt: skip
    parts += [kernel_source(k, kernel) + "\n" for k, kernel in enumerate(module.kernels)]
    names = ", ".join(f"_k{k}" for k in range(len(module.kernels)))
    parts.append(f"KERNELS = [{names}{', ' if names else ''}*{list(module.runtime)!r}]")
    return "\n".join(parts) + "\n"


class PyModule:
    """A module's records run by Python: its functions as methods (`m.forward(**inputs)`),
    returning what the native module returns."""

    def __init__(self, module: Module) -> None:
        from graphc.codegen import pysteps

        self.module = module
        self.source = render(module)
        space: dict[str, Any] = {}
        exec(compile(self.source, f"<graphc python module {module.name}>", "exec"), space)
        self.kernels = [
            functools.partial(pysteps.scan, self) if k == "scan"  # a loop, with these kernels
            else pysteps.STEPS[k] if isinstance(k, str) else k
            for k in space["KERNELS"]
        ]  # fmt: skip
        self.consts = [np.array(c.values, dtype=c.dtype).reshape(c.shape) for c in module.consts]
        for f in module.functions:
            setattr(self, f.name, self._function(f))

    def _function(self, f: Function) -> Callable[..., Any]:
        from graphc.codegen.pysteps import call

        return lambda **kwargs: call(self, f, kwargs)
