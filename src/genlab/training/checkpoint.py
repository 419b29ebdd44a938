"""Atomic, resumable checkpoints: temp file + rename, loaded with weights_only=True."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from genlab.errors import CheckpointError  # defined there; callers may import it from here


def save_atomic(obj: Any, path: Path) -> None:
    """Write `obj` with torch.save so that `path` is either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict safely (tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, pickle of arbitrary objects, ...
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]}); delete it to start over"
        ) from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a dict")
    return obj


def load_weights(module: torch.nn.Module, state: dict, path: Path) -> None:
    """load_state_dict with an error that names the file and the first mismatching keys."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[:3]
        raise CheckpointError(
            f"checkpoint {path} does not fit {type(module).__name__}: " + " ".join(first)
        ) from e
