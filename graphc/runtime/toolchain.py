"""What a build's cache key covers besides the source and the flags: the C compiler (which one,
and the CPU its code is specialised for) and the versions and paths of everything else the
built binary depends on.

Identifying the compiler takes two short runs of it; `identify_soon` starts them on a thread
so that they overlap what the caller does before it needs the key, and each answer is
computed once per process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphc.errors import BuildError
from graphc.runtime.cache import EXT_SUFFIX


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
    _identified()
    return _resolve_compiler(os.environ.get("CC"), os.environ.get("PATH"))


def cpu_target(cc: tuple[str, ...], native: tuple[str, ...]) -> str:
    """What the generated machine code is specialised for, as a string for the key."""
    _identified()
    return _cpu_target(cc, native)


_IDENTIFYING: list[threading.Thread] = []


def identify_soon(native: tuple[str, ...]) -> None:
    """Identify the C compiler and its CPU target (find_compiler, cpu_target: two short runs
    of the compiler) on a thread, while the caller renders its source; the key then finds
    them done. An error is left for find_compiler to raise."""

    def identify() -> None:
        with contextlib.suppress(BuildError):
            cc = _resolve_compiler(os.environ.get("CC"), os.environ.get("PATH"))
            _cpu_target(cc.argv, native)

    thread = threading.Thread(target=identify, name="graphc-identify-cc", daemon=True)
    thread.start()
    _IDENTIFYING.append(thread)


def _identified() -> None:
    while _IDENTIFYING:
        _IDENTIFYING.pop().join()


@functools.lru_cache(maxsize=16)
def _cpu_target(cc: tuple[str, ...], native: tuple[str, ...]) -> str:
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
