"""Padding: `pad(x, widths, mode, value)`, one op for every mode, and `pad_grad`, the sum of
the cotangent over the places each element was copied to (the transpose of a pad).

Modes, PyTorch's names first (NumPy's accepted): "constant" (`value`), "reflect" (mirrored
without the edge), "replicate" ("edge"), "circular" ("wrap"), and NumPy's "symmetric"
(mirrored with the edge). Widths may exceed the axis: reflect and symmetric mirror again and
again, circular wraps around (NumPy's). A negative width crops (PyTorch's constant padding).

Widths: an int (every side of every axis), a pair per axis ((before, after), ... as NumPy's,
from the first axis), or a flat sequence of ints in PyTorch's F.pad order: (left, right) of the
last axis, then of the one before, and so on. Padded axes need int sizes; others may be
symbolic. The gradient of a constant pad is a slice of dy; of the others, pad_grad.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.codegen.emit import Emit, KernelBuilder, flat_index, flat_loop, loop_nest
from graphc.codegen.kir import Assign, Bin, Expr, If, Lit, Load, Store, select
from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc
from graphc.ir.shapes import ShapeMismatch
from graphc.ops._build import apply
from graphc.ops.registry import OpDef, register

MODES = ("constant", "reflect", "replicate", "circular", "symmetric")
ALIASES = {"edge": "replicate", "wrap": "circular"}
NUMPY = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
         "circular": "wrap", "symmetric": "symmetric"}  # fmt: skip


def _check(op: str, shape: tuple, params) -> tuple:
    widths, mode = params["widths"], params["mode"]
    if mode not in MODES:
        raise ShapeMismatch(f"{op}: mode {mode!r} is not one of {MODES}")
    ok = (
        isinstance(widths, tuple)
        and len(widths) == len(shape)
        and all(
            isinstance(w, tuple) and len(w) == 2 and all(isinstance(v, int) and v >= 0 for v in w)
            for w in widths
        )
    )
    if not ok:
        raise ShapeMismatch(f"{op}: widths {widths!r} must be a pair of ints >= 0 per axis")
    for k, (d, (b, a)) in enumerate(zip(shape, widths, strict=True)):
        if (b or a) and not isinstance(d, int):
            raise ShapeMismatch(f"{op}: axis {k} of symbolic size {d} cannot be padded")
        if (b or a) and d == 0 and mode != "constant":
            raise ShapeMismatch(f"{op}: an empty axis ({k}) has nothing to {mode} pad with")
    return widths


def _infer_pad(shapes, dtypes, params):
    widths = _check("pad", shapes[0], params)
    return tuple(
        d + b + a if (b or a) else d for d, (b, a) in zip(shapes[0], widths, strict=True)
    ), dtypes[0]


def _infer_pad_grad(shapes, dtypes, params):
    shape = params["shape"]
    widths = _check("pad_grad", shape, params)
    want = tuple(d + b + a if (b or a) else d for d, (b, a) in zip(shape, widths, strict=True))
    if tuple(shapes[0]) != want:
        raise ShapeMismatch(f"pad_grad: the cotangent must be {want}")
    return shape, dtypes[0]


def _pad_ref(x: np.ndarray, widths: tuple, mode: str, value: float) -> np.ndarray:
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=value)
    return np.pad(x, widths, mode=NUMPY[mode])


def source(mode: str, i: Expr, n: int, before: int) -> Expr:
    """The index along an axis of n (>= 1) elements that padded position i - before copies
    (constant mode: i - before itself, which may be outside)."""
    j = i - before if before else i
    if mode == "constant":
        return j
    if mode == "replicate":
        return select(j < 0, Lit(0), select(j > n - 1, Lit(n - 1), j))
    if mode == "circular":  # j >= -before: shifted by a multiple of n to be >= 0
        k = -(-before // n) * n
        return (j + k) - ((j + k) // n) * n
    if mode == "reflect":
        p = 2 * (n - 1)
        if p == 0:
            return Lit(0)
        a = select(j < 0, -j, j)
        m = a - (a // p) * p
        return select(m < n, m, p - m)
    p = 2 * n  # symmetric
    a = select(j < 0, -j - 1, j)
    m = a - (a // p) * p
    return select(m < n, m, p - 1 - m)


def _sources(kb: KernelBuilder, shape: tuple, widths: tuple, mode: str, idx: list):
    """Per axis the source index of padded position idx, and whether it is inside x (only
    constant mode can be outside)."""
    src, inside = [], None
    for d, (b, a), i in zip(shape, widths, idx, strict=True):
        if not (b or a):
            src.append(i)
            continue
        s = source(mode, i if i is not None else Lit(0), d, b)
        src.append(s)
        if mode == "constant":
            ok = Bin("and", s >= 0, s < d)
            inside = ok if inside is None else Bin("and", inside, ok)
    return src, inside


def _lower_pad(e: Emit, n: int, args: list[int], params: dict) -> None:
    (x,) = args
    kb, shape = e.builder(), e.values.shape
    out = kb.ref(n, write=True)
    widths, mode = params["widths"], params["mode"]
    empty = any(d == 0 for d in shape(x) if isinstance(d, int))

    def body(idx: list) -> list:
        at = flat_index(kb, shape(n), idx)
        if empty:  # nothing to read: the constant everywhere
            return [Assign(Store(out, at), Lit(float(params["value"])))]
        src, inside = _sources(kb, shape(x), widths, mode, idx)
        read = kb.read(x, flat_index(kb, shape(x), src))
        if inside is None:
            return [Assign(Store(out, at), read)]
        fill = Assign(Store(out, at), Lit(float(params["value"])))
        return [If(inside, (Assign(Store(out, at), read),)), If(inside.eq(0), (fill,))]

    e.kernel(kb, f"b0 = pad(b1, {widths}, {mode})", loop_nest(kb, shape(n), body))


def _lower_pad_grad(e: Emit, n: int, args: list[int], params: dict) -> None:
    """out = 0, then each element of ct added to the element it was copied from."""
    (ct,) = args
    kb, shape = e.builder(), e.values.shape
    out = kb.ref(n, write=True)
    zeros = flat_loop(kb, shape(n), lambda i: [Assign(Store(out, i), Lit(0))])

    def body(idx: list) -> list:
        src, inside = _sources(kb, shape(n), params["widths"], params["mode"], idx)
        at = flat_index(kb, shape(n), src)
        add = Assign(Store(out, at), Load(out, at) + kb.read(ct, flat_index(kb, shape(ct), idx)))
        return [add] if inside is None else [If(inside, (add,))]  # constant: the box only

    e.kernel(kb, f"b0 = pad_grad(b1, {params['widths']}, {params['mode']})",
             [*zeros, *loop_nest(kb, shape(ct), body)])  # fmt: skip


def _pad_grad_ref(ct: np.ndarray, widths: tuple, mode: str, value: float, shape: tuple):
    if mode == "constant":  # the padding was no copy of x
        box = tuple(slice(b, b + d) for (b, _), d in zip(widths, shape, strict=True))
        return np.ascontiguousarray(ct[box])
    out = np.zeros(shape, ct.dtype)
    srcs = [np.array([_py_source(mode, i, d, b) if (b or a) else i for i in range(m)], np.intp)
            for m, d, (b, a) in zip(ct.shape, shape, widths, strict=True)]  # fmt: skip
    np.add.at(out, np.ix_(*srcs), ct)  # unbuffered, in row-major order, as the kernel adds
    return out


def _py_source(mode: str, i: int, n: int, before: int) -> int:
    """`source` in Python's arithmetic (for the references; modes other than constant)."""
    j = i - before
    if mode == "replicate":
        return min(max(j, 0), n - 1)
    if mode == "circular":
        return j % n
    if mode == "reflect":
        p = 2 * (n - 1)
        m = abs(j) % p if p else 0
        return m if m < n else p - m
    a = -j - 1 if j < 0 else j  # symmetric
    m = a % (2 * n)
    return m if m < n else 2 * n - 1 - m


def _box(x_shape: tuple, widths: tuple) -> dict:
    """The slice of a padded value that is x itself."""
    starts = tuple(b for b, _ in widths)
    stops = tuple(
        b + d if isinstance(d, int) else d for (b, _), d in zip(widths, x_shape, strict=True)
    )
    return {"starts": starts, "stops": stops, "steps": (1,) * len(widths)}


def _pad_vjp(ct, out, x, widths, mode, value):
    if mode == "constant":  # dy where x was
        return apply("slice", ct, **_box(x.shape, widths))
    return apply("pad_grad", ct, widths=widths, mode=mode, value=0.0, shape=x.shape)


_PAD = {"widths": (), "mode": "constant", "value": 0.0}
register(
    OpDef(
        "pad",
        1,
        _infer_pad,
        _pad_ref,
        (_pad_vjp,),
        params=_PAD,
        lower=_lower_pad,
        formula="dx = dy summed over the places each element was copied to (constant: a slice)",
    )
)
register(
    OpDef(
        "pad_grad",
        1,
        _infer_pad_grad,
        _pad_grad_ref,
        (lambda c, out, ct, widths, mode, value, shape: apply("pad", c, widths=widths, mode=mode,
                                                                value=0.0),),
        params={**_PAD, "shape": ()},
        shape_params=("shape",),
        lower=_lower_pad_grad,
        formula="pad_grad is linear: its own VJP is pad",
    )
)  # fmt: skip


# ---- the builder ------------------------------------------------------------------------------
def _widths(x: Value, pad: Any) -> list[tuple[int, int]]:
    where = f"pad at {user_loc()}"

    def integer(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise ShapeError(f"{where}: widths must be ints, got {v!r}")
        return int(v)

    if isinstance(pad, int | np.integer) and not isinstance(pad, bool):
        return [(integer(pad), integer(pad))] * x.ndim
    pad = list(pad)
    if pad and all(isinstance(p, tuple | list) for p in pad):  # NumPy's: a pair per axis
        if len(pad) == 1:
            pad = pad * x.ndim
        if len(pad) != x.ndim or any(len(p) != 2 for p in pad):
            raise ShapeError(f"{where}: {x.ndim} pairs (before, after) needed, one per axis")
        return [(integer(b), integer(a)) for b, a in pad]
    if len(pad) % 2 or len(pad) // 2 > x.ndim:  # PyTorch's: from the last axis
        raise ShapeError(f"{where}: a flat sequence of widths (PyTorch's order) needs an even "
                         f"length of at most {2 * x.ndim}, got {len(pad)}")  # fmt: skip
    pairs = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        pairs[x.ndim - 1 - k] = (integer(pad[2 * k]), integer(pad[2 * k + 1]))
    return pairs


def pad(x: Value, pad: Any, mode: str = "constant", value: float = 0.0) -> Value:
    """x padded along its axes (see the module's doc for `pad` and the modes), as
    np.pad and torch.nn.functional.pad."""
    where = f"pad at {user_loc()}"
    mode = ALIASES.get(mode, mode)
    if mode not in MODES:
        raise ShapeError(f"{where}: mode {mode!r} is not one of {MODES} (or 'edge', 'wrap')")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.number)
        or not np.isfinite(value)
    ):
        raise ShapeError(f"{where}: value must be a finite number, got {value!r}")
    pairs = _widths(x, pad)
    if any(b < 0 or a < 0 for b, a in pairs):  # crop first (PyTorch's negative widths)
        if mode != "constant":
            raise ShapeError(f"{where}: negative widths crop, in constant mode only")
        key = []
        for (b, a), d in zip(pairs, x.shape, strict=True):
            if (b < 0 or a < 0) and not isinstance(d, int):
                raise ShapeError(f"{where}: axis of symbolic size {d} cannot be cropped")
            key.append(slice(max(-b, 0), d - max(-a, 0)) if b < 0 or a < 0 else slice(None))
        x = x[tuple(key)]
        pairs = [(max(b, 0), max(a, 0)) for b, a in pairs]
    if not any(b or a for b, a in pairs):
        return x
    return apply("pad", x, widths=tuple(pairs), mode=mode, value=float(value))
