"""`graphc draw` and `graphc report`: the command-line side of graphc.viz."""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from graphc.errors import DrawError, InputError
from graphc.viz.drawing import ENGINES, STAGES, draw


def read_inputs(path: str) -> dict[str, np.ndarray]:
    """Inputs from a `.npz` file or a `.json` file: {name: nested list}, or an object whose
    "inputs" field is one (as the seed network's published reference)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no inputs file {path!r}")
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if p.suffix != ".json":
        raise InputError(f"inputs file {path!r}: use a .json or .npz file")
    try:
        obj = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"inputs file {path!r} is not valid JSON: {e}") from None
    if isinstance(obj, dict) and isinstance(obj.get("inputs"), dict):
        obj = obj["inputs"]
    if not isinstance(obj, dict) or not obj:
        raise InputError(f"inputs file {path!r} must hold an object of input name -> array")
    try:
        return {str(k): np.asarray(v) for k, v in obj.items()}
    except (TypeError, ValueError) as e:
        raise InputError(f"inputs file {path!r}: {e}") from None


def model_inputs(args: argparse.Namespace, g: Any) -> Mapping[str, Any]:
    """The inputs `--values` shows: --inputs FILE, else the model file's own `INPUTS` dict when
    it defines one, else random inputs (each symbolic dim = --size, seeded by --seed)."""
    if args.inputs:
        return read_inputs(args.inputs)
    if args.model.endswith(".py"):
        found = runpy.run_path(args.model, run_name="graphc_model").get("INPUTS")
        if isinstance(found, Mapping):
            return found
    from graphc.cli import random_inputs

    return random_inputs(g, args.size, args.seed)


def cmd_draw(args: argparse.Namespace) -> int:
    from graphc.cli import load_model

    g = load_model(args.model, args.graph)
    values = model_inputs(args, g) if args.values or args.inputs else None
    pic = draw(
        g,
        args.stage,
        args.output,
        of=args.of,
        values=values,
        collapse=args.collapse,
        view=args.view or "",
        engine=args.engine,
        dtype=args.dtype,
    )
    boxes = sum(not b.context for b in pic.drawing.boxes)
    what = f"{boxes} boxes" + (", collapsed" if pic.tree is not None else "")
    print(f"wrote {args.output} ({pic.drawing.title}; {what}; {pic.engine} layout)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from graphc.cli import check_compiled, load_model
    from graphc.compiler import run_stages
    from graphc.viz.report import write_report

    if not args.output.lower().endswith((".html", ".htm")):
        raise DrawError(f"the report is an HTML file: end {args.output!r} in .html")
    g = load_model(args.model, args.graph)
    options = {"of": args.of, "dtype": args.dtype, "source_file": args.model}
    built, check = None, None
    if args.no_build:
        if args.check:
            raise DrawError("--check runs the built module; it cannot go with --no-build")
        st = run_stages(g, **options)
    else:
        import graphc as gc

        def progress(msg: str) -> None:
            print(f"  {msg} ...", file=sys.stderr, flush=True)

        m = gc.compile(g, progress=progress, **options)
        st, built = m.stages, m.built
        if args.check:
            check = check_compiled(m, g, args.dtype, args.size, args.seed)
    inputs = model_inputs(args, g) if args.values or args.inputs else None
    path = write_report(
        st,
        args.output,
        built=built,
        check=check,
        inputs=inputs,
        model_file=args.model if args.model.endswith(".py") else None,
    )
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1024:.0f} KiB, one self-contained page)")
    if check is not None:
        print(check[1])
        return 0 if check[0] else 1
    return 0


def _common(s: argparse.ArgumentParser) -> None:
    s.add_argument("-o", "--output", required=True, metavar="FILE", help="the file to write")
    s.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    s.add_argument(
        "--values",
        action="store_true",
        help="show each node's value and adjoint on the model's INPUTS, --inputs FILE or "
        "random inputs",
    )
    s.add_argument("--inputs", metavar="FILE", help="inputs for --values: .json or .npz")
    s.add_argument("--size", type=int, default=3, help="symbolic dim size of random inputs")
    s.add_argument("--seed", type=int, default=0, help="seed of random inputs")


def add_commands(model_command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Register `draw` and `report` through cli.py's `model_command`."""
    s = model_command("draw", "draw MODEL or its gradient graph as SVG, PNG or DOT")
    _common(s)
    s.add_argument(
        "--stage",
        choices=STAGES,
        default="graph",
        help="graph: the model as built; grad: forward and gradient, as compiled",
    )
    s.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="layout: dot (Graphviz), builtin, or auto (dot when it is on PATH)",
    )
    fold = s.add_mutually_exclusive_group()
    fold.add_argument(
        "--collapse",
        dest="collapse",
        action="store_const",
        const=True,
        default="auto",
        help="group layers and name scopes into boxes",
    )
    fold.add_argument(
        "--expand",
        dest="collapse",
        action="store_const",
        const=False,
        help="draw every node, however many",
    )
    s.add_argument("--view", metavar="GROUP", help="draw the inside of one group")
    s.set_defaults(run=cmd_draw)
    s = model_command(
        "report", "write one self-contained HTML page: graphs, schedule, memory, source, build"
    )
    _common(s)
    s.add_argument(
        "--check",
        action="store_true",
        help="run the module against the interpreter and finite differences",
    )
    s.add_argument(
        "--no-build",
        action="store_true",
        help="run the passes only (no C compiler): no build or check results",
    )
    s.set_defaults(run=cmd_report)
