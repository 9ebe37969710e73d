"""The benchmark suite runs (a smoke run: nothing is asserted about speed)."""

import subprocess
import sys

import pytest

from tests.models import ROOT


@pytest.mark.compiler
def test_call_overhead_quick_run(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.call_overhead", "--quick", "--build-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "graphc value_and_grad" in r.stdout and "NumPy by hand" in r.stdout
    assert "MISMATCH" not in r.stdout
