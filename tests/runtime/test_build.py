"""The build cache: build then hit, keys, corruption, errors, concurrency, loading and import."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.errors import BuildError
from graphc.runtime import (
    BuildOptions,
    BuiltModule,
    build_module,
    cache_key,
    default_build_dir,
    load,
    load_module,
)
from graphc.runtime.build import identify_compiler_soon
from graphc.runtime.cache import EXT_SUFFIX
from tests.models import NEEDS_CC

pytestmark = [pytest.mark.compiler, NEEDS_CC]

TINY = "def twice(double x):\n    return 2 * x\n"
TINY2 = TINY + "\n\ndef thrice(double x):\n    return 3 * x\n"

DGEMM = textwrap.dedent(
    '''\
    cimport numpy as cnp
    from scipy.linalg.cython_blas cimport dgemm

    cnp.import_array()


    def matmul(cnp.ndarray a, cnp.ndarray b, cnp.ndarray out):
        """out = a @ b for C-contiguous float64 matrices, by BLAS dgemm on raw pointers."""
        cdef int m = a.shape[0], k = a.shape[1], n = b.shape[1]
        cdef double one = 1.0, zero = 0.0
        cdef char t = b'N'
        # Row-major C = A B is column-major C^T = B^T A^T.
        dgemm(&t, &t, &n, &m, &k, &one, <double*>cnp.PyArray_DATA(b), &n,
              <double*>cnp.PyArray_DATA(a), &k, &zero, <double*>cnp.PyArray_DATA(out), &n)
    '''
)


@pytest.fixture(scope="module")
def build_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="module")
def tiny(build_root: Path) -> BuiltModule:
    return build_module("tiny_mod", TINY, out_dir=build_root)


@pytest.fixture(scope="module")
def dgemm_mod(build_root: Path) -> BuiltModule:
    return build_module("dgemm_mod", DGEMM, out_dir=build_root)


def copy_model(build_root: Path, name: str, dst: Path) -> Path:
    """A private copy of one model's cache directory, to damage or extend."""
    shutil.copytree(build_root / name, dst / name)
    return dst


def test_build_then_hit(tiny: BuiltModule, build_root: Path) -> None:
    assert not tiny.cache_hit
    hit = build_module("tiny_mod", TINY, out_dir=build_root)
    assert hit.cache_hit and hit.key == tiny.key and hit.entry_dir == tiny.entry_dir
    assert hit.seconds < 0.05 and hit.seconds < tiny.seconds / 20
    assert load_module(hit).twice(3.5) == 7.0

    model_dir = build_root / "tiny_mod"
    assert tiny.entry_dir == model_dir / tiny.key[:16]
    so = f"tiny_mod{EXT_SUFFIX}"
    assert sorted(p.name for p in tiny.entry_dir.iterdir()) == sorted(
        ["meta.json", so, "tiny_mod.pyx"]
    )
    assert (model_dir / "tiny_mod.pyx").read_text() == TINY
    assert (model_dir / so).read_bytes() == tiny.so_path.read_bytes()
    meta = json.loads((model_dir / "meta.json").read_text())
    assert meta == json.loads((tiny.entry_dir / "meta.json").read_text()) == tiny.meta
    assert meta["key"] == tiny.key
    cc = meta["commands"]["cc"]
    # -Og for the Python-facing code, -O1 for the kernels (GC_KERNEL), the loop flags for both
    kernel = '-DGC_KERNEL=__attribute__((optimize("O1"'
    assert "-Og" in cc and any(a.startswith(kernel) for a in cc)
    assert "-fstrict-aliasing" in cc and "-fno-math-errno" in cc
    assert "-g" not in meta["commands"]["cc"] and "-ffast-math" not in meta["commands"]["cc"]
    assert not [p for p in model_dir.iterdir() if p.name.startswith((".tmp", ".trash", ".pub"))]


def test_dgemm_module_matches_numpy(dgemm_mod: BuiltModule) -> None:
    mod = load_module(dgemm_mod)
    rng = np.random.default_rng(0)
    for m, k, n in [(1, 1, 1), (3, 4, 5), (7, 2, 6)]:
        a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
        out = np.empty((m, n))
        mod.matmul(a, b, out)
        np.testing.assert_allclose(out, a @ b, rtol=1e-13, atol=1e-13)


def test_key_covers_source_name_and_flags(tiny: BuiltModule) -> None:
    base = cache_key("tiny_mod", TINY)
    assert base == tiny.key == cache_key("tiny_mod", TINY, BuildOptions())
    variants = [
        ("tiny_mod", TINY2, BuildOptions()),
        ("other_mod", TINY, BuildOptions()),
        ("tiny_mod", TINY, BuildOptions(opt_level=3)),
        ("tiny_mod", TINY, BuildOptions(extra_compile_args=("-fopenmp-simd",))),
        ("tiny_mod", TINY, BuildOptions(extra_compile_args=())),
        ("tiny_mod", TINY, BuildOptions(extra_link_args=("-Wl,-O1",))),
        ("tiny_mod", TINY, BuildOptions(libraries=("m",))),
        ("tiny_mod", TINY, BuildOptions(include_dirs=("/usr/include",))),
    ]
    keys = {cache_key(*v) for v in variants}
    assert len(keys) == len(variants) and base not in keys


def test_build_options_reject_a_bare_string() -> None:
    with pytest.raises(TypeError):
        BuildOptions(extra_compile_args="-O3")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BuildOptions(opt_level=7)


def test_changed_source_or_flag_misses_and_republishes(
    build_root: Path, tmp_path: Path, tiny
) -> None:
    out = copy_model(build_root, "tiny_mod", tmp_path)
    model_dir = out / "tiny_mod"
    # Keys do not depend on where the cache lives, so a copied cache still hits.
    assert build_module("tiny_mod", TINY, out_dir=out).cache_hit

    messages: list[str] = []
    b2 = build_module("tiny_mod", TINY2, out_dir=out, progress=messages.append)
    assert not b2.cache_hit and b2.key != tiny.key
    assert "cythonizing tiny_mod.pyx" in messages
    assert "compiling tiny_mod.c with gcc (kernels at -O1, the rest at -Og)" in messages or any(
        m.startswith("compiling tiny_mod.c with ") and "clang" in m for m in messages
    )
    assert not any("-march" in m for m in messages)  # the whole command is in meta.json
    assert (model_dir / "tiny_mod.pyx").read_text() == TINY2
    assert load(model_dir).thrice(2.0) == 6.0
    assert "tiny_mod" not in sys.modules

    b0 = build_module("tiny_mod", TINY, out_dir=out, options=BuildOptions(opt_level=0))
    assert not b0.cache_hit and b0.key not in (tiny.key, b2.key)
    assert "-O0" in b0.meta["commands"]["cc"]

    # Asking for the first build again is a hit that makes it the published one again.
    again = build_module("tiny_mod", TINY, out_dir=out)
    assert again.cache_hit and again.key == tiny.key
    assert json.loads((model_dir / "meta.json").read_text())["key"] == tiny.key
    assert not hasattr(load(model_dir), "thrice")
    entries = {p.name for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert entries == {tiny.key[:16], b2.key[:16], b0.key[:16]}


@pytest.mark.parametrize("damage", ["truncate_so", "corrupt_meta", "remove_meta", "wrong_key"])
def test_damaged_entry_is_rebuilt(
    build_root: Path, tmp_path: Path, tiny: BuiltModule, damage: str
) -> None:
    out = copy_model(build_root, "tiny_mod", tmp_path)
    entry = out / "tiny_mod" / tiny.key[:16]
    so = entry / f"tiny_mod{EXT_SUFFIX}"
    if damage == "truncate_so":
        so.write_bytes(so.read_bytes()[: so.stat().st_size // 2])
    elif damage == "corrupt_meta":
        (entry / "meta.json").write_text('{"key": "')
    elif damage == "remove_meta":
        (entry / "meta.json").unlink()
    else:
        meta = json.loads((entry / "meta.json").read_text())
        (entry / "meta.json").write_text(json.dumps({**meta, "key": "0" * 64}))

    messages: list[str] = []
    rebuilt = build_module("tiny_mod", TINY, out_dir=out, progress=messages.append)
    assert not rebuilt.cache_hit and rebuilt.key == tiny.key
    assert rebuilt.entry_dir == entry
    if damage != "remove_meta":
        assert any("broken" in m for m in messages)
    assert load_module(rebuilt).twice(1.5) == 3.0
    assert build_module("tiny_mod", TINY, out_dir=out).cache_hit


def test_hit_repairs_the_published_copy(
    build_root: Path, tmp_path: Path, tiny: BuiltModule
) -> None:
    out = copy_model(build_root, "tiny_mod", tmp_path)
    published = out / "tiny_mod" / f"tiny_mod{EXT_SUFFIX}"
    published.write_bytes(b"")
    assert build_module("tiny_mod", TINY, out_dir=out).cache_hit
    assert published.read_bytes() == tiny.so_path.read_bytes()


def test_load_refuses_a_damaged_entry(build_root: Path, tmp_path: Path, tiny: BuiltModule) -> None:
    out = copy_model(build_root, "tiny_mod", tmp_path)
    so = out / "tiny_mod" / tiny.key[:16] / f"tiny_mod{EXT_SUFFIX}"
    so.write_bytes(b"\0" * 100)
    with pytest.raises(BuildError, match="rebuild"):
        load(out / "tiny_mod")


def test_cython_error_names_the_offending_text(tmp_path: Path) -> None:
    source = TINY + "\ndef broken_here(:\n    pass\n"
    with pytest.raises(BuildError) as info:
        build_module("bad_mod", source, out_dir=tmp_path)
    message = str(info.value)
    assert "broken_here(" in message and "cython" in message and "bad_mod.pyx" in message
    assert not [p for p in (tmp_path / "bad_mod").iterdir() if p.name != ".locks"]


def test_c_error_shows_command_and_compiler_output(tmp_path: Path) -> None:
    source = (
        'cdef extern from *:\n    """\n    #error graphc_deliberate_c_error\n    """\n\n' + TINY
    )
    with pytest.raises(BuildError) as info:
        build_module("c_bad_mod", source, out_dir=tmp_path)
    message = str(info.value)
    assert "graphc_deliberate_c_error" in message
    assert "-Og" in message and "c_bad_mod.c" in message


def test_missing_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(BuildError, match=r"/nonexistent/cc.*\bCC\b"):
        build_module("tiny_mod", TINY, out_dir=tmp_path)
    # gc.compile starts identifying the compiler on a thread; the error still comes, once asked
    identify_compiler_soon()
    with pytest.raises(BuildError, match=r"/nonexistent/cc.*\bCC\b"):
        build_module("tiny_mod", TINY, out_dir=tmp_path)


def test_unwritable_build_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(BuildError, match="cannot write the build directory"):
        build_module("tiny_mod", TINY, out_dir=blocker / "build")


def test_load_without_a_build(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no published build"):
        load(tmp_path)


def test_load_published_dir(tiny: BuiltModule, build_root: Path) -> None:
    mod = load(build_root / "tiny_mod")
    assert mod.twice(2.5) == 5.0
    assert mod is load_module(tiny)  # one extension module per built file
    assert "tiny_mod" not in sys.modules


def test_default_build_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAPHC_BUILD_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_build_dir() == tmp_path / "build"
    monkeypatch.setenv("GRAPHC_BUILD_DIR", str(tmp_path / "elsewhere"))
    assert default_build_dir() == tmp_path / "elsewhere"


def test_import_from_model_dir(tiny: BuiltModule, build_root: Path) -> None:
    model_dir = build_root / "tiny_mod"
    code = (
        f"import sys; sys.path.insert(0, {str(model_dir)!r}); import tiny_mod; "
        "print(tiny_mod.twice(21.0)); print(tiny_mod.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    value, file = out.stdout.split()
    assert value == "42.0" and Path(file) == model_dir / f"tiny_mod{EXT_SUFFIX}"


RACER = """
import json, sys, time
from pathlib import Path
from graphc.runtime import build_module, load_module
out, ready, go, source = sys.argv[1:5]
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.002)
messages = []
built = build_module("race_mod", source, out_dir=out, progress=messages.append)
print(json.dumps({"hit": built.cache_hit, "key": built.key,
                  "value": load_module(built).twice(4.0), "messages": messages}))
"""


def test_concurrent_builds_build_once(tmp_path: Path) -> None:
    source = TINY + "# raced\n"
    go = tmp_path / "go"
    procs, ready = [], []
    for i in range(2):
        ready.append(tmp_path / f"ready{i}")
        args = [str(tmp_path / "out"), str(ready[i]), str(go), source]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", RACER, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 30
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 0, stderr
        results.append(json.loads(stdout))
    assert sorted(r["hit"] for r in results) == [False, True]
    assert results[0]["key"] == results[1]["key"]
    assert all(r["value"] == 8.0 for r in results)
    builds = [r for r in results if not r["hit"]]
    assert any(m.startswith("cythonizing") for m in builds[0]["messages"])


@pytest.mark.parametrize("package", ["graphc", "cython", "numpy"])
def test_a_version_change_changes_the_key(
    tiny: BuiltModule, monkeypatch: pytest.MonkeyPatch, package: str
) -> None:
    from graphc.runtime import toolchain

    changed = dict(toolchain.environment(), **{package: "0.0.0-other"})
    monkeypatch.setattr(toolchain, "environment", lambda: changed)
    assert cache_key("tiny_mod", TINY) != tiny.key


def test_kernels_are_marked_for_the_kernel_optimisation_level() -> None:
    """A model module's default build gives only GC_KERNEL functions the loop optimisations
    (-Og elsewhere): every kernel the module has, and every function of graphc_rt.h that it
    compiles (the vector math). The runtime is built at -O2 throughout (shared.options_for)."""
    from graphc.compiler import run_stages
    from graphc.runtime import BuildOptions, shared
    from tests.models import elementwise_chain, mlp

    assert shared.options_for(BuildOptions()).opt_level == 2
    header = (shared.header_dir() / "graphc_rt.h").read_text()
    functions = re.findall(r"^ *static inline .*\(.*\{", header, re.M)
    assert functions and all("GC_KERNEL" in f for f in functions)
    for g in (elementwise_chain(), mlp(np.random.default_rng(0))[0]):
        source = run_stages(g).source
        functions = re.findall(r"^cdef (\w+) (_k\w+)\(", source, re.M)
        assert functions and all(kind == "gc_kernel" for kind, _ in functions)


def _kernel_attribute(pre: bool) -> str:
    """What GC_KERNEL expands to in a module of the default build, with GC_PRE or without."""
    from graphc.runtime import shared, toolchain
    from graphc.runtime.build import _GCC_KERNEL

    defines = [f.replace("__attribute__", "ATTR") for f in _GCC_KERNEL]  # kept unexpanded
    text = ("#define GC_PRE 1\n" if pre else "") + '#include "graphc_rt.h"\nGC_KERNEL\n'
    incs = [f"-I{d}" for d in [shared.header_dir(), *toolchain.environment()["include_dirs"]]]
    out = subprocess.run(
        ["gcc", "-E", "-P", *defines, *incs, "-x", "c", "-"],
        input=text, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.strip().splitlines()[-1]


@NEEDS_CC
@pytest.mark.skipif(shutil.which("gcc") is None, reason="the default build's flags are gcc's")
def test_only_modules_whose_loops_call_erf_build_them_with_pre() -> None:
    """A module whose loops call erf (GELU's) defines GC_PRE, which makes its kernels
    GC_KERNEL_PRE (partial redundancy elimination: erf's loops 1.5-2x faster); others keep
    GC_KERNEL (with it, log(exp(x)) in softplus and mish did not vectorise)."""
    from graphc.compiler import run_stages
    from tests.models import elementwise_chain

    assert "tree-pre" in _kernel_attribute(pre=True)
    assert "tree-pre" not in _kernel_attribute(pre=False)
    g = gc.Graph("gelu")
    x = g.input("x", shape=("N",))
    g.output("loss", gc.sum(gc.gelu(x) * gc.softplus(x)))
    assert "#define GC_PRE" in run_stages(g, wrt="x").source
    assert "#define GC_PRE" not in run_stages(elementwise_chain()).source
    g = gc.Graph("softplus")
    x = g.input("x", shape=("N",))
    g.output("loss", gc.sum(gc.softplus(x)))
    assert "#define GC_PRE" not in run_stages(g, wrt="x").source
