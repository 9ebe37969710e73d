"""Cython in a process of its own, translating the .pyx files graphc's builds send it.

graphc/runtime/translate.py runs this file as a script (so it imports Cython, never graphc)
and keeps it for the life of the calling process. A request is one line of JSON on stdin
({"pyx", "c", "name", "include_path"}); the reply is one line on stdout: {"errors": n}, or
{"exception", "message", "errno"} when Cython gave up. Cython's messages go to the listing
file beside the .pyx, as they do in-process.

With `--ascii`, Cython's lexer knows only ASCII identifiers, which is all graphc writes (every
name in a generated module is an ASCII identifier: graphc/ir/shapes.is_symbol). Its state
machine then takes about 0.04 s to build instead of about 0.7 s for all of Unicode's
identifier characters, and a cold build starts that much sooner. Comments and strings may
still hold any character. The change stays in this process: Cython in the user's own process
is untouched.
"""

from __future__ import annotations

import json
import signal
import sys


def _ascii_identifiers() -> None:
    """Keep only the ASCII characters of the identifier tables Cython builds its lexer from
    (strings of characters, and of first-last pairs for the ranges)."""
    from Cython.Compiler import Lexicon

    for table in ("unicode_start_ch_any", "unicode_continuation_ch_any"):
        chars = getattr(Lexicon, table, None)
        if isinstance(chars, str):
            setattr(Lexicon, table, "".join(c for c in chars if c.isascii()))
    for table in ("unicode_start_ch_range", "unicode_continuation_ch_range"):
        pairs = getattr(Lexicon, table, None)
        if isinstance(pairs, str) and len(pairs) % 2 == 0:
            kept = [pairs[i : i + 2] for i in range(0, len(pairs), 2) if pairs[i + 1].isascii()]
            setattr(Lexicon, table, "".join(kept))


def _warm_up(Main) -> None:  # noqa: N803 (Cython's module)
    """Translate a two-line module: Cython's first translation sets up its builtins and
    utility code (about half a second), which the caller's passes then run beside."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        pyx = Path(d) / "warm_up.pyx"
        pyx.write_text("cdef double twice(double x) noexcept nogil:\n    return 2 * x\n")
        try:
            Main.compile(str(pyx), full_module_name="warm_up", language_level=3,
                         output_file=str(pyx.with_suffix(".c")), errors_to_stderr=False,
                         use_listing_file=True, cache=False, timestamps=False)  # fmt: skip
        except Exception:  # noqa: BLE001 (a real job reports the same trouble properly)
            pass


def main() -> None:
    # Ctrl-C reaches the whole process group; the calling process decides what it stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if "--ascii" in sys.argv[1:]:
        _ascii_identifiers()
    from Cython.Compiler import Main

    _warm_up(Main)
    for line in sys.stdin:
        job = json.loads(line)
        try:
            result = Main.compile(
                job["pyx"],
                full_module_name=job["name"],
                language_level=3,
                output_file=job["c"],
                include_path=job["include_path"],
                errors_to_stderr=False,
                use_listing_file=True,
                cache=False,
                timestamps=False,
            )
            reply = {"errors": result.num_errors}
        except Exception as e:  # Cython aborts with its own exception types on fatal errors
            errno = e.errno if isinstance(e, OSError) else None
            reply = {"exception": type(e).__name__, "message": str(e), "errno": errno}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
