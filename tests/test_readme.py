"""The README runs as written: its Python blocks in order, in one namespace (as a reader pastes
them into one session), and each of its shell lines that names a bundled file (an example or
a model of `examples/`), each in a temporary build directory."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.models import ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, flags=re.S | re.M)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
# The shell lines that run something of the repository: the examples, or graphc on them.
SHELL = [
    line.split("  #")[0].strip()
    for lang, code in BLOCKS
    if lang == "bash"
    for line in code.splitlines()
    if re.search(r"\bexamples/\w+\.py\b", line) and not line.lstrip().startswith("pip ")
]


def test_the_readme_has_what_this_test_reads() -> None:
    assert len(PYTHON) >= 5 and len(SHELL) >= 5


def test_the_ops_table_names_every_op() -> None:
    """Every builder of graphc/ops/api.py appears in the README's section on ops."""
    import inspect

    import graphc.ops.api as api

    section = README.split("\n## Ops\n", 1)[1].split("\n## ", 1)[0]
    ops = [name for name, f in vars(api).items() if inspect.isfunction(f)
           and not name.startswith("_") and f.__module__.startswith("graphc.ops")]  # fmt: skip
    assert len(ops) > 140
    missing = [n for n in ops if not re.search(rf"(?<![\w.]){n}(?!\w)", section)]
    assert not missing, f"the README's ops table does not name {missing}"


@pytest.mark.compiler
def test_python_blocks_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRAPHC_BUILD_DIR", str(tmp_path / "build"))
    namespace: dict = {"__name__": "readme"}
    for k, code in enumerate(PYTHON):
        try:
            exec(compile(code, f"README.md python block {k + 1}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"README python block {k + 1} fails:\n{code}") from e


def _run(line: str, tmp_path: Path) -> subprocess.CompletedProcess:
    argv = shlex.split(line)
    if argv[0] == "python":
        argv[0] = sys.executable
    elif argv[0] == "graphc":
        argv = [sys.executable, "-m", "graphc.cli", *argv[1:]]
    argv = [str(tmp_path / a) if a.endswith((".png", ".html", ".svg")) else a for a in argv]
    env = dict(os.environ, GRAPHC_BUILD_DIR=str(tmp_path / "build"))
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


TRAINING = [line for line in SHELL if re.fullmatch(r"python examples/\w+\.py", line)]


def test_training_lines_are_the_examples_smoke_run_and_full_run() -> None:
    """`python examples/NAME.py` trains for minutes: tests/test_examples.py runs each as
    written (--quick in the default suite, the whole run under -m slow)."""
    from tests.test_examples import EXAMPLES

    assert {line.split("/")[1][:-3] for line in TRAINING} == set(EXAMPLES)


@pytest.mark.compiler
@pytest.mark.parametrize("line", [line for line in SHELL if line not in TRAINING])
def test_shell_line_runs(line: str, tmp_path: Path) -> None:
    p = _run(line, tmp_path)
    assert p.returncode == 0, f"{line}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
