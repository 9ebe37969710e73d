"""The `graphc` command line."""

import subprocess
import sys

import pytest

from graphc.cli import main
from tests.models import ROOT

SEED = str(ROOT / "examples" / "seed_network.py")


def test_show_prints_the_graph(capsys):
    assert main(["show", SEED]) == 0
    out = capsys.readouterr().out
    assert out.startswith("graph seed_net {") and "= matmul v0 v6" in out


def test_show_grad_stage(capsys):
    assert main(["show", SEED, "--stage", "grad"]) == 0
    assert "return loss=v17, dloss/dW1=" in capsys.readouterr().out


def test_check_passes_on_the_seed_network(capsys):
    assert main(["check", SEED]) == 0
    assert "W1" in capsys.readouterr().out


def test_json_model(tmp_path, capsys):
    from tests.models import seed_net

    path = tmp_path / "m.json"
    path.write_text(seed_net().to_json())
    assert main(["show", str(path)]) == 0
    assert "graph seed_net {" in capsys.readouterr().out


def test_shape_error_is_one_line_naming_the_model_line(tmp_path):
    bad = tmp_path / "bad_model.py"
    bad.write_text(
        "import graphc as gc\n"
        "graph = gc.Graph('bad')\n"
        "x = graph.input('x', shape=('N', 3))\n"
        "W = graph.param('W', shape=(2, 3))\n"
        "graph.output('loss', gc.sum(x @ W))\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "graphc.cli", "show", str(bad)], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert "bad_model.py:5" in r.stderr and "inner dimensions 3 and 2" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["show", "/nonexistent/model.py"], "no model file"),
        (["show", SEED, "--graph", "nothing"], "defines no 'nothing'"),
    ],
)
def test_bad_arguments(argv, pattern, capsys):
    assert main(argv) == 2
    assert pattern in capsys.readouterr().err


@pytest.mark.parametrize(
    "spec, pattern",
    [
        ("rmsprop", "unknown optimizer 'rmsprop'"),
        ("adam:lr=fast", "lr needs a number"),
        ("sgd:speed=2", "'speed=2' is not NAME=VALUE"),
    ],
)
def test_bad_optimizer_spec_is_a_usage_error(spec, pattern, capsys):
    with pytest.raises(SystemExit) as e:
        main(["compile", SEED, "--optimizer", spec])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --optimizer" in err and pattern in err and "fix the model" not in err


@pytest.mark.compiler
def test_compile_with_an_optimizer_checks_train_step(tmp_path, capsys):
    argv = ["compile", SEED, "--optimizer", "adam:lr=0.1,beta1=0.8", "--check", "--out"]
    assert main([*argv, str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train_step updates the params and state as Adam(lr=0.1, beta1=0.8," in out
