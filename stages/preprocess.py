"""Stage preprocess: compact uint8 / float32 arrays per split under data/processed/, plus a JSON
manifest (shapes, dtypes, sha256, counts). Same params -> same bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from genlab.config import load, load_seed
from genlab.data.celeba import load_celeba
from genlab.data.cifar10 import load_cifar10
from genlab.data.config import DataConfig
from genlab.data.fashion_mnist import load_fashion_mnist
from genlab.data.moving_fmnist import make_moving_fmnist
from genlab.data.processed import save_arrays, write_manifest
from genlab.data.toy2d import sample_toy
from genlab.errors import DataError
from stages._common import PROCESSED, load_params, main, section, tracker

RAW = Path("data/raw")


def fetched_md5s(name: str) -> dict[str, str]:
    """{file: MD5} the fetch stage recorded for data set `name` (data/raw/fetch.json)."""
    path = RAW / "fetch.json"
    try:
        return json.loads(path.read_text())[name]["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path} holds no MD5s for {name} ({type(e).__name__}: {e}); "
                        "rerun fetch (dvc repro fetch)") from e


def fashion_mnist(cfg: DataConfig) -> dict[str, np.ndarray]:
    out = {}
    recorded = fetched_md5s("fashion_mnist")
    for split, limit in (("train", cfg.fashion_mnist.limit_train),
                         ("test", cfg.fashion_mnist.limit_test)):
        x, y = load_fashion_mnist(RAW / "fashion_mnist", split, recorded)
        n = limit or len(x)
        out[f"fashion_mnist/{split}_x"], out[f"fashion_mnist/{split}_y"] = x[:n], y[:n]
    return out


def toy2d(cfg: DataConfig, seed: int) -> dict[str, np.ndarray]:
    out = {}
    for i, name in enumerate(cfg.toy2d.names):
        for j, (split, n) in enumerate((("train", cfg.toy2d.n_train), ("test", cfg.toy2d.n_test))):
            g = torch.Generator().manual_seed(seed * 1000 + 10 * i + j)
            out[f"toy2d/{name}/{split}_x"] = sample_toy(name, n, g).numpy().astype(np.float32)
    return out


def moving_fmnist(cfg: DataConfig, fm: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    c = cfg.moving_fmnist
    out = {}
    for j, (split, n) in enumerate((("train", c.n_videos), ("test", max(c.n_videos // 5, 1)))):
        out[f"moving_fmnist/{split}"] = make_moving_fmnist(
            fm[f"fashion_mnist/{split}_x"], n_videos=n, n_frames=c.n_frames, n_items=c.n_items,
            size=c.size, seed=seed * 1000 + j, max_speed=c.max_speed,
            min_speed=min(c.max_speed, 2.0))  # (V, T, size, size)
    return out


def torchvision_sets(cfg: DataConfig) -> dict[str, np.ndarray]:
    out = {}
    if cfg.cifar10.enabled:
        for split in ("train", "test"):
            x, y = load_cifar10(RAW / "cifar10", split, verify_md5=cfg.cifar10.verify_md5)
            n = cfg.cifar10.limit or len(x)
            out[f"cifar10/{split}_x"], out[f"cifar10/{split}_y"] = x[:n], y[:n]  # (N, 32, 32, 3)
    if cfg.celeba.enabled:
        for split in ("train", "test"):
            out[f"celeba/{split}_x"] = load_celeba(
                RAW / "celeba", split, size=cfg.celeba.size, verify_md5=cfg.celeba.verify_md5,
                limit=cfg.celeba.limit or None)  # (N, size, size, 3)
    return out


def run(argv: list[str]) -> None:
    params = load_params()
    cfg = load(DataConfig, section(params, "data"), "data")
    seed = load_seed(params)
    with tracker(params, "preprocess", {"data": section(params, "data"), "seed": seed}) as tr:
        arrays = fashion_mnist(cfg)
        arrays |= toy2d(cfg, seed)
        if cfg.moving_fmnist.enabled:
            arrays |= moving_fmnist(cfg, arrays, seed)
        arrays |= torchvision_sets(cfg)
        tmp = PROCESSED.with_name(".processed.partial")  # swap in whole, never half-written
        shutil.rmtree(tmp, ignore_errors=True)
        entries = save_arrays(tmp, arrays)
        counts = {name: int(a.shape[0]) for name, a in arrays.items()}
        write_manifest(tmp, entries, {"counts": counts, "seed": seed})
        shutil.rmtree(PROCESSED, ignore_errors=True)
        tmp.rename(PROCESSED)
        for name, e in sorted(entries.items()):
            print(f"{name:32s} {e['dtype']:8s} {e['shape']}")
        tr.log_metrics({f"count.{k.replace('/', '.')}": v for k, v in counts.items()})
        tr.tag_outputs([PROCESSED])


if __name__ == "__main__":
    main(run)
