"""The polynomials of graphc's erf and erfc, and of its float exp (templates/runtime/graphc_rt.h:
GC_ERF_SMALL, GC_ERFC_BIG, the float GC_ERF_SMALL_F, GC_ERF_TAIL_F, GC_ERFC_F, GC_EXPF),
least-squares fits on Chebyshev nodes against mpmath at 40 digits (the float ones rounded to
float).

    python -m tests.codegen.fit_vecmath   # prints the C tables to paste into graphc_rt.h

erf(a) = a P(a^2) below 0.5, P in u = (a^2 - 0.125) / 0.125. From 0.5 on, as in Numerical
Recipes' erfc: with t = 2 / (2 + a), erfc(a) = t exp(-a^2 + Q(ty)), ty = 4t - 2, Q a
polynomial in u = (ty - mid) / half over the ty of a from 0.5 to 28 (erfc underflows by 28):
one polynomial for the whole range, so the C has no table to look up, and vectorises.
In float, erf(a) from 0.75 on is 1 - exp(-a^2) R(a), R a polynomial in u = (a - mid) / half
on [0.75, 3.92] (erf rounds to 1 beyond), and a P(a^2) below 0.75; erfc(a) is Numerical
Recipes' formula for every a from 0 to 10.5 (it underflows by then), u = t U1 + U0; exp's
polynomial is in r itself.
tests/codegen/test_vecmath_erf.py measures the results in ulp against long double.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np

mp.mp.dps = 40
SMALL_DEGREE = 9
BIG_DEGREE = 22
TY_LO, TY_HI = 4 * 2 / (2 + 28.0) - 2, 4 * 2 / (2 + 0.5) - 2


def fit(f, a: float, b: float, degree: int, nodes: int = 200, relative: bool = True) -> list:
    """Coefficients c0..c_degree of sum c_j u^j ~ f(x), u = (x - mid) / half, minimising the
    (relative, or absolute) error at `nodes` Chebyshev nodes of [a, b]."""
    return [float(c) for c in _fit(f, a, b, degree, nodes, relative)]


def _fit(f, a: float, b: float, degree: int, nodes: int, relative: bool) -> list:
    mid, half = mp.mpf(a + b) / 2, mp.mpf(b - a) / 2
    rows, rhs = [], []
    for j in range(nodes):
        u = mp.cos(mp.pi * (mp.mpf(j) + 0.5) / nodes)
        y = f(mid + half * u)
        w = 1 / y if relative else 1
        rows.append([u**k * w for k in range(degree + 1)])
        rhs.append(y * w)
    A, B = mp.matrix(rows), mp.matrix(rhs)
    c = mp.lu_solve(A.T * A, A.T * B)
    return [c[k] for k in range(degree + 1)]


def small(z):  # erf(sqrt z) / sqrt z
    return mp.erf(mp.sqrt(z)) / mp.sqrt(z) if z > 0 else 2 / mp.sqrt(mp.pi)


def big(ty):  # log(erfc(a) exp(a^2) / t), t = (ty + 2) / 4, a = 2 / t - 2
    t = (ty + 2) / 4
    a = 2 / t - 2
    return mp.log(mp.erfc(a) * mp.exp(a * a) / t)


def expm(r):  # (exp(r) - 1 - r) / r^2
    return (mp.exp(r) - 1 - r) / r**2 if r != 0 else mp.mpf(0.5)


def table(name: str, coefficients: list, ctype: str = "double") -> str:
    cells = [repr(c) + ("f" if ctype == "float" else "") for c in coefficients]
    lines, line = [], "   "
    for c in cells:
        if len(line) + len(c) + 2 > 96:
            lines.append(line)
            line = "   "
        line += f" {c},"
    return "\n".join([f"static const {ctype} {name}[{len(cells)}] = {{", *lines, line, "};"])


def main() -> None:
    print(table("GC_ERF_SMALL", fit(small, 0.0, 0.25, SMALL_DEGREE)))
    mid, half = (TY_LO + TY_HI) / 2, (TY_HI - TY_LO) / 2
    print(f"#define GC_ERFC_MID {mid!r}\n#define GC_ERFC_INV_HALF {1 / half!r}")
    print(table("GC_ERFC_BIG", fit(big, TY_LO, TY_HI, BIG_DEGREE, relative=False)))
    # float: erf, erfc to 10.5 (erfc underflows by then), exp's (exp(r) - 1 - r) / r^2
    f32 = lambda cs: [float(np.float32(float(c))) for c in cs]  # noqa: E731
    print(table("GC_ERF_SMALL_F", f32(_fit(small, 0.0, 0.5625, 6, 200, True)), "float"))
    tail = lambda a: mp.erfc(a) * mp.exp(a * a)  # noqa: E731  (erf = 1 - exp(-a^2) tail)
    print(table("GC_ERF_TAIL_F", f32(_fit(tail, 0.75, 3.92, 11, 200, True)), "float"))
    lo, hi = 4 * 2 / (2 + 10.5) - 2, 4 * 2 / (2 + 0.0) - 2
    mid, half = (lo + hi) / 2, (hi - lo) / 2  # u = (4t - 2 - mid) / half = t U1 + U0
    print(f"#define GC_ERFC_U1_F {float(np.float32(4 / half))!r}f")
    print(f"#define GC_ERFC_U0_F {float(np.float32(-(2 + mid) / half))!r}f")
    print(table("GC_ERFC_F", f32(_fit(big, lo, hi, 11, 300, False)), "float"))
    half = mp.log(2) / 2  # the polynomial in u = r / half, then in r: c_j / half^j
    print(
        table(
            "GC_EXPF",
            f32(c / half**j for j, c in enumerate(_fit(expm, -half, half, 4, 200, True))),
            "float",
        )
    )


if __name__ == "__main__":
    main()
