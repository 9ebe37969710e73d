"""`CompiledModule`: a built model as Python sees it, and `load`, which finds a published one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from graphc.errors import InputError

# What a module without train_step, jvp or hvp leaves out of its constants, and means.
ABSENT = {"STATE": {}, "OPTIMIZER": None, "HYPERPARAMETERS": {}, "TANGENTS": {}, "VECTORS": {}}


class CompiledModule:
    """A built model: `forward` and `value_and_grad` are the extension module's own functions
    (no wrapper on the call path), and calling the module is `forward`; `source` is the
    generated Cython; `stages` what made it. It pickles as its graph (JSON) and build options:
    unpickling, in this process or another (multiprocessing), takes the module from the
    cache, or builds it again."""

    def __init__(
        self,
        module: Any,
        source: str,
        path: Path,
        stages: Any = None,
        built: Any = None,
        recipe: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        self.module = module
        self.source = source
        self.path = path
        self.stages = stages
        self.built = built
        self.recipe = recipe  # (graph JSON, keyword arguments of gc.compile), for pickling
        if hasattr(module, "forward"):
            self.forward: Callable[..., dict] = module.forward
        if hasattr(module, "value_and_grad"):
            self.value_and_grad: Callable[..., tuple[dict, dict]] = module.value_and_grad
        if hasattr(module, "train_step"):
            self.train_step: Callable[..., dict] = module.train_step

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        """`forward`."""
        return self.forward(*args, **kwargs)

    def init_state(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Fresh optimiser state (zeros) for train_step, for the arrays `params`."""
        missing = [p for p in dict.fromkeys(self.STATE.values()) if p and p not in params]
        if missing:
            raise InputError(f"init_state needs the param arrays {missing}")
        dtype = np.dtype(self.module.DTYPE)
        return {
            k: np.zeros_like(params[p], dtype=dtype) if p else np.zeros((), dtype=dtype)
            for k, p in self.STATE.items()
        }

    def profile(self, *args: Any, function: str = "value_and_grad", repeat: int = 20,
                **kwargs: Any) -> Any:  # fmt: skip
        """Time `function` (default value_and_grad, else forward) on these inputs, each step
        of its program apart: a graphc.profile.Profile, which prints the steps and the model
        lines that take the most time."""
        from graphc.profile import profile

        if function == "value_and_grad" and not hasattr(self, "value_and_grad"):
            function = "forward"
        return profile(self, function, args, kwargs, repeat)

    def __reduce__(self) -> tuple:
        if self.recipe is not None:
            return _rebuild, self.recipe
        return load, (str(self.path),)

    def __getattr__(self, name: str) -> Any:  # INPUTS, OUTPUTS, WRT, SHAPES, DTYPE, PLAN, ...
        if name == "module":  # not set yet: unpickling, or a failed __init__
            raise AttributeError(name)
        if name in ABSENT:
            return getattr(self.module, name, ABSENT[name])
        return getattr(self.module, name)

    def __repr__(self) -> str:
        return f"<graphc.CompiledModule {self.module.MODEL!r} from {self.path}>"

    def _repr_html_(self) -> str:
        """For Jupyter: the summary and the report inline (see graphc.viz)."""
        from graphc.viz.notebook import module_html

        return module_html(self)


def _rebuild(graph_json: str, options: dict[str, Any]) -> CompiledModule:
    """A pickled CompiledModule: its graph compiled with the same options (a cache hit when
    the build is still there)."""
    from graphc.compiler import compile as compile_model
    from graphc.ir.graph import Graph

    return compile_model(Graph.from_json(graph_json), **options)


def load(path: str | Path) -> CompiledModule:
    """The most recently built module in a model directory such as `build/seed_net`."""
    from graphc.runtime import load as load_built

    path = Path(path)
    module = load_built(path)
    pyx = path / f"{module.MODEL}.pyx"
    return CompiledModule(module, pyx.read_text() if pyx.is_file() else "", path)
