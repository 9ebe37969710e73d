"""Cython's worker process (graphc/runtime/translate.py): the C it writes, sources that are not
ASCII, a worker that dies, and the user's process left without Cython."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from graphc.compiler import run_stages
from graphc.errors import BuildError
from graphc.runtime import build_module, load_module, shared, translate
from tests.models import NEEDS_CC, seed_net

pytestmark = [pytest.mark.compiler, NEEDS_CC]

ROOT = Path(__file__).resolve().parents[2]
TINY = "def twice(double x):\n    return 2 * x\n"


def test_the_ascii_worker_writes_the_c_cython_writes_in_process(tmp_path: Path) -> None:
    """Its lexer knows only ASCII identifiers; on graphc's sources that changes nothing."""
    from Cython.Compiler import Main

    source = run_stages(seed_net()).source
    assert source.isascii()
    for where in ("worker", "here"):
        (tmp_path / where).mkdir()
        (tmp_path / where / "seed_net.pyx").write_text(source)
    include = [str(shared.header_dir())]
    reply = translate.translate(
        tmp_path / "worker/seed_net.pyx", tmp_path / "worker/seed_net.c", "seed_net", include
    )
    assert reply == {"errors": 0}
    result = Main.compile(
        str(tmp_path / "here/seed_net.pyx"),
        full_module_name="seed_net",
        language_level=3,
        output_file=str(tmp_path / "here/seed_net.c"),
        cache=False,
        timestamps=False,
        include_path=include,
    )
    assert result.num_errors == 0
    worker_c = (tmp_path / "worker/seed_net.c").read_text()
    assert worker_c == (tmp_path / "here/seed_net.c").read_text()


def test_a_source_that_is_not_ascii_builds(tmp_path: Path) -> None:
    """It goes to the worker with Cython's full lexer: non-ASCII text and names both work."""
    source = (
        "# données d'entraînement\n"
        'def label():\n    return "température"\n'
        "def déjà(double x):\n    durée = 2 * x\n    return durée\n"
    )
    module = load_module(build_module("not_ascii", source, out_dir=tmp_path))
    assert module.label() == "température" and module.déjà(2.0) == 4.0
    assert False in translate._WORKERS


def test_a_worker_that_died_is_replaced(tmp_path: Path) -> None:
    build_module("before", TINY, out_dir=tmp_path)
    worker = translate._WORKERS[True]
    worker.proc.kill()
    worker.proc.wait()
    module = load_module(build_module("after", TINY, out_dir=tmp_path))
    assert module.twice(1.5) == 3.0
    assert translate._WORKERS[True] is not worker


def test_a_worker_that_dies_mid_request_is_a_build_error(tmp_path: Path) -> None:
    worker = translate._Worker(True)
    worker.proc.kill()
    worker.proc.wait()
    (tmp_path / "m.pyx").write_text(TINY)
    job = {"pyx": str(tmp_path / "m.pyx"), "c": str(tmp_path / "m.c"), "name": "m"}
    with pytest.raises(BuildError, match=r"Cython's worker process ended \(exit -9\).*m\.pyx"):
        worker.ask({**job, "include_path": []})
    worker.close()


def test_the_users_process_never_imports_cython_compiler(tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "import graphc as gc\n"
        "from tests.models import seed_net\n"
        f"m = gc.compile(seed_net(), out_dir={str(tmp_path)!r})\n"
        "print(json.dumps([not m.built.cache_hit,"
        " sorted(k for k in sys.modules if k.startswith('Cython.Compiler'))]))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [True, []]


def test_the_worker_starts_with_compile_and_stays_only_if_it_built(tmp_path: Path) -> None:
    """gc.compile starts Cython's worker before its passes; a cache hit stops it again, so it
    takes no core from what follows, and a build keeps it for the next one."""
    script = (
        "import json\n"
        "import graphc as gc\n"
        "from graphc.runtime import translate\n"
        "from tests.models import seed_net\n"
        f"m = gc.compile(seed_net(), out_dir={str(tmp_path)!r})\n"
        "alive = [w.proc.poll() is None for w in translate._WORKERS.values()]\n"
        "print(json.dumps([m.built.cache_hit, alive]))\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    assert [json.loads(r.stdout) for r in runs] == [[False, [True]], [True, []]]
