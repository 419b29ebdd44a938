"""Fixtures for the from-scratch CNN tests: float64 defaults and the real Fashion-MNIST files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genlab.data.fashion_mnist import load_fashion_mnist

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def fashion_mnist() -> dict[str, np.ndarray]:
    """The real Fashion-MNIST arrays (train/test images (N, 28, 28) uint8, labels (N,))."""
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not found under {FASHION_DIR}")
    train_x, train_y = load_fashion_mnist(FASHION_DIR, "train")
    test_x, test_y = load_fashion_mnist(FASHION_DIR, "test")
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}
