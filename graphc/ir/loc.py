"""Where in the user's code a node was made: the first stack frame outside graphc."""

from __future__ import annotations

import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_inside: dict[str, bool] = {}  # code file name -> is it part of graphc


def _is_graphc(path: str) -> bool:
    hit = _inside.get(path)
    if hit is None:
        hit = _inside[path] = os.path.abspath(path).startswith(_PACKAGE_DIR + os.sep)
    return hit


def user_loc() -> str:
    """`file.py:LINE` of the innermost caller that is not graphc itself."""
    frame = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename
        if not _is_graphc(path):
            return f"{os.path.basename(path)}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return "?"
