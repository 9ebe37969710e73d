"""The compiled module: reference values, its API, argument checking, threads, source, CLI."""

import functools
import operator
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import graphc as gc
from graphc.cli import main
from graphc.codegen.pyrender import PyModule
from graphc.compiler import run_stages
from tests.models import ROOT, mlp, seed_inputs, seed_net, seed_reference

pytestmark = pytest.mark.compiler
REF = seed_reference()
INPUTS = seed_inputs()
GOLDEN = Path(__file__).parent / "golden" / "tiny.pyx"


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="module")
def seed(out_dir):
    return gc.compile(seed_net(), out_dir=out_dir)


def test_seed_network_matches_reference(seed):
    outs, grads = seed.value_and_grad(**INPUTS)
    np.testing.assert_allclose(outs["loss"], REF["forward"]["loss"], rtol=1e-12, atol=1e-15)
    assert list(grads) == ["W1", "b1", "W2", "b2"]
    for name, want in REF["gradients"].items():
        np.testing.assert_allclose(grads[name], want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(seed.forward(**INPUTS)["loss"], REF["forward"]["loss"], rtol=1e-12)


def test_positional_arguments_and_metadata(seed):
    args = [INPUTS[k] for k in seed.INPUTS]
    outs, grads = seed.value_and_grad(*args)
    np.testing.assert_array_equal(outs["loss"], seed.value_and_grad(**INPUTS)[0]["loss"])
    outs2, _ = seed.value_and_grad(*args[:2], **{k: INPUTS[k] for k in seed.INPUTS[2:]})
    np.testing.assert_array_equal(outs2["loss"], outs["loss"])
    assert seed.INPUTS == ("x", "y", "W1", "b1", "W2", "b2") and seed.OUTPUTS == ("loss",)
    assert seed.WRT == ("W1", "b1", "W2", "b2") and seed.DTYPE == "float64"
    assert seed.SHAPES["x"] == ("N", 3) and seed.GRAPHC_VERSION == gc.__version__
    assert set(seed.PLAN) == {"forward", "value_and_grad"}


def test_one_build_serves_every_batch_size(seed):
    g = seed_net()
    rng = np.random.default_rng(0)
    for n in (1, 4, 17, 0):
        inputs = dict(INPUTS, x=rng.uniform(size=(n, 3)), y=rng.uniform(size=(n, 2)))
        outs, grads = seed.value_and_grad(**inputs)
        want_outs, want_grads = gc.value_and_grad(g, inputs, of="loss")
        np.testing.assert_allclose(outs["loss"], want_outs["loss"], rtol=1e-12)
        for k in grads:
            np.testing.assert_allclose(grads[k], want_grads[k], rtol=1e-12, atol=1e-300)


def test_float32_build(out_dir):
    m = gc.compile(seed_net(), out_dir=out_dir, dtype="float32")
    inputs32 = {k: v.astype(np.float32) for k, v in INPUTS.items()}
    outs, grads = m.value_and_grad(**inputs32)
    assert outs["loss"].dtype == np.float32 and grads["W1"].dtype == np.float32
    np.testing.assert_allclose(outs["loss"], REF["forward"]["loss"], rtol=1e-5)
    for name, want in REF["gradients"].items():
        np.testing.assert_allclose(grads[name], want, rtol=1e-5, atol=1e-8)
    with pytest.raises(TypeError, match="argument 'x': expected a float32 array, got float64"):
        m.forward(**INPUTS)


def test_a_model_without_inputs(out_dir):
    """Constants alone: the module takes no arguments (and refuses any), and fills out= too."""
    g = gc.Graph("no_inputs")
    g.output("y", gc.sum(gc.tanh(g.const(np.array([1.0, -2.0, 0.5])))))
    m = gc.compile(g, out_dir=out_dir)
    want = np.tanh([1.0, -2.0, 0.5]).sum()
    np.testing.assert_allclose(m.forward()["y"], want, rtol=1e-15)
    out = {"y": np.zeros(())}
    assert m.forward(out=out)["y"] is out["y"] and out["y"] == m.forward()["y"]
    with pytest.raises(TypeError, match=r"forward\(\) takes 0 arguments"):
        m.forward(np.zeros(3))


def test_mlp_with_softmax_cross_entropy(out_dir):
    g, inputs = mlp(np.random.default_rng(2), hidden=7)
    m = gc.compile(g, out_dir=out_dir)
    outs, grads = m.value_and_grad(**inputs)
    want_outs, want_grads = gc.value_and_grad(g, inputs, of="loss")
    np.testing.assert_allclose(outs["loss"], want_outs["loss"], rtol=1e-12)
    for k in want_grads:
        np.testing.assert_allclose(grads[k], want_grads[k], rtol=1e-11, atol=1e-15)


BAD_CALLS = [
    (
        {"x": np.ones((1, 3), dtype=np.float32)},
        TypeError,
        r"argument 'x': expected a float64 array, got float32",
    ),
    (
        {"x": np.ones((1, 3), dtype=np.int64)},
        TypeError,
        r"argument 'x': expected a float64 array, got int64",
    ),
    (
        {"x": np.ones((1, 3), dtype=complex)},
        TypeError,
        r"argument 'x': expected a float64 array, got complex128",
    ),
    (
        {"x": np.array([[object()] * 3])},
        TypeError,
        r"argument 'x': expected a float64 array, got object",
    ),
    (
        {"x": np.ones(3)},
        ValueError,
        r"argument 'x': expected 2 dimensions \(N, 3\), got shape \(3,\)",
    ),
    ({"x": np.ones((1, 4))}, ValueError, r"argument 'x': expected shape \(N, 3\), got \(1, 4\)"),
    ({"W1": np.ones((3, 2))}, ValueError, r"argument 'W1': expected shape \(2, 3\), got \(3, 2\)"),
    ({"y": np.ones((2, 2))}, ValueError, r"argument 'y': axis 0 is N=2, but 'x' has N=1"),
    ({"x": np.asfortranarray(np.ones((2, 3)))}, ValueError, r"argument 'x' must be C-contiguous"),
    ({"x": np.ones((4, 3))[::2]}, ValueError, r"argument 'x' must be C-contiguous"),
    (
        {"x": np.ones((1, 3), dtype=">f8")},
        ValueError,
        r"argument 'x' must be aligned and in native byte order",
    ),
]


@pytest.mark.parametrize("fn", ["forward", "value_and_grad"])
@pytest.mark.parametrize("bad, error, pattern", BAD_CALLS)
def test_bad_arguments_raise_clear_errors(seed, fn, bad, error, pattern):
    with pytest.raises(error, match=f"{fn}\\(\\): {pattern}"):
        getattr(seed, fn)(**dict(INPUTS, **bad))


def test_bad_argument_names_and_counts(seed):
    with pytest.raises(TypeError, match=r"missing argument W2"):
        seed.forward(**{k: v for k, v in INPUTS.items() if k != "W2"})
    with pytest.raises(TypeError, match=r"unknown argument 'z'"):
        seed.forward(z=1, **INPUTS)
    with pytest.raises(TypeError, match=r"takes 6 arguments"):
        seed.forward(*INPUTS.values(), 1)
    with pytest.raises(TypeError, match=r"argument 'x' both by position and by name"):
        seed.forward(INPUTS["x"], **INPUTS)


def test_read_only_and_aliased_inputs_are_fine(seed):
    ro = {k: v.copy() for k, v in INPUTS.items()}
    for v in ro.values():
        v.flags.writeable = False
    a, _ = seed.value_and_grad(**ro)
    np.testing.assert_allclose(a["loss"], REF["forward"]["loss"], rtol=1e-12)
    same = np.array([[0.5, 0.5]])
    b = seed.forward(**dict(INPUTS, b1=same[0], y=same))
    c = gc.evaluate(seed_net(), dict(INPUTS, b1=same[0].copy(), y=same.copy()))
    np.testing.assert_allclose(b["loss"], c["loss"], rtol=1e-12)


def test_out_buffers_are_filled_in_place(seed):
    first = seed.value_and_grad(**INPUTS)
    want = [{k: v.copy() for k, v in part.items()} for part in first]
    for part in first:
        for v in part.values():
            v.fill(np.nan)
    again = seed.value_and_grad(**INPUTS, out=first)
    for got_part, old_part, want_part in zip(again, first, want, strict=True):
        for k in want_part:
            assert got_part[k] is old_part[k]
            assert got_part[k].tobytes() == want_part[k].tobytes()
    outs = seed.forward(**INPUTS)
    assert seed.forward(*INPUTS.values(), out=outs)["loss"] is outs["loss"]


@pytest.mark.parametrize("change, pattern", [
    (lambda o, g: (o, {k: v for k, v in g.items() if k != "W1"}), r"with an array for 'W1'"),
    (lambda o, g: (o, dict(g, W1=np.zeros((3, 2)))), r"must be a float64 array of shape \(2, 3\)"),
    (lambda o, g: (o, dict(g, W1=np.zeros((2, 3), np.float32))), r"must be a float64 array"),
    (lambda o, g: (o, dict(g, W1=np.zeros((3, 2)).T)), r"out\['W1'\] must be C-contiguous"),
    (lambda o, g: (o, dict(g, W1=_read_only((2, 3)))), r"must be C-contiguous, aligned, writeable"),
    (lambda o, g: (o, dict(g, W1=INPUTS["W1"])), r"out\['W1'\] shares memory with an input"),
    (lambda o, g: (o, dict(g, b2=g["b1"][:1])), r"out\['b\d'\] and out\['b\d'\] share memory"),
    (lambda o, g: (o, dict(g, W1=[[0.0] * 3] * 2)), r"out\['W1'\] must be a NumPy array"),
    (lambda o, g: o, r"out= must be a pair of dicts"),
])  # fmt: skip
def test_bad_out_buffers_raise_clear_errors(seed, change, pattern):
    outs, grads = seed.value_and_grad(**INPUTS)
    with pytest.raises((TypeError, ValueError), match=pattern):
        seed.value_and_grad(**INPUTS, out=change(outs, grads))


def _read_only(shape):
    a = np.zeros(shape)
    a.flags.writeable = False
    return a


def test_concurrent_calls_from_threads(seed):
    rng = np.random.default_rng(5)
    batches = [
        dict(INPUTS, x=rng.uniform(size=(n, 3)), y=rng.uniform(size=(n, 2)))
        for n in (50, 200, 1000, 3)
    ]
    expected = [seed.value_and_grad(**b) for b in batches]
    errors = []

    def work(k):
        for _ in range(200):
            outs, grads = seed.value_and_grad(**batches[k])
            if outs["loss"] != expected[k][0]["loss"] or any(
                not np.array_equal(grads[n], expected[k][1][n]) for n in grads
            ):
                errors.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_load_and_plain_import(seed, out_dir):
    gc.compile(seed_net(), out_dir=out_dir)  # a cache hit publishes this build as the latest
    m = gc.load(out_dir / "seed_net")
    np.testing.assert_allclose(m.forward(**INPUTS)["loss"], REF["forward"]["loss"], rtol=1e-12)
    assert m.source.startswith("# cython:") and "value_and_grad = _rt.function(" in m.source
    code = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import seed_net; "
        "print(seed_net.MODEL, seed_net.forward(np.full((2, 3), 0.5), np.ones((2, 2)), "
        "np.ones((2, 3)), np.ones(2), np.ones((2, 2)), np.ones(1))['loss'].item())"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(out_dir / "seed_net")],
        capture_output=True,
        text=True,
        check=True,
    )
    ones = {
        "x": np.full((2, 3), 0.5),
        "y": np.ones((2, 2)),
        "W1": np.ones((2, 3)),
        "b1": np.ones(2),
        "W2": np.ones((2, 2)),
        "b2": np.ones(1),
    }
    name, loss = r.stdout.split()
    assert name == "seed_net"
    np.testing.assert_allclose(float(loss), gc.evaluate(seed_net(), ones)["loss"], rtol=1e-14)


def test_second_compile_is_a_cache_hit(seed, out_dir):
    again = gc.compile(seed_net(), out_dir=out_dir)
    assert again.built.cache_hit and again.built.key == seed.built.key
    assert again.built.so_path == seed.built.so_path  # the same binary, not a rebuild


# ---- the generated source ----------------------------------------------------------------
def tiny() -> gc.Graph:
    """loss = sum(tanh(x) @ w) with x [N,2], w [2]: a model with fixed source lines."""
    G = nx.MultiDiGraph(name="tiny", outputs={"loss": 4})
    G.add_node(
        0,
        op="input",
        role="data",
        name="x",
        shape=("N", 2),
        dtype="float64",
        params={},
        loc="tiny.py:3",
    )
    G.add_node(
        1,
        op="input",
        role="param",
        name="w",
        shape=(2,),
        dtype="float64",
        params={},
        loc="tiny.py:4",
    )
    G.add_node(2, op="tanh", params={}, loc="tiny.py:5")
    G.add_node(3, op="matmul", params={}, loc="tiny.py:5")
    G.add_node(4, op="sum", params={"axis": (0,)}, loc="tiny.py:6")
    G.add_edges_from(
        [(0, 2, {"port": 0}), (2, 3, {"port": 0}), (1, 3, {"port": 1}), (3, 4, {"port": 0})]
    )
    return gc.Graph.from_networkx(G)


def test_golden_source():
    # the runtime's key names this machine's compiler and CPU: the rest is the same anywhere
    source = run_stages(tiny(), source_file="tiny.py").source
    source = re.sub(r"_runtime\('[0-9a-f]{64}'", "_runtime('<this machine>'", source)
    if os.environ.get("GRAPHC_UPDATE_GOLDEN"):
        GOLDEN.write_text(source)
    assert source == GOLDEN.read_text(), (
        "the generated source changed; if that is intended, rerun with GRAPHC_UPDATE_GOLDEN=1 "
        "and review the diff of tests/golden/tiny.pyx"
    )


def test_source_is_deterministic_across_processes():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from tests.models import mlp; "
        "import numpy as np; from graphc.compiler import run_stages; "
        "print(run_stages(mlp(np.random.default_rng(0))[0]).source)"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, str(ROOT)],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, PYTHONHASHSEED=str(s)),
        ).stdout
        for s in (1, 2)
    ]
    assert runs[0] == runs[1] and "value_and_grad = _rt.function(" in runs[0]


def test_source_is_readable(seed):
    src = seed.source
    lines = src.splitlines()
    assert lines[2].startswith("# seed_net: generated by graphc") and "do not edit" in lines[2]
    assert len(lines) <= 250
    # the kernels: each distinct loop once, with what it computes
    assert '"""2 ops (add, sigmoid) over [N, 2], its outer loop shared among threads"""' in src
    assert "t2 = (1.0 / (1.0 + exp((-t1))))" in src
    forward = src.split("# ---- forward ")[1].split("# ---- value_and_grad ")[0]
    backward = src.split("# ---- value_and_grad ")[1]
    # the programs: the model's statements in order, each with its line; the adjoint's marked
    assert "/* v7 = matmul[transpose_b=True](v0, v2)   [models.py:" in forward
    assert "adj:" not in forward
    assert "/* adj: g2 = matmul[transpose_a=True](g8, v0)   [models.py:" in backward
    statements = re.findall(r"(?:/\*|   ) (adj: )?([vg]\d+) = ", backward)
    first_adj = next(k for k, (adj, _) in enumerate(statements) if adj)
    assert all(adj for adj, _ in statements[first_adj:])  # forward, then the adjoint
    assert "rt.link(gc_kernels, " in src and "'gemm_d'" in src  # products are BLAS's


# ---- the command line --------------------------------------------------------------------
def test_cli_compile_check(tmp_path, capsys):
    seed_file = str(ROOT / "examples" / "seed_network.py")
    assert main(["compile", seed_file, "--check", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "seed_net: 9 forward ops, " in out and "gradient ops after simplify" in out
    assert "outputs and gradients agree with the interpreter" in out
    assert "gradients agree with central finite differences" in out
    assert out.count(": ok (worst at") == 2
    assert (tmp_path / "seed_net" / "seed_net.pyx").is_file()


def test_cli_dump_stages(tmp_path, capsys):
    seed_file = str(ROOT / "examples" / "seed_network.py")
    for stage in ("graph", "grad", "schedule", "plan", "pyx"):
        assert main(["compile", seed_file, "--out", str(tmp_path), "--dump", stage]) == 0
    out = capsys.readouterr().out
    assert "graph seed_net {" in out and "# backward" in out and "buf0" in out
    assert "forward = _rt.function(" in out


def test_cli_shape_error_exits_nonzero_naming_the_line(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text(
        "import graphc as gc\ngraph = gc.Graph('b')\nx = graph.input('x', shape=(2,))\n"
        "graph.output('loss', gc.sum(x @ graph.param('w', shape=(3,))))\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "graphc.cli", "compile", str(bad), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "broken.py:4" in r.stderr and "Traceback" not in r.stderr


def test_opt_level_reaches_the_compiler_and_keeps_results(seed, tmp_path):
    m = gc.compile(seed_net(), out_dir=tmp_path, opt_level=0)
    assert "-O0" in m.built.meta["key_inputs"]["cc_command"]
    assert m.built.key != seed.built.key
    a, b = m.value_and_grad(**INPUTS), seed.value_and_grad(**INPUTS)
    for part in (0, 1):
        for k in a[part]:
            assert a[part][k].tobytes() == b[part][k].tobytes()


@pytest.mark.parametrize("m, k, n", [(2, 3, 4), (40, 30, 20)])  # the small loop and BLAS
def test_matmul_paths_agree_with_numpy(out_dir, m, k, n):
    g = gc.Graph(f"mm_{m}_{k}_{n}")
    a = g.param("a", shape=(m, k))
    b = g.param("b", shape=(n, k))
    g.output("loss", gc.sum(gc.tanh(a @ b.T) * 0.5))
    mod = gc.compile(g, out_dir=out_dir)
    rng = np.random.default_rng(m)
    inputs = {"a": rng.normal(size=(m, k)), "b": rng.normal(size=(n, k))}
    outs, grads = mod.value_and_grad(**inputs)
    _, want = gc.value_and_grad(g, inputs, of="loss", wrt=["a", "b"])
    for key in want:
        np.testing.assert_allclose(grads[key], want[key], rtol=1e-12, atol=1e-14)


def test_either_blas_gives_the_same_products(out_dir):
    """NumPy's bundled OpenBLAS when there is one, SciPy's with GRAPHC_BLAS=scipy: both agree
    with the interpreter (each run in a fresh process, as the choice is made on import)."""
    g = gc.Graph("mm_blas")
    a = g.param("a", shape=(40, 30))
    b = g.param("b", shape=(30, 20))
    g.output("loss", gc.sum(gc.tanh(a @ b) * 0.5))
    mod = gc.compile(g, out_dir=out_dir)
    rng = np.random.default_rng(1)
    inputs = {"a": rng.normal(size=(40, 30)), "b": rng.normal(size=(30, 20))}
    np.savez(out_dir / "mm_blas_inputs.npz", **inputs)
    script = (
        "import sys, numpy as np, graphc as gc\n"
        f"m = gc.load({str(mod.path)!r})\n"
        f"x = dict(np.load({str(out_dir / 'mm_blas_inputs.npz')!r}))\n"
        "_, grads = m.value_and_grad(**x)\n"
        "print(m.module.BLAS)\n"
        "np.save(sys.argv[1], np.concatenate([grads['a'].ravel(), grads['b'].ravel()]))\n"
    )
    _, want = gc.value_and_grad(g, inputs, of="loss", wrt=["a", "b"])
    want = np.concatenate([want["a"].ravel(), want["b"].ravel()])
    used = set()
    for choice in ("", "scipy"):
        saved = out_dir / f"mm_blas_{choice or 'default'}.npy"
        r = subprocess.run(
            [sys.executable, "-c", script, str(saved)],
            env={**os.environ, "GRAPHC_BLAS": choice},
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert r.returncode == 0, r.stderr
        used.add(r.stdout.strip())
        np.testing.assert_allclose(np.load(saved), want, rtol=1e-12, atol=1e-14)
    bundled = any(Path(np.__file__).parent.parent.glob("numpy.libs/libscipy_openblas64_*.so"))
    assert used == {"scipy.linalg.cython_blas"} | (
        {"NumPy's OpenBLAS (64-bit sizes)"} if bundled else set()
    )


def test_buffers_of_whole_pages_start_at_different_lines_of_a_page(out_dir):
    """Buffers of a block (and of the arena, laid out by the same rule) are a cache line apart
    beyond their sizes: sixteen gradients of 4 KiB each start at sixteen different lines of a
    page, not all at its start, where their lines would fall in the same sets of each cache."""
    g = gc.Graph("pages")
    ws = [g.param(f"w{k}", shape=(32, 32)) for k in range(16)]
    g.output("loss", gc.sum(functools.reduce(operator.add, [gc.tanh(w) for w in ws])))
    m = gc.compile(g, dtype="float32", out_dir=out_dir)
    rng = np.random.default_rng(0)
    ws = {f"w{k}": rng.normal(size=(32, 32)).astype(np.float32) for k in range(16)}
    _, grads = m.value_and_grad(**ws)
    starts = [a.ctypes.data for a in grads.values()]
    assert len({id(a.base) for a in grads.values()}) == 1  # one block
    assert len({s % 4096 for s in starts}) == 16, sorted(s % 4096 for s in starts)
    assert all(s % 64 == 0 for s in starts)


def test_outputs_share_one_block_that_a_later_call_reuses_only_when_free(seed):
    """A call's outputs live in one block; once they are all gone the next call may reuse it,
    but results still held are never written again."""
    kept = seed.value_and_grad(**INPUTS)
    arrays = [kept[0]["loss"], *kept[1].values()]
    assert len({id(a.base) for a in arrays}) == 1  # one block is the base of them all
    for a in arrays:
        assert a.flags.c_contiguous and a.flags.aligned and a.flags.writeable
    spans = sorted((a.ctypes.data, a.ctypes.data + a.nbytes) for a in arrays)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # disjoint
    want = [a.copy() for a in arrays]
    scaled = {k: v * 2 for k, v in INPUTS.items() if k != "x"}
    again = seed.value_and_grad(**{**INPUTS, **scaled})  # a new block: `kept` is alive
    assert again[1]["W1"].ctypes.data != kept[1]["W1"].ctypes.data
    for a, w in zip(arrays, want, strict=True):
        assert a.tobytes() == w.tobytes()
    where = again[1]["W1"].ctypes.data
    del again
    reused = seed.value_and_grad(**INPUTS)
    assert reused[1]["W1"].ctypes.data == where  # the freed block came back
    for a, w in zip([reused[0]["loss"], *reused[1].values()], want, strict=True):
        assert a.tobytes() == w.tobytes()


@pytest.mark.parametrize(
    "value, expect", [("2", "threads 2"), ("abc", "GRAPHC_NUM_THREADS must be a whole number")]
)
def test_graphc_num_threads_is_read_on_import(seed, value, expect):
    script = (
        "import graphc as gc\n"
        "try:\n"
        f"    m = gc.load({str(seed.path)!r})\n"
        "    print('threads', m.module.get_num_threads())\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "GRAPHC_NUM_THREADS": value},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0 and expect in r.stdout, r.stdout + r.stderr


def test_a_forward_only_build_needs_no_output_to_differentiate(monkeypatch):
    """functions=["forward"] of a model with params and no scalar output: no `of` to name,
    and no gradient derived (before: "name the scalar output to differentiate")."""
    import graphc.compiler as compiler

    def grad(*args, **kwargs):
        raise AssertionError("a forward-only build differentiated the model")

    monkeypatch.setattr(compiler, "grad", grad)
    g = gc.Graph("two")
    x, w = g.input("x", shape=("N", 3)), g.param("w", shape=(3,))
    g.output("a", x * w)
    g.output("b", gc.sum(x * w, axis=1))
    for functions in (["forward"], "forward", iter(["forward"])):
        assert list(run_stages(g, functions=functions).programs) == ["forward"]
    monkeypatch.undo()
    with pytest.raises(gc.InputError, match="name the scalar output to differentiate"):
        run_stages(g, functions=["forward", "value_and_grad"])


# ---- large graphs ------------------------------------------------------------------------
def _chain(steps: int) -> gc.Graph:
    g = gc.Graph("long_chain")
    h = g.input("x", shape=("N", 4))
    w = g.param("w", shape=(4,))
    for _ in range(steps):
        h = gc.tanh(h * w)
    g.output("loss", gc.sum(h))
    return g


def test_a_large_graph_announces_each_stage_as_it_starts(monkeypatch):
    import graphc.compiler as compiler

    heard: list[str] = []
    real_verify = compiler.verify

    def verify(g):  # the first message comes before the first pass
        heard.append("(verify runs)")
        return real_verify(g)

    monkeypatch.setattr(compiler, "verify", verify)
    g = _chain(compiler.PROGRESS_NODES // 2)
    run_stages(g, progress=heard.append)
    assert heard[0] == f"checking {g.nx.number_of_nodes():,} nodes" and heard[1] == "(verify runs)"
    stages = [m.split(" ")[0] for m in heard[2:]]
    assert stages == ["simplifying", "differentiating", "scheduling", "lowering", "writing"]
    heard.clear()
    run_stages(seed_net(), progress=heard.append)
    assert heard == ["(verify runs)"]  # a small graph builds in a moment, unannounced


def test_a_large_graph_is_scheduled_in_one_order_with_the_same_results(monkeypatch):
    import graphc.compiler as compiler

    orders: list[str] = []
    real_schedule = compiler.schedule

    def schedule(g, outputs, backward_from, order, *args):
        orders.append(order)
        return real_schedule(g, outputs, backward_from, order, *args)

    monkeypatch.setattr(compiler, "schedule", schedule)
    g = _chain(40)
    both = run_stages(g)
    assert orders == ["id", "memory", "id", "memory"]  # forward, value_and_grad: both orders
    orders.clear()
    monkeypatch.setattr(compiler, "ONE_ORDER_NODES", g.nx.number_of_nodes())
    one = run_stages(g)
    assert orders == ["memory", "memory"]
    assert one.programs["value_and_grad"][0].steps != both.programs["value_and_grad"][0].steps
    feed = {"x": np.random.default_rng(0).normal(size=(3, 4)), "w": np.linspace(-1, 1, 4)}
    want = PyModule(both.module).value_and_grad(**feed)
    got = PyModule(one.module).value_and_grad(**feed)
    for w, v in zip(want, got, strict=True):  # the same values, bit for bit, in another order
        assert w.keys() == v.keys() and all(np.array_equal(w[k], v[k]) for k in w)


def test_a_graph_past_the_size_limit_is_refused_before_any_work(monkeypatch):
    g = _chain(50)
    monkeypatch.setenv("GRAPHC_MAX_NODES", "100")
    with pytest.raises(gc.GraphError, match=r"'long_chain' has 103 nodes, more than graphc "
                       r"compiles \(100: .*GRAPHC_MAX_NODES"):  # fmt: skip
        run_stages(g)
    monkeypatch.setenv("GRAPHC_MAX_NODES", "lots")
    with pytest.raises(gc.GraphError, match="GRAPHC_MAX_NODES must be a number of nodes"):
        run_stages(g)
    monkeypatch.setenv("GRAPHC_MAX_NODES", "103")
    assert run_stages(g).module.functions
