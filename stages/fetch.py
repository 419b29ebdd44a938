"""Stage fetch: put verified raw data under data/raw/ (Fashion-MNIST always; CIFAR-10 and
CelebA when enabled), from a local copy first, else torchvision's download."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from genlab.config import load
from genlab.data import celeba, cifar10
from genlab.data.config import DataConfig, TorchvisionSetConfig
from genlab.data.fashion_mnist import fetch_fashion_mnist
from genlab.errors import DataError
from stages._common import load_params, main, section, tracker, write_json

RAW = Path("data/raw")


def copy_tree(src: Path, dest: Path) -> None:
    """Hard-link (else copy) src into dest via a temp folder, so dest is never half-written."""
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)

    def link_or_copy(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, tmp, copy_function=link_or_copy)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def fetch_torchvision_set(name: str, cfg: TorchvisionSetConfig, module) -> dict:
    """CIFAR-10 / CelebA into data/raw/<name>/ in torchvision's own layout."""
    dest = RAW / name
    if cfg.source_dir:
        src = Path(cfg.source_dir) / module.BASE_FOLDER
        if not src.is_dir():
            raise DataError(f"data.{name}.source_dir: {src} is not a directory")
        copy_tree(src, dest / module.BASE_FOLDER)
        if cfg.verify_md5:
            return getattr(module, f"fetch_{name}")(dest, download=False)
        return {"root": str(dest), "source": str(src), "verified": False}
    if not cfg.download:
        raise DataError(f"data.{name}: no source_dir and download is false")
    return getattr(module, f"fetch_{name}")(dest, download=True)


def run(argv: list[str]) -> None:
    params = load_params()
    cfg = load(DataConfig, section(params, "data"), "data")
    with tracker(params, "fetch", {"data": section(params, "data")}) as tr:
        fm = cfg.fashion_mnist
        report = {"fashion_mnist": fetch_fashion_mnist(
            RAW / "fashion_mnist", [{"kind": s.kind, "path": s.path} for s in fm.sources],
            verify_md5=fm.verify_md5)}
        print(f"fashion_mnist: from {report['fashion_mnist']['source']}")
        for name, module in (("cifar10", cifar10), ("celeba", celeba)):
            set_cfg = getattr(cfg, name)
            if set_cfg.enabled:
                report[name] = fetch_torchvision_set(name, set_cfg, module)
                print(f"{name}: {report[name]}")
        write_json(RAW / "fetch.json", report)
        tr.tag_outputs([RAW])


if __name__ == "__main__":
    main(run)
