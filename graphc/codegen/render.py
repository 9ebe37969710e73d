"""`render`: the module records through the jinja2 templates, in one render."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from graphc.codegen.records import Module

_PACKAGE = Path(__file__).resolve().parent.parent


def template_dir() -> Path:
    """`graphc/templates` in an installed wheel; the repository's `templates/` when editable."""
    for candidate in (_PACKAGE / "templates", _PACKAGE.parent / "templates"):
        if (candidate / "module.pyx.j2").is_file():
            return candidate
    raise FileNotFoundError(f"graphc's templates are missing (looked beside {_PACKAGE})")


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(module: Module) -> str:
    """The Cython source of `module`."""
    text = _environment().get_template("module.pyx.j2").render(module=module)
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"
