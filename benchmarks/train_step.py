"""One training step with Adam on the suite's GPTs (benchmarks/gpt.py): graphc's compiled
`train_step` (gradients and the update in one call, params and state updated in place) against
PyTorch eager's forward, `backward()` and `torch.optim.Adam.step()`, each in a process of its
own, measured in one run.

    python -m benchmarks.train_step                    # gpt2, gpt4, gpt128
    python -m benchmarks.train_step --configs gpt2 --quick
    python -m benchmarks.train_step --threads 1        # every library on one thread

Before timing, both run three steps from the same params and data, and the params they reach
are compared normwise over all params: |graphc's - PyTorch's| / |PyTorch's - the initial ones|
(flagged MISMATCH above 1e-2). Normwise, because some gradients are zero but for rounding (the
attention's key bias: softmax ignores a shift), and Adam turns rounding noise into steps of
about lr on them, in either framework.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import gpt
from benchmarks._timing import (
    FULL,
    QUICK,
    Case,
    cpu_model,
    fmt_us,
    format_table,
    measure,
    openblas_kernels,
    run_child,
)

LR = 1e-3
CHECK_STEPS = 3
LABELS = {"graphc": "graphc train_step", "torch": "PyTorch eager fwd + bwd + Adam.step()"}


def data(cfg: gpt.Config, n: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(tokens and targets, params), as the suite's workloads make them."""
    arrays = gpt.arrays(cfg, n)
    batch = {k: arrays.pop(k) for k in ("tokens", "targets")}
    return batch, arrays


def graphc_step(cfg: gpt.Config, n: int, build: str) -> tuple[Any, Any]:
    """(a step to time, the params after CHECK_STEPS steps from the start)."""
    import graphc as gc

    m = gc.compile(gpt.graph(cfg), dtype="float32", optimizer=gc.optim.Adam(lr=LR), out_dir=build)
    batch, params = data(cfg, n)
    state = m.init_state(params)
    for _ in range(CHECK_STEPS):
        m.train_step(**batch, **params, **state)
    reached = {k: v.copy() for k, v in params.items()}
    return Case(LABELS["graphc"], m.train_step, kwargs=batch | params | state), reached


def torch_step(cfg: gpt.Config, n: int) -> tuple[Any, Any]:
    import torch

    from benchmarks.suite import torch_ops

    ops = torch_ops(torch)
    batch, params = data(cfg, n)
    tensors = {k: torch.from_numpy(a) for k, a in batch.items()}
    leaves = {k: torch.from_numpy(a).requires_grad_(True) for k, a in params.items()}
    opt = torch.optim.Adam(list(leaves.values()), lr=LR)
    v = tensors | leaves

    def step() -> Any:
        opt.zero_grad(set_to_none=True)
        loss = gpt.loss(ops, v, cfg=cfg)
        loss.backward()
        opt.step()
        return loss

    for _ in range(CHECK_STEPS):
        step()
    reached = {k: t.detach().numpy().copy() for k, t in leaves.items()}
    return Case(LABELS["torch"], step), reached


def child(spec: dict[str, Any]) -> dict[str, Any]:
    cfg = gpt.CONFIGS[spec["config"]]
    if spec["impl"] == "torch":
        try:
            import torch  # noqa: F401
        except Exception as exc:  # not installed, or a broken install
            return {"skipped": f"PyTorch not importable ({type(exc).__name__})"}
        case, reached = torch_step(cfg, spec["n"])
    else:
        case, reached = graphc_step(cfg, spec["n"], spec["build"])
    np.savez(spec["params_out"], **reached)
    t = measure([case], QUICK if spec["quick"] else FULL)[case.name]
    return {"median_us": t.median_us, "p10_us": t.p10_us}


def run(configs: Sequence[str], quick: bool, threads: int) -> int:
    from benchmarks.suite import thread_env

    status = 0
    kernels = openblas_kernels()
    print(f"machine: {cpu_model()}; graphc's products call NumPy's OpenBLAS, {kernels} kernels "
          f"(OPENBLAS_CORETYPE {os.environ.get('OPENBLAS_CORETYPE') or 'not set'})\n")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for key in configs:
            cfg = gpt.CONFIGS[key]
            n = 2 if quick else cfg.batch
            title = cfg.title.replace(f"batch {cfg.batch}", f"batch {n}")
            print(f"== {key} ==\n{title}; Adam, lr {LR}\n")
            res, reached = {}, {}
            for impl in ("graphc", "torch"):
                out = Path(tmp) / f"{key}-{impl}.npz"
                spec = {"impl": impl, "config": key, "n": n, "quick": quick,
                        "build": str(Path(tmp) / "build"), "params_out": str(out)}  # fmt: skip
                res[impl] = run_child("benchmarks.train_step", spec, thread_env(threads))
                if "median_us" in res[impl]:
                    reached[impl] = dict(np.load(out))
            if "error" in res["graphc"]:
                print(f"graphc failed: {res['graphc']['error']}\n")
                status = 1
                continue
            rows, base = [], res["graphc"]["median_us"]
            drift = ""
            if "torch" in reached:
                _, start = data(cfg, n)
                flat = {w: np.concatenate([p[k].ravel() for k in sorted(start)])
                        for w, p in (("start", start), *reached.items())}  # fmt: skip
                moved = np.linalg.norm(flat["torch"] - flat["start"])
                worst = float(np.linalg.norm(flat["graphc"] - flat["torch"]) / moved)
                drift = f"{worst:.1e}" + (" MISMATCH" if worst > 1e-2 else "")
                status |= worst > 1e-2
            for impl in ("graphc", "torch"):
                r = res[impl]
                if "median_us" not in r:
                    rows.append([LABELS[impl], "-", "-", "-", r.get("skipped") or r.get("error")])
                    continue
                ratio = f"{r['median_us'] / base:.2f}"
                rows.append([LABELS[impl], fmt_us(r["median_us"]), fmt_us(r["p10_us"]), ratio,
                             drift if impl == "torch" else ""])  # fmt: skip
            print(format_table(["implementation", "median µs", "p10 µs", "× graphc",
                                f"params after {CHECK_STEPS} steps: rel diff"], rows))  # fmt: skip
            print()
    return int(status)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default=",".join(gpt.CONFIGS), help="comma-separated subset")
    p.add_argument("--quick", action="store_true", help="smoke run: batch 2, few repetitions")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="limit every library to this many threads (default 0: each one's own)",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(gpt.CONFIGS)
    if unknown:
        p.error(f"unknown configs {sorted(unknown)}; choose from {', '.join(gpt.CONFIGS)}")
    return run(configs, args.quick, args.threads)


if __name__ == "__main__":
    sys.exit(main())
