"""The `data` section of params.yaml (stages fetch and preprocess), typed and validated."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import (
    TOY_NAMES,
    Check,
    at_least,
    knob,
    non_empty,
    non_negative,
    one_of,
    positive,
)


@dataclass(frozen=True)
class SourceConfig:
    kind: str = knob(doc="where to get the files: a local directory or torchvision's download",
                     check=one_of("local", "torchvision"))
    path: str = knob("", doc="directory holding the files (kind: local)")


@dataclass(frozen=True)
class FashionMnistConfig:
    sources: tuple[SourceConfig, ...] = knob(
        doc="sources tried in order until one yields four verified IDX files", check=non_empty)
    verify_md5: bool = knob(True, doc="check the MD5 of each decompressed IDX file")
    limit_train: int = knob(0, doc="keep the first N training images (0 = all 60k)",
                            check=non_negative)
    limit_test: int = knob(0, doc="keep the first N test images (0 = all 10k)",
                           check=non_negative)


@dataclass(frozen=True)
class TorchvisionSetConfig:
    enabled: bool = knob(False, doc="fetch and preprocess this data set")
    source_dir: str = knob("", doc="a local copy in torchvision's on-disk layout ('' = none)")
    download: bool = knob(True, doc="fall back to torchvision's download when no local copy")
    verify_md5: bool = knob(True, doc="check torchvision's MD5 of every file")
    size: int = knob(64, doc="output side in pixels (CelebA only; CIFAR-10 stays 32)",
                     check=positive)
    limit: int = knob(0, doc="keep the first N images per split (0 = all)", check=non_negative)


@dataclass(frozen=True)
class Toy2dConfig:
    names: tuple[str, ...] = knob(
        factory=lambda: TOY_NAMES, doc="toy distributions to generate",
        check=Check(lambda n: all(x in TOY_NAMES for x in n), f"must only name {list(TOY_NAMES)}"))
    n_train: int = knob(20000, doc="training points per distribution", check=positive)
    n_test: int = knob(5000, doc="held-out points per distribution", check=positive)


@dataclass(frozen=True)
class MovingFmnistConfig:
    enabled: bool = knob(True, doc="build the moving-Fashion-MNIST video set")
    n_videos: int = knob(1000, doc="training videos (test gets a fifth as many)", check=positive)
    n_frames: int = knob(16, doc="frames per video", check=positive)
    n_items: int = knob(2, doc="Fashion-MNIST items bouncing in each video", check=positive)
    size: int = knob(64, doc="frame side in pixels (>= 28, the item size)", check=at_least(28))
    max_speed: float = knob(3.0, doc="largest item speed in pixels per frame", check=positive)


@dataclass(frozen=True)
class DataConfig:
    fashion_mnist: FashionMnistConfig = knob(doc="Fashion-MNIST sources and subset")
    cifar10: TorchvisionSetConfig = knob(factory=TorchvisionSetConfig, doc="CIFAR-10 (32x32)")
    celeba: TorchvisionSetConfig = knob(factory=TorchvisionSetConfig, doc="CelebA (64x64)")
    toy2d: Toy2dConfig = knob(factory=Toy2dConfig, doc="2-D toy distributions")
    moving_fmnist: MovingFmnistConfig = knob(factory=MovingFmnistConfig, doc="video set")
