"""graphc's runtime: what every model module shares (the argument checks, the call's memory,
the threads, BLAS, the kernels of products, convolutions, pooling, softmax, layer norm and
gathers, the loop that runs a program), as one extension built once per graphc version,
compiler, flags and CPU, and cached and verified like a model's build.

It lives in a directory of its own, beside no project: $GRAPHC_RUNTIME_DIR, else graphc's
directory in the user's cache ($XDG_CACHE_HOME/graphc, ~/.cache/graphc). A model module names
the runtime it was built against by its key and takes its API (graphc_rt.h) when imported
(`runtime`); a build makes sure the runtime is there first (`ensure`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graphc.codegen.emit import PARALLEL_MIN
from graphc.errors import BuildError
from graphc.passes.concurrency import CONCURRENT_MIN

NAME = "graphc_runtime"
DTYPES = (("d", "double"), ("s", "float"))
# The runtime kernels a program's steps may name (templates/runtime/steps.pyx.j2).
STEPS = tuple(
    name.format(s)
    for s, _ in DTYPES
    for name in (
        "gemm_{}", "softmax_{}", "layer_norm_{}", "logsumexp_{}", "take_{}_l", "take_{}_i",
        "take_grad_{}_l", "take_grad_{}_i", "conv2d_{}", "conv2d_grad_input_{}",
        "conv2d_grad_weight_{}", "conv2d_tiled_{}", "conv3d_{}", "conv3d_grad_input_{}",
        "conv3d_grad_weight_{}", "conv3d_tiled_{}", "max_pool2d_{}", "max_pool2d_grad_{}",
        "max_pool2d_gather_{}", "avg_pool2d_{}", "avg_pool2d_grad_{}", "argsort_{}",
    )
) + ("copy", "argsort_l")  # fmt: skip


def header_dir() -> Path:
    """Where graphc_rt.h and graphc_rt.pxd are: the include directory of every build."""
    from graphc.codegen.render import template_dir

    return template_dir() / "runtime"


def runtime_dir() -> Path:
    """$GRAPHC_RUNTIME_DIR, else graphc's directory in the user's cache."""
    env = os.environ.get("GRAPHC_RUNTIME_DIR")
    if env:
        return Path(env).expanduser().absolute()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return (Path(cache).expanduser() / "graphc").absolute()


@functools.cache
def source() -> str:
    """The runtime's Cython source, with the digest of the headers it shares with modules
    (so that its key, and so every module's, changes with them)."""
    import graphc
    from graphc.codegen.render import environment

    text = (
        environment()
        .get_template("runtime/runtime.pyx.j2")
        .render(
            version=graphc.__version__,
            dtypes=DTYPES,
            steps=STEPS,
            parallel_min=PARALLEL_MIN,
            concurrent_min=CONCURRENT_MIN,
        )
    )
    digest = hashlib.sha256()
    for name in ("graphc_rt.h", "graphc_math.h", "graphc_rt.pxd"):
        digest.update((header_dir() / name).read_bytes())
    return f"{text.rstrip()}\n# headers: sha256 {digest.hexdigest()}\n"


def module_options(options: Any) -> Any:
    """A model module's build options: `options` and the headers' directory."""
    return dataclasses.replace(options, include_dirs=(*options.include_dirs, str(header_dir())))


def options_for(options: Any) -> Any:
    """The runtime's build options for a model built with `options`: the model's own flags
    (-march and the rest), all of it at -O2 (built once, it is worth the compiler's time: the
    loops that check a call and run its program are generic, where a module's are not)."""
    return dataclasses.replace(module_options(options), opt_level=2)


_LOADED: dict[str, types.ModuleType] = {}
_LOCK = threading.Lock()


def key(options: Any) -> str:
    """The key of the runtime a model built with `options` uses (whether built or not)."""
    from graphc.runtime.build import cache_key

    return cache_key(NAME, source(), options_for(options))


def source_key(options: Any) -> str:
    """`key(options)` for a model's source to name; zeros when there is no C compiler to tell
    (the source is then only for reading)."""
    try:
        return key(options)
    except BuildError:
        return "0" * 64


def ensure(options: Any, progress: Callable[[str], None] | None = None) -> str:
    """Build the runtime for a model built with `options` unless it is cached; load it into
    this process; return its key."""
    from graphc.runtime.build import build_module, load_module

    opts = options_for(options)
    say = progress or (lambda msg: None)
    with _LOCK:
        built = build_module(
            NAME, source(), out_dir=runtime_dir(), options=opts, progress=progress,
            publish=False,
        )  # fmt: skip
        if not built.cache_hit:
            say(f"built graphc's runtime for this machine once ({built.seconds:.1f} s)")
        if built.key not in _LOADED:
            _LOADED[built.key] = load_module(built)
    return built.key


def runtime(key: str, options: dict) -> types.ModuleType:
    """The runtime `key`, which a module was built against (with build options `options`):
    loaded once per process, built again if it is no longer cached."""
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
    from graphc.runtime.build import BuildOptions

    got = ensure(BuildOptions(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in options.items()}))  # fmt: skip
    if got != key:
        raise BuildError(
            f"this module was built against graphc's runtime {key[:16]}, but this graphc, "
            f"compiler and CPU make {got[:16]}; build the model again"
        )
    return _LOADED[key]
