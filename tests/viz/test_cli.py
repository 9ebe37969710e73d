"""`graphc draw` and `graphc report`, run as users run them."""

from __future__ import annotations

import json
import re
from html import escape

import numpy as np
import pytest

from graphc.cli import load_model, main
from tests.models import ROOT, seed_reference
from tests.viz import svgparse

SEED = str(ROOT / "examples" / "seed_network.py")


def test_draw_the_model(tmp_path, capsys):
    out = tmp_path / "seed.svg"
    assert main(["draw", SEED, "-o", str(out), "--engine", "builtin"]) == 0
    g = load_model(SEED)
    got = svgparse.boxes(out.read_text())
    assert sorted(b.key for b in got) == sorted(f"n{n}" for n in g.nx.nodes)
    assert f"wrote {out}" in capsys.readouterr().out


def test_draw_the_gradient(tmp_path):
    out = tmp_path / "grad.svg"
    assert main(["draw", SEED, "--stage", "grad", "-o", str(out), "--engine", "builtin"]) == 0
    classes = [b.classes for b in svgparse.boxes(out.read_text())]
    assert any("backward" in c for c in classes) and any("forward" in c for c in classes)


def test_draw_values_uses_the_models_inputs(tmp_path):
    out = tmp_path / "values.svg"
    assert main(["draw", SEED, "--values", "-o", str(out), "--engine", "builtin"]) == 0
    g = load_model(SEED)
    loss = next(b for b in svgparse.boxes(out.read_text()) if b.key == f"n{g.outputs['loss']}")
    got = float(re.search(r"value: ([-0-9.e]+)", loss.tooltip).group(1))
    assert got == pytest.approx(seed_reference()["forward"]["loss"], rel=1e-12)


def test_draw_values_from_a_file(tmp_path):
    inputs = tmp_path / "in.json"
    ref = seed_reference()
    x = np.asarray(ref["inputs"]["x"]) * 2  # other inputs than the model's own
    inputs.write_text(json.dumps({"inputs": {**ref["inputs"], "x": x.tolist()}}))
    out = tmp_path / "v.svg"
    assert main(["draw", SEED, "--inputs", str(inputs), "-o", str(out), "--engine", "builtin"]) == 0
    g = load_model(SEED)
    xbox = next(b for b in svgparse.boxes(out.read_text()) if b.key == f"n{g.input_ids()['x']}")
    assert "0.4, 0.2, 0.6" in xbox.tooltip


@pytest.mark.parametrize("suffix", [".png", ".dot"])
def test_draw_other_formats(tmp_path, suffix):
    if suffix == ".png":
        pytest.importorskip("matplotlib")
    out = tmp_path / f"seed{suffix}"
    assert main(["draw", SEED, "-o", str(out), "--engine", "builtin"]) == 0
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG") if suffix == ".png" else data.startswith(b"digraph")


@pytest.mark.parametrize(
    "args, message",
    [
        (["draw", SEED, "-o", "x.txt"], "cannot tell the format of 'x.txt'"),
        (["draw", SEED, "--inputs", "missing.json", "-o", "x.svg"], "no inputs file"),
        (["report", SEED, "-o", "r.txt"], "end 'r.txt' in .html"),
        (["report", SEED, "--check", "--no-build", "-o", "r.html"], "--check runs the built"),
    ],
)
def test_bad_requests_are_one_line_errors(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_inputs_file_names_the_problem(tmp_path, capsys):
    bad = tmp_path / "in.json"
    bad.write_text("[1, 2")
    assert main(["draw", SEED, "--inputs", str(bad), "-o", str(tmp_path / "x.svg")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_report_without_building(tmp_path, capsys):
    out = tmp_path / "seed.html"
    assert main(["report", SEED, "--no-build", "--values", "-o", str(out)]) == 0
    html = out.read_text()
    assert "<title>graphc report: seed_net</title>" in html and "Not built" in html
    assert "wrote" in capsys.readouterr().out


@pytest.mark.compiler
def test_report_builds_and_checks(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRAPHC_BUILD_DIR", str(tmp_path / "build"))
    out = tmp_path / "seed.html"
    assert main(["report", SEED, "--check", "-o", str(out)]) == 0
    checks = [line for line in capsys.readouterr().out.splitlines() if line.startswith("check:")]
    assert len(checks) >= 2 and any("finite differences" in line for line in checks)
    assert all(": ok" in line for line in checks)
    html = out.read_text()
    assert "check passed" in html
    for line in checks:  # the page shows what the command printed
        assert escape(line) in html
