"""The runtime of the Python renderer (codegen/pyrender.py): a call of a module's function run
from its tables, as graphc's runtime runs a native module (templates/runtime/call.pyx.j2), and
the runtime's kernels (templates/runtime/steps.pyx.j2) as NumPy over the same operands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.codegen.records import Function
from graphc.codegen.tables import KINDS
from graphc.ir.shapes import DERIVED, ITEMSIZE

SUFFIX = {"d": "float64", "s": "float32"}
INDEX = {"l": "int64", "i": "int32"}


def call(pm: Any, f: Function, kwargs: dict) -> Any:
    """f(**kwargs) of Python module `pm` (a PyModule)."""
    names = f.names
    args = []
    for k, name in enumerate(names):
        if name in kwargs:
            value = kwargs[name]
        elif f.defaults and f.defaults[k] is not None:
            value = f.defaults[k][1]
        else:
            raise TypeError(f"{f.name}() is missing argument {name}")
        args.append(np.ascontiguousarray(value, dtype=f.args[k].cells[0]))
    sym: dict[int, int] = {}
    for row, a in zip(f.args, args, strict=True):
        for axis, d in enumerate(row.cells[2:]):
            if d < 0:
                sym.setdefault(-1 - d, a.shape[axis])
    for row in f.products:  # the derived symbols (codegen/tables.py), from their sources
        x, kind, _, *of = row.cells
        if kind < 0 and of[0] in sym:
            sym[x] = DERIVED[KINDS[-1 - kind]](sym[of[0]], of[1])
    z = []
    for row in f.sizes:
        coef, div, n, *syms = row.cells
        x = coef
        for s in syms[:n]:
            x *= sym[s]
        z.append(x // div)
    outs = []
    for row in f.outs:
        dtype, rank, _part, *dims = row.cells
        outs.append(np.zeros([z[d] for d in dims[:rank]], dtype=dtype))
    at, total = [], 0
    for row in f.slots:
        layouts = row.cells[1:]
        nbytes = max(z[layouts[j]] * layouts[j + 1] for j in range(0, len(layouts), 2))
        at.append(total)
        total += -(-nbytes // 64) * 64 + 64  # as the runtime spaces them (_spaced)
    arena = np.zeros(total + 64, np.uint8)
    v: list[np.ndarray] = []
    for row in f.values:
        kind, ref = row.cells
        if kind == "arg":
            v.append(args[ref].reshape(-1).view(np.uint8))
        elif kind == "out":
            v.append(outs[ref].reshape(-1).view(np.uint8))
        elif kind == "slot":
            v.append(arena[at[ref] :])
        elif kind == "const":
            v.append(pm.consts[ref].reshape(-1).view(np.uint8))
        else:  # alias
            v.append(v[ref])
    program = [c for row in f.program for c in row.cells]
    floats = list(f.floats)
    p = 0
    from graphc.codegen.pyrender import StepFailure
    from graphc.runtime.calls import step_error

    with np.errstate(all="ignore"):
        step = 0
        while p < len(program):
            kernel, nops = program[p], program[p + 1]
            try:
                pm.kernels[kernel](v, z, floats, program[p + 4 : p + 4 + nops])
            except StepFailure as e:
                raise step_error(f.name, f.checks[-1], 2 * step, *e.args) from None
            p += 4 + nops
            step += 1
    for row in f.copies:
        o, value, size, itemsize = row.cells
        outs[o].reshape(-1).view(np.uint8)[: z[size] * itemsize] = v[value][: z[size] * itemsize]
    parts = [{} for _ in range(f.nparts)]
    for row, key, o in zip(f.outs, f.keys, outs, strict=True):
        parts[row.cells[2]][key] = o
    return parts[0] if f.nparts == 1 else tuple(parts)


def _flat(v: np.ndarray, dtype: str) -> np.ndarray:
    n = len(v) // ITEMSIZE[dtype]
    return v[: n * ITEMSIZE[dtype]].view(dtype)


# ---- the runtime's kernels ---------------------------------------------------------------------
def _gemm(dtype: str) -> Callable:
    def step(v, z, f, a):
        A, B, C = (_flat(v[a[k]], dtype) for k in range(3))
        ta, tb, m, n, k, r = (z[a[j]] for j in range(3, 9))
        batch = [(z[a[9 + 3 * d]], z[a[10 + 3 * d]], z[a[11 + 3 * d]]) for d in range(r)]
        for t, idx in enumerate(np.ndindex(*(e for e, _, _ in batch))):
            oa = sum(i * sa for i, (_, sa, _) in zip(idx, batch, strict=True))
            ob = sum(i * sb for i, (_, _, sb) in zip(idx, batch, strict=True))
            x = A[oa * m * k : (oa + 1) * m * k].reshape((k, m) if ta else (m, k))
            y = B[ob * k * n : (ob + 1) * k * n].reshape((n, k) if tb else (k, n))
            out = (x.T if ta else x) @ (y.T if tb else y)
            C[t * m * n : (t + 1) * m * n] = out.reshape(-1)

    return step


def _rows(dtype: str, fn: Callable) -> Callable:
    """A step over x seen as [outer, length, inner] around an axis: out = fn(x, *floats)."""

    def step(v, z, f, a):
        x, out = _flat(v[a[0]], dtype), _flat(v[a[1]], dtype)
        outer, length, inner = (z[a[j]] for j in range(2, 5))
        rest = [z[a[j]] for j in range(5, len(a))] if fn is not _layer_norm else [f[a[5]]]
        shaped = x[: outer * length * inner].reshape(outer, length, inner)
        got = np.asarray(fn(shaped, *rest), dtype=dtype)
        out[: got.size] = got.reshape(-1)

    return step


def _softmax(x: np.ndarray, log: int) -> np.ndarray:
    top = np.max(x, axis=1, keepdims=True, initial=-np.inf)
    if log:
        return (x - top) - np.log(np.sum(np.exp(x - top), axis=1, keepdims=True))
    e = np.exp(x - top)
    return e / np.sum(e, axis=1, keepdims=True)


def _layer_norm(x: np.ndarray, eps: float) -> np.ndarray:
    x64 = x.astype(np.float64)
    d = x64 - x64.mean(axis=1, keepdims=True)
    return d / np.sqrt((d * d).mean(axis=1, keepdims=True) + eps)


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = np.max(x, axis=1, keepdims=True, initial=-np.inf)
    top = np.where(np.isfinite(top), top, 0)
    return np.log(np.sum(np.exp(x - top), axis=1)) + top[:, 0]


def _take(dtype: str, itype: str, grad: bool) -> Callable:
    def step(v, z, f, a):
        src, idx, out = _flat(v[a[0]], dtype), _flat(v[a[1]], itype), _flat(v[a[2]], dtype)
        outer, n, m, inner = (z[a[j]] for j in range(3, 7))
        j = idx[:m].astype(np.int64)
        j = np.where(j < 0, j + n, j)
        ok = (j >= 0) & (j < n)
        if not grad:
            x = src[: outer * n * inner].reshape(outer, n, inner)
            got = np.zeros((outer, m, inner), dtype)
            got[:, ok] = x[:, j[ok]]
            out[: got.size] = got.reshape(-1)
        else:
            ct = src[: outer * m * inner].reshape(outer, m, inner)
            got = np.zeros((outer, n, inner), dtype)
            for k in np.flatnonzero(ok):
                got[:, j[k]] += ct[:, k]
            out[: got.size] = got.reshape(-1)

    return step


def _conv(dtype: str, op: str | None) -> Callable:
    """conv2d or a gradient of it (`op`; None: conv2d_tiled, whose first int says which)."""
    from graphc.ops import conv

    ops = ("conv2d", "conv2d_grad_input", "conv2d_grad_weight")

    def step(v, z, f, a):
        ints = [z[j] for j in a[3:]]
        which = op or ops[ints.pop(0)]
        n, g, cig, cog, h, w, kh, kw, ho, wo, sh, sw, ph, pw, dh, dw = ints[:16]
        xs, ws, ys = (n, g * cig, h, w), (g * cog, cig, kh, kw), (n, g * cog, ho, wo)
        p = {"stride": (sh, sw), "padding": (ph, pw), "dilation": (dh, dw), "groups": g}
        shapes = {"conv2d": (xs, ws, ys), "conv2d_grad_input": (ys, ws, xs),
                  "conv2d_grad_weight": (xs, ys, ws)}[which]  # fmt: skip
        x, y = (
            _flat(v[a[k]], dtype)[: int(np.prod(s))].reshape(s) for k, s in enumerate(shapes[:2])
        )
        if which == "conv2d":
            got = conv._conv2d_ref(x, y, **p)
        elif which == "conv2d_grad_input":
            got = conv._grad_input_ref(x, y, size=(h, w), **p)
        else:
            got = conv._grad_weight_ref(x, y, kernel=(kh, kw), **p)
        _flat(v[a[2]], dtype)[: got.size] = got.reshape(-1)

    return step


def _conv3d(dtype: str, op: str | None) -> Callable:
    """conv3d or a gradient of it (`op`; None: conv3d_tiled, whose first int says which), from
    its 22 sizes (templates/runtime/steps.pyx.j2)."""
    from graphc.ops import conv3d

    def step(v, z, f, a):
        ints = [z[j] for j in a[3:]]
        which = op or ("conv3d", "conv3d_grad_input", "conv3d_grad_weight")[ints.pop(0)]
        n, g, cig, cog, *rest = ints[:22]
        size, kernel, out, stride, padding, dilation = (tuple(rest[k : k + 3])
                                                         for k in range(0, 18, 3))  # fmt: skip
        xs, ws, ys = (n, g * cig, *size), (g * cog, cig, *kernel), (n, g * cog, *out)
        p = {"stride": stride, "padding": padding, "dilation": dilation, "groups": g}
        shapes = {"conv3d": (xs, ws), "conv3d_grad_input": (ys, ws),
                  "conv3d_grad_weight": (xs, ys)}[which]  # fmt: skip
        x, y = (_flat(v[a[k]], dtype)[: int(np.prod(s))].reshape(s) for k, s in enumerate(shapes))
        if which == "conv3d":
            got = conv3d._conv3d_ref(x, y, **p)
        elif which == "conv3d_grad_input":
            got = conv3d._grad_input_ref(x, y, size=size, **p)
        else:
            got = conv3d._grad_weight_ref(x, y, kernel=kernel, **p)
        _flat(v[a[2]], dtype)[: got.size] = got.reshape(-1)

    return step


def _pool(dtype: str, op: str) -> Callable:
    from graphc.ops import pool

    refs = {"max_pool2d": pool._max_pool_ref, "max_pool2d_grad": pool._max_pool_grad_ref,
            "max_pool2d_gather": pool._max_pool_gather_ref, "avg_pool2d": pool._avg_pool_ref,
            "avg_pool2d_grad": pool._avg_pool_grad_ref}  # fmt: skip
    arity = {"max_pool2d_grad": 2, "max_pool2d_gather": 2}.get(op, 1)

    def step(v, z, f, a):
        nc, h, w, kh, kw, ho, wo, sh, sw, ph, pw = (z[j] for j in a[arity + 1 :])
        p = {"kernel": (kh, kw), "stride": (sh, sw), "padding": (ph, pw)}
        xs, ys = (1, nc, h, w), (1, nc, ho, wo)
        shapes = {"max_pool2d": [xs], "max_pool2d_grad": [ys, xs], "max_pool2d_gather": [xs, xs],
                  "avg_pool2d": [xs], "avg_pool2d_grad": [ys]}[op]  # fmt: skip
        ins = [_flat(v[a[k]], dtype)[: int(np.prod(s))].reshape(s) for k, s in enumerate(shapes)]
        extra = {"size": (h, w)} if op == "avg_pool2d_grad" else {}
        got = refs[op](*ins, **p, **extra)
        _flat(v[a[arity]], dtype)[: got.size] = got.reshape(-1)

    return step


def _argsort(dtype: str) -> Callable:
    from graphc.ops.sort import argsort_ref

    def step(v, z, f, a):
        outer, n, inner, desc = (z[a[j]] for j in range(2, 6))
        x = _flat(v[a[0]], dtype)[: outer * n * inner].reshape(outer, n, inner)
        got = argsort_ref(x, 1, bool(desc))
        _flat(v[a[1]], "int64")[: got.size] = got.reshape(-1)

    return step


STEPS: dict[str, Callable] = {"argsort_l": _argsort("int64")}
for _s, _dtype in SUFFIX.items():
    STEPS[f"gemm_{_s}"] = _gemm(_dtype)
    STEPS[f"softmax_{_s}"] = _rows(_dtype, _softmax)
    STEPS[f"layer_norm_{_s}"] = _rows(_dtype, _layer_norm)
    STEPS[f"logsumexp_{_s}"] = _rows(_dtype, _logsumexp)
    for _i, _itype in INDEX.items():
        STEPS[f"take_{_s}_{_i}"] = _take(_dtype, _itype, False)
        STEPS[f"take_grad_{_s}_{_i}"] = _take(_dtype, _itype, True)
    for _op in ("conv2d", "conv2d_grad_input", "conv2d_grad_weight"):
        STEPS[f"{_op}_{_s}"] = _conv(_dtype, _op)
    STEPS[f"conv2d_tiled_{_s}"] = _conv(_dtype, None)
    for _op in ("conv3d", "conv3d_grad_input", "conv3d_grad_weight"):
        STEPS[f"{_op}_{_s}"] = _conv3d(_dtype, _op)
    STEPS[f"conv3d_tiled_{_s}"] = _conv3d(_dtype, None)
    STEPS[f"argsort_{_s}"] = _argsort(_dtype)
    for _op in ("max_pool2d", "max_pool2d_grad", "max_pool2d_gather", "avg_pool2d",
                "avg_pool2d_grad"):  # fmt: skip
        STEPS[f"{_op}_{_s}"] = _pool(_dtype, _op)


def _copy(v, z, f, a):
    """src, dst; bytes."""
    n = z[a[2]]
    v[a[1]][:n] = v[a[0]][:n]


STEPS["copy"] = _copy


def _blocks(own: Any, array: Any, t: int, stride: int, rows: int, size: int, out: bool) -> None:
    """Slice t of `array` with its steps on an inner axis: `rows` blocks of `size` bytes, block
    b at b * stride + t * size; copied into `own` (contiguous), or out of it."""
    for b in range(rows):
        at = b * stride + t * size
        if out:
            array[at : at + size] = own[b * size : (b + 1) * size]
        else:
            own[b * size : (b + 1) * size] = array[at : at + size]


def scan(pm: Any, v: list, z: list, f: list, a: list) -> None:
    """A loop's step, as the runtime runs it (templates/runtime/scan.pyx.j2): a value's
    "pointer" is a view of the bytes from its first one."""
    trips, reverse, nbind, nbody, nempty = z[a[0]], a[1], a[2], a[3], a[4]
    binds = [a[5 + 6 * k : 11 + 6 * k] for k in range(nbind)]
    at = 5 + 6 * nbind
    empty = [a[at + 3 * k : at + 3 * k + 3] for k in range(nempty)]
    body = a[at + 3 * nempty :]
    assert len(body) == nbody
    for i in range(trips):
        t = trips - 1 - i if reverse else i
        for kind, dst, r0, r1, r2, size in binds:
            if kind == 0:
                v[dst] = v[r0][t * z[size] :]
            elif kind == 1:
                v[dst] = v[r0] if i == 0 else (v[r1] if i & 1 else v[r2])
            elif kind == 2:
                v[dst] = v[r0] if i == trips - 1 else (v[r2] if i & 1 else v[r1])
            elif kind == 3:
                v[dst] = v[r0]
            elif kind == 4:  # every k-th step (k: the size r2), each block's first run
                first = z[r2] - 1 if reverse else 0
                v[dst] = v[r0][(t // z[r2]) * z[size] :] if t % z[r2] == first else v[r1]
            elif kind == 5:  # gather: z[r2] blocks of slice t, its steps on an inner axis
                _blocks(v[dst], v[r0], t, z[r1], z[r2], z[size], False)
        p = 0
        while p < len(body):
            kernel, nops = body[p], body[p + 1]
            pm.kernels[kernel](v, z, f, body[p + 4 : p + 4 + nops])
            p += 4 + nops
        for kind, dst, r0, r1, r2, size in binds:
            if kind == 6:  # scatter: written back after the body
                _blocks(v[dst], v[r0], t, z[r1], z[r2], z[size], True)
    if trips == 0:
        for final, init, size in empty:
            n = z[size]
            v[final][:n] = v[init][:n]
