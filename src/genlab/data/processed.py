"""The processed-data store: one .npy file per array under data/processed/, described by a
JSON manifest (shape, dtype, sha256). .npy (not .npz, whose zip headers hold timestamps) keeps
the bytes identical for identical params."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from genlab.errors import DataError

MANIFEST = "manifest.json"


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_arrays(root: Path, arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    """Write each array to root/<name>.npy (name may hold '/'); return manifest entries."""
    entries = {}
    for name, arr in arrays.items():
        path = Path(root) / f"{name}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.ascontiguousarray(arr), allow_pickle=False)
        entries[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "sha256": sha256(path)}
    return entries


def write_manifest(root: Path, entries: dict[str, dict], extra: dict) -> None:
    doc = {**extra, "arrays": dict(sorted(entries.items()))}
    (Path(root) / MANIFEST).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def read_manifest(root: Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path} is missing: run the preprocess stage (dvc repro preprocess)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not valid JSON ({e}); rerun preprocess") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("arrays"), dict):
        raise DataError(f"{path} has no 'arrays' table; rerun preprocess")
    return doc


def load_array(root: Path, name: str) -> np.ndarray:
    """Load root/<name>.npy, checking its sha256, shape and dtype against the manifest (the
    hash reads the file once more: about 0.1 s for Fashion-MNIST's 47 MB training images)."""
    entry = read_manifest(root)["arrays"].get(name)
    path = Path(root) / f"{name}.npy"
    if isinstance(entry, dict) and not {"shape", "dtype", "sha256"} <= entry.keys():
        raise DataError(f"{Path(root) / MANIFEST}: the entry of {name} lacks shape / dtype / "
                        "sha256; rerun preprocess")
    if entry is not None and path.is_file() and sha256(path) != entry["sha256"]:
        raise DataError(f"{path} does not match the sha256 in {Path(root) / MANIFEST} (changed "
                        "or corrupt); rerun preprocess (dvc repro preprocess)")
    if entry is None:
        raise DataError(f"{path}: not in {Path(root) / MANIFEST}; was it enabled in params.yaml "
                        "(data section) when preprocess ran?")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is unreadable ({e}); rerun preprocess") from e
    if list(arr.shape) != entry["shape"] or str(arr.dtype) != entry["dtype"]:
        raise DataError(f"{path} has shape {list(arr.shape)} {arr.dtype}, the manifest says "
                        f"{entry['shape']} {entry['dtype']}; rerun preprocess")
    return arr


def images_to_float(u8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1]."""
    x = torch.as_tensor(u8)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.float().div(127.5).sub(1.0)


def float_to_images(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] -> uint8 (N, C, H, W), rounded and clipped."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
