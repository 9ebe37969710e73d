"""Checkpoints of a data-parallel run: params, optimiser state and step count in one .npz.

Arrays are stored as they are (no pickle: `np.load(..., allow_pickle=False)` reads them), with
a record of the model and optimiser they belong to, so that a checkpoint is never resumed into
another model. The file is written beside its destination and renamed over it, so a run killed
while saving leaves the previous checkpoint whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from graphc.errors import GraphcError, InputError

FORMAT = "graphc-data-parallel-checkpoint-1"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def save(
    path: str | Path,
    params: dict[str, np.ndarray],
    state: dict[str, np.ndarray],
    step: int,
    fingerprint: dict[str, str],
) -> Path:
    """Write the checkpoint to `path` (atomically) and return its path."""
    path = Path(path)
    record = {"format": FORMAT, "step": int(step), **fingerprint}
    arrays = {f"param/{k}": np.asarray(v) for k, v in params.items()}
    arrays |= {f"state/{k}": np.asarray(v) for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __record__=np.array(json.dumps(record, sort_keys=True)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(
    path: str | Path, fingerprint: dict[str, str]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Params, state and step from the checkpoint at `path`, which must have been written for
    the model and optimiser `fingerprint` describes."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            record = json.loads(str(z["__record__"]))
            params = {k[6:]: z[k] for k in z.files if k.startswith("param/")}
            state = {k[6:]: z[k] for k in z.files if k.startswith("state/")}
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{path} is not a readable graphc checkpoint: {e}") from None
    if record.get("format") != FORMAT:
        raise InputError(f"{path} is not a graphc data-parallel checkpoint ({FORMAT})")
    differ = [k for k, v in fingerprint.items() if record.get(k) != v]
    if differ:
        detail = "; ".join(f"{k}: saved {record.get(k)!r}, now {fingerprint[k]!r}" for k in differ)
        raise GraphcError(f"checkpoint {path} was saved for another run ({detail})")
    return params, state, int(record["step"])
