"""Model files: what `graphc` runs, what it only parses, and the one-line errors of a model
that fails to load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import graphc as gc
from graphc.errors import InputError
from graphc.modelfile import ModelFileError, load_model
from tests.models import ROOT, seed_net

MODEL = """\
import graphc as gc

def graph():
    g = gc.Graph("m")
    x = g.param("x", shape=(3,))
    g.output("loss", gc.sum({body}))
    return g
"""


def graphc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "graphc.cli", *args], cwd=cwd, capture_output=True, text=True
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "name, text, line, message",
    [
        ("syntax.py", "import graphc as gc\ngraph = gc.Graph('m'\n", 2, "SyntaxError"),
        ("misspelt.py", MODEL.format(body="gc.sigmoidd(x)"), 6,
         "AttributeError: module 'graphc' has no attribute 'sigmoidd'; did you mean 'sigmoid'?"),
        ("imports.py", "import graphc as gc\nimport no_such_module\n", 2,
         "ModuleNotFoundError: No module named 'no_such_module'"),
        ("raises.py", MODEL.format(body="x") + "graph = graph()\n1 / 0\n", 9,
         "ZeroDivisionError: division by zero"),
    ],
)  # fmt: skip
def test_a_model_that_fails_to_load_is_one_line_naming_file_and_line(
    tmp_path: Path, name: str, text: str, line: int, message: str
) -> None:
    write(tmp_path, name, text)
    r = graphc("show", name, cwd=tmp_path)
    assert r.returncode == 2
    first, *rest = r.stderr.splitlines()
    assert first.startswith(f"graphc: error: {name}:{line}: "), r.stderr
    assert message in first
    assert "Traceback" not in r.stderr
    assert rest == ["hint: fix the model at the line named above; --debug shows the traceback"]
    debug = graphc("show", name, "--debug", cwd=tmp_path)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_a_failure_inside_the_graph_function_names_its_line(tmp_path: Path) -> None:
    p = write(tmp_path, "late.py", MODEL.format(body="undefined_name * x"))
    with pytest.raises(ModelFileError, match=r"^late\.py:6: NameError: name 'undefined_name'"):
        load_model(p)


def test_the_model_folder_is_importable_while_it_loads(tmp_path: Path) -> None:
    write(tmp_path, "helpers_for_m.py", "SIZE = 3\n")
    p = write(tmp_path, "m.py", "from helpers_for_m import SIZE\n" + MODEL.format(body="x"))
    before = list(sys.path)
    g = load_model(p)
    assert isinstance(g, gc.Graph) and g.name == "m"
    assert sys.path == before


def test_candidates_are_what_the_file_defines(tmp_path: Path) -> None:
    text = (
        "from typing import Any, Callable\nimport graphc as gc\n"
        "def model_a():\n    return None\n"
        "tiny = gc.Graph('tiny')\n"
    )
    p = write(tmp_path, "c.py", text)
    with pytest.raises(InputError) as e:
        load_model(p)
    assert "candidates in c.py: model_a, tiny)" in str(e.value)
    assert "Any" not in str(e.value) and "Callable" not in str(e.value)


def test_no_line_named_means_no_hint_about_a_line(tmp_path: Path) -> None:
    write(tmp_path, "empty.py", "x = 1\n")
    r = graphc("show", "empty.py", cwd=tmp_path)
    assert r.returncode == 2
    assert "defines no 'graph'" in r.stderr and "hint:" not in r.stderr


@pytest.mark.parametrize("suffix", [".json", ".JSON", ".Json"])
def test_json_in_any_case_is_parsed_never_run(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "ran"
    code = write(tmp_path, "code" + suffix, f"open({str(marker)!r}, 'w').write('x')\n")
    with pytest.raises(gc.GraphError, match="not JSON"):
        load_model(code)
    assert not marker.exists()
    model = write(tmp_path, "model" + suffix, seed_net().to_json())
    assert load_model(model).name == "seed_net"


@pytest.mark.parametrize("name", ["model.txt", "model", "model.pyc"])
def test_other_suffixes_are_refused(tmp_path: Path, name: str) -> None:
    p = write(tmp_path, name, MODEL.format(body="x"))
    with pytest.raises(InputError, match="a model file is Python"):
        load_model(p)


@pytest.mark.parametrize(
    "example", sorted(p.name for p in (ROOT / "examples").glob("*.py") if "Graph(" in p.read_text())
)
def test_every_example_is_a_model_file(example: str) -> None:
    g = load_model(ROOT / "examples" / example)
    assert isinstance(g, gc.Graph) and g.outputs
