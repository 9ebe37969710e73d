"""`einsum`, as NumPy's and PyTorch's, lowered to the ops it is made of: diagonals (a label
repeated in one operand) by advanced indexing, sums over labels used once, transposes, and
each contraction of two operands (left to right) a batched matrix product, or a broadcast
product and a sum where the labels of a group cannot be merged into one axis (symbolic sizes).
Its gradient is theirs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphc.errors import ShapeError
from graphc.ir.graph import Value
from graphc.ir.loc import user_loc


def _fail(msg: str) -> ShapeError:
    return ShapeError(f"einsum at {user_loc()}: {msg}")


def _parse(spec: str, ranks: list[int]) -> tuple[list[list[str]], list[str]]:
    """Each operand's labels and the output's, `...` expanded into labels of its own ('0',
    '1', ... right-aligned across operands, as broadcasting aligns them)."""
    spec = spec.replace(" ", "")
    lhs, arrow, rhs = spec.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise _fail(f"{spec!r} names {len(terms)} operands, got {len(ranks)}")
    letters = set("".join(terms).replace(".", "")) | set(rhs.replace(".", ""))
    if not all(c.isalpha() and c.isascii() for c in letters):
        raise _fail(f"{spec!r}: labels are ASCII letters (and one '...' per term)")
    widths = []
    for t, r in zip(terms, ranks, strict=True):
        if (
            t.count("...") > 1
            or t.replace("...", "").count(".")
            or ("..." not in t and len(t) != r)
        ):
            raise _fail(f"term {t!r} does not fit an operand of {r} dimensions")
        widths.append(r - len(t.replace("...", "")) if "..." in t else 0)
        if widths[-1] < 0:
            raise _fail(f"term {t!r} has more labels than its operand's {r} dimensions")
    top = max(widths, default=0)

    def expand(t: str, width: int) -> list[str]:
        head, dots, tail = t.partition("...")
        return [*head, *(str(top - width + k) for k in range(width) if dots), *tail]

    ins = [expand(t, w) for t, w in zip(terms, widths, strict=True)]
    if arrow:
        if rhs.count("...") > 1 or rhs.replace("...", "").count("."):
            raise _fail(f"output {rhs!r} may hold one '...'")
        out = expand(rhs, top) if "..." in rhs else list(rhs)
    else:  # implicit: the broadcast labels, then those used once, in order
        used = [c for t in ins for c in t]
        out = [str(k) for k in range(top)] + sorted(
            c for c in set(used) if c.isalpha() and used.count(c) == 1
        )
    for c in out:
        if out.count(c) > 1 or not any(c in t for t in ins):
            raise _fail(f"output label {c!r} is repeated or in no operand")
    return ins, out


def _sizes(ins: list[list[str]], xs: list[Value]) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for t, x in zip(ins, xs, strict=True):
        for c, d in zip(t, x.shape, strict=True):
            if sizes.get(c, 1) not in (1, d) and d != 1:
                raise _fail(f"label {c!r} has sizes {sizes[c]} and {d}")
            if d != 1 or c not in sizes:
                sizes[c] = d
    return sizes


def _diagonal(x: Value, labels: list[str]) -> tuple[Value, list[str]]:
    """x with each repeated label's diagonal taken (its axes become one, at the first)."""
    from graphc.ops.shape import transpose

    while len(set(labels)) < len(labels):
        c = next(c for c in labels if labels.count(c) > 1)
        axes = [k for k, d in enumerate(labels) if d == c]
        n = x.shape[axes[0]]
        if not isinstance(n, int) or any(x.shape[a] != n for a in axes):
            raise _fail(f"the diagonal of label {c!r} needs equal int sizes")
        rest = [k for k in range(x.ndim) if k not in axes]
        x = transpose(x, (*axes, *rest))
        ar = np.arange(n)
        x = x[(ar,) * len(axes)]
        labels = [c] + [labels[k] for k in rest]
    return x, labels


def _arrange(x: Value, labels: list[str], order: list[str]) -> Value:
    from graphc.ops.shape import transpose

    perm = tuple(labels.index(c) for c in order)
    return x if perm == tuple(range(len(perm))) else transpose(x, perm)


def _merged(dims: list) -> Any:
    """The size of dims merged into one axis, or None when a symbol would need a product."""
    ints = [d for d in dims if isinstance(d, int)]
    syms = [d for d in dims if not isinstance(d, int)]
    if not syms:
        return math.prod(ints)
    return syms[0] if len(syms) == 1 and math.prod(ints) == 1 else None


def _contract(a: Value, la: list[str], b: Value, lb: list[str], keep: set[str]):
    """a and b contracted over their shared labels not in `keep`: (value, its labels)."""
    from graphc.ops.reduce import sum as reduce_sum
    from graphc.ops.shape import reshape

    batch = [c for c in la if c in lb and c in keep]
    summed = [c for c in la if c in lb and c not in keep]
    only_a = [c for c in la if c not in lb]
    only_b = [c for c in lb if c not in la]
    nb, na, ns = len(batch), len(only_a), len(summed)
    labels = [*batch, *only_a, *only_b]
    a = _arrange(a, la, [*batch, *only_a, *summed])
    dims_a, dims_s = list(a.shape[nb : nb + na]), list(a.shape[nb + na :])
    lead_a = list(a.shape[:nb])
    b_mm = _arrange(b, lb, [*batch, *summed, *only_b])
    dims_b, lead_b = list(b_mm.shape[nb + ns :]), list(b_mm.shape[:nb])
    merged = [_merged(dims_a), _merged(dims_s), _merged(dims_b)]
    if all(m is not None for m in merged):  # a batched matrix product
        m, k, n = merged
        y = reshape(a, (*lead_a, m, k)) @ reshape(b_mm, (*lead_b, k, n))
        lead = [p if p != 1 else q for p, q in zip(lead_a, lead_b, strict=True)]
        return reshape(y, (*lead, *dims_a, *dims_b)), labels
    # else a product broadcast over every label, summed over the shared ones
    b = _arrange(b, lb, [*batch, *only_b, *summed])
    a5 = reshape(a, (*lead_a, *dims_a, *([1] * len(only_b)), *dims_s))
    b5 = reshape(b, (*lead_b, *([1] * na), *b.shape[nb:]))
    axes = tuple(range(len(labels), len(labels) + ns))
    return (reduce_sum(a5 * b5, axes) if axes else a5 * b5), labels


def einsum(spec: str, *operands: Value) -> Value:
    """Sums of products over labelled axes, as np.einsum and torch.einsum: "ij,jk->ik" is a
    matrix product, "ii->i" a diagonal, "bij,bjk->bik" a batched product; `...` stands for
    broadcast axes. One operand's repeated label takes its diagonal."""
    from graphc.ops.reduce import sum as reduce_sum

    xs = list(operands)
    if len(xs) == 1 and isinstance(xs[0], list | tuple):
        xs = list(xs[0])
    if not xs or not all(isinstance(x, Value) for x in xs):
        raise _fail("operands must be graphc Values")
    ins, out = _parse(spec, [x.ndim for x in xs])
    _sizes(ins, xs)
    terms = [_diagonal(x, list(t)) for x, t in zip(xs, ins, strict=True)]
    # labels no other term and not the output use: summed at once
    for k, (x, t) in enumerate(terms):
        others = {c for j, (_, u) in enumerate(terms) if j != k for c in u} | set(out)
        lone = [a for a, c in enumerate(t) if c not in others]
        if lone:
            terms[k] = (reduce_sum(x, tuple(lone)), [c for c in t if c in others])
    x, labels = terms[0]
    for k in range(1, len(terms)):
        later = {c for _, u in terms[k + 1 :] for c in u} | set(out)
        x, labels = _contract(x, labels, *terms[k], later)
    return _arrange(x, labels, out)
