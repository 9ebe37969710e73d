"""The slow paths of a generated module's argument checks: binding arguments given by name,
converting lists and other integer types, and the message of every error a bad call gets.

A generated module checks a call in C (templates/runtime/args.h, reading a table per function) and
comes here only when the call is unusual (names mixed with positions, values to convert) or
wrong: this looks at the call again, in the order the C checks go, and words what it finds,
so the messages are written once, in Python, instead of as C in every module (which made each
module slower to compile). Each `*_error` and `*_failure` function returns the exception for
the module to raise. A module imports this only when it needs it, so a correct call never
pays for importing graphc.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.ir.shapes import dim_symbols, dim_value, is_symbol

_MISSING = object()


def bind(fn: str, names: tuple[str, ...], args: tuple, kwargs: dict, defaults: tuple = ()) -> tuple:
    """The arguments in declaration order, from positions and names, those not given taken
    from `defaults` (None or a default per name; empty: none has one); errors name the
    problem."""
    if len(args) > len(names):
        raise TypeError(f"{fn}() takes {len(names)} arguments {names}, got {len(args)}")
    values: list[Any] = list(args) + [_MISSING] * (len(names) - len(args))
    for name, value in kwargs.items():
        if name not in names:
            raise TypeError(f"{fn}() got an unknown argument {name!r}; it takes {names}")
        k = names.index(name)
        if k < len(args):
            raise TypeError(f"{fn}() got argument {name!r} both by position and by name")
        values[k] = value
    for k, d in enumerate(defaults):
        if values[k] is _MISSING and d is not None:
            values[k] = d
    missing = [n for n, v in zip(names, values, strict=True) if v is _MISSING]
    if missing:
        s = "s" if len(missing) > 1 else ""
        raise TypeError(f"{fn}() is missing argument{s} {', '.join(missing)}")
    return tuple(values)


def check_args(fn: str, spec: tuple, given: tuple) -> tuple:
    """The arguments `given` (in order) as the arrays the module's C checks accept, converted
    by `convert`; or the error for the first argument that is wrong. `spec` holds each
    argument's (name, dtype, shape as people write it, sizes: an int or a symbol's name,
    integer). Every argument's dtype, rank and layout is checked before any size, as in the
    module."""
    arrays = []
    for (name, dtype, shape, sizes, _), value in zip(spec, given, strict=True):
        if value is None:
            raise TypeError(
                f"{fn}(): argument {name!r} is None; pass {_a(dtype)} array of shape {shape}"
            )
        try:
            a = convert(name, value, dtype)
        except (TypeError, ValueError, MemoryError) as e:
            raise type(e)(f"{fn}(): argument {name!r}: {e}") from None
        if not _fits(a, dtype, len(sizes)):
            raise array_error(fn, name, a, dtype, len(sizes), shape)
        arrays.append(a)
    bound: dict[str, tuple[int, str]] = {}  # symbol -> (its size, the argument binding it)
    for (name, _, shape, sizes, _), a in zip(spec, arrays, strict=True):
        expected = []
        for axis, size in enumerate(sizes):
            if is_symbol(size):
                bound.setdefault(size, (a.shape[axis], name))
                expected.append((size, *bound[size]))
            else:
                expected.append(size)  # an int, or a product checked below
        want = [e[1] if isinstance(e, tuple) else e for e in expected]
        if any(isinstance(w, int) and w != got for w, got in zip(want, a.shape, strict=True)):
            raise shape_error(fn, name, shape, a, tuple(expected))
    for (name, _, _, sizes, _), a in zip(spec, arrays, strict=True):
        for axis, size in enumerate(sizes):
            problem = product_problem(size, a.shape[axis], bound)
            if problem:
                raise ValueError(f"{fn}(): argument {name!r}: axis {axis} is {problem}")
    return tuple(arrays)


def product_problem(d: Any, got: int, bound: dict[str, tuple[int, str]]) -> str | None:
    """What is wrong with an axis of `got` elements declared as the product `d` ("B*T") of
    symbols `bound` (symbol -> its size, the argument giving it); None when it is right or
    `d` is not a product."""
    if not isinstance(d, str) or is_symbol(d):
        return None
    want = dim_value(d, {k: v for k, (v, _) in bound.items()})
    if want == got:
        return None
    by: dict[str, list[str]] = {}  # argument -> the sizes it gives
    for x in dict.fromkeys(dim_symbols(d)):
        by.setdefault(bound[x][1], []).append(f"{x}={bound[x][0]}")
    given = " and ".join(f"{arg!r} has {', '.join(sizes)}" for arg, sizes in by.items())
    return f"{d}={got}, but {given}: {d}={want}"


# The kinds of number a value without a dtype of its own (a Python number or list) may hold
# to be converted to an input of each kind: float inputs take ints and floats, int inputs ints.
_KINDS = {"f": "iuf", "i": "iu", "u": "iu", "b": "b"}


def convert(name: str, value: Any, dtype: str) -> np.ndarray:
    """The array for input `name` of `dtype`, by the one rule of compiled modules and the
    interpreter alike (TypeError, ValueError or MemoryError saying what is wrong otherwise):

    - a NumPy array (or scalar) must be of `dtype` itself, except that an int input takes any
      integer array whose values fit (indices come in many integer types); it is used as it
      is, or as a converted copy;
    - a Python number or (nested) list has no dtype of its own: it is converted to `dtype`
      when it holds the kind of number the input takes (floats and ints for a float input,
      ints for an int input, bools for a bool one), as a read-only copy, since it is not the
      caller's array: a function updating an argument in place must refuse it.
    """
    want = np.dtype(dtype)
    if isinstance(value, np.ndarray | np.generic):
        a = np.asarray(value)
        if want.kind in "iu" and a.dtype.kind in "iu" and not _fits(a, dtype):
            return _int_copy(a, dtype)
        return a  # of another dtype: `array_error` says so, after the other checks
    try:
        a = np.asarray(value)
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        raise TypeError(f"a {type(value).__name__} that is not an array of numbers ({e})") from None
    if a.dtype.kind not in _KINDS.get(want.kind, ""):
        raise TypeError(
            f"expected {_a(dtype)} array, got {a.dtype} from {_a(type(value).__name__)}; "
            f"convert it with np.asarray({name}, dtype={dtype!r})"
        )
    a = _int_copy(a, dtype) if want.kind in "iu" else np.array(a, dtype=want)
    a.flags.writeable = False
    return a


def _int_copy(a: np.ndarray, dtype: str) -> np.ndarray:
    """Integer array `a` as a C-contiguous `dtype` copy (ValueError when its values do not
    fit, MemoryError when there is no room for the copy)."""
    try:  # first a copy, as the values are read anyway: a view with zero strides may declare
        a = np.array(a, order="C")  # far more values than it holds
    except MemoryError:
        raise MemoryError(
            f"no memory for a contiguous copy of its {a.size} values (shape {a.shape}, "
            f"strides {a.strides})"
        ) from None
    info = np.iinfo(dtype)
    if a.size and (a.min() < info.min or a.max() > info.max):
        raise ValueError(f"values from {a.min()} to {a.max()} do not fit {dtype}")
    return a.astype(dtype, copy=False)


def _fits(a: Any, dtype: str, ndim: int | None = None) -> bool:
    """Would the module's C check take `a` as an argument of `dtype` (and rank `ndim`)?"""
    return (
        isinstance(a, np.ndarray)
        and a.dtype.num == np.dtype(dtype).num
        and ndim in (None, a.ndim)
        and a.flags.c_contiguous
        and a.flags.aligned
        and a.dtype.isnative
    )


def checks_disagree(fn: str, spec: tuple, given: tuple) -> Exception:
    """The module's C checks refuse arguments that check_args took: a bug, said plainly."""
    shown = ", ".join(
        f"{name}: {type(v).__name__} {getattr(v, 'dtype', '')} {getattr(v, 'shape', '')}"
        for (name, *_), v in zip(spec, given, strict=True)
    )
    return RuntimeError(f"{fn}(): the module refused arguments graphc's checks took ({shown})")


def dtype_problem(name: str, a: np.ndarray, dtype: str) -> str | None:
    """Why array `a` cannot be input `name` of `dtype` (see `convert`), or None."""
    if a.dtype.type is np.dtype(dtype).type:  # byte order is checked last, as layout
        return None
    return (
        f"expected {_a(dtype)} array, got {a.dtype}; convert it with "
        f"np.asarray({name}, dtype={dtype!r})"
    )


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def array_error(fn: str, name: str, a: np.ndarray, dtype: str, ndim: int, shape: str) -> Exception:
    """Why array `a` cannot be argument `name`: a `dtype` array of `ndim` dims, `shape` (its
    dtype first)."""
    problem = dtype_problem(name, a, dtype)
    if problem:
        return TypeError(f"{fn}(): argument {name!r}: {problem}")
    if a.ndim != ndim:
        return ValueError(
            f"{fn}(): argument {name!r}: expected {ndim} dimensions {shape}, got shape {a.shape}"
        )
    if not a.flags.c_contiguous:
        return ValueError(
            f"{fn}(): argument {name!r} must be C-contiguous; pass np.ascontiguousarray({name})"
        )
    return ValueError(f"{fn}(): argument {name!r} must be aligned and in native byte order")


def step_error(fn: str, steps: dict, stopped: int, value: int, bound: int) -> Exception:
    """The error of a call stopped after step k (`stopped` = 2 k), or after steps k and k + 1
    run at once (2 k + 1), one of `steps` (step -> what it computes), which met index `value`
    for an axis of size `bound`: an index the model computed, so no argument could be checked
    for it."""
    from graphc.errors import InputError

    k, pair = divmod(stopped, 2)
    what = " or ".join(steps[j] for j in range(k, k + 1 + pair) if j in steps) or f"step {k}"
    return InputError(f"{fn}(): {what}: index {value} is out of bounds for an axis of size {bound}")


def index_error(
    fn: str, lo: int, hi: int, uses: tuple, arrays: dict[str, np.ndarray], symbols: dict[str, int]
) -> Exception | None:
    """The error for the first index outside [lo, hi) that a step would read; `uses` holds
    each step's (description, range in words with "{}" for hi, how its indices are computed
    from `arrays`: see ops/indexing.index_source). None when every index is in range (the
    argument holding a bad value did not reach them)."""
    from graphc.errors import InputError
    from graphc.ops.indexing import evaluate_source, index_problem

    for what, bound, source in uses:
        idx = evaluate_source(source, arrays, symbols)
        problem = index_problem(idx, lo, hi, bound.format(hi))
        if problem:
            return InputError(f"{fn}(): {what}: {problem}")
    return None


def empty_error(fn: str, message: str) -> Exception:
    """A step that has no value on these sizes (a max over an axis of size 0), as the
    interpreter refuses it."""
    from graphc.errors import InputError

    return InputError(f"{fn}(): {message}")


def shape_error(fn: str, name: str, shape: str, a: np.ndarray, expected: tuple) -> Exception:
    """Argument `name` does not have `shape`; `expected` gives each axis: its size, or
    (symbol, the size bound to it, the argument that bound it)."""
    for axis, want in enumerate(expected):
        if isinstance(want, tuple) and a.shape[axis] != want[1]:
            symbol, bound, binder = want
            return ValueError(
                f"{fn}(): argument {name!r}: axis {axis} is {symbol}={a.shape[axis]}, "
                f"but {binder!r} has {symbol}={bound}"
            )
        if not isinstance(want, tuple) and a.shape[axis] != want:
            break
    return ValueError(f"{fn}(): argument {name!r}: expected shape {shape}, got {a.shape}")


def out_failure(fn: str, out: Any, outs: tuple, sizes: list, inputs: tuple) -> Exception:
    """Why the module's C check refused `out`: `outs` holds each output's (part, key, dtype,
    rank), `sizes` their sizes one after the other. Looks in the order the module used to:
    each output's array, then outputs sharing memory, then keys out= should not have."""
    shapes, at = [], 0
    for *_, ndim in outs:
        shapes.append(tuple(sizes[at : at + ndim]))
        at += ndim
    arrays = []
    for (part, key, dtype, _), shape in zip(outs, shapes, strict=True):
        problem = out_error(fn, out, part, key, dtype, shape, inputs)
        if problem is not None:
            return problem
        arrays.append((out[part] if part >= 0 else out)[key])
    for i, a in enumerate(arrays):
        for j in range(i):
            if np.shares_memory(a, arrays[j]):
                return outs_overlap_error(fn, outs[i][1], outs[j][1])
    return out_keys_error(fn, out, tuple((part, key) for part, key, *_ in outs))


def out_error(
    fn: str, out: Any, part: int, key: str, dtype: str, shape: tuple, inputs: tuple
) -> Exception | None:
    """Why `out` does not hold a usable array for output `key` (where `part` says: -1 for
    forward's dict, 0/1 for value_and_grad's pair), of `dtype` and `shape`; None if it does."""
    try:
        value = (out[part] if part >= 0 else out)[key]
    except (KeyError, IndexError, TypeError):
        form = "a dict" if part < 0 else "a pair of dicts (outputs, grads)"
        return TypeError(
            f"{fn}(): out= must be {form} like the one {fn} returns, with an array for {key!r}"
        )
    if not isinstance(value, np.ndarray):
        return TypeError(f"{fn}(): out[{key!r}] must be a NumPy array, got {type(value).__name__}")
    if value.dtype.num != np.dtype(dtype).num or value.shape != shape:
        return ValueError(
            f"{fn}(): out[{key!r}] must be a {dtype} array of shape {shape}, "
            f"got {value.dtype} {value.shape}"
        )
    f = value.flags
    if not (f.c_contiguous and f.aligned and f.writeable and value.dtype.isnative):
        return ValueError(
            f"{fn}(): out[{key!r}] must be C-contiguous, aligned, writeable "
            "and in native byte order"
        )
    if any(np.shares_memory(value, x) for x in inputs):
        return ValueError(
            f"{fn}(): out[{key!r}] shares memory with an input; pass a separate array"
        )
    return None


def out_keys_error(fn: str, out: Any, keys: tuple) -> Exception:
    """`out=` has an array for a key the function does not return (a misspelt key would
    otherwise be ignored); `keys` holds each (part, key) it returns, as for `out_error`."""
    parts = sorted({part for part, _ in keys})
    for part in parts:
        want = [key for p, key in keys if p == part]
        try:
            given = list((out[part] if part >= 0 else out).keys())
        except (KeyError, IndexError, TypeError, AttributeError):
            given = None
        extra = [k for k in given or () if k not in want]
        if given is None or extra:
            where = "out=" if part < 0 else f"out[{part}]"
            what = f"has {extra}, which" if extra else "is not a dict; it"
            return ValueError(f"{fn}(): {where} {what} {fn} does not return; it returns {want}")
    return ValueError(f"{fn}(): out= does not match what {fn} returns: {keys}")


def too_large_error(fn: str, sizes: dict[str, int]) -> Exception:
    """The symbolic sizes of a call make its memory overflow the sizes C can compute."""
    shown = ", ".join(f"{k}={v}" for k, v in sizes.items())
    return MemoryError(
        f"{fn}(): with {shown} this call would need more than 2**62 bytes of memory; check the "
        "arguments' shapes (an array with an axis of size 0 may declare any size on the others)"
    )


def outs_overlap_error(fn: str, key: str, other: str) -> Exception:
    return ValueError(f"{fn}(): out[{key!r}] and out[{other!r}] share memory; pass separate arrays")


def written_error(fn: str, name: str, other: str | None) -> Exception:
    """An array `fn` updates in place is read-only, or shares memory with argument `other`."""
    if other is None:
        return ValueError(
            f"{fn}(): argument {name!r} is updated in place, so it must be a writeable NumPy "
            "array (not a read-only one, nor a list or a scalar, which would be a copy)"
        )
    return ValueError(
        f"{fn}(): argument {name!r} is updated in place and shares memory with {other!r}; "
        "pass separate arrays (np.copy one of them)"
    )


def no_memory_error(fn: str, nbytes: int) -> Exception:
    return MemoryError(
        f"{fn}(): cannot allocate {nbytes} bytes ({nbytes / 2**30:.3g} GiB) for this call's "
        "outputs and scratch memory; are the arguments' sizes right?"
    )


def threads_error(n: Any) -> Exception:
    return ValueError(f"set_num_threads: need at least 1 thread, got {n}")


def threads_env_error(text: str) -> Exception:
    return ValueError(f"GRAPHC_NUM_THREADS must be a whole number, got {text!r}")
