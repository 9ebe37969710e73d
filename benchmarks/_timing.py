"""Shared timing helpers: warm-up, batch-size calibration, interleaved batches, summaries,
machine facts and a plain-text table."""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Case:
    """One thing to time: `fn(*args, **kwargs)` is a single call."""

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Any:
        return self.fn(*self.args, **self.kwargs)


@dataclass
class Timing:
    """Per-call times of one case, one value per batch, in nanoseconds."""

    calls_per_batch: int
    per_call_ns: list[float]

    @property
    def median_us(self) -> float:
        return statistics.median(self.per_call_ns) / 1e3

    @property
    def p10_us(self) -> float:
        return percentile(self.per_call_ns, 10) / 1e3


@dataclass(frozen=True)
class Plan:
    """How much to run: warm-up time per case, target time per batch, number of batches."""

    warmup_ns: int
    batch_ns: int
    batches: int


FULL = Plan(warmup_ns=300_000_000, batch_ns=20_000_000, batches=30)
QUICK = Plan(warmup_ns=5_000_000, batch_ns=1_000_000, batches=3)


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile of `values`, interpolating linearly between order statistics."""
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of no values")
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def run_batch(case: Case, n: int) -> int:
    """Wall time in ns of `n` back-to-back calls, with the cyclic garbage collector paused
    (as `timeit` does)."""
    fn, args, kwargs = case.fn, case.args, case.kwargs
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for _ in itertools.repeat(None, n):
            fn(*args, **kwargs)
        return time.perf_counter_ns() - t0
    finally:
        if enabled:
            gc.enable()


def warm_up(case: Case, duration_ns: int, min_calls: int = 10) -> float:
    """Call `case` for at least `duration_ns` and `min_calls` calls; the mean ns per call."""
    calls, spent = 0, 0
    while calls < min_calls or spent < duration_ns:
        n = max(1, calls)  # doubling batches keep the clock reads rare
        spent += run_batch(case, n)
        calls += n
    return spent / calls


def calibrate(case: Case, target_ns: int, estimate_ns: float) -> int:
    """Calls per batch so that one batch takes about `target_ns`."""
    n = max(1, round(target_ns / max(estimate_ns, 1.0)))
    took = run_batch(case, n)  # re-estimate once, past the warm-up's first slow calls
    return max(1, round(n * target_ns / max(took, 1)))


def measure(cases: Sequence[Case], plan: Plan) -> dict[str, Timing]:
    """Time every case: warm-up, calibration, then `plan.batches` rounds in which each case
    runs one batch, the order rotating each round so that drift in the machine's speed is
    shared out evenly."""
    if not cases:
        return {}
    sizes = {c.name: calibrate(c, plan.batch_ns, warm_up(c, plan.warmup_ns)) for c in cases}
    out = {c.name: Timing(sizes[c.name], []) for c in cases}
    for r in range(plan.batches):
        k = r % len(cases)
        for c in [*cases[k:], *cases[:k]]:
            n = sizes[c.name]
            out[c.name].per_call_ns.append(run_batch(c, n) / n)
    return out


def _noop(a0: Any = None, a1: Any = None, a2: Any = None, a3: Any = None, a4: Any = None,
          a5: Any = None) -> None:  # fmt: skip
    return None


def harness_floor_us(plan: Plan) -> dict[str, float]:
    """Median µs per call of a Python no-op taking six arguments, passed positionally and by
    keyword: the harness's own cost, which every row includes."""
    names = ("a0", "a1", "a2", "a3", "a4", "a5")
    cases = [
        Case("positional", _noop, tuple(range(6))),
        Case("keyword", _noop, (), dict(zip(names, range(6), strict=True))),
    ]
    return {k: t.median_us for k, t in measure(cases, plan).items()}


def version_of(dist: str) -> str:
    """The installed version of distribution `dist`, or "not installed"."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    """The CPU model named in /proc/cpuinfo (or by the platform module elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(packages: Sequence[str]) -> dict[str, Any]:
    """Facts that change the numbers: CPU, cores, OS, Python and package versions."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "packages": {p: version_of(p) for p in packages},
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "openblas_kernels": openblas_kernels(),
        "loadavg_1min_start": load_average(),
    }


def openblas_kernels() -> str | None:
    """The kernels the OpenBLAS bundled with NumPy runs (the one graphc's products call), as
    OpenBLAS names them ("Haswell", "SkylakeX"), asked of the library itself; None without it."""
    import ctypes

    import numpy as np

    for path in sorted(Path(np.__file__).parent.parent.glob("numpy.libs/libscipy_openblas*.so")):
        lib = ctypes.CDLL(str(path))  # loaded already by NumPy: the same library
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename"):
            f = getattr(lib, name, None)
            if f is not None:
                f.restype = ctypes.c_char_p
                return f().decode()
    return None


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS does not report one."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = (str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def format_fields(fields: dict[str, str], width: int = 100) -> list[str]:
    """`label: text` lines, the texts aligned after the longest label and wrapped at `width`."""
    indent = max(map(len, fields), default=0) + 3
    out: list[str] = []
    for label, text in fields.items():
        out += textwrap.wrap(
            text,
            width,
            initial_indent=f"{label}:".ljust(indent),
            subsequent_indent=" " * indent,
            break_on_hyphens=False,
        )
    return out


def fmt_us(value: float) -> str:
    """Microseconds: 0.1 resolution from 100 up, 0.01 from 1, else 0.001."""
    return f"{value:.1f}" if value >= 100 else f"{value:.2f}" if value >= 1 else f"{value:.3f}"


ROOT = Path(__file__).resolve().parents[1]


def run_child(
    module: str, spec: dict[str, Any], env_extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run `python -m <module> --child <spec as JSON>` in a fresh interpreter with this
    process's environment (the repository on PYTHONPATH, JAX on the CPU, and `env_extra`); the
    JSON record it prints last, or {"error": why}."""
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.update(env_extra or {})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", module, "--child", json.dumps(spec)]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)[:400]}


# One background loader: short-lived busy Python processes one after another, the load a test
# suite or a build's compiler processes put on a shared machine.
LOADER = (
    "import subprocess, sys\n"
    "while True:\n"
    "    subprocess.run([sys.executable, '-c', 'sum(range(4_000_000))'])\n"
)


@contextlib.contextmanager
def background_load(n: int):
    """`n` loaders (above) running for as long as the block does."""
    procs = [
        subprocess.Popen([sys.executable, "-c", LOADER], start_new_session=True) for _ in range(n)
    ]
    try:
        yield
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
