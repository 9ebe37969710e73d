"""The README's Troubleshooting table: each row's mistake is made here, and the message it
gives must be the one the README prints (the table is read from README.md, so it cannot go
stale)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import graphc as gc
from tests.models import ROOT, seed_inputs

README = ROOT / "README.md"
SGD = gc.optim.SGD(lr=0.1, momentum=0.9)


def seed_net(name: str = "seed_net") -> gc.Graph:
    """The README's tutorial model, its nodes made at fixed lines of a `model.py`."""
    g = gc.Graph(name)
    with g.at("model.py:4"):
        x = g.input("x", shape=("N", 3))
    with g.at("model.py:5"):
        y = g.input("y", shape=("N", 2))
    with g.at("model.py:6"):
        W1, b1 = g.param("W1", shape=(2, 3)), g.param("b1", shape=(2,))
    with g.at("model.py:7"):
        W2, b2 = g.param("W2", shape=(2, 2)), g.param("b2", shape=(1,))
    with g.at("model.py:8"):
        a1 = gc.sigmoid(x @ W1.T + b1)
    with g.at("model.py:9"):
        y_hat = gc.sigmoid(a1 @ W2.T + b2)
    with g.at("model.py:10"):
        g.output("loss", gc.mean((y_hat - y) ** 2))
    return g


INPUTS = seed_inputs()


def read_only(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


class Env:
    """What a trigger may need: the compiled tutorial model (built on first use), pytest's
    monkeypatch and a scratch directory."""

    def __init__(self, request: Any, monkeypatch: Any, tmp_path: Any) -> None:
        self.request, self.monkeypatch, self.tmp_path = request, monkeypatch, tmp_path

    @property
    def module(self) -> Any:
        return self.request.getfixturevalue("module")


# ---- the mistakes, by the README's words for them -------------------------------------------
def shape_mismatch(env: Env) -> None:
    g = gc.Graph("m")
    with g.at("model.py:4"):
        x, W1 = g.input("x", shape=("N", 3)), g.param("W1", shape=(2, 3))
    with g.at("model.py:5"):
        x @ W1


def bad_reshape(env: Env) -> None:
    g = gc.Graph("m")
    with g.at("model.py:4"):
        x = g.input("x", shape=("N", 3))
    with g.at("model.py:5"):
        x.reshape("N", 4)


def bad_input_name(env: Env) -> None:
    g = gc.Graph("m")
    with g.at("model.py:4"):
        g.input("my-input", shape=("N", 3))


def duplicate_input(env: Env) -> None:
    g = gc.Graph("m")
    with g.at("model.py:4"):
        g.param("W", shape=(2, 3))
    with g.at("model.py:5"):
        g.param("W", shape=(3, 2))


def unknown_op_in_json(env: Env) -> None:
    data = json.loads(seed_net().to_json())
    next(n for n in data["nodes"] if n["op"] == "sigmoid")["op"] = "sigmoidd"
    gc.Graph.from_json(json.dumps(data))


def misspelt_field_in_json(env: Env) -> None:
    data = json.loads(seed_net().to_json())
    node = next(n for n in data["nodes"] if n["op"] == "mean")
    node["parms"] = node.pop("params")
    gc.Graph.from_json(json.dumps(data))


def no_outputs(env: Env) -> None:
    g = gc.Graph("m")
    g.input("x", shape=("N", 3))
    gc.compile(g, out_dir=env.tmp_path)


def input_named_out(env: Env) -> None:
    g = gc.Graph("m")
    with g.at("model.py:4"):
        out = g.input("out", shape=("N", 3))
    g.output("y", gc.sum(out))
    gc.compile(g, out_dir=env.tmp_path)


def non_scalar_of(env: Env) -> None:
    g = seed_net()
    with g.at("model.py:11"):
        g.output("y_hat", gc.sigmoid(g["x"] @ g["W1"].T))
    gc.grad(g, of="y_hat")


def no_c_compiler(env: Env) -> None:
    env.monkeypatch.delenv("CC", raising=False)
    env.monkeypatch.setenv("PATH", str(env.tmp_path))  # an empty directory: no gcc, no cc
    gc.compile(seed_net("no_cc"), out_dir=env.tmp_path)


def missing_cc(env: Env) -> None:
    env.monkeypatch.setenv("CC", "/opt/missing/gcc")
    gc.compile(seed_net("no_cc"), out_dir=env.tmp_path)


def call(fn: str, *args: Any, out: Any = None, **changes: Any) -> Callable[[Env], None]:
    """Call the compiled model's `fn` with the tutorial's inputs, `changes` made (None: left
    out), or with `args` by position when there are any."""

    def run(env: Env) -> None:
        kwargs = {k: v for k, v in {**INPUTS, **changes}.items() if v is not None}
        extra = {} if out is None else {"out": out}
        f = getattr(env.module, fn)
        f(*args, **extra) if args else f(**kwargs, **extra)

    return run


def train(**changes: Any) -> Callable[[Env], None]:
    """Call train_step with the tutorial's params, fresh optimiser state and `changes` (a
    change naming another argument passes that argument's array)."""

    def run(env: Env) -> None:
        args = {k: v.copy() for k, v in INPUTS.items()}
        args |= env.module.init_state(args)
        args |= {k: args[v] if isinstance(v, str) else v for k, v in changes.items()}
        env.module.train_step(**args)

    return run


TRIGGERS: dict[str, Callable[[Env], None]] = {
    "Operands whose shapes do not fit": shape_mismatch,
    "A reshape to another size": bad_reshape,
    "An input name that is not an identifier": bad_input_name,
    "Two inputs with one name": duplicate_input,
    "A misspelt op in a JSON model": unknown_op_in_json,
    "A misspelt field in a JSON model": misspelt_field_in_json,
    "Compiling a model without outputs": no_outputs,
    "An input called `out`": input_named_out,
    "Differentiating an output that is not a scalar": non_scalar_of,
    "No C compiler": no_c_compiler,
    "`$CC` names no compiler": missing_cc,
    "A float32 array for a float64 input": call("forward", x=INPUTS["x"].astype(np.float32)),
    "A list of bools for a float input": call("forward", x=[[True, False, True]]),
    "A missing input": call("forward", W2=None),
    "`None` for an input": call("forward", None, *list(INPUTS.values())[1:]),
    "A misspelt keyword argument": call("forward", x=None, X=INPUTS["x"]),
    "Inputs that disagree on a symbolic size": call("forward", y=np.ones((2, 2))),
    "A param of the wrong shape": call("forward", W1=INPUTS["W1"].T.copy()),
    "A transposed or sliced view": call("forward", x=np.ones((3, 2)).T[:1]),
    "An `out=` key the function does not return": call(
        "forward", out={"loss": np.zeros(()), "los": np.zeros(())}
    ),
    "An input also given as `out=`": call("forward", out={"loss": INPUTS["b2"].reshape(())}),
    "Read-only params in `train_step`": train(W1=read_only(INPUTS["W1"])),
    "A param also passed as its optimiser state": train(velocity_W1="W1"),
}


def readme_rows() -> list[tuple[str, str, str]]:
    """(mistake, exception type, message) of each row of the README's Troubleshooting table."""
    text = README.read_text()
    section = text.split("\n## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        m = re.fullmatch(r"\| (.+?) \| `(\w+)` \| `(.*)` \|", line.strip())
        if m:
            rows.append((m[1], m[2], m[3]))
    return rows


ROWS = readme_rows()


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    return gc.compile(
        seed_net(), out_dir=tmp_path_factory.mktemp("troubleshooting"), optimizer=SGD,
        functions=["forward", "train_step"],
    )  # fmt: skip


def test_the_table_has_a_row_for_each_mistake():
    assert len(ROWS) >= 10
    assert [mistake for mistake, _, _ in ROWS] == list(TRIGGERS)


@pytest.mark.parametrize("mistake, error, message", ROWS, ids=[r[0] for r in ROWS])
def test_the_readme_prints_the_message_the_code_gives(
    mistake, error, message, request, monkeypatch, tmp_path
):
    with pytest.raises(Exception) as info:
        TRIGGERS[mistake](Env(request, monkeypatch, tmp_path))
    assert (type(info.value).__name__, str(info.value)) == (error, message)
