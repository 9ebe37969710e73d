"""Running the external tools of a build: Cython's translation (in its worker process,
translate.py) and the C compiler, whose output becomes a warning or a BuildError, and whose
own children are killed with it when the caller is interrupted."""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from graphc.errors import BuildError
from graphc.runtime.translate import translate

if TYPE_CHECKING:
    from graphc.runtime.build import BuildOptions

_UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _cython_command(name: str, options: BuildOptions) -> list[str]:
    """The `cython` command line equivalent to the worker's translation (translate.py)."""
    incs = [f"-I{d}" for d in options.include_dirs]
    return ["cython", "-3", *incs, "-o", f"{name}.c", f"{name}.pyx"]


def _trim(text: str, max_lines: int = 60, max_chars: int = 6000) -> str:
    """Compiler output cut to something a person reads, saying how much was cut."""
    lines = text.strip().splitlines()
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... ({len(lines) - max_lines} more lines)"]
    out = "\n".join(lines)
    return out if len(out) <= max_chars else out[:max_chars] + "\n... (trimmed)"


def _read_listing(listing: Path, pyx: Path) -> str:
    """Cython's messages, naming the source by its file name, not the temporary build path."""
    if not listing.exists():
        return ""
    text = listing.read_text(errors="replace")
    return text.replace(str(pyx), pyx.name).replace(os.path.relpath(pyx), pyx.name)


def _cythonize(pyx: Path, name: str, options: BuildOptions) -> str:
    """Translate `pyx` into `<name>.c` beside it; return Cython's warnings."""
    cmd = shlex.join(_cython_command(name, options))
    c, listing = pyx.with_suffix(".c"), pyx.with_suffix(".lis")
    reply = translate(pyx, c, name, list(options.include_dirs))
    messages = _read_listing(listing, pyx)
    if "exception" in reply:
        if reply["errno"] in _UNWRITABLE:
            # the build directory is full or read-only, not the source wrong
            raise OSError(reply["errno"], reply["message"])
        raise BuildError(
            f"Cython failed on {name}.pyx ({cmd}):\n"
            f"{_trim(messages)}\n{reply['exception']}: {reply['message']}"
        )
    if reply["errors"] or not c.exists():
        raise BuildError(f"Cython failed on {name}.pyx ({cmd}):\n{_trim(messages)}")
    return messages.strip()


def _descendants(pid: int) -> list[int]:
    """The live processes descended from `pid` (Linux's /proc; none found elsewhere)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(d.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _run_cc(argv: list[str], cwd: Path, name: str) -> str:
    """Run the C compiler; return its (warning) output or raise BuildError with it. When the
    caller is interrupted (Ctrl-C, which a notebook sends to its kernel alone), the compiler
    and the programs it started (cc1, as) are killed, not left running."""
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            errors="replace",
        )  # fmt: skip
    except OSError as e:
        raise BuildError(f"cannot run the C compiler for {name}: {shlex.join(argv)}: {e}") from e
    try:
        stdout, stderr = proc.communicate()
    except BaseException:
        # the compiler's children first, while they are still its own (the compiler may start
        # another meanwhile: look again until there is none), then the compiler
        for _ in range(100):
            kids = _descendants(proc.pid)
            if not kids:
                break
            for pid in kids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
        raise
    output = (stderr + stdout).strip()
    if proc.returncode != 0:
        full = [ln for ln in output.splitlines() if "No space left on device" in ln]
        if full:
            # Reported as the OSError it is, so the message says the disk is full.
            raise OSError(errno.ENOSPC, f"No space left on device (the C compiler: {full[-1]})")
        raise BuildError(
            f"the C compiler failed (exit {proc.returncode}) building {name}:\n"
            f"  {shlex.join(argv)}\n{_trim(output)}"
        )
    return output


def _short(argv: list[str], name: str) -> str:
    """What a compile command does, for progress messages (meta.json records the whole
    command): the compiler and its optimisation level."""
    levels = [a for a in argv if a.startswith("-O")]
    split = "GC_KERNEL=" in " ".join(argv)
    how = "kernels at -O1, the rest at -Og" if split else ", ".join(levels)
    return f"{name}.c with {Path(argv[0]).name} ({how})"
