"""Python literals in a module's source: `python` spells a value as one, and `Data` moves the
long ones into one string the module reads at import (see Data). Used by codegen/cython.py."""

from __future__ import annotations

import ast
import base64
import marshal
import math


def python(x: object) -> str:
    """A Python literal of `x`: tuples, lists and dicts of str, numbers, bools and None (NaN
    and the infinities spelt so that they read back)."""
    if isinstance(x, float) and not math.isfinite(x):
        return "float('nan')" if math.isnan(x) else ("-" if x < 0 else "") + "float('inf')"
    if isinstance(x, tuple):
        return "(" + ", ".join(map(python, x)) + ("," if len(x) == 1 else "") + ")"
    if isinstance(x, list):
        return "[" + ", ".join(map(python, x)) + "]"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{python(k)}: {python(v)}" for k, v in x.items()) + "}"
    return repr(x)


LONG = 1000  # characters: a longer Python literal goes to the module's data string
UNIFORM = 16  # elements: a constant this large whose elements are all one value is written short


def _elements(values: tuple) -> str:
    """The elements of a constant as a Python list: `[0.0] * 65536` when they are all one
    value (a zero carry of a loop's gradient: its literal would be megabytes of source)."""
    if len(values) > UNIFORM and all(repr(v) == repr(values[0]) for v in values):
        return f"[{python(values[0])}] * {len(values)}"
    return python(list(values))


class Data:
    """The module's long Python literals (the specs of thousands of arguments, the elements of
    a large constant such as a causal mask): each is `_D[k]`, element k of one tuple the
    module reads at import from a C string, in base64, of the tuple in `marshal`'s format 2
    (whose bytes depend on the values alone: it has no references back to objects met before).
    Cython writes a literal tuple or list as code that builds it, and a string constant three
    times over (compressed two ways, and as an array of characters): C the compiler takes
    seconds over (a 128 x 128 mask took gcc 6 s), where a C string is one token. marshal
    reads it back at C speed (ast.literal_eval took 0.3 s over the specs of 6,000 arguments)."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def value(self, text: str) -> str:
        """`text`, a Python literal, or `_D[k]` where it is long and plain data."""
        if len(text) <= LONG:
            return text
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text  # float('nan') and the like: only as code
        return self._add(value)

    def python(self, x: object) -> str:
        """`python(x)`, or `_D[k]` where that is long (`x` as that text reads back: a named
        tuple, which marshal does not take, as a tuple)."""
        text = python(x)
        if len(text) <= LONG:
            return text
        try:
            marshal.dumps(x, 2)
        except ValueError:
            x = ast.literal_eval(text)
        return self._add(x)

    def elements(self, values: tuple) -> str:
        """`_elements(values)`, or `_D[k]` (the list of `values`) where that is long."""
        text = _elements(values)
        return text if len(text) <= LONG else self._add(list(values))

    def _add(self, value: object) -> str:
        self.values.append(value)
        return f"_D[{len(self.values) - 1}]"

    def lines(self, width: int = 4000) -> list[str]:
        """The tuple of the values, marshalled and in base64 (nothing to escape), as C string
        pieces of `width` characters."""
        coded = base64.b64encode(marshal.dumps(tuple(self.values), 2)).decode()
        return [f'"{coded[k : k + width]}"' for k in range(0, len(coded), width)]
