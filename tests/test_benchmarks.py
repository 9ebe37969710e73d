"""The benchmark suite runs (a smoke run: nothing is asserted about speed), with or without
the peers (PyTorch, JAX), which it skips with a reason when they are not installed."""

import importlib.util
import subprocess
import sys

import pytest

from tests.models import ROOT


@pytest.mark.slow  # a benchmark's smoke run: its cold builds take 5-10 s
@pytest.mark.compiler
def test_call_overhead_quick_run(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.call_overhead", "--quick", "--build-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "graphc value_and_grad" in r.stdout and "NumPy by hand" in r.stdout
    assert "MISMATCH" not in r.stdout


@pytest.mark.slow  # a benchmark's smoke run: its cold builds take 10-20 s
@pytest.mark.compiler
def test_suite_quick_run(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.suite", "--quick", "--workloads", "seed,chain,cnn",
         "--build-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for key in ("seed", "chain", "cnn"):
        assert f"== {key} ==" in r.stdout
    assert "== mlp ==" not in r.stdout
    assert "graphc value_and_grad" in r.stdout and "NumPy by hand" in r.stdout
    assert "bandwidth floor" in r.stdout and "transcendental floor" in r.stdout
    assert "MISMATCH" not in r.stdout


@pytest.mark.compiler
def test_scaling_quick_run(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.scaling", "--quick", "--build-dir", str(tmp_path),
         "--json", str(tmp_path / "scaling.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "python s" in r.stdout and "cython s" in r.stdout and "pyx lines" in r.stdout
    assert "slope (all sizes)" in r.stdout and "FAILED" not in r.stdout
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # every build directory removed


@pytest.mark.compiler
def test_threads_quick_run():
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.threads", "--quick", "--background", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for workload in ("towers", "chain", "cnn"):
        assert f"\n{workload} " in r.stdout
    assert "--background 1" in r.stdout


@pytest.mark.slow  # per-op benchmarks: each builds its models cold
@pytest.mark.compiler
def test_pool_quick_run():
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.pool", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for fn in ("avg_pool2d", "avg_pool3d", "adaptive_avg_pool2d", "max_unpool2d"):
        assert f"\n{fn} " in r.stdout and r.stdout.count(f"\n{fn} ") == 2
    if importlib.util.find_spec("torch") is None:
        assert "PyTorch / graphc" in r.stdout  # the columns, empty


@pytest.mark.slow  # per-op benchmarks: each builds its models cold
def test_resample_quick_run():
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.resample", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for workload in ("bilinear", "trilinear", "nearest", "conv1d"):
        assert f"\n{workload} " in r.stdout
    if importlib.util.find_spec("torch") is None:
        assert "skipped PyTorch" in r.stdout


@pytest.mark.slow  # per-op benchmarks: each builds its models cold
def test_elementwise_quick_run():
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.elementwise", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for workload in ("tanh", "softplus", "clip", "max over an axis"):
        assert r.stdout.count(f"\n{workload} ") == 2  # forward and value_and_grad
    if importlib.util.find_spec("torch") is None:
        assert "skipped PyTorch" in r.stdout


@pytest.mark.slow
@pytest.mark.compiler
def test_suite_quick_run_of_the_gpts(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.suite", "--quick", "--workloads", "gpt2,gpt4,gpt128",
         "--build-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for key in ("gpt2", "gpt4", "gpt128"):
        assert f"== {key} ==" in r.stdout
    assert "MISMATCH" not in r.stdout


@pytest.mark.slow  # a benchmark's smoke run: its cold builds take 10-20 s
@pytest.mark.compiler
def test_derivatives_quick_run():
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.derivatives", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for workload in ("mlp", "chain"):
        assert f"\n{workload}  " in r.stdout
    assert "grad/fwd" in r.stdout and "forward over reverse" in r.stdout
    if importlib.util.find_spec("jax") is None:
        assert "skipped JAX jit: JAX not importable" in r.stdout
    else:
        assert "JAX jit" in r.stdout and "skipped JAX" not in r.stdout


@pytest.mark.slow  # a benchmark's smoke run: its cold builds take 5-10 s
@pytest.mark.compiler
def test_compile_time_quick_run(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.compile_time", "--quick", "--build-dir", str(tmp_path),
         "--json", str(tmp_path / "compile_time.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "graphc's runtime for this machine" in r.stdout
    for model in ("seed", "chain200"):
        assert f"\n{model} " in r.stdout
    assert "build s" in r.stdout and "pyx lines" in r.stdout and "kernels" in r.stdout
    import json

    got = json.loads((tmp_path / "compile_time.json").read_text())["models"]
    assert got["seed"]["runs"][0]["cache_hit"] is False  # a cold build, every time
    assert got["seed"]["runs"][0]["pyx_lines"] <= 250


def test_gpt_workload_names_every_param_its_graph_has():
    import graphc as gc
    from benchmarks import gpt

    for cfg in gpt.CONFIGS.values():
        assert gpt.wrt(cfg) == tuple(gc.nn.init_params(gpt.graph(cfg)))


@pytest.mark.slow
@pytest.mark.compiler
def test_rnn_quick_run():
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.rnn", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for row in ("loop, T = 10", "loop, T = T", "unrolled, T = 20", "NumPy by", "memory_budget"):
        assert row in r.stdout
    assert "MISMATCH" not in r.stdout and "FAILED" not in r.stdout
    for module, title in (("torch", "torch.nn.LSTM"), ("jax", "JAX scan")):
        if importlib.util.find_spec(module) is None:
            assert f"skipped {title}" in r.stdout
        else:
            assert f"skipped {title}" not in r.stdout


@pytest.mark.slow  # a benchmark's smoke run: its cold builds take 10-20 s
@pytest.mark.compiler
def test_train_step_quick_run():
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_step", "--quick", "--configs", "gpt2"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "== gpt2 ==" in r.stdout and "graphc train_step" in r.stdout
    assert "MISMATCH" not in r.stdout
    if importlib.util.find_spec("torch") is None:
        assert "PyTorch not importable" in r.stdout
    else:
        assert "Adam.step()" in r.stdout and "PyTorch not importable" not in r.stdout
