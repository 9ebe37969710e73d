"""The example and the benchmark of data-parallel training run as users run them: a smoke run
of each in the default suite, the example's full training (which must reach its accuracy
target) under the `slow` marker."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.distributed.conftest import SKIP_REASON
from tests.models import ROOT

pytest.importorskip("distributed", reason=SKIP_REASON)
pytestmark = pytest.mark.compiler


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)  # fmt: skip


def test_example_smoke_run(build_dir: Path) -> None:
    pytest.importorskip("sklearn", reason="examples/digits_distributed.py needs scikit-learn")
    p = _run(["examples/digits_distributed.py", "--quick", "--out", str(build_dir)], 300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"2 workers, each built 'digits_cnn' with key [0-9a-f]{16}", p.stdout)
    assert re.search(r"epoch +1 +loss [0-9.]+ +test accuracy [0-9.]+", p.stdout), p.stdout
    assert re.search(r"per step \(\d+ steps, ms\): total [0-9.]+, scatter", p.stdout)
    assert "final test accuracy" in p.stdout


@pytest.mark.slow
def test_example_reaches_the_accuracy_of_digits_cnn(build_dir: Path) -> None:
    pytest.importorskip("sklearn", reason="examples/digits_distributed.py needs scikit-learn")
    p = _run(["examples/digits_distributed.py", "--out", str(build_dir)], 900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "target >= 0.98: reached" in p.stdout


@pytest.mark.slow  # the distributed benchmark's smoke run: 8 s of workers and builds
def test_benchmark_quick_run(build_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist.json"
    p = _run(["-m", "benchmarks.distributed", "--quick", "--workloads", "seed",
              "--build-dir", str(build_dir), "--json", str(out)], 300)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert "== seed: seed net, batch 64, float64" in p.stdout and "MISMATCH" not in p.stdout
    for row in ("one process", "1 worker", "2 workers"):
        assert re.search(rf"\n{row} +[0-9.]+ ", p.stdout), p.stdout
    assert out.stat().st_size > 100
