"""Property-based checks on random models (tests/fuzz/strategies.py).

For each model drawn: the interpreter's gradients agree with central finite differences of
its own forward pass, in float64, and `simplify` changes no value; the compiled module agrees
with the interpreter in float64 (forward outputs and gradients, rtol 1e-9), also with
checkpointing forced by a tiny memory budget (where the gradients must moreover be bit for bit
those of the unbudgeted module, as the README promises); and a float32 build agrees with the
float64 interpreter to float32 accuracy.

A native build costs seconds, so the compiled checks draw `PER_BATCH` models at a time and
build them as one graph (batch_graph: independent subgraphs, each with its own outputs, and
"loss" the sum of their losses); each module runs at N = 3, 1 and 0, and float64 ones also
at N = 300 unless that makes the batch too big. On a mismatch the message names the model the
mismatched output or gradient belongs to and prints its code; calls into a module run in a
child process, so that a crash is reported like a mismatch.

The default budget is small and derandomized, so a run is fast and always checks the same
models. `GRAPHC_FUZZ_EXAMPLES=n` checks n models in each test instead (the compiled tests in
batches: n / PER_BATCH builds), `GRAPHC_FUZZ_SEED=s` draws other models than the default ones,
and `GRAPHC_FUZZ_SHRINK=1` lets Hypothesis shrink a failing batch of the compiled tests (off
by default: every step of it is a build; the message already isolates the failing model). The
`slow` tests run bigger budgets.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, note, seed, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.compiler import run_stages
from graphc.ir.shapes import bind_shape
from graphc.ops.registry import REGISTRY
from tests.fuzz.checks import (
    Crashed,
    aliases_set_too_early,
    compare_all,
    finite_difference_grads,
    isolated,
    mismatches,
    model_scales,
    near_kinks,
)
from tests.fuzz.strategies import (
    OPS_DRAWN,
    Call,
    ModelSpec,
    batch_feed,
    batch_graph,
    batches,
    models,
)

PER_BATCH = 3  # models per native build
SIZES = ({"N": 3}, {"N": 1}, {"N": 0})  # the sizes every compiled module runs at
# ... and float64 modules at this one too, when the batch is not too big there: large enough
# for the loops of [N, N] values to be shared among threads (or run two at a time)
LARGE = {"N": 300}
LARGE_ELEMENTS = 3_000_000  # elements of all the graph's values together, at most
FD_MARGIN = 1e-3  # finite differences: skip models this close (relative) to a kink
F32_MARGIN = 1e-4  # float32: skip models this close to a kink
F64_RTOL = 1e-9
F32_RTOL = 2e-3

_EXAMPLES = os.environ.get("GRAPHC_FUZZ_EXAMPLES")
_SEED = os.environ.get("GRAPHC_FUZZ_SEED")
_SHRINK = os.environ.get("GRAPHC_FUZZ_SHRINK") == "1"


def n_models(default: int) -> int:
    """The number of models a test checks: GRAPHC_FUZZ_EXAMPLES, else `default`."""
    return int(_EXAMPLES) if _EXAMPLES else default


def fuzz(examples: int, shrink: bool = True) -> Callable[[Callable[..., Any]], Any]:
    """Hypothesis settings for `examples` examples: no deadline, derandomized unless
    GRAPHC_FUZZ_SEED is set, no example database."""
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])

    def wrap(test: Callable[..., Any]) -> Any:
        test = settings(
            max_examples=examples,
            deadline=None,
            derandomize=_SEED is None,
            database=None,
            phases=phases,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        )(test)
        return seed(int(_SEED))(test) if _SEED is not None else test

    return wrap


# ---- the strategy draws every op --------------------------------------------------------------
def test_strategy_draws_every_differentiable_op() -> None:
    """Every registered op with a gradient is drawn by the strategy: listed in OPS_DRAWN, and
    found in the graphs of a fixed sample of models (seeded: a random sample of 400 missed
    an op now and then)."""
    differentiable = {name for name, op in REGISTRY.items() if op.differentiable}
    assert differentiable - OPS_DRAWN == set(), "ops the strategy never draws"
    assert OPS_DRAWN <= set(REGISTRY)
    seen: set[str] = set()

    @seed(2026)
    @fuzz(400, shrink=False)
    @given(spec=models(min_steps=8, max_steps=20))
    def collect(spec: ModelSpec) -> None:
        seen.update(a["op"] for _, a in spec.graph().nx.nodes(data=True))

    collect()
    assert OPS_DRAWN - seen == set(), "ops no model of the sample has"


# ---- (a) the interpreter against finite differences ---------------------------------------------
def check_interpreter(spec: ModelSpec) -> None:
    g = spec.graph()
    feed = spec.feed({"N": 3})
    params = spec.params()
    near = near_kinks(g, feed, FD_MARGIN)
    note(f"near kinks: {near}")
    assume(not near)
    outs, grads = gc.value_and_grad(g, feed, of="loss")
    assert sorted(grads) == sorted(params)
    assert np.isfinite(outs["loss"])
    # simplify changes no value: the forward pass, and the gradient graph before and after
    plain = gc.evaluate(g, feed)
    scales = model_scales(plain, grads)
    problems = compare_all("forward output (simplified)", outs, plain, 1e-12, scales)
    raw = gc.evaluate(gc.grad(g, of="loss"), feed)
    raw = {name: raw[gc.grad_name("loss", name)] for name in params}
    problems += compare_all("gradient (unsimplified)", raw, grads, 1e-9, scales)
    # the gradients against central differences of the forward pass
    numerical = finite_difference_grads(g, feed, params)
    scale = max([1.0, abs(float(outs["loss"]))] + [float(np.abs(v).max()) for v in
                                                     numerical.values() if v.size])  # fmt: skip
    for name in params:
        what = f"gradient {name!r} vs finite differences"
        problems += mismatches(what, grads[name], numerical[name], 1e-5, 1e-6 * scale)
    assert not problems, "\n".join(problems) + f"\n\nmodel:\n{spec.code()}"


@fuzz(n_models(40))
@given(spec=models())
def test_interpreter_gradients_match_finite_differences(spec: ModelSpec) -> None:
    check_interpreter(spec)


@pytest.mark.slow
@fuzz(n_models(400))
@given(spec=models(max_steps=24))
def test_interpreter_gradients_match_finite_differences_long(spec: ModelSpec) -> None:
    check_interpreter(spec)


# ---- compiled modules --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz_builds")


def n_batches(default: int) -> int:
    return math.ceil(int(_EXAMPLES) / PER_BATCH) if _EXAMPLES else default


def owner(name: str) -> int | None:
    """The model an output or gradient name belongs to ("m3_out0" -> 3)."""
    m = re.match(r"(?:output|gradient|forward output) '?m(\d+)_", name)
    return int(m.group(1)) if m else None


def report(specs: Sequence[ModelSpec], problems: list[str]) -> str:
    """The problems, then the code of each model they name."""
    owners = sorted({i for p in problems if (i := owner(p)) is not None})
    text = f"{len(problems)} mismatches:\n" + "\n".join(problems)
    for i in owners:
        text += f"\n\nmodel m{i} (inputs prefixed m{i}_):\n{specs[i].code()}"
    return text


def reference(
    g: gc.Graph, feed: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return gc.value_and_grad(g, feed, of="loss")


def run_module(
    m: Any, feeds: Sequence[Mapping[str, np.ndarray]], forward: bool
) -> list[tuple[dict, dict, dict | None]]:
    """(outputs, gradients, forward outputs) of module `m` for each feed."""
    return [(*m.value_and_grad(**f), m.forward(**f) if forward else None) for f in feeds]


def run_isolated(specs: Sequence[ModelSpec], fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in a child process (checks.isolated); a crash names every model."""
    try:
        return isolated(fn, *args)
    except Crashed as e:
        codes = "\n\n".join(f"model m{i}:\n{spec.code()}" for i, spec in enumerate(specs))
        raise AssertionError(f"{e}\n\n{codes}") from None


def sizes_for(g: gc.Graph) -> tuple[dict[str, int], ...]:
    """SIZES, and LARGE if the values of `g` are not too many elements there."""
    total = sum(math.prod(bind_shape(a["shape"], LARGE)) for _, a in g.nx.nodes(data=True))
    return (*SIZES, LARGE) if total <= LARGE_ELEMENTS else SIZES


def compare_results(
    g: gc.Graph,
    sizes_run: Sequence[Mapping[str, int]],
    feeds: Sequence[Mapping[str, np.ndarray]],
    results: list,
    rtol: float,
) -> list[str]:
    """Results of run_module against the interpreter, one problem per line."""
    problems = []
    for sizes, feed, (outs, grads, fwd) in zip(sizes_run, feeds, results, strict=True):
        want_outs, want_grads = reference(g, feed)
        scales = model_scales(want_outs, want_grads)
        found = compare_all("output", outs, want_outs, rtol, scales)
        found += compare_all("gradient", grads, want_grads, rtol, scales)
        if fwd is not None:
            found += compare_all("forward output", fwd, want_outs, rtol, scales)
        problems += [f"{p} at N={sizes['N']}" for p in found]
    return problems


def worth_a_build(specs: Sequence[ModelSpec]) -> bool:
    """Whether a batch has enough steps to be worth seconds of C compiler (Hypothesis starts
    with the simplest batch it can draw)."""
    return sum(isinstance(it, Call) for spec in specs for it in spec.items) >= 20


# (b) float64 build against the interpreter; the long test also varies the build options
OPTIONS = ({}, {"fusion": False}, {"memory": "naive"}, {"memory": "size"}, {"opt_level": 0})


def check_compiled(specs: list[ModelSpec], out_dir: Path, options: Mapping | None = None) -> None:
    assume(worth_a_build(specs))
    g = batch_graph(specs)
    m = gc.compile(g, out_dir=out_dir, **(options or {}))
    sizes_run = sizes_for(g)
    feeds = [batch_feed(specs, sizes) for sizes in sizes_run]
    results = run_isolated(specs, run_module, m, feeds, True)
    problems = compare_results(g, sizes_run, feeds, results, F64_RTOL)
    problems += [
        f"pointer set before its root's: {line}" for line in aliases_set_too_early(m.source)
    ]
    assert not problems, report(specs, problems)


@pytest.mark.compiler
@fuzz(n_batches(2), shrink=_SHRINK)
@given(specs=batches(PER_BATCH))
def test_compiled_float64_matches_interpreter(specs: list[ModelSpec], out_dir: Path) -> None:
    check_compiled(specs, out_dir)


@pytest.mark.slow
@pytest.mark.compiler
@fuzz(n_batches(20), shrink=_SHRINK)
@given(specs=batches(PER_BATCH, max_steps=16), options=st.sampled_from(OPTIONS))
def test_compiled_float64_matches_interpreter_long(
    specs: list[ModelSpec], options: dict, out_dir: Path
) -> None:
    check_compiled(specs, out_dir, options)


# (c) checkpointing: a budget of one byte, so every trade that lowers the arena is taken
def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """The same dtype, shape and bits, except that NaNs may differ in sign and payload (which
    NaN an op propagates depends on the order it reads its operands in)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    both_nan = np.isnan(a) & np.isnan(b)
    return a[~both_nan].tobytes() == b[~both_nan].tobytes()


def check_checkpointed(specs: list[ModelSpec], out_dir: Path) -> None:
    g = batch_graph(specs)
    only = ("value_and_grad",)
    planned = run_stages(g, memory_budget=1, functions=only).checkpointing
    assume(planned is not None and planned.recomputed_steps > 0)  # else nothing to check
    with ThreadPoolExecutor(max_workers=2) as pool:  # the C compilers run side by side
        building = pool.submit(gc.compile, g, out_dir=out_dir, memory_budget=1, functions=only)
        plain = pool.submit(gc.compile, g, out_dir=out_dir, functions=only)
        m, base = building.result(), plain.result()
    c = m.stages.checkpointing
    note(str(c))
    assert c is not None and c.recomputed_steps == planned.recomputed_steps > 0
    sizes_run = sizes_for(g)
    feeds = [batch_feed(specs, sizes) for sizes in sizes_run]
    budgeted = run_isolated(specs, run_module, m, feeds, False)
    unbudgeted = run_isolated(specs, run_module, base, feeds, False)
    problems = compare_results(g, sizes_run, feeds, budgeted, F64_RTOL)
    problems += [
        f"pointer set before its root's: {line}" for line in aliases_set_too_early(m.source)
    ]
    for sizes, (outs, grads, _), (outs0, grads0, _) in zip(sizes_run, budgeted, unbudgeted,
                                                           strict=True):  # fmt: skip
        # recomputing repeats the same arithmetic: the same bits (a NaN's sign aside)
        for kind, got, want in (("output", outs, outs0), ("gradient", grads, grads0)):
            for name in want:
                if not same_bits(got[name], want[name]):
                    problems.append(f"{kind} {name!r} differs from the unbudgeted module's "
                                    f"at N={sizes['N']}")  # fmt: skip
    if c.arena_bytes > c.unbudgeted_arena_bytes:
        problems.append(f"checkpointing made the arena larger: {c}")
    assert not problems, report(specs, problems) + f"\n{c}"


@pytest.mark.compiler
@fuzz(n_batches(1), shrink=_SHRINK)
@given(specs=batches(PER_BATCH))
def test_checkpointed_matches_interpreter(specs: list[ModelSpec], out_dir: Path) -> None:
    check_checkpointed(specs, out_dir)


@pytest.mark.slow
@pytest.mark.compiler
@fuzz(n_batches(20), shrink=_SHRINK)
@given(specs=batches(PER_BATCH, max_steps=16))
def test_checkpointed_matches_interpreter_long(specs: list[ModelSpec], out_dir: Path) -> None:
    check_checkpointed(specs, out_dir)


# (d) float32 build against the float64 interpreter
def check_float32(specs: list[ModelSpec], out_dir: Path) -> None:
    assume(worth_a_build(specs))
    g = batch_graph(specs)
    m = gc.compile(g, out_dir=out_dir, dtype="float32")
    problems = [
        f"pointer set before its root's: {line}" for line in aliases_set_too_early(m.source)
    ]
    for sizes in SIZES:
        feed32 = {k: v.astype(np.float32) if v.dtype == np.float64 else v
                  for k, v in batch_feed(specs, sizes).items()}  # fmt: skip
        feed64 = {k: v.astype(np.float64) if v.dtype == np.float32 else v
                  for k, v in feed32.items()}  # fmt: skip
        skip = set()  # models near a kink at these inputs: float32 may branch the other way
        for i, spec in enumerate(specs):
            sub = {k[len(f"m{i}_") :]: v for k, v in feed64.items() if k.startswith(f"m{i}_")}
            if near_kinks(spec.graph(), sub, F32_MARGIN):
                skip |= {n for n in m.OUTPUTS if n.startswith(f"m{i}_")}
                skip |= {f"m{i}_{p}" for p in spec.params()}
        if skip:
            skip.add("loss")
            note(f"N={sizes['N']}: skipped {sorted(skip)}")
        want_outs, want_grads = reference(g, feed64)
        ((outs, grads, fwd),) = run_isolated(specs, run_module, m, [feed32], True)
        scales = model_scales(want_outs, want_grads)
        found = compare_all("output", outs, want_outs, F32_RTOL, scales, skip)
        found += compare_all("forward output", fwd, want_outs, F32_RTOL, scales, skip)
        found += compare_all("gradient", grads, want_grads, F32_RTOL, scales, skip)
        for arrays in (outs, fwd, grads):
            found += [f"{k}: dtype {v.dtype}" for k, v in arrays.items() if v.dtype != np.float32]
        problems += [f"{p} at N={sizes['N']}" for p in found]
    assert not problems, report(specs, problems)


@pytest.mark.compiler
@fuzz(n_batches(1), shrink=_SHRINK)
@given(specs=batches(PER_BATCH))
def test_float32_matches_float64_interpreter(specs: list[ModelSpec], out_dir: Path) -> None:
    check_float32(specs, out_dir)


@pytest.mark.slow
@pytest.mark.compiler
@fuzz(n_batches(20), shrink=_SHRINK)
@given(specs=batches(PER_BATCH, max_steps=16))
def test_float32_matches_float64_interpreter_long(specs: list[ModelSpec], out_dir: Path) -> None:
    check_float32(specs, out_dir)
