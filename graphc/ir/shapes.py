"""Symbolic shapes: a shape is a tuple whose entries are ints, symbol names such as "N", or
products of symbols and an int such as "B*T" or "4*B" (a flattened [B, T] or [B, 4]).

A symbol stands for one size bound at call time; two different symbols are never assumed equal,
and a symbol is never assumed equal to an int other than by binding. A product is written in
one canonical form -- its int factor first when there is one, then its symbols sorted, joined
by "*" -- so two dims are the same size exactly when they are equal (dim_of makes the form).
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections import Counter
from collections.abc import Iterable, Mapping

Dim = int | str
Shape = tuple[Dim, ...]

DTYPES = ("float64", "float32", "bool", "int64", "int32", "int16", "int8", "uint8")
FLOAT_DTYPES = ("float64", "float32")
INT_DTYPES = ("int64", "int32", "int16", "int8", "uint8")  # no gradient (ops/integer.py)
ITEMSIZE = {"float64": 8, "float32": 4, "bool": 1, "int64": 8, "int32": 4, "int16": 2, "int8": 1,
            "uint8": 1}  # bytes per element of each dtype  # fmt: skip
SHORT_DTYPE = {"float64": "f64", "float32": "f32", "bool": "bool", "int64": "i64", "int32": "i32",
               "int16": "i16", "int8": "i8", "uint8": "u8"}  # fmt: skip


def dtype_name(dtype: object) -> object:
    """A dtype given as NumPy spells it (np.float32, np.dtype("int64"), "f4") as graphc's name
    for it ("float32"); anything NumPy does not know comes back unchanged, for the caller's
    error to name."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return dtype
    try:
        import numpy as np

        name = np.dtype(dtype).name  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return dtype
    return name if dtype is not None else dtype


class ShapeMismatch(Exception):
    """Raised by the helpers here; callers turn it into a ShapeError that names nodes and lines."""


# Limits that keep every size the generated C computes from the static dims far from overflow
# (sizes involving symbols are checked at call time): NumPy's own limit on dimensions, and
# 2**36 elements (512 GiB of float64) in the fixed part of one value's shape.
MAX_RANK = 32
MAX_ELEMENTS = 2**36


def is_symbol(d: object) -> bool:
    """Can `d` name a symbolic dimension? ASCII identifiers only: each becomes part of a C name."""
    return isinstance(d, str) and d.isidentifier() and d.isascii()


@functools.lru_cache(maxsize=4096)
def monomial(d: Dim) -> tuple[int, tuple[str, ...]]:
    """Dim `d` as (int factor, sorted symbols, repeated for powers): "4*B*T" -> (4, ("B",
    "T")), 6 -> (6, ()). ShapeMismatch when `d` is neither an int nor such a product."""
    if isinstance(d, int):
        return d, ()
    coef, syms = 1, []
    for f in d.split("*") if isinstance(d, str) else ():
        f = f.strip()
        if f.isdigit() and f.isascii():
            coef *= int(f)
        elif is_symbol(f):
            syms.append(f)
        else:
            syms = []
            break
    if not syms:
        raise ShapeMismatch(
            f"symbolic dimension {d!r} must be an ASCII identifier such as 'N', or a product "
            "of them and an int such as 'B*T'"
        )
    return coef, tuple(sorted(syms))


def dim_of(coef: int, syms: Iterable[str]) -> Dim:
    """The dim of int factor `coef` times `syms`, in the canonical form."""
    syms = sorted(syms)
    if coef == 0 or not syms:
        return coef
    return "*".join(([str(coef)] if coef != 1 else []) + syms)


def dims_product(dims: Iterable[Dim]) -> Dim:
    """The product of `dims`, one dim."""
    coef, syms = size_monomial(tuple(dims))
    return dim_of(coef, syms)


def dim_symbols(d: Dim) -> tuple[str, ...]:
    """The symbols dim `d` is a product of (none for an int)."""
    return monomial(d)[1] if isinstance(d, str) else ()


def shape_symbols(shape: Shape) -> set[str]:
    """The symbols the dims of `shape` name."""
    return {x for d in shape if isinstance(d, str) for x in monomial(d)[1]}


def hinted(d: Dim, hint: int) -> int:
    """Dim `d` with every symbol at `hint` (a derived one at its value there)."""
    coef, syms = monomial(d)
    return coef * math.prod(symbol_value(x, {}, hint) for x in syms)


def dim_value(d: Dim, sizes: Mapping[str, int]) -> int:
    """Dim `d` with `sizes` given to its symbols (a derived one, unless given, from its
    source's)."""
    if isinstance(d, int):
        return d
    coef, syms = monomial(d)
    return coef * math.prod(symbol_value(x, sizes) for x in syms)


# ---- derived symbols: sizes a call works out from a symbol it binds ---------------------------
# A loop of T steps (T a symbol) checkpointed every k steps (passes/scan_remat.py) has
# ceil(T / k) or T // k checkpoints, runs whole segments of k steps, then a tail of the rest.
# Each such size is a symbol of its own, named after T, the kind and k ("T__q5": T // 5), so
# that shapes stay products of symbols; a call binds T from its arguments and works these out
# from it (codegen/tables.py). A loop run last to first (`reverse`) has T // k checkpoints and
# whole segments, and a tail of T mod k steps; one run first to last has ceil(T / k)
# checkpoints, ceil(T / k) - 1 whole segments (none when T = 0) and a tail of the remaining
# steps (k of them when k divides T).
DERIVED = {
    "q": lambda t, k: t // k,
    "r": lambda t, k: t % k,
    "c": lambda t, k: -(-t // k),
    "p": lambda t, k: max(-(-t // k) - 1, 0),
    "e": lambda t, k: t - k * max(-(-t // k) - 1, 0),
}
_DERIVED_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*?)__([qrcpe])([1-9][0-9]*)$")


def derived(x: str) -> tuple[str, str, int] | None:
    """(source symbol, kind, k) of derived symbol `x`, or None for a symbol a call binds."""
    m = _DERIVED_NAME.match(x) if "__" in x else None
    return None if m is None else (m.group(1), m.group(2), int(m.group(3)))


def at_hint(symbols: Iterable[str], hint: int) -> dict[str, int]:
    """Each of `symbols` at `hint`, a derived one worked out from its source's there (T__q4 is
    hint // 4, not the hint)."""
    return {x: symbol_value(x, {}, hint) for x in symbols}


def symbol_value(x: str, sizes: Mapping[str, int], hint: int | None = None) -> int:
    """The size of symbol `x`: from `sizes` (or `hint` when given), a derived one from its
    source's."""
    if x in sizes:
        return sizes[x]
    d = derived(x)
    if d is None:
        if hint is None:
            raise KeyError(x)
        return hint
    return DERIVED[d[1]](symbol_value(d[0], sizes, hint), d[2])


def split_steps(T: Dim, k: int, reverse: bool) -> tuple[Dim, Dim, Dim] | None:
    """(checkpoints, whole segments, tail steps) of a loop of `T` steps split every `k` (see
    above), or None when T is no plain symbol a call binds."""
    if not (is_symbol(T) and derived(T) is None and "__" not in T and k >= 2):
        return None
    q, r, c, p, e = (f"{T}__{kind}{k}" for kind in "qrcpe")
    return (q, q, r) if reverse else (c, p, e)


def _tail_of(whole: Dim, tail: Dim) -> str | None:
    """T when `whole` is k times the whole segments of T and `tail` its tail, else None."""
    d = derived(tail) if isinstance(tail, str) else None
    if d is None:
        return None
    T, kind, k = d
    seg = {"r": "q", "e": "p"}.get(kind)
    return T if seg is not None and whole == dim_of(k, [f"{T}__{seg}{k}"]) else None


def tail_after(start: Dim, T: Dim) -> Dim | None:
    """The tail of a checkpointed loop of `T` steps when `start` is its whole segments' steps
    (T__r5 after 5 * T__q5 steps), else None."""
    if not isinstance(start, str) or not isinstance(T, str):
        return None
    k, syms = monomial(start)
    d = derived(syms[0]) if len(syms) == 1 else None
    if d is None or d[0] != T or d[2] != k:
        return None
    kind = {"q": "r", "p": "e"}.get(d[1])
    return None if kind is None else f"{T}__{kind}{k}"


def steps_sum(dims: Iterable[Dim]) -> Dim | None:
    """The sum of `dims` when it is a dim: ints, or a checkpointed loop's whole segments' steps
    and its tail's (k * T__q5 + T__r5 = T); None otherwise."""
    dims = tuple(dims)
    if all(isinstance(d, int) for d in dims):
        return sum(dims)  # type: ignore[arg-type]
    live = [d for d in dims if d != 0]
    if len(live) == 1:
        return live[0]
    return _tail_of(*live) if len(live) == 2 else None


def fits(have: Dim, trips: Dim, chunk: int) -> bool:
    """Has an axis of `have` steps at least `trips` * `chunk` of them?"""
    if isinstance(have, int) and isinstance(trips, int):
        return have >= trips * chunk
    if have == dims_product((trips, chunk)):
        return True
    d = derived(trips) if isinstance(trips, str) else None
    if d is None:
        return False
    T, kind, k = d
    whole = chunk == k and have == T  # k steps a trip of the whole segments of T
    rows = chunk == 1 and kind == "p" and have == f"{T}__c{k}"  # ceil(T/k) - 1 of ceil(T/k)
    return (whole and kind in "qp") or rows


def _plain(v: object, depth: int = 0) -> bool:
    if v is None or isinstance(v, bool):
        return True
    if type(v) is int:
        return abs(v) < 2**62
    if type(v) is float:
        return math.isfinite(v)
    if isinstance(v, str):
        return is_symbol(v) or _is_product(v)
    return isinstance(v, tuple) and depth < 3 and all(_plain(x, depth + 1) for x in v)


def _is_product(v: str) -> bool:
    try:
        return dim_of(*monomial(v)) == v
    except ShapeMismatch:
        return False


def param_problem(value: object, default: object) -> str | None:
    """Why `value` cannot be an op parameter whose default is `default`, or None. Parameters
    are None, bools, ints, finite floats, ASCII identifiers (dtypes, symbols), products of
    symbols in canonical form ("B*T") and tuples of these: values the generated code can spell
    as literals, and nothing that reads as code."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be True or False"
    if _plain(value):
        return None
    return (
        "must be None, a bool, an int, a finite float, an identifier, a product of symbols "
        "('B*T') or a tuple of these"
    )


def normalize_shape(shape: Iterable[object]) -> Shape:
    """Return `shape` as a tuple of non-negative ints and identifier-like symbol names."""
    if type(shape) is tuple and all(type(d) is int or type(d) is str for d in shape):
        return _normalized(shape)  # the common case, remembered (a model has few shapes)
    return _normalize(shape)


@functools.lru_cache(maxsize=4096)
def _normalized(shape: tuple[int | str, ...]) -> Shape:
    return _normalize(shape)


def _normalize(shape: Iterable[object]) -> Shape:
    if isinstance(shape, (int, str)):
        shape = (shape,)
    elif not isinstance(shape, Iterable):
        raise ShapeMismatch(f"shape {shape!r} is not a sequence of dimensions")
    out: list[Dim] = []
    count = 1
    for d in shape:
        if isinstance(d, bool):
            raise ShapeMismatch(f"dimension {d!r} is a bool, not a size")
        if isinstance(d, int) or (hasattr(d, "__index__") and not isinstance(d, str)):
            d = int(d)  # numpy integers
            if d < 0:
                raise ShapeMismatch(f"dimension {d} is negative")
            count *= d
            if d > MAX_ELEMENTS or count > MAX_ELEMENTS:
                raise ShapeMismatch(
                    f"dimension {d} makes the shape hold more than 2**36 elements; "
                    "use a symbolic size (a name such as 'N') for a dimension this large"
                )
        elif isinstance(d, str):
            d = dim_of(*monomial(d))  # ShapeMismatch unless a symbol or a product
            if isinstance(d, int):  # "0*N"
                count *= d
        else:
            raise ShapeMismatch(f"dimension {d!r} is neither an int nor a symbol name")
        out.append(d)
        if len(out) > MAX_RANK:
            raise ShapeMismatch(f"a shape has at most {MAX_RANK} dimensions")
    return tuple(out)


def format_shape(shape: Shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def format_type(shape: Shape, dtype: str) -> str:
    return SHORT_DTYPE.get(dtype, dtype) + format_shape(shape)


def broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy broadcasting over symbolic shapes; a symbol matches only itself or 1."""
    if len(shapes) == 2:  # the common cases, without the general loop
        a, b = shapes
        if a == b or not b:
            return a
        if not a:
            return b
    ndim = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ShapeMismatch(
                f"dimensions {' and '.join(map(str, sorted(dims, key=str)))} cannot broadcast"
            )
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def can_broadcast_to(shape: Shape, target: Shape) -> bool:
    if len(shape) > len(target):
        return False
    return all(d in (1, t) for d, t in zip(shape, target[len(target) - len(shape) :], strict=True))


def normalize_axes(axis: object, ndim: int) -> tuple[int, ...]:
    """`axis` (None, an int or a sequence of ints) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    try:
        axes = (axis,) if isinstance(axis, (int, str)) else tuple(axis)  # type: ignore[arg-type]
    except TypeError:
        axes = (axis,)  # one axis (a numpy integer too), or an error below
    out = []
    for a in axes:
        try:
            if isinstance(a, (bool, str)):
                raise TypeError
            a = operator.index(a)  # numpy integers too
        except TypeError:
            raise ShapeMismatch(f"axis {a!r} is not an int") from None
        if not -ndim <= a < ndim:
            raise ShapeMismatch(f"axis {a} is out of range for {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeMismatch(f"axis {axis!r} repeats an axis")
    return tuple(sorted(out))


def size_monomial(shape: Shape) -> tuple[int, tuple[str, ...]]:
    """The element count of `shape` as (integer factor, sorted symbols)."""
    coeff = 1
    syms: list[str] = []
    for d in shape:
        c, s = monomial(d)
        coeff *= c
        syms += s
    return coeff, tuple(sorted(syms))


def same_size(a: Shape, b: Shape) -> bool:
    ca, sa = size_monomial(a)
    cb, sb = size_monomial(b)
    if ca == 0 and cb == 0:
        return True
    return ca == cb and sa == sb


def resolve_reshape(src: Shape, target: Shape) -> Shape:
    """Fill in one -1 in `target` from the size of `src`, and check the sizes agree."""
    holes = [i for i, d in enumerate(target) if d == -1]
    if len(holes) > 1:
        raise ShapeMismatch("only one dimension may be -1")
    if holes:
        known = tuple(d for d in target if d != -1)
        cs, ss = size_monomial(src)
        ck, sk = size_monomial(known)  # type: ignore[arg-type]
        rest = Counter(ss)
        rest.subtract(Counter(sk))
        if ck == 0 or cs % ck or any(v < 0 for v in rest.values()):
            raise ShapeMismatch(f"cannot infer -1 reshaping {format_shape(src)}")
        fill = dim_of(cs // ck, rest.elements())  # "B*32" for [B, 32, 64] to [-1, 64]
        target = tuple(fill if d == -1 else d for d in target)
    target = normalize_shape(target)
    if not same_size(src, target):
        raise ShapeMismatch(
            f"cannot reshape {format_shape(src)} to {format_shape(target)}: sizes differ"
        )
    return target


def bind_shape(shape: Shape, bindings: Mapping[str, int]) -> tuple[int, ...]:
    """Substitute bound values for the symbols of `shape`."""
    return tuple(dim_value(d, bindings) for d in shape)
