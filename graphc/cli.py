"""The `graphc` command line: show a model at a stage, check its gradients."""

from __future__ import annotations

import argparse
import runpy
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import graphc as gc
from graphc.errors import GraphcError, InputError
from graphc.ir.shapes import bind_shape


def load_model(path: str, graph: str | None = None) -> gc.Graph:
    """The model in `path`: a `.json` file, or a Python file defining `graph` (a Graph) or a
    function named `graph` that returns one."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no model file {path!r}")
    if p.suffix == ".json":
        return gc.Graph.from_json(p.read_text())
    namespace = runpy.run_path(str(p), run_name="graphc_model")
    name = graph or "graph"
    if name not in namespace:
        found = sorted(k for k, v in namespace.items() if isinstance(v, gc.Graph) or callable(v))
        raise InputError(f"{path} defines no {name!r}; pass --graph NAME (candidates: "
                         f"{', '.join(found[:8]) or 'none'})")  # fmt: skip
    obj = namespace[name]
    if callable(obj) and not isinstance(obj, gc.Graph):
        obj = obj()
    if not isinstance(obj, gc.Graph):
        raise InputError(f"{path}: {name!r} is a {type(obj).__name__}, not a graphc.Graph")
    return obj


def default_of(g: gc.Graph) -> str:
    """The output to differentiate: `loss` if there is one, else the only scalar output."""
    if "loss" in g.outputs:
        return "loss"
    scalars = [k for k, n in g.outputs.items() if g.nx.nodes[n]["shape"] == ()]
    if len(scalars) != 1:
        raise InputError(f"graph {g.name!r} has scalar outputs {scalars}; choose one with --of")
    return scalars[0]


def random_inputs(g: gc.Graph, size: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for every input of `g`, each symbolic dimension bound to `size`."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, n in g.input_ids().items():
        a = g.nx.nodes[n]
        shape = bind_shape(a["shape"], {d: size for d in a["shape"] if isinstance(d, str)})
        if a["dtype"] == "bool":
            out[name] = rng.random(shape) < 0.5
        else:
            out[name] = rng.uniform(0.1, 0.9, shape).astype(a["dtype"])
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


def cmd_check(args: argparse.Namespace) -> int:
    from graphc.gradcheck import check_grad

    g = load_model(args.model, args.graph)
    of = args.of or default_of(g)
    result = check_grad(g, random_inputs(g, args.size, args.seed), of=of)
    print(result)
    return 0 if result.ok else 1


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

    s = model_command("show", "print a model, simplified or differentiated, one line per node")
    s.add_argument("--stage", choices=("graph", "simplified", "grad"), default="graph")
    s.set_defaults(run=cmd_show)
    s = model_command("check", "compare interpreter gradients with central finite differences")
    s.add_argument("--size", type=int, default=3, help="value bound to each symbolic dimension")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(run=cmd_check)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except GraphcError as e:
        if args.debug:
            traceback.print_exc()
        print(f"graphc: error: {e}", file=sys.stderr)
        if not args.debug:
            print("hint: fix the model at the line named above; --debug shows the traceback",
                  file=sys.stderr)  # fmt: skip
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
