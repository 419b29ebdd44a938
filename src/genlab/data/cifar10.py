"""CIFAR-10 (Krizhevsky, 2009) read through torchvision's CIFAR10 class, MD5 checks optional."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from torchvision.datasets import CIFAR10

from genlab.data.idx import DataError, socket_timeout

CLASSES: list[str] = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
SPLITS: dict[str, bool] = {"train": True, "test": False}  # split -> torchvision's `train`
BASE_FOLDER = CIFAR10.base_folder  # "cifar-10-batches-py"
DEFAULT_TIMEOUT_S = 60.0
# torchvision raises RuntimeError for missing/corrupt files; broken pickles raise the others.
_READ_ERRORS = (RuntimeError, OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError)


# What the CIFAR-10 python batches hold: a dict of lists, bytes and uint8 numpy arrays. Their
# pickles may name only these globals; anything else (a pickle can call any function) is refused
# before torchvision unpickles the files, whatever verify_md5 says.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which the CIFAR-10 format "
                                         "never holds (refused: unpickling it runs code)")
        return super().find_class(module, name)


def check_batches(root: Path) -> None:
    """Unpickle every present batch file of `root` with a loader that builds only dicts, lists,
    bytes and numpy arrays; DataError naming the file otherwise."""
    folder = _folder(root)
    names = [n for n, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    for path in (folder / n for n in names):
        if not path.is_file():
            continue  # missing files are torchvision's to report
        try:
            with open(path, "rb") as f:
                _BatchUnpickler(f, encoding="latin1").load()
        except Exception as err:  # noqa: BLE001 - any failure: the file is not a CIFAR batch
            raise DataError(f"{path} is corrupt or not a CIFAR-10 python batch: {err}") from err


class CheckedCIFAR10(CIFAR10):
    """torchvision's CIFAR10 whose MD5 checks reduce to presence checks when verify_md5=False.

    With verify_md5=True every check is torchvision's own; data is always read by torchvision.
    """

    def __init__(self, root: Path, train: bool, download: bool, verify_md5: bool) -> None:
        self.verify_md5 = verify_md5
        if not verify_md5:  # torchvision's check_integrity(path, md5=None) checks presence only
            self.meta = {**CIFAR10.meta, "md5": None}
        super().__init__(str(root), train=train, download=download)

    def _check_integrity(self) -> bool:
        if self.verify_md5:
            return super()._check_integrity()
        folder = Path(self.root) / self.base_folder
        return all((folder / name).is_file() for name, _ in self.train_list + self.test_list)


def fetch_cifar10(root: Path, download: bool, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
    """Make sure `root`/cifar-10-batches-py holds verified CIFAR-10 (downloading if asked).

    Returns {"root", "n_train", "n_test"}; raises DataError when missing or corrupt.
    """
    with socket_timeout(timeout_s):
        train = _open(root, "train", download=download, verify_md5=True)
    test = _open(root, "test", download=False, verify_md5=True)
    return {"root": str(root), "n_train": len(train), "n_test": len(test)}


def load_cifar10(root: Path, split: str, verify_md5: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 32, 32, 3) (HWC, RGB) and labels int64 (N,) of `split` in {train, test}."""
    dataset = _open(root, split, download=False, verify_md5=verify_md5)
    images = np.ascontiguousarray(dataset.data, dtype=np.uint8)  # (N, 32, 32, 3)
    labels = np.asarray(dataset.targets, dtype=np.int64)  # (N,)
    if images.shape[1:] != (32, 32, 3) or labels.shape != (len(images),):
        raise DataError(f"{_folder(root)}: unexpected shapes {images.shape} / {labels.shape}")
    return images, labels


def _open(root: Path, split: str, download: bool, verify_md5: bool) -> CheckedCIFAR10:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    check_batches(root)  # before torchvision unpickles anything
    try:
        return CheckedCIFAR10(root, train=SPLITS[split], download=download, verify_md5=verify_md5)
    except _READ_ERRORS as err:
        raise DataError(
            f"CIFAR-10 under {_folder(root)} is missing or corrupt"
            f" (verify_md5={verify_md5}): {err}. Get it with download=true (fetch_cifar10) or"
            f" extract cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html"
            f" into {root}"
        ) from err


def _folder(root: Path) -> Path:
    return Path(root) / BASE_FOLDER
