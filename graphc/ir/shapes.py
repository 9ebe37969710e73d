"""Symbolic shapes: a shape is a tuple whose entries are ints or symbol names such as "N".

A symbol stands for one size bound at call time; two different symbols are never assumed equal,
and a symbol is never assumed equal to an int other than by binding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

Dim = int | str
Shape = tuple[Dim, ...]

DTYPES = ("float64", "float32", "bool", "int64", "int32")
FLOAT_DTYPES = ("float64", "float32")
INT_DTYPES = ("int64", "int32")  # labels and indices: inputs and constants only, no arithmetic
SHORT_DTYPE = {"float64": "f64", "float32": "f32", "bool": "bool", "int64": "i64", "int32": "i32"}


class ShapeMismatch(Exception):
    """Raised by the helpers here; callers turn it into a ShapeError that names nodes and lines."""


def normalize_shape(shape: Iterable[object]) -> Shape:
    """Return `shape` as a tuple of non-negative ints and identifier-like symbol names."""
    if isinstance(shape, (int, str)):
        shape = (shape,)
    out: list[Dim] = []
    for d in shape:
        if isinstance(d, bool):
            raise ShapeMismatch(f"dimension {d!r} is a bool, not a size")
        if isinstance(d, int) or (hasattr(d, "__index__") and not isinstance(d, str)):
            d = int(d)  # numpy integers
            if d < 0:
                raise ShapeMismatch(f"dimension {d} is negative")
        elif isinstance(d, str):
            if not d.isidentifier():
                raise ShapeMismatch(f"symbolic dimension {d!r} is not an identifier")
        else:
            raise ShapeMismatch(f"dimension {d!r} is neither an int nor a symbol name")
        out.append(d)
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
    axes = (axis,) if isinstance(axis, int) else tuple(axis)  # type: ignore[arg-type]
    out = []
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool):
            raise ShapeMismatch(f"axis {a!r} is not an int")
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
        if isinstance(d, int):
            coeff *= d
        else:
            syms.append(d)
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
        left = list(rest.elements())
        fill: Dim
        if not left:
            fill = cs // ck
        elif len(left) == 1 and cs == ck:
            fill = left[0]
        else:
            raise ShapeMismatch(f"cannot infer -1 reshaping {format_shape(src)}: size is symbolic")
        target = tuple(fill if d == -1 else d for d in target)
    target = normalize_shape(target)
    if not same_size(src, target):
        raise ShapeMismatch(
            f"cannot reshape {format_shape(src)} to {format_shape(target)}: sizes differ"
        )
    return target


def bind_shape(shape: Shape, bindings: Mapping[str, int]) -> tuple[int, ...]:
    """Substitute bound values for the symbols of `shape`."""
    return tuple(d if isinstance(d, int) else bindings[d] for d in shape)
