"""A model's functions are objects of the runtime's (templates/runtime/function.h) called by the
vectorcall protocol: every way of passing the arguments binds them as a Python function
`f(*inputs, out=None, **inputs)` would, and a wrong call is refused naming what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from tests.models import seed_net

pytestmark = pytest.mark.compiler


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    return gc.compile(seed_net(), out_dir=tmp_path_factory.mktemp("function"))


def _inputs() -> dict:
    rng = np.random.default_rng(7)
    shapes = {"x": (4, 3), "y": (4, 2), "W1": (2, 3), "b1": (2,), "W2": (2, 2), "b2": (1,)}
    return {k: rng.normal(size=s) for k, s in shapes.items()}


def _same(a, b) -> bool:
    return all(
        x.keys() == y.keys() and all(x[k].tobytes() == y[k].tobytes() for k in x)
        for x, y in zip(a, b, strict=True)
    )


def test_every_way_of_passing_the_arguments_gives_the_same_result(seed):
    inputs = _inputs()
    names = list(seed.INPUTS)
    f = seed.value_and_grad
    want = f(**inputs)
    values = [inputs[k] for k in names]
    assert _same(f(*values), want)
    assert _same(f(*values[:2], **{k: inputs[k] for k in names[2:]}), want)
    assert _same(f(**dict(reversed(list(inputs.items())))), want)
    # keywords that are not interned strings (made at run time) are matched by value
    assert _same(f(**{"".join(k): v for k, v in inputs.items()}), want)
    out = ({"loss": np.empty(())}, {k: np.empty_like(inputs[k]) for k in seed.WRT})
    got = f(**inputs, **{"o" + "ut": out})
    assert got[1]["W1"] is out[1]["W1"] and _same(got, want)
    assert _same(seed.module.value_and_grad(*values, out=None), want)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda f, v: f(*v, v[0]), r"takes 6 arguments \('x', 'y', 'W1', .*\), got 7"),
        (lambda f, v: f(*v[:5], x=v[0]), r"got argument 'x' both by position and by name"),
        (lambda f, v: f(*v, z=v[0]), r"got an unknown argument 'z'; it takes \('x', "),
        (lambda f, v: f(*v[:5]), r"is missing argument b2"),
    ],
    ids=["too many", "twice", "unknown", "missing"],
)
def test_a_wrong_call_is_refused_naming_what_is_wrong(seed, call, message):
    values = list(_inputs().values())
    with pytest.raises(TypeError, match=message):
        call(seed.value_and_grad, values)


def test_the_function_object_says_what_it_is(seed):
    f = seed.module.value_and_grad
    assert f.__name__ == "value_and_grad" and repr(f) == "<graphc function value_and_grad>"
    assert f.__doc__.startswith("value_and_grad(*inputs, out=None, **inputs) -> (outputs, grads)")
