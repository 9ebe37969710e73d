"""The on-disk build cache: entry layout, verification, per-key locks, atomic publishing, and
the facts about the toolchain and the CPU that the cache key covers.

Layout under a build directory `out_dir`::

    out_dir/<name>/<key[:16]>/          one cache entry, immutable once published
        <name>.pyx  <name><EXT_SUFFIX>  meta.json
    out_dir/<name>/<name>.pyx           the latest requested build, published for people and
    out_dir/<name>/<name><EXT_SUFFIX>   for `sys.path.insert(0, "build/<name>"); import <name>`
    out_dir/<name>/meta.json            a copy of the latest entry's meta.json
    out_dir/<name>/.locks/<key[:16]>.lock   one build lock per key; publish.lock guards the copy
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphc.errors import BuildError

META = "meta.json"
EXT_SUFFIX: str = sysconfig.get_config_var("EXT_SUFFIX") or ".so"


def so_name(name: str) -> str:
    """The file name of the extension module `name` on this Python."""
    return f"{name}{EXT_SUFFIX}"


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_meta(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an object."""
    try:
        meta = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def verify_entry(entry: Path, name: str, key: str) -> tuple[dict[str, Any] | None, str]:
    """(meta, "") when `entry` is a complete build of `key`, else (None, why it cannot be used)."""
    meta_path = entry / META
    if not meta_path.exists():
        # meta.json is written last, inside the temporary directory, so without it nothing
        # was ever published here.
        return None, "not built"
    meta = read_meta(meta_path)
    if meta is None:
        return None, "meta.json is unreadable"
    if meta.get("key") != key or meta.get("name") != name:
        return None, "meta.json belongs to another build"
    # File names are derived, never taken from meta.json, so a damaged meta cannot point
    # the loader at an arbitrary file.
    for fname, field in ((so_name(name), "so_sha256"), (f"{name}.pyx", "pyx_sha256")):
        try:
            digest = sha256_file(entry / fname)
        except OSError:
            return None, f"{fname} is missing"
        if digest != meta.get(field):
            return None, f"{fname} does not match its checksum in meta.json"
    return meta, ""


@contextlib.contextmanager
def key_lock(
    model_dir: Path, key: str, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold an exclusive lock for one cache key (other keys build in parallel)."""
    lock_dir = model_dir / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    # Lock files are never deleted: removing a file others may be blocked on would let two
    # processes hold "the" lock on different inodes.
    fd = os.open(lock_dir / f"{key[:16]}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@contextlib.contextmanager
def publish_lock(model_dir: Path) -> Iterator[None]:
    """Hold the short lock that keeps the published top-level files of one model consistent."""
    lock_dir = model_dir / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / "publish.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def make_build_dir(model_dir: Path, key: str) -> Path:
    """A fresh private directory next to the entry (same filesystem, so rename is atomic)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:16]}-", dir=model_dir))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a shared build dir should stay readable
    return tmp


def remove_path(path: Path) -> None:
    """Delete a file or directory tree, ignoring what is already gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clear_stale(model_dir: Path, key: str) -> None:
    """Remove leftovers of interrupted builds of `key`; call only while holding its key lock."""
    # Only the holder of this key's lock creates these, so any that exist now are orphans
    # of a process that died mid-build.
    for pattern in (f".tmp-{key[:16]}-*", f".trash-{key[:16]}-*"):
        for p in model_dir.glob(pattern):
            remove_path(p)


def publish_entry(tmp: Path, entry: Path) -> None:
    """Move a finished build directory into place as `entry`; call only under the key lock."""
    trash = None
    if entry.exists() or entry.is_symlink():
        # rename(2) cannot replace a non-empty directory, so move the broken entry aside
        # first; readers that find no entry in between simply wait for the key lock.
        trash = entry.with_name(f".trash-{entry.name}-{uuid.uuid4().hex[:8]}")
        os.rename(entry, trash)
    os.rename(tmp, entry)
    if trash is not None:
        remove_path(trash)


def _atomic_write(dst: Path, write: Callable[[Any], None], mode: int) -> None:
    """Write `dst` through a temporary file in the same directory and os.replace it."""
    fd, tmp = tempfile.mkstemp(prefix=f".pub-{dst.name}-", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, mode)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_copy(src: Path, dst: Path, mode: int = 0o644) -> None:
    """Replace `dst` by a copy of `src` so readers see the old file or the new, never a mix."""
    # A copy, not a hard link: the dynamic loader identifies libraries by inode, so a linked
    # file would make `import <name>` reuse an already loaded entry's module state.
    with open(src, "rb") as s:
        _atomic_write(dst, lambda f: shutil.copyfileobj(s, f), mode)


def atomic_write_json(dst: Path, obj: dict[str, Any]) -> None:
    """Replace `dst` by `obj` as indented JSON, atomically."""
    data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    _atomic_write(dst, lambda f: f.write(data), 0o644)


def is_published(model_dir: Path, name: str, key: str, so_sha256: str) -> bool:
    """True when the top-level files of `model_dir` already show the build `key`."""
    meta = read_meta(model_dir / META)
    if meta is None or meta.get("key") != key:
        return False
    try:
        return sha256_file(model_dir / so_name(name)) == so_sha256 and (
            (model_dir / f"{name}.pyx").exists()
        )
    except OSError:
        return False


def publish_latest(model_dir: Path, entry: Path, name: str, meta: dict[str, Any]) -> bool:
    """Make `entry` the model's published build; False when it already was."""
    if is_published(model_dir, name, meta["key"], meta["so_sha256"]):
        return False
    with publish_lock(model_dir):
        # meta.json goes last: whoever reads it finds the entry it names complete, and
        # `load` always imports from that immutable entry, not from the top-level copy.
        atomic_copy(entry / so_name(name), model_dir / so_name(name), 0o755)
        atomic_copy(entry / f"{name}.pyx", model_dir / f"{name}.pyx")
        atomic_write_json(model_dir / META, meta)
    return True


# What the key covers besides the source and the flags: the toolchain, versions and target.


@dataclass(frozen=True)
class Compiler:
    """A C compiler command and what identifies it."""

    argv: tuple[str, ...]  # command prefix, e.g. ("gcc",) or ("ccache", "gcc")
    path: str
    version: str


@functools.lru_cache(maxsize=16)
def _resolve_compiler(cc_env: str | None, path_env: str | None) -> Compiler:
    """The C compiler named by $CC (or gcc/cc on PATH) with its --version, once per process."""
    if cc_env and cc_env.strip():
        argv = tuple(shlex.split(cc_env))
        path = shutil.which(argv[0], path=path_env)
        if path is None:
            raise BuildError(
                f"C compiler {argv[0]!r} (from $CC={cc_env!r}) was not found or is not "
                "executable; set CC to a working C compiler (e.g. CC=gcc) or unset it to use gcc"
            )
    else:
        for candidate in ("gcc", "cc"):
            path = shutil.which(candidate, path=path_env)
            if path is not None:
                argv = (candidate,)
                break
        else:
            raise BuildError(
                "no C compiler found: looked for 'gcc' and 'cc' on PATH; install gcc "
                "(e.g. apt-get install gcc) or set $CC to a C compiler"
            )
    try:
        proc = subprocess.run(
            [*argv, "--version"], capture_output=True, text=True, errors="replace", timeout=60
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise BuildError(f"cannot run the C compiler {shlex.join(argv)} --version: {e}") from e
    # Some compilers reject --version; their complaint still identifies them.
    return Compiler(argv, path, (proc.stdout + proc.stderr).strip())


def find_compiler() -> Compiler:
    """The C compiler for builds started now; raises BuildError when there is none."""
    return _resolve_compiler(os.environ.get("CC"), os.environ.get("PATH"))


@functools.lru_cache(maxsize=16)
def cpu_target(cc: tuple[str, ...], native: tuple[str, ...]) -> str:
    """What the generated machine code is specialised for, as a string for the key."""
    machine = platform.machine()
    if not native:
        # Without -march/-mtune=native gcc emits the architecture's baseline ISA, so the
        # binary is valid on every CPU of this machine type.
        return machine
    # With -march=native, what changes the code is what the compiler resolves "native" to,
    # so ask it (`-Q --help=target` lists every resolved -m option); /proc/cpuinfo is only a
    # proxy for that and is the fallback for compilers without -Q (clang).
    try:
        proc = subprocess.run(
            [*cc, *native, "-Q", "--help=target"], capture_output=True, text=True, errors="replace"
        )
    except OSError:
        proc = None
    if proc is not None and proc.returncode == 0 and proc.stdout.strip():
        options_sha = hashlib.sha256(proc.stdout.encode()).hexdigest()
        arch = [
            ln.split()[-1] for ln in proc.stdout.splitlines() if ln.strip().startswith("-march=")
        ]
        return f"{machine} march={','.join(arch)} target-options-sha256={options_sha}"
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace").split("\n\n")[0]
        fields = [
            ln for ln in info.splitlines() if ln.split(":")[0].strip() in ("model name", "flags")
        ]
        return f"{machine} " + hashlib.sha256("\n".join(fields).encode()).hexdigest()
    except OSError:
        return f"{machine} {platform.processor()}"


def _dist_version(dist: str) -> str | None:
    """Installed version of a distribution, or None."""
    if dist in sys.modules:  # already imported: no need to scan the installed metadata
        return getattr(sys.modules[dist], "__version__", None)
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Versions and paths of everything the built binary depends on besides its flags."""
    import Cython
    import numpy

    import graphc

    paths = sysconfig.get_paths()
    includes = dict.fromkeys([paths["include"], paths["platinclude"], numpy.get_include()])
    return {
        "graphc": graphc.__version__,
        "cython": Cython.__version__,
        "numpy": numpy.__version__,
        "scipy": _dist_version("scipy"),  # its cython_blas .pxd may be cimported
        "python": sys.version,
        "cache_tag": sys.implementation.cache_tag,
        "ext_suffix": EXT_SUFFIX,
        "platform": sysconfig.get_platform(),
        "include_dirs": tuple(includes),  # a tuple: this cached dict is shared
    }


def digest(inputs: dict[str, Any]) -> str:
    """SHA-256 of canonical JSON."""
    return hashlib.sha256(
        json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
