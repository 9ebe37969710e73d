"""Build a rendered Cython module into a native extension (Cython in a worker process, then the C
compiler directly, both run by run_tools.py), cache it on disk under a key that covers everything
the binary depends on, and import it."""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import json
import keyword
import os
import re
import shlex
import shutil
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from graphc.errors import BuildError
from graphc.runtime import cache, run_tools, toolchain, trust
from graphc.runtime.cache import META, so_name

# Bump when the build recipe changes in a way the recorded commands do not show.
_SCHEMA = 1
# -fno-math-errno and -fno-trapping-math let gcc inline sqrt and turn the branch-free selects
# of the math functions (templates/runtime/graphc_rt.h) into vector blends; unlike
# -ffast-math they keep NaN/Inf semantics and the order of every operation.
# NPY_NO_DEPRECATED_API silences NumPy's deprecation #warning, which would otherwise be the only
# compiler output.
_BASE_CFLAGS = (
    "-fno-math-errno",
    "-fno-trapping-math",
    "-ffp-contract=off",  # no fused multiply-add: each op rounds once, as NumPy's do
    "-pthread",  # the runtime's threads (templates/runtime/pool.h)
    "-pipe",  # the assembler runs beside the compiler instead of after it
    "-shared",
    "-fPIC",
    "-DNPY_NO_DEPRECATED_API=NPY_1_7_API_VERSION",
)
# gcc at -O2 vectorises only loops that need no run-time checks; fused loops read and write
# several arrays, so let it check more pairs of them for overlap (the plan makes them distinct
# or identical, never partly overlapping) and use its full cost model.
_GCC_VECTOR_FLAGS = ("-fvect-cost-model=dynamic", "--param=vect-max-version-for-alias-checks=64")
_NATIVE_FLAGS = ("-march=native", "-mtune=native", "-mcpu=native")
# The default build gives the kernels (the loops, and the math and helpers they inline; the
# templates mark them GC_KERNEL) -O1 plus the -O2 optimisations the loops need: vectorising,
# inlining the small math functions, type-based alias analysis. The loops run as fast as at
# -O2 and gcc takes about half the time (`python -m benchmarks.suite --opt-level 2` against the
# default). Most of the C is Cython's Python-facing code, which gains little from -O1 over
# -Og, so with gcc the module is built at -Og and GC_KERNEL raises the kernels to -O1 (the
# optimize attribute: as if "-O1" came last on the command line, so the flags below hold for
# them too). That takes a third off gcc's time on small models; clang has no such attribute
# and builds everything at -O1.
#
# A module whose loops call erf (GELU) defines GC_PRE, and its kernels are GC_KERNEL_PRE:
# partial redundancy elimination and code hoisting too. Without them the inlined erf's
# coefficients were broadcast afresh in each iteration (a GELU's backward loop 1.8x slower);
# with them, gcc no longer vectorises log(exp(x)) (softplus, mish: 3.5-5x slower) and a loop of
# tanh, sigmoid and exp runs 12 % slower. One module's kernels share one attribute: gcc does
# not inline an always_inline function into a caller optimised otherwise.
_LOOP_FLAGS = {
    "gcc": ("-ftree-vectorize", "-fstrict-aliasing", "-finline-small-functions"),
    "clang": ("-fvectorize", "-fslp-vectorize", "-fstrict-aliasing"),
}
# -Og's early inliner alone leaves small functions of Python's headers (Py_DECREF) as calls;
# this limit lets it inline them, for a few percent less call overhead at the same build time.
_GCC_GLUE = ("-Og", "--param=early-inlining-insns=14")
_GCC_KERNEL = (
    '-DGC_KERNEL=__attribute__((optimize("O1")))',
    '-DGC_KERNEL_PRE=__attribute__((optimize("O1","tree-pre","code-hoisting")))',
)


@dataclass(frozen=True)
class BuildOptions:
    """Compiler settings for one build; every field is part of the cache key."""

    opt_level: int = 1  # -O level; 1: kernels at -O1 with the loop flags of -O2 (_LOOP_FLAGS)
    # -march=native: AVX2 and FMA where the machine has them (the key then names the CPU)
    extra_compile_args: tuple[str, ...] = ("-march=native",)
    extra_link_args: tuple[str, ...] = ()
    libraries: tuple[str, ...] = ()  # e.g. ("m",)
    include_dirs: tuple[str, ...] = ()  # numpy's include dir is always added

    def __post_init__(self) -> None:
        if not isinstance(self.opt_level, int) or not 0 <= self.opt_level <= 3:
            raise ValueError(f"opt_level must be 0, 1, 2 or 3, got {self.opt_level!r}")
        for field in ("extra_compile_args", "extra_link_args", "libraries", "include_dirs"):
            value = getattr(self, field)
            # A bare string would silently become one flag per character.
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"BuildOptions.{field} must be a sequence of str, got {value!r}")
            object.__setattr__(self, field, tuple(value))


DEFAULT_OPTIONS = BuildOptions()


@dataclass(frozen=True)
class BuiltModule:
    """A verified cache entry holding one built extension module."""

    name: str  # the extension module's name, e.g. "seed_net" (PyInit_seed_net)
    key: str  # sha256 hex cache key
    entry_dir: Path  # the cache entry holding source, .so and meta.json
    so_path: Path
    pyx_path: Path
    cache_hit: bool
    seconds: float  # wall time of this call (build or hit)
    meta: dict  # what meta.json holds


def default_build_dir() -> Path:
    """$GRAPHC_BUILD_DIR if set, else ./build in the current working directory (absolute)."""
    env = os.environ.get("GRAPHC_BUILD_DIR")
    return (Path(env).expanduser() if env else Path.cwd() / "build").absolute()


def _check_name(name: str) -> None:
    """Raise BuildError unless `name` can be an extension module and a file name."""
    if not (isinstance(name, str) and name.isidentifier() and name.isascii()) or (
        keyword.iskeyword(name)
    ):
        raise BuildError(f"module name {name!r} must be an ASCII Python identifier")


def _cc_command(cc: toolchain.Compiler, name: str, options: BuildOptions) -> list[str]:
    """The compile-and-link command, run inside the build directory."""
    incs = [f"-I{d}" for d in [*toolchain.environment()["include_dirs"], *options.include_dirs]]
    clang = "clang" in cc.version.lower()
    level = (*_GCC_GLUE, *_GCC_KERNEL) if options.opt_level == 1 and not clang else ()
    return [
        *cc.argv,
        *(level or (f"-O{options.opt_level}",)),
        *(_LOOP_FLAGS["clang" if clang else "gcc"] if options.opt_level == 1 else ()),
        *_BASE_CFLAGS,
        *(() if clang else _GCC_VECTOR_FLAGS),
        *incs,
        *options.extra_compile_args,
        f"{name}.c",
        "-o",
        so_name(name),
        *options.extra_link_args,
        *(f"-l{lib}" for lib in options.libraries),
        "-lm",
    ]


def _key_inputs(
    name: str, source: str, options: BuildOptions, cc: toolchain.Compiler
) -> dict[str, Any]:
    """Everything the cache key covers, as plain JSON data (it is stored in meta.json)."""
    return {
        "schema": _SCHEMA,
        "name": name,
        "source_sha256": hashlib.sha256(source.encode()).hexdigest(),
        **toolchain.environment(),
        "compiler": {"argv": list(cc.argv), "path": cc.path, "version": cc.version},
        "cython_command": run_tools._cython_command(name, options),
        "cc_command": _cc_command(cc, name, options),
        "cpu_target": toolchain.cpu_target(cc.argv, _native(options)),
    }


def _native(options: BuildOptions) -> tuple[str, ...]:
    return tuple(a for a in options.extra_compile_args if a.startswith(_NATIVE_FLAGS))


def identify_compiler_soon(options: BuildOptions = DEFAULT_OPTIONS) -> None:
    """Start identifying the C compiler a build with `options` needs for its key, on a thread
    (toolchain.identify_soon), so that it overlaps what the caller does before building."""
    toolchain.identify_soon(_native(options))


def cache_key(name: str, source: str, options: BuildOptions = DEFAULT_OPTIONS) -> str:
    """The SHA-256 hex key of building `source` as `name` with `options` on this machine."""
    _check_name(name)
    return cache.digest(_key_inputs(name, source, options, toolchain.find_compiler()))


def _build_entry(
    name: str,
    source: str,
    key: str,
    inputs: dict[str, Any],
    options: BuildOptions,
    cc: toolchain.Compiler,
    model_dir: Path,
    entry: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Build into a private directory and rename it into place as `entry`; return its meta."""
    cache.clear_stale(model_dir, key)
    tmp = cache.make_build_dir(model_dir, key)
    try:
        pyx = tmp / f"{name}.pyx"
        pyx.write_bytes(source.encode())
        say(f"cythonizing {name}.pyx")
        t0 = time.perf_counter()
        cython_messages = run_tools._cythonize(pyx, name, options)
        t1 = time.perf_counter()
        argv = _cc_command(cc, name, options)
        say(f"compiling {run_tools._short(argv, name)}")
        cc_output = run_tools._run_cc(argv, tmp, name)
        t2 = time.perf_counter()
        for leftover in (pyx.with_suffix(".c"), pyx.with_suffix(".lis")):
            leftover.unlink(missing_ok=True)
        so = tmp / so_name(name)
        # Explicit modes: under umask 002 they would be group-writable, which the cache
        # refuses to import (trust.check_trusted).
        os.chmod(so, 0o755)
        os.chmod(pyx, 0o644)
        meta = {
            "name": name,
            "key": key,
            "entry": entry.name,
            "so": so.name,
            "so_sha256": cache.sha256_file(so),
            "so_bytes": so.stat().st_size,
            "pyx_sha256": cache.sha256_file(pyx),
            "options": asdict(options),
            # Cython runs in a worker process; "cython" is the equivalent command line.
            "commands": {"cython": inputs["cython_command"], "cc": argv},
            "build_seconds": {"cython": round(t1 - t0, 3), "cc": round(t2 - t1, 3)},
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "messages": {
                "cython": run_tools._trim(cython_messages),
                "cc": run_tools._trim(cc_output),
            },
            "key_inputs": inputs,
        }
        # No fsync: a crash may leave a truncated file, which verification rejects and rebuilds.
        data = cache.meta_bytes(cache.seal_meta(meta))
        (tmp / META).write_bytes(data)
        os.chmod(tmp / META, 0o644)
        meta = json.loads(data)  # exactly what a later cache hit reads back
        cache.publish_entry(tmp, entry)
    except BaseException:
        cache.remove_path(tmp)
        raise
    # Builds of other keys killed midway left their temporary directories; nobody else
    # removes those.
    cache.sweep_leftovers(model_dir)
    return meta


_ELSEWHERE = "set GRAPHC_BUILD_DIR (or pass out_dir= / --out) to"


def _free_bytes(path: Path) -> str:
    """Free space on the filesystem holding `path` (or its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return "unknown"
    return f"{free / 1024:.0f} KiB" if free < 1 << 30 else f"{free / (1 << 30):.1f} GiB"


def _unwritable(root: Path, e: OSError) -> BuildError:
    """The error for a build directory that cannot be written, saying why and what to do."""
    q = shlex.quote(str(root))
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk quota is used up" if e.errno == errno.EDQUOT else "the filesystem is full"
        return BuildError(
            f"cannot write the build directory {root}: {why} ({e}; {_free_bytes(root)} free). "
            f"Free some space (`graphc cache clear --build-dir {q}` removes the builds cached "
            f"there; the C compiler also writes to {tempfile.gettempdir()}) or {_ELSEWHERE} a "
            "directory on another filesystem."
        )
    if e.errno == errno.EROFS:
        return BuildError(
            f"cannot write the build directory {root}: it is on a read-only filesystem ({e}). "
            f"Builds already cached there still load; to build, {_ELSEWHERE} a writable "
            "directory."
        )
    if e.errno in (errno.EACCES, errno.EPERM):
        where = shlex.quote(e.filename) if isinstance(e.filename, str) else q
        return BuildError(
            f"cannot write the build directory {root}: permission denied ({e}). Builds already "
            f"cached there still load; to build, make it writable (`chmod u+w {where}` as its "
            f"owner) or {_ELSEWHERE} a directory you can write."
        )
    return BuildError(
        f"cannot write the build directory {root}: {e}. "
        f"{_ELSEWHERE[0].upper()}{_ELSEWHERE[1:]} a writable directory."
    )


def build_module(
    name: str,
    source: str,
    *,
    out_dir: str | Path | None = None,
    options: BuildOptions = DEFAULT_OPTIONS,
    progress: Callable[[str], None] | None = None,
    folder: str | None = None,
    publish: bool = True,
) -> BuiltModule:
    """A verified build of `source` as module `name` (compiled only on a miss), now published
    in `out_dir/folder` (default: `out_dir/name`; a float32 model's folder is `name_float32`,
    so that its build and its float64 one are both published; `publish` False: only cached)."""
    start = time.perf_counter()
    _check_name(name)
    folder = folder or name
    _check_name(folder)
    if not isinstance(source, str):
        raise TypeError(f"source must be str, got {type(source).__name__}")
    options = options or DEFAULT_OPTIONS
    say = progress or (lambda msg: None)
    root = Path(out_dir).absolute() if out_dir is not None else default_build_dir()
    cc = toolchain.find_compiler()
    inputs = _key_inputs(name, source, options, cc)
    key = cache.digest(inputs)
    model_dir = root / folder
    entry = model_dir / key[:16]

    # Before anything is read, built or published there: nobody else may have written it.
    trust.check_trusted(root, model_dir, entry, name)
    meta, _ = cache.verify_entry(entry, name, key)
    hit = meta is not None
    if meta is None:
        try:
            cache.make_dirs(model_dir)
            waiting = lambda: say(f"waiting for another process building {name} ({key[:16]})")
            with cache.key_lock(model_dir, key, on_wait=waiting):
                # Whoever held the lock before us may have just published this key.
                meta, why = cache.verify_entry(entry, name, key)
                hit = meta is not None
                if meta is None:
                    if why != "not built":
                        say(f"cache entry {entry} is broken ({why}); rebuilding")
                    meta = _build_entry(
                        name, source, key, inputs, options, cc, model_dir, entry, say
                    )
        except OSError as e:
            raise _unwritable(root, e) from e
    try:
        if publish:
            cache.publish_latest(model_dir, entry, name, meta)
    except OSError as e:
        if not hit:
            raise _unwritable(root, e) from e
        # A read-only cache still serves hits; only the top-level copy is stale.
        say(f"could not update the published files in {model_dir}: {e}")
    return BuiltModule(
        name=name,
        key=key,
        entry_dir=entry,
        so_path=entry / so_name(name),
        pyx_path=entry / f"{name}.pyx",
        cache_hit=hit,
        seconds=time.perf_counter() - start,
        meta=meta,
    )


_HEX_KEY = re.compile(r"[0-9a-f]{64}")
_LOAD_LOCK = threading.RLock()  # a module being imported may import the runtime (shared.py)
_MISSING = object()


def load_module(built: BuiltModule) -> types.ModuleType:
    """Import `built`'s extension module and return it; sys.modules is left as it was."""
    name = built.name
    entry = built.entry_dir
    # Checked again right before the import: the files may have changed since build_module.
    trust.check_trusted(entry.parent.parent, entry.parent, entry, name)
    if built.so_path.parent != entry or built.so_path.name != so_name(name):
        raise BuildError(f"{built.so_path} is not the extension module of the entry {entry}")
    try:
        so_sha256 = cache.sha256_file(built.so_path)
    except OSError as e:
        raise BuildError(f"cannot read the built module {built.so_path}: {e}; rebuild") from e
    if so_sha256 != built.meta.get("so_sha256"):
        raise BuildError(
            f"{built.so_path} changed since it was verified (its SHA-256 no longer matches "
            f"{entry / META}); rebuild the model, or remove the entry with "
            f"`graphc cache clear --stale --build-dir {shlex.quote(str(entry.parent.parent))}`"
        )
    with _LOAD_LOCK:
        before = sys.modules.get(name, _MISSING)
        spec = importlib.util.spec_from_file_location(name, built.so_path)
        if spec is None or spec.loader is None:
            raise BuildError(f"{built.so_path} cannot be loaded as an extension module")
        module = None
        try:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except ImportError as e:
            raise BuildError(
                f"cannot import the built module {name} from {built.so_path}: {e}"
            ) from e
        finally:
            # Cython modules add themselves to sys.modules when first executed; undo that so
            # neither `import <name>` nor a later build of the same name finds this one.
            if before is _MISSING:
                if module is not None and sys.modules.get(name) is module:
                    del sys.modules[name]
            else:
                sys.modules[name] = before
    return module


def load(path: str | Path) -> types.ModuleType:
    """The verified build last published in a model directory such as "build/seed_net"."""
    start = time.perf_counter()
    model_dir = Path(path).absolute()
    meta, why = cache.load_meta(model_dir / META)
    if why == "not built":
        raise BuildError(
            f"{model_dir} holds no published build ({META} is missing); build the model first"
        )
    if meta is None:
        raise BuildError(
            f"{model_dir} holds no usable published build: {why}; build the model again "
            "(gc.compile or `graphc compile`), which rewrites it"
        )
    name, key = meta.get("name"), meta.get("key")
    if not isinstance(name, str) or not (isinstance(key, str) and _HEX_KEY.fullmatch(key)):
        # the key names the entry's directory: a path there would escape the checks below
        raise BuildError(f"{model_dir / META} is not a graphc build record (its key is not a "
                         "SHA-256 digest)")  # fmt: skip
    _check_name(name)
    # `path` may also be a cache entry itself, whose meta.json has the same form.
    entry = model_dir if model_dir.name == key[:16] else model_dir / key[:16]
    trust.check_trusted(entry.parent.parent, entry.parent, entry, name)
    entry_meta, why = cache.verify_entry(entry, name, key)
    if entry_meta is None:
        raise BuildError(
            f"the build of {name} published in {model_dir} cannot be used: its cache entry "
            f"{entry} is broken ({why}); rebuild the model"
        )
    built = BuiltModule(
        name=name,
        key=key,
        entry_dir=entry,
        so_path=entry / so_name(name),
        pyx_path=entry / f"{name}.pyx",
        cache_hit=True,
        seconds=time.perf_counter() - start,
        meta=entry_meta,
    )
    return load_module(built)
