"""The `graphc` command line: show a model at a stage, check its gradients."""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import graphc as gc
from graphc.errors import GraphcError, InputError
from graphc.ir.shapes import FLOAT_DTYPES, bind_shape, shape_symbols
from graphc.modelfile import load_model
from graphc.passes.dtype import with_dtype


def default_of(g: gc.Graph) -> str:
    """The output to differentiate: `loss` if there is one, else the only scalar output."""
    from graphc.compiler import default_of as pick

    of = pick(g)
    if of is None:
        scalars = [k for k, n in g.outputs.items() if g.nx.nodes[n]["shape"] == ()]
        raise InputError(f"graph {g.name!r} has scalar outputs {scalars}; choose one with --of")
    return of


def random_inputs(g: gc.Graph, size: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for every input of `g`, each symbolic dimension bound to `size`: params
    made by a gc.nn layer from its initialiser, other floats uniform in [0.1, 0.9], bools at
    random, and ints 0 (a valid label or index of any axis that is not empty)."""
    rng = np.random.default_rng(seed)
    out = gc.nn.init_params(g, seed=seed)
    for name, n in g.input_ids().items():
        a = g.nx.nodes[n]
        if name in out:
            continue
        shape = bind_shape(a["shape"], dict.fromkeys(shape_symbols(a["shape"]), size))
        if a["dtype"] == "bool":
            out[name] = rng.random(shape) < 0.5
        elif a["dtype"] in FLOAT_DTYPES:
            out[name] = rng.uniform(0.1, 0.9, shape).astype(a["dtype"])
        else:
            out[name] = np.zeros(shape, dtype=a["dtype"])
    return out


def cmd_show(args: argparse.Namespace) -> int:
    g = load_model(args.model, args.graph)
    gc.verify(g)
    if args.stage == "graph":
        print(g)
    elif args.stage == "simplified":
        print(gc.simplify(g))
    else:
        print(gc.simplify(gc.grad(g, of=args.of or default_of(g))))
    return 0


def _kib(nbytes: int) -> str:
    return f"{nbytes / 1024:.1f} KiB"


FD_SAMPLES = 32  # elements of each param whose finite difference a check computes


def cmd_check(args: argparse.Namespace) -> int:
    from graphc.gradcheck import check_grad

    g = with_dtype(load_model(args.model, args.graph), "float64")
    of = args.of or default_of(g)
    samples = args.samples or None
    result = check_grad(g, random_inputs(g, args.size, args.seed), of=of, samples=samples)
    print(result)
    return 0 if result.ok else 1


def _verdict(what: str, results: list) -> tuple[bool, list[str]]:
    """One line saying whether every comparison of `results` holds, then each that does not."""
    ok = all(r.ok for r in results)
    worst = max((r.ratio for r in results), default=0.0)
    line = f"check: {what}: {'ok' if ok else 'FAILED'} (worst at {worst:.2g} of the tolerance)"
    return ok, [line, *(f"  {r}" for r in results if not r.ok)]


def check_compiled(
    m, g: gc.Graph, dtype: str, size: int, seed: int, optimizer=None
) -> tuple[bool, str]:
    """Run `m` on random inputs; compare it with the interpreter (in `dtype`), the model's
    gradients (in float64) with finite differences, and its train_step (with `optimizer`) with
    the NumPy optimiser. Every comparison follows graphc.gradcheck's rule; the verdict is True
    when all hold."""
    from graphc.gradcheck import TOLERANCE, check_grad, compare

    ref_graph = with_dtype(g, dtype)
    inputs = random_inputs(ref_graph, size, seed)
    tol = TOLERANCE[dtype]
    rule = f"max |a-b| <= {tol.atol:g} + {tol.rtol:g} * max |ref| per array"
    want = gc.evaluate(ref_graph, inputs)
    results = [compare(k, v, want[k], tol) for k, v in m.forward(**inputs).items()]
    checks = []
    if hasattr(m, "value_and_grad") and m.WRT:
        _, grads = m.value_and_grad(**inputs)
        _, want_grads = gc.value_and_grad(ref_graph, inputs, of=m.OF, wrt=list(m.WRT))
        results += [compare(f"d{m.OF}/d{k}", v, want_grads[k], tol) for k, v in grads.items()]
        checks.append(_verdict(f"outputs and gradients agree with the interpreter ({rule})",
                               results))  # fmt: skip
        g64 = with_dtype(g, "float64")
        fd = check_grad(g64, random_inputs(g64, size, seed), of=m.OF, wrt=list(m.WRT),
                        samples=FD_SAMPLES, seed=seed)  # fmt: skip
        checks.append(_verdict(
            f"float64 gradients agree with central finite differences (up to {FD_SAMPLES} "
            "elements of each)", list(fd.inputs.values())
        ))  # fmt: skip
    else:
        checks.append(_verdict(f"outputs agree with the interpreter ({rule})", results))
    if optimizer is not None:
        checks.append(_check_train_step(m, optimizer, inputs, tol))
    return all(ok for ok, _ in checks), "\n".join(line for _, lines in checks for line in lines)


def _check_train_step(m, opt, inputs: dict, tol) -> tuple[bool, list[str]]:
    """One train_step against value_and_grad and the NumPy optimiser, on copies."""
    from graphc.gradcheck import compare

    params = {k: inputs[k].copy() for k in m.WRT}
    state = m.init_state(params)
    want_p, want_s = {k: v.copy() for k, v in params.items()}, opt.init(params)
    m.train_step(**{**inputs, **params, **state})
    _, grads = m.value_and_grad(**{**inputs, **want_p})
    opt.step(want_p, grads, want_s)
    results = [compare(k, params[k], want_p[k], tol) for k in params]
    results += [compare(k, state[k], want_s[k], tol) for k in state]
    return _verdict(f"train_step updates the params and state as {opt} does in NumPy", results)


def _emit(spec: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in spec.split(",") if x.strip())
    bad = [x for x in names if x not in ("jvp", "hvp")]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"choose from jvp, hvp (comma-separated), not {spec!r}")
    return names


def cmd_compile(args: argparse.Namespace) -> int:
    from graphc.compiler import compile as compile_model
    from graphc.compiler import run_stages

    g = load_model(args.model, args.graph)
    options = {
        "of": args.of,
        "dtype": args.dtype,
        "source_file": args.model,
        "memory": args.memory,
        "memory_budget": args.memory_budget,
        "size_hint": args.size_hint,
        "fusion": args.fusion,
        "optimizer": args.optimizer,
    }
    if args.emit:
        usual = ("forward", "value_and_grad", *(("train_step",) if args.optimizer else ()))
        options["functions"] = (*usual, *args.emit)
    if args.dump or args.plot_memory:
        st = run_stages(g, **options)
        for stage in args.dump or ():
            print(st.dump(stage))
        if args.plot_memory:
            from graphc.passes.plan_report import default_sizes, plot_memory

            prog, plan = st.programs.get("value_and_grad", st.programs["forward"])
            plot_memory(prog, plan, default_sizes(prog, args.size_hint), args.plot_memory)
            print(f"wrote {args.plot_memory}")
    out_dir = args.out or None

    def progress(msg: str) -> None:
        print(f"  {msg} ...", file=sys.stderr, flush=True)

    m = compile_model(g, out_dir=out_dir, progress=progress, opt_level=args.opt_level, **options)
    st = m.stages
    fwd_prog, fwd_plan = st.programs["forward"]
    prog, plan = st.programs.get("value_and_grad", st.programs["forward"])
    ones = {d: 1 for n in g.input_ids().values() for d in shape_symbols(g.nx.nodes[n]["shape"])}
    at = ", ".join(f"{k}=1" for k in sorted(ones))
    ops = lambda p: sum(len(s.nodes) for s in p.steps)
    loops = sum(bool(s.fused) for s in prog.steps)
    print(
        f"{st.graph.name}: {ops(fwd_prog)} forward ops, {ops(prog) - ops(fwd_prog)} gradient "
        f"ops after simplify, in {len(prog.steps)} steps ({loops} fused loops); "
        f"{len(plan.slots)} buffers ({_kib(plan.arena_bytes(ones))}{' at ' + at if at else ''})"
    )
    if st.checkpointing is not None:
        print(st.checkpointing)
    if args.verify_plan:
        from graphc.passes.verify_plan import verify_plan

        for name, (prog_, plan_) in st.programs.items():
            verify_plan(prog_, plan_)  # raises PlanError, reported as an error below
            print(
                f"plan verified: {name}: {len(prog_.steps)} steps replayed against "
                f"{len(plan_.slots)} buffers, no value read after its bytes were reused"
            )
    built = m.built
    how = "cache hit" if built.cache_hit else "built"
    print(
        f"wrote {m.path / (st.graph.name + '.pyx')} (readable source), {how} "
        f"{built.so_path} in {built.seconds:.2f} s"
    )
    if args.check:
        ok, report = check_compiled(m, g, args.dtype, args.size, args.seed, options["optimizer"])
        print(report)
        return 0 if ok else 1
    return 0


def _bytes(text: str) -> int:
    """`123`, `64K`, `3.5M`, `2G` as a number of bytes."""
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    try:
        return int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of bytes: {text!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="graphc",
        description="graphc: a backpropagation compiler. Models are Python files defining "
        "`graph` (a graphc.Graph) or JSON files written by Graph.to_json().",
    )
    p.add_argument("--version", action="version", version=f"graphc {gc.__version__}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_command(name: str, help: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help, description=help)
        s.add_argument("model", help="MODEL.py or MODEL.json")
        s.add_argument("--graph", help="name of the Graph (or function returning one) in MODEL.py")
        s.add_argument("--of", help="output to differentiate (default: loss, or the only scalar)")
        s.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
        return s

    s = model_command("compile", "build MODEL and its gradient into a native module")
    s.add_argument(
        "--build-dir",
        "--out",
        dest="out",
        metavar="DIR",
        help="where builds are cached and published (default: $GRAPHC_BUILD_DIR or ./build; "
        "as for `graphc cache`)",
    )
    s.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="the precision of every float input and value (default float64)",
    )
    s.add_argument(
        "--dump",
        action="append",
        choices=("graph", "grad", "schedule", "plan", "pyx"),
        help="print a stage of the pipeline (repeatable)",
    )
    s.add_argument(
        "--check",
        action="store_true",
        help="run the module on random inputs against the interpreter and finite differences",
    )
    s.add_argument(
        "--dim",
        "--size",
        dest="size",
        type=int,
        default=3,
        metavar="N",
        help="the size of every symbolic dimension in --check's random inputs (default 3)",
    )
    s.add_argument(
        "--memory",
        choices=("best", "schedule", "size", "naive"),
        default="best",
        help="memory planner strategy (naive: one buffer per value)",
    )
    s.add_argument(
        "--size-hint",
        type=int,
        default=256,
        metavar="N",
        help="the size each symbolic dimension is assumed to have when plans are compared, "
        "and in --dump plan and --memory-budget (default 256)",
    )
    s.add_argument(
        "--memory-budget",
        type=_bytes,
        metavar="BYTES",
        help="recompute forward values in the backward pass (checkpointing) until the planned "
        "arena at --size-hint fits, e.g. 64M",
    )
    s.add_argument(
        "--opt-level",
        type=int,
        choices=(0, 1, 2, 3),
        default=1,
        help="the C compiler's -O level (default 1, with -O2's loop optimisations; 0 builds huge "
        "graphs faster, with slower loops)",
    )
    s.add_argument(
        "--no-fuse",
        dest="fusion",
        action="store_false",
        help="give every elementwise op its own loop (no fused loops)",
    )
    s.add_argument(
        "--verify-plan",
        action="store_true",
        help="replay the schedule against the memory plan and report",
    )
    s.add_argument(
        "--plot-memory",
        metavar="FILE.png",
        help="draw live bytes over the schedule (needs matplotlib)",
    )
    s.add_argument(
        "--optimizer",
        type=_optimizer,
        metavar="SPEC",
        help="also emit train_step with this optimiser: adam, adam:lr=1e-3, "
        "sgd:lr=0.1,momentum=0.9,weight_decay=1e-4,nesterov=1",
    )
    s.add_argument(
        "--emit",
        type=_emit,
        default=(),
        metavar="FUNCTIONS",
        help="also emit these derivatives, comma-separated: jvp (forward mode: outputs and their "
        "directional derivatives), hvp (Hessian-vector products)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of --check's random inputs")
    s.set_defaults(run=cmd_compile)
    s = model_command("show", "print a model, simplified or differentiated, one line per node")
    s.add_argument("--stage", choices=("graph", "simplified", "grad"), default="graph")
    s.set_defaults(run=cmd_show)
    s = model_command("check", "compare interpreter gradients with central finite differences")
    s.add_argument(
        "--dim",
        "--size",
        dest="size",
        type=int,
        default=3,
        metavar="N",
        help="the size of every symbolic dimension in the random inputs (default 3)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    s.add_argument(
        "--samples",
        type=int,
        default=FD_SAMPLES,
        help=f"elements of each param to difference (default {FD_SAMPLES}; 0: all of them)",
    )
    s.set_defaults(run=cmd_check)
    add_cache_command(sub)
    from graphc.viz.cli import add_commands as add_viz_commands

    add_viz_commands(model_command)  # draw, report
    return p


def _model_name(text: str) -> str:
    """A model name argument: a module name, so never a path."""
    if not (text.isidentifier() and text.isascii()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a model name (a Python identifier)")
    return text


def cmd_cache(args: argparse.Namespace) -> int:
    from graphc.runtime import cache_admin
    from graphc.runtime.build import default_build_dir

    root = Path(args.build_dir).absolute() if args.build_dir else default_build_dir()
    if args.action == "list":
        return cache_admin.list_cache(root, sys.stdout)
    if args.action == "verify":
        return cache_admin.verify_cache(root, sys.stdout)
    return cache_admin.clear_cache(root, sys.stdout, name=args.name, stale=args.stale)


def add_cache_command(sub: argparse._SubParsersAction) -> None:
    """`graphc cache list|verify|clear`."""
    about = "list, verify or clear the build cache (nothing in it is imported or followed)"
    c = sub.add_parser("cache", help=about, description=about)
    actions = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--build-dir",
        metavar="DIR",
        help="the build directory (default: $GRAPHC_BUILD_DIR or ./build, as for compile)",
    )
    actions.add_parser(
        "list",
        parents=[common],
        help="each cached model and entry: key prefix, size, age, whether it verifies",
    )
    actions.add_parser(
        "verify",
        parents=[common],
        help="check every entry's checksums and permissions; exit status 1 on any problem",
    )
    s = actions.add_parser("clear", parents=[common], help="remove cached builds (lock files stay)")
    s.add_argument("name", nargs="?", type=_model_name, help="only this model's builds")
    s.add_argument(
        "--stale",
        action="store_true",
        help="only the entries, published copies and leftovers that fail verification",
    )
    c.set_defaults(run=cmd_cache, name=None, stale=False)


def _optimizer(spec: str) -> gc.optim.Optimizer:
    """--optimizer's value; a bad spec is a usage error naming what is wrong."""
    try:
        return gc.optim.parse(spec)
    except GraphcError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


_NAMES_A_LINE = re.compile(r"\.py:\d+")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("graphc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `graphc ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except GraphcError as e:
        if args.debug:
            traceback.print_exc()
        print(f"graphc: error: {e}", file=sys.stderr)
        if not args.debug and _NAMES_A_LINE.search(str(e)):
            print(
                "hint: fix the model at the line named above; --debug shows the traceback",
                file=sys.stderr,
            )
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
