"""`render`: the module records through the jinja2 templates, in one render."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import jinja2

from graphc.codegen.cython import module_view
from graphc.codegen.records import Module

_PACKAGE = Path(__file__).resolve().parent.parent


def template_dir() -> Path:
    """`graphc/templates` in an installed wheel; the repository's `templates/` when editable."""
    for candidate in (_PACKAGE / "templates", _PACKAGE.parent / "templates"):
        if (candidate / "module.pyx.j2").is_file():
            return candidate
    raise FileNotFoundError(f"graphc's templates are missing (looked beside {_PACKAGE})")


class TemplateCache(jinja2.FileSystemBytecodeCache):
    """The templates compiled to Python, kept between processes: jinja2 compiles them in about
    0.1 s, a process's first render, a cold build's or a cache hit's. By default in jinja2's
    directory for it, private to the user (it refuses one that others could write). A cache
    that cannot be read or written only costs that 0.1 s."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().load_bytecode(bucket)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _template_cache() -> TemplateCache | None:
    try:
        return TemplateCache()
    except (OSError, RuntimeError):  # no private temporary directory to be had
        return None


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        bytecode_cache=_template_cache(),
    )


def render(module: Module, runtime_key: str, runtime_options: dict) -> str:
    """The Cython source of `module`, built against the runtime `runtime_key`."""
    view = module_view(module, runtime_key, runtime_options)
    text = environment().get_template("module.pyx.j2").render(m=view)
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"
