"""Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): verified fetch of its IDX files, and loading."""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from genlab.data.idx import DataError, decode_idx, md5_bytes, read_bytes, socket_timeout
from genlab.data.labels import FASHION_MNIST_CLASSES

log = logging.getLogger(__name__)

# MD5 of the *decompressed* IDX files. Repackagers (e.g. Debian) recompress the .gz files,
# so the .gz digests differ from upstream while the decompressed bytes are identical.
IDX_FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASSES = FASHION_MNIST_CLASSES
SOURCE_KINDS = ("local", "torchvision")
IMAGE_SHAPE = (28, 28)
DEFAULT_TIMEOUT_S = 30.0
_FETCH_ERRORS = (OSError, RuntimeError, ValueError, EOFError)


def fetch_fashion_mnist(dest: Path, sources: list[dict], verify_md5: bool = True) -> dict:
    """Write the four decompressed IDX files into `dest` from the first source that works.

    Each source is {"kind": "local", "path": DIR} (DIR holds the four files, plain or .gz) or
    {"kind": "torchvision", "timeout_s": 30} (download through torchvision.datasets.FashionMNIST).
    Files are staged next to `dest`, verified, then swapped in, so `dest` never holds a partial
    copy and is left untouched when every source fails. Returns {"source", "files": {name: md5}}.
    """
    dest = Path(dest)
    _check_sources(sources)
    failures = []
    for source in sources:
        try:
            files = _fetch_into(dest, source, verify_md5=verify_md5)
            return {"source": _describe(source), "files": files}
        except _FETCH_ERRORS as err:
            reason = " | ".join(str(err).splitlines())
            log.warning("Fashion-MNIST source %s failed: %s", _describe(source), reason)
            failures.append(f"  - {_describe(source)}: {reason}")
    raise DataError(
        f"could not fetch Fashion-MNIST into {dest}; every source failed:\n" + "\n".join(failures)
    )


def load_fashion_mnist(raw_dir: Path, split: str,
                       recorded: dict[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels int64 (N,) of `split` in {"train", "test"}.

    `raw_dir` holds the IDX files, plain or .gz (N = 60000 for train, 10000 for test).
    `recorded`: {file name: MD5 of its decompressed bytes} as the fetch recorded them; each
    file read is checked against it (a file changed since the fetch is refused).
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
    image_name, label_name = SPLIT_FILES[split]
    images = _read_member(Path(raw_dir), image_name, recorded)  # (N, 28, 28)
    labels = _read_member(Path(raw_dir), label_name, recorded)  # (N,)
    _check_pair(images.shape, labels.shape, where=f"{raw_dir} ({split})")
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise DataError(f"{raw_dir}: expected uint8 IDX data, got {images.dtype}/{labels.dtype}")
    if labels.size and labels.max() >= len(CLASSES):
        raise DataError(f"{raw_dir}/{label_name}: label {labels.max()} >= {len(CLASSES)}")
    return images, labels.astype(np.int64)


def _check_sources(sources: list[dict]) -> None:
    if not sources:
        raise ValueError("sources must list at least one source")
    for i, source in enumerate(sources):
        kind = source.get("kind") if isinstance(source, dict) else None
        if kind not in SOURCE_KINDS:
            raise ValueError(f"sources[{i}].kind must be one of {SOURCE_KINDS}, got {kind!r}")
        if kind == "local" and not source.get("path"):
            raise ValueError(f"sources[{i}] (kind 'local') needs a 'path'")


def _describe(source: dict) -> str:
    return f"local:{source['path']}" if source["kind"] == "local" else "torchvision"


def _fetch_into(dest: Path, source: dict, verify_md5: bool) -> dict[str, str]:
    with _staging_dir(dest) as stage:
        if source["kind"] == "local":
            files = _copy_verified(Path(source["path"]), stage, verify_md5=verify_md5)
        else:
            files = _download_verified(stage, source, verify_md5=verify_md5)
        _swap_in(stage, dest)
    return files


def _download_verified(stage: Path, source: dict, verify_md5: bool) -> dict[str, str]:
    timeout_s = float(source.get("timeout_s", DEFAULT_TIMEOUT_S))
    with tempfile.TemporaryDirectory(dir=stage.parent, prefix=".fmnist-download-") as tmp:
        raw_dir = download_with_torchvision(Path(tmp), timeout_s=timeout_s)
        return _copy_verified(raw_dir, stage, verify_md5=verify_md5)


def download_with_torchvision(root: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> Path:
    """Download Fashion-MNIST with torchvision into `root`; return its raw/ folder."""
    from torchvision.datasets import FashionMNIST

    with socket_timeout(timeout_s):
        FashionMNIST(root=str(root), train=True, download=True)
    return root / "FashionMNIST" / "raw"


def _copy_verified(src_dir: Path, stage: Path, verify_md5: bool) -> dict[str, str]:
    """Decompress the four files of `src_dir` into `stage`, checking MD5 and IDX structure."""
    if not src_dir.is_dir():
        raise DataError(f"{src_dir}: no such directory")
    files, shapes = {}, {}
    for name, expected in IDX_FILES.items():
        path = _find_member(src_dir, name)
        data = read_bytes(path)
        digest = md5_bytes(data)
        if verify_md5 and digest != expected:
            raise DataError(f"{path}: MD5 of decompressed {name} is {digest}, expected {expected}")
        shapes[name] = decode_idx(data, name=str(path)).shape  # structure, also without MD5
        (stage / name).write_bytes(data)
        files[name] = digest
    for split, (image_name, label_name) in SPLIT_FILES.items():
        _check_pair(shapes[image_name], shapes[label_name], where=f"{src_dir} ({split})")
    return files


def _check_pair(image_shape: tuple, label_shape: tuple, where: str) -> None:
    if len(image_shape) != 3 or tuple(image_shape[1:]) != IMAGE_SHAPE:
        raise DataError(f"{where}: images must be (N, 28, 28), got {tuple(image_shape)}")
    if tuple(label_shape) != (image_shape[0],):
        n_images = image_shape[0]
        raise DataError(f"{where}: labels {tuple(label_shape)} do not match {n_images} images")


def _find_member(src_dir: Path, name: str) -> Path:
    for candidate in (src_dir / name, src_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{src_dir}: missing {name} (or {name}.gz)")


def _read_member(raw_dir: Path, name: str, recorded: dict[str, str] | None = None) -> np.ndarray:
    path = _find_member(raw_dir, name)
    data = read_bytes(path)
    if recorded is not None:
        if name not in recorded:
            raise DataError(f"{path}: the fetch recorded no MD5 for {name}; rerun fetch")
        if md5_bytes(data) != recorded[name]:
            raise DataError(f"{path}: its MD5 {md5_bytes(data)} is not the {recorded[name]} the "
                            "fetch recorded (changed or corrupt since); rerun fetch")
    return decode_idx(data, name=str(path))


@contextmanager
def _staging_dir(dest: Path) -> Iterator[Path]:
    """A fresh directory next to `dest` (same filesystem, so renames are atomic), always removed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.staging-"))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _swap_in(stage: Path, dest: Path) -> None:
    """Replace `dest` by `stage`; the old `dest` is restored if the final rename fails."""
    if not dest.exists():
        stage.rename(dest)
        return
    old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
    dest.rename(old)
    try:
        stage.rename(dest)
    except OSError:
        old.rename(dest)
        raise
    shutil.rmtree(old, ignore_errors=True)
