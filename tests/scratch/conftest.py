"""Fixtures for the from-scratch CNN tests: float64 defaults and the real Fashion-MNIST files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def read_idx_gz(path: Path) -> np.ndarray:
    """Minimal IDX reader: 2 zero bytes, dtype code, ndim, big-endian uint32 dims, uint8 data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not a uint8 IDX file")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


@pytest.fixture(scope="session")
def fashion_mnist() -> dict[str, np.ndarray]:
    """The real Fashion-MNIST arrays (train/test images (N, 28, 28) uint8, labels (N,))."""
    names = {
        "train_x": "train-images-idx3-ubyte.gz",
        "train_y": "train-labels-idx1-ubyte.gz",
        "test_x": "t10k-images-idx3-ubyte.gz",
        "test_y": "t10k-labels-idx1-ubyte.gz",
    }
    if not all((FASHION_DIR / n).is_file() for n in names.values()):
        pytest.skip(f"Fashion-MNIST not found under {FASHION_DIR}")
    return {k: read_idx_gz(FASHION_DIR / n) for k, n in names.items()}
