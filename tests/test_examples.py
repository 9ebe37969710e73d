"""The training examples: a smoke run of each (a few steps) in the default suite, the full
training runs, which must reach their targets, under the `slow` marker.

Each runs as users run it, `python examples/NAME.py`, in a subprocess.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.models import ROOT

# example -> (what it needs beyond graphc, the metric its last line reports)
EXAMPLES = {
    "digits_mlp": ("sklearn", "test accuracy"),
    "digits_cnn": ("sklearn", "test accuracy"),
    "lstm_adding": (None, "test MSE"),
    "transformer_reverse": (None, "test token accuracy"),
}


def run(name: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    need = EXAMPLES[name][0]
    if need:
        pytest.importorskip(need, reason=f"examples/{name}.py needs {need}")
    cmd = [sys.executable, str(ROOT / "examples" / f"{name}.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def final_metric(out: str, metric: str) -> float:
    m = re.search(rf"final {metric}: ([0-9.]+)", out)
    assert m, f"no final {metric} line in:\n{out}"
    return float(m.group(1))


@pytest.mark.compiler
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_smoke_run(name: str, tmp_path: Path) -> None:
    """A few training steps: progress lines, a finite metric, a plot file, exit status 0."""
    plot = tmp_path / "curves.png"
    p = run(name, "--quick", "--build-dir", str(tmp_path), "--plot", str(plot), timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"epoch +1 +loss [0-9.]+ .* examples/s", p.stdout), p.stdout
    metric = EXAMPLES[name][1]
    assert final_metric(p.stdout, metric) >= 0
    assert plot.stat().st_size > 1000


MODELS = sorted(p.stem for p in (ROOT / "examples").glob("*.py") if "Graph(" in p.read_text())


@pytest.mark.compiler
@pytest.mark.parametrize("name", MODELS)
def test_compile_check_passes(name: str, tmp_path: Path) -> None:
    """`graphc compile examples/NAME.py --check`, as the README shows it: the module agrees
    with the interpreter and the gradients with finite differences, and says so."""
    cmd = [sys.executable, "-m", "graphc.cli", "compile", f"examples/{name}.py", "--check",
           "--build-dir", str(tmp_path)]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    verdicts = [ln for ln in p.stdout.splitlines() if ln.startswith("check: ")]
    assert len(verdicts) == 2 and all(": ok (worst at" in ln for ln in verdicts), p.stdout


@pytest.mark.slow
@pytest.mark.compiler
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_full_run_reaches_its_target(name: str, tmp_path: Path) -> None:
    """The whole training run, as `python examples/NAME.py`: it exits 0 only when the held-out
    metric reaches the issue's target, within the 3 minutes allowed."""
    p = run(name, "--build-dir", str(tmp_path), timeout=180)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "reached" in p.stdout
