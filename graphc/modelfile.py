"""Loading a model from a file: a `.json` file written by `Graph.to_json` (parsed, never run),
or a Python file defining `graph` (a Graph, or a function returning one). Whatever goes wrong
while a Python model loads becomes one `ModelFileError` naming the file and line."""

from __future__ import annotations

import contextlib
import difflib
import runpy
import sys
import traceback
import types
from collections.abc import Iterator
from pathlib import Path

from graphc.errors import GraphcError, InputError
from graphc.ir.graph import Graph

RUN_NAME = "graphc_model"  # __name__ of a model file while it loads


class ModelFileError(GraphcError):
    """A Python model file failed to load; the message names the file, the line and the error
    (the original exception is the `__cause__`, for --debug)."""


def load_model(path: str | Path, graph: str | None = None) -> Graph:
    """The model in `path`: JSON (by its suffix, in any case), or a Python file (`.py`) that
    defines `graph`, or the Graph or function returning one named `graph` (the argument)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no model file {str(path)!r}")
    suffix = p.suffix.lower()
    if suffix == ".json":
        return Graph.from_json(p.read_text())
    if suffix != ".py":
        raise InputError(
            f"{p.name}: a model file is Python (.py) or JSON written by Graph.to_json (.json), "
            f"not {p.suffix or 'a file without a suffix'}"
        )
    namespace = _run(p)
    name = graph or "graph"
    if name not in namespace:
        raise InputError(
            f"{p.name} defines no {name!r}; define `graph` (a graphc.Graph, or a function "
            f"returning one) or pass --graph NAME (candidates in {p.name}: "
            f"{', '.join(_candidates(namespace)) or 'none'})"
        )
    obj = namespace[name]
    if callable(obj) and not isinstance(obj, Graph):
        with _reported(p):
            obj = obj()
    if not isinstance(obj, Graph):
        raise InputError(f"{p.name}: {name!r} gave a {type(obj).__name__}, not a graphc.Graph")
    return obj


def _candidates(namespace: dict) -> list[str]:
    """The Graphs and functions the model file itself defines (not what it imported)."""
    return sorted(
        k
        for k, v in namespace.items()
        if not k.startswith("_")
        and (
            isinstance(v, Graph) or (isinstance(v, types.FunctionType) and v.__module__ == RUN_NAME)
        )
    )


def _run(p: Path) -> dict:
    """Run model file `p` with its folder importable (as `python p` would have it)."""
    folder = str(p.resolve().parent)
    with _reported(p):
        sys.path.insert(0, folder)
        try:
            return runpy.run_path(str(p), run_name=RUN_NAME)
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)


@contextlib.contextmanager
def _reported(p: Path) -> Iterator[None]:
    """Any exception but graphc's own (which name the model line already) and those that end
    the program becomes a ModelFileError naming `p` (or the file of the model's folder where
    it arose) and the line."""
    try:
        yield
    except (GraphcError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        raise ModelFileError(f"{_where(e, p)}: {_describe(e)}") from e


def _where(e: BaseException, p: Path) -> str:
    """`file.py:LINE`: the innermost frame of the traceback in the model's folder (the model
    file or a helper beside it), or the line of a syntax error."""
    if isinstance(e, SyntaxError) and e.filename:
        return f"{Path(e.filename).name}:{e.lineno}"
    folder = p.resolve().parent
    frames = [
        f
        for f in traceback.extract_tb(e.__traceback__)
        if Path(f.filename).resolve().parent == folder
    ]
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else p.name


def _describe(e: BaseException) -> str:
    """`NameError: name 'x' is not defined`, with a suggestion for a misspelt graphc name."""
    if isinstance(e, SyntaxError):
        return f"SyntaxError: {e.msg}"
    text = f"{type(e).__name__}: {e}"
    if isinstance(e, AttributeError) and isinstance(getattr(e, "obj", None), types.ModuleType):
        close = difflib.get_close_matches(str(e.name), dir(e.obj), n=1)
        if close:
            text += f"; did you mean {close[0]!r}?"
    return text
