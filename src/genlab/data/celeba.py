"""CelebA (Liu et al., 2015) aligned faces through torchvision's CelebA class, cropped and resized.

Preprocessing follows NCSN/NCSNv2 (Song and Ermon, 2019, 2020): center crop 140x140 of the
178x218 aligned image, then resize to `size` (64 for 64x64 CelebA) with antialiased bilinear.
"""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import CelebA

from genlab.data.idx import DataError, socket_timeout

SPLITS = ("train", "valid", "test", "all")
BASE_FOLDER = CelebA.base_folder  # "celeba"
IMAGE_FOLDER = "img_align_celeba"
ALIGNED_SIZE = (178, 218)  # (width, height) of img_align_celeba JPEGs
DEFAULT_CROP = 140
DEFAULT_TIMEOUT_S = 60.0
_READ_ERRORS = (RuntimeError, OSError, ValueError, IndexError, csv.Error)


class CheckedCelebA(CelebA):
    """torchvision's CelebA whose MD5 checks reduce to presence checks when verify_md5=False.

    With verify_md5=True every check is torchvision's own; reading is always torchvision's.
    """

    def __init__(
        self, root: Path, split: str, verify_md5: bool, download: bool = False, transform=None
    ) -> None:
        self.verify_md5 = verify_md5
        super().__init__(
            str(root), split=split, target_type="attr", transform=transform, download=download
        )

    def _check_integrity(self) -> bool:
        if self.verify_md5:
            return super()._check_integrity()
        folder = Path(self.root) / self.base_folder
        names = [name for _, _, name in self.file_list if not name.endswith((".zip", ".7z"))]
        return all((folder / n).is_file() for n in names) and (folder / IMAGE_FOLDER).is_dir()


def preprocess_face(image: Image.Image, size: int, crop: int = DEFAULT_CROP) -> np.ndarray:
    """Center crop `crop` squared, resize to `size` squared (antialiased bilinear): (H, W, 3)."""
    image = image.convert("RGB")
    width, height = image.size
    if not 0 < crop <= min(width, height):
        raise ValueError(f"crop must be in 1..{min(width, height)} for a {width}x{height} image")
    left, top = round((width - crop) / 2), round((height - crop) / 2)
    square = image.crop((left, top, left + crop, top + crop))
    # PIL widens the bilinear kernel by the downscale factor, i.e. it antialiases.
    resized = square.resize((size, size), resample=Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def fetch_celeba(root: Path, download: bool, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
    """Make sure `root`/celeba holds verified CelebA (downloading from Google Drive if asked)."""
    with socket_timeout(timeout_s):
        dataset = _open(root, "all", verify_md5=True, download=download)
    return {"root": str(root), "n_images": len(dataset)}


def load_celeba(
    root: Path,
    split: str,
    size: int = 64,
    verify_md5: bool = True,
    limit: int | None = None,
    crop: int = DEFAULT_CROP,
    num_workers: int = 0,
) -> np.ndarray:
    """Faces of `split` (train/valid/test/all) as uint8 (N, size, size, 3), in file order.

    `limit` keeps the first `limit` images; `num_workers` decodes JPEGs in parallel processes.
    """
    _check_args(size=size, limit=limit, num_workers=num_workers)
    transform = partial(preprocess_face, size=size, crop=crop)
    dataset = _open(root, split, verify_md5=verify_md5, transform=transform)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    subset = torch.utils.data.Subset(dataset, range(n))
    loader = DataLoader(subset, batch_size=256, num_workers=num_workers, collate_fn=_stack_images)
    out = np.empty((n, size, size, 3), dtype=np.uint8)  # (N, H, W, C)
    start = 0
    try:
        for batch in loader:
            out[start : start + len(batch)] = batch
            start += len(batch)
    except OSError as err:  # a missing or undecodable JPEG
        raise DataError(f"CelebA image under {_folder(root) / IMAGE_FOLDER}: {err}") from err
    return out


def _check_args(size: int, limit: int | None, num_workers: int) -> None:
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or >= 0, got {limit}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")


def _stack_images(batch: list[tuple[np.ndarray, torch.Tensor]]) -> np.ndarray:
    return np.stack([image for image, _ in batch])


def _open(
    root: Path, split: str, verify_md5: bool, download: bool = False, transform=None
) -> CheckedCelebA:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    try:
        return CheckedCelebA(
            root, split=split, verify_md5=verify_md5, download=download, transform=transform
        )
    except _READ_ERRORS as err:
        raise DataError(
            f"CelebA under {_folder(root)} is missing or corrupt (verify_md5={verify_md5}):"
            f" {err}. Get it with download=true (fetch_celeba; needs gdown and Google Drive"
            f" quota) or place {IMAGE_FOLDER}/ (from img_align_celeba.zip) and the five"
            f" annotation files {', '.join(_annotation_files())} in {_folder(root)}"
        ) from err


def _annotation_files() -> list[str]:
    return [name for _, _, name in CelebA.file_list if name.endswith(".txt")]


def _folder(root: Path) -> Path:
    return Path(root) / BASE_FOLDER
