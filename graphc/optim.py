"""Optimisers: SGD (momentum, weight decay) and Adam, each one update rule written once.

The rule is plain arithmetic on its operands, so the same function updates NumPy arrays (the
`step` loop a user drives with `value_and_grad`) and builds graph nodes (the `train_step` that
`gc.compile(g, optimizer=...)` emits, see `train_graph`). State lives in arrays the caller
owns, named by slot and parameter (`m_W1`, `v_W1`, ...) plus scalars shared by all parameters
(Adam's `step`): `init` makes them, both forms update them in place.

The hyperparameters (`hyperparameters`: the learning rate, Adam's betas, ...) are arguments of
the rule, not constants in it: NumPy's `step` and the compiled `train_step` both take new values
at every step (`lr=...`), so a schedule (warm-up, cosine decay) needs no rebuild. A term whose
hyperparameter is 0 when the optimiser is made (weight decay, SGD's momentum) is left out of
the rule altogether, and so cannot be scheduled: make the optimiser with a nonzero value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphc.errors import GraphError, InputError

Sqrt = Callable[[Any], Any]


@dataclass(frozen=True)
class Optimizer:
    """What every optimiser provides; `slots` are per-parameter state arrays of its shape,
    `scalars` state shared by all parameters (0-d arrays)."""

    slots = ()
    scalars = ()
    optional = ()  # hyperparameters whose term is left out of the rule when they are 0

    def state_names(self, params: Mapping[str, Any]) -> list[str]:
        """The state's names, in the order `train_step` takes them."""
        return [f"{s}_{p}" for p in params for s in self.slots] + list(self.scalars)

    def init(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Fresh state for `params` (zeros), keyed by `state_names`."""
        state = {f"{s}_{p}": np.zeros_like(a) for p, a in params.items() for s in self.slots}
        dtype = next(iter(params.values())).dtype if params else np.float64
        return state | {s: np.zeros((), dtype=dtype) for s in self.scalars}

    @property
    def hyperparameters(self) -> dict[str, float]:
        """The values a step may be given instead of the optimiser's own (`lr=...`): each
        number field that is in the rule (see the module doc), with its value."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.type in ("float", float) and (f.name not in self.optional or getattr(self, f.name))
        }

    def step(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        state: dict[str, np.ndarray],
        **hyper: float,
    ) -> None:
        """One update of `params` and `state` in place, from `grads` (NumPy); `hyper` gives
        hyperparameters of this step other than the optimiser's (`lr=1e-4`)."""
        missing = [p for p in params if p not in grads]
        if missing:
            raise InputError(f"no gradient for parameter{'s' * (len(missing) > 1)} {missing}")
        h = self.with_hyperparameters(hyper)
        shared = self.advance({s: state[s] for s in self.scalars}, np.sqrt, h)
        for s in self.scalars:
            state[s][...] = shared[s]
        for p, a in params.items():
            slots = {s: state[f"{s}_{p}"] for s in self.slots}
            new, new_slots = self.rule(a, grads[p], slots, shared, np.sqrt, h)
            a[...] = new
            for s, v in new_slots.items():
                slots[s][...] = v

    def with_hyperparameters(self, hyper: Mapping[str, Any]) -> dict[str, Any]:
        """The hyperparameters with `hyper` in place of the optimiser's own values."""
        own = self.hyperparameters
        unknown = sorted(set(hyper) - set(own))
        if unknown:
            raise InputError(
                f"{type(self).__name__} takes no hyperparameter {', '.join(map(repr, unknown))}"
                f" at a step; it takes {', '.join(own)}"
            )
        return own | dict(hyper)

    def advance(self, scalars: dict[str, Any], sqrt: Sqrt, h: dict[str, Any]) -> dict[str, Any]:
        """The shared scalars of this step, from last step's (with any derived ones)."""
        return scalars

    def rule(
        self,
        p: Any,
        g: Any,
        slots: dict[str, Any],
        shared: dict[str, Any],
        sqrt: Sqrt,
        h: dict[str, Any],
    ) -> tuple[Any, dict[str, Any]]:
        """The new value of parameter `p` with gradient `g`, and its new slots, with the
        hyperparameters `h`."""
        raise NotImplementedError


@dataclass(frozen=True)
class SGD(Optimizer):
    """p -= lr * (g + weight_decay * p), with heavy-ball momentum (PyTorch's form, no
    dampening): b = momentum * b + g; the step uses b, or g + momentum * b when `nesterov`."""

    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False

    optional = ("momentum", "weight_decay")

    def __post_init__(self) -> None:
        _check_hyper(self, lr=(self.lr, 0), momentum=(self.momentum, 0))
        _check_hyper(self, weight_decay=(self.weight_decay, 0))
        if self.nesterov and not self.momentum:
            raise GraphError("SGD: nesterov needs momentum > 0")

    @property
    def slots(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("velocity",) if self.momentum else ()

    def rule(self, p, g, slots, shared, sqrt, h):
        if self.weight_decay:
            g = g + h["weight_decay"] * p
        if not self.momentum:
            return p - h["lr"] * g, {}
        b = h["momentum"] * slots["velocity"] + g
        d = g + h["momentum"] * b if self.nesterov else b
        return p - h["lr"] * d, {"velocity": b}


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam (Kingma & Ba), as torch.optim.Adam: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
    p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps); `weight_decay` adds wd * p to g."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0

    slots = ("m", "v")
    scalars = ("step",)
    optional = ("weight_decay",)

    def __post_init__(self) -> None:
        _check_hyper(self, lr=(self.lr, 0), eps=(self.eps, 0), weight_decay=(self.weight_decay, 0))
        for name, b in (("beta1", self.beta1), ("beta2", self.beta2)):
            if not 0 <= b < 1:
                raise GraphError(f"Adam: {name} must be in [0, 1), got {b!r}")

    def advance(self, scalars, sqrt, h):
        t = scalars["step"] + 1.0
        return {"step": t, "lr_t": h["lr"] / (1 - h["beta1"] ** t),
                "bc2": sqrt(1 - h["beta2"] ** t)}  # fmt: skip

    def rule(self, p, g, slots, shared, sqrt, h):
        if self.weight_decay:
            g = g + h["weight_decay"] * p
        m = h["beta1"] * slots["m"] + (1 - h["beta1"]) * g
        v = h["beta2"] * slots["v"] + (1 - h["beta2"]) * (g * g)
        return p - shared["lr_t"] * m / (sqrt(v) / shared["bc2"] + h["eps"]), {"m": m, "v": v}


def _check_hyper(opt: Optimizer, **values: tuple[float, float]) -> None:
    for name, (v, low) in values.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= low:
            raise GraphError(f"{type(opt).__name__}: {name} must be a number >= {low}, got {v!r}")


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam}


def parse(spec: str) -> Optimizer:
    """An optimiser from a command-line spec: `adam`, `adam:lr=1e-3`,
    `sgd:lr=0.1,momentum=0.9,nesterov=1`."""
    name, _, rest = spec.partition(":")
    kind = OPTIMIZERS.get(name.strip().lower())
    if kind is None:
        raise GraphError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    fields = {f for f in kind.__dataclass_fields__}
    values: dict[str, Any] = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or key not in fields:
            raise GraphError(
                f"optimizer {spec!r}: {item!r} is not NAME=VALUE with NAME one of "
                f"{', '.join(sorted(fields))}"
            )
        try:
            values[key] = bool(int(text)) if key == "nesterov" else float(text)
        except ValueError:
            raise GraphError(f"optimizer {spec!r}: {key} needs a number, got {text!r}") from None
    return kind(**values)
