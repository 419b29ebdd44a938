"""Character-level text data: a corpus of records (fortune cookies, separated by "%" lines as
in the strfile format of Debian's `fortunes`) split by record into train / val / test, encoded
as character ids over one vocabulary, and random fixed-length windows for training."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from genlab.errors import DataError

SPLITS = ("train", "val", "test")
SEPARATOR = "\n%\n"  # between records, kept in the text: the model learns where one ends


def corpus_files(source: Path) -> list[Path]:
    """The text files of a fortune folder: regular files without an extension (the .dat index
    files and .u8 links are left out), sorted by name."""
    if not source.is_dir():
        raise DataError(f"text source {source} is missing: install it with "
                        f"`apt-get install fortunes` (Debian / Ubuntu), or point the stage at "
                        f"a folder of fortune files")
    files = sorted(p for p in source.iterdir()
                   if p.is_file() and not p.is_symlink() and p.suffix == "")
    if not files:
        raise DataError(f"{source} holds no fortune files (expected files such as "
                        f"{source}/computers): reinstall with `apt-get install --reinstall "
                        f"fortunes`")
    return files


def read_records(files: list[Path]) -> list[str]:
    """Every non-empty record of the files, in file order (a record ends at a '%' line)."""
    records = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        records += [r.strip("\n") for r in text.split("\n%\n")]
    return [r for r in records if r.strip() and r.strip() != "%"]


def split_records(records: list[str], fractions: tuple[float, float], seed: int
                  ) -> dict[str, str]:
    """Shuffle the records (seeded) and cut val and test fractions off the front; each split
    is its records joined by SEPARATOR."""
    order = np.random.default_rng(seed).permutation(len(records))
    n_val, n_test = (max(1, round(f * len(records))) for f in fractions)
    parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test],
             "train": order[n_val + n_test:]}
    return {k: SEPARATOR.join(records[i] for i in sorted(idx)) + SEPARATOR
            for k, idx in parts.items()}


def build_vocab(texts: list[str]) -> list[str]:
    """The sorted characters of all texts: id i is vocab[i]."""
    return sorted(set().union(*map(set, texts)))


def encode(text: str, vocab: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(vocab)}
    return np.fromiter((index[c] for c in text), dtype=np.int16, count=len(text))


def decode(ids, vocab: list[str]) -> str:
    return "".join(vocab[int(i)] for i in ids)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_splits(out: Path, splits: dict[str, str], files: list[Path]) -> dict:
    """<split>.npy (int16 ids), vocab.json and manifest.json (sizes and sha256 of every source
    and output file) under `out`; returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab(list(splits.values()))
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n")
    manifest = {"vocab_size": len(vocab), "sources": {p.name: sha256(p) for p in files},
                "files": {}, "characters": {}}
    for name in SPLITS:
        np.save(out / f"{name}.npy", encode(splits[name], vocab))
        manifest["characters"][name] = len(splits[name])
    for path in sorted(out.glob("*.npy")) + [out / "vocab.json"]:
        manifest["files"][path.name] = sha256(path)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def load_split(root: Path, name: str) -> tuple[np.ndarray, list[str]]:
    """(ids, vocab) of split `name` under root (a folder write_splits made)."""
    path = root / f"{name}.npy"
    if not path.exists():
        raise DataError(f"{path} is missing: run the text stage (dvc repro text)")
    return np.load(path).astype(np.int64), json.loads((root / "vocab.json").read_text())


def random_windows(ids: torch.Tensor, length: int, batch: int, generator: torch.Generator
                   ) -> torch.Tensor:
    """`batch` windows of `length` consecutive ids at uniform random starts: (B, length)."""
    if len(ids) <= length:
        raise DataError(f"text of {len(ids)} characters is shorter than a window of {length}")
    starts = torch.randint(0, len(ids) - length + 1, (batch,), generator=generator)
    return ids[starts[:, None] + torch.arange(length)]  # (B, length)
