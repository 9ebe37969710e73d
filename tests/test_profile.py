"""m.profile and `graphc compile --profile`: every program step timed, with its statements and
model lines; profiling leaves results and later calls as they were; bad requests are refused."""

import numpy as np
import pytest

import graphc as gc
from graphc.cli import main
from tests.models import ROOT

pytestmark = pytest.mark.compiler


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    g = gc.Graph("prof_mlp")
    x = g.input("x", shape=("N", 8))
    y = g.input("y", shape=("N", 2))
    h = gc.nn.dense(x, 16, "fc1", activation="tanh")  # the line the profile names
    out = gc.nn.dense(h, 2, "fc2")
    g.output("loss", gc.mean((out - y) ** 2))
    m = gc.compile(g, out_dir=tmp_path_factory.mktemp("prof"))
    rng = np.random.default_rng(0)
    inputs = gc.nn.init_params(g) | {"x": rng.standard_normal((5, 8)), "y": rng.random((5, 2))}
    return m, inputs


def test_every_step_is_timed_with_its_statements_and_lines(mlp):
    m, inputs = mlp
    p = m.profile(**inputs, repeat=5)
    prog, _ = m.stages.programs["value_and_grad"]
    assert p.function == "value_and_grad" and p.calls == 5
    assert [s.index for s in p.steps] == list(range(len(prog.steps)))
    assert all(s.statements and s.seconds >= 0 for s in p.steps)
    assert 0 < sum(s.seconds for s in p.steps) <= p.total  # the steps are inside the call
    lines = {line for s in p.steps for line in s.lines}
    assert any(line.startswith("test_profile.py:") for line in lines), lines
    assert any("matmul" in s.ops for s in p.steps)
    by_line = p.by_line()
    assert sum(sec for _, sec in by_line) == pytest.approx(sum(s.seconds for s in p.steps))
    text = str(p)
    assert "value_and_grad:" in text and "model line" in text and "test_profile.py:" in text


def test_profiling_leaves_results_and_calls_unchanged(mlp):
    m, inputs = mlp
    before = m.value_and_grad(**inputs)
    fwd = m.profile(**inputs, function="forward", repeat=2)
    assert fwd.function == "forward"
    assert len(fwd.steps) == len(m.stages.programs["forward"][0].steps)
    m.profile(**inputs, repeat=2)
    after = m.value_and_grad(**inputs)
    assert after[0]["loss"].tobytes() == before[0]["loss"].tobytes()
    for k in before[1]:
        assert after[1][k].tobytes() == before[1][k].tobytes()


def test_bad_requests_are_refused(mlp):
    m, inputs = mlp
    with pytest.raises(ValueError, match="no function 'hvp'"):
        m.profile(**inputs, function="hvp")
    with pytest.raises(ValueError, match="repeat must be a positive int"):
        m.profile(**inputs, repeat=0)
    bad = inputs | {"x": np.zeros((5, 7))}
    with pytest.raises(ValueError, match="'x'"):
        m.profile(**bad)
    with pytest.raises(TypeError, match="missing argument"):
        m.profile(x=inputs["x"])


def test_cli_profile_prints_the_steps_and_model_lines(tmp_path, capsys):
    model = str(ROOT / "examples" / "seed_network.py")
    assert main(["compile", model, "--out", str(tmp_path), "--profile", "3"]) == 0
    out = capsys.readouterr().out
    assert "value_and_grad:" in out and "(mean of 3)" in out
    assert "seed_network.py:" in out.split("model line")[1]
