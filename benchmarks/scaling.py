"""How graphc's compile time and generated-source size grow with the size of the graph.

The workload is a chain of `steps` blocks `h = tanh(h * w)` on an (N, 8) input, with a matrix
product `h = h @ W` after every fourth block so that the chain is not one fused loop, and the
loss `sum(h)`; `steps` is chosen so that the forward graph has about n nodes. For each n the graph
is compiled with `gc.compile` into a fresh, empty build directory (a cold build), and the script
reports the node counts before and after differentiation, the seconds of each pure-Python stage,
the generated .pyx's lines and bytes, Cython's and the C compiler's seconds and the size of the
.so; then the per-node ratios and the least-squares slope of log(time) and log(size) against
log(n): a slope near 1 means linear growth, near 2 quadratic.

    python -m benchmarks.scaling                         # n = 100, 1000, 10000 (can take an hour)
    python -m benchmarks.scaling --quick                 # smoke run: n = 30, 100, about a minute
    python -m benchmarks.scaling --sizes 100,1000,3000   # other sizes (any number of them)
    python -m benchmarks.scaling --no-build              # only the pure-Python stages, no Cython/cc
    python -m benchmarks.scaling --json out.json         # also save every number as JSON
    python -m benchmarks.scaling --plot scaling.png      # also draw the log-log plot (matplotlib)
    python -m benchmarks.scaling --build-dir DIR         # make the fresh build directories in DIR

`--opt-level N` is offered only when `gc.compile` takes an `opt_level` keyword (checked with
inspect.signature); it is passed through unchanged.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import graphc as gc
import graphc.compiler
from benchmarks._timing import format_fields, format_table, load_average, machine_info

PACKAGES = ("graphc", "numpy", "networkx", "Cython")
DEFAULT_SIZES = (100, 1_000, 10_000)
QUICK_SIZES = (30, 100)
WIDTH = 8  # the chain's feature width: x is (N, WIDTH), w is (WIDTH,), W is (WIDTH, WIDTH)
MATMUL_EVERY = 4  # a matrix product after every this many tanh(h * w) blocks
REPEAT_BUDGET_S = 3.0  # the Python stages are rerun while another run fits in this many seconds
REPEAT_MAX = 5  # runs of the Python stages at most (the fastest is reported)

# The functions `graphc.compiler.run_stages` calls through its module's namespace, in pipeline
# order, with the name each is reported under. The ones this graphc lacks are skipped; the time
# run_stages spends outside all of them (cache-key-free glue: arena sizes, metadata) is "other".
STAGE_FUNCTIONS = {
    "verify": "verify",
    "with_dtype": "dtype",
    "simplify": "simplify",
    "grad": "grad",
    "choose_checkpoints": "checkpoint",
    "schedule": "schedule",
    "fuse": "fuse",
    "plan_memory": "plan memory",
    "verify_plan": "verify plan",
    "lower": "lower",
    "render": "render",
}
OTHER = "other"


# --- the workload ---------------------------------------------------------------------------


def chain_graph(steps: int, name: str) -> gc.Graph:
    """`steps` blocks `h = tanh(h * w)` from the input x, a matmul by W after every
    MATMUL_EVERY of them, and `loss = sum(h)`."""
    g = gc.Graph(name)
    x = g.input("x", shape=("N", WIDTH))
    w = g.param("w", shape=(WIDTH,))
    W = g.param("W", shape=(WIDTH, WIDTH))
    h = x
    for i in range(steps):
        h = gc.tanh(h * w)
        if i % MATMUL_EVERY == MATMUL_EVERY - 1:
            h = gc.matmul(h, W)
    g.output("loss", gc.sum(h))
    return g


def node_count(g: gc.Graph) -> int:
    return g.nx.number_of_nodes()


def steps_for(n: int) -> int:
    """The number of blocks that gives a forward graph of about `n` nodes, from the node counts
    of an empty chain and of one period of MATMUL_EVERY blocks."""
    base = node_count(chain_graph(0, "probe"))
    period = node_count(chain_graph(MATMUL_EVERY, "probe")) - base
    return max(1, round((n - base) * MATMUL_EVERY / period))


# --- timing the pure-Python stages ----------------------------------------------------------


@dataclass
class StageClock:
    """Self time per stage: a wrapped function's time minus that of wrapped functions it calls."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    _open: list[float] = field(default_factory=list)  # time spent in children, per open call

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.seconds.setdefault(label, 0.0)
        self.calls.setdefault(label, 0)

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._open.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.perf_counter() - t0
                children = self._open.pop()
                self.seconds[label] += took - children
                self.calls[label] += 1
                if self._open:
                    self._open[-1] += took

        return timed

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


@contextmanager
def timed_stages(clock: StageClock) -> Iterator[None]:
    """Wrap run_stages and the stage functions it calls in graphc.compiler's namespace (so
    `gc.compile` is timed stage by stage as it runs); restore them afterwards."""
    mod = graphc.compiler
    names = {"run_stages": OTHER, **STAGE_FUNCTIONS}
    saved = {name: getattr(mod, name) for name in names if callable(getattr(mod, name, None))}
    try:
        for name, fn in saved.items():
            setattr(mod, name, clock.wrap(names[name], fn))
        yield
    finally:
        for name, fn in saved.items():
            setattr(mod, name, fn)


# --- one size -------------------------------------------------------------------------------


@dataclass
class Record:
    """Everything measured for one size."""

    n: int  # the size asked for
    steps: int
    nodes: int  # forward graph as built
    nodes_simplified: int  # forward graph after graphc's simplify
    joint_nodes: int  # after differentiation and simplify (`stages.joint`)
    program_steps: dict[str, int]  # scheduled (fused) steps per generated function
    graph_build_s: float  # building the graph with the API (not part of compiling)
    stage_s: dict[str, float]  # self seconds per pure-Python stage
    python_s: float  # run_stages in total (the fastest of python_runs runs)
    python_runs: int
    python_in_compile_s: float  # the run inside gc.compile (or the first run)
    pyx_lines: int
    pyx_bytes: int
    compile_s: float | None = None  # gc.compile in total
    cython_s: float | None = None
    cc_s: float | None = None
    build_s: float | None = None  # graphc's build_module call (Cython, cc, cache bookkeeping)
    so_bytes: int | None = None
    cache_hit: bool | None = None
    cc_command: list[str] | None = None

    @property
    def load_s(self) -> float | None:
        """gc.compile's time outside run_stages and the build: the import of the module."""
        if self.compile_s is None or self.build_s is None:
            return None
        return self.compile_s - self.python_in_compile_s - self.build_s


def compile_kwargs(opt_level: int | None) -> dict[str, Any]:
    return {} if opt_level is None else {"opt_level": opt_level}


def measure_size(
    n: int, build: bool, parent: Path | None, opt_level: int | None, steps: int | None = None
) -> Record:
    """Build the chain of about `n` nodes (or of `steps` blocks) and compile it (cold) or only
    run the Python stages."""
    steps = steps_for(n) if steps is None else steps
    t0 = time.perf_counter()
    g = chain_graph(steps, f"scale_{n}")
    graph_build_s = time.perf_counter() - t0
    kwargs = compile_kwargs(opt_level)
    built = None
    compile_s = None
    clock = StageClock()
    with timed_stages(clock):
        if build:
            with tempfile.TemporaryDirectory(prefix=f"graphc-scaling-{n}-", dir=parent) as tmp:
                t0 = time.perf_counter()
                m = gc.compile(g, out_dir=tmp, **kwargs)
                compile_s = time.perf_counter() - t0
            st, built = m.stages, m.built
        else:
            st = graphc.compiler.run_stages(g, **kwargs)
    in_compile_s = clock.total
    # Small sizes take milliseconds, which one run measures poorly: run the stages again while
    # that is cheap and keep the fastest run (the 10**4 chain gets only the one in gc.compile).
    spent, runs = clock.total, 1
    while runs < REPEAT_MAX and spent + clock.total < REPEAT_BUDGET_S:
        again = StageClock()
        with timed_stages(again):
            graphc.compiler.run_stages(g, **kwargs)
        spent, runs = spent + again.total, runs + 1
        clock = min(clock, again, key=lambda c: c.total)
    meta = (built.meta if built is not None else None) or {}
    build_seconds = meta.get("build_seconds") or {}
    return Record(
        n=n,
        steps=steps,
        nodes=node_count(g),
        nodes_simplified=node_count(st.graph),
        joint_nodes=node_count(st.joint),
        program_steps={name: len(prog.steps) for name, (prog, _) in st.programs.items()},
        graph_build_s=graph_build_s,
        stage_s={k: v for k, v in clock.seconds.items() if clock.calls[k]},
        python_s=clock.total,
        python_runs=runs,
        python_in_compile_s=in_compile_s,
        pyx_lines=st.source.count("\n"),
        pyx_bytes=len(st.source.encode()),
        compile_s=compile_s,
        cython_s=build_seconds.get("cython"),
        cc_s=build_seconds.get("cc"),
        build_s=None if built is None else built.seconds,
        so_bytes=meta.get("so_bytes"),
        cache_hit=None if built is None else bool(built.cache_hit),
        cc_command=(meta.get("commands") or {}).get("cc"),
    )


# --- growth ---------------------------------------------------------------------------------


def slope(xs: Sequence[float], ys: Sequence[float | None]) -> float | None:
    """The least-squares slope of log(y) against log(x), or None without two positive points
    at distinct x."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if y and y > 0 and x > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


# Quantities whose growth is fitted: label -> (unit, value of a record).
METRICS: dict[str, tuple[str, Callable[[Record], float | None]]] = {
    "joint nodes": ("nodes", lambda r: r.joint_nodes),
    "Python stages (run_stages)": ("s", lambda r: r.python_s),
    "Cython": ("s", lambda r: r.cython_s),
    "C compiler": ("s", lambda r: r.cc_s),
    "gc.compile total": ("s", lambda r: r.compile_s),
    ".pyx lines": ("lines", lambda r: r.pyx_lines),
    ".pyx bytes": ("bytes", lambda r: r.pyx_bytes),
    ".so bytes": ("bytes", lambda r: r.so_bytes),
}
TIME_PARTS = ("Python stages (run_stages)", "Cython", "C compiler")
SUPERLINEAR = 1.2  # a slope above this between the largest two sizes is called superlinear


@dataclass
class Growth:
    """Fitted slopes: over all sizes, and between the two largest (where fixed costs such as the
    module's boilerplate matter least)."""

    all_sizes: dict[str, float | None]
    largest_two: dict[str, float | None]
    stages_all: dict[str, float | None]
    stages_largest_two: dict[str, float | None]


def growth(records: Sequence[Record], stages: Sequence[str]) -> Growth:
    by_n = sorted(records, key=lambda r: r.nodes)
    top = by_n[-2:]

    def fit(rs: Sequence[Record], get: Callable[[Record], float | None]) -> float | None:
        return slope([r.nodes for r in rs], [get(r) for r in rs])

    def stage(name: str) -> Callable[[Record], float | None]:
        return lambda r: r.stage_s.get(name)

    return Growth(
        all_sizes={k: fit(by_n, get) for k, (_, get) in METRICS.items()},
        largest_two={k: fit(top, get) for k, (_, get) in METRICS.items()},
        stages_all={s: fit(by_n, stage(s)) for s in stages},
        stages_largest_two={s: fit(top, stage(s)) for s in stages},
    )


def fastest(slopes: dict[str, float | None], among: Sequence[str]) -> tuple[str, float] | None:
    known = [(k, v) for k in among if (v := slopes.get(k)) is not None]
    return max(known, key=lambda kv: kv[1]) if known else None


# --- the report -----------------------------------------------------------------------------


def fmt_s(value: float | None) -> str:
    """Seconds: 3-4 significant digits."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def fmt_int(value: int | float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_slope(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fmt_per(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def per_node(value: float | None, r: Record, scale: float = 1.0) -> float | None:
    return None if value is None else value * scale / r.nodes


def sizes_table(records: Sequence[Record]) -> str:
    header = ["n", "nodes", "joint", "vg steps", "python s", "cython s", "cc s", "total s",
              "pyx lines", "pyx bytes", "so bytes"]  # fmt: skip
    rows = [
        [
            fmt_int(r.n),
            fmt_int(r.nodes),
            fmt_int(r.joint_nodes),
            fmt_int(r.program_steps.get("value_and_grad")),
            fmt_s(r.python_s),
            fmt_s(r.cython_s),
            fmt_s(r.cc_s),
            fmt_s(r.compile_s),
            fmt_int(r.pyx_lines),
            fmt_int(r.pyx_bytes),
            fmt_int(r.so_bytes),
        ]
        for r in records
    ]
    return format_table(header, rows)


def stages_table(records: Sequence[Record], stages: Sequence[str], g: Growth) -> str:
    header = ["Python stage (self s)", *(f"n={r.n:,}" for r in records), "slope", "top-2 slope"]
    rows = [
        [
            s,
            *(fmt_s(r.stage_s.get(s)) for r in records),
            fmt_slope(g.stages_all.get(s)),
            fmt_slope(g.stages_largest_two.get(s)),
        ]
        for s in stages
    ]
    rows.append(["run_stages total", *(fmt_s(r.python_s) for r in records),
                 fmt_slope(g.all_sizes["Python stages (run_stages)"]),
                 fmt_slope(g.largest_two["Python stages (run_stages)"])])  # fmt: skip
    return format_table(header, rows)


def per_node_table(records: Sequence[Record]) -> str:
    header = ["n", "joint/fwd", "python ms", "cython ms", "cc ms", "pyx lines", "pyx bytes",
              "so bytes"]  # fmt: skip
    rows = [
        [
            fmt_int(r.n),
            fmt_per(r.joint_nodes / r.nodes, 2),
            fmt_per(per_node(r.python_s, r, 1e3), 3),
            fmt_per(per_node(r.cython_s, r, 1e3), 3),
            fmt_per(per_node(r.cc_s, r, 1e3), 3),
            fmt_per(per_node(r.pyx_lines, r), 1),
            fmt_per(per_node(r.pyx_bytes, r), 0),
            fmt_per(per_node(r.so_bytes, r), 0),
        ]
        for r in records
    ]
    return format_table(header, rows)


def slopes_table(g: Growth) -> str:
    header = ["quantity vs forward nodes", "slope (all sizes)", "slope (largest two)"]
    rows = [
        [k, fmt_slope(g.all_sizes[k]), fmt_slope(g.largest_two[k])]
        for k in METRICS
        if g.all_sizes[k] is not None
    ]
    return format_table(header, rows)


def verdict(g: Growth) -> list[str]:
    """Which part of the compile time grows fastest, and whether anything is superlinear."""
    out = []
    for label, slopes in (("all sizes", g.all_sizes), ("the largest two", g.largest_two)):
        top = fastest(slopes, TIME_PARTS)
        if top is None:
            continue
        parts = ", ".join(
            f"{k} {fmt_slope(slopes[k])}" for k in TIME_PARTS if slopes[k] is not None
        )
        out.append(f"fastest-growing part of the compile time over {label}: {top[0]} "
                   f"(slope {top[1]:.2f}; {parts})")  # fmt: skip
    stage = fastest(g.stages_largest_two, list(g.stages_largest_two))
    if stage is not None:
        out.append(f"fastest-growing Python stage between the largest two sizes: {stage[0]} "
                   f"(slope {stage[1]:.2f})")  # fmt: skip
    superlinear = [k for k, v in g.largest_two.items() if v is not None and v > SUPERLINEAR]
    if superlinear:
        out.append(f"superlinear (slope > {SUPERLINEAR} between the largest two sizes): "
                   + ", ".join(f"{k} {g.largest_two[k]:.2f}" for k in superlinear))  # fmt: skip
    else:
        out.append(f"nothing grows faster than slope {SUPERLINEAR} between the largest two sizes")
    return [ln for text in out for ln in textwrap.wrap(text, 100, subsequent_indent="  ")]


def describe(
    info: dict[str, Any], args: argparse.Namespace, records: Sequence[Record]
) -> list[str]:
    """The header: machine, versions, the workload and the method."""
    cc = next((r.cc_command for r in records if r.cc_command), None)
    hits = [fmt_int(r.n) for r in records if r.cache_hit]
    fields = {
        "machine": f"{info['cpu']}, {info['cores']} cores ({info['cores_usable']} usable), "
        f"{info['platform']}",
        "python": info["python"],
        "versions": ", ".join(f"{k} {v}" for k, v in info["packages"].items()),
        "model": f"x (N, {WIDTH}) -> `steps` x h = tanh(h * w), w ({WIDTH},), with h = h @ W, "
        f"W ({WIDTH}, {WIDTH}), after every {MATMUL_EVERY}th -> loss = sum(h); steps chosen "
        "so that the forward graph has about n nodes",
        "method": (
            "--no-build: graphc.compiler.run_stages only"
            if args.no_build
            else "gc.compile(g, out_dir=<fresh empty directory>): a cold build for every n"
        )
        + "; Python stages timed by wrapping the functions run_stages calls (self time; "
        f"the fastest of up to {REPEAT_MAX} runs while they take under {REPEAT_BUDGET_S:g} s in "
        "all, else the one in gc.compile; the cyclic GC left on, as in normal use); "
        "Cython's and the C compiler's seconds from the build's meta.json"
        + (" (--quick: small sizes, a smoke run)" if args.quick else ""),
        "warm-up": f"one cold compile of a {MATMUL_EVERY}-block chain first, not reported "
        f"({fmt_s(info.get('warmup_s'))} s), so that one-time costs (imports, templates) are "
        "not charged to the first size",
        "compiler": " ".join(cc) if cc else "-",
        "options": ", ".join(f"{k}={v}" for k, v in compile_kwargs(args.opt_level).items())
        or "gc.compile's defaults"
        + ("" if accepts_opt_level() else " (gc.compile takes no opt_level: no --opt-level)"),
        "load": f"1-minute load average {fmt_load(info['loadavg_1min_start'])} at the start, "
        f"{fmt_load(info['loadavg_1min_end'])} at the end (this run adds about 1; more means "
        "other processes competed for the 2 cores and the times are inflated)",
    }
    if hits:
        fields["WARNING"] = f"the build was a cache hit for n = {', '.join(hits)}, not cold"
    return format_fields(fields)


def fmt_load(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def report(
    info: dict[str, Any],
    args: argparse.Namespace,
    records: Sequence[Record],
    failed: dict[int, str],
    g: Growth | None,
) -> str:
    lines = [
        "graphc compile-time scaling: a tanh/matmul chain of about n forward nodes, compiled",
        "cold for each n; is compile time and generated size linear in the graph's size?",
        "",
        *describe(info, args, records),
    ]
    if records:
        stages = stage_order(records)
        lines += [
            "",
            sizes_table(records),
            "",
            "nodes: forward graph as built; joint: after differentiation and simplify (what the",
            "code is generated from); vg steps: scheduled steps of value_and_grad after fusion;",
            "python s: graphc.compiler.run_stages; total s: gc.compile (also the import).",
        ]
        if g is not None:
            lines += ["", stages_table(records, stages, g)]
        lines += ["", "per forward node:", per_node_table(records)]
        if g is not None:
            lines += [
                "",
                slopes_table(g),
                "",
                "slope: least squares of log(quantity) on log(forward nodes); 1 = linear, 2 =",
                "quadratic. Fixed costs (the module's boilerplate) flatten it at small n.",
                *verdict(g),
            ]
    if failed:
        lines += ["", "FAILED:", *(f"  n={n:,}: {why}" for n, why in failed.items())]
    return "\n".join(lines)


def stage_order(records: Sequence[Record]) -> list[str]:
    """The stages any record timed, in pipeline order, "other" last."""
    seen = {s for r in records for s in r.stage_s}
    return [s for s in [*STAGE_FUNCTIONS.values(), OTHER] if s in seen]


def plot(path: Path, records: Sequence[Record]) -> str:
    """Draw times and sizes against forward nodes on log-log axes; a note on what happened."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "--plot: matplotlib is not installed; no plot drawn"
    xs = [r.nodes for r in records]
    fig, (ax_t, ax_b) = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, keys, unit in (
        (ax_t, [*TIME_PARTS, "gc.compile total"], "seconds"),
        (ax_b, [".pyx bytes", ".so bytes", "joint nodes"], "bytes / nodes"),
    ):
        for key in keys:
            pts = [(x, y) for x, r in zip(xs, records, strict=True) if (y := METRICS[key][1](r))]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=key)
        if ax.get_lines():  # a slope-1 guide through the last point of the first line
            x1, y1 = ax.get_lines()[0].get_xdata()[-1], ax.get_lines()[0].get_ydata()[-1]
            ax.plot([min(xs), x1], [y1 * min(xs) / x1, y1], "k:", label="slope 1 (linear)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("forward graph nodes")
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax_t.set_title("compile time (cold build)")
    ax_b.set_title("generated code")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"saved {path}"


# --- the command line -----------------------------------------------------------------------


def accepts_opt_level() -> bool:
    """Whether gc.compile (or graphc.compiler.compile, which it forwards to) has `opt_level`."""
    for fn in (gc.compile, graphc.compiler.compile):
        if "opt_level" in inspect.signature(fn).parameters:
            return True
    return False


def parse_sizes(text: str) -> list[int]:
    sizes = [int(float(s)) for s in text.split(",") if s.strip()]
    if not sizes or min(sizes) < 10:
        raise argparse.ArgumentTypeError("sizes must be integers >= 10, e.g. 100,1000,10000")
    return sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.scaling",
        description="How graphc's compile time and generated-source size grow with graph size.",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"n in {','.join(map(str, QUICK_SIZES))}: a smoke run (about a minute)",
    )
    ap.add_argument(
        "--sizes",
        type=parse_sizes,
        metavar="N,N,...",
        help=f"forward node counts to compile (default {','.join(map(str, DEFAULT_SIZES))})",
    )
    ap.add_argument(
        "--no-build",
        action="store_true",
        help="run only the pure-Python stages (graphc.compiler.run_stages), no Cython or cc",
    )
    ap.add_argument("--json", metavar="FILE", type=Path, help="also save the numbers here")
    ap.add_argument(
        "--plot", metavar="FILE.png", type=Path, help="draw the log-log plot (needs matplotlib)"
    )
    ap.add_argument(
        "--build-dir",
        metavar="DIR",
        type=Path,
        help="make each fresh build directory inside DIR (default: the system's temp dir); "
        "each is removed after its build",
    )
    if accepts_opt_level():
        ap.add_argument(
            "--opt-level", type=int, metavar="N", help="passed to gc.compile(opt_level=N)"
        )
    args = ap.parse_args(argv)
    args.opt_level = getattr(args, "opt_level", None)
    if args.sizes is None:
        args.sizes = list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    return args


def note(text: str) -> None:
    """Progress on stderr, so a long run shows where it is."""
    print(text, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Compile every size, print the report, optionally save JSON and a plot; 1 on failure."""
    args = parse_args(argv)
    info = machine_info(PACKAGES)
    if args.build_dir is not None:
        args.build_dir.mkdir(parents=True, exist_ok=True)
    records: list[Record] = []
    failed: dict[int, str] = {}
    # One-time costs (importing Cython, loading the templates, the compiler's first start) would
    # otherwise be charged to the first size: pay them on a chain of one period first.
    note("warm-up: compiling a chain of one period (not reported) ...")
    t0 = time.perf_counter()
    measure_size(0, not args.no_build, args.build_dir, args.opt_level, steps=MATMUL_EVERY)
    info["warmup_s"] = time.perf_counter() - t0
    for n in sorted(args.sizes):
        note(f"n={n:,}: compiling ...")
        try:
            r = measure_size(n, not args.no_build, args.build_dir, args.opt_level)
        except Exception as exc:
            traceback.print_exc()
            failed[n] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            continue
        records.append(r)
        note(f"n={n:,}: {r.nodes:,} nodes, {r.joint_nodes:,} joint; Python stages "
             f"{fmt_s(r.python_s)} s, cython {fmt_s(r.cython_s)} s, cc {fmt_s(r.cc_s)} s, "
             f"{r.pyx_lines:,} pyx lines")  # fmt: skip
    info["loadavg_1min_end"] = load_average()
    g = growth(records, stage_order(records)) if len(records) >= 2 else None
    print(report(info, args, records, failed, g))
    if args.plot is not None and records:
        print(plot(args.plot, records))
    if args.json is not None:
        doc = {
            "benchmark": "scaling",
            "mode": "quick" if args.quick else "full",
            "build": not args.no_build,
            "machine": info,
            "model": {"width": WIDTH, "matmul_every": MATMUL_EVERY},
            "compile_kwargs": compile_kwargs(args.opt_level),
            "sizes": list(args.sizes),
            "records": [{**asdict(r), "load_s": r.load_s} for r in records],
            "slopes": None if g is None else asdict(g),
            "failed": {str(n): why for n, why in failed.items()},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"saved {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
