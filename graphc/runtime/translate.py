"""Cython's translation of a .pyx into C, for builds: done by a worker process
(graphc/runtime/cython_worker.py) that this process starts at its first build and keeps.
gc.compile starts it before its passes (start_soon), so that Cython starts up beside them,
and stops it again when the module was cached after all (stop_unused).

Cython takes about a second to start (its lexer's state machine, its builtins), paid once per
worker as it would be once per process in-process. In a process of its own it can start
faster: its lexer then needs only the ASCII identifiers graphc writes, which saves most of that
second on every cold build in a fresh process, and leaves the user's process without Cython's
state and memory. A source that is not all ASCII (a comment quoting a non-ASCII file name)
goes to a second worker with Cython's full lexer.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from graphc.errors import BuildError

_SCRIPT = Path(__file__).with_name("cython_worker.py")


class _Worker:
    """One worker process and its pipes; `ask` sends a request and waits for the reply."""

    def __init__(self, ascii_only: bool) -> None:
        self.served = 0  # requests sent to it
        self.stderr: IO[bytes] = tempfile.TemporaryFile()
        # -P: the script's directory (graphc/runtime) does not go on the worker's sys.path
        argv = [sys.executable, "-P", str(_SCRIPT), *(["--ascii"] if ascii_only else [])]
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                text=True,
                encoding="utf-8",
            )
        except OSError as e:
            raise BuildError(f"cannot start Cython ({' '.join(argv)}): {e}") from e

    def ask(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.served += 1
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            self.proc.wait()
            self.stderr.seek(0)
            said = self.stderr.read().decode(errors="replace").strip()[-3000:]
            raise BuildError(
                f"Cython's worker process ended (exit {self.proc.returncode}) while "
                f"translating {Path(job['pyx']).name}" + (f":\n{said}" if said else "")
            )
        return json.loads(line)

    def close(self) -> None:
        """Stop the worker (it keeps nothing worth a tidy exit, and may be starting up)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.stderr):
            with contextlib.suppress(OSError):  # a request the worker never read
                if f is not None:
                    f.close()


_LOCK = threading.Lock()  # one request at a time per worker
_WORKERS: dict[bool, _Worker] = {}


def _live_worker(ascii_only: bool) -> _Worker:
    """The worker for sources that are (not) all ASCII, started if need be; hold _LOCK."""
    worker = _WORKERS.get(ascii_only)
    if worker is None or worker.proc.poll() is not None:
        worker = _WORKERS[ascii_only] = _Worker(ascii_only)
    return worker


def start_soon() -> bool:
    """Start the (ASCII) worker now if there is none, so that Cython starts up while the
    caller renders its source; True if this started it. See stop_unused. A worker that cannot
    start is left for the build, if there is one, to report."""
    with _LOCK:
        if True in _WORKERS and _WORKERS[True].proc.poll() is None:
            return False
        try:
            _live_worker(True)
        except BuildError:
            return False
        return True


def stop_unused() -> None:
    """Stop the workers that have translated nothing (started by start_soon for a build that
    then hit the cache), so that they do not take a core from what the caller does next."""
    with _LOCK:
        for key, worker in list(_WORKERS.items()):
            if not worker.served:
                del _WORKERS[key]
                worker.close()


def translate(pyx: Path, c: Path, name: str, include_path: list[str]) -> dict[str, Any]:
    """Translate `pyx` into `c` as module `name`. The reply: {"errors": n} (Cython's messages
    are in the listing file beside `pyx`), or {"exception", "message", "errno"} when Cython
    gave up. Raises BuildError when the worker cannot run."""
    ascii_only = pyx.read_bytes().isascii()
    job = {"pyx": str(pyx), "c": str(c), "name": name, "include_path": include_path}
    with _LOCK:
        worker = _live_worker(ascii_only)
        try:
            return worker.ask(job)
        except BaseException:
            # A reply may still be on its way (an interrupt), or the worker is gone: the next
            # build starts a new one.
            del _WORKERS[ascii_only]
            worker.close()
            raise


def _forget() -> None:
    """In a forked child: the parent's workers and lock are not this process's to use."""
    global _LOCK
    _LOCK = threading.Lock()
    _WORKERS.clear()


@atexit.register
def _close_all() -> None:
    for worker in list(_WORKERS.values()):
        worker.close()
    _WORKERS.clear()


os.register_at_fork(after_in_child=_forget)
