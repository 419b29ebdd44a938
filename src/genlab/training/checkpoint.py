"""Atomic, resumable checkpoints: temp file + fsync + rename, loaded with weights_only=True.
Each saved dict carries a sha256 of its contents (every tensor's bytes, dtype and shape, every
other value's repr, in key order) under CHECKSUM; the loader recomputes it, so a file whose
tensor bytes changed but whose zip structure is intact is refused, not loaded."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from genlab.errors import CheckpointError  # defined there; callers may import it from here

CHECKSUM = "sha256"  # key of a saved dict's digest


def _digest(obj: Any, h) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode() + b":")
            _digest(obj[k], h)
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _digest(v, h)
        h.update(b"]")
    else:
        h.update(repr(obj).encode())


def checksum(obj: dict) -> str:
    """sha256 of a checkpoint dict's contents, leaving out its own CHECKSUM entry."""
    h = hashlib.sha256()
    _digest({k: v for k, v in obj.items() if k != CHECKSUM}, h)
    return h.hexdigest()


def write_checkpoint(obj: Any, path: Path) -> None:
    """torch.save `obj` to `path` and fsync it; a dict gets its checksum (CHECKSUM) for
    load_checkpoint to verify. Not atomic by itself: write a temp path, then rename it."""
    if isinstance(obj, dict):
        obj = {**obj, CHECKSUM: checksum(obj)}
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def temp_path(path: Path) -> Path:
    """A fresh temp name beside `path`, `.<name>.<random>.tmp<suffix>` (what remove_orphans
    deletes); it keeps the suffix for writers that add one (np.savez)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                               suffix=f".tmp{path.suffix}")
    os.close(fd)
    return Path(tmp)


def save_atomic(obj: Any, path: Path) -> None:
    """Write `obj` with torch.save so that `path` is either the old file or the new one; a dict
    gets its checksum (CHECKSUM) for load_checkpoint to verify."""
    tmp = temp_path(path)
    try:
        write_checkpoint(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_orphans(path: Path) -> list[Path]:
    """Delete the temp files (or folders) a killed writer of `path` left beside it (see
    temp_path); return them. Call it before a process starts writing `path` (one writer per
    path)."""
    import shutil

    path = Path(path)
    orphans = sorted(path.parent.glob(f".{path.name}.*.tmp*")) if path.parent.is_dir() else []
    for tmp in orphans:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return orphans


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
            f"{(str(e).splitlines() or ['no message'])[0][:200]}); delete it to start over"
        ) from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a dict")
    if CHECKSUM in obj and obj.pop(CHECKSUM) != checksum(obj):
        raise CheckpointError(f"checkpoint {path} fails its checksum (its bytes changed after "
                              "it was written); delete it to start over")
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
