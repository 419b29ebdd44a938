"""Small fixture datasets in the exact on-disk formats of Fashion-MNIST, CIFAR-10 and CelebA."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genlab.data.idx import write_idx

FMNIST_REAL_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_NAMES = {
    "train-images-idx3-ubyte": "train_images",
    "train-labels-idx1-ubyte": "train_labels",
    "t10k-images-idx3-ubyte": "test_images",
    "t10k-labels-idx1-ubyte": "test_labels",
}
CELEBA_ATTRS = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes "
    "No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling "
    "Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace "
    "Wearing_Necktie Young"
).split()
CELEBA_PARTITION = (0, 0, 0, 0, 0, 1, 1, 2, 2, 2)  # 5 train, 2 valid, 3 test


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------- Fashion-MNIST (IDX files)


def make_fmnist_arrays(n_train: int = 12, n_test: int = 6, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_fmnist_dir(folder: Path, arrays: dict, gz: bool) -> dict[str, str]:
    """Write the four IDX files (.gz or plain); return the MD5 of each decompressed file."""
    folder.mkdir(parents=True, exist_ok=True)
    md5s = {}
    for name, key in FMNIST_NAMES.items():
        write_idx(folder / (f"{name}.gz" if gz else name), arrays[key])
        plain = folder / "plain.tmp"
        write_idx(plain, arrays[key])
        md5s[name] = md5_of(plain.read_bytes())
        plain.unlink()
    return md5s


@pytest.fixture
def fmnist_fixture(tmp_path: Path) -> dict:
    """A .gz and a plain Fashion-MNIST-format folder with the same tiny content."""
    arrays = make_fmnist_arrays()
    md5s = write_fmnist_dir(tmp_path / "src_gz", arrays, gz=True)
    write_fmnist_dir(tmp_path / "src_plain", arrays, gz=False)
    return {
        "gz": tmp_path / "src_gz",
        "plain": tmp_path / "src_plain",
        "arrays": arrays,
        "md5s": md5s,
    }


# ---------------------------------------------------------------- CIFAR-10 (python pickles)


def write_cifar10(root: Path, n_per_batch: int = 4, seed: int = 0) -> dict:
    """cifar-10-batches-py/ with data_batch_1..5, test_batch and batches.meta.

    Same keys, dtypes and layout as the real pickles: "data" uint8 (n, 3072) holding each image
    as its red, green then blue 32x32 planes row-major, "labels" a list of int, plus
    "batch_label" and "filenames". Returns the images (N, 32, 32, 3) HWC, labels and MD5s.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    out = {"train_images": [], "train_labels": [], "md5s": {}}
    for i, name in enumerate(names):
        images = rng.integers(0, 256, (n_per_batch, 32, 32, 3), dtype=np.uint8)  # HWC
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        rows = images.transpose(0, 3, 1, 2).reshape(n_per_batch, 3072)  # CHW planes
        label = "testing batch 1 of 1" if name == "test_batch" else f"training batch {i + 1} of 5"
        entry = {
            "batch_label": label,
            "labels": labels,
            "data": rows,
            "filenames": [f"img_{i}_{j}.png" for j in range(n_per_batch)],
        }
        out["md5s"][name] = _dump(folder / name, entry)
        if name == "test_batch":
            out["test_images"], out["test_labels"] = images, np.array(labels)
        else:
            out["train_images"].append(images)
            out["train_labels"].extend(labels)
    meta = {
        "num_cases_per_batch": n_per_batch,
        "num_vis": 3072,
        "label_names": [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ],
    }
    out["md5s"]["batches.meta"] = _dump(folder / "batches.meta", meta)
    out["train_images"] = np.concatenate(out["train_images"])
    out["train_labels"] = np.array(out["train_labels"])
    return out


def _dump(path: Path, obj: dict) -> str:
    data = pickle.dumps(obj, protocol=2)
    path.write_bytes(data)
    return md5_of(data)


@pytest.fixture
def cifar_fixture(tmp_path: Path) -> dict:
    info = write_cifar10(tmp_path / "cifar")
    return {"root": tmp_path / "cifar", **info}


# ---------------------------------------------------------------- CelebA (JPEGs + text files)


def smooth_face_like(rng: np.random.Generator) -> np.ndarray:
    """A smooth random 218x178 RGB image (low frequencies survive JPEG almost intact)."""
    coarse = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((178, 218), Image.Resampling.BICUBIC))


def write_celeba(root: Path, seed: int = 0) -> dict:
    """celeba/ with img_align_celeba/*.jpg (178x218) and the five annotation files.

    Formats follow the real files: list_eval_partition.txt and identity_CelebA.txt are
    "<file> <int>" lines; list_bbox_celeba.txt, list_landmarks_align_celeba.txt and
    list_attr_celeba.txt start with the image count, then a header line of column names
    (the attribute header ends with a space), then space-padded rows (attributes are +-1).
    """
    rng = np.random.default_rng(seed)
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    n = len(CELEBA_PARTITION)
    files = [f"{i + 1:06d}.jpg" for i in range(n)]
    images = np.stack([smooth_face_like(rng) for _ in files])  # (n, 218, 178, 3)
    for name, image in zip(files, images, strict=True):
        Image.fromarray(image).save(folder / "img_align_celeba" / name, quality=95)
    attrs = rng.choice([-1, 1], size=(n, len(CELEBA_ATTRS)))
    _write_lines(
        folder / "list_eval_partition.txt",
        [f"{f} {p}" for f, p in zip(files, CELEBA_PARTITION, strict=True)],
    )
    _write_lines(
        folder / "identity_CelebA.txt", [f"{f} {int(rng.integers(1, 10178))}" for f in files]
    )
    _write_lines(
        folder / "list_bbox_celeba.txt",
        [str(n), "image_id x_1 y_1 width height"]
        + [f"{f}  {_padded(rng.integers(0, 400, 4), 4)}" for f in files],
    )
    landmark_cols = (
        "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x"
        " leftmouth_y rightmouth_x rightmouth_y"
    )
    _write_lines(
        folder / "list_landmarks_align_celeba.txt",
        [str(n), landmark_cols] + [f"{f}{_padded(rng.integers(60, 160, 10), 5)}" for f in files],
    )
    _write_lines(
        folder / "list_attr_celeba.txt",
        [str(n), " ".join(CELEBA_ATTRS) + " "]
        + [f"{f}{_padded(row, 3)}" for f, row in zip(files, attrs, strict=True)],
    )
    return {
        "images": images,
        "files": files,
        "attrs": attrs,
        "partition": np.array(CELEBA_PARTITION),
    }


def _padded(values, width: int) -> str:
    return "".join(f"{int(v):>{width}d}" for v in values)


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def celeba_fixture(tmp_path: Path) -> dict:
    info = write_celeba(tmp_path / "faces")
    return {"root": tmp_path / "faces", **info}
