"""The compiled templates kept between processes (graphc/codegen/render.py: TemplateCache)."""

from __future__ import annotations

from pathlib import Path

import jinja2

from graphc.codegen.render import TemplateCache

TEMPLATES = {"t.j2": "{% for i in range(3) %}{{ i * k }},{% endfor %}"}


def _render(cache: TemplateCache, k: int) -> str:
    env = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), bytecode_cache=cache)
    return env.get_template("t.j2").render(k=k)


def test_a_template_compiled_once_is_read_back(tmp_path: Path) -> None:
    assert _render(TemplateCache(str(tmp_path)), 2) == "0,2,4,"
    assert len(list(tmp_path.iterdir())) == 1  # the compiled template
    assert _render(TemplateCache(str(tmp_path)), 3) == "0,3,6,"  # from the file


def test_a_cache_that_cannot_be_written_or_read_only_costs_time(tmp_path: Path) -> None:
    assert _render(TemplateCache(str(tmp_path / "missing")), 2) == "0,2,4,"
    (tmp_path / "cache").mkdir()
    assert _render(TemplateCache(str(tmp_path / "cache")), 2) == "0,2,4,"
    for f in (tmp_path / "cache").iterdir():
        f.write_bytes(b"damaged")  # not jinja2's header: compiled again
    assert _render(TemplateCache(str(tmp_path / "cache")), 5) == "0,5,10,"
