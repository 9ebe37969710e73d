"""Registry cases for padding (pad, pad_grad), pool_argmax and what is built on them and on
conv2d: conv1d, conv3d, the transposed convolutions, pooling with PyTorch's options (1-D to
3-D, dilation, ceil_mode, count_include_pad, divisor_override, indices and max_unpool,
adaptive averages) and interpolate (merged into tests/ops/test_registry.py's table).

The NumPy formulas are written independently of the ops' `ref`: padding by walking each
index back into the axis step by step, convolutions one output (or, transposed, one input)
position at a time, pooling one window at a time over its cells inside the input, and
interpolation as a dense matrix per axis built from PyTorch's documented coordinate rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import graphc as gc
from graphc.ops._build import apply
from tests.domains import distinct, small_ints

F32 = ("float32",)


def in_float64(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """`fn` over float64 copies of its arrays, rounded to their dtype at the end."""

    def run(*arrays: np.ndarray) -> np.ndarray:
        out = fn(*(np.asarray(a, np.float64) for a in arrays))
        return out.astype(np.result_type(*arrays))

    return run


# ---- padding ---------------------------------------------------------------------------------
def walk(j: int, n: int, mode: str) -> int:
    """The cell of an axis of n that position j (0 <= j < n is the axis itself) copies, found
    by stepping from the nearest end one cell at a time."""
    if mode == "replicate":
        return min(max(j, 0), n - 1)
    pos, step = (0, -1) if j < 0 else (n - 1, 1)
    if 0 <= j < n:
        return j
    for _ in range(-j if j < 0 else j - n + 1):
        nxt = pos + step
        if mode == "circular":
            pos = nxt % n
        elif 0 <= nxt < n:
            pos = nxt
        elif mode == "reflect":  # bounce off the end, the end cell not repeated
            step = -step
            pos = min(max(pos + step, 0), n - 1)
        else:  # symmetric: the end cell once more
            step = -step
    return pos


def np_pad(x: np.ndarray, pairs: list, mode: str, value: float = 0.0) -> np.ndarray:
    if mode == "constant":
        out = np.full([d + b + a for d, (b, a) in zip(x.shape, pairs, strict=True)], value)
        out[tuple(slice(b, b + d) for d, (b, _) in zip(x.shape, pairs, strict=True))] = x
        return out.astype(x.dtype)
    idx = [[walk(j - b, d, mode) for j in range(d + b + a)]
           for d, (b, a) in zip(x.shape, pairs, strict=True)]  # fmt: skip
    return x[np.ix_(*idx)]


def np_pad_grad(ct: np.ndarray, shape: tuple, pairs: list, mode: str) -> np.ndarray:
    out = np.zeros(shape, ct.dtype)
    for pos in np.ndindex(*ct.shape):
        src = [j - b for j, (b, _) in zip(pos, pairs, strict=True)]
        if mode == "constant":
            if all(0 <= s < d for s, d in zip(src, shape, strict=True)):
                out[tuple(src)] += ct[pos]
            continue
        out[tuple(walk(s, d, mode) for s, d in zip(src, shape, strict=True))] += ct[pos]
    return out


def torch_pairs(flat: tuple, ndim: int) -> list:
    """F.pad's order (last axis first) as a pair per axis."""
    pairs = [(0, 0)] * ndim
    for k in range(len(flat) // 2):
        pairs[ndim - 1 - k] = (flat[2 * k], flat[2 * k + 1])
    return pairs


MODES = ("constant", "reflect", "replicate", "circular", "symmetric")
GRAD_PAIRS = [(0, 0), (2, 3), (4, 1)]  # pad_grad's widths


def _pad_cases(case: Callable[..., Any]) -> list[Any]:
    out = []
    for mode in MODES:
        for shape, widths, bind, label in [
            ((2, 3, 4, 5), (1, 2, 3, 0), {}, "torch"),
            (("N", 3, 4), ((0, 0), (1, 2), (2, 1)), {"N": 2}, "pairs"),
            (("N", 3), ((0, 0), (5, 7)), {"N": 2}, "wide"),
            ((3,), 2, {}, "int"),
            (("N", 2, 3), (1, 1), {"N": 0}, "empty-batch"),
        ]:
            pairs = (
                torch_pairs(widths, len(shape))
                if label in ("torch", "empty-batch")
                else [(widths, widths)] * len(shape)
                if label == "int"
                else list(widths)
            )
            out.append(case("pad", lambda x, w=widths, m=mode: gc.pad(x, w, mode=m),
                            lambda x, p=pairs, m=mode: np_pad(x, p, m), shape, bind=bind,
                            label=f"{mode},{label}"))  # fmt: skip
        out.append(case("pad_grad",
                        lambda ct, m=mode: apply("pad_grad", ct, widths=tuple(GRAD_PAIRS),
                                                 mode=m, value=0.0, shape=("N", 3, 2)),
                        lambda ct, m=mode: np_pad_grad(ct, (ct.shape[0], 3, 2), GRAD_PAIRS, m),
                        ("N", 8, 7), bind={"N": 2}, label=mode))  # fmt: skip
        out.append(case("pad", lambda x, m=mode: gc.pad(x, (2, 1), mode=m),
                        lambda x, m=mode: np_pad(x, [(0, 0), (2, 1)], m), (3, 4), dtypes=F32,
                        label=mode))  # fmt: skip
    out += [
        case("pad", lambda x: gc.pad(x, (1, 2), value=-1.5),
             lambda x: np_pad(x, [(0, 0), (1, 2)], "constant", -1.5), (2, 3), label="value"),
        case("pad", lambda x: gc.pad(x, (-1, 2, 1, -2), value=0.5),
             lambda x: np_pad(x[:, :-2, 1:], [(0, 0), (1, 0), (0, 2)], "constant", 0.5),
             (2, 4, 5), label="crop"),
        case("pad", lambda x: gc.pad(x, (1, 1), mode="edge"),
             lambda x: np_pad(x, [(1, 1)], "replicate"), (1,), label="edge,1"),
        case("pad", lambda x: gc.pad(x, ((0, 0), (2, 3)), mode="reflect"),
             lambda x: np_pad(x, [(0, 0), (2, 3)], "reflect"), (2, 1), label="reflect,1"),
        case("pad", lambda x: gc.pad(x, (1, 1)), lambda x: np_pad(x, [(0, 0), (1, 1)], "constant"),
             (2, 0), label="empty-axis"),
        case("pad", lambda x: gc.pad(x * x, (1, 2), mode="circular"),
             lambda x: np_pad(x * x, [(1, 2)], "circular"), (4,), composite=True, label="x*x"),
    ]  # fmt: skip
    return out


# ---- convolutions ------------------------------------------------------------------------------
def np_conv(x: np.ndarray, w: np.ndarray, s: tuple, p: tuple, d: tuple, g: int) -> np.ndarray:
    k = x.ndim - 2
    xp = np.zeros((*x.shape[:2], *(n + 2 * q for n, q in zip(x.shape[2:], p, strict=True))))
    xp[
        (slice(None), slice(None), *(slice(q, q + n) for n, q in zip(x.shape[2:], p, strict=True)))
    ] = x
    spatial = [
        (n + 2 * q - dd * (kk - 1) - 1) // ss + 1
        for n, q, dd, kk, ss in zip(x.shape[2:], p, d, w.shape[2:], s, strict=True)
    ]
    out = np.zeros((x.shape[0], w.shape[0], *spatial))
    cig, cog = w.shape[1], w.shape[0] // g
    axes = list(range(1, k + 2))
    for pos in np.ndindex(*spatial):
        win = tuple(
            slice(o * ss, o * ss + dd * (kk - 1) + 1, dd)
            for o, ss, dd, kk in zip(pos, s, d, w.shape[2:], strict=True)
        )
        for gi in range(g):
            patch = xp[(slice(None), slice(gi * cig, (gi + 1) * cig), *win)]
            wg = w[gi * cog : (gi + 1) * cog]
            out[(slice(None), slice(gi * cog, (gi + 1) * cog), *pos)] = np.tensordot(
                patch, wg, axes=(axes, axes)
            )
    return out  # fmt: skip


def np_conv_transpose(x, w, s: tuple, p: tuple, op: tuple, g: int, d: tuple) -> np.ndarray:
    kernel = w.shape[2:]
    size = [
        (n - 1) * ss - 2 * q + dd * (kk - 1) + o + 1
        for n, ss, q, dd, kk, o in zip(x.shape[2:], s, p, d, kernel, op, strict=True)
    ]
    cig, cog = x.shape[1] // g, w.shape[1]
    full = np.zeros((x.shape[0], cog * g, *(n + 2 * q for n, q in zip(size, p, strict=True))))
    for pos in np.ndindex(*x.shape[2:]):
        region = tuple(
            slice(i * ss, i * ss + dd * (kk - 1) + 1, dd)
            for i, ss, dd, kk in zip(pos, s, d, kernel, strict=True)
        )
        for gi in range(g):
            xin = x[(slice(None), slice(gi * cig, (gi + 1) * cig), *pos)]
            part = np.tensordot(xin, w[gi * cig : (gi + 1) * cig], axes=(1, 0))
            full[(slice(None), slice(gi * cog, (gi + 1) * cog), *region)] += part
    return full[
        (slice(None), slice(None), *(slice(q, q + n) for n, q in zip(size, p, strict=True)))
    ]
    # fmt: skip


def _t(v: Any, k: int) -> tuple:
    return (v,) * k if isinstance(v, int) else tuple(v)


def _bias(y: np.ndarray, b: np.ndarray) -> np.ndarray:
    return y + b.reshape(-1, *([1] * (y.ndim - 2)))


def _conv_cases(case: Callable[..., Any]) -> list[Any]:
    out = []
    for k, xs, ws, kw, bind, label in [
        (1, (2, 4, 9), (6, 2, 3), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}, {},
         "s,p,d,g"),
        (1, ("N", 2, 5), (3, 2, 2), {}, {"N": 2}, ""),
        (3, (2, 2, 4, 4, 3), (3, 2, 2, 3, 2), {}, {}, ""),
        (3, ("N", 4, 5, 4, 5), (6, 2, 2, 3, 2), {"stride": (2, 1, 2), "padding": (1, 0, 1),
                                                  "dilation": (2, 1, 1), "groups": 2},
         {"N": 1}, "s,p,d,g"),
    ]:  # fmt: skip
        geo = (_t(kw.get("stride", 1), k), _t(kw.get("padding", 0), k),
               _t(kw.get("dilation", 1), k), kw.get("groups", 1))  # fmt: skip
        fn = getattr(gc, f"conv{k}d")
        out.append(case(f"conv{k}d", lambda x, w, b, fn=fn, kw=kw: fn(x, w, b, **kw),
                        in_float64(lambda x, w, b, geo=geo: _bias(np_conv(x, w, *geo), b)),
                        xs, ws, ws[:1], bind=bind, composite=True, label=label))  # fmt: skip
    for k, xs, ws, kw, bind, label in [
        (2, (2, 3, 4, 3), (3, 2, 3, 2), {}, {}, ""),
        (2, ("N", 4, 4, 5), (4, 3, 3, 2), {"stride": (2, 3), "padding": (1, 0),
                                            "output_padding": (1, 2), "groups": 2,
                                            "dilation": (1, 2)}, {"N": 2}, "s,p,op,g,d"),
        (2, (1, 2, 3, 3), (2, 1, 2, 2), {"stride": 2, "output_padding": 1}, {}, "op"),
        (1, (2, 4, 5), (4, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}, {}, "s,p,op"),
    ]:  # fmt: skip
        geo = (_t(kw.get("stride", 1), k), _t(kw.get("padding", 0), k),
               _t(kw.get("output_padding", 0), k), kw.get("groups", 1),
               _t(kw.get("dilation", 1), k))  # fmt: skip
        fn = getattr(gc, f"conv_transpose{k}d")
        cout = ws[1] * kw.get("groups", 1)
        out.append(case(f"conv_transpose{k}d", lambda x, w, b, fn=fn, kw=kw: fn(x, w, b, **kw),
                        in_float64(lambda x, w, b, g=geo: _bias(np_conv_transpose(x, w, *g), b)),
                        xs, ws, (cout,), bind=bind, composite=True, label=label))  # fmt: skip
    out += [
        case("conv1d", lambda x, w: gc.conv1d(x, w, padding=1),
             in_float64(lambda x, w: np_conv(x, w, (1,), (1,), (1,), 1)), (2, 3, 6), (2, 3, 3),
             dtypes=F32 * 2, composite=True, label="f32"),
        case("conv_transpose2d", lambda x, w: gc.conv_transpose2d(x, w, stride=2),
             in_float64(lambda x, w: np_conv_transpose(x, w, (2, 2), (0, 0), (0, 0), 1, (1, 1))),
             (2, 3, 3, 2), (3, 2, 2, 2), dtypes=F32 * 2, composite=True, label="f32"),
    ]  # fmt: skip
    return out


# ---- pooling -----------------------------------------------------------------------------------
def pooled(n: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """PyTorch's pooled size: windows may hang over the right end with ceil_mode, but each
    must start inside the input or the left padding."""
    span = (n + 2 * p - d * (k - 1) - 1) / s
    out = (math.ceil(span) if ceil else math.floor(span)) + 1
    return out - 1 if ceil and (out - 1) * s >= n + p else out


def windows(shape: tuple, k: tuple, s: tuple, p: tuple, d: tuple, ceil: bool):
    """(output position, the cells of the window inside the input, the window's extent
    counting the padding but not beyond it) of every window."""
    outs = [pooled(*a, ceil) for a in zip(shape, k, s, p, d, strict=True)]
    for pos in np.ndindex(*outs):
        starts = [o * ss - q for o, ss, q in zip(pos, s, p, strict=True)]
        taps = [
            [st + t * dd for t in range(kk) if 0 <= st + t * dd < n]
            for st, kk, dd, n in zip(starts, k, d, shape, strict=True)
        ]
        extent = math.prod(
            min(st + kk, n + q) - st for st, kk, n, q in zip(starts, k, shape, p, strict=True)
        )
        yield pos, [c for c in np.ndindex(*map(len, taps))], taps, extent, outs  # fmt: skip


def np_max_pool(x, k, s, p, d, ceil, indices=False):
    shape = x.shape[2:]
    outs = [pooled(*a, ceil) for a in zip(shape, k, s, p, d, strict=True)]
    vals = np.zeros((*x.shape[:2], *outs), x.dtype)
    idx = np.zeros((*x.shape[:2], *outs), np.int64)
    for nc in np.ndindex(*x.shape[:2]):
        for pos, cells, taps, _, _ in windows(shape, k, s, p, d, ceil):
            at = [tuple(t[c] for t, c in zip(taps, cell, strict=True)) for cell in cells]
            v = [x[(*nc, *a)] for a in at]
            best = int(np.argmax(v))  # the first of equal maxima
            vals[(*nc, *pos)] = v[best]
            idx[(*nc, *pos)] = np.ravel_multi_index(at[best], shape)
    return idx if indices else vals


def np_avg_pool(x, k, s, p, ceil, include_pad, divisor=None):
    shape = x.shape[2:]
    d = (1,) * len(k)
    outs = [pooled(*a, ceil) for a in zip(shape, k, s, p, d, strict=True)]
    out = np.zeros((*x.shape[:2], *outs))
    for pos, cells, taps, extent, _ in windows(shape, k, s, p, d, ceil):
        total = sum(x[(slice(None), slice(None), *(t[c] for t, c in zip(taps, cell,
                                                                        strict=True)))]
                    for cell in cells)  # fmt: skip
        count = divisor or (extent if include_pad else len(cells))
        out[(slice(None), slice(None), *pos)] = total / count
    return out


def np_unpool(x: np.ndarray, idx: np.ndarray, size: tuple) -> np.ndarray:
    out = np.zeros((*x.shape[:2], math.prod(size)))
    for pos in np.ndindex(*x.shape):
        out[(*pos[:2], idx[pos])] = x[pos]
    return out.reshape(*x.shape[:2], *size)


def np_adaptive(x: np.ndarray, sizes: tuple) -> np.ndarray:
    shape = x.shape[2:]
    sizes = [n if o is None else o for n, o in zip(shape, sizes, strict=True)]
    out = np.zeros((*x.shape[:2], *sizes))
    for pos in np.ndindex(*sizes):
        box = tuple(slice(i * n // o, -(-(i + 1) * n // o))
                    for i, n, o in zip(pos, shape, sizes, strict=True))  # fmt: skip
        out[(slice(None), slice(None), *pos)] = x[(slice(None), slice(None), *box)].mean(
            axis=tuple(range(2, x.ndim))
        )
    return out


def _pool_cases(case: Callable[..., Any]) -> list[Any]:
    out = []
    for k, xs, kw, bind, label in [
        (2, (2, 2, 7, 8), {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2,
                           "ceil_mode": True}, {}, "d,ceil"),
        (2, ("N", 2, 5, 5), {"kernel_size": 2, "ceil_mode": True}, {"N": 2}, "ceil"),
        (2, (1, 3, 6, 5), {"kernel_size": (2, 3), "stride": 1, "dilation": (2, 1)}, {}, "d"),
        (1, (2, 3, 9), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, {},
         "s,p,ceil"),
        (3, ("N", 2, 5, 4, 5), {"kernel_size": 2, "stride": (2, 1, 2), "padding": 1},
         {"N": 1}, "s,p"),
        (2, ("N", 2, 4, 4), {"kernel_size": 2, "return_indices": True}, {"N": 0}, "indices"),
    ]:  # fmt: skip
        geo = (_t(kw["kernel_size"], k), _t(kw.get("stride", kw["kernel_size"]), k),
               _t(kw.get("padding", 0), k), _t(kw.get("dilation", 1), k),
               kw.get("ceil_mode", False))  # fmt: skip
        fn = getattr(gc, f"max_pool{k}d")
        values = (lambda x, fn=fn, kw=kw: fn(x, **kw)[0]) if kw.get("return_indices") else (
            lambda x, fn=fn, kw=kw: fn(x, **kw))  # fmt: skip
        out.append(
            case(
                f"max_pool{k}d",
                values,
                lambda x, g=geo: np_max_pool(x, *g),
                xs,
                bind=bind,
                domain=(distinct,),
                composite=True,
                label=label,
            )
        )
        out.append(case("pool_argmax", lambda x, fn=fn, kw=kw: fn(x, **kw, return_indices=True)[1]
                        if not kw.get("return_indices") else fn(x, **kw)[1],
                        lambda x, g=geo: np_max_pool(x, *g, indices=True), xs, bind=bind,
                        domain=(small_ints,), label=f"max_pool{k}d,{label}"))  # fmt: skip
    out.append(case("max_pool2d", lambda x: gc.max_pool2d(x, 2, stride=1, ceil_mode=True),
                    lambda x: np_max_pool(x, (2, 2), (1, 1), (0, 0), (1, 1), True),
                    (1, 2, 3, 4), dtypes=F32, domain=(distinct,), composite=True,
                    label="ceil,f32"))  # fmt: skip
    for k, xs, kw, bind, label in [
        (2, (2, 2, 7, 8), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
                           "count_include_pad": False}, {}, "ceil,no-pad"),
        (2, (2, 2, 7, 8), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
         {}, "ceil"),
        (2, ("N", 2, 5, 6), {"kernel_size": 2, "divisor_override": 3}, {"N": 2}, "divisor"),
        (1, (2, 3, 9), {"kernel_size": 3, "stride": 2, "padding": 1,
                        "count_include_pad": False}, {}, "s,p,no-pad"),
        (1, ("N", 3, 8), {"kernel_size": 2}, {"N": 0}, ""),
        (3, (2, 2, 5, 4, 5), {"kernel_size": 2, "stride": (2, 1, 2), "padding": 1,
                              "ceil_mode": True}, {}, "s,p,ceil"),
        (3, (1, 2, 4, 4, 4), {"kernel_size": (2, 3, 2), "padding": (1, 1, 0),
                              "count_include_pad": False, "divisor_override": 5}, {},
         "no-pad,divisor"),
    ]:  # fmt: skip
        geo = (_t(kw["kernel_size"], k), _t(kw.get("stride", kw["kernel_size"]), k),
               _t(kw.get("padding", 0), k), kw.get("ceil_mode", False),
               kw.get("count_include_pad", True), kw.get("divisor_override"))  # fmt: skip
        fn = getattr(gc, f"avg_pool{k}d")
        out.append(case(f"avg_pool{k}d", lambda x, fn=fn, kw=kw: fn(x, **kw),
                        in_float64(lambda x, g=geo: np_avg_pool(x, *g)), xs, bind=bind,
                        composite=True, label=label))  # fmt: skip
    out.append(case("avg_pool1d", lambda x: gc.avg_pool1d(x, 3, 2, 1, True, False),
                    in_float64(lambda x: np_avg_pool(x, (3,), (2,), (1,), True, False)),
                    (2, 3, 8), dtypes=F32, composite=True, label="f32"))  # fmt: skip
    for k, xs, size, bind in [(2, (2, 2, 7, 8), (3, 5), {}), (1, ("N", 3, 7), (3,), {"N": 2}),
                              (3, (1, 2, 5, 4, 6), (2, None, 4), {}),
                              (2, (1, 1, 3, 4), (6, 1), {})]:  # fmt: skip
        fn = getattr(gc, f"adaptive_avg_pool{k}d")
        out.append(case(f"adaptive_avg_pool{k}d", lambda x, fn=fn, s=size: fn(x, s),
                        in_float64(lambda x, s=size: np_adaptive(x, s)), xs, bind=bind,
                        composite=True, label=",".join(map(str, size))))  # fmt: skip
    for k, xs, kw, size in [(2, (2, 2, 4, 6), {"kernel_size": 2}, (4, 6)),
                            (2, (1, 2, 5, 5), {"kernel_size": 2, "padding": 1,
                                               "output_size": (5, 5)}, (5, 5)),
                            (1, (2, 3, 9), {"kernel_size": 2, "output_size": (9,)}, (9,)),
                            (3, (1, 1, 4, 4, 4), {"kernel_size": 2}, (4, 4, 4))]:  # fmt: skip
        pool, unpool = getattr(gc, f"max_pool{k}d"), getattr(gc, f"max_unpool{k}d")
        pkw = {a: b for a, b in kw.items() if a != "output_size"}

        def build(x, pool=pool, unpool=unpool, kw=kw, pkw=pkw):
            v, i = pool(x, **pkw, return_indices=True)
            return unpool(v, i, **kw)

        def numpy(x, k=k, kw=pkw, size=size):
            g = (_t(kw["kernel_size"], k), _t(kw.get("stride", kw["kernel_size"]), k),
                 _t(kw.get("padding", 0), k), (1,) * k, False)  # fmt: skip
            return np_unpool(np_max_pool(x, *g), np_max_pool(x, *g, indices=True), size)

        out.append(
            case(
                f"max_unpool{k}d",
                build,
                numpy,
                xs,
                domain=(distinct,),
                composite=True,
                label="x".join(map(str, size)),
            )
        )
    return out


# ---- interpolate ------------------------------------------------------------------------------
def axis_matrix(n_in: int, n_out: int, mode: str, align: bool, scale: float | None = None):
    """[n_out, n_in]: each output position's weights on the input, from PyTorch's rules:
    nearest reads floor(dst * n_in / n_out) (nearest-exact floor((dst + 0.5) * ...)); linear
    interpolates at (dst + 0.5) n_in / n_out - 0.5 clamped at 0, or with align_corners at
    dst (n_in - 1) / (n_out - 1). A given scale factor s stands for n_in / n_out as 1 / s.
    An axis whose size does not change is copied."""
    if n_in == n_out:
        return np.eye(n_in)
    ratio = 1.0 / scale if scale else n_in / n_out
    m = np.zeros((n_out, n_in))
    for dst in range(n_out):
        if mode == "nearest":
            m[dst, min(math.floor(dst * ratio), n_in - 1)] = 1.0
            continue
        if mode == "nearest-exact":
            m[dst, min(math.floor((dst + 0.5) * ratio), n_in - 1)] = 1.0
            continue
        if align:
            src = dst * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            src = max((dst + 0.5) * ratio - 0.5, 0.0)
        lo = min(math.floor(src), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        m[dst, lo] += 1.0 - (src - lo)
        m[dst, hi] += src - lo
    return m


def np_interpolate(x: np.ndarray, sizes: tuple, mode: str, align: bool = False, scales=None):
    scales = scales or (None,) * len(sizes)
    for a, (n_out, sc) in enumerate(zip(sizes, scales, strict=True)):
        mat = axis_matrix(x.shape[2 + a], n_out, mode, align, sc)
        x = np.moveaxis(np.tensordot(x, mat, axes=([2 + a], [1])), -1, 2 + a)
    return x


def _interpolate_cases(case: Callable[..., Any]) -> list[Any]:
    out = []
    for xs, kw, sizes, scales, bind, label in [
        ((2, 2, 5, 7), {"size": (8, 4)}, (8, 4), None, {}, "nearest"),
        (("N", 3, 4), {"scale_factor": 2.5}, (10,), (2.5,), {"N": 2}, "nearest,scale"),
        ((2, 2, 5, 7), {"size": (8, 4), "mode": "nearest-exact"}, (8, 4), None, {},
         "nearest-exact"),
        ((2, 2, 5, 7), {"size": (8, 4), "mode": "bilinear"}, (8, 4), None, {}, "bilinear"),
        (("N", 2, 5, 7), {"size": (3, 9), "mode": "bilinear", "align_corners": True}, (3, 9),
         None, {"N": 1}, "bilinear,align"),
        ((2, 3, 5), {"scale_factor": 1.5, "mode": "linear"}, (7,), (1.5,), {}, "linear,scale"),
        ((2, 3, 5), {"size": 1, "mode": "linear", "align_corners": True}, (1,), None, {},
         "linear,align,1"),
        ((1, 2, 3, 4, 5), {"size": (4, 2, 5), "mode": "trilinear", "align_corners": True},
         (4, 2, 5), None, {}, "trilinear,align"),
        ((1, 2, 3, 4, 2), {"size": (6, 3, 4), "mode": "trilinear"}, (6, 3, 4), None, {},
         "trilinear"),
    ]:  # fmt: skip
        mode = kw.get("mode", "nearest")
        align = kw.get("align_corners", False)
        out.append(
            case(
                "interpolate",
                lambda x, kw=kw: gc.interpolate(x, **kw),
                lambda x, s=sizes, m=mode, a=align, sc=scales: np_interpolate(x, s, m, a, sc),
                xs,
                bind=bind,
                composite=True,
                label=label,
            )
        )
    out += [
        case("interpolate", lambda x: gc.interpolate(x, size=(2, 3), mode="area"),
             lambda x: np_adaptive(x, (2, 3)), (2, 2, 5, 7), composite=True, label="area"),
        case("interpolate", lambda x: gc.interpolate(x, size=(8, 4), mode="bilinear"),
             in_float64(lambda x: np_interpolate(x, (8, 4), "bilinear")), (2, 2, 4, 6),
             dtypes=F32, composite=True, label="bilinear,f32"),
    ]  # fmt: skip
    return out


def cases(case: Callable[..., Any]) -> list[Any]:
    """The cases, made with test_registry's `case(op, build, numpy, *shapes, **kw)`."""
    return (_pad_cases(case) + _conv_cases(case) + _pool_cases(case)
            + _interpolate_cases(case))  # fmt: skip


def _x(g: Any, shape: tuple = (1, 2, 5, 5)) -> Any:
    return g.param("x", shape=shape)


# (id, make(graph)) pairs whose shapes or arguments the op must reject with a ShapeError
ILLEGAL: list[tuple[str, Callable[[Any], Any]]] = [
    ("pad-mode", lambda g: gc.pad(_x(g), 1, mode="mirror")),
    ("pad-odd-flat", lambda g: gc.pad(_x(g), (1, 2, 3))),
    ("pad-too-many", lambda g: gc.pad(_x(g, (3,)), (1, 1, 1, 1))),
    ("pad-pairs", lambda g: gc.pad(_x(g, (3, 4)), ((1, 1),) * 3)),
    ("pad-float-width", lambda g: gc.pad(_x(g), (1.5, 1))),
    ("pad-value-nan", lambda g: gc.pad(_x(g), 1, value=float("nan"))),
    ("pad-crop-reflect", lambda g: gc.pad(_x(g), (-1, 1), mode="reflect")),
    ("pad-symbolic", lambda g: gc.pad(_x(g, ("N", 3)), ((1, 1), (0, 0)))),
    ("pad-reflect-empty", lambda g: gc.pad(_x(g, (2, 0)), (1, 1), mode="reflect")),
    ("pad_grad-ct", lambda g: apply("pad_grad", _x(g, (4, 5)), widths=((1, 1), (1, 0)),
                                    mode="reflect", value=0.0, shape=(2, 3))),
    ("conv1d-3d-w", lambda g: gc.conv1d(_x(g, (1, 2, 5)), g.param("w", shape=(3, 2, 2, 2)))),
    ("conv3d-stride", lambda g: gc.conv3d(_x(g, (1, 2, 4, 4, 4)),
                                          g.param("w", shape=(3, 2, 2, 2, 2)), stride=(1, 2))),
    ("conv_transpose2d-output_padding", lambda g: gc.conv_transpose2d(
        _x(g), g.param("w", shape=(2, 3, 3, 3)), stride=2, output_padding=2)),
    ("conv_transpose2d-channels", lambda g: gc.conv_transpose2d(
        _x(g), g.param("w", shape=(3, 3, 3, 3)))),
    ("max_pool2d-padding", lambda g: gc.max_pool2d(_x(g), 2, padding=2, ceil_mode=True)),
    ("max_pool1d-rank", lambda g: gc.max_pool1d(_x(g), 2)),
    ("max_pool3d-dilation-0", lambda g: gc.max_pool3d(_x(g, (1, 1, 4, 4, 4)), 2, dilation=0)),
    ("max_pool2d-symbolic", lambda g: gc.max_pool2d(_x(g, ("N", 2, "H", 5)), 2, ceil_mode=True)),
    ("max_pool2d-too-small", lambda g: gc.max_pool2d(_x(g, (1, 1, 2, 5)), 3, dilation=2)),
    ("avg_pool2d-divisor-0", lambda g: gc.avg_pool2d(_x(g), 2, divisor_override=0)),
    ("max_unpool2d-indices", lambda g: gc.max_unpool2d(
        _x(g, (1, 2, 2, 2)), g.param("i", shape=(1, 2, 2, 3), dtype="int64"), 2)),
    ("adaptive_avg_pool2d-size", lambda g: gc.adaptive_avg_pool2d(_x(g), (0, 2))),
    ("adaptive_avg_pool2d-count", lambda g: gc.adaptive_avg_pool2d(_x(g), (1, 2, 3))),
    ("interpolate-mode", lambda g: gc.interpolate(_x(g), size=3, mode="bicubic")),
    ("interpolate-dims", lambda g: gc.interpolate(_x(g), size=3, mode="linear")),
    ("interpolate-both", lambda g: gc.interpolate(_x(g), size=3, scale_factor=2)),
    ("interpolate-align", lambda g: gc.interpolate(_x(g), size=3, align_corners=True)),
    ("interpolate-size", lambda g: gc.interpolate(_x(g), size=(3, 0))),
]  # fmt: skip
